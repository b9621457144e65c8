"""The spec against vectors no one here wrote: ONNX's node test data for its normalization
operators, run through normspec's spec and compared within the tolerance model.

The onnx package ships, for each operator test, `model.onnx` (one node and its attributes)
and `test_data_set_*/input_*.pb`, `output_*.pb` (onnx 1.22 is the last release that ships
them; later ones build the same cases in memory, which `onnx_cases` reads as well). Every
case of BatchNormalization (inference and training mode), LayerNormalization,
GroupNormalization, InstanceNormalization and RMSNormalization is loaded, translated into
normspec's vocabulary (attributes at their ONNX defaults where the node leaves them out), and
each output the spec defines must agree with ONNX's within the bound for a float32
computation: ONNX computed its expected outputs with NumPy in float32. The `_expanded` cases
are the same vectors for the operator's function body; they carry no attributes of their
own, so they are read with the node of the case they expand.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from normspec import reference
from normspec.tolerance import Precision
from normspec.vocabulary import NormInputs, TrainingRun

onnx = pytest.importorskip("onnx", reason="onnx is not installed: pip install onnx==1.22.0")
from onnx import numpy_helper  # noqa: E402
from onnx.backend.test.loader import load_model_tests  # noqa: E402

#: The node tests of each normalization operator, by name.
CASE_NAMES = re.compile(
    r"^test_(batchnorm|layer_normalization|group_normalization|instancenorm|rms_normalization)"
)
NORM_OF = {
    "BatchNormalization": "batch_norm",
    "LayerNormalization": "layer_norm",
    "GroupNormalization": "group_norm",
    "InstanceNormalization": "instance_norm",
    "RMSNormalization": "rms_norm",
}
#: ONNX's expected outputs are NumPy float32 computations.
FLOAT32 = Precision(storage="float32", accumulation="float32")


@dataclass(frozen=True)
class OnnxCase:
    """One data set of one node test: the node, its inputs and ONNX's expected outputs."""

    name: str
    node: object  # onnx.NodeProto
    opset: int
    inputs: tuple[np.ndarray, ...]
    outputs: tuple[np.ndarray, ...]

    def attribute(self, name: str) -> object:
        """The node's attribute, or the operator's default at the model's opset."""
        for attribute in self.node.attribute:
            if attribute.name == name:
                return onnx.helper.get_attribute_value(attribute)
        schema = onnx.defs.get_schema(self.node.op_type, self.opset)
        default = schema.attributes[name].default_value
        return onnx.helper.get_attribute_value(default)


def _norm_node(model) -> tuple[object, int] | None:
    """The model's normalization node and opset, if it has exactly one node and it is one."""
    nodes = list(model.graph.node)
    if len(nodes) != 1 or nodes[0].op_type not in NORM_OF:
        return None
    return nodes[0], next(o.version for o in model.opset_import if o.domain in ("", "ai.onnx"))


def _read(directory: Path, prefix: str) -> tuple[np.ndarray, ...]:
    files = sorted(directory.glob(f"{prefix}_*.pb"), key=lambda p: int(p.stem.split("_")[1]))
    tensors = []
    for path in files:
        tensor = onnx.TensorProto()
        tensor.ParseFromString(path.read_bytes())
        tensors.append(numpy_helper.to_array(tensor))
    return tuple(tensors)


def _data_sets(case) -> tuple[object, list[tuple[tuple, tuple]]]:
    """The case's model and (inputs, outputs) per data set: from the shipped files, or built
    in memory by an onnx that no longer ships them."""
    if case.model_dir is not None:
        directory = Path(case.model_dir)
        model = onnx.load(str(directory / "model.onnx"))
        sets = [
            (_read(d, "input"), _read(d, "output"))
            for d in sorted(directory.glob("test_data_set_*"))
        ]
        return model, sets
    return case.model, [(tuple(i), tuple(o)) for i, o in case.data_sets]


def onnx_cases() -> list[OnnxCase]:
    """Every data set of every normalization node test the onnx package has."""
    loaded = {c.name: c for c in load_model_tests(kind="node") if CASE_NAMES.match(c.name)}
    models = {name: _data_sets(case) for name, case in loaded.items()}
    cases = []
    for name, (model, sets) in sorted(models.items()):
        found = _norm_node(model)
        if found is None:  # an expanded function body: the node is its unexpanded twin's
            twin = re.sub(r"_expanded(_ver\d+)?$", "", name)
            found = _norm_node(models[twin][0])
        node, opset = found
        for index, (inputs, outputs) in enumerate(sets):
            label = name if len(sets) == 1 else f"{name}[{index}]"
            cases.append(OnnxCase(label, node, opset, inputs, outputs))
    return cases


CASES = onnx_cases()


@dataclass(frozen=True)
class Translated:
    """An ONNX case in normspec's vocabulary: the expected outputs with their bounds, each
    paired with the ONNX output it is compared to."""

    norm: str
    described: str
    comparisons: tuple[tuple[str, np.ndarray, reference.Expected], ...]


def translate(case: OnnxCase) -> Translated:
    """The spec's outputs for an ONNX node, named as ONNX names them."""
    norm = NORM_OF[case.node.op_type]
    eps = float(case.attribute("epsilon"))  # a float32 attribute, read as the value it holds
    x, *params = case.inputs
    described = f"{case.node.op_type}-{case.opset} x{x.shape} {x.dtype} epsilon={eps!r}"
    if norm == "batch_norm":
        scale, bias, mean, var = params
        if case.attribute("training_mode"):
            momentum = float(case.attribute("momentum"))
            run = TrainingRun(
                (x,), eps, momentum, "old", "biased", mean, var, weight=scale, bias=bias
            )
            expected = reference.training(norm, run, FLOAT32)
            comparisons = (
                ("Y", case.outputs[0], expected.outputs[0]),
                ("running_mean", case.outputs[1], expected.running_mean),
                ("running_var", case.outputs[2], expected.running_var),
            )
            return Translated(norm, f"{described} training momentum={momentum!r}", comparisons)
        inputs = NormInputs(x, eps, scale, bias, training=False, running_mean=mean, running_var=var)
    elif norm in ("layer_norm", "rms_norm"):
        axis = int(case.attribute("axis")) % x.ndim
        bias = params[1] if norm == "layer_norm" and len(params) > 1 else None
        inputs = NormInputs(x, eps, params[0], bias, normalized_shape=tuple(x.shape[axis:]))
        described += f" axis={axis}"
    elif norm == "group_norm":
        groups = int(case.attribute("num_groups"))
        inputs = NormInputs(x, eps, params[0], params[1], num_groups=groups)
        described += f" num_groups={groups}"
    else:
        inputs = NormInputs(x, eps, params[0], params[1])
    expected = reference.forward(norm, inputs, FLOAT32)
    return Translated(norm, described, (("Y", case.outputs[0], expected),))


def test_the_onnx_package_has_a_node_test_for_every_normalization_operator():
    """46 node tests and 59 expanded ones in onnx 1.22; at least one per operator, and every
    one of them read."""
    operators = {case.node.op_type for case in CASES}
    assert operators == set(NORM_OF), f"operators with node tests: {sorted(operators)}"
    assert len(CASES) >= 46


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_the_spec_agrees_with_onnx_node_test_data(case):
    """Every output of the ONNX case (Y; and running_mean, running_var of a training step)
    equals the spec's within the tolerance model's bound for a float32 computation."""
    translated = translate(case)
    for name, observed, expected in translated.comparisons:
        observed64 = np.asarray(observed, dtype=np.float64)
        assert observed64.shape == expected.value.shape, (
            f"{case.name}: {name} has shape {observed64.shape}, the spec's {expected.value.shape}"
        )
        error = np.abs(observed64 - expected.value)
        # error / bound, where a bound of 0 allows no error at all
        ratio = np.divide(
            error, expected.bound, out=np.where(error > 0, np.inf, 0.0), where=expected.bound > 0
        )
        worst = np.unravel_index(np.argmax(ratio), ratio.shape)
        assert ratio[worst] <= 1, (
            f"{case.name} ({translated.described}): ONNX's {name}{list(worst)} = "
            f"{observed64[worst]!r}, the spec's {expected.value[worst]!r}, error "
            f"{error[worst]:.3g} > bound {expected.bound[worst]:.3g} "
            f"({ratio[worst]:.3g} bounds)"
        )
