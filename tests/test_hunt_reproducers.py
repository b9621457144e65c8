"""The reproducer generator writes scripts that replay a call as normspec's adapter makes it.

A reproducer's verdict is only as good as its two halves: the framework call written out in
the script must be the call the adapter made, and the exact value written out in NumPy must be
the spec's. Both are checked here on healthy backends: a script generated for a call that is
within its bound must print its values and exit 0, for every family (torch's functional ops,
modules and channels_last memory; Keras, tf.nn and the fused kernel; an adapter called
through the protocol), every norm and every method (forward, VJP, training steps). A script
that made another call, or computed another exact value, would leave the bound and exit 1.
"""

from __future__ import annotations

import contextlib
import io
import runpy
from dataclasses import replace

import numpy as np
import pytest

from backends.registry import load_backend
from normspec.hunt import judge
from normspec.hunt.reproducers import generate
from normspec.hunt.reproducers.exact import exact_lines, sets_of
from properties.strategies import ArrayRecipe, Case, TrainingCase

R = ArrayRecipe


def _case(norm: str, dtype: str = "float32", training: bool = True) -> Case:
    """A small affine case of `norm` with every parameter drawn from a recipe."""
    shapes = {
        "batch_norm": ((4, 3, 2, 3), {}),
        "instance_norm": ((2, 3, 4, 2), {}),
        "group_norm": ((2, 4, 3, 2), {"num_groups": 2}),
        "layer_norm": ((3, 4, 5), {"normalized_shape": (4, 5)}),
        "rms_norm": ((3, 6), {"normalized_shape": (6,)}),
        "weight_norm": ((4, 3, 2), {"dim": 0}),
    }
    shape, fields = shapes[norm]
    if norm == "weight_norm":
        return Case(
            norm, R(shape, seed=3, offset=0.5), dtype, 0.0, weight=R((4, 1, 1), seed=4), **fields
        )
    params = (shape[1],) if norm not in ("layer_norm", "rms_norm") else fields["normalized_shape"]
    bias = None if norm == "rms_norm" else R(params, seed=5)
    if not training:
        fields |= {
            "training": False,
            "running_mean": R(params, seed=6),
            "running_var": R(params, seed=7),
        }
    return Case(
        norm,
        R(shape, "mixed", 11, 2.0, 3.0),
        dtype,
        1e-3,
        weight=R(params, seed=8),
        bias=bias,
        **fields,
    )


def _run_script(text: str, tmp_path, saved: dict) -> tuple[int, str]:
    """Run a generated script in this process (its framework is imported once): exit status
    and output."""
    path = tmp_path / "repro.py"
    path.write_text(text)
    if saved:
        np.savez(path.with_suffix(".npz"), **saved)
    output = io.StringIO()
    with contextlib.redirect_stdout(output):
        try:
            runpy.run_path(str(path), run_name="__main__")
        except SystemExit as done:
            return int(done.code or 0), output.getvalue()
    return 0, output.getvalue()


def _findings(backend_name: str, norm: str, method: str, case, tmp_path) -> list[dict]:
    """A finding per compared quantity of one healthy call, as the plugin would record it."""
    backend = load_backend(backend_name)
    reason = backend.unavailable_reason()
    if reason:
        pytest.skip(reason)
    draws = []
    if method == "train":
        args = (case.run(),)
    else:
        inputs = case.inputs()
        args = (inputs,)
        if method == "vjp":
            recipe = R(inputs.x.shape, seed=9)
            draws = [["grad_y", repr(recipe)]]
            args = (inputs, recipe.build().astype(inputs.x.dtype))
    call = judge.Call(backend, method, norm, args)
    call.result = getattr(backend, method)(norm, *args)
    arrays, scalars = judge.arrays_of(call)
    path = tmp_path / f"{method}.npz"
    np.savez(path, **arrays)
    found = []
    with np.errstate(all="ignore"):
        quantities = judge._quantities(call)
    for quantity, observed, expected, dtype in quantities:
        obs, exact = np.asarray(observed, np.float64), np.asarray(expected.value, np.float64)
        bound = np.broadcast_to(expected.bound, exact.shape)
        ratio = judge.error_ratio(obs, exact, bound)
        index = tuple(int(i) for i in np.unravel_index(int(np.argmax(ratio)), ratio.shape))
        assert ratio.max() <= 1, f"the healthy {backend_name} leaves its bound: {quantity}"
        culprit = {
            "backend": backend_name,
            "method": method,
            "norm": norm,
            "arrays": str(path),
            "scalars": scalars,
            "quantity": quantity,
            "ratio": float(ratio.max()),
            "index": list(index),
            "observed": float(obs[index]),
            "exact": float(exact[index]),
            "bound": float(bound[index]),
            "accumulation": backend.accumulation_dtype(dtype),
            "outside": 0,
            "size": int(ratio.size),
        }
        found.append(
            {
                "id": "0123456789",
                "signature": {"backend": backend_name, "norm": norm, "property": "p"},
                "region": "a test",
                "minimal_case": repr(case),
                "minimal_draws": draws,
                "culprit": culprit,
            }
        )
    return found


CALLS = [
    (backend, norm, method, training)
    for backend in ("torch", "torch-nn", "torch-channels-last", "tensorflow", "tensorflow-nn")
    for norm in (
        "batch_norm",
        "instance_norm",
        "group_norm",
        "layer_norm",
        "rms_norm",
        "weight_norm",
    )
    for method in ("forward", "vjp")
    for training in ((True, False) if norm in ("batch_norm", "instance_norm") else (True,))
    if not (
        backend.startswith("tensorflow")
        and (norm == "weight_norm" or (norm == "instance_norm" and not training))
    )
]
CALLS += [
    ("tensorflow-fused", "batch_norm", m, t) for m in ("forward", "vjp") for t in (True, False)
]
CALLS += [("numpy", n, "forward", True) for n in ("group_norm", "rms_norm", "weight_norm")]


@pytest.mark.parametrize(("backend", "norm", "method", "training"), CALLS)
def test_a_reproducer_of_a_healthy_call_exits_0(backend, norm, method, training, tmp_path):
    case = _case(norm, training=training)
    for finding in _findings(backend, norm, method, case, tmp_path):
        script = generate(finding, {})
        assert "import normspec" not in script.text and "from normspec" not in script.text
        status, output = _run_script(script.text, tmp_path, script.saved)
        assert status == 0, f"{finding['culprit']['quantity']}:\n{output}\n{script.text}"
        assert "fixed: within the bound" in output


@pytest.mark.parametrize(
    "backend", ["torch", "torch-nn", "tensorflow", "tensorflow-nn", "tensorflow-fused", "numpy"]
)
@pytest.mark.parametrize("norm", ["batch_norm", "instance_norm"])
def test_a_reproducer_of_healthy_training_steps_exits_0(backend, norm, tmp_path):
    if norm == "instance_norm" and backend.startswith("tensorflow"):
        pytest.skip("TensorFlow has no InstanceNorm with running statistics")
    case = TrainingCase(
        norm,
        (R((4, 3, 5), seed=1, offset=1.0), R((4, 3, 5), "mixed", 2)),
        "float32",
        1e-3,
        0.3,
        "old" if backend.startswith("tensorflow") else "new",
        "biased"
        if backend.startswith("tensorflow") and backend != "tensorflow-fused"
        else "unbiased",
        R((3,), seed=3),
        R((3,), seed=4),
        affine=True,
    )
    for finding in _findings(backend, norm, "train", case, tmp_path):
        script = generate(finding, {})
        status, output = _run_script(script.text, tmp_path, script.saved)
        assert status == 0, f"{finding['culprit']['quantity']}:\n{output}\n{script.text}"


@pytest.mark.parametrize("backend", ["torch", "tensorflow"])
def test_bfloat16_inputs_are_rebuilt_exactly_from_their_seeds(backend, tmp_path):
    """torch reads bfloat16 from float32, TensorFlow from ml_dtypes: both paths rebuild the
    very values the backend received, inline, with no .npz."""
    case = _case("layer_norm", dtype="bfloat16")
    for finding in _findings(backend, "layer_norm", "forward", case, tmp_path):
        script = generate(finding, {})
        assert not script.saved and "recipe((3, 4, 5)" in script.text
        status, output = _run_script(script.text, tmp_path, script.saved)
        assert status == 0, output


def test_an_input_the_property_changed_is_saved_beside_the_script(tmp_path):
    """Affine recovery sets the weight to the standard deviation: no recipe makes it, so it
    goes to the .npz, and x, which its recipe makes, stays inline."""
    case = _case("layer_norm")
    inputs = case.inputs()
    changed = replace(case, weight=None)  # the case no longer describes the weight
    found = _findings("numpy", "layer_norm", "forward", case, tmp_path)[0]
    found["minimal_case"] = repr(changed)
    script = generate(found, {})
    assert set(script.saved) == {"weight"} and "x = recipe(" in script.text
    np.testing.assert_array_equal(script.saved["weight"], inputs.weight)
    status, output = _run_script(script.text, tmp_path, script.saved)
    assert status == 0, output


@pytest.mark.parametrize(
    ("norm", "method", "training"),
    [
        (n, m, t)
        for n in ("batch_norm", "instance_norm")
        for m in ("forward", "vjp")
        for t in (True, False)
    ]
    + [
        (n, m, True)
        for n in ("layer_norm", "group_norm", "rms_norm", "weight_norm")
        for m in ("forward", "vjp")
    ],
)
def test_the_written_out_exact_value_is_the_specs(norm, method, training):
    """The formula a reproducer carries gives the spec's value, for every quantity."""
    from normspec import reference

    inputs = _case(norm, "float64", training).inputs()
    grad_y = R(inputs.x.shape, seed=9).build()
    scalars = {
        "normalized_shape": inputs.normalized_shape,
        "num_groups": inputs.num_groups,
        "dim": inputs.dim,
    }
    sets = sets_of(norm, inputs.x.shape, scalars)
    received = {k: v for k, v in vars(inputs).items() if isinstance(v, np.ndarray)} | {
        "grad_y": grad_y
    }
    if method == "forward":
        expected = {"y": reference.spec_forward(norm, inputs)}
    else:
        grads = reference.spec_vjp(norm, inputs, grad_y)
        expected = {
            f"dL/d{k}": getattr(grads, k)
            for k in ("x", "weight", "bias")
            if getattr(grads, k) is not None
        }
    present = {k for k in ("weight", "bias") if getattr(inputs, k) is not None}
    for quantity, want in expected.items():
        lines = exact_lines(norm, method, not inputs.training, present, quantity, sets)
        namespace = {"np": np, "received": received, "eps": inputs.eps}
        namespace |= {
            "VIEW": sets.view,
            "AXES": sets.axes,
            "PARAM": sets.param,
            "OTHER": sets.other,
        }
        exec("\n".join(lines), namespace)
        np.testing.assert_allclose(
            namespace["exact"], want, rtol=1e-12, atol=1e-12, err_msg=quantity
        )


def test_a_finding_without_a_culprit_call_gets_no_script_and_says_why():
    from normspec.hunt.reproducers import GeneratorError

    with pytest.raises(GeneratorError, match="no single backend call"):
        generate({"id": "x", "culprit": None}, {})


def test_sets_of_names_the_pooled_axes_as_the_spec_does():
    sets = sets_of("group_norm", (2, 4, 3), {"num_groups": 2})
    assert sets.view == (2, 2, 2, 3) and sets.axes == (2, 3) and sets.param == (1, 4, 1)
