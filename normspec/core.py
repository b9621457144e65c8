"""The one shape every normalization shares, in float64.

Every normalization in this package has the form

    x_hat = (x - mean_S(x)) / sqrt(var_S(x) + eps),      y = weight * x_hat + bias

and the norms differ only in the set S of values they pool (the *reduction axes*) and in the
axes their parameters vary along (the *feature axes*). This module holds that shared core
once; `normspec.spec` defines each norm as a choice of the two sets of axes.

All variances here are biased (divided by |S|): that is the variance every norm uses for
its output. The Bessel correction only enters the running statistics.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

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
