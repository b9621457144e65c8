"""The tolerance model does what its docstring claims: it admits every correct algorithm, it
rejects the textbook one-pass variance on ill-conditioned input, it grows with the reduction
size and the conditioning M / sigma, and the ratio error / bound treats NaN, exact equality
and overflow as written.

The implementations under test are written inline in float32 (or float16 storage with float32
accumulation), with every sum taken left to right (np.cumsum): recursive summation is the
order Higham's bound is tight for, so a correct algorithm passing here passes in any order.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from backends.protocol import NormInputs
from normspec import reference, tolerance
from normspec.tolerance import LARGEST_FINITE, Precision
from properties.assertions import error_ratio

FLOAT32 = Precision("float32", "float32")


def sequential_sum(a: np.ndarray) -> np.ndarray:
    """The sum over the last axis, left to right, in a's dtype, kept for broadcasting."""
    return np.cumsum(a, axis=-1, dtype=a.dtype)[..., -1:]


def two_pass_layer_norm(x: np.ndarray, eps: float) -> np.ndarray:
    """A correct LayerNorm over the last axis in x's dtype: mean first, then the mean of the
    squared deviations from it."""
    n = x.dtype.type(x.shape[-1])
    mean = sequential_sum(x) / n
    centered = x - mean
    var = sequential_sum(centered * centered) / n
    return centered / np.sqrt(var + x.dtype.type(eps))


def one_pass_layer_norm(x: np.ndarray, eps: float) -> np.ndarray:
    """The textbook one-pass LayerNorm: var = E[x^2] - E[x]^2, clamped at 0 as careful
    implementations do (so it fails by inaccuracy, not by NaN)."""
    n = x.dtype.type(x.shape[-1])
    mean = sequential_sum(x) / n
    var = np.maximum(sequential_sum(x * x) / n - mean * mean, x.dtype.type(0))
    return (x - mean) / np.sqrt(var + x.dtype.type(eps))


def worst_ratio(observed: np.ndarray, inputs: NormInputs, p: Precision) -> float:
    """max error / bound of a LayerNorm output against the spec and the model's bound."""
    expected = reference.forward("layer_norm", inputs, p)
    ratio = error_ratio(observed.astype(np.float64), expected.value, expected.bound, p.largest)
    return float(ratio.max())


def rows(offset: float, spread: float, shape: tuple[int, ...], seed: int = 0) -> np.ndarray:
    """offset + spread * N(0, 1) in float64; the conditioning M / sigma is about offset / spread."""
    return offset + spread * np.random.default_rng(seed).standard_normal(shape)


# --- the model separates correct algorithms from the one-pass variance -----------------------


@pytest.mark.parametrize("n", [16, 64, 256])
def test_two_pass_float32_layer_norm_stays_within_the_bound_on_ill_conditioned_rows(n):
    """Rows of mean 1e4 and spread 1 (M / sigma ~ 1e4): the two-pass algorithm loses about
    u M / sigma, which the bound allows."""
    x = rows(1e4, 1.0, (8, n)).astype(np.float32)
    inputs = NormInputs(x, eps=1e-5, normalized_shape=(n,))
    assert worst_ratio(two_pass_layer_norm(x, 1e-5), inputs, FLOAT32) <= 1.0


@pytest.mark.parametrize("n", [16, 64, 256])
def test_one_pass_float32_layer_norm_exceeds_the_bound_on_ill_conditioned_rows(n):
    """On the same rows E[x^2] - E[x]^2 loses u M^2 / var ~ 6 in a variance of 1: the bound
    rejects it, as the tolerance module says it must once M / sigma >> 2 (n + 2) (1 + |x_hat|)."""
    x = rows(1e4, 1.0, (8, n)).astype(np.float32)
    inputs = NormInputs(x, eps=1e-5, normalized_shape=(n,))
    assert worst_ratio(one_pass_layer_norm(x, 1e-5), inputs, FLOAT32) > 1.0


def test_one_pass_float32_layer_norm_passes_on_well_conditioned_rows():
    """On rows of mean 0 the one-pass variance is accurate: the model rejects an algorithm
    only on the inputs where it is actually inaccurate, not everywhere."""
    x = rows(0.0, 1.0, (8, 64)).astype(np.float32)
    inputs = NormInputs(x, eps=1e-5, normalized_shape=(64,))
    assert worst_ratio(one_pass_layer_norm(x, 1e-5), inputs, FLOAT32) <= 1.0


@pytest.mark.parametrize("offset", [0.0, 50.0], ids=["centered", "offset_50"])
@pytest.mark.parametrize("affine", [False, True], ids=["plain", "affine"])
def test_float16_storage_with_float32_accumulation_passes_when_correct(offset, affine):
    """float16 in, two-pass statistics and the affine map in float32, float16 out: the model
    for Precision("float16", "float32") admits it."""
    n = 48
    x = rows(offset, 1.0, (6, n), seed=1).astype(np.float16)
    weight = bias = None
    y = two_pass_layer_norm(x.astype(np.float32), 1e-5)
    if affine:
        weight = rows(1.0, 0.5, (n,), seed=2).astype(np.float16)
        bias = rows(0.0, 1.0, (n,), seed=3).astype(np.float16)
        y = weight.astype(np.float32) * y + bias.astype(np.float32)
    inputs = NormInputs(x, eps=1e-5, weight=weight, bias=bias, normalized_shape=(n,))
    assert worst_ratio(y.astype(np.float16), inputs, Precision("float16", "float32")) <= 1.0


# --- the bound grows with the reduction size and the conditioning -----------------------------


def alternating(n: int, offset: float, spread: float) -> np.ndarray:
    """offset - spread, offset + spread, ...: mean offset, var spread^2, x_hat = -1, 1, ...,
    so that only n, or only M / sigma = (|offset| + spread) / spread, changes."""
    return offset + spread * np.tile([-1.0, 1.0], n // 2)[np.newaxis]


def first_bound(x: np.ndarray, p: Precision = FLOAT32) -> float:
    """The bound of the first output element (x_hat = -1) of LayerNorm over the row, eps 0."""
    inputs = NormInputs(x, eps=0.0, normalized_shape=(x.shape[-1],))
    return float(reference.forward("layer_norm", inputs, p).bound[0, 0])


def assert_strictly_increasing(values: list[float]) -> None:
    assert all(a < b for a, b in itertools.pairwise(values)), values


def test_bound_grows_with_the_reduction_size():
    """Same mean, variance and M; n = 2 ... 1024 values pooled: gamma = (n + 2) u grows."""
    assert_strictly_increasing([first_bound(alternating(n, 100.0, 1.0)) for n in (2, 8, 64, 1024)])


def test_bound_grows_with_the_offset_at_a_fixed_spread():
    """Spread 1, offsets 0 ... 1e4: M / sigma = 1 + |offset| grows."""
    offsets = (0.0, 1.0, 10.0, 1e2, 1e3, 1e4)
    assert_strictly_increasing([first_bound(alternating(64, o, 1.0)) for o in offsets])


def test_bound_grows_as_the_spread_shrinks_at_a_fixed_offset():
    """Offset 1e3, spreads 1e2 ... 1e-2: M / sigma = (1e3 + spread) / spread grows."""
    spreads = (1e2, 10.0, 1.0, 0.1, 1e-2)
    assert_strictly_increasing([first_bound(alternating(64, 1e3, s)) for s in spreads])


def test_bound_grows_as_the_precision_narrows():
    """float64, float32, float16: the unit roundoff, and with it the bound, grows."""
    x = alternating(64, 10.0, 1.0)
    bounds = [first_bound(x, Precision(d, d)) for d in ("float64", "float32", "float16")]
    assert_strictly_increasing(bounds)


# --- error_ratio -----------------------------------------------------------------------------


def ratio(observed: float, expected: float, bound: float, largest: float = math.inf) -> float:
    """error_ratio on one element."""
    return float(
        error_ratio(np.array([observed]), np.array([expected]), np.array([bound]), largest)[0]
    )


def test_error_ratio_is_the_error_in_units_of_the_bound():
    assert ratio(1.5, 1.0, 0.25) == 2.0
    assert ratio(1.0, 1.5, 1.0) == 0.5


def test_error_ratio_of_nan_where_the_spec_is_undefined_is_zero():
    """0/0 in both the backend and the spec (whose bound is then undefined too) is agreement."""
    assert ratio(math.nan, math.nan, math.nan) == 0.0


def test_error_ratio_of_nan_against_a_nan_with_a_bound_is_infinite():
    """Two backends that both return NaN where the spec has a number do not agree: the
    expected value is the other backend's NaN, the bound the spec's number."""
    assert ratio(math.nan, math.nan, 1.0) == math.inf
    assert ratio(math.nan, math.nan, 0.0) == math.inf


def test_error_ratio_of_nan_against_a_number_is_infinite():
    assert ratio(math.nan, 1.0, 1.0) == math.inf
    assert ratio(1.0, math.nan, 1.0) == math.inf


def test_error_ratio_of_exact_equality_under_a_zero_bound_is_zero():
    assert ratio(1.5, 1.5, 0.0) == 0.0
    assert ratio(0.0, 0.0, 0.0) == 0.0


def test_error_ratio_of_any_difference_under_a_zero_bound_is_infinite():
    assert ratio(1.5, 1.25, 0.0) == math.inf


def test_error_ratio_accepts_overflow_to_an_infinity_of_the_same_sign():
    """7e4 exceeds float16's largest finite value 65504: a float16 backend must return inf."""
    largest = LARGEST_FINITE["float16"]
    assert ratio(math.inf, 7e4, 1.0, largest) == 0.0
    assert ratio(-math.inf, -7e4, 1.0, largest) == 0.0


def test_error_ratio_accepts_overflow_when_the_bound_reaches_the_largest_value():
    """An expected 65500 within 10 of the largest float16 may round to inf."""
    assert ratio(math.inf, 65500.0, 10.0, LARGEST_FINITE["float16"]) == 0.0


def test_error_ratio_rejects_an_infinity_where_no_overflow_is_possible():
    largest = LARGEST_FINITE["float16"]
    assert ratio(math.inf, 100.0, 1.0, largest) == math.inf
    assert ratio(-math.inf, 7e4, 1.0, largest) == math.inf  # the wrong sign
    assert ratio(math.inf, 7e4, 1.0, LARGEST_FINITE["float64"]) == math.inf


def test_error_ratio_of_equal_infinities_is_zero():
    assert ratio(math.inf, math.inf, 1.0) == 0.0
    assert ratio(-math.inf, -math.inf, 0.0) == 0.0
    assert ratio(-math.inf, math.inf, 1.0) == math.inf


# --- the running-statistics update with an extrapolating momentum ----------------------------


@pytest.mark.parametrize("a", [-1.0, 2.0])
def test_running_update_bound_weighs_the_input_errors_by_absolute_weights(a):
    """new = (1 - a) old + a statistic with a outside [0, 1]: the errors of old and of the
    statistic enter as |1 - a| |d old| + |a| |d statistic| (with the signed weights the bound
    would fall below zero). old = statistic = 0 leaves no rounding term."""
    zero = np.zeros(1)
    bound = tolerance.running_update_bound(zero, np.ones(1), zero, np.full(1, 0.5), a, FLOAT32)
    assert bound[0] == abs(1 - a) + abs(a) * 0.5


@pytest.mark.parametrize("a", [-1.0, -0.25, 0.0, 0.5, 1.0, 1.5, 2.0])
def test_a_float32_running_update_stays_within_the_bound_for_any_weight(a):
    """The update computed in float32 from float32 values, against its exact value: inside the
    bound whether it averages (a in [0, 1]) or extrapolates."""
    rng = np.random.default_rng(7)
    old = rng.standard_normal(64).astype(np.float32)
    statistic = (3.0 + rng.standard_normal(64)).astype(np.float32)
    a32 = np.float32(a)
    observed = (np.float32(1) - a32) * old + a32 * statistic
    exact = (1 - a) * old.astype(np.float64) + a * statistic.astype(np.float64)
    zero = np.zeros(64)
    bound = tolerance.running_update_bound(
        old.astype(np.float64), zero, statistic.astype(np.float64), zero, a, FLOAT32
    )
    assert np.all(np.abs(observed.astype(np.float64) - exact) <= bound)
