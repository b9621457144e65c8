"""The executable specification: every normalization is one formula over a different set S.

    x_hat = (x - mean_S) / sqrt(var_S + eps),      y = weight * x_hat + bias,      var_S biased

That formula is written once, `normspec.core.normalize`. A norm is a choice of S (the
reduction axes), of the axes its parameters vary along (the feature axes) and of their shape,
which its `*_sets` function states; its forward function binds that choice to the formula,
and its `*_vjp` gives the vector-Jacobian product, derived by hand (see
`normspec.core.standardize_vjp`), never by automatic differentiation. RMSNorm is the formula
with mean_S taken as 0 (var_S becomes mean_S(x^2)); WeightNorm the formula with mean 0, no
eps and a sum in place of the mean. The table `NORMS` at the end is the one place that lists,
per norm, its sets, forward, VJP and parameters: the reference and the tests read it, and
nothing else restates a norm's S.

Each forward function returns `Normalized`: y together with mean_S and var_S of every set, as
ONNX's reference LayerNormalization returns Y, mean and 1/sigma, so that callers (the tolerance
model, the running statistics) take the statistics instead of computing them again.

Inputs are read as their exact float64 values; outputs are float64. There are no default
parameters: eps, momentum and the rest are conventions of the backends, not of the math.
Layout is channels-first throughout: x has shape (N, C, *spatial).

The domain. The spec accepts every input on which its formulas are defined, and refuses
(`NormParameterError`, naming the parameter, the value and the condition) only the rest:

* eps: any finite real with var_S + eps >= 0 for every pooled set (running_var + eps in
  evaluation mode): a negative eps is fine while it keeps sigma real. var_S + eps < 0 is
  refused, sqrt of a negative number has no real value. var_S + eps = 0 is not refused: sigma
  is 0, x_hat = (x - mean) / 0 is undefined, and the spec's value is NaN for every element
  of that set (and of its gradient). A constant set with eps = 0 is such an input, and what a
  framework returns there is its declared convention, not the spec's.
* momentum: None (the cumulative average) or any finite real. Outside [0, 1] the update
  extrapolates instead of averaging; it is still one well-defined affine combination.
* pooled sets: at least one value each, wherever there is a set: the mean of no values is
  undefined. An input with no sets (N = 0 for LayerNorm, InstanceNorm, GroupNorm, RMSNorm;
  any empty batch in BatchNorm's evaluation mode) gives an empty output. BatchNorm in
  training mode pools N * prod(spatial) values per channel, so N = 0 is refused there. One
  value per set is defined (var_S = 0, y = bias for eps > 0).
* the unbiased running variance: count >= 2 values per set, for its factor
  count / (count - 1); the biased one needs only count >= 1.
* x: rank >= 2 for the channel norms (N and C must exist; any number of spatial dims),
  NaN and inf propagate; normalized_shape: any suffix of x's shape, () included (one value per
  set); num_groups: a positive divisor of C; dim: None or an axis of v; weight, bias, g,
  running_mean, running_var: exactly the shapes the norm defines, any real values
  (running_var only with running_var + eps >= 0, as above).
* WeightNorm: v = 0 along a set is 0 / 0, NaN there, like var_S + eps = 0.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from normspec import core
from normspec.core import Normalized, PooledSets, normalize, normalize_vjp
from normspec.errors import (
    NormParameterError,
    check_bessel_count,
    check_channels,
    check_choice,
    check_dim,
    check_eps,
    check_momentum,
    check_normalized_shape,
    check_num_groups,
    check_param_shape,
    check_sigma,
)
from normspec.vocabulary import Gradients, MomentumWeighs, VarianceEstimator


@dataclass(frozen=True)
class BatchStatistics:
    """What a training step feeds the running statistics: mean and biased var per channel
    (C,), and count = |S| for the Bessel factor count / (count - 1)."""

    mean: np.ndarray
    var: np.ndarray
    count: int


@dataclass(frozen=True)
class RunningStatistics:
    """running_mean, running_var (C,) and the number of batches they have seen."""

    mean: np.ndarray
    var: np.ndarray
    batches_seen: int


# --- BatchNorm (Ioffe & Szegedy, 2015) -------------------------------------------------------


@core.cached_sets
def batch_norm_sets(shape: Sequence[int]) -> PooledSets:
    """S = (N, *spatial) for each channel c; weight, bias: (C,)."""
    check_channels("batch_norm", shape)
    shape = tuple(shape)
    return PooledSets("batch_norm", shape, shape, core.all_but(len(shape), (1,)), (1,), shape[1:2])


def batch_norm_training(
    x: np.ndarray, *, eps: float, weight: np.ndarray | None = None, bias: np.ndarray | None = None
) -> Normalized:
    """BatchNorm in training mode: the statistics of the batch.

    y = weight_c * (x - mean_S) / sqrt(var_S + eps) + bias_c,   S = (N, *spatial) for each
    channel c, var_S biased; mean and var come back per channel, (C,).
    """
    return normalize(x, batch_norm_sets(np.shape(x)), eps=eps, weight=weight, bias=bias)


def batch_norm_training_vjp(
    x: np.ndarray, grad_y: np.ndarray, *, eps: float, weight: np.ndarray | None = None
) -> Gradients:
    """The VJP of `batch_norm_training`."""
    return normalize_vjp(x, grad_y, batch_norm_sets(np.shape(x)), eps=eps, weight=weight)


def batch_norm_evaluation(
    x: np.ndarray,
    *,
    running_mean: np.ndarray,
    running_var: np.ndarray,
    eps: float,
    weight: np.ndarray | None = None,
    bias: np.ndarray | None = None,
) -> np.ndarray:
    """BatchNorm (and InstanceNorm) in evaluation mode: the affine map of the running statistics.

    y = weight_c * (x - running_mean_c) / sqrt(running_var_c + eps) + bias_c. No statistic is
    computed, so any batch size is fine, N = 0 included.
    """
    x = core.as_float64(x)
    mean, var, features = _running(x, running_mean, running_var, eps, weight, bias)
    return core.affine(core.standardize(x, mean, var, eps), weight, bias, features)


def batch_norm_evaluation_vjp(
    x: np.ndarray,
    grad_y: np.ndarray,
    *,
    running_mean: np.ndarray,
    running_var: np.ndarray,
    eps: float,
    weight: np.ndarray | None = None,
) -> Gradients:
    """The VJP of `batch_norm_evaluation`: dL/dx = weight_c * g / sqrt(running_var_c + eps)."""
    x, grad_y = core.as_float64(x), core.as_float64(grad_y)
    check_param_shape("grad_y", grad_y, x.shape)
    mean, var, features = _running(x, running_mean, running_var, eps, weight, None)
    inv_std = 1.0 / core.sigma(var, eps)
    x_hat = (x - mean) * inv_std
    grad_x_hat, grad_weight, grad_bias = core.affine_vjp(x_hat, grad_y, weight, features)
    if weight is None:
        return Gradients(grad_x_hat * inv_std)
    return Gradients(grad_x_hat * inv_std, grad_weight, grad_bias)


def _running(
    x: np.ndarray,
    running_mean: np.ndarray,
    running_var: np.ndarray,
    eps: float,
    weight: np.ndarray | None,
    bias: np.ndarray | None,
) -> tuple[np.ndarray, np.ndarray, core.Axes]:
    """running_mean and running_var along the channels of x, after the checks."""
    sets = batch_norm_sets(x.shape)
    check_eps(eps)
    for name, param in ("weight", weight), ("bias", bias):
        check_param_shape(name, param, sets.param_shape)
    for name, param in ("running_mean", running_mean), ("running_var", running_var):
        check_param_shape(name, param, sets.param_shape)
    check_sigma(eps, running_var, "running_var")
    along = lambda a: core.along(a, x.ndim, sets.features)
    return along(running_mean), along(running_var), sets.features


# --- LayerNorm (Ba, Kiros & Hinton, 2016) ----------------------------------------------------


@core.cached_sets
def layer_norm_sets(shape: Sequence[int], normalized_shape: Sequence[int]) -> PooledSets:
    """S = the trailing `normalized_shape` for each leading index; weight, bias:
    normalized_shape, elementwise."""
    return _trailing_sets("layer_norm", shape, normalized_shape)


def layer_norm(
    x: np.ndarray,
    *,
    normalized_shape: Sequence[int],
    eps: float,
    weight: np.ndarray | None = None,
    bias: np.ndarray | None = None,
) -> Normalized:
    """LayerNorm over the trailing `normalized_shape`.

    y = weight * (x - mean_S) / sqrt(var_S + eps) + bias,   S = the trailing dims for each
    leading index; weight, bias: normalized_shape (elementwise affine).
    """
    sets = layer_norm_sets(np.shape(x), normalized_shape)
    return normalize(x, sets, eps=eps, weight=weight, bias=bias)


def layer_norm_vjp(
    x: np.ndarray,
    grad_y: np.ndarray,
    *,
    normalized_shape: Sequence[int],
    eps: float,
    weight: np.ndarray | None = None,
) -> Gradients:
    """The VJP of `layer_norm`."""
    sets = layer_norm_sets(np.shape(x), normalized_shape)
    return normalize_vjp(x, grad_y, sets, eps=eps, weight=weight)


def _trailing_sets(norm: str, shape: Sequence[int], normalized_shape: Sequence[int]) -> PooledSets:
    check_normalized_shape(normalized_shape, shape)
    shape = tuple(shape)
    axes = core.trailing_axes(len(shape), len(normalized_shape))
    return PooledSets(norm, shape, shape, axes, axes, tuple(normalized_shape))


# --- InstanceNorm (Ulyanov, Vedaldi & Lempitsky, 2016) ---------------------------------------


@core.cached_sets
def instance_norm_sets(shape: Sequence[int]) -> PooledSets:
    """S = (*spatial) for each (n, c); weight, bias: (C,)."""
    check_channels("instance_norm", shape)
    shape = tuple(shape)
    return PooledSets(
        "instance_norm", shape, shape, core.spatial_axes(len(shape)), (1,), shape[1:2]
    )


def instance_norm(
    x: np.ndarray, *, eps: float, weight: np.ndarray | None = None, bias: np.ndarray | None = None
) -> Normalized:
    """InstanceNorm with the statistics of each instance.

    y = weight_c * (x - mean_S) / sqrt(var_S + eps) + bias_c,   S = (*spatial) for each
    (n, c); mean and var come back per instance, (N, C).
    """
    return normalize(x, instance_norm_sets(np.shape(x)), eps=eps, weight=weight, bias=bias)


def instance_norm_vjp(
    x: np.ndarray, grad_y: np.ndarray, *, eps: float, weight: np.ndarray | None = None
) -> Gradients:
    """The VJP of `instance_norm`."""
    return normalize_vjp(x, grad_y, instance_norm_sets(np.shape(x)), eps=eps, weight=weight)


# --- GroupNorm (Wu & He, 2018) ---------------------------------------------------------------


@core.cached_sets
def group_norm_sets(shape: Sequence[int], num_groups: int) -> PooledSets:
    """S = (C / G, *spatial) for each (n, g): C split into num_groups contiguous groups, channel
    c in group c // (C / G); weight, bias: (C,), per channel, not per group."""
    check_channels("group_norm", shape)
    check_num_groups(num_groups, shape[1])
    shape = tuple(shape)
    n, c = shape[:2]
    view = (n, int(num_groups), int(c // num_groups), *shape[2:])
    return PooledSets("group_norm", shape, view, core.all_but(len(view), (0, 1)), (1,), (c,))


def group_norm(
    x: np.ndarray,
    *,
    num_groups: int,
    eps: float,
    weight: np.ndarray | None = None,
    bias: np.ndarray | None = None,
) -> Normalized:
    """GroupNorm: C split into num_groups contiguous groups of C / G channels.

    y = weight_c * (x - mean_S) / sqrt(var_S + eps) + bias_c,   S = (C / G, *spatial) for each
    (n, g); mean and var come back per group, (N, G).
    """
    sets = group_norm_sets(np.shape(x), num_groups)
    return normalize(x, sets, eps=eps, weight=weight, bias=bias)


def group_norm_vjp(
    x: np.ndarray,
    grad_y: np.ndarray,
    *,
    num_groups: int,
    eps: float,
    weight: np.ndarray | None = None,
) -> Gradients:
    """The VJP of `group_norm`."""
    sets = group_norm_sets(np.shape(x), num_groups)
    return normalize_vjp(x, grad_y, sets, eps=eps, weight=weight)


# --- RMSNorm (Zhang & Sennrich, 2019) --------------------------------------------------------


@core.cached_sets
def rms_norm_sets(shape: Sequence[int], normalized_shape: Sequence[int]) -> PooledSets:
    """S = the trailing `normalized_shape` for each leading index; weight: normalized_shape."""
    return _trailing_sets("rms_norm", shape, normalized_shape)


def rms_norm(
    x: np.ndarray, *, normalized_shape: Sequence[int], eps: float, weight: np.ndarray | None = None
) -> Normalized:
    """RMSNorm over the trailing `normalized_shape`: no centering, no bias.

    y = weight * x / sqrt(mean_S(x^2) + eps),   S = the trailing dims: the formula with
    mean_S = 0.
    """
    sets = rms_norm_sets(np.shape(x), normalized_shape)
    return normalize(x, sets, eps=eps, weight=weight, centered=False)


def rms_norm_vjp(
    x: np.ndarray,
    grad_y: np.ndarray,
    *,
    normalized_shape: Sequence[int],
    eps: float,
    weight: np.ndarray | None = None,
) -> Gradients:
    """The VJP of `rms_norm`: with r = sqrt(mean_S(x^2) + eps) and g = dL/dx_hat,

    dL/dx = (g - x_hat * mean_S(g * x_hat)) / r;   no dL/dbias, there is no bias.
    """
    sets = rms_norm_sets(np.shape(x), normalized_shape)
    grads = normalize_vjp(x, grad_y, sets, eps=eps, weight=weight, centered=False)
    return dataclasses.replace(grads, bias=None)


# --- WeightNorm (Salimans & Kingma, 2016) ----------------------------------------------------


@core.cached_sets
def weight_norm_sets(shape: Sequence[int], dim: int | None) -> PooledSets:
    """S = every axis of v but `dim` (all axes if dim is None); g: the shape of v with the
    axes of S of size 1, so it is indexed like v."""
    check_dim(dim, len(shape))
    shape = tuple(shape)
    axes = tuple(range(len(shape))) if dim is None else core.all_but(len(shape), (dim,))
    everything = tuple(range(len(shape)))
    return PooledSets(
        "weight_norm", shape, shape, axes, everything, weight_norm_g_shape(shape, dim)
    )


def weight_norm_g_shape(shape: Sequence[int], dim: int | None) -> tuple[int, ...]:
    """The shape of g: the shape of v with every axis but `dim` set to 1 (all 1 if None)."""
    if dim is None:
        return tuple(1 for _ in shape)
    return tuple(s if a == dim % len(shape) else 1 for a, s in enumerate(shape))


def weight_norm(v: np.ndarray, g: np.ndarray, *, dim: int | None) -> Normalized:
    """WeightNorm reparametrization: w = g * v / ||v||.

    ||v|| is the Euclidean norm over S, every axis of v but `dim` (over all axes if dim is
    None); g has the shape of v with the axes of S of size 1. The result's var is ||v||^2.
    """
    v, g = core.as_float64(v), core.as_float64(g)
    sets = weight_norm_sets(v.shape, dim)
    check_param_shape("g", g, sets.param_shape)
    squared = np.sum(np.square(v), axis=sets.axes, keepdims=True)
    w = g * v / core.sigma(squared, 0.0)
    return Normalized(w, sets.per_set(np.zeros_like(squared)), sets.per_set(squared), sets)


def weight_norm_vjp(
    v: np.ndarray, g: np.ndarray, grad_w: np.ndarray, *, dim: int | None
) -> Gradients:
    """The VJP of `weight_norm`, with u = v / ||v||:

    dL/dg = sum(grad_w * u) over S,   dL/dv = (g / ||v||) * (grad_w - u * dL/dg).
    Returned as Gradients(x=dL/dv, weight=dL/dg).
    """
    v, g, grad_w = core.as_float64(v), core.as_float64(g), core.as_float64(grad_w)
    sets = weight_norm_sets(v.shape, dim)
    check_param_shape("g", g, sets.param_shape)
    check_param_shape("grad_w", grad_w, v.shape)
    norm = core.sigma(np.sum(np.square(v), axis=sets.axes, keepdims=True), 0.0)
    u = v / norm
    grad_g = np.sum(grad_w * u, axis=sets.axes, keepdims=True)
    return Gradients(g / norm * (grad_w - u * grad_g), grad_g, None)


def _weight_norm_by_vocabulary(x: np.ndarray, *, weight: np.ndarray, dim: int | None) -> Normalized:
    """`weight_norm` in the vocabulary's names: x is v and weight is g."""
    return weight_norm(x, weight, dim=dim)


def _weight_norm_vjp_by_vocabulary(
    x: np.ndarray, grad_y: np.ndarray, *, weight: np.ndarray, dim: int | None
) -> Gradients:
    """`weight_norm_vjp` in the vocabulary's names: x is v and weight is g."""
    return weight_norm_vjp(x, weight, grad_y, dim=dim)


# --- running statistics ----------------------------------------------------------------------


def batch_statistics(normalized: Normalized) -> BatchStatistics:
    """What a training step feeds the running statistics: `per_channel` of its mean_S and
    var_S, with count = |S|."""
    norm = normalized.sets.norm
    return BatchStatistics(
        per_channel(norm, normalized.mean), per_channel(norm, normalized.var), normalized.count
    )


def per_channel(norm: str, per_set: np.ndarray) -> np.ndarray:
    """A statistic with one value per set, as the one value per channel (C,) that the running
    statistics of `norm` are fed: the mean over the sets of each channel (BatchNorm has one
    set per channel; InstanceNorm averages its N instances, PyTorch's definition)."""
    running = NORMS[norm].running
    if running is None:
        raise NormParameterError(f"{norm} tracks no running statistics; allowed: {TRACKING}")
    return np.mean(per_set, axis=running)


def running_statistics_update(
    running: RunningStatistics,
    batch: BatchStatistics,
    *,
    momentum: float | None,
    momentum_weighs: MomentumWeighs,
    running_var_estimator: VarianceEstimator,
) -> RunningStatistics:
    """One update of the running statistics from a batch's statistics.

    a = momentum          if momentum weighs the new batch statistic (PyTorch),
    a = 1 - momentum      if momentum weighs the old running value (Keras),
    a = 1 / t             if momentum is None: the cumulative average over the t batches
                          seen so far, this one included (the initial values drop out);
    running_mean <- (1 - a) * running_mean + a * batch_mean
    running_var  <- (1 - a) * running_var  + a * batch_var * (count / (count - 1) if the
                                              running variance is unbiased, else 1)
    Any finite momentum: outside [0, 1], a extrapolates past the old or the new value.
    """
    check_choice("running_var_estimator", running_var_estimator, ("unbiased", "biased"))
    seen = running.batches_seen + 1
    a = weight_of_new_statistic(momentum, momentum_weighs, seen)
    var = batch.var
    if running_var_estimator == "unbiased":
        check_bessel_count(batch.count)
        var = var * batch.count / (batch.count - 1)
    mean = (1.0 - a) * core.as_float64(running.mean) + a * batch.mean
    var = (1.0 - a) * core.as_float64(running.var) + a * var
    return RunningStatistics(mean, var, seen)


def weight_of_new_statistic(
    momentum: float | None, momentum_weighs: MomentumWeighs, batches_seen: int
) -> float:
    """a, the weight of the new batch statistic in the update that makes `batches_seen` batches.

    a = momentum if it weighs the new statistic, 1 - momentum if it weighs the old value,
    1 / batches_seen if momentum is None (the cumulative average).
    """
    check_momentum(momentum)
    check_choice("momentum_weighs", momentum_weighs, ("new", "old"))
    if momentum is None:
        return 1.0 / batches_seen
    return momentum if momentum_weighs == "new" else 1.0 - momentum


# --- the table -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Norm:
    """One row of the table: a norm as its pooled sets S, its formula and its VJP.

    sets(shape, **structure) -> PooledSets: the reduction axes, feature axes, parameter shape.
    forward(x, **parameters) -> Normalized and vjp(x, grad_y, **vjp_parameters) -> Gradients,
    keyword parameters named as in the vocabulary (`normspec.vocabulary.NormInputs`).
    structure: what fixes S besides the input's shape (normalized_shape, num_groups, dim).
    centered, eps, bias: whether the formula subtracts mean_S, adds an eps, adds a bias.
    evaluation, evaluation_vjp: the formula with running statistics in place of the batch's,
    for the norms that track them; running: the axes of their per-set statistics averaged
    into one value per channel to feed the running statistics.
    """

    sets: Callable[..., PooledSets]
    forward: Callable[..., Normalized]
    vjp: Callable[..., Gradients]
    structure: tuple[str, ...] = ()
    centered: bool = True
    eps: bool = True
    bias: bool = True
    evaluation: Callable[..., np.ndarray] | None = None
    evaluation_vjp: Callable[..., Gradients] | None = None
    running: core.Axes | None = None

    @property
    def vjp_parameters(self) -> tuple[str, ...]:
        """The keyword parameters of `vjp`: the structure, eps and weight."""
        return (*self.structure, *(("eps",) if self.eps else ()), "weight")

    @property
    def parameters(self) -> tuple[str, ...]:
        """The keyword parameters of `forward`: those of `vjp`, and bias."""
        return (*self.vjp_parameters, *(("bias",) if self.bias else ()))


_RUNNING = {"evaluation": batch_norm_evaluation, "evaluation_vjp": batch_norm_evaluation_vjp}

#: Every norm, by name: the one place that says what each pools.
NORMS: dict[str, Norm] = {
    "batch_norm": Norm(
        batch_norm_sets, batch_norm_training, batch_norm_training_vjp, **_RUNNING, running=()
    ),
    "layer_norm": Norm(layer_norm_sets, layer_norm, layer_norm_vjp, ("normalized_shape",)),
    "instance_norm": Norm(
        instance_norm_sets, instance_norm, instance_norm_vjp, **_RUNNING, running=(0,)
    ),
    "group_norm": Norm(group_norm_sets, group_norm, group_norm_vjp, ("num_groups",)),
    "rms_norm": Norm(
        rms_norm_sets, rms_norm, rms_norm_vjp, ("normalized_shape",), centered=False, bias=False
    ),
    "weight_norm": Norm(
        weight_norm_sets,
        _weight_norm_by_vocabulary,
        _weight_norm_vjp_by_vocabulary,
        ("dim",),
        centered=False,
        eps=False,
        bias=False,
    ),
}
#: The norms that track running statistics.
TRACKING: tuple[str, ...] = tuple(name for name, row in NORMS.items() if row.running is not None)
