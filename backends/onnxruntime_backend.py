"""The ONNX Runtime adapter: one small ONNX graph per norm and configuration, on the CPU
execution provider.

What a model exported to ONNX runs on in production: `BatchNormalization` (opset 15, in
inference and in training mode), `LayerNormalization` (17), `InstanceNormalization` (22),
`GroupNormalization` (21, per-channel scale and bias) and `RMSNormalization` (23), each a
one-node graph in a model of opset 23 whose inputs have no fixed shape. ONNX has no
WeightNorm operator, and ONNX Runtime's inference package computes no gradients: both are
"not provided".

The layout is ONNX's, channels-first, as normspec's. Names: eps is the `epsilon` attribute,
momentum `momentum`, weight and bias the `scale` and `B` (`bias`) inputs, the running
statistics `input_mean` and `input_var`, normalized_shape the first normalized `axis`
(negative, so one graph serves every rank), num_groups `num_groups`. Attributes are part of
the graph, so a session is built once per (norm, dtype, attributes, inputs present) and
cached; shapes are dynamic. onnx and onnxruntime are imported lazily.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from backends.framework import (
    DEFAULT,
    FrameworkBackend,
    FrameworkRun,
    Gradient,
    Requirement,
)
from backends.protocol import Conventions, Gradients, NormInputs, Refused

ONNXRUNTIME = Requirement("onnxruntime", "onnxruntime==1.32.0")
ONNX = Requirement("onnx", "onnx==1.22.0")
OPSET = 23
#: The operator of each norm, and the names of its inputs after x.
OPERATORS = {
    "batch_norm": ("BatchNormalization", ("scale", "B", "input_mean", "input_var")),
    "layer_norm": ("LayerNormalization", ("Scale", "B")),
    "instance_norm": ("InstanceNormalization", ("scale", "B")),
    "group_norm": ("GroupNormalization", ("scale", "bias")),
    "rms_norm": ("RMSNormalization", ("scale",)),
}
#: The ONNX element type of each NumPy dtype the CPU provider runs.
_ELEMENT_TYPES = {"float16": 10, "float32": 1, "float64": 11}  # TensorProto.FLOAT16, ...
#: ONNX's attribute defaults, as the 32-bit floats the format stores them in (AttributeProto.f).
DEFAULT_EPS = float(np.float32(1e-5))
DEFAULT_MOMENTUM = float(np.float32(0.9))


class OnnxRuntimeBackend(FrameworkBackend):
    """One-node ONNX graphs on onnxruntime's CPU execution provider, a session per graph."""

    name = "onnxruntime"
    requirements = (ONNXRUNTIME, ONNX)
    norms = frozenset(OPERATORS)
    #: The dtypes every operator runs on the CPU provider; float64 as well for the operators
    #: in DOUBLE (see `supports`). No bfloat16 kernel: NOT_IMPLEMENTED.
    dtypes = ("float16", "float32")
    DOUBLE = frozenset(OPERATORS) - {"instance_norm"}
    trains = frozenset({"batch_norm"})
    conventions = Conventions(
        # the operators' `epsilon` attribute default, 1e-5 as a float32
        default_eps={**dict.fromkeys(OPERATORS, DEFAULT_EPS), "weight_norm": None},
        # running_mean = input_mean * momentum + current_mean * (1 - momentum)
        momentum_weighs="old",
        default_momentum=DEFAULT_MOMENTUM,
        # BatchNormalization-15: current_var = ReduceVar(X), the population variance
        running_var_estimators=("biased",),
        cumulative_average=False,
        layout="channels_first",
        default_affine=True,
        zero_variance_zero_eps="nan",
        notes={
            "attributes": "epsilon and momentum are 32-bit float attributes "
            "(AttributeProto.f): a graph normalizes with float32(eps); a float64 call whose "
            "eps or momentum has no exact float32 value is refused, since no ONNX graph can "
            "carry it. The defaults are float32(1e-5) and float32(0.9)",
            "affine": "scale and bias are required inputs (LayerNormalization's B is optional): "
            "ones and zeros without affine parameters",
            "dtypes": "float16 and float32 for every operator, float64 for all but "
            "InstanceNormalization, which has no double kernel on the CPU provider; no "
            "bfloat16 kernel. LayerNormalization, GroupNormalization and RMSNormalization "
            "compute float16 in their stash_type, float32 by default; for float64 inputs the "
            "adapter sets stash_type to DOUBLE, without which a double graph computes in float32",
            "instance_norm": "InstanceNormalization has no running statistics: evaluation mode "
            "is not available",
            "training": "BatchNormalization with training_mode=1 returns the running mean and "
            "variance after the step; the adapter feeds them to the next step. Forward in "
            "training mode runs the same graph with running statistics 0 and 1",
            "weight_norm": "not provided: ONNX has no WeightNorm operator",
            "gradients": "not provided: onnxruntime's inference package computes no gradients",
            "opsets": "one model of opset 23: BatchNormalization-15, LayerNormalization-17, "
            "InstanceNormalization-22, GroupNormalization-21 (scale and bias per channel), "
            "RMSNormalization-23. GroupNormalization and RMSNormalization run as their ONNX "
            "function bodies where the CPU provider has no kernel",
        },
    )

    def __init__(self) -> None:
        # A session per graph: building one costs more than running it.
        self._session = functools.lru_cache(maxsize=256)(self._build_session)

    def supports(self, norm: str, dtype: str) -> bool:
        """The dtypes of `dtypes` for every operator, and float64 for those in DOUBLE."""
        return norm in self.norms and (
            dtype in self.dtypes or (dtype == "float64" and norm in self.DOUBLE)
        )

    def accumulation_dtype(self, dtype: str) -> str:
        # LayerNormalization, GroupNormalization and RMSNormalization compute in stash_type,
        # float32 unless the adapter asks for double (float64 inputs); the CPU kernels of
        # BatchNormalization and InstanceNormalization compute float16 in float32.
        return "float32" if dtype == "float16" else dtype

    def check(self, norm: str, inputs: NormInputs) -> None:
        """Refuse a float64 eps that a 32-bit float attribute cannot hold (see "attributes")."""
        super().check(norm, inputs)
        _require_float32_attribute("epsilon", inputs.eps, inputs.x.dtype)

    def vjp(self, norm: str, inputs: NormInputs, grad_y: np.ndarray) -> Gradients:
        """Not provided: onnxruntime's inference package computes no gradients."""
        self.check(norm, inputs)
        import pytest  # lazily: a property reads this skip as "not provided"

        pytest.skip(f"not provided: {self.name} computes no gradients")

    # --- the graphs -------------------------------------------------------------------------

    def _build_session(
        self,
        norm: str,
        dtype: str,
        attributes: tuple[tuple[str, Any], ...],
        inputs: tuple[str, ...],
        outputs: int,
    ) -> Any:
        """A session running one `norm` node on inputs of `dtype` with these attributes."""
        onnx, ort = ONNX.load(), ONNXRUNTIME.load()
        helper = onnx.helper
        op, _ = OPERATORS[norm]
        element = _ELEMENT_TYPES[dtype]
        names = ("X", *inputs)
        results = ("Y", "running_mean", "running_var")[:outputs]
        node = helper.make_node(op, list(names), list(results), **dict(attributes))
        graph = helper.make_graph(
            [node],
            f"normspec_{norm}",
            [helper.make_tensor_value_info(n, element, None) for n in names],
            [helper.make_tensor_value_info(n, element, None) for n in results],
        )
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
        options = ort.SessionOptions()
        options.log_severity_level = 3  # errors only: no warnings on stderr per session
        return ort.InferenceSession(
            model.SerializeToString(), options, providers=["CPUExecutionProvider"]
        )

    def _attributes(
        self,
        norm: str,
        inputs: NormInputs,
        dtype: np.dtype,
        *,
        eps: Any,
        training: bool,
        momentum: Any = DEFAULT,
    ) -> tuple[tuple[str, Any], ...]:
        """The node's attributes: those given, and the layout's axis; DEFAULT is not set."""
        attributes: dict[str, Any] = {}
        if eps is not DEFAULT:
            attributes["epsilon"] = float(eps)
        if norm == "batch_norm" and training:
            attributes["training_mode"] = 1
            if momentum is not DEFAULT:
                attributes["momentum"] = float(momentum)
        if norm in ("layer_norm", "rms_norm"):
            attributes["axis"] = -len(inputs.normalized_shape)
        if norm == "group_norm":
            attributes["num_groups"] = inputs.num_groups
        if norm in ("layer_norm", "group_norm", "rms_norm") and np.dtype(dtype) == np.float64:
            attributes["stash_type"] = _ELEMENT_TYPES["float64"]
        return tuple(sorted(attributes.items()))

    def _run(self, norm: str, dtype: np.dtype, attributes, feeds: dict, outputs: int = 1):
        """Run the cached session of this graph on `feeds` (name -> array)."""
        session = self._session(norm, np.dtype(dtype).name, attributes, tuple(feeds)[1:], outputs)
        return session.run(None, feeds)

    # --- the template's hooks ---------------------------------------------------------------

    def input_tensor(self, norm: str, array: np.ndarray, dtype: np.dtype) -> np.ndarray:
        """NumPy arrays are onnxruntime's tensors: a C-ordered copy in `dtype`."""
        return np.array(array, dtype=dtype, order="C")

    def parameter_tensors(
        self, norm: str, weight: np.ndarray | None, bias: np.ndarray | None, dtype: np.dtype
    ) -> tuple[Any, Any]:
        """scale and bias in `dtype`; without affine parameters, ones and zeros (scale is a
        required input), made here from the channel count in `call`."""
        if weight is None and bias is None:
            return None, None
        shape = np.shape(weight if weight is not None else bias)
        weight = np.ones(shape, dtype) if weight is None else np.asarray(weight, dtype)
        if norm == "rms_norm":
            return weight, None
        return weight, np.zeros(shape, dtype) if bias is None else np.asarray(bias, dtype)

    def statistics_tensor(self, array: np.ndarray, dtype: np.dtype) -> np.ndarray:
        """A running statistic in the input dtype: BatchNormalization's input_mean and
        input_var share X's type."""
        return np.array(array, dtype=dtype)

    def to_numpy(self, tensor: Any, dtype: np.dtype) -> np.ndarray:
        return np.array(tensor, dtype=dtype, order="C")

    @contextlib.contextmanager
    def recording(self, tensors: list[Any]) -> Iterator[Gradient]:
        raise NotImplementedError("onnxruntime computes no gradients (see vjp)")
        yield

    def _parameters(self, norm: str, inputs: NormInputs, x: np.ndarray, weight, bias) -> list:
        """The node's inputs after X: scale and bias, ones and zeros when the call has none."""
        dtype = x.dtype
        if weight is None:
            shape = tuple(inputs.normalized_shape) if norm in ("layer_norm", "rms_norm") else None
            shape = shape or (x.shape[1],)
            weight, bias = np.ones(shape, dtype), np.zeros(shape, dtype)
        return [weight] if norm == "rms_norm" else [weight, bias]

    def call(
        self, norm: str, inputs: NormInputs, x: Any, weight: Any, bias: Any
    ) -> tuple[Any, tuple[Any, Any, Any]]:
        """Y of the norm's one-node graph; BatchNormalization in training mode is given
        running statistics 0 and 1, whose update it returns and the adapter discards."""
        if norm == "instance_norm" and not inputs.training:
            raise ValueError(f"{self.name}: InstanceNormalization has no running statistics")
        parameters = self._parameters(norm, inputs, x, weight, bias)
        outputs = 1
        if norm == "batch_norm":
            channels = x.shape[1]
            if inputs.training:
                running = (np.zeros(channels, x.dtype), np.ones(channels, x.dtype))
                outputs = 3
            else:
                running = (
                    self.statistics_tensor(inputs.running_mean, x.dtype),
                    self.statistics_tensor(inputs.running_var, x.dtype),
                )
            parameters += list(running)
        attributes = self._attributes(
            norm, inputs, x.dtype, eps=inputs.eps, training=inputs.training
        )
        _, names = OPERATORS[norm]
        feeds = dict(zip(("X", *names), (x, *parameters), strict=True))
        return self._run(norm, x.dtype, attributes, feeds, outputs)[0], (x, weight, bias)

    def run_training(self, norm: str, run: FrameworkRun) -> tuple[Sequence[Any], Any, Any, int]:
        """BatchNormalization with training_mode=1 once per batch, each step fed the running
        statistics the step before returned; ONNX counts no batches."""
        x = run.batches[0]
        _require_float32_attribute("epsilon", run.eps, x.dtype)
        _require_float32_attribute("momentum", run.momentum, x.dtype)  # in ONNX's meaning
        inputs = NormInputs(x)
        attributes = self._attributes(
            norm, inputs, x.dtype, eps=run.eps, training=True, momentum=run.momentum
        )
        scale, bias = self._parameters(norm, inputs, x, run.weight, run.bias)
        mean, var = run.running_mean, run.running_var
        outputs = []
        _, names = OPERATORS[norm]
        for batch in run.batches:
            feeds = dict(zip(("X", *names), (batch, scale, bias, mean, var), strict=True))
            y, mean, var = self._run(norm, x.dtype, attributes, feeds, 3)
            outputs.append(y)
        return outputs, mean, var, len(run.batches)


def _require_float32_attribute(name: str, value: Any, dtype: np.dtype) -> None:
    """Refused: a float64 call whose `value` a 32-bit float attribute would round."""
    if value is DEFAULT or value is None or np.dtype(dtype) != np.float64:
        return
    if float(np.float32(value)) != float(value):
        raise Refused(
            f"ONNX's {name} attribute is a 32-bit float: {value!r} has no exact float32 value, "
            f"so no ONNX graph normalizes a float64 input with it"
        )
