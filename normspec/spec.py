"""The executable specification: one pure float64 function per normalization.

Each function is the formula of its paper, written with the shared core of `normspec.core`
(moments over a set S, standardize, affine). Each norm is therefore a choice of

* S, the set of values pooled into one mean and variance (the reduction axes), and
* the axes the affine parameters vary along (the feature axes).

Inputs are read as their exact float64 values; outputs are float64. There are no default
parameters: eps, momentum and the rest are conventions of the backends, not of the math.
Every forward function has a `*_vjp` partner giving the vector-Jacobian product, derived by
hand (see `normspec.core.standardize_vjp`), never by automatic differentiation.

Layout is channels-first throughout: x has shape (N, C, *spatial).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from normspec import core
from normspec.errors import (
    NormParameterError,
    check_batch_statistics_count,
    check_dim,
    check_eps,
    check_momentum,
    check_nonnegative,
    check_normalized_shape,
    check_num_groups,
    check_param_shape,
    check_rank,
)
from normspec.vocabulary import Gradients, MomentumWeighs, VarianceEstimator


@dataclass(frozen=True)
class BatchStatistics:
    """The output of a training step and the statistics it pooled, per channel (C,)."""

    y: np.ndarray
    mean: np.ndarray
    var: np.ndarray  # biased: divided by count
    count: int  # the number of values pooled per channel


@dataclass(frozen=True)
class RunningStatistics:
    """running_mean, running_var (C,) and the number of batches they have seen."""

    mean: np.ndarray
    var: np.ndarray
    batches_seen: int


# --- BatchNorm (Ioffe & Szegedy, 2015) -------------------------------------------------------


def _channel_axes(x: np.ndarray, name: str, min_rank: int) -> tuple[core.Axes, core.Axes]:
    check_rank(name, x.shape, min_rank, 5)
    return core.all_but(x.ndim, (1,)), (1,)


def batch_norm_training(
    x: np.ndarray, *, eps: float, weight: np.ndarray | None = None, bias: np.ndarray | None = None
) -> BatchStatistics:
    """BatchNorm in training mode: statistics of the batch.

    S = (N, *spatial) for each channel c,   y = weight_c * (x - mean_S) / sqrt(var_S + eps)
    + bias_c,   var_S biased.   x: (N, C, *spatial) with 0 to 3 spatial dims; weight,
    bias: (C,).
    """
    x = core.as_float64(x)
    axes, features = _channel_axes(x, "batch_norm", 2)
    count = x.size // x.shape[1]
    check_eps(eps)
    _check_affine(x, weight, bias, (x.shape[1],))
    check_batch_statistics_count(count, x.shape)
    mean, var = core.moments(x, axes)
    y = core.affine(core.standardize(x, mean, var, eps), weight, bias, features)
    return BatchStatistics(y, mean.reshape(-1), var.reshape(-1), count)


def batch_norm_training_vjp(
    x: np.ndarray, grad_y: np.ndarray, *, eps: float, weight: np.ndarray | None = None
) -> Gradients:
    """The VJP of `batch_norm_training` (see `core.standardize_vjp`)."""
    x = core.as_float64(x)
    axes, features = _channel_axes(x, "batch_norm", 2)
    _check_vjp(x, grad_y, eps, weight, (x.shape[1],))
    check_batch_statistics_count(x.size // x.shape[1], x.shape)
    return _standardized_vjp(x, core.as_float64(grad_y), eps, weight, axes, features)


def batch_norm_evaluation(
    x: np.ndarray,
    *,
    running_mean: np.ndarray,
    running_var: np.ndarray,
    eps: float,
    weight: np.ndarray | None = None,
    bias: np.ndarray | None = None,
) -> np.ndarray:
    """BatchNorm in evaluation mode: the affine map built from the running statistics.

    y = weight_c * (x - running_mean_c) / sqrt(running_var_c + eps) + bias_c
    """
    x = core.as_float64(x)
    _, features = _channel_axes(x, "batch_norm", 2)
    check_eps(eps)
    _check_affine(x, weight, bias, (x.shape[1],))
    _check_running(running_mean, running_var, x.shape[1])
    mean = core.along(running_mean, x.ndim, features)
    var = core.along(running_var, x.ndim, features)
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
    _, features = _channel_axes(x, "batch_norm", 2)
    _check_vjp(x, grad_y, eps, weight, (x.shape[1],))
    _check_running(running_mean, running_var, x.shape[1])
    mean = core.along(running_mean, x.ndim, features)
    inv_std = 1.0 / np.sqrt(core.along(running_var, x.ndim, features) + eps)
    x_hat = (x - mean) * inv_std
    grad_x_hat, grad_weight, grad_bias = core.affine_vjp(x_hat, grad_y, weight, features)
    if weight is None:
        grad_weight = grad_bias = None
    return Gradients(grad_x_hat * inv_std, grad_weight, grad_bias)


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
    """
    check_momentum(momentum)
    if momentum_weighs not in ("new", "old"):
        raise NormParameterError(f"momentum_weighs must be 'new' or 'old', got {momentum_weighs!r}")
    if running_var_estimator not in ("unbiased", "biased"):
        raise NormParameterError(
            f"running_var_estimator must be 'unbiased' or 'biased', got {running_var_estimator!r}"
        )
    seen = running.batches_seen + 1
    a = weight_of_new_statistic(momentum, momentum_weighs, seen)
    var = batch.var
    if running_var_estimator == "unbiased":
        check_batch_statistics_count(batch.count, (batch.count,))
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
    if momentum_weighs not in ("new", "old"):
        raise NormParameterError(f"momentum_weighs must be 'new' or 'old', got {momentum_weighs!r}")
    if momentum is None:
        return 1.0 / batches_seen
    return momentum if momentum_weighs == "new" else 1.0 - momentum


# --- LayerNorm (Ba, Kiros & Hinton, 2016) ----------------------------------------------------


def _trailing(x: np.ndarray, normalized_shape: Sequence[int]) -> core.Axes:
    check_normalized_shape(normalized_shape, x.shape)
    return core.trailing_axes(x.ndim, len(normalized_shape))


def layer_norm(
    x: np.ndarray,
    *,
    normalized_shape: Sequence[int],
    eps: float,
    weight: np.ndarray | None = None,
    bias: np.ndarray | None = None,
) -> np.ndarray:
    """LayerNorm over the trailing `normalized_shape`.

    S = the trailing dims for each leading index,  y = weight * (x - mean_S) /
    sqrt(var_S + eps) + bias,   weight, bias: normalized_shape (elementwise affine).
    """
    x = core.as_float64(x)
    axes = _trailing(x, normalized_shape)
    check_eps(eps)
    _check_affine(x, weight, bias, tuple(normalized_shape))
    mean, var = core.moments(x, axes)
    return core.affine(core.standardize(x, mean, var, eps), weight, bias, axes)


def layer_norm_vjp(
    x: np.ndarray,
    grad_y: np.ndarray,
    *,
    normalized_shape: Sequence[int],
    eps: float,
    weight: np.ndarray | None = None,
) -> Gradients:
    """The VJP of `layer_norm`."""
    x = core.as_float64(x)
    axes = _trailing(x, normalized_shape)
    _check_vjp(x, grad_y, eps, weight, tuple(normalized_shape))
    return _standardized_vjp(x, core.as_float64(grad_y), eps, weight, axes, axes)


# --- InstanceNorm (Ulyanov, Vedaldi & Lempitsky, 2016) ---------------------------------------


def instance_norm(
    x: np.ndarray, *, eps: float, weight: np.ndarray | None = None, bias: np.ndarray | None = None
) -> np.ndarray:
    """InstanceNorm with the statistics of each instance.

    S = (*spatial) for each (n, c),   y = weight_c * (x - mean_S) / sqrt(var_S + eps) +
    bias_c.   x: (N, C, *spatial) with 1 to 3 spatial dims; weight, bias: (C,).
    """
    x = core.as_float64(x)
    check_rank("instance_norm", x.shape, 3, 5)
    check_eps(eps)
    _check_affine(x, weight, bias, (x.shape[1],))
    axes = core.spatial_axes(x.ndim)
    mean, var = core.moments(x, axes)
    return core.affine(core.standardize(x, mean, var, eps), weight, bias, (1,))


def instance_norm_vjp(
    x: np.ndarray, grad_y: np.ndarray, *, eps: float, weight: np.ndarray | None = None
) -> Gradients:
    """The VJP of `instance_norm`."""
    x = core.as_float64(x)
    check_rank("instance_norm", x.shape, 3, 5)
    _check_vjp(x, grad_y, eps, weight, (x.shape[1],))
    return _standardized_vjp(
        x, core.as_float64(grad_y), eps, weight, core.spatial_axes(x.ndim), (1,)
    )


def instance_norm_batch_statistics(x: np.ndarray) -> BatchStatistics:
    """What an InstanceNorm training step feeds its running statistics (PyTorch's definition).

        mean_c = mean over n of mean_S(x[n, c]),   var_c = mean over n of var_S(x[n, c])
        (biased), count = |S|, so that the Bessel factor is |S| / (|S| - 1).
    The `y` field is the instance-normalized output without eps and affine; callers use the
    statistics only.
    """
    x = core.as_float64(x)
    check_rank("instance_norm", x.shape, 3, 5)
    axes = core.spatial_axes(x.ndim)
    mean, var = core.moments(x, axes)
    count = int(np.prod(x.shape[2:]))
    return BatchStatistics(
        x - mean, mean.mean(axis=0).reshape(-1), var.mean(axis=0).reshape(-1), count
    )


# --- GroupNorm (Wu & He, 2018) ---------------------------------------------------------------


def _grouped(x: np.ndarray, num_groups: int) -> np.ndarray:
    check_rank("group_norm", x.shape, 2, 5)
    check_num_groups(num_groups, x.shape[1])
    n, c = x.shape[:2]
    return x.reshape((n, num_groups, c // num_groups, *x.shape[2:]))


def group_norm(
    x: np.ndarray,
    *,
    num_groups: int,
    eps: float,
    weight: np.ndarray | None = None,
    bias: np.ndarray | None = None,
) -> np.ndarray:
    """GroupNorm: C split into num_groups contiguous groups of C / G channels.

    S = (C / G, *spatial) for each (n, g),  channel c in group g = c // (C / G),
    y = weight_c * (x - mean_S) / sqrt(var_S + eps) + bias_c,   weight, bias: (C,).
    """
    x = core.as_float64(x)
    check_eps(eps)
    grouped = _grouped(x, num_groups)
    _check_affine(x, weight, bias, (x.shape[1],))
    mean, var = core.moments(grouped, core.all_but(grouped.ndim, (0, 1)))
    x_hat = core.standardize(grouped, mean, var, eps).reshape(x.shape)
    return core.affine(x_hat, weight, bias, (1,))


def group_norm_vjp(
    x: np.ndarray,
    grad_y: np.ndarray,
    *,
    num_groups: int,
    eps: float,
    weight: np.ndarray | None = None,
) -> Gradients:
    """The VJP of `group_norm`."""
    x, grad_y = core.as_float64(x), core.as_float64(grad_y)
    grouped = _grouped(x, num_groups)
    _check_vjp(x, grad_y, eps, weight, (x.shape[1],))
    axes = core.all_but(grouped.ndim, (0, 1))
    mean, var = core.moments(grouped, axes)
    inv_std = 1.0 / np.sqrt(var + eps)
    x_hat = ((grouped - mean) * inv_std).reshape(x.shape)
    grad_x_hat, grad_weight, grad_bias = core.affine_vjp(x_hat, grad_y, weight, (1,))
    grad_x = core.standardize_vjp(
        x_hat.reshape(grouped.shape), inv_std, grad_x_hat.reshape(grouped.shape), axes
    )
    if weight is None:
        grad_weight = grad_bias = None
    return Gradients(grad_x.reshape(x.shape), grad_weight, grad_bias)


# --- RMSNorm (Zhang & Sennrich, 2019) --------------------------------------------------------


def rms_norm(
    x: np.ndarray, *, normalized_shape: Sequence[int], eps: float, weight: np.ndarray | None = None
) -> np.ndarray:
    """RMSNorm over the trailing `normalized_shape`: no centering, no bias.

    y = weight * x / sqrt(mean_S(x^2) + eps),   S = the trailing dims.
    """
    x = core.as_float64(x)
    axes = _trailing(x, normalized_shape)
    check_eps(eps)
    _check_affine(x, weight, None, tuple(normalized_shape))
    x_hat = x / np.sqrt(np.mean(np.square(x), axis=axes, keepdims=True) + eps)
    return core.affine(x_hat, weight, None, axes)


def rms_norm_vjp(
    x: np.ndarray,
    grad_y: np.ndarray,
    *,
    normalized_shape: Sequence[int],
    eps: float,
    weight: np.ndarray | None = None,
) -> Gradients:
    """The VJP of `rms_norm`: with r = sqrt(mean_S(x^2) + eps) and g = dL/dx_hat,

    dL/dx = (g - x_hat * mean_S(g * x_hat)) / r.
    """
    x, grad_y = core.as_float64(x), core.as_float64(grad_y)
    axes = _trailing(x, normalized_shape)
    _check_vjp(x, grad_y, eps, weight, tuple(normalized_shape))
    inv_rms = 1.0 / np.sqrt(np.mean(np.square(x), axis=axes, keepdims=True) + eps)
    x_hat = x * inv_rms
    grad_x_hat, grad_weight, _ = core.affine_vjp(x_hat, grad_y, weight, axes)
    mean_g_x_hat = np.mean(grad_x_hat * x_hat, axis=axes, keepdims=True)
    grad_x = inv_rms * (grad_x_hat - x_hat * mean_g_x_hat)
    return Gradients(grad_x, None if weight is None else grad_weight, None)


# --- WeightNorm (Salimans & Kingma, 2016) ----------------------------------------------------


def _norm_axes(v: np.ndarray, dim: int | None) -> core.Axes:
    check_dim(dim, v.ndim)
    return tuple(range(v.ndim)) if dim is None else core.all_but(v.ndim, (dim,))


def weight_norm_g_shape(shape: Sequence[int], dim: int | None) -> tuple[int, ...]:
    """The shape of g: the shape of v with every axis but `dim` set to 1 (all 1 if None)."""
    if dim is None:
        return tuple(1 for _ in shape)
    return tuple(s if a == dim % len(shape) else 1 for a, s in enumerate(shape))


def weight_norm(v: np.ndarray, g: np.ndarray, *, dim: int | None) -> np.ndarray:
    """WeightNorm reparametrization: w = g * v / ||v||.

    ||v|| is the Euclidean norm over every axis of v but `dim` (over all axes if dim is
    None); g has the shape of v with the reduced axes of size 1.
    """
    v, g = core.as_float64(v), core.as_float64(g)
    axes = _norm_axes(v, dim)
    check_param_shape("g", g, weight_norm_g_shape(v.shape, dim))
    return g * v / np.sqrt(np.sum(np.square(v), axis=axes, keepdims=True))


def weight_norm_vjp(
    v: np.ndarray, g: np.ndarray, grad_w: np.ndarray, *, dim: int | None
) -> Gradients:
    """The VJP of `weight_norm`, with u = v / ||v||:

    dL/dg = sum(grad_w * u) over the norm axes,   dL/dv = (g / ||v||) * (grad_w - u *
    dL/dg).   Returned as Gradients(x=dL/dv, weight=dL/dg).
    """
    v, g, grad_w = core.as_float64(v), core.as_float64(g), core.as_float64(grad_w)
    axes = _norm_axes(v, dim)
    check_param_shape("g", g, weight_norm_g_shape(v.shape, dim))
    check_param_shape("grad_w", grad_w, v.shape)
    norm = np.sqrt(np.sum(np.square(v), axis=axes, keepdims=True))
    u = v / norm
    grad_g = np.sum(grad_w * u, axis=axes, keepdims=True)
    return Gradients(g / norm * (grad_w - u * grad_g), grad_g, None)


# --- shared pieces ---------------------------------------------------------------------------


def _check_affine(
    x: np.ndarray, weight: np.ndarray | None, bias: np.ndarray | None, shape: tuple[int, ...]
) -> None:
    check_param_shape("weight", weight, shape)
    check_param_shape("bias", bias, shape)


def _check_vjp(
    x: np.ndarray, grad_y: np.ndarray, eps: float, weight: np.ndarray | None, shape: tuple[int, ...]
) -> None:
    check_eps(eps)
    check_param_shape("weight", weight, shape)
    check_param_shape("grad_y", grad_y, x.shape)


def _check_running(running_mean: np.ndarray, running_var: np.ndarray, channels: int) -> None:
    check_param_shape("running_mean", running_mean, (channels,))
    check_param_shape("running_var", running_var, (channels,))
    check_nonnegative("running_var", running_var)


def _standardized_vjp(
    x: np.ndarray,
    grad_y: np.ndarray,
    eps: float,
    weight: np.ndarray | None,
    axes: core.Axes,
    features: core.Axes,
) -> Gradients:
    check_eps(eps)
    mean, var = core.moments(x, axes)
    inv_std = 1.0 / np.sqrt(var + eps)
    x_hat = (x - mean) * inv_std
    grad_x_hat, grad_weight, grad_bias = core.affine_vjp(x_hat, grad_y, weight, features)
    grad_x = core.standardize_vjp(x_hat, inv_std, grad_x_hat, axes)
    if weight is None:
        return Gradients(grad_x)
    return Gradients(grad_x, grad_weight, grad_bias)
