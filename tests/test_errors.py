"""The errors of every invalid parameter: each is a NormParameterError whose message names the
parameter, the value received and the values allowed.
"""

from __future__ import annotations

import math
import re
import zlib
from functools import partial

import numpy as np
import pytest

from normspec import spec
from normspec.errors import NormParameterError
from normspec.spec import BatchStatistics, RunningStatistics


def assert_float64_equal(actual: np.ndarray, expected: np.ndarray | list) -> None:
    """Equal up to the float64 rounding of a few operations."""
    np.testing.assert_allclose(actual, np.asarray(expected, dtype=np.float64), rtol=1e-13, atol=0)


def random(label: str, shape: tuple[int, ...]) -> np.ndarray:
    """Standard normal values, seeded by a label so that each test is reproducible alone."""
    return np.random.default_rng(zlib.crc32(label.encode())).standard_normal(shape)


def _batch(label: str, shape: tuple[int, ...] = (4, 3, 5)) -> tuple[np.ndarray, BatchStatistics]:
    x = 2.0 + 3.0 * random(label, shape)
    return x, spec.batch_norm_training(x, eps=0.0)


def _running(label: str, seen: int = 0) -> RunningStatistics:
    return RunningStatistics(
        random(f"{label} mean", (3,)), np.abs(random(f"{label} var", (3,))) + 0.5, seen
    )


# --- invalid parameters ----------------------------------------------------------------------

X = random("invalid x", (2, 6, 3))
G = random("invalid grad", (2, 6, 3))
C6 = np.ones(6)
STATS = {"running_mean": np.zeros(6), "running_var": np.ones(6)}


#: Every function of the spec that takes eps, as a function of eps alone.
EPS_TAKERS = [
    pytest.param(partial(spec.batch_norm_training, X), id="batch_norm_training"),
    pytest.param(partial(spec.batch_norm_training_vjp, X, G), id="batch_norm_training_vjp"),
    pytest.param(partial(spec.batch_norm_evaluation, X, **STATS), id="batch_norm_evaluation"),
    pytest.param(
        partial(spec.batch_norm_evaluation_vjp, X, G, **STATS),
        id="batch_norm_evaluation_vjp",
    ),
    pytest.param(partial(spec.layer_norm, X, normalized_shape=(3,)), id="layer_norm"),
    pytest.param(partial(spec.layer_norm_vjp, X, G, normalized_shape=(3,)), id="layer_norm_vjp"),
    pytest.param(partial(spec.instance_norm, X), id="instance_norm"),
    pytest.param(partial(spec.instance_norm_vjp, X, G), id="instance_norm_vjp"),
    pytest.param(partial(spec.group_norm, X, num_groups=3), id="group_norm"),
    pytest.param(
        partial(spec.group_norm_vjp, X, G, num_groups=3),
        id="group_norm_vjp",
    ),
    pytest.param(partial(spec.rms_norm, X, normalized_shape=(3,)), id="rms_norm"),
    pytest.param(
        partial(spec.rms_norm_vjp, X, G, normalized_shape=(3,)),
        id="rms_norm_vjp",
    ),
]


@pytest.mark.parametrize(
    ("eps", "message"),
    [
        (-1e-5, r"eps must be >= 0, got eps=-1e-05; allowed: 0 <= eps < inf"),
        (-math.inf, r"eps must be finite, got eps=-inf; allowed: 0 <= eps < inf"),
        (math.inf, r"eps must be finite, got eps=inf; allowed: 0 <= eps < inf"),
        (math.nan, r"eps must be finite, got eps=nan; allowed: 0 <= eps < inf"),
        ("1e-5", r"eps must be a real number >= 0, got '1e-5'"),
    ],
    ids=["negative", "minus_inf", "inf", "nan", "string"],
)
@pytest.mark.parametrize("call", EPS_TAKERS)
@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")  # the gaps' sqrt(-)
def test_eps_outside_zero_to_infinity_is_rejected(call, eps, message):
    with pytest.raises(NormParameterError, match=message):
        call(eps=eps)


@pytest.mark.parametrize(
    ("num_groups", "message"),
    [
        (4, r"num_groups must divide the number of channels C=6, got num_groups=4; "),
        (12, r"got num_groups=12; allowed: \[1, 2, 3, 6\]"),
        (0, r"got num_groups=0; allowed: \[1, 2, 3, 6\]"),
        (-3, r"got num_groups=-3; allowed: \[1, 2, 3, 6\]"),
        (2.0, r"got num_groups=2.0; allowed: \[1, 2, 3, 6\]"),
    ],
)
@pytest.mark.parametrize(
    "call",
    [
        pytest.param(partial(spec.group_norm, X, eps=1e-5), id="group_norm"),
        pytest.param(partial(spec.group_norm_vjp, X, G, eps=1e-5), id="group_norm_vjp"),
    ],
)
def test_num_groups_that_does_not_divide_c_is_rejected_with_the_divisors(call, num_groups, message):
    with pytest.raises(NormParameterError, match=message):
        call(num_groups=num_groups)


def test_num_groups_may_be_a_numpy_integer():
    """A divisor of C is valid whatever integer type holds it (C itself comes from a shape)."""
    expected = spec.group_norm(X, num_groups=2, eps=1e-5)
    assert_float64_equal(spec.group_norm(X, num_groups=np.int64(2), eps=1e-5), expected)


@pytest.mark.parametrize(
    "normalized_shape", [(2, 3), (6,), (2, 6), (), (1, 2, 6, 3)], ids=lambda s: f"{s}"
)
@pytest.mark.parametrize(
    "call",
    [
        pytest.param(partial(spec.layer_norm, X, eps=1e-5), id="layer_norm"),
        pytest.param(partial(spec.layer_norm_vjp, X, G, eps=1e-5), id="layer_norm_vjp"),
        pytest.param(partial(spec.rms_norm, X, eps=1e-5), id="rms_norm"),
        pytest.param(partial(spec.rms_norm_vjp, X, G, eps=1e-5), id="rms_norm_vjp"),
    ],
)
def test_normalized_shape_that_is_not_a_suffix_of_the_input_shape_is_rejected(
    call, normalized_shape
):
    """X has shape (2, 6, 3): only (3,), (6, 3) and (2, 6, 3) are valid."""
    message = (
        rf"normalized_shape={re_tuple(normalized_shape)} must equal the trailing dimensions of "
        r"the input of shape \(2, 6, 3\); allowed: a non-empty suffix of \(2, 6, 3\)"
    )
    with pytest.raises(NormParameterError, match=message):
        call(normalized_shape=normalized_shape)


def re_tuple(t: tuple) -> str:
    """The repr of a tuple, escaped for a regular expression."""
    return repr(tuple(t)).replace("(", r"\(").replace(")", r"\)")


@pytest.mark.parametrize("momentum", [-0.1, 1.5, math.nan, math.inf, "0.1"])
def test_momentum_outside_zero_to_one_is_rejected(momentum):
    _, stats = _batch("bad momentum")
    message = r"momentum must be None \(cumulative moving average\) or in \[0, 1\], got "
    with pytest.raises(NormParameterError, match=message + re.escape(repr(momentum))):
        spec.running_statistics_update(
            _running("bad momentum"),
            stats,
            momentum=momentum,
            momentum_weighs="new",
            running_var_estimator="unbiased",
        )
    with pytest.raises(NormParameterError, match=message):
        spec.weight_of_new_statistic(momentum, "new", 1)


def test_unknown_momentum_convention_or_variance_estimator_is_rejected():
    running, (_, stats) = _running("bad convention"), _batch("bad convention")
    update = partial(spec.running_statistics_update, running, stats, momentum=0.1)
    with pytest.raises(NormParameterError, match=r"momentum_weighs must be 'new' or 'old'"):
        update(momentum_weighs="both", running_var_estimator="unbiased")
    with pytest.raises(
        NormParameterError, match=r"running_var_estimator must be 'unbiased' or 'biased'"
    ):
        update(momentum_weighs="new", running_var_estimator="sample")


@pytest.mark.parametrize("shape", [(1, 3), (1, 3, 1), (1, 2, 1, 1, 1)])
@pytest.mark.parametrize(
    "call",
    [
        pytest.param(spec.batch_norm_training, id="batch_norm_training"),
        pytest.param(
            lambda x, eps: spec.batch_norm_training_vjp(x, np.ones_like(x), eps=eps),
            id="batch_norm_training_vjp",
        ),
    ],
)
def test_batch_norm_training_with_one_value_per_channel_is_rejected(call, shape):
    message = (
        rf"batch statistics in training mode need more than one value per channel, got 1 for "
        rf"input shape {re_tuple(shape)}; allowed: N \* prod\(spatial\) >= 2"
    )
    with pytest.raises(NormParameterError, match=message):
        call(np.ones(shape), eps=1e-5)


def test_unbiased_running_variance_of_a_single_value_is_rejected():
    batch = BatchStatistics(np.zeros(1), np.zeros(3), np.zeros(3), 1)
    with pytest.raises(NormParameterError, match=r"more than one value per channel, got 1"):
        spec.running_statistics_update(
            _running("single"),
            batch,
            momentum=0.1,
            momentum_weighs="new",
            running_var_estimator="unbiased",
        )


V = random("invalid v", (2, 3))


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
def test_weight_norm_dim_outside_the_axes_of_v_is_rejected(call, dim):
    message = rf"dim must be None or an axis in \[-2, 1\] of a rank-2 tensor, got dim={dim}"
    with pytest.raises(NormParameterError, match=message):
        call(dim)


#: (call taking weight= and bias=, the shape the parameters must have)
AFFINE_CALLS = [
    pytest.param(partial(spec.batch_norm_training, X, eps=1e-5), (6,), id="batch_norm_training"),
    pytest.param(
        partial(spec.batch_norm_evaluation, X, eps=1e-5, **STATS), (6,), id="batch_norm_evaluation"
    ),
    pytest.param(
        partial(spec.layer_norm, X, normalized_shape=(6, 3), eps=1e-5), (6, 3), id="layer_norm"
    ),
    pytest.param(partial(spec.instance_norm, X, eps=1e-5), (6,), id="instance_norm"),
    pytest.param(partial(spec.group_norm, X, num_groups=2, eps=1e-5), (6,), id="group_norm"),
]
#: (call taking weight= only, the shape it must have)
WEIGHT_CALLS = [
    *AFFINE_CALLS,
    pytest.param(partial(spec.rms_norm, X, normalized_shape=(3,), eps=1e-5), (3,), id="rms_norm"),
    *(
        pytest.param(call, shape, id=name)
        for name, call, shape in [
            (
                "batch_norm_training_vjp",
                partial(spec.batch_norm_training_vjp, X, G, eps=1e-5),
                (6,),
            ),
            (
                "batch_norm_evaluation_vjp",
                partial(spec.batch_norm_evaluation_vjp, X, G, eps=1e-5, **STATS),
                (6,),
            ),
            (
                "layer_norm_vjp",
                partial(spec.layer_norm_vjp, X, G, normalized_shape=(3,), eps=1e-5),
                (3,),
            ),
            ("instance_norm_vjp", partial(spec.instance_norm_vjp, X, G, eps=1e-5), (6,)),
            (
                "group_norm_vjp",
                partial(spec.group_norm_vjp, X, G, num_groups=3, eps=1e-5),
                (6,),
            ),
            (
                "rms_norm_vjp",
                partial(spec.rms_norm_vjp, X, G, normalized_shape=(3,), eps=1e-5),
                (3,),
            ),
        ]
    ),
]


def _wrong_shapes(shape: tuple[int, ...]) -> list[tuple[int, ...]]:
    return [(shape[0] - 1, *shape[1:]), (*shape, 1), (1, *shape)]


@pytest.mark.parametrize(("call", "shape"), WEIGHT_CALLS)
def test_weight_of_the_wrong_shape_is_rejected(call, shape):
    call(weight=np.ones(shape))  # the right shape, for contrast
    for wrong in _wrong_shapes(shape):
        message = rf"weight must have shape {re_tuple(shape)}, got shape {re_tuple(wrong)}"
        with pytest.raises(NormParameterError, match=message):
            call(weight=np.ones(wrong))


@pytest.mark.parametrize(("call", "shape"), AFFINE_CALLS)
def test_bias_of_the_wrong_shape_is_rejected(call, shape):
    for wrong in _wrong_shapes(shape):
        message = rf"bias must have shape {re_tuple(shape)}, got shape {re_tuple(wrong)}"
        with pytest.raises(NormParameterError, match=message):
            call(weight=np.ones(shape), bias=np.ones(wrong))


@pytest.mark.parametrize(
    "call",
    [
        pytest.param(lambda g: spec.weight_norm(V, g, dim=0), id="weight_norm"),
        pytest.param(
            lambda g: spec.weight_norm_vjp(V, g, V, dim=0),
            id="weight_norm_vjp",
        ),
    ],
)
def test_weight_norm_g_of_the_wrong_shape_is_rejected(call):
    """g must have the shape of v with every axis but dim of size 1: (2, 1) for dim 0."""
    for wrong in [(2,), (1, 3), (2, 3), (1, 1)]:
        with pytest.raises(NormParameterError, match=r"g must have shape \(2, 1\), got shape"):
            call(np.ones(wrong))


@pytest.mark.parametrize("name", ["running_mean", "running_var"])
def test_running_statistics_of_the_wrong_shape_are_rejected(name):
    for wrong in [(5,), (6, 1)]:
        stats = {**STATS, name: np.ones(wrong)}
        with pytest.raises(NormParameterError, match=rf"{name} must have shape \(6,\)"):
            spec.batch_norm_evaluation(X, eps=1e-5, **stats)


@pytest.mark.parametrize(
    ("call", "name", "low", "shapes"),
    [
        (lambda x: spec.batch_norm_training(x, eps=1e-5), "batch_norm", 2, [(4,), (2,) * 6]),
        (
            lambda x: spec.batch_norm_training_vjp(x, x, eps=1e-5),
            "batch_norm",
            2,
            [(4,), (2,) * 6],
        ),
        (
            lambda x: spec.batch_norm_evaluation(
                x, running_mean=np.zeros(2), running_var=np.ones(2), eps=1e-5
            ),
            "batch_norm",
            2,
            [(2,), (2,) * 6],
        ),
        (lambda x: spec.instance_norm(x, eps=1e-5), "instance_norm", 3, [(2, 2), (2,) * 6]),
        (lambda x: spec.instance_norm_vjp(x, x, eps=1e-5), "instance_norm", 3, [(2, 2)]),
        (lambda x: spec.instance_norm_batch_statistics(x), "instance_norm", 3, [(2, 2)]),
        (lambda x: spec.group_norm(x, num_groups=1, eps=1e-5), "group_norm", 2, [(4,), (2,) * 6]),
        (lambda x: spec.group_norm_vjp(x, x, num_groups=1, eps=1e-5), "group_norm", 2, [(4,)]),
    ],
    ids=[
        "batch_norm_training",
        "batch_norm_training_vjp",
        "batch_norm_evaluation",
        "instance_norm",
        "instance_norm_vjp",
        "instance_norm_batch_statistics",
        "group_norm",
        "group_norm_vjp",
    ],
)
def test_input_rank_outside_the_norms_range_is_rejected(call, name, low, shapes):
    """Channels-first inputs (N, C, *spatial) have 0 to 3 spatial dims (1 to 3 for
    InstanceNorm)."""
    for shape in shapes:
        message = (
            rf"{name} expects an input of rank {low} to 5 \(N, C, \*spatial\), "
            rf"got shape {re_tuple(shape)} of rank {len(shape)}"
        )
        with pytest.raises(NormParameterError, match=message):
            call(np.ones(shape))
