"""The specification checked against itself: small examples worked by hand, every hand-derived
VJP against finite differences, and the running-statistics recurrence (the errors of every
invalid parameter are in tests/test_errors.py).

The spec is the oracle of the whole suite, so nothing here compares it with a backend: each
claim is checked against arithmetic a reader can redo on paper, or against a second, naive
computation (finite differences, NumPy's ddof) that shares none of its code.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from normspec import spec
from normspec.spec import BatchStatistics, RunningStatistics
from normspec.vocabulary import Gradients


def assert_float64_equal(actual: np.ndarray, expected: np.ndarray | list) -> None:
    """Equal up to the float64 rounding of a few operations: the examples are exact on paper."""
    np.testing.assert_allclose(actual, np.asarray(expected, dtype=np.float64), rtol=1e-13, atol=0)


def random(label: str, shape: tuple[int, ...]) -> np.ndarray:
    """Standard normal values, seeded by a label so that each test is reproducible alone."""
    return np.random.default_rng(zlib.crc32(label.encode())).standard_normal(shape)


# --- LayerNorm -------------------------------------------------------------------------------


def test_layer_norm_of_1_2_3_is_minus_root_three_halves_zero_root_three_halves():
    """mean 2, biased var 2/3, so (x - 2) / sqrt(2/3) = [-sqrt(3/2), 0, sqrt(3/2)]."""
    y = spec.layer_norm(np.array([1.0, 2.0, 3.0]), normalized_shape=(3,), eps=0.0)
    assert_float64_equal(y, [-math.sqrt(1.5), 0.0, math.sqrt(1.5)])


def test_layer_norm_adds_eps_to_the_biased_variance():
    """[1, 3]: mean 2, var 1; with eps = 3, (x - 2) / sqrt(1 + 3) = [-1/2, 1/2]."""
    y = spec.layer_norm(np.array([1.0, 3.0]), normalized_shape=(2,), eps=3.0)
    assert_float64_equal(y, [-0.5, 0.5])


def test_layer_norm_normalizes_each_leading_index_on_its_own():
    """Rows [1, 3] and [10, 30] both standardize to [-1, 1]."""
    y = spec.layer_norm(np.array([[1.0, 3.0], [10.0, 30.0]]), normalized_shape=(2,), eps=0.0)
    assert_float64_equal(y, [[-1.0, 1.0], [-1.0, 1.0]])


def test_layer_norm_pools_every_trailing_dim_of_normalized_shape():
    """normalized_shape (2, 2) pools all four values [[0, 2], [4, 6]]: mean 3, var 5."""
    x = np.array([[[0.0, 2.0], [4.0, 6.0]]])
    y = spec.layer_norm(x, normalized_shape=(2, 2), eps=0.0)
    assert_float64_equal(y, (x - 3.0) / math.sqrt(5.0))


def test_layer_norm_weight_and_bias_are_elementwise_over_normalized_shape():
    """x_hat = [-1, 1], weight [2, 3], bias [10, 20]: y = [2 * -1 + 10, 3 * 1 + 20]."""
    y = spec.layer_norm(
        np.array([1.0, 3.0]),
        normalized_shape=(2,),
        eps=0.0,
        weight=np.array([2.0, 3.0]),
        bias=np.array([10.0, 20.0]),
    )
    assert_float64_equal(y, [8.0, 23.0])


# --- BatchNorm -------------------------------------------------------------------------------


def test_batch_norm_training_over_a_batch_of_two_single_values():
    """x = [[1], [3]] (N = 2, C = 1): mean 2, biased var 1, count 2, y = [[-1], [1]]."""
    stats = spec.batch_norm_training(np.array([[1.0], [3.0]]), eps=0.0)
    assert_float64_equal(stats.y, [[-1.0], [1.0]])
    assert_float64_equal(stats.mean, [2.0])
    assert_float64_equal(stats.var, [1.0])
    assert stats.count == 2


def test_batch_norm_training_keeps_channels_apart():
    """Channel 0 holds [1, 3] (mean 2, var 1), channel 1 holds [10, 30] (mean 20, var 100)."""
    stats = spec.batch_norm_training(np.array([[1.0, 10.0], [3.0, 30.0]]), eps=0.0)
    assert_float64_equal(stats.y, [[-1.0, -1.0], [1.0, 1.0]])
    assert_float64_equal(stats.mean, [2.0, 20.0])
    assert_float64_equal(stats.var, [1.0, 100.0])


def test_batch_norm_training_pools_the_spatial_positions_with_the_batch():
    """x (2, 1, 2) = [[[0, 2]], [[4, 6]]]: S = all four values, mean 3, var 5, count 4."""
    x = np.array([[[0.0, 2.0]], [[4.0, 6.0]]])
    stats = spec.batch_norm_training(x, eps=0.0)
    assert_float64_equal(stats.y, (x - 3.0) / math.sqrt(5.0))
    assert_float64_equal(stats.var, [5.0])
    assert stats.count == 4


def test_batch_norm_training_applies_weight_and_bias_per_channel():
    """x_hat = [[-1, -1], [1, 1]], weight [2, 3], bias [0, 100]."""
    stats = spec.batch_norm_training(
        np.array([[1.0, 10.0], [3.0, 30.0]]),
        eps=0.0,
        weight=np.array([2.0, 3.0]),
        bias=np.array([0.0, 100.0]),
    )
    assert_float64_equal(stats.y, [[-2.0, 97.0], [2.0, 103.0]])


def test_batch_norm_evaluation_of_a_hand_example():
    """x = [[0], [4]], running mean 2, running var 3, eps 1: (x - 2) / sqrt(4) = [[-1], [1]]."""
    y = spec.batch_norm_evaluation(
        np.array([[0.0], [4.0]]), running_mean=np.array([2.0]), running_var=np.array([3.0]), eps=1.0
    )
    assert_float64_equal(y, [[-1.0], [1.0]])


def test_batch_norm_evaluation_is_the_affine_map_of_the_running_statistics():
    """y = weight_c * (x - running_mean_c) / sqrt(running_var_c + eps) + bias_c, written here
    with one explicit reshape of each per-channel parameter."""
    x = random("evaluation x", (4, 3, 2, 2))
    mean, weight, bias = (random(f"evaluation {p}", (3,)) for p in ("mean", "weight", "bias"))
    var = np.abs(random("evaluation var", (3,))) + 0.5
    per_channel = lambda p: p.reshape(1, 3, 1, 1)
    expected = per_channel(weight) * (x - per_channel(mean)) / np.sqrt(
        per_channel(var) + 1e-3
    ) + per_channel(bias)
    y = spec.batch_norm_evaluation(
        x, running_mean=mean, running_var=var, eps=1e-3, weight=weight, bias=bias
    )
    assert_float64_equal(y, expected)


def test_batch_norm_evaluation_with_the_batch_statistics_equals_training():
    """Evaluation mode fed the batch's own mean and biased variance reproduces training mode."""
    x = random("evaluation equals training", (5, 3, 4))
    weight, bias = random("eq weight", (3,)), random("eq bias", (3,))
    stats = spec.batch_norm_training(x, eps=1e-3, weight=weight, bias=bias)
    y = spec.batch_norm_evaluation(
        x, running_mean=stats.mean, running_var=stats.var, eps=1e-3, weight=weight, bias=bias
    )
    assert_float64_equal(y, stats.y)


def test_batch_norm_evaluation_accepts_one_value_per_channel():
    """Only training needs two values per channel: evaluation uses no batch statistics."""
    y = spec.batch_norm_evaluation(
        np.array([[5.0]]), running_mean=np.array([1.0]), running_var=np.array([4.0]), eps=0.0
    )
    assert_float64_equal(y, [[2.0]])


# --- GroupNorm and InstanceNorm --------------------------------------------------------------


def test_group_norm_groups_are_contiguous_channels():
    """C = 4, G = 2: groups {0, 1} = [0, 2] and {2, 3} = [10, 14], each standardizing to
    [-1, 1]. Interleaved groups {0, 2} = [0, 10] and {1, 3} = [2, 14] would give
    [-1, -1, 1, 1] instead."""
    y = spec.group_norm(np.array([[0.0, 2.0, 10.0, 14.0]]), num_groups=2, eps=0.0)
    assert_float64_equal(y, [[-1.0, 1.0, -1.0, 1.0]])


def test_group_norm_pools_the_channels_of_a_group_with_their_spatial_positions():
    """C = 2, G = 1, x (1, 2, 2) = [[[0, 2], [4, 6]]]: S = all four values, mean 3, var 5."""
    x = np.array([[[0.0, 2.0], [4.0, 6.0]]])
    assert_float64_equal(spec.group_norm(x, num_groups=1, eps=0.0), (x - 3.0) / math.sqrt(5.0))


def test_group_norm_weight_and_bias_are_per_channel_not_per_group():
    """Groups {0, 1} and {2, 3} standardize to [-1, 1, -1, 1]; weight and bias have C = 4
    entries."""
    y = spec.group_norm(
        np.array([[0.0, 2.0, 10.0, 14.0]]),
        num_groups=2,
        eps=0.0,
        weight=np.array([1.0, 2.0, 3.0, 4.0]),
        bias=np.array([0.0, 0.0, 0.0, 10.0]),
    )
    assert_float64_equal(y, [[-1.0, 2.0, -3.0, 14.0]])


def test_instance_norm_pools_each_sample_and_channel_on_its_own():
    """Each (n, c) row of two values standardizes to [-1, 1] or [1, -1] by its own order,
    whatever the other rows hold."""
    x = np.array([[[1.0, 3.0], [10.0, 0.0]], [[5.0, 9.0], [-2.0, -8.0]]])
    y = spec.instance_norm(x, eps=0.0)
    assert_float64_equal(y, [[[-1.0, 1.0], [1.0, -1.0]], [[-1.0, 1.0], [1.0, -1.0]]])


def test_instance_norm_of_0_0_3_has_mean_1_and_variance_2():
    """[0, 0, 3]: mean 1, biased var (1 + 1 + 4) / 3 = 2, y = [-1, -1, 2] / sqrt(2)."""
    y = spec.instance_norm(np.array([[[0.0, 0.0, 3.0]]]), eps=0.0)
    assert_float64_equal(y, [[[-1 / math.sqrt(2), -1 / math.sqrt(2), 2 / math.sqrt(2)]]])


def test_instance_norm_batch_statistics_average_the_instances():
    """Instances [0, 2] (mean 1, var 1) and [4, 8] (mean 6, var 4) of one channel: the
    statistics fed to the running values are mean 3.5, var 2.5, count |S| = 2 (not N |S|)."""
    stats = spec.instance_norm_batch_statistics(np.array([[[0.0, 2.0]], [[4.0, 8.0]]]))
    assert_float64_equal(stats.mean, [3.5])
    assert_float64_equal(stats.var, [2.5])
    assert stats.count == 2


# --- RMSNorm ---------------------------------------------------------------------------------


def test_rms_norm_of_3_4_is_3_4_over_root_12_5():
    """mean(x^2) = (9 + 16) / 2 = 12.5."""
    y = spec.rms_norm(np.array([3.0, 4.0]), normalized_shape=(2,), eps=0.0)
    assert_float64_equal(y, np.array([3.0, 4.0]) / math.sqrt(12.5))


def test_rms_norm_does_not_center():
    """A constant row [2, 2] has rms 2 and maps to [1, 1], where LayerNorm would give 0/0."""
    y = spec.rms_norm(np.array([2.0, 2.0]), normalized_shape=(2,), eps=0.0)
    assert_float64_equal(y, [1.0, 1.0])


def test_rms_norm_adds_eps_to_the_mean_square_and_scales_by_weight():
    """[3, 4] with eps 3.5: sqrt(12.5 + 3.5) = 4, so x_hat = [3/4, 1]; weight [4, -2]."""
    y = spec.rms_norm(
        np.array([3.0, 4.0]), normalized_shape=(2,), eps=3.5, weight=np.array([4.0, -2.0])
    )
    assert_float64_equal(y, [3.0, -2.0])


# --- WeightNorm ------------------------------------------------------------------------------


def test_weight_norm_with_dim_0_normalizes_each_row():
    """Rows [3, 4, 0] (norm 5) and [0, 0, 2] (norm 2), g = [[10], [3]]:
    w = [[6, 8, 0], [0, 0, 3]]."""
    v = np.array([[3.0, 4.0, 0.0], [0.0, 0.0, 2.0]])
    w = spec.weight_norm(v, np.array([[10.0], [3.0]]), dim=0)
    assert_float64_equal(w, [[6.0, 8.0, 0.0], [0.0, 0.0, 3.0]])


def test_weight_norm_with_dim_1_normalizes_each_column():
    """Columns [3, 4] (norm 5) and [1, 0] (norm 1), g = [[5, 2]]: w = [[3, 2], [4, 0]]."""
    v = np.array([[3.0, 1.0], [4.0, 0.0]])
    w = spec.weight_norm(v, np.array([[5.0, 2.0]]), dim=1)
    assert_float64_equal(w, [[3.0, 2.0], [4.0, 0.0]])


def test_weight_norm_with_dim_none_normalizes_the_whole_tensor():
    """||[[3, 4], [0, 0]]|| = 5 and g = [[10]]: w = 2 v."""
    v = np.array([[3.0, 4.0], [0.0, 0.0]])
    assert_float64_equal(spec.weight_norm(v, np.array([[10.0]]), dim=None), 2 * v)


def test_weight_norm_negative_dim_counts_from_the_last_axis():
    v = random("negative dim v", (2, 3, 4))
    g = random("negative dim g", (1, 1, 4))
    assert_float64_equal(spec.weight_norm(v, g, dim=-1), spec.weight_norm(v, g, dim=2))


def test_weight_norm_g_shape_keeps_only_dim():
    assert spec.weight_norm_g_shape((2, 3, 4), 1) == (1, 3, 1)
    assert spec.weight_norm_g_shape((2, 3, 4), -1) == (1, 1, 4)
    assert spec.weight_norm_g_shape((2, 3, 4), None) == (1, 1, 1)


# --- every VJP against central finite differences --------------------------------------------

EPS = 1e-3  # small enough to matter, large enough to keep the finite differences well scaled
STEP = 1e-6  # central differences: error ~ STEP^2 * f''' + 1e-16 * |L| / STEP, both < 1e-8
FD_TOLERANCE = {"rtol": 1e-6, "atol": 1e-7}
RUNNING_MEAN = np.array([0.3, -1.0, 2.0])
RUNNING_VAR = np.array([0.5, 2.0, 1.5])


def numerical_gradient(loss: Callable[[np.ndarray], float], a: np.ndarray) -> np.ndarray:
    """dL/da by central differences, one element at a time."""
    grad = np.zeros_like(a)
    for i in np.ndindex(a.shape):
        step = np.zeros_like(a)
        step[i] = STEP
        grad[i] = (loss(a + step) - loss(a - step)) / (2 * STEP)
    return grad


@dataclass(frozen=True)
class Layer:
    """A norm at one shape as a function of x and its affine parameters, with its VJP."""

    label: str
    shape: tuple[int, ...]
    forward: Callable[..., np.ndarray]  # forward(x, weight=, bias=) -> y
    vjp: Callable[..., Gradients]  # vjp(x, grad_y, weight=) -> Gradients
    param_shape: tuple[int, ...]
    has_bias: bool = True


def _batch_norm(shape: tuple[int, ...]) -> Layer:
    forward = lambda x, **affine: spec.batch_norm_training(x, eps=EPS, **affine).y
    vjp = partial(spec.batch_norm_training_vjp, eps=EPS)
    return Layer(f"batch_norm{shape}", shape, forward, vjp, (shape[1],))


def _batch_norm_evaluation(shape: tuple[int, ...]) -> Layer:
    stats = {"running_mean": RUNNING_MEAN, "running_var": RUNNING_VAR, "eps": EPS}
    forward = partial(spec.batch_norm_evaluation, **stats)
    vjp = partial(spec.batch_norm_evaluation_vjp, **stats)
    return Layer(f"batch_norm_evaluation{shape}", shape, forward, vjp, (shape[1],))


def _trailing(norm: str, shape: tuple[int, ...], k: int) -> Layer:
    normalized = shape[len(shape) - k :]
    forward = partial(getattr(spec, norm), normalized_shape=normalized, eps=EPS)
    vjp = partial(getattr(spec, f"{norm}_vjp"), normalized_shape=normalized, eps=EPS)
    return Layer(f"{norm}{shape}/{normalized}", shape, forward, vjp, normalized, norm != "rms_norm")


def _instance_norm(shape: tuple[int, ...]) -> Layer:
    forward = partial(spec.instance_norm, eps=EPS)
    vjp = partial(spec.instance_norm_vjp, eps=EPS)
    return Layer(f"instance_norm{shape}", shape, forward, vjp, (shape[1],))


def _group_norm(shape: tuple[int, ...], groups: int) -> Layer:
    forward = partial(spec.group_norm, num_groups=groups, eps=EPS)
    vjp = partial(spec.group_norm_vjp, num_groups=groups, eps=EPS)
    return Layer(f"group_norm{shape}/G={groups}", shape, forward, vjp, (shape[1],))


LAYERS = [
    _batch_norm((5, 3)),
    _batch_norm((2, 3, 4)),
    _batch_norm((2, 2, 2, 3)),
    _batch_norm((2, 1, 2, 2, 2)),
    _batch_norm_evaluation((4, 3)),
    _batch_norm_evaluation((2, 3, 2, 2)),
    _trailing("layer_norm", (5,), 1),
    _trailing("layer_norm", (2, 3, 4), 1),
    _trailing("layer_norm", (2, 3, 4), 2),
    _instance_norm((2, 3, 4)),
    _instance_norm((1, 2, 3, 3)),
    _group_norm((2, 4), 2),
    _group_norm((2, 6, 3), 3),
    _group_norm((1, 4, 2, 2), 1),
    _group_norm((2, 4, 3), 4),
    _trailing("rms_norm", (5,), 1),
    _trailing("rms_norm", (2, 3, 4), 1),
    _trailing("rms_norm", (2, 3, 4), 2),
]


@pytest.mark.parametrize("affine", [False, True], ids=["plain", "affine"])
@pytest.mark.parametrize("layer", LAYERS, ids=lambda layer: layer.label)
def test_vjp_equals_central_finite_differences(layer: Layer, affine: bool):
    """For L = sum(grad_y * f(x, weight, bias)): vjp(x, grad_y) = (dL/dx, dL/dweight,
    dL/dbias), each within the error of central differences."""
    x, grad_y = random(f"{layer.label} x", layer.shape), random(f"{layer.label} g", layer.shape)
    params = {}
    if affine:
        params["weight"] = random(f"{layer.label} weight", layer.param_shape)
        if layer.has_bias:
            params["bias"] = random(f"{layer.label} bias", layer.param_shape)
    loss = lambda x, params: float(np.sum(grad_y * layer.forward(x, **params)))

    grads = layer.vjp(x, grad_y, weight=params.get("weight"))

    expected_x = numerical_gradient(lambda a: loss(a, params), x)
    np.testing.assert_allclose(grads.x, expected_x, **FD_TOLERANCE, err_msg="dL/dx")
    for name in ("weight", "bias"):
        if name not in params:
            assert getattr(grads, name) is None, f"dL/d{name} without a {name}"
            continue
        expected = numerical_gradient(
            lambda a, name=name: loss(x, {**params, name: a}), params[name]
        )
        np.testing.assert_allclose(
            getattr(grads, name), expected, **FD_TOLERANCE, err_msg=f"dL/d{name}"
        )


@pytest.mark.parametrize(
    ("shape", "dim"),
    [((3, 4), 0), ((3, 4), 1), ((3, 4), -1), ((3, 4), None), ((2, 3, 2), 1), ((5,), None)],
)
def test_weight_norm_vjp_equals_central_finite_differences(shape, dim):
    """For L = sum(grad_w * g v / ||v||): vjp = (dL/dv, dL/dg) within the error of central
    differences."""
    label = f"weight_norm{shape}/{dim}"
    v, grad_w = random(f"{label} v", shape), random(f"{label} grad", shape)
    g = random(f"{label} g", spec.weight_norm_g_shape(shape, dim))
    loss = lambda v, g: float(np.sum(grad_w * spec.weight_norm(v, g, dim=dim)))

    grads = spec.weight_norm_vjp(v, g, grad_w, dim=dim)

    np.testing.assert_allclose(
        grads.x, numerical_gradient(lambda a: loss(a, g), v), **FD_TOLERANCE, err_msg="dL/dv"
    )
    np.testing.assert_allclose(
        grads.weight, numerical_gradient(lambda a: loss(v, a), g), **FD_TOLERANCE, err_msg="dL/dg"
    )


# --- running statistics ----------------------------------------------------------------------


def _batch(label: str, shape: tuple[int, ...] = (4, 3, 5)) -> tuple[np.ndarray, BatchStatistics]:
    x = 2.0 + 3.0 * random(label, shape)
    return x, spec.batch_norm_training(x, eps=0.0)


def _running(label: str, seen: int = 0) -> RunningStatistics:
    return RunningStatistics(
        random(f"{label} mean", (3,)), np.abs(random(f"{label} var", (3,))) + 0.5, seen
    )


def test_running_update_of_a_hand_example_in_both_conventions():
    """running mean 0, batch mean 10: momentum 0.1 on the new value, or 0.9 on the old one,
    both give 0.9 * 0 + 0.1 * 10 = 1."""
    running = RunningStatistics(np.array([0.0]), np.array([1.0]), 0)
    batch = BatchStatistics(np.zeros(2), np.array([10.0]), np.array([3.0]), 2)
    for momentum, weighs in ((0.1, "new"), (0.9, "old")):
        new = spec.running_statistics_update(
            running,
            batch,
            momentum=momentum,
            momentum_weighs=weighs,
            running_var_estimator="biased",
        )
        np.testing.assert_allclose(new.mean, [1.0], rtol=1e-15)
        np.testing.assert_allclose(new.var, [0.9 * 1.0 + 0.1 * 3.0], rtol=1e-15)
        assert new.batches_seen == 1


@settings(max_examples=30, deadline=None)
@given(momentum=st.floats(0.0, 1.0), estimator=st.sampled_from(["unbiased", "biased"]))
def test_momentum_on_the_old_value_is_one_minus_momentum_on_the_new(momentum, estimator):
    """update(m, weighs="new") = update(1 - m, weighs="old"), up to the rounding of 1 - (1 - m)."""
    running, (_, batch) = _running("conventions", seen=3), _batch("conventions")
    update = partial(
        spec.running_statistics_update, running, batch, running_var_estimator=estimator
    )
    new = update(momentum=momentum, momentum_weighs="new")
    old = update(momentum=1.0 - momentum, momentum_weighs="old")
    np.testing.assert_allclose(new.mean, old.mean, rtol=1e-14, atol=1e-14)
    np.testing.assert_allclose(new.var, old.var, rtol=1e-14, atol=1e-14)
    assert new.batches_seen == old.batches_seen == 4


@pytest.mark.parametrize("weighs", ["new", "old"])
@pytest.mark.parametrize("batches", [1, 2, 5])
def test_momentum_none_is_the_plain_average_of_the_batch_statistics(batches, weighs):
    """a = 1 / t at step t makes running = (1 / t) sum of the t batch statistics: the initial
    values drop out, whichever convention is named."""
    running = RunningStatistics(np.full(3, 1e3), np.full(3, 1e3), 0)
    xs = []
    for t in range(batches):
        x, stats = _batch(f"cumulative {t}")
        xs.append(x)
        running = spec.running_statistics_update(
            running, stats, momentum=None, momentum_weighs=weighs, running_var_estimator="unbiased"
        )
    per_channel = (0, 2)
    expected_mean = np.mean([x.mean(axis=per_channel) for x in xs], axis=0)
    expected_var = np.mean([x.var(axis=per_channel, ddof=1) for x in xs], axis=0)
    assert_float64_equal(running.mean, expected_mean)
    assert_float64_equal(running.var, expected_var)
    assert running.batches_seen == batches


@pytest.mark.parametrize(("estimator", "ddof"), [("unbiased", 1), ("biased", 0)])
def test_running_variance_estimator_scales_by_count_over_count_minus_one(estimator, ddof):
    """With momentum 1 the running variance is the batch's: count / (count - 1) times the
    biased variance if unbiased (NumPy's ddof = 1), the biased variance itself if biased."""
    x, stats = _batch("estimator")
    new = spec.running_statistics_update(
        _running("estimator"),
        stats,
        momentum=1.0,
        momentum_weighs="new",
        running_var_estimator=estimator,
    )
    assert_float64_equal(new.var, x.var(axis=(0, 2), ddof=ddof))
    assert_float64_equal(new.mean, x.mean(axis=(0, 2)))


def test_instance_norm_running_variance_is_bessel_corrected_per_instance():
    """InstanceNorm feeds mean over n of var_S(x[n, c]) with count |S|: the unbiased running
    variance is the mean over n of NumPy's ddof = 1 variance of each instance."""
    x = random("instance running", (3, 2, 4))
    new = spec.running_statistics_update(
        RunningStatistics(np.zeros(2), np.ones(2), 0),
        spec.instance_norm_batch_statistics(x),
        momentum=1.0,
        momentum_weighs="new",
        running_var_estimator="unbiased",
    )
    assert_float64_equal(new.var, x.var(axis=2, ddof=1).mean(axis=0))


def test_momentum_zero_on_the_new_value_keeps_the_running_statistics():
    running, (_, stats) = _running("frozen", seen=7), _batch("frozen")
    new = spec.running_statistics_update(
        running, stats, momentum=0.0, momentum_weighs="new", running_var_estimator="unbiased"
    )
    assert_float64_equal(new.mean, running.mean)
    assert_float64_equal(new.var, running.var)
    assert new.batches_seen == 8


def test_weight_of_new_statistic_in_each_convention():
    assert spec.weight_of_new_statistic(0.25, "new", 3) == 0.25
    assert spec.weight_of_new_statistic(0.25, "old", 3) == 0.75
    assert spec.weight_of_new_statistic(None, "new", 4) == 0.25
    assert spec.weight_of_new_statistic(None, "old", 4) == 0.25
