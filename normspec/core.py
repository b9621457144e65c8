"""The one shape every normalization shares, in float64.

Every normalization in this package has the form

    x_hat = (x - mean_S(x)) / sqrt(var_S(x) + eps),      y = weight * x_hat + bias

and the norms differ only in the set S of values they pool (the *reduction axes*) and in the
axes their parameters vary along (the *feature axes*). This module holds that shared core
once: the pieces (moments over a set of axes, standardize, affine, and their VJPs), then the
formula itself, `normalize`, over the sets a `PooledSets` describes, returning its output with
the statistics it used (`Normalized`). `normspec.spec` defines each norm as a choice of sets.

All variances here are biased (divided by |S|): that is the variance every norm uses for
its output. The Bessel correction only enters the running statistics.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from normspec.errors import (
    check_eps,
    check_nonempty_sets,
    check_param_shape,
    check_sigma,
)
from normspec.vocabulary import Gradients

Axes = tuple[int, ...]


def as_float64(x: np.ndarray) -> np.ndarray:
    """The exact float64 value of `x` (every float16, bfloat16, float32 is a float64)."""
    return np.asarray(x, dtype=np.float64)


def moments(x: np.ndarray, axes: Axes) -> tuple[np.ndarray, np.ndarray]:
    """mean_S(x) and the biased var_S(x) = mean_S((x - mean_S(x))^2), kept as broadcastable."""
    mean = np.mean(x, axis=axes, keepdims=True)
    var = np.mean(np.square(x - mean), axis=axes, keepdims=True)
    return mean, var


def moments_about_zero(x: np.ndarray, axes: Axes) -> tuple[np.ndarray, np.ndarray]:
    """0 and mean_S(x^2): the moments of a norm that does not center (RMSNorm)."""
    mean_square = np.mean(np.square(x), axis=axes, keepdims=True)
    return np.zeros_like(mean_square), mean_square


def sigma(var: np.ndarray, eps: float) -> np.ndarray:
    """sqrt(var + eps), and NaN where var + eps = 0: there x_hat is 0/0 (or c/0), undefined.

    NaN for the whole set, rather than IEEE's mixture of NaN and +-inf, says "undefined" once;
    the spec refuses var + eps < 0 before it gets here.
    """
    total = var + eps
    return np.sqrt(np.where(total > 0, total, np.nan))


def standardize(x: np.ndarray, mean: np.ndarray, var: np.ndarray, eps: float) -> np.ndarray:
    """x_hat = (x - mean) / sqrt(var + eps)."""
    return (x - mean) / sigma(var, eps)


def standardize_vjp(
    x_hat: np.ndarray,
    inv_std: np.ndarray,
    grad_x_hat: np.ndarray,
    axes: Axes,
    centered: bool = True,
) -> np.ndarray:
    """The input gradient of x_hat = (x - mean_S x) / sqrt(var_S x + eps), batch statistics.

        dL/dx = (1 / sigma) * (g - mean_S(g) - x_hat * mean_S(g * x_hat)),   g = dL/dx_hat

    The two subtracted terms are the gradients through the mean and through the variance.
    Without centering (x_hat = x / sqrt(mean_S(x^2) + eps), RMSNorm) the mean term drops.
    """
    mean_g_x_hat = np.mean(grad_x_hat * x_hat, axis=axes, keepdims=True)
    if not centered:
        return inv_std * (grad_x_hat - x_hat * mean_g_x_hat)
    mean_g = np.mean(grad_x_hat, axis=axes, keepdims=True)
    return inv_std * (grad_x_hat - mean_g - x_hat * mean_g_x_hat)


def along(param: np.ndarray, ndim: int, feature_axes: Axes) -> np.ndarray:
    """Reshape a parameter of the feature shape so that it broadcasts against a rank-ndim x."""
    shape = [1] * ndim
    for axis, size in zip(feature_axes, np.shape(param), strict=True):
        shape[axis] = size
    return np.reshape(as_float64(param), shape)


def affine(
    x_hat: np.ndarray, weight: np.ndarray | None, bias: np.ndarray | None, feature_axes: Axes
) -> np.ndarray:
    """y = weight * x_hat + bias, with weight and bias varying along the feature axes."""
    y = x_hat
    if weight is not None:
        y = y * along(weight, x_hat.ndim, feature_axes)
    if bias is not None:
        y = y + along(bias, x_hat.ndim, feature_axes)
    return y


def affine_vjp(
    x_hat: np.ndarray, grad_y: np.ndarray, weight: np.ndarray | None, feature_axes: Axes
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(dL/dx_hat, dL/dweight, dL/dbias) of y = weight * x_hat + bias.

    dL/dweight = sum over the non-feature axes of g * x_hat,  dL/dbias = the sum of g.
    """
    other = tuple(a for a in range(x_hat.ndim) if a not in feature_axes)
    grad_weight = np.sum(grad_y * x_hat, axis=other)
    grad_bias = np.sum(grad_y, axis=other)
    grad_x_hat = grad_y if weight is None else grad_y * along(weight, x_hat.ndim, feature_axes)
    return grad_x_hat, grad_weight, grad_bias


def broadcast_reshape(a: np.ndarray, shape: tuple[int, ...], view: tuple[int, ...]) -> np.ndarray:
    """`a` broadcast to `shape`, then reshaped to `view`; an array already of `shape` is only
    reshaped (np.broadcast_to costs more than the arithmetic on a small array)."""
    if isinstance(a, np.ndarray) and a.shape == shape:
        return a.reshape(view)
    return np.broadcast_to(a, shape).reshape(view)


def cached_sets(sets: Callable[..., PooledSets]) -> Callable[..., PooledSets]:
    """`sets`, remembered for arguments of plain ints and tuples of them (the sets of a shape
    never change, and building them checks every argument); other arguments (lists, NumPy
    integers) go through uncached, so errors and types are exactly those of `sets`."""
    remembered = functools.lru_cache(maxsize=4096)(sets)

    def plain(value: object) -> bool:
        if type(value) is tuple:
            return all(type(v) is int for v in value)
        return value is None or type(value) is int

    @functools.wraps(sets)
    def cached(*args, **kwargs):
        if all(plain(a) for a in args) and all(plain(v) for v in kwargs.values()):
            return remembered(*args, **kwargs)
        return sets(*args, **kwargs)

    return cached


def trailing_axes(ndim: int, count: int) -> Axes:
    """The last `count` axes of a rank-ndim array."""
    return tuple(range(ndim - count, ndim))


def spatial_axes(ndim: int) -> Axes:
    """The axes after (N, C)."""
    return tuple(range(2, ndim))


def all_but(ndim: int, keep: Sequence[int]) -> Axes:
    """Every axis of a rank-ndim array except those in `keep`."""
    kept = {k % ndim for k in keep}
    return tuple(a for a in range(ndim) if a not in kept)


# --- the one formula over the sets S of a norm -----------------------------------------------


@dataclass(frozen=True)
class PooledSets:
    """How `norm` pools an input of shape `shape`: which values share one mean and variance.

    view:        the shape x is viewed in so that each set S is the block of `axes` (GroupNorm
                 splits C into (G, C / G); every other norm views x as it is);
    axes:        the reduction axes of the view: each index of the other axes is one set S;
    features:    the axes of x that the parameters vary along, in order;
    param_shape: the shape of weight and bias (of g for WeightNorm).
    """

    norm: str
    shape: tuple[int, ...]
    view: tuple[int, ...]
    axes: Axes
    features: Axes
    param_shape: tuple[int, ...]

    @property
    def count(self) -> int:
        """|S|: the number of values in each set."""
        return math.prod(self.view[a] for a in self.axes)

    @property
    def number(self) -> int:
        """How many sets there are."""
        return math.prod(self.per_set_shape)

    @property
    def per_set_shape(self) -> tuple[int, ...]:
        """The shape of a statistic with one value per set: the view without the axes of S."""
        return tuple(s for a, s in enumerate(self.view) if a not in self.axes)

    def of(self, a: np.ndarray) -> np.ndarray:
        """`a` (shaped like x, or broadcastable to it) in the view, each set S explicit."""
        return broadcast_reshape(a, self.shape, self.view)

    def per_set(self, statistic: np.ndarray) -> np.ndarray:
        """A statistic kept broadcastable against the view, as one value per set."""
        return np.reshape(statistic, self.per_set_shape)

    def broadcastable(self, statistic: np.ndarray) -> np.ndarray:
        """One value per set, reshaped to broadcast against the view (axes of S of size 1)."""
        kept = tuple(1 if a in self.axes else s for a, s in enumerate(self.view))
        return np.reshape(statistic, kept)


@dataclass(frozen=True)
class Normalized:
    """A norm's output and the statistics it used, one value per pooled set.

    y:    the output, shaped like x;
    mean: mean_S, shaped `sets.per_set_shape` (0 for RMSNorm and WeightNorm, which do not
          center);
    var:  the second moment under the square root: the biased var_S, mean_S(x^2) for
          RMSNorm, sum_S(v^2) = ||v||^2 for WeightNorm;
    sets: the pooled sets (view, reduction axes, feature axes, parameter shape).
    """

    y: np.ndarray
    mean: np.ndarray
    var: np.ndarray
    sets: PooledSets

    @property
    def count(self) -> int:
        """|S|: the number of values each statistic pools."""
        return self.sets.count


def normalize(
    x: np.ndarray,
    sets: PooledSets,
    *,
    eps: float,
    weight: np.ndarray | None = None,
    bias: np.ndarray | None = None,
    centered: bool = True,
) -> Normalized:
    """y = weight * (x - mean_S) / sqrt(var_S + eps) + bias over each set S of `sets`.

    var_S is biased (divided by |S|). Not centered: mean_S = 0 and var_S = mean_S(x^2).
    weight and bias have shape sets.param_shape and vary along sets.features.
    """
    x = as_float64(x)
    view, mean, var = _moments(x, sets, eps, weight, bias, centered)
    x_hat = standardize(view, mean, var, eps).reshape(x.shape)
    y = affine(x_hat, weight, bias, sets.features)
    return Normalized(y, sets.per_set(mean), sets.per_set(var), sets)


def normalize_vjp(
    x: np.ndarray,
    grad_y: np.ndarray,
    sets: PooledSets,
    *,
    eps: float,
    weight: np.ndarray | None = None,
    centered: bool = True,
) -> Gradients:
    """The VJP of `normalize` with g = weight * grad_y (see `standardize_vjp`):

    dL/dx = (1 / sigma) (g - mean_S(g) - x_hat mean_S(g x_hat))   (no mean_S(g) if not centered)
    dL/dweight = sum of grad_y * x_hat, dL/dbias = sum of grad_y, over the non-feature axes,
    both only when a weight is given.
    """
    x, grad_y = as_float64(x), as_float64(grad_y)
    check_param_shape("grad_y", grad_y, x.shape)
    view, mean, var = _moments(x, sets, eps, weight, None, centered)
    inv_std = 1.0 / sigma(var, eps)
    x_hat = ((view - mean) * inv_std).reshape(x.shape)
    grad_x_hat, grad_weight, grad_bias = affine_vjp(x_hat, grad_y, weight, sets.features)
    grad_x = standardize_vjp(
        sets.of(x_hat), inv_std, sets.of(grad_x_hat), sets.axes, centered
    ).reshape(x.shape)
    if weight is None:
        return Gradients(grad_x)
    return Gradients(grad_x, grad_weight, grad_bias)


def _moments(
    x: np.ndarray,
    sets: PooledSets,
    eps: float,
    weight: np.ndarray | None,
    bias: np.ndarray | None,
    centered: bool,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """x in the view of `sets` and its mean_S, var_S, after checking the spec's domain."""
    check_eps(eps)
    check_param_shape("weight", weight, sets.param_shape)
    check_param_shape("bias", bias, sets.param_shape)
    check_nonempty_sets(sets.norm, sets.shape, sets.axes, sets.count, sets.number)
    view = x.reshape(sets.view)
    if centered:
        mean, var = moments(view, sets.axes)
    else:
        mean, var = moments_about_zero(view, sets.axes)
    check_sigma(eps, var, "var_S" if centered else "mean_S(x^2)")
    return view, mean, var
