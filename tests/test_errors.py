"""What the spec refuses: every parameter outside the domain `normspec.spec` states is refused
with a NormParameterError whose message names the parameter, the value and the condition it
breaks (what the spec computes at the edges of that domain is in tests/test_spec.py).

The calls come from the spec's table, `spec.NORMS`: a new norm is checked by adding its row.
"""

from __future__ import annotations

import math
import re
from functools import partial

import numpy as np
import pytest

from normspec import spec
from normspec.errors import NormParameterError
from normspec.spec import BatchStatistics, RunningStatistics

X = np.arange(36.0).reshape(2, 6, 3) % 7  # (N, C, L): no set of X is constant
G = np.ones_like(X)
STATS = {"running_mean": np.zeros(6), "running_var": np.ones(6)}
#: What fixes the sets of each norm for X: the last axis, three groups, the channel axis.
STRUCTURE = {"normalized_shape": (3,), "num_groups": 3, "dim": 1}
EPS_NORMS = [name for name, row in spec.NORMS.items() if row.eps]


def structure(norm: str) -> dict:
    """The parameters that fix the sets of `norm` for X."""
    return {name: STRUCTURE[name] for name in spec.NORMS[norm].structure}


def forward(norm: str, x: np.ndarray = X, **given) -> partial:
    """The table's forward of `norm` on x, waiting for the remaining keyword parameters."""
    return partial(spec.NORMS[norm].forward, x, **structure(norm), **given)


def vjp(norm: str, x: np.ndarray = X, **given) -> partial:
    """The table's vjp of `norm` on x, waiting for the remaining keyword parameters."""
    return partial(spec.NORMS[norm].vjp, x, np.ones_like(x), **structure(norm), **given)


def evaluation(**given) -> dict[str, partial]:
    """BatchNorm's evaluation forward and VJP on X with running statistics, by name."""
    return {
        "batch_norm_evaluation": partial(spec.batch_norm_evaluation, X, **given),
        "batch_norm_evaluation_vjp": partial(spec.batch_norm_evaluation_vjp, X, G, **given),
    }


def params(calls: dict[str, partial], *values: object) -> list:
    """pytest parameters from named calls (with the same extra values for each)."""
    return [pytest.param(call, *values, id=name) for name, call in calls.items()]


def literally(message: str) -> str:
    """A message to match as written, not as a regular expression."""
    return re.escape(message)


# --- eps -------------------------------------------------------------------------------------

#: Every function of the spec that takes eps, as a function of eps alone.
EPS_TAKERS = [
    *(pytest.param(forward(n), id=n) for n in EPS_NORMS),
    *(pytest.param(vjp(n), id=f"{n}_vjp") for n in EPS_NORMS),
    *params(evaluation(**STATS)),
]


@pytest.mark.parametrize(
    ("eps", "shown"),
    [(-math.inf, "-inf"), (math.inf, "inf"), (math.nan, "nan"), ("1e-5", "'1e-5'"), (True, "True")],
    ids=["minus_inf", "inf", "nan", "string", "bool"],
)
@pytest.mark.parametrize("call", EPS_TAKERS)
def test_eps_that_is_not_a_finite_real_number_is_refused(call, eps, shown):
    message = (
        f"eps must be a finite real number, got eps={shown}; allowed: any finite eps with "
        f"var + eps >= 0 for every pooled set"
    )
    with pytest.raises(NormParameterError, match=literally(message)):
        call(eps=eps)


@pytest.mark.parametrize("norm", EPS_NORMS)
def test_eps_below_minus_the_smallest_variance_is_refused_naming_that_variance(norm):
    """sqrt(var_S + eps) is not real once var_S + eps < 0 for some set S."""
    smallest = float(np.min(forward(norm)(eps=0.0).var))
    eps = -smallest - 0.25
    name = "var_S" if spec.NORMS[norm].centered else "mean_S(x^2)"
    message = (
        f"eps={eps!r} makes {name} + eps < 0 for the smallest {name} = {smallest!r}, and "
        f"sqrt({name} + eps) is not real; allowed: eps >= -min({name}) = {-smallest!r}"
    )
    for call in (forward(norm), vjp(norm)):
        with pytest.raises(NormParameterError, match=literally(message)):
            call(eps=eps)


@pytest.mark.parametrize(
    "call", params(evaluation(running_mean=np.zeros(6), running_var=np.full(6, 0.25)))
)
def test_eps_below_minus_the_smallest_running_variance_is_refused(call):
    message = (
        "eps=-0.5 makes running_var + eps < 0 for the smallest running_var = 0.25, and "
        "sqrt(running_var + eps) is not real; allowed: eps >= -min(running_var) = -0.25"
    )
    with pytest.raises(NormParameterError, match=literally(message)):
        call(eps=-0.5)


# --- pooled sets -----------------------------------------------------------------------------


@pytest.mark.parametrize("norm", EPS_NORMS)
def test_a_pooled_set_of_no_values_is_refused(norm):
    """(N, C, L) = (2, 4, 0) leaves sets of every norm (C / 2 groups, normalized_shape (0,))
    with 0 values, and the mean of no values is undefined."""
    x = np.zeros((2, 4, 0))
    given = {"normalized_shape": (0,), "num_groups": 2}
    keywords = {k: given[k] for k in spec.NORMS[norm].structure}
    sets = spec.NORMS[norm].sets(x.shape, **keywords)
    message = (
        f"{norm} pools axes {sets.axes} of the input of shape (2, 4, 0) into {sets.number} sets "
        f"of 0 values, whose mean is undefined; allowed: at least 1 value per pooled set"
    )
    row = spec.NORMS[norm]
    for call in (partial(row.forward, x), partial(row.vjp, x, x)):
        with pytest.raises(NormParameterError, match=literally(message)):
            call(eps=1e-5, **keywords)


@pytest.mark.parametrize("shape", [(0, 3), (0, 3, 4)])
@pytest.mark.parametrize("call", [spec.batch_norm_training, spec.batch_norm_training_vjp])
def test_batch_norm_training_of_an_empty_batch_is_refused(call, shape):
    """N = 0 empties every channel's set (N, *spatial); evaluation mode accepts it."""
    args = (np.zeros(shape),) * (2 if call is spec.batch_norm_training_vjp else 1)
    axes = (0, *range(2, len(shape)))
    message = (
        f"batch_norm pools axes {axes} of the input of shape {shape} into 3 sets of 0 values, "
        f"whose mean is undefined"
    )
    with pytest.raises(NormParameterError, match=literally(message)):
        call(*args, eps=1e-5)


# --- running statistics ----------------------------------------------------------------------


def _update(batch: BatchStatistics, **given) -> RunningStatistics:
    conventions = {"momentum": 0.1, "momentum_weighs": "new", "running_var_estimator": "unbiased"}
    running = RunningStatistics(np.zeros(3), np.ones(3), 0)
    return spec.running_statistics_update(running, batch, **{**conventions, **given})


BATCH = BatchStatistics(np.zeros(3), np.ones(3), 4)


@pytest.mark.parametrize(
    ("momentum", "shown"),
    [(math.nan, "nan"), (math.inf, "inf"), (-math.inf, "-inf"), ("0.1", "'0.1'"), (True, "True")],
)
def test_momentum_that_is_not_a_finite_real_number_is_refused(momentum, shown):
    """Any finite momentum is an affine combination of the old and the new value (outside
    [0, 1] an extrapolating one); NaN, inf and non-numbers are not."""
    message = (
        f"momentum must be None (cumulative moving average) or a finite real number, got "
        f"momentum={shown}; allowed: None or any finite momentum (outside [0, 1] the average "
        f"extrapolates)"
    )
    with pytest.raises(NormParameterError, match=literally(message)):
        _update(BATCH, momentum=momentum)
    with pytest.raises(NormParameterError, match=literally(message)):
        spec.weight_of_new_statistic(momentum, "new", 1)


def test_unknown_momentum_convention_or_variance_estimator_is_refused():
    with pytest.raises(
        NormParameterError,
        match=literally("momentum_weighs must be 'new' or 'old', got momentum_weighs='both'"),
    ):
        _update(BATCH, momentum_weighs="both")
    with pytest.raises(
        NormParameterError,
        match=literally(
            "running_var_estimator must be 'unbiased' or 'biased', got "
            "running_var_estimator='sample'"
        ),
    ):
        _update(BATCH, running_var_estimator="sample")


def test_unbiased_running_variance_of_one_value_per_channel_is_refused():
    """The Bessel factor count / (count - 1) is 1 / 0 for one value; the batch statistics
    themselves are defined (mean the value, biased variance 0), and so is the biased update."""
    batch = spec.batch_statistics(spec.batch_norm_training(np.ones((1, 3)), eps=1e-5))
    message = (
        "running_var_estimator='unbiased' multiplies the batch variance by count / "
        "(count - 1), undefined for count=1 value per channel; allowed: count >= 2, or "
        "running_var_estimator='biased'"
    )
    with pytest.raises(NormParameterError, match=literally(message)):
        _update(batch)
    _update(batch, running_var_estimator="biased")


def test_norms_without_running_statistics_feed_none():
    with pytest.raises(
        NormParameterError,
        match=literally(
            "layer_norm tracks no running statistics; allowed: ('batch_norm', 'instance_norm')"
        ),
    ):
        spec.batch_statistics(forward("layer_norm")(eps=1e-5))


@pytest.mark.parametrize("name", ["running_mean", "running_var"])
def test_running_statistics_of_the_wrong_shape_are_refused(name):
    for wrong in [(5,), (6, 1)]:
        stats = {**STATS, name: np.ones(wrong)}
        with pytest.raises(NormParameterError, match=rf"{name} must have shape \(6,\)"):
            spec.batch_norm_evaluation(X, eps=1e-5, **stats)


# --- what fixes the sets: num_groups, normalized_shape, dim, rank ----------------------------


@pytest.mark.parametrize(
    ("num_groups", "message"),
    [
        (4, "num_groups must divide the number of channels C=6, got num_groups=4; "),
        (12, "got num_groups=12; allowed: [1, 2, 3, 6]"),
        (0, "got num_groups=0; allowed: [1, 2, 3, 6]"),
        (-3, "got num_groups=-3; allowed: [1, 2, 3, 6]"),
        (2.0, "got num_groups=2.0; allowed: [1, 2, 3, 6]"),
    ],
)
@pytest.mark.parametrize("call", [spec.group_norm, partial(spec.group_norm_vjp, grad_y=G)])
def test_num_groups_that_does_not_divide_c_is_refused_with_the_divisors(call, num_groups, message):
    with pytest.raises(NormParameterError, match=literally(message)):
        call(X, num_groups=num_groups, eps=1e-5)


def test_num_groups_may_be_a_numpy_integer():
    """A divisor of C is valid whatever integer type holds it (C itself comes from a shape)."""
    expected = spec.group_norm(X, num_groups=2, eps=1e-5).y
    np.testing.assert_array_equal(spec.group_norm(X, num_groups=np.int64(2), eps=1e-5).y, expected)


TRAILING_NORMS = [n for n, row in spec.NORMS.items() if "normalized_shape" in row.structure]


@pytest.mark.parametrize("normalized_shape", [(2, 3), (6,), (2, 6), (1, 2, 6, 3)], ids=str)
@pytest.mark.parametrize("norm", TRAILING_NORMS)
def test_normalized_shape_that_is_not_a_suffix_of_the_input_shape_is_refused(
    norm, normalized_shape
):
    """X has shape (2, 6, 3): only (), (3,), (6, 3) and (2, 6, 3) are suffixes."""
    message = (
        f"normalized_shape={normalized_shape} must equal the trailing dimensions of the input "
        f"of shape (2, 6, 3); allowed: a suffix of (2, 6, 3)"
    )
    row = spec.NORMS[norm]
    for call in (partial(row.forward, X), partial(row.vjp, X, G)):
        with pytest.raises(NormParameterError, match=literally(message)):
            call(normalized_shape=normalized_shape, eps=1e-5)


V = np.arange(1.0, 7.0).reshape(2, 3)


@pytest.mark.parametrize("dim", [2, -3, 7])
@pytest.mark.parametrize(
    "call",
    [
        pytest.param(lambda dim: spec.weight_norm(V, np.ones((1, 1)), dim=dim), id="weight_norm"),
        pytest.param(
            lambda dim: spec.weight_norm_vjp(V, np.ones((1, 1)), V, dim=dim), id="weight_norm_vjp"
        ),
    ],
)
def test_weight_norm_dim_outside_the_axes_of_v_is_refused(call, dim):
    message = f"dim must be None or an axis in [-2, 1] of a rank-2 tensor, got dim={dim}"
    with pytest.raises(NormParameterError, match=literally(message)):
        call(dim)


#: The norms whose parameters vary along the channel axis of (N, C, *spatial).
CHANNEL_NORMS = [
    n for n in EPS_NORMS if spec.NORMS[n].sets(X.shape, **structure(n)).features == (1,)
]


@pytest.mark.parametrize("shape", [(4,), ()], ids=str)
@pytest.mark.parametrize(
    ("call", "norm"),
    [
        *(pytest.param(forward, n, id=n) for n in CHANNEL_NORMS),
        *(pytest.param(vjp, n, id=f"{n}_vjp") for n in CHANNEL_NORMS),
        pytest.param(
            lambda _, x: partial(spec.batch_norm_evaluation, x, **STATS),
            "batch_norm",
            id="batch_norm_evaluation",
        ),
    ],
)
def test_an_input_without_a_channel_axis_is_refused(call, norm, shape):
    """Channels-first inputs (N, C, *spatial) need N and C; any number of spatial dims is
    fine."""
    message = (
        f"{norm} expects a channels-first input (N, C, *spatial) of rank >= 2, got shape "
        f"{shape} of rank {len(shape)}"
    )
    with pytest.raises(NormParameterError, match=literally(message)):
        call(norm, np.ones(shape))(eps=1e-5)


# --- parameter shapes ------------------------------------------------------------------------


def _param_shape(norm: str) -> tuple[int, ...]:
    return spec.NORMS[norm].sets(X.shape, **structure(norm)).param_shape


#: (a call taking weight= (and bias=), the shape they must have)
WEIGHT_CALLS = [
    *(pytest.param(forward(n, eps=1e-5), _param_shape(n), id=n) for n in EPS_NORMS),
    *(pytest.param(vjp(n, eps=1e-5), _param_shape(n), id=f"{n}_vjp") for n in EPS_NORMS),
    *params(evaluation(eps=1e-5, **STATS), (6,)),
]
BIAS_CALLS = [
    *(
        pytest.param(forward(n, eps=1e-5), _param_shape(n), id=n)
        for n in EPS_NORMS
        if spec.NORMS[n].bias
    ),
    pytest.param(partial(spec.batch_norm_evaluation, X, eps=1e-5, **STATS), (6,), id="evaluation"),
]


def _wrong_shapes(shape: tuple[int, ...]) -> list[tuple[int, ...]]:
    return [(shape[0] - 1, *shape[1:]), (*shape, 1), (1, *shape)]


@pytest.mark.parametrize(("call", "shape"), WEIGHT_CALLS)
def test_weight_of_the_wrong_shape_is_refused(call, shape):
    call(weight=np.ones(shape))  # the right shape, for contrast
    for wrong in _wrong_shapes(shape):
        message = f"weight must have shape {shape}, got shape {wrong}"
        with pytest.raises(NormParameterError, match=literally(message)):
            call(weight=np.ones(wrong))


@pytest.mark.parametrize(("call", "shape"), BIAS_CALLS)
def test_bias_of_the_wrong_shape_is_refused(call, shape):
    for wrong in _wrong_shapes(shape):
        message = f"bias must have shape {shape}, got shape {wrong}"
        with pytest.raises(NormParameterError, match=literally(message)):
            call(weight=np.ones(shape), bias=np.ones(wrong))


@pytest.mark.parametrize("norm", EPS_NORMS)
def test_grad_y_of_another_shape_than_x_is_refused(norm):
    row = spec.NORMS[norm]
    with pytest.raises(NormParameterError, match=literally("grad_y must have shape (2, 6, 3)")):
        row.vjp(X, G[:1], eps=1e-5, **structure(norm))


@pytest.mark.parametrize(
    "call",
    [
        pytest.param(lambda g: spec.weight_norm(V, g, dim=0), id="weight_norm"),
        pytest.param(lambda g: spec.weight_norm_vjp(V, g, V, dim=0), id="weight_norm_vjp"),
    ],
)
def test_weight_norm_g_of_the_wrong_shape_is_refused(call):
    """g must have the shape of v with every axis but dim of size 1: (2, 1) for dim 0."""
    for wrong in [(2,), (1, 3), (2, 3), (1, 1)]:
        with pytest.raises(
            NormParameterError, match=literally(f"g must have shape (2, 1), got shape {wrong}")
        ):
            call(np.ones(wrong))
