"""The specification checked against itself: small examples worked by hand, the table of norms,
every hand-derived VJP against finite differences, the running-statistics recurrence, and the
edges of the spec's domain (its refusals are in tests/test_errors.py).

The spec is the oracle of the whole suite, so nothing here compares it with a backend: each
claim is checked against arithmetic a reader can redo on paper, or against a second, naive
computation (finite differences, NumPy's ddof) that shares none of its code.
"""

from __future__ import annotations

import inspect
import math
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from normspec import spec, vocabulary
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
    y = spec.layer_norm(np.array([1.0, 2.0, 3.0]), normalized_shape=(3,), eps=0.0).y
    assert_float64_equal(y, [-math.sqrt(1.5), 0.0, math.sqrt(1.5)])


def test_layer_norm_adds_eps_to_the_biased_variance():
    """[1, 3]: mean 2, var 1; with eps = 3, (x - 2) / sqrt(1 + 3) = [-1/2, 1/2]."""
    y = spec.layer_norm(np.array([1.0, 3.0]), normalized_shape=(2,), eps=3.0).y
    assert_float64_equal(y, [-0.5, 0.5])


def test_layer_norm_normalizes_each_leading_index_on_its_own():
    """Rows [1, 3] and [10, 30] both standardize to [-1, 1]."""
    y = spec.layer_norm(np.array([[1.0, 3.0], [10.0, 30.0]]), normalized_shape=(2,), eps=0.0).y
    assert_float64_equal(y, [[-1.0, 1.0], [-1.0, 1.0]])


def test_layer_norm_pools_every_trailing_dim_of_normalized_shape():
    """normalized_shape (2, 2) pools all four values [[0, 2], [4, 6]]: mean 3, var 5."""
    x = np.array([[[0.0, 2.0], [4.0, 6.0]]])
    y = spec.layer_norm(x, normalized_shape=(2, 2), eps=0.0).y
    assert_float64_equal(y, (x - 3.0) / math.sqrt(5.0))


def test_layer_norm_weight_and_bias_are_elementwise_over_normalized_shape():
    """x_hat = [-1, 1], weight [2, 3], bias [10, 20]: y = [2 * -1 + 10, 3 * 1 + 20]."""
    y = spec.layer_norm(
        np.array([1.0, 3.0]),
        normalized_shape=(2,),
        eps=0.0,
        weight=np.array([2.0, 3.0]),
        bias=np.array([10.0, 20.0]),
    ).y
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
    y = spec.group_norm(np.array([[0.0, 2.0, 10.0, 14.0]]), num_groups=2, eps=0.0).y
    assert_float64_equal(y, [[-1.0, 1.0, -1.0, 1.0]])


def test_group_norm_pools_the_channels_of_a_group_with_their_spatial_positions():
    """C = 2, G = 1, x (1, 2, 2) = [[[0, 2], [4, 6]]]: S = all four values, mean 3, var 5."""
    x = np.array([[[0.0, 2.0], [4.0, 6.0]]])
    assert_float64_equal(spec.group_norm(x, num_groups=1, eps=0.0).y, (x - 3.0) / math.sqrt(5.0))


def test_group_norm_weight_and_bias_are_per_channel_not_per_group():
    """Groups {0, 1} and {2, 3} standardize to [-1, 1, -1, 1]; weight and bias have C = 4
    entries."""
    y = spec.group_norm(
        np.array([[0.0, 2.0, 10.0, 14.0]]),
        num_groups=2,
        eps=0.0,
        weight=np.array([1.0, 2.0, 3.0, 4.0]),
        bias=np.array([0.0, 0.0, 0.0, 10.0]),
    ).y
    assert_float64_equal(y, [[-1.0, 2.0, -3.0, 14.0]])


def test_instance_norm_pools_each_sample_and_channel_on_its_own():
    """Each (n, c) row of two values standardizes to [-1, 1] or [1, -1] by its own order,
    whatever the other rows hold."""
    x = np.array([[[1.0, 3.0], [10.0, 0.0]], [[5.0, 9.0], [-2.0, -8.0]]])
    y = spec.instance_norm(x, eps=0.0).y
    assert_float64_equal(y, [[[-1.0, 1.0], [1.0, -1.0]], [[-1.0, 1.0], [1.0, -1.0]]])


def test_instance_norm_of_0_0_3_has_mean_1_and_variance_2():
    """[0, 0, 3]: mean 1, biased var (1 + 1 + 4) / 3 = 2, y = [-1, -1, 2] / sqrt(2)."""
    y = spec.instance_norm(np.array([[[0.0, 0.0, 3.0]]]), eps=0.0).y
    assert_float64_equal(y, [[[-1 / math.sqrt(2), -1 / math.sqrt(2), 2 / math.sqrt(2)]]])


def test_instance_norm_batch_statistics_average_the_instances():
    """Instances [0, 2] (mean 1, var 1) and [4, 8] (mean 6, var 4) of one channel: the
    statistics fed to the running values are mean 3.5, var 2.5, count |S| = 2 (not N |S|)."""
    x = np.array([[[0.0, 2.0]], [[4.0, 8.0]]])
    stats = spec.batch_statistics(spec.instance_norm(x, eps=1.0))
    assert_float64_equal(stats.mean, [3.5])
    assert_float64_equal(stats.var, [2.5])
    assert stats.count == 2


# --- RMSNorm ---------------------------------------------------------------------------------


def test_rms_norm_of_3_4_is_3_4_over_root_12_5():
    """mean(x^2) = (9 + 16) / 2 = 12.5."""
    y = spec.rms_norm(np.array([3.0, 4.0]), normalized_shape=(2,), eps=0.0).y
    assert_float64_equal(y, np.array([3.0, 4.0]) / math.sqrt(12.5))


def test_rms_norm_does_not_center():
    """A constant row [2, 2] has rms 2 and maps to [1, 1], where LayerNorm would give 0/0."""
    y = spec.rms_norm(np.array([2.0, 2.0]), normalized_shape=(2,), eps=0.0).y
    assert_float64_equal(y, [1.0, 1.0])


def test_rms_norm_adds_eps_to_the_mean_square_and_scales_by_weight():
    """[3, 4] with eps 3.5: sqrt(12.5 + 3.5) = 4, so x_hat = [3/4, 1]; weight [4, -2]."""
    y = spec.rms_norm(
        np.array([3.0, 4.0]), normalized_shape=(2,), eps=3.5, weight=np.array([4.0, -2.0])
    ).y
    assert_float64_equal(y, [3.0, -2.0])


# --- WeightNorm ------------------------------------------------------------------------------


def test_weight_norm_with_dim_0_normalizes_each_row():
    """Rows [3, 4, 0] (norm 5) and [0, 0, 2] (norm 2), g = [[10], [3]]:
    w = [[6, 8, 0], [0, 0, 3]]."""
    v = np.array([[3.0, 4.0, 0.0], [0.0, 0.0, 2.0]])
    w = spec.weight_norm(v, np.array([[10.0], [3.0]]), dim=0).y
    assert_float64_equal(w, [[6.0, 8.0, 0.0], [0.0, 0.0, 3.0]])


def test_weight_norm_with_dim_1_normalizes_each_column():
    """Columns [3, 4] (norm 5) and [1, 0] (norm 1), g = [[5, 2]]: w = [[3, 2], [4, 0]]."""
    v = np.array([[3.0, 1.0], [4.0, 0.0]])
    w = spec.weight_norm(v, np.array([[5.0, 2.0]]), dim=1).y
    assert_float64_equal(w, [[3.0, 2.0], [4.0, 0.0]])


def test_weight_norm_with_dim_none_normalizes_the_whole_tensor():
    """||[[3, 4], [0, 0]]|| = 5 and g = [[10]]: w = 2 v."""
    v = np.array([[3.0, 4.0], [0.0, 0.0]])
    assert_float64_equal(spec.weight_norm(v, np.array([[10.0]]), dim=None).y, 2 * v)


def test_weight_norm_negative_dim_counts_from_the_last_axis():
    v = random("negative dim v", (2, 3, 4))
    g = random("negative dim g", (1, 1, 4))
    assert_float64_equal(spec.weight_norm(v, g, dim=-1).y, spec.weight_norm(v, g, dim=2).y)


def test_weight_norm_g_shape_keeps_only_dim():
    assert spec.weight_norm_g_shape((2, 3, 4), 1) == (1, 3, 1)
    assert spec.weight_norm_g_shape((2, 3, 4), -1) == (1, 1, 4)
    assert spec.weight_norm_g_shape((2, 3, 4), None) == (1, 1, 1)


# --- the table of norms ----------------------------------------------------------------------

#: One call of each norm: an input shape and the parameters that fix its sets.
EXAMPLES = {
    "batch_norm": ((3, 2, 4), {}),
    "layer_norm": ((3, 2, 4), {"normalized_shape": (2, 4)}),
    "instance_norm": ((3, 2, 4), {}),
    "group_norm": ((3, 4, 5), {"num_groups": 2}),
    "rms_norm": ((3, 2, 4), {"normalized_shape": (4,)}),
    "weight_norm": ((3, 2, 4), {"dim": 1}),
}


def example(norm: str) -> tuple[np.ndarray, spec.Normalized]:
    """x and the spec's forward of `norm` on it, eps 0.5, with a weight (and bias) of the
    right shape."""
    shape, structure = EXAMPLES[norm]
    row = spec.NORMS[norm]
    x = random(f"table {norm}", shape)
    param_shape = row.sets(shape, **structure).param_shape
    params = {name: random(f"table {norm} {name}", param_shape) for name in ("weight", "bias")}
    params["eps"] = 0.5
    keywords = {name: params[name] for name in row.parameters if name in params}
    return x, row.forward(x, **structure, **keywords)


def test_the_table_has_a_row_for_every_norm_of_the_vocabulary():
    assert tuple(spec.NORMS) == vocabulary.NORMS


@pytest.mark.parametrize("norm", spec.NORMS)
def test_each_row_takes_the_parameters_it_names(norm):
    """forward and vjp accept the vocabulary's names the row lists: the reference binds a
    `NormInputs` through them and nothing else."""
    row = spec.NORMS[norm]
    for function, names in ((row.forward, row.parameters), (row.vjp, row.vjp_parameters)):
        accepted = inspect.signature(function).parameters
        assert set(names) <= set(accepted), (function.__name__, names)


@pytest.mark.parametrize("norm", spec.NORMS)
def test_each_forward_returns_one_mean_and_variance_per_pooled_set(norm):
    """mean and var are NumPy's mean and ddof = 0 variance over each set S of the row's view
    (RMSNorm: mean 0 and mean(x^2); WeightNorm: mean 0 and ||v||^2), one value per set."""
    x, out = example(norm)
    sets = out.sets
    values = x.reshape(sets.view)
    assert out.mean.shape == out.var.shape == sets.per_set_shape
    assert out.count * sets.number == x.size
    if norm == "weight_norm":
        expected_mean, expected_var = 0.0, np.sum(values**2, axis=sets.axes)
    elif not spec.NORMS[norm].centered:
        expected_mean, expected_var = 0.0, np.mean(values**2, axis=sets.axes)
    else:
        expected_mean, expected_var = values.mean(axis=sets.axes), values.var(axis=sets.axes)
    assert_float64_equal(out.mean, np.broadcast_to(expected_mean, sets.per_set_shape))
    assert_float64_equal(out.var, expected_var)


@pytest.mark.parametrize("norm", [n for n, row in spec.NORMS.items() if row.eps])
def test_the_output_is_computed_with_the_statistics_returned(norm):
    """Without parameters, y = (x - mean) / sqrt(var + eps) with the statistics the forward
    returns, each reshaped once to broadcast against the view."""
    shape, structure = EXAMPLES[norm]
    x = random(f"table {norm}", shape)
    out = spec.NORMS[norm].forward(x, eps=0.5, **structure)
    sets = out.sets
    x_hat = (x.reshape(sets.view) - sets.broadcastable(out.mean)) / np.sqrt(
        sets.broadcastable(out.var) + 0.5
    )
    assert_float64_equal(out.y, x_hat.reshape(x.shape))


def test_pooled_sets_of_group_norm_split_the_channels_into_groups():
    """(N, C, L) = (2, 6, 5) with G = 3 is viewed as (2, 3, 2, 5): each set is 2 channels x 5
    positions, 6 sets, parameters per channel along axis 1."""
    sets = spec.group_norm_sets((2, 6, 5), 3)
    assert (sets.view, sets.axes, sets.features, sets.param_shape) == (
        (2, 3, 2, 5),
        (2, 3),
        (1,),
        (6,),
    )
    assert (sets.count, sets.number, sets.per_set_shape) == (10, 6, (2, 3))


def test_batch_statistics_of_batch_norm_are_its_per_channel_statistics():
    x = random("batch statistics", (4, 3, 5))
    out = spec.batch_norm_training(x, eps=1e-3)
    fed = spec.batch_statistics(out)
    assert_float64_equal(fed.mean, x.mean(axis=(0, 2)))
    assert_float64_equal(fed.var, x.var(axis=(0, 2)))
    assert fed.count == 20


# --- every VJP against central finite differences --------------------------------------------

EPS = 1e-3  # small enough to matter, large enough to keep the finite differences well scaled
STEP = 1e-6  # central differences: error ~ STEP^2 * f''' + 1e-16 * |L| / STEP, both < 1e-8
FD_TOLERANCE = {"rtol": 1e-6, "atol": 1e-7}
RUNNING = {"running_mean": np.array([0.3, -1.0, 2.0]), "running_var": np.array([0.5, 2.0, 1.5])}


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
    """A row of the table at one shape, as a function of x and its affine parameters (with
    the running statistics RUNNING in evaluation mode), with its VJP."""

    norm: str
    shape: tuple[int, ...]
    structure: tuple[tuple[str, object], ...] = ()
    evaluation: bool = False

    @property
    def row(self) -> spec.Norm:
        return spec.NORMS[self.norm]

    @property
    def label(self) -> str:
        mode = "_evaluation" if self.evaluation else ""
        return f"{self.norm}{mode}{self.shape}" + "".join(f"/{v}" for _, v in self.structure)

    @property
    def param_shape(self) -> tuple[int, ...]:
        return self.row.sets(self.shape, **dict(self.structure)).param_shape

    def forward(self, x: np.ndarray, **params: np.ndarray) -> np.ndarray:
        if self.evaluation:
            return self.row.evaluation(x, eps=EPS, **RUNNING, **params)
        return self.row.forward(x, eps=EPS, **dict(self.structure), **params).y

    def vjp(self, x: np.ndarray, grad_y: np.ndarray, weight: np.ndarray | None) -> Gradients:
        if self.evaluation:
            return self.row.evaluation_vjp(x, grad_y, eps=EPS, weight=weight, **RUNNING)
        return self.row.vjp(x, grad_y, eps=EPS, weight=weight, **dict(self.structure))


def _trailing(norm: str, shape: tuple[int, ...], k: int) -> Layer:
    return Layer(norm, shape, (("normalized_shape", shape[len(shape) - k :]),))


LAYERS = [
    *(Layer("batch_norm", s) for s in [(5, 3), (2, 3, 4), (2, 2, 2, 3), (2, 1, 2, 2, 2)]),
    *(Layer("batch_norm", s, evaluation=True) for s in [(4, 3), (2, 3, 2, 2)]),
    _trailing("layer_norm", (5,), 1),
    _trailing("layer_norm", (2, 3, 4), 1),
    _trailing("layer_norm", (2, 3, 4), 2),
    Layer("instance_norm", (2, 3, 4)),
    Layer("instance_norm", (1, 2, 3, 3)),
    *(
        Layer("group_norm", shape, (("num_groups", groups),))
        for shape, groups in [((2, 4), 2), ((2, 6, 3), 3), ((1, 4, 2, 2), 1), ((2, 4, 3), 4)]
    ),
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
        if layer.row.bias:
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
    loss = lambda v, g: float(np.sum(grad_w * spec.weight_norm(v, g, dim=dim).y))

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
    return x, spec.batch_statistics(spec.batch_norm_training(x, eps=0.0))


def _running(label: str, seen: int = 0) -> RunningStatistics:
    return RunningStatistics(
        random(f"{label} mean", (3,)), np.abs(random(f"{label} var", (3,))) + 0.5, seen
    )


def test_running_update_of_a_hand_example_in_both_conventions():
    """running mean 0, batch mean 10: momentum 0.1 on the new value, or 0.9 on the old one,
    both give 0.9 * 0 + 0.1 * 10 = 1."""
    running = RunningStatistics(np.array([0.0]), np.array([1.0]), 0)
    batch = BatchStatistics(np.array([10.0]), np.array([3.0]), 2)
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
        spec.batch_statistics(spec.instance_norm(x, eps=1.0)),
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


# --- the domain: what the spec computes at its edges -----------------------------------------
# (what it refuses, and the messages, are in tests/test_errors.py)

#: The norms whose formula has an eps.
EPS_NORMS = [n for n, row in spec.NORMS.items() if row.eps]


def _structure_for(norm: str, shape: tuple[int, ...]) -> dict:
    """The parameters that fix S for an input of `shape`: the last axis, or two groups."""
    values = {"normalized_shape": shape[-1:], "num_groups": 2}
    return {name: values[name] for name in spec.NORMS[norm].structure}


@pytest.mark.parametrize("norm", EPS_NORMS)
def test_eps_just_above_minus_the_smallest_variance_is_computed(norm):
    """A negative eps is in the domain while var_S + eps > 0 for every set: with eps a hair
    above -min(var_S), every output is finite and follows the formula."""
    x = random(f"negative eps {norm}", (3, 4, 5))
    row, structure = spec.NORMS[norm], _structure_for(norm, (3, 4, 5))
    smallest = float(np.min(row.forward(x, eps=0.0, **structure).var))
    eps = -smallest * (1 - 1e-6)
    out = row.forward(x, eps=eps, **structure)
    sets = out.sets
    x_hat = (x.reshape(sets.view) - sets.broadcastable(out.mean)) / np.sqrt(
        sets.broadcastable(out.var) + eps
    )
    assert np.all(np.isfinite(out.y))
    np.testing.assert_allclose(out.y, x_hat.reshape(x.shape), rtol=1e-9)
    assert np.all(np.isfinite(row.vjp(x, np.ones_like(x), eps=eps, **structure).x))


@pytest.mark.parametrize("norm", EPS_NORMS)
def test_eps_at_minus_the_smallest_variance_is_nan_in_that_set_and_nowhere_else(norm):
    """eps = -min(var_S) exactly: sigma = 0 in the set of the smallest variance, whose output
    and gradient are NaN (undefined, not refused); every other set is computed."""
    x = random(f"eps at the edge {norm}", (3, 4, 5))
    row, structure = spec.NORMS[norm], _structure_for(norm, (3, 4, 5))
    var = row.forward(x, eps=0.0, **structure).var
    eps = -float(np.min(var))
    out = row.forward(x, eps=eps, **structure)
    grad_x = row.vjp(x, np.ones_like(x), eps=eps, **structure).x
    sets, smallest = out.sets, var == np.min(var)
    for values in (out.y, grad_x):
        per_set = sets.of(values)
        assert np.array_equal(np.all(np.isnan(per_set), axis=sets.axes), smallest)
        assert np.array_equal(np.all(np.isfinite(per_set), axis=sets.axes), ~smallest)


def test_negative_eps_of_a_hand_example():
    """Rows [1, 3] (mean 2, var 1) and [1, 5] (mean 3, var 4), eps = -0.75:
    (x - mean) / sqrt(var - 0.75) = [-2, 2] and [-2, 2] / sqrt(3.25)."""
    y = spec.layer_norm(np.array([[1.0, 3.0], [1.0, 5.0]]), normalized_shape=(2,), eps=-0.75).y
    assert_float64_equal(y, [[-2.0, 2.0], [-2 / math.sqrt(3.25), 2 / math.sqrt(3.25)]])


def test_eps_at_minus_the_smallest_variance_is_nan_in_that_set_only():
    """eps = -1 makes var_S + eps = 0 for the row [1, 3]: x_hat = (x - 2) / 0 is undefined,
    NaN for the whole row and its gradient; the row [1, 5] (var 4) is (x - 3) / sqrt(3)."""
    x = np.array([[1.0, 3.0], [1.0, 5.0]])
    y = spec.layer_norm(x, normalized_shape=(2,), eps=-1.0).y
    assert np.all(np.isnan(y[0]))
    assert_float64_equal(y[1], [-2 / math.sqrt(3), 2 / math.sqrt(3)])
    grads = spec.layer_norm_vjp(x, np.ones_like(x), normalized_shape=(2,), eps=-1.0)
    assert np.all(np.isnan(grads.x[0])) and np.all(np.isfinite(grads.x[1]))


def test_a_constant_set_with_zero_eps_is_nan_not_an_error():
    """var_S + eps = 0 at eps = 0 is 0 / 0: NaN, the value frameworks declare a convention
    for; RMSNorm's is a set of zeros."""
    assert np.all(np.isnan(spec.layer_norm(np.full((2, 3), 2.0), normalized_shape=(3,), eps=0.0).y))
    assert np.all(np.isnan(spec.rms_norm(np.zeros((2, 3)), normalized_shape=(3,), eps=0.0).y))


def test_evaluation_with_running_var_plus_eps_zero_is_nan_in_that_channel_only():
    """running_var = [1, 4] with eps = -1: channel 0 has sigma 0 (NaN), channel 1 sigma sqrt(3)."""
    y = spec.batch_norm_evaluation(
        np.array([[1.0, 5.0]]), running_mean=np.zeros(2), running_var=np.array([1.0, 4.0]), eps=-1.0
    )
    assert np.isnan(y[0, 0])
    assert_float64_equal(y[0, 1], 5 / math.sqrt(3))


def test_a_negative_running_variance_is_computed_while_running_var_plus_eps_is_positive():
    """An extrapolating momentum can make running_var negative; with eps = 3, -2 + 3 = 1."""
    y = spec.batch_norm_evaluation(
        np.array([[4.0]]), running_mean=np.array([1.0]), running_var=np.array([-2.0]), eps=3.0
    )
    assert_float64_equal(y, [[3.0]])


@pytest.mark.parametrize(
    ("momentum", "weighs", "mean", "var"),
    [
        (2.0, "new", 16.0, 5.0),
        (-1.0, "new", -2.0, -1.0),
        (2.0, "old", -2.0, -1.0),
        (-1.0, "old", 16.0, 5.0),
    ],
)
def test_momentum_outside_zero_to_one_extrapolates(momentum, weighs, mean, var):
    """running (mean 4, var 1), batch (mean 10, biased var 3): a = momentum ("new") or
    1 - momentum ("old"), and (1 - a) old + a new is 16 and 5 for a = 2, -2 and -1 for a = -1.
    Past the new value, or behind the old one: an average no longer, a negative variance even."""
    new = spec.running_statistics_update(
        RunningStatistics(np.array([4.0]), np.array([1.0]), 0),
        BatchStatistics(np.array([10.0]), np.array([3.0]), 2),
        momentum=momentum,
        momentum_weighs=weighs,
        running_var_estimator="biased",
    )
    assert_float64_equal(new.mean, [mean])
    assert_float64_equal(new.var, [var])


@pytest.mark.parametrize("norm", [n for n in EPS_NORMS if n != "batch_norm"])
def test_an_empty_batch_gives_an_empty_output_where_the_sets_lie_within_a_sample(norm):
    """N = 0: LayerNorm, InstanceNorm, GroupNorm and RMSNorm have no set at all, so there is
    nothing undefined; the output, the statistics and the gradient are empty."""
    row, structure = spec.NORMS[norm], _structure_for(norm, (0, 4, 3))
    assert 0 not in row.sets((0, 4, 3), **structure).axes
    out = row.forward(np.zeros((0, 4, 3)), eps=1e-5, **structure)
    assert out.y.shape == (0, 4, 3) and out.mean.size == 0
    assert row.vjp(np.zeros((0, 4, 3)), np.zeros((0, 4, 3)), eps=1e-5, **structure).x.shape == (
        0,
        4,
        3,
    )


def test_batch_norm_evaluation_of_an_empty_batch_is_empty():
    """With running statistics nothing is pooled, so N = 0 is fine: an empty output, and
    parameter gradients that are sums over nothing, 0."""
    x = np.zeros((0, 3, 2))
    y = spec.batch_norm_evaluation(x, eps=1e-5, weight=np.ones(3), bias=np.ones(3), **RUNNING)
    assert y.shape == (0, 3, 2)
    grads = spec.batch_norm_evaluation_vjp(x, x, eps=1e-5, weight=np.ones(3), **RUNNING)
    assert grads.x.shape == (0, 3, 2)
    assert_float64_equal(grads.weight, np.zeros(3))
    assert_float64_equal(grads.bias, np.zeros(3))


def test_batch_norm_training_of_one_value_per_channel_gives_the_bias():
    """N * prod(spatial) = 1: mean_S is the value and the biased var_S is 0, both defined, so
    y = weight * 0 / sqrt(eps) + bias = bias. Only the Bessel factor 1 / 0 is undefined (see
    test_errors)."""
    out = spec.batch_norm_training(
        np.array([[5.0, 7.0]]), eps=1e-3, weight=np.array([3.0, 4.0]), bias=np.array([1.0, 2.0])
    )
    assert_float64_equal(out.y, [[1.0, 2.0]])
    assert_float64_equal(out.var, [0.0, 0.0])
    assert out.count == 1
    running = spec.running_statistics_update(
        RunningStatistics(np.zeros(2), np.ones(2), 0),
        spec.batch_statistics(out),
        momentum=0.5,
        momentum_weighs="new",
        running_var_estimator="biased",
    )
    assert_float64_equal(running.var, [0.5, 0.5])


def test_layer_norm_over_no_axes_pools_each_value_alone():
    """normalized_shape () makes every value a set of one: x_hat = 0, y = bias (weight and
    bias have shape ()); RMSNorm over () is x / sqrt(x^2 + eps)."""
    x = np.array([[3.0, -4.0]])
    y = spec.layer_norm(x, normalized_shape=(), eps=1.0, weight=np.array(2.0), bias=np.array(7.0))
    assert_float64_equal(y.y, [[7.0, 7.0]])
    assert_float64_equal(
        spec.rms_norm(x, normalized_shape=(), eps=16.0).y, [[3 / 5, -4 / math.sqrt(32)]]
    )


def test_batch_norm_pools_any_number_of_spatial_dims():
    """(N, C, 2, 2, 2, 2) is (N, C, 16) pooled the same way: rank 6 is no less defined."""
    x = random("rank 6", (2, 3, 2, 2, 2, 2))
    flat = spec.batch_norm_training(x.reshape(2, 3, 16), eps=1e-3).y
    assert_float64_equal(spec.batch_norm_training(x, eps=1e-3).y, flat.reshape(x.shape))


def test_weight_norm_of_a_zero_slice_is_nan_in_that_slice_only():
    """||v|| = 0 for row 0: w = g * 0 / 0, undefined; row 1 is g * v / ||v||."""
    w = spec.weight_norm(np.array([[0.0, 0.0], [3.0, 4.0]]), np.ones((2, 1)), dim=0).y
    assert np.all(np.isnan(w[0]))
    assert_float64_equal(w[1], [0.6, 0.8])
