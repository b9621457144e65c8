"""The errors normspec raises for invalid parameters, and the checks that raise them.

Every message names the parameter, the value received and the values allowed, so that a
caller never has to read the source to learn what went wrong.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence


class NormParameterError(ValueError):
    """A normalization was asked for with a parameter outside its domain."""


def _is_real(value: object) -> bool:
    """A real number of any type (Python, NumPy), but not a bool."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def check_eps(eps: float) -> None:
    """eps must be a finite number >= 0."""
    if not _is_real(eps):
        raise NormParameterError(f"eps must be a real number >= 0, got {eps!r}")
    if not math.isfinite(eps):
        raise NormParameterError(f"eps must be finite, got eps={eps!r}; allowed: 0 <= eps < inf")
    if eps < 0:
        raise NormParameterError(f"eps must be >= 0, got eps={eps!r}; allowed: 0 <= eps < inf")


def check_momentum(momentum: float | None) -> None:
    """momentum is None (cumulative average) or a number in [0, 1]."""
    if momentum is None:
        return
    if not _is_real(momentum) or not 0.0 <= momentum <= 1.0:
        raise NormParameterError(
            f"momentum must be None (cumulative moving average) or in [0, 1], got {momentum!r}"
        )


def check_rank(name: str, shape: Sequence[int], minimum: int, maximum: int) -> None:
    """The input of `name` must have between `minimum` and `maximum` dimensions."""
    if not minimum <= len(shape) <= maximum:
        raise NormParameterError(
            f"{name} expects an input of rank {minimum} to {maximum} "
            f"(N, C, *spatial), got shape {tuple(shape)} of rank {len(shape)}"
        )


def check_num_groups(num_groups: int, channels: int) -> None:
    """num_groups must be a positive divisor of the channel count."""
    integral = isinstance(num_groups, numbers.Integral) and not isinstance(num_groups, bool)
    if not integral or num_groups < 1 or channels % num_groups != 0:
        divisors = [g for g in range(1, channels + 1) if channels % g == 0]
        raise NormParameterError(
            f"num_groups must divide the number of channels C={channels}, got "
            f"num_groups={num_groups!r}; allowed: {divisors}"
        )


def check_normalized_shape(normalized_shape: Sequence[int], shape: Sequence[int]) -> None:
    """normalized_shape must equal the trailing dimensions of the input."""
    k = len(normalized_shape)
    if k == 0 or k > len(shape) or tuple(shape[len(shape) - k :]) != tuple(normalized_shape):
        raise NormParameterError(
            f"normalized_shape={tuple(normalized_shape)} must equal the trailing dimensions of "
            f"the input of shape {tuple(shape)}; allowed: a non-empty suffix of {tuple(shape)}"
        )


def check_batch_statistics_count(count: int, shape: Sequence[int]) -> None:
    """Training-mode batch statistics need more than one value per channel."""
    if count < 2:
        raise NormParameterError(
            f"batch statistics in training mode need more than one value per channel, got "
            f"{count} for input shape {tuple(shape)}; allowed: N * prod(spatial) >= 2"
        )


def check_dim(dim: int | None, ndim: int) -> None:
    """dim is None (whole tensor) or an axis of the tensor."""
    if dim is not None and not -ndim <= dim < ndim:
        raise NormParameterError(
            f"dim must be None or an axis in [{-ndim}, {ndim - 1}] of a rank-{ndim} tensor, "
            f"got dim={dim!r}"
        )


def check_param_shape(name: str, param: object, expected: tuple[int, ...]) -> None:
    """An affine parameter must have exactly the shape its norm defines."""
    if param is None:
        return
    shape = tuple(getattr(param, "shape", ()))
    if shape != expected:
        raise NormParameterError(f"{name} must have shape {expected}, got shape {shape}")


def check_nonnegative(name: str, values: object) -> None:
    """A variance must be >= 0 everywhere."""
    import numpy as np

    if np.any(np.asarray(values) < 0):
        raise NormParameterError(f"{name} must be >= 0 everywhere, got min {np.min(values)!r}")
