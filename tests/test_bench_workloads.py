"""The benchmark grid: every norm has a realistic workload and a small one, the inputs are
the same on every run, and the minimal bytes count each input and output once."""

from __future__ import annotations

import numpy as np
import pytest

from backends.numpy_backend import NumpyBackend
from normspec.bench.workloads import (
    BY_ID,
    MODES,
    WORKLOADS,
    Case,
    make_inputs,
    minimal_bytes,
    select,
)
from normspec.vocabulary import NORMS


def test_every_norm_has_a_realistic_workload_and_a_small_one():
    for norm in NORMS:
        names = [w.name for w in WORKLOADS if w.norm == norm]
        assert len(names) == 2 and "small" in names, (norm, names)
    assert len(BY_ID) == len(WORKLOADS)


def test_the_issue_s_shapes_are_in_the_grid():
    assert BY_ID["batch_norm:cnn"].shape == (32, 64, 56, 56)
    assert BY_ID["group_norm:cnn"].shape == (8, 256, 64, 64)
    assert BY_ID["group_norm:cnn"].num_groups == 32
    assert BY_ID["layer_norm:transformer"].shape == (8, 512, 1024)
    assert BY_ID["rms_norm:transformer"].normalized_shape == (1024,)


def test_minimal_bytes_count_each_input_and_output_once():
    w = BY_ID["batch_norm:small"]  # (2, 8, 4, 4): 256 values, 8 channels
    # forward: read x (256) and weight, bias (8 + 8), write y (256), in float32
    assert minimal_bytes(w, "forward", "float32") == (256 + 16 + 256) * 4
    # and backward: read grad_y, write dL/dx and dL/dweight, dL/dbias
    assert minimal_bytes(w, "forward+backward", "float32") == 2 * (256 + 16 + 256) * 4
    # RMSNorm has no bias; half precision halves the bytes
    r = BY_ID["rms_norm:small"]  # (2, 4, 16) over (16,)
    assert minimal_bytes(r, "forward", "float16") == (128 + 16 + 128) * 2


def test_the_inputs_are_seeded_and_in_the_dtype():
    w = BY_ID["group_norm:small"]
    (a, grad_a), (b, grad_b) = make_inputs(w, "float32"), make_inputs(w, "float32")
    np.testing.assert_array_equal(a.x, b.x)
    np.testing.assert_array_equal(grad_a, grad_b)
    assert a.x.dtype == np.float32 and a.weight.shape == (8,) and a.num_groups == 2


@pytest.mark.parametrize("workload", [w for w in WORKLOADS if w.name == "small"], ids=str)
@pytest.mark.parametrize("mode", MODES)
def test_every_small_workload_runs_on_numpy(workload, mode):
    """The inputs are a valid call of the norm: shapes of the parameters included."""
    inputs, grad_y = make_inputs(workload, "float32")
    backend = NumpyBackend()
    y = backend.forward(workload.norm, inputs)
    assert y.shape == workload.shape and np.isfinite(y).all()
    if mode == "forward+backward":
        grads = backend.vjp(workload.norm, inputs, grad_y)
        assert grads.x.shape == workload.shape and grads.weight.shape == inputs.weight.shape


def test_a_case_round_trips_through_its_record_and_refuses_a_changed_shape():
    case = Case("numpy", BY_ID["layer_norm:small"], "forward", "float32")
    assert Case.from_dict(case.as_dict()) == case
    assert case.key == "numpy/layer_norm:small/forward/float32"
    with pytest.raises(ValueError, match="the grid's shape is now"):
        Case.from_dict({**case.as_dict(), "shape": [9, 9]})


def test_selection_by_norm_and_workload():
    assert [w.id for w in select(("rms_norm",))] == ["rms_norm:transformer", "rms_norm:small"]
    assert [w.id for w in select((), ("weight_norm:conv",))] == ["weight_norm:conv"]
    assert select(("rms_norm",), ("weight_norm:conv",)) == ()
