"""The reproducer template of the TensorFlow backends: `tensorflow` (the Keras 3 layers),
`tensorflow-nn` (tf.nn.moments + tf.nn.batch_normalization, composed per norm) and
`tensorflow-fused` (tf.compat.v1.nn.fused_batch_norm).

Each call is written as backends/tensorflow_backend.py makes it: channels moved last for the
norms with a channel axis, parameters and running statistics in the input's dtype (float32 for
the fused kernel), Keras's epsilon and momentum set on the built layer, momentum in
TensorFlow's meaning (the weight of the old value; the fused kernel's
exponential_avg_factor weighs the new one), gradients by a GradientTape with grad_y as the
output gradient.
"""

from __future__ import annotations

import math

from normspec.hunt.reproducers.calls import CallSpec, Code, Family

CHANNEL_NORMS = ("batch_norm", "instance_norm", "group_norm")


class TensorFlowFamily(Family):
    """Keras layers, tf.nn ops and the fused batch norm kernel."""

    name = "tensorflow"

    def __init__(self, backend: str) -> None:
        self.backend = backend

    def host_dtype(self, dtype: str) -> str:
        return "BFLOAT16" if dtype == "bfloat16" else super().host_dtype(dtype)

    def permutation(self, spec: CallSpec) -> tuple[int, ...]:
        """normspec's (N, C, *spatial) to TensorFlow's (N, *spatial, C), for channel norms."""
        if spec.norm in CHANNEL_NORMS:
            return (0, *range(2, spec.rank), 1)
        return tuple(range(spec.rank))

    def code(self, spec: CallSpec) -> Code:
        imports = ["import os", "", "os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')"]
        if self.backend == "tensorflow":
            imports.append("os.environ.setdefault('KERAS_BACKEND', 'tensorflow')")
        imports += ["", "import tensorflow as tf"]
        if self.backend == "tensorflow":
            imports.append("import keras")
        perm = self.permutation(spec)
        prelude = [
            "BFLOAT16 = tf.bfloat16.as_numpy_dtype  # NumPy's bfloat16, as TensorFlow has it",
            f"PERM = {perm}  # normspec's layout (N, C, ...) -> TensorFlow's",
            "",
            "",
            "def to_tf(a):",
            '    """An input-like array (x, grad_y, a batch) in TensorFlow\'s layout."""',
            "    return tf.constant(np.transpose(a, PERM))",
            "",
            "",
            "def from_tf(t):",
            '    """An output-like tensor back in (N, C, ...) layout, in float64 (exactly)."""',
            "    return np.transpose(t.numpy().astype(np.float64), np.argsort(PERM))",
        ]
        if self.backend == "tensorflow-fused":
            method = self._fused_train if spec.method == "train" else self._fused
            what = "tf.compat.v1.nn.fused_batch_norm"
        elif self.backend == "tensorflow-nn":
            method = self._nn_train if spec.method == "train" else self._nn
            what = "tf.nn.moments + tf.nn.batch_normalization" + (
                " (RMSNorm: x * tf.math.rsqrt(tf.reduce_mean(x^2) + eps))"
                if spec.norm == "rms_norm"
                else ""
            )
        else:
            method = self._keras_train if spec.method == "train" else self._keras
            what = f"keras.layers.{_keras_layer(spec.norm)}"
        return Code(
            imports=imports,
            prelude=prelude,
            call=method(spec),
            what=what,
            needs=("tensorflow",),
        )

    # --- shared pieces ---------------------------------------------------------------------

    def _received(self, spec: CallSpec, names: list[str]) -> list[str]:
        items = ", ".join(f"'{n}': {n}.astype(np.float64)" for n in names if n in spec.present)
        return [f"received = {{{items}}}  # the values the layer received, in float64"]

    def _parameters(self, spec: CallSpec, dtype: str = "") -> list[str]:
        """wt and bt as the adapter makes them: a missing one of a pair is 1 or 0."""
        present = spec.present
        cast = f".astype({dtype})" if dtype else ""
        if "weight" not in present and "bias" not in present:
            return ["wt = bt = None  # no affine parameters"]
        shape = spec.shapes.get("weight") or spec.shapes.get("bias")
        lines = [
            f"wt = tf.constant(weight{cast})"
            if "weight" in present
            else f"wt = tf.constant(np.ones({shape}, dtype=x.dtype){cast})"
        ]
        if spec.norm == "rms_norm":
            return [*lines, "bt = None"]
        lines.append(
            f"bt = tf.constant(bias{cast})"
            if "bias" in present
            else f"bt = tf.constant(np.zeros({shape}, dtype=x.dtype){cast})"
        )
        return lines

    def _gradient(self, spec: CallSpec, sources: list[str], call: list[str]) -> list[str]:
        """The tape around `call` (which sets y) and the compared gradient as `observed`."""
        if "weight" not in spec.present:
            sources = sources[:1]
        lines = [
            "with tf.GradientTape() as tape:",
            f"    tape.watch([{', '.join(s for s in sources if not s.startswith('layer.'))}])",
        ]
        lines += [f"    {line}" for line in call]
        lines.append(
            f"grads = tape.gradient(y, [{', '.join(sources)}], output_gradients=to_tf(grad_y))"
        )
        if spec.quantity == "dL/dx":
            return [*lines, "observed = from_tf(grads[0])"]
        index = 1 if spec.quantity == "dL/dweight" else 2
        shape = spec.shapes["weight"]
        return [*lines, f"observed = grads[{index}].numpy().astype(np.float64).reshape({shape})"]

    # --- Keras ------------------------------------------------------------------------------

    def _keras_layer(self, spec: CallSpec, x: str = "x", train: bool = False) -> list[str]:
        norm, s = spec.norm, spec.scalars
        affine = "weight" in spec.present or "bias" in spec.present
        shape = spec.shapes.get("x") or spec.shapes["batch_0"]
        if norm in ("layer_norm", "rms_norm"):
            features = tuple(s["normalized_shape"])
        else:
            features = (shape[1],)
        rank = len(shape)
        trailing = list(range(rank - len(features), rank))
        axis = "" if len(features) == 1 else f"axis={trailing}, "
        center = f"center={affine}, scale={affine}, "
        if norm == "batch_norm":
            build = f"keras.layers.BatchNormalization({center}dtype='{spec.dtype}')"
        elif norm in ("group_norm", "instance_norm"):
            groups = features[0] if norm == "instance_norm" else s["num_groups"]
            build = (
                f"keras.layers.GroupNormalization(groups={groups}, {center}dtype='{spec.dtype}')"
            )
        elif norm == "layer_norm":
            build = f"keras.layers.LayerNormalization({axis}{center}dtype='{spec.dtype}')"
        else:
            build = f"keras.layers.RMSNormalization({axis}dtype='{spec.dtype}')"
        built = (None,) * (rank - len(features)) + features
        lines = [
            f"layer = {build}",
            f"layer.build({built})",
            "layer.epsilon = eps  # Keras reads it at call time",
        ]
        if train:
            lines.append("layer.momentum = momentum_keras")
        if affine:
            if norm == "rms_norm":
                lines.append("layer.scale.assign(wt)")
            else:
                lines += ["layer.gamma.assign(wt)", "layer.beta.assign(bt)"]
        if spec.evaluation:
            lines += [
                "layer.moving_mean.assign(running_mean)",
                "layer.moving_variance.assign(running_var)",
            ]
        return lines

    def _keras(self, spec: CallSpec) -> list[str]:
        lines = ["xt = to_tf(x)", *self._parameters(spec)]
        lines += self._received(
            spec, ["x", "weight", "bias", "running_mean", "running_var", "grad_y"]
        )
        lines += self._keras_layer(spec)
        if spec.norm == "batch_norm":
            call = f"y = layer(xt, training={not spec.evaluation})"
        else:
            call = "y = layer(xt)"
        if spec.method == "forward":
            return [*lines, call, "observed = from_tf(y)"]
        sources = (
            ["xt", "layer.scale"]
            if spec.norm == "rms_norm"
            else ["xt", "layer.gamma", "layer.beta"]
        )
        return lines + self._gradient(spec, sources, [call])

    def _keras_train(self, spec: CallSpec) -> list[str]:
        lines = [
            "batches = [" + ", ".join(f"batch_{k}" for k in range(spec.steps)) + "]",
            "x = batch_0",
            *self._parameters(spec),
            *self._train_received(spec),
            "# Keras's momentum is the weight of the old value",
            "momentum_keras = momentum if momentum_weighs == 'old' else 1 - momentum",
        ]
        lines += self._keras_layer(spec, train=True)
        lines += [
            "layer.moving_mean.assign(initial_mean)",
            "layer.moving_variance.assign(initial_var)",
            "outputs = [layer(to_tf(b), training=True) for b in batches]",
            "running_mean, running_var = layer.moving_mean, layer.moving_variance",
            _train_observed(spec.quantity),
        ]
        return lines

    def _train_received(self, spec: CallSpec) -> list[str]:
        lines = [
            "received = {",
            "    'batches': [b.astype(np.float64) for b in batches],",
            "    'initial_mean': initial_mean.astype(np.float64),",
            "    'initial_var': initial_var.astype(np.float64),",
        ]
        lines += [
            f"    '{n}': {n}.astype(np.float64)," for n in ("weight", "bias") if n in spec.present
        ]
        return [*lines, "}  # the values the layer received, in float64"]

    # --- tf.nn ------------------------------------------------------------------------------

    def _nn_axes(self, spec: CallSpec) -> list[int]:
        rank = spec.rank
        if spec.norm == "batch_norm":
            return list(range(rank - 1))
        if spec.norm == "instance_norm":
            return list(range(1, rank - 1))
        if spec.norm == "group_norm":
            return [*range(1, rank - 1), rank]
        k = len(spec.scalars["normalized_shape"])
        return list(range(rank - k, rank))

    def _nn_output(self, spec: CallSpec) -> list[str]:
        axes = self._nn_axes(spec)
        if spec.norm == "batch_norm" and spec.evaluation:
            return [
                "mean, variance = tf.constant(running_mean), tf.constant(running_var)",
                "y = tf.nn.batch_normalization(xt, mean, variance, bt, wt, eps)",
            ]
        if spec.norm == "rms_norm":
            mean_square = f"tf.reduce_mean(tf.square(xt), {axes}, keepdims=True)"
            lines = [f"y = xt * tf.math.rsqrt({mean_square} + eps)"]
            if "weight" in spec.present:
                lines.append("y = y * wt")
            return lines
        if spec.norm == "group_norm":
            channels = spec.shapes["x"][1]
            groups = spec.scalars["num_groups"]
            shape = (groups, channels // groups)
            return [
                f"grouped = tf.reshape(xt, (*xt.shape[:-1], {shape[0]}, {shape[1]}))",
                f"scale = None if wt is None else tf.reshape(wt, {shape})",
                f"offset = None if bt is None else tf.reshape(bt, {shape})",
                f"mean, variance = tf.nn.moments(grouped, {axes}, keepdims=True)",
                "y = tf.nn.batch_normalization(grouped, mean, variance, offset, scale, eps)",
                "y = tf.reshape(y, xt.shape)",
            ]
        return [
            f"mean, variance = tf.nn.moments(xt, {axes}, keepdims=True)",
            "y = tf.nn.batch_normalization(xt, mean, variance, bt, wt, eps)",
        ]

    def _nn(self, spec: CallSpec) -> list[str]:
        lines = ["xt = to_tf(x)", *self._parameters(spec)]
        lines += self._received(
            spec, ["x", "weight", "bias", "running_mean", "running_var", "grad_y"]
        )
        if spec.method == "forward":
            return [*lines, *self._nn_output(spec), "observed = from_tf(y)"]
        sources = ["xt", "wt"] if spec.norm == "rms_norm" else ["xt", "wt", "bt"]
        return lines + self._gradient(spec, sources, self._nn_output(spec))

    def _nn_train(self, spec: CallSpec) -> list[str]:
        axes = self._nn_axes(spec)
        return [
            "batches = [" + ", ".join(f"batch_{k}" for k in range(spec.steps)) + "]",
            "x = batch_0",
            *self._parameters(spec),
            *self._train_received(spec),
            "# the decay of a moving average weighs the old value",
            "decay = momentum if momentum_weighs == 'old' else 1 - momentum",
            "running_mean = tf.Variable(tf.constant(initial_mean))",
            "running_var = tf.Variable(tf.constant(initial_var))",
            "outputs = []",
            "for b in batches:",
            "    xb = to_tf(b)",
            f"    mean, variance = tf.nn.moments(xb, {axes})",
            "    outputs.append(tf.nn.batch_normalization(xb, mean, variance, bt, wt, eps))",
            "    # assign_moving_average without zero-debiasing",
            "    running_mean.assign_sub((running_mean - mean) * (1.0 - decay))",
            "    running_var.assign_sub((running_var - variance) * (1.0 - decay))",
            _train_observed(spec.quantity),
        ]

    # --- the fused kernel -------------------------------------------------------------------

    def _fused_view(self, spec: CallSpec, x: str) -> list[str]:
        shape = spec.shapes.get("x") or spec.shapes["batch_0"]
        rank = len(shape)
        if rank in (4, 5):
            return [f"view, data_format = {x}, '{'NHWC' if rank == 4 else 'NDHWC'}'"]
        middle = math.prod(shape[2:])
        return [
            f"# the kernel takes 4-D input: ({shape[0]}, ..., {shape[1]}) viewed as NHWC",
            f"view, data_format = tf.reshape({x}, ({shape[0]}, {middle}, 1, {shape[1]})), 'NHWC'",
        ]

    def _fused(self, spec: CallSpec) -> list[str]:
        channels = spec.shapes["x"][1]
        lines = ["xt = to_tf(x)", *self._parameters(spec, "np.float32")]
        lines += self._received(
            spec, ["x", "weight", "bias", "running_mean", "running_var", "grad_y"]
        )
        running = "None, None"
        if spec.evaluation:
            running = ", ".join(
                f"tf.constant({n}.astype(np.float32))" for n in ("running_mean", "running_var")
            )
        call = [
            *self._fused_view(spec, "xt"),
            "y, _, _ = tf.compat.v1.nn.fused_batch_norm(",
            f"    view, tf.ones({channels}) if wt is None else wt, "
            f"tf.zeros({channels}) if bt is None else bt,",
            f"    {running}, data_format=data_format, is_training={not spec.evaluation}, "
            "epsilon=eps,",
            ")",
            "y = tf.reshape(y, xt.shape)",
        ]
        if spec.method == "forward":
            return [*lines, *call, "observed = from_tf(y)"]
        return lines + self._gradient(spec, ["xt", "wt", "bt"], call)

    def _fused_train(self, spec: CallSpec) -> list[str]:
        channels = spec.shapes["batch_0"][1]
        return [
            "batches = [" + ", ".join(f"batch_{k}" for k in range(spec.steps)) + "]",
            "x = batch_0",
            *self._parameters(spec, "np.float32"),
            *self._train_received(spec),
            "# exponential_avg_factor weighs the new statistic",
            "factor = momentum if momentum_weighs == 'new' else 1 - momentum",
            "running_mean = tf.constant(initial_mean.astype(np.float32))",
            "running_var = tf.constant(initial_var.astype(np.float32))",
            "outputs = []",
            "for b in batches:",
            "    xb = to_tf(b)",
            *[f"    {line}" for line in self._fused_view(spec, "xb")],
            "    y, running_mean, running_var = tf.compat.v1.nn.fused_batch_norm(",
            f"        view, tf.ones({channels}) if wt is None else wt, "
            f"tf.zeros({channels}) if bt is None else bt,",
            "        running_mean, running_var, data_format=data_format, is_training=True,",
            "        epsilon=eps, exponential_avg_factor=factor,",
            "    )",
            "    outputs.append(tf.reshape(y, xb.shape))",
            _train_observed(spec.quantity),
        ]


def _keras_layer(norm: str) -> str:
    return {
        "batch_norm": "BatchNormalization",
        "instance_norm": "GroupNormalization (one group per channel)",
        "group_norm": "GroupNormalization",
        "layer_norm": "LayerNormalization",
        "rms_norm": "RMSNormalization",
    }.get(norm, norm)


def _train_observed(quantity: str) -> str:
    if quantity in ("running_mean", "running_var"):
        return f"observed = np.asarray({quantity}.numpy(), dtype=np.float64)"
    step = int(quantity.rsplit(" ", 1)[1])
    return f"observed = from_tf(outputs[{step - 1}])"
