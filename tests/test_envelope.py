"""`normspec envelope`: the grid pools what it says, each outcome is told apart from the others
on a backend planted to show it, and the command writes its record and its picture.

The planted backends below are variants of the `exact` control (the NumPy backend in float64,
rounded once), so that every outcome is produced on purpose and checked against a peer that
is as accurate as float32 allows.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from backends.honest_backends import ExactBackend
from backends.numpy_backend import NumpyBackend
from backends.protocol import Refused
from backends.registry import load_backend
from normspec import reference
from normspec.runner.cli import main
from normspec.runner.envelope import grid as grids
from normspec.runner.envelope.measure import Cell, measure
from normspec.runner.envelope.output import JSON_NAME, picture_name
from normspec.runner.envelope.records import records
from normspec.vocabulary import NORMS


class Sloppy(ExactBackend):
    """Correct, but each output a relative 2^-20 (about 16 float32 ulps) off: within the
    bound of a float32 reduction over 64 values, and more than ten times the exact control's
    error, so a precision outlier."""

    name = "sloppy"

    def accumulation_dtype(self, dtype):
        return "float32"  # judged as a float32 kernel, whose bound allows 16 ulps here

    def forward(self, norm, inputs):
        y = super().forward(norm, inputs)
        return (y.astype(np.float64) * (1 + 2.0**-20)).astype(y.dtype)


class ForgetsTheVariance(NumpyBackend):
    """Normalizes by sqrt(eps) alone, as a kernel whose variance came out 0 would: outside
    the bound wherever the variance matters, a void bound where the model allows it."""

    name = "forgets-the-variance"

    def forward(self, norm, inputs):
        x = inputs.x.astype(np.float64)
        mean = x.mean(axis=-1, keepdims=True)
        return ((x - mean) / math.sqrt(inputs.eps)).astype(inputs.x.dtype)


class RefusesEverything(NumpyBackend):
    name = "refuses"

    def forward(self, norm, inputs):
        raise Refused("this backend refuses every input")


class Crashes(NumpyBackend):
    name = "crashes"

    def forward(self, norm, inputs):
        raise RuntimeError("kernel exploded")


def _records(norm, dtype, magnitude, conditioning, size, backends, seeds=1, eps=1e-5):
    grid = grids.Grid({dtype: (magnitude,)}, (conditioning,), (size,), seeds=seeds, eps=eps)
    m = measure(Cell(norm, dtype, magnitude, conditioning, size), grid, backends)
    return {r["backend"]: r for r in records([m], backends, backends)}


# -- the grid ------------------------------------------------------------------------------


@pytest.mark.parametrize("norm", NORMS)
@pytest.mark.parametrize("size", [2, 3, 64])
def test_every_norm_pools_size_values_in_each_of_two_sets(norm, size):
    inputs = grids.cell_inputs(norm, "float32", 1.0, 0.0, size, seed=0, eps=1e-5)
    view, axes = reference.pooled_sets(norm, inputs)
    assert math.prod(view.shape[a] for a in axes) == size
    assert view.size // size == grids.SETS


def test_magnitude_and_conditioning_set_offset_and_spread():
    """c = 0: centred, |x| <= M; c > 0: mean near M, spread M / c."""
    centred = grids.cell_inputs("layer_norm", "float64", 1e3, 0.0, 4096, 0, 1e-5).x
    assert np.abs(centred).max() <= 1e3 and abs(centred.mean()) < 50
    offset = grids.cell_inputs("layer_norm", "float64", 1e3, 1e2, 4096, 0, 1e-5).x
    assert np.all(np.abs(offset - 1e3) <= 10) and offset.std() > 5
    # the same z at every magnitude: moving along x changes the scale only
    small = grids.cell_inputs("layer_norm", "float64", 1.0, 0.0, 4096, 0, 1e-5).x
    np.testing.assert_allclose(centred, 1e3 * small)


def test_cells_a_dtype_cannot_hold_are_left_out():
    grid = grids.Grid({"float16": (1e3, 1e4, 1e5)}, (0.0, 1.0), (2,))
    assert (1e5, 0.0, 2) not in grid.cells("float16")  # 1e5 > 65504
    assert (1e4, 1.0, 2) in grid.cells("float16")  # offset + spread = 2e4


# -- one cell: each outcome ----------------------------------------------------------------


def test_a_sum_of_squares_beyond_float32_is_the_overflow_region():
    """At 1e21 the squares overflow float32 while the exact output is ordinary: the float32
    NumPy backend fails (zeros or NaN), the float64 control does not, and both records say
    that an intermediate overflows there; at 1e15 both are within the bound."""
    backends = {"numpy": NumpyBackend(), "exact": ExactBackend()}
    high = _records("layer_norm", "float32", 1e21, 0.0, 64, backends)
    assert high["numpy"]["outcome"] in ("all zero", "non-finite")
    assert high["numpy"]["intermediate_overflow"]
    assert high["numpy"]["best_peer"] == "exact"
    assert high["numpy"]["best_peer_error_over_bound"] <= 1
    assert high["exact"]["outcome"] == "within"
    assert not high["exact"]["intermediate_overflow"]  # it accumulates in float64
    low = _records("layer_norm", "float32", 1e15, 0.0, 64, backends)
    assert {r["outcome"] for r in low.values()} == {"within"}
    assert not low["numpy"]["intermediate_overflow"]


def test_a_backend_ten_times_less_accurate_than_its_peer_is_a_precision_outlier():
    backends = {"sloppy": Sloppy(), "exact": ExactBackend()}
    cell = _records("layer_norm", "float32", 1.0, 0.0, 64, backends, seeds=2)
    sloppy = cell["sloppy"]
    assert sloppy["outcome"] == "precision outlier", sloppy
    assert sloppy["error_over_bound"] <= 1
    assert sloppy["best_peer"] == "exact"
    assert sloppy["error_over_bound"] > 10 * sloppy["best_peer_error_over_bound"]
    assert cell["exact"]["outcome"] == "within"  # its best peer is less accurate, not more


def test_one_ulp_against_an_exact_peer_is_no_outlier():
    """A peer with no error at all does not make a correctly rounded backend an outlier:
    the floor is the error of rounding the exact output once."""
    backends = {"numpy": NumpyBackend(), "exact": ExactBackend()}
    for r in _records("rms_norm", "float32", 1.0, 0.0, 2, backends, seeds=2).values():
        assert r["outcome"] == "within", r


def test_a_variance_of_zero_is_outside_where_the_bound_holds_and_void_where_it_cannot():
    """n = 2 values one float32 ulp apart at 1e13 (c = 1e7): the model's own bound on the
    variance exceeds the variance, so a kernel that computes 0 there is not outside a bound
    that holds; at c = 0 the same kernel is outside."""
    backends = {"forgets": ForgetsTheVariance(), "exact": ExactBackend()}
    void = _records("layer_norm", "float32", 1e13, 1e7, 2, backends, seeds=2)["forgets"]
    assert void["outcome"] == "bound void", void
    outside = _records("layer_norm", "float32", 1.0, 0.0, 64, backends)["forgets"]
    assert outside["outcome"] == "outside", outside


def test_a_refusal_and_a_crash_are_recorded_with_their_reasons():
    backends = {"refuses": RefusesEverything(), "crashes": Crashes(), "exact": ExactBackend()}
    cell = _records("batch_norm", "float32", 1.0, 1.0, 64, backends)
    assert cell["refuses"]["outcome"] == "refused"
    assert "refuses every input" in cell["refuses"]["reason"]
    assert cell["crashes"]["outcome"] == "error"
    assert "RuntimeError: kernel exploded" in cell["crashes"]["reason"]
    assert cell["exact"]["best_peer"] is None  # no peer gave an output
    assert cell["crashes"]["best_peer"] == "exact"


def test_weight_norm_without_eps_underflows_where_its_squares_do():
    backends = {"numpy": NumpyBackend(), "exact": ExactBackend()}
    tiny = _records("weight_norm", "float32", 1e-25, 0.0, 64, backends)
    assert tiny["numpy"]["intermediate_underflow"]
    assert tiny["numpy"]["outcome"] in ("non-finite", "outside")
    assert tiny["exact"]["outcome"] == "within"
    # eps keeps LayerNorm's sum away from underflow at the same magnitude
    assert not _records("layer_norm", "float32", 1e-25, 0.0, 64, backends)["numpy"][
        "intermediate_underflow"
    ]


# -- the command -----------------------------------------------------------------------------


@pytest.fixture
def threads(monkeypatch):
    """`envelope` sets the frameworks' thread variables: give them back after the test."""
    for variable in ("OMP_NUM_THREADS", "TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS"):
        monkeypatch.setenv(variable, "1")


SMALL = ["--magnitudes", "13:21:4", "--sizes", "2,64", "--conditionings", "0,1e4", "--seeds", "1"]


def test_envelope_writes_one_record_per_cell_and_a_picture(tmp_path, threads, capsys):
    pytest.importorskip("matplotlib", reason="the pictures need matplotlib: normspec[envelope]")
    (tmp_path / picture_name("float16")).write_bytes(b"an old picture")
    status = main(
        ["envelope", "--backend", "numpy", "--peer", "exact",
         "--peer", "tests.test_envelope:Sloppy", "--norm", "layer_norm", "--norm", "rms_norm",
         "--dtype", "float32", *SMALL, "--report-dir", str(tmp_path)]
    )  # fmt: skip
    out = capsys.readouterr().out
    assert status == 0
    report = json.loads((tmp_path / JSON_NAME).read_text())
    cells = report["cells"]
    assert len(cells) == 2 * 3 * 2 * 2  # norms x magnitudes x sizes x conditionings
    assert {c["backend"] for c in cells} == {"numpy"}  # peers are compared, not mapped
    for field in ("backend", "norm", "dtype", "magnitude", "conditioning", "size",
                  "error_over_bound", "best_peer", "best_peer_error_over_bound"):  # fmt: skip
        assert all(field in c for c in cells), field
    overflowing = [c for c in cells if c["magnitude"] == 1e21 and c["conditioning"] == 0]
    assert overflowing and all(c["intermediate_overflow"] for c in overflowing)
    assert all(c["outcome"] in ("all zero", "non-finite") for c in overflowing)
    assert (tmp_path / picture_name("float32")).read_bytes().startswith(b"\x89PNG")
    assert not (tmp_path / picture_name("float16")).exists(), "a stale picture was kept"
    assert "float32 layer_norm on numpy" in out and "fails from 1e+21 (n=2)" in out


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--norm", "layernorm"], "unknown norm 'layernorm'; valid norms: batch_norm"),
        (["--dtype", "float8"], "unknown dtype 'float8'; valid dtypes: float16"),
        (["--backend", "nosuch"], "unknown backend 'nosuch'"),
        (["--peer", "nosuch.module:Thing"], "cannot import 'nosuch.module'"),
        (["--magnitudes", "1:2"], "--magnitudes wants LOW:HIGH:STEP"),
        (["--magnitudes", "5:1:1"], "LOW <= HIGH and STEP >= 1"),
        (["--sizes", "1,64"], "sizes must be >= 2"),
        (["--sizes", "2.5"], "--sizes wants whole numbers"),
        (["--conditionings", "a"], "--conditionings wants comma-separated numbers"),
        (["--seeds", "0"], "seeds must be >= 1"),
        (["--threads", "0"], "--threads must be >= 1"),
        (["--backend", "tensorflow-fused", "--norm", "layer_norm"], "nothing to measure"),
    ],
)
def test_bad_usage_exits_2_and_says_what_is_wrong(args, says, tmp_path, threads, capsys):
    assert main(["envelope", *args, "--report-dir", str(tmp_path)]) == 2
    assert says in capsys.readouterr().err
    assert not (tmp_path / JSON_NAME).exists()


def test_torch_and_tensorflow_float32_show_the_overflow_region(tmp_path, threads):
    """Issue 13: float32 LayerNorm in torch and Keras is within its bound at 1e15 and fails
    (non-finite or all zeros) at 1e19, where the sum of squares overflows float32 though the
    exact output is ordinary."""
    pytest.importorskip("matplotlib", reason="the pictures need matplotlib: normspec[envelope]")
    for framework in ("torch", "tensorflow"):
        reason = load_backend(framework).unavailable_reason()
        if reason:
            pytest.skip(reason)
    status = main(
        ["envelope", "--backend", "torch", "--backend", "tensorflow", "--peer", "exact",
         "--norm", "layer_norm", "--dtype", "float32", "--magnitudes", "15:19:4",
         "--sizes", "64", "--conditionings", "0", "--seeds", "1", "--report-dir", str(tmp_path)]
    )  # fmt: skip
    assert status == 0
    cells = json.loads((tmp_path / JSON_NAME).read_text())["cells"]
    outcome = {(c["backend"], c["magnitude"]): c for c in cells}
    for framework in ("torch", "tensorflow"):
        assert outcome[(framework, 1e15)]["outcome"] == "within"
        at_1e19 = outcome[(framework, 1e19)]
        assert at_1e19["outcome"] in ("non-finite", "all zero"), at_1e19
        assert at_1e19["intermediate_overflow"]
        assert at_1e19["best_peer"] == "exact"  # a float64 accumulator does not overflow
