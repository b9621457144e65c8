"""The TensorFlow adapters: the Keras layers, the tf.nn ops, and the fused batch norm kernel.

One hierarchy on the framework template of `backends.framework`; each variant is a different
code path of TensorFlow 2.21 / Keras 3:

    TensorFlowBackend      the translation, shared by every variant
    ├── KerasBackend       "tensorflow": keras.layers.*Normalization, which own their state
    ├── TfNnBackend        "tensorflow-nn": tf.nn.moments + tf.nn.batch_normalization,
    │                      composed the way a TF user writes each norm
    └── TfFusedBackend     "tensorflow-fused": tf.compat.v1.nn.fused_batch_norm, the
                           FusedBatchNormV3 kernel that Keras 2 used; batch_norm only

Each translation lives in one place: layout in `framework_axes` (TensorFlow is channels-last:
(N, C, *spatial) -> (N, *spatial, C) for the norms with a channel axis; LayerNorm and RMSNorm
pool trailing axes and need none), dtypes in `_tensor`, `param_dtype` and `to_numpy`,
gradients in `recording`; momentum is translated by the template, from the conventions.
Names: Keras calls weight and bias `gamma` and `beta` (RMSNorm's weight `scale`), eps
`epsilon` (`variance_epsilon` in tf.nn), the running statistics `moving_mean` and
`moving_variance`, num_groups `groups`, and normalized_shape is the list of trailing `axis`.
"TensorFlow's default" means the argument is not passed at all.

TensorFlow and Keras are imported lazily, so that this module imports without them.
"""

from __future__ import annotations

import contextlib
import functools
import math
from collections.abc import Iterator
from typing import Any

import numpy as np

from backends.framework import (
    DEFAULT,
    FrameworkBackend,
    FrameworkRun,
    Gradient,
    Requirement,
    given,
)
from backends.protocol import Conventions, NormInputs

_QUIET = ("TF_CPP_MIN_LOG_LEVEL", "2")
TENSORFLOW = Requirement("tensorflow", "tensorflow-cpu==2.21.0", environment=(_QUIET,))
#: Keras 3 comes with TensorFlow; on TensorFlow's backend unless KERAS_BACKEND says otherwise.
KERAS = Requirement(
    "keras", "tensorflow-cpu==2.21.0", environment=(_QUIET, ("KERAS_BACKEND", "tensorflow"))
)
#: The norms with a channel axis: TensorFlow wants it last.
CHANNEL_NORMS = frozenset({"batch_norm", "instance_norm", "group_norm"})
KERAS_NORMS = frozenset({"batch_norm", "layer_norm", "instance_norm", "group_norm", "rms_norm"})


_NOTES = {
    "zero variance, eps = 0": "nan on every code path: rsqrt(0) = inf, then "
    "x * inf - mean * inf (Keras, tf.nn.batch_normalization) or 0 * inf",
    "weight_norm": "not provided: TensorFlow and Keras 3 have no weight normalization",
}


class TensorFlowBackend(FrameworkBackend):
    """The translation between normspec's vocabulary and TensorFlow, shared by every variant."""

    requirements = (TENSORFLOW,)
    dtypes = ("float16", "bfloat16", "float32", "float64")
    trains = frozenset({"batch_norm"})

    # --- the translations, one place each ---------------------------------------------------

    def framework_axes(self, norm: str, ndim: int) -> tuple[int, ...]:
        """The permutation from normspec's layout to TensorFlow's: channels move last.

        (N, C, *spatial) -> (N, *spatial, C) for the norms with a channel axis; LayerNorm and
        RMSNorm pool the trailing axes in either layout and keep them.
        """
        if norm in CHANNEL_NORMS:
            return (0, *range(2, ndim), 1)
        return tuple(range(ndim))

    def to_framework(self, norm: str, array: np.ndarray) -> np.ndarray:
        """An input-like array (x, grad_y) in TensorFlow's layout."""
        return np.transpose(array, self.framework_axes(norm, np.ndim(array)))

    def from_framework(self, norm: str, array: np.ndarray) -> np.ndarray:
        """An output-like array (y, dL/dx) back in normspec's channels-first layout."""
        order = np.argsort(self.framework_axes(norm, np.ndim(array)))
        return np.ascontiguousarray(np.transpose(array, order))

    def param_dtype(self, dtype: np.dtype) -> np.dtype:
        """The dtype the op takes its parameters and running statistics in."""
        return dtype

    def _tensor(self, array: np.ndarray, dtype: np.dtype) -> Any:
        """A constant in the TensorFlow dtype of the NumPy `dtype` (ml_dtypes' bfloat16 is
        TensorFlow's own NumPy bfloat16 type, so every float dtype converts directly)."""
        return TENSORFLOW.load().constant(np.asarray(array, dtype=dtype))

    def input_tensor(self, norm: str, array: np.ndarray, dtype: np.dtype) -> Any:
        """An input-like array (x, grad_y, a batch) as a constant in TensorFlow's layout."""
        return self._tensor(self.to_framework(norm, array), dtype)

    def parameter_tensors(
        self, norm: str, weight: np.ndarray | None, bias: np.ndarray | None, dtype: np.dtype
    ) -> tuple[Any, Any]:
        """weight and bias as constants in `param_dtype`; a missing one of the pair is 1 or 0,
        as Keras initializes it (RMSNorm has no bias)."""
        if weight is None and bias is None:
            return None, None
        dtype = self.param_dtype(dtype)
        shape = np.shape(weight if weight is not None else bias)
        weight = self._tensor(np.ones(shape) if weight is None else weight, dtype)
        if norm == "rms_norm":
            return weight, None
        return weight, self._tensor(np.zeros(shape) if bias is None else bias, dtype)

    def statistics_tensor(self, array: np.ndarray, dtype: np.dtype) -> Any:
        """A running statistic as a constant in `param_dtype`."""
        return self._tensor(array, self.param_dtype(dtype))

    def to_numpy(self, tensor: Any, dtype: np.dtype) -> np.ndarray:
        """A C-ordered NumPy copy of `tensor` in `dtype`."""
        return np.array(tensor.numpy(), dtype=dtype, order="C")

    # --- how TensorFlow computes ------------------------------------------------------------

    @contextlib.contextmanager
    def recording(self, tensors: list[Any]) -> Iterator[Gradient]:
        """A GradientTape that watches `tensors` (the variables of a layer watch themselves)."""
        with TENSORFLOW.load().GradientTape() as tape:
            tape.watch(tensors)
            yield lambda y, sources, grad_y: tape.gradient(y, sources, output_gradients=grad_y)


class KerasBackend(TensorFlowBackend):
    """The Keras 3 layers on the TensorFlow backend, one cached layer per configuration.

    BatchNormalization, LayerNormalization, GroupNormalization and RMSNormalization;
    InstanceNorm is GroupNormalization with one group per channel (Keras has no InstanceNorm
    layer). Each layer's dtype policy is the input's dtype, so its weights and moving
    statistics are held in that dtype.
    """

    name = "tensorflow"
    requirements = (TENSORFLOW, KERAS)
    conventions = Conventions(
        # The constructor defaults of keras/src/layers/normalization/*.py (Keras 3.15).
        default_eps={
            "batch_norm": 1e-3,
            "layer_norm": 1e-3,
            "instance_norm": 1e-3,
            "group_norm": 1e-3,
            "rms_norm": 1e-6,
            "weight_norm": None,
        },
        # moving = moving * momentum + batch * (1 - momentum): BatchNormalization.call
        momentum_weighs="old",
        default_momentum=0.99,
        # keras.ops.moments is tf.nn.moments, the biased variance, and BatchNormalization
        # feeds it to moving_variance unchanged (observed: one step of a 2-sample batch)
        running_var_estimators=("biased",),
        cumulative_average=False,
        layout="channels_last",
        default_affine=True,
        zero_variance_zero_eps="nan",
        notes={
            **_NOTES,
            "instance_norm": "GroupNormalization(groups=C): Keras has no InstanceNorm layer, "
            "hence no InstanceNorm with running statistics; its default eps is "
            "GroupNormalization's",
            "rms_norm": "RMSNormalization always has a `scale` and never a bias (ones without "
            "affine parameters)",
            "dtypes": "each layer's dtype policy is the input's dtype; every layer computes "
            "float16 and bfloat16 in float32 and casts the result back",
            "eps and momentum": "read from the layer's `epsilon` and `momentum` attributes at "
            "call time, so one cached layer serves every eps and momentum",
        },
    )

    def __init__(self) -> None:
        # Built once per configuration and reused: building a layer costs more than calling
        # it. Bound here so that a subclass's builder is the one cached.
        self._layer = functools.lru_cache(maxsize=64)(self._build_layer)

    @functools.cached_property
    def norms(self) -> frozenset[str]:  # type: ignore[override]
        """KERAS_NORMS, less RMSNorm under a Keras without RMSNormalization."""
        try:
            keras = KERAS.load()
        except ImportError:
            return KERAS_NORMS
        if hasattr(keras.layers, "RMSNormalization"):
            return KERAS_NORMS
        return KERAS_NORMS - {"rms_norm"}

    def unavailable_reason(self) -> str | None:
        reason = super().unavailable_reason()
        if reason is None and KERAS.load().config.backend() != "tensorflow":
            return (
                f"keras runs on {KERAS.load().config.backend()!r}, not tensorflow: "
                f"set KERAS_BACKEND=tensorflow"
            )
        return reason

    def accumulation_dtype(self, dtype: str) -> str:
        # Every Keras norm computes in result_type(dtype, "float32"): BatchNormalization.call
        # and GroupNormalization._apply_normalization ("prone to overflow with float16/
        # bfloat16 inputs, so we upcast to float32"), and keras/src/ops/nn.py
        # _layer_normalization and _rms_normalization ("computes in at least float32").
        return "float32" if dtype in ("float16", "bfloat16") else dtype

    def _build_layer(
        self,
        norm: str,
        ndim: int,
        features: tuple[int, ...],
        num_groups: int | None,
        affine: bool,
        dtype: str,
        defaults: bool,
    ) -> Any:
        """A built layer for inputs of rank `ndim` whose trailing axes are `features`.

        With `defaults` the layer keeps Keras's own epsilon and momentum: no call sets them.
        """
        layers = KERAS.load().layers
        trailing = list(range(ndim - len(features), ndim))
        axis = DEFAULT if len(features) == 1 else trailing  # Keras's default axis is -1
        affine_args = {"center": affine, "scale": affine}
        if norm == "batch_norm":
            layer = layers.BatchNormalization(**affine_args, dtype=dtype)
        elif norm in ("group_norm", "instance_norm"):
            groups = features[0] if norm == "instance_norm" else num_groups
            layer = layers.GroupNormalization(groups=groups, **affine_args, dtype=dtype)
        elif norm == "layer_norm":
            layer = layers.LayerNormalization(**given(axis=axis), **affine_args, dtype=dtype)
        elif norm == "rms_norm":
            layer = layers.RMSNormalization(**given(axis=axis), dtype=dtype)
        else:
            raise ValueError(f"{self.name} does not provide {norm!r}")
        # The weights depend on the feature axes only: any batch and spatial sizes reuse it.
        layer.build((None,) * (ndim - len(features)) + features)
        return layer

    def _layer_for(
        self,
        norm: str,
        x: Any,
        *,
        affine: bool,
        defaults: bool,
        normalized_shape: tuple[int, ...] | None = None,
        num_groups: int | None = None,
    ) -> Any:
        """The cached layer for this configuration (x in TensorFlow's layout)."""
        if norm in ("layer_norm", "rms_norm"):
            features = tuple(normalized_shape)
        else:
            features = (x.shape[-1],)
        groups = num_groups if norm == "group_norm" else None
        return self._layer(norm, x.ndim, features, groups, affine, x.dtype.name, defaults)

    @staticmethod
    def _variables(norm: str, layer: Any) -> tuple[Any, Any]:
        """The layer's (weight, bias) variables: (gamma, beta), RMSNorm's (scale, None)."""
        if norm == "rms_norm":
            return layer.scale, None
        return getattr(layer, "gamma", None), getattr(layer, "beta", None)

    def _configure(self, layer: Any, eps: Any, momentum: Any = DEFAULT) -> None:
        """Set this call's eps and momentum; Keras reads both attributes at call time."""
        if eps is not DEFAULT:
            layer.epsilon = eps
        if momentum is not DEFAULT:
            layer.momentum = momentum

    def _load(self, norm, layer, weight, bias, running_mean=None, running_var=None) -> None:
        """Write this call's parameters and moving statistics into the cached layer."""
        weight_variable, bias_variable = self._variables(norm, layer)
        if weight is not None:
            weight_variable.assign(weight)
        if bias is not None:
            bias_variable.assign(bias)
        if running_mean is not None:
            layer.moving_mean.assign(running_mean)
            layer.moving_variance.assign(running_var)

    def call(
        self, norm: str, inputs: NormInputs, x: Any, weight: Any, bias: Any
    ) -> tuple[Any, tuple[Any, Any, Any]]:
        """y by the cached layer loaded with this call's state, and its variables as the
        gradients' sources."""
        if norm == "instance_norm" and not inputs.training:
            raise ValueError(f"{self.name}: Keras has no InstanceNorm with running statistics")
        evaluation = norm == "batch_norm" and not inputs.training
        layer = self._layer_for(
            norm,
            x,
            affine=weight is not None,
            defaults=inputs.eps is DEFAULT,
            normalized_shape=inputs.normalized_shape,
            num_groups=inputs.num_groups,
        )
        self._configure(layer, inputs.eps)
        if evaluation:
            self._load(norm, layer, weight, bias, inputs.running_mean, inputs.running_var)
        else:
            self._load(norm, layer, weight, bias)
        y = layer(x, training=not evaluation) if norm == "batch_norm" else layer(x)
        return y, (x, *self._variables(norm, layer))

    def run_training(self, norm: str, run: FrameworkRun) -> tuple[list[Any], Any, Any, int]:
        """The cached layer, loaded with the run's state, once per batch with training=True;
        Keras counts no batches."""
        layer = self._layer_for(
            norm, run.batches[0], affine=run.weight is not None, defaults=run.eps is DEFAULT
        )
        self._configure(layer, run.eps, run.momentum)
        self._load(norm, layer, run.weight, run.bias, run.running_mean, run.running_var)
        outputs = [layer(x, training=True) for x in run.batches]
        return outputs, layer.moving_mean, layer.moving_variance, len(run.batches)


class TfNnBackend(TensorFlowBackend):
    """The tf.nn ops, composed the way a TensorFlow user writes each norm.

    Each norm is tf.nn.moments over its pooled axes (in TensorFlow's channels-last layout)
    followed by tf.nn.batch_normalization with those statistics; GroupNorm first reshapes the
    channels into (groups, channels per group). TensorFlow has no RMSNorm op: it is written
    with tf ops, x * rsqrt(mean(x^2) + eps). Running statistics are updated the way
    assign_moving_average does it. This composition is the only normalization arithmetic
    in the adapters: it is what a tf.nn user writes, and so what this backend tests.
    """

    name = "tensorflow-nn"
    norms = KERAS_NORMS
    conventions = Conventions(
        # tf.nn.batch_normalization(x, mean, variance, offset, scale, variance_epsilon):
        # every argument is required, eps included; so is the decay of a moving average.
        default_eps={norm: None for norm in (*KERAS_NORMS, "weight_norm")},
        momentum_weighs="old",  # the decay of assign_moving_average weighs the old value
        default_momentum=None,
        running_var_estimators=("biased",),  # tf.nn.moments: "sample variance, not unbiased"
        cumulative_average=False,
        layout="channels_last",
        default_affine=False,
        zero_variance_zero_eps="nan",
        notes={
            **_NOTES,
            "defaults": "none: variance_epsilon is a required argument of "
            "tf.nn.batch_normalization and the moving-average decay has no default, so "
            "forward_with_defaults and train_with_defaults raise TypeError",
            "affine": "offset and scale are required arguments that may be None",
            "running statistics": "moving -= (1 - decay) * (moving - batch), with "
            "decay = momentum weighing the old value, as assign_moving_average "
            "(tensorflow/python/training/moving_averages.py) without zero-debiasing",
            "dtypes": "tf.nn.moments computes float16 in float32 and casts mean and "
            "variance back to float16, bfloat16 in bfloat16; tf.nn.batch_normalization "
            "computes in the input dtype, eps included",
        },
    )

    def accumulation_dtype(self, dtype: str) -> str:
        # tf.nn.moments upcasts float16 alone and casts its mean and variance back
        # (tensorflow/python/ops/nn_impl.py, moments); the CPU reductions accumulate half
        # types in float32 but round each result to the input dtype; tf.nn.batch_normalization
        # and the moving average compute in the input dtype. Every step ends in the input dtype.
        return dtype

    def pooled_axes(self, norm: str, ndim: int, normalized_ndim: int = 0) -> list[int]:
        """The axes tf.nn.moments reduces, in TensorFlow's layout (GroupNorm: of the grouped
        view (N, *spatial, G, C/G), one rank higher)."""
        if norm == "batch_norm":
            return list(range(ndim - 1))
        if norm == "instance_norm":
            return list(range(1, ndim - 1))
        if norm == "group_norm":
            return [*range(1, ndim - 1), ndim]
        return list(range(ndim - normalized_ndim, ndim))

    def _standardize(self, x: Any, axes: list[int], scale: Any, offset: Any, eps: float) -> Any:
        """tf.nn.moments over `axes`, then tf.nn.batch_normalization with those statistics."""
        tf = TENSORFLOW.load()
        mean, variance = tf.nn.moments(x, axes, keepdims=True)
        return tf.nn.batch_normalization(x, mean, variance, offset, scale, eps)

    def _require(self, value: Any, what: str = "variance_epsilon") -> None:
        """Raise TypeError where a required argument is left to a default tf.nn lacks."""
        if value is DEFAULT:
            raise TypeError(f"{self.name}: tf.nn has no default {what}: it is a required argument")

    def group_shape(self, channels: int, num_groups: int) -> tuple[int, int]:
        """(G, C/G): the channels-last reshape (..., C) -> (..., G, C/G) puts channels
        g * C/G .. (g + 1) * C/G - 1 in group g, as GroupNorm defines its groups."""
        return num_groups, channels // num_groups

    def update_moving_average(self, moving: Any, batch: Any, decay: float) -> None:
        """assign_moving_average (tensorflow/python/training/moving_averages.py) without
        zero-debiasing: variable -= (1 - decay) * (variable - value)."""
        moving.assign_sub((moving - batch) * (1.0 - decay))

    def call(
        self, norm: str, inputs: NormInputs, x: Any, weight: Any, bias: Any
    ) -> tuple[Any, tuple[Any, Any, Any]]:
        """y composed of tf.nn ops, and (x, weight, bias) themselves as the gradients' sources."""
        tf = TENSORFLOW.load()
        eps = inputs.eps
        self._require(eps)
        k = len(inputs.normalized_shape or ())
        if norm == "batch_norm" and not inputs.training:
            mean = self._tensor(inputs.running_mean, inputs.x.dtype)
            variance = self._tensor(inputs.running_var, inputs.x.dtype)
            y = tf.nn.batch_normalization(x, mean, variance, bias, weight, eps)
        elif norm == "instance_norm" and not inputs.training:
            raise ValueError(f"{self.name}: tf.nn has no InstanceNorm with running statistics")
        elif norm == "rms_norm":
            axes = self.pooled_axes(norm, x.ndim, k)
            y = x * tf.math.rsqrt(tf.reduce_mean(tf.square(x), axes, keepdims=True) + eps)
            if weight is not None:
                y = y * weight
        elif norm == "group_norm":
            shape = self.group_shape(x.shape[-1], inputs.num_groups)
            grouped = tf.reshape(x, (*x.shape[:-1], *shape))
            scale = None if weight is None else tf.reshape(weight, shape)
            offset = None if bias is None else tf.reshape(bias, shape)
            axes = self.pooled_axes(norm, x.ndim)
            y = tf.reshape(self._standardize(grouped, axes, scale, offset, eps), x.shape)
        else:
            y = self._standardize(x, self.pooled_axes(norm, x.ndim, k), weight, bias, eps)
        return y, (x, weight, bias)

    def run_training(self, norm: str, run: FrameworkRun) -> tuple[list[Any], Any, Any, int]:
        """tf.nn.moments and tf.nn.batch_normalization per batch, the moving averages updated
        as assign_moving_average does; tf.nn counts no batches."""
        tf = TENSORFLOW.load()
        self._require(run.eps)
        self._require(run.momentum, "moving-average decay")
        moving_mean, moving_variance = tf.Variable(run.running_mean), tf.Variable(run.running_var)
        outputs = []
        for x in run.batches:
            mean, variance = tf.nn.moments(x, self.pooled_axes(norm, x.ndim))
            outputs.append(
                tf.nn.batch_normalization(x, mean, variance, run.bias, run.weight, run.eps)
            )
            self.update_moving_average(moving_mean, mean, run.momentum)
            self.update_moving_average(moving_variance, variance, run.momentum)
        return outputs, moving_mean, moving_variance, len(run.batches)


class TfFusedBackend(TensorFlowBackend):
    """tf.compat.v1.nn.fused_batch_norm: the FusedBatchNormV3 kernel, batch_norm only.

    The kernel takes 4-D (NHWC) and 5-D (NDHWC) inputs; 2-D and 3-D ones are viewed as 4-D,
    (N, C) as (N, 1, 1, C) and (N, L, C) as (N, L, 1, C), which pools the same values per
    channel. Its scale, offset and running statistics are float32 whatever the input dtype.
    """

    name = "tensorflow-fused"
    norms = frozenset({"batch_norm"})
    dtypes = ("float16", "bfloat16", "float32")  # FusedBatchNormV3's T: half, bfloat16, float
    conventions = Conventions(
        default_eps={
            "batch_norm": 1e-3,  # fused_batch_norm(..., epsilon=0.001, ...)
            "layer_norm": None,
            "instance_norm": None,
            "group_norm": None,
            "rms_norm": None,
            "weight_norm": None,
        },
        # running = (1 - factor) * running + factor * batch: exponential_avg_factor weighs
        # the new statistic; its default 1.0 returns the batch's own statistics
        momentum_weighs="new",
        default_momentum=1.0,
        # observed: the running variance is the Bessel-corrected batch variance, while the
        # output is normalized with the biased one
        running_var_estimators=("unbiased",),
        cumulative_average=False,
        layout="channels_last",
        default_affine=True,
        zero_variance_zero_eps="nan",
        notes={
            **_NOTES,
            "norms": "batch_norm only: the kernel normalizes per channel",
            "affine": "scale and offset are required tensors: ones and zeros without affine",
            "ranks": "4-D as NHWC and 5-D as NDHWC; 2-D and 3-D viewed as 4-D NHWC",
            "dtypes": "x in float16, bfloat16 or float32 (no float64); scale, offset and "
            "the running statistics in float32, which the kernel computes in",
        },
    )

    def accumulation_dtype(self, dtype: str) -> str:
        # FusedBatchNormV3 computes in its attr U, float for every T it accepts
        # (tensorflow/core/ops/nn_ops.cc; the CPU kernel fused_batch_norm_op.cc).
        return "float32" if dtype in ("float16", "bfloat16") else dtype

    def param_dtype(self, dtype: np.dtype) -> np.dtype:
        return np.dtype(np.float32)

    def fused_view(self, x: Any) -> tuple[Any, str]:
        """x as the kernel takes it, and its data_format: 2-D and 3-D inputs as 4-D."""
        tf = TENSORFLOW.load()
        if x.ndim in (4, 5):
            return x, "NHWC" if x.ndim == 4 else "NDHWC"
        n, c = x.shape[0], x.shape[-1]
        return tf.reshape(x, (n, math.prod(x.shape[1:-1]), 1, c)), "NHWC"

    def _fused(
        self,
        x: Any,
        weight: Any,
        bias: Any,
        mean: Any,
        variance: Any,
        *,
        training: bool,
        eps: Any,
        momentum: Any = DEFAULT,
    ) -> tuple[Any, Any, Any]:
        """One fused_batch_norm call: (y in the shape of x, running mean, running variance)."""
        tf = TENSORFLOW.load()
        c = x.shape[-1]
        view, data_format = self.fused_view(x)
        y, running_mean, running_variance = tf.compat.v1.nn.fused_batch_norm(
            view,
            tf.ones(c) if weight is None else weight,
            tf.zeros(c) if bias is None else bias,
            mean,
            variance,
            data_format=data_format,
            is_training=training,
            **given(epsilon=eps, exponential_avg_factor=momentum),
        )
        return tf.reshape(y, x.shape), running_mean, running_variance

    def call(
        self, norm: str, inputs: NormInputs, x: Any, weight: Any, bias: Any
    ) -> tuple[Any, tuple[Any, Any, Any]]:
        """y by the fused kernel, and (x, weight, bias) themselves as the gradients' sources."""
        mean = variance = None
        if not inputs.training:
            mean = self._tensor(inputs.running_mean, np.float32)
            variance = self._tensor(inputs.running_var, np.float32)
        y, _, _ = self._fused(
            x, weight, bias, mean, variance, training=inputs.training, eps=inputs.eps
        )
        return y, (x, weight, bias)

    def run_training(self, norm: str, run: FrameworkRun) -> tuple[list[Any], Any, Any, int]:
        """The fused kernel once per batch, each step fed the running statistics of the one
        before (they are float32, `param_dtype`); the kernel counts no batches."""
        mean, variance = run.running_mean, run.running_var
        outputs = []
        for x in run.batches:
            y, mean, variance = self._fused(
                x,
                run.weight,
                run.bias,
                mean,
                variance,
                training=True,
                eps=run.eps,
                momentum=run.momentum,
            )
            outputs.append(y)
        return outputs, mean, variance, len(run.batches)
