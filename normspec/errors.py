"""The errors normspec raises for parameters outside the spec's domain, and the checks.

The spec refuses only what its formulas leave undefined (`normspec.spec` states the domain of
every parameter). Every message names the parameter, the value received and the condition it
breaks, so that a caller never has to read the source to learn what went wrong.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence

import numpy as np


class NormParameterError(ValueError):
    """A normalization was asked for with a parameter outside its domain."""


def _is_real(value: object) -> bool:
    """A real number of any type (Python, NumPy), but not a bool."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def check_eps(eps: float) -> None:
    """eps is a finite real number; how negative it may be depends on the data (`check_sigma`)."""
    if not _is_real(eps) or not math.isfinite(eps):
        raise NormParameterError(
            f"eps must be a finite real number, got eps={eps!r}; allowed: any finite eps with "
            f"var + eps >= 0 for every pooled set"
        )


def check_sigma(eps: float, var: np.ndarray, name: str = "var_S") -> None:
    """var + eps >= 0 everywhere: sigma = sqrt(var + eps) must be real.

    Only a negative eps can break it. var + eps = 0 is allowed: there sigma is 0 and the spec's
    value is NaN (0/0), not an error.
    """
    var = np.asarray(var)
    if np.any(var + eps < 0):
        smallest = float(np.nanmin(var))
        raise NormParameterError(
            f"eps={eps!r} makes {name} + eps < 0 for the smallest {name} = {smallest!r}, and "
            f"sqrt({name} + eps) is not real; allowed: eps >= -min({name}) = {-smallest!r} "
            f"(at equality that set's output is NaN)"
        )


def check_momentum(momentum: float | None) -> None:
    """momentum is None (cumulative average) or a finite real number."""
    if momentum is None:
        return
    if not _is_real(momentum) or not math.isfinite(momentum):
        raise NormParameterError(
            f"momentum must be None (cumulative moving average) or a finite real number, got "
            f"momentum={momentum!r}; allowed: None or any finite momentum (outside [0, 1] the "
            f"average extrapolates)"
        )


def check_choice(name: str, value: object, allowed: Sequence[str]) -> None:
    """`value` is one of the names in `allowed`."""
    if value not in allowed:
        choices = " or ".join(repr(a) for a in allowed)
        raise NormParameterError(f"{name} must be {choices}, got {name}={value!r}")


def check_channels(norm: str, shape: Sequence[int]) -> None:
    """A channels-first input (N, C, *spatial) has at least the two axes N and C."""
    if len(shape) < 2:
        raise NormParameterError(
            f"{norm} expects a channels-first input (N, C, *spatial) of rank >= 2, got shape "
            f"{tuple(shape)} of rank {len(shape)}"
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
    """normalized_shape must equal the trailing dimensions of the input (() pools single values)."""
    k = len(normalized_shape)
    if k > len(shape) or tuple(shape[len(shape) - k :]) != tuple(normalized_shape):
        raise NormParameterError(
            f"normalized_shape={tuple(normalized_shape)} must equal the trailing dimensions of "
            f"the input of shape {tuple(shape)}; allowed: a suffix of {tuple(shape)}"
        )


def check_nonempty_sets(
    norm: str, shape: Sequence[int], axes: Sequence[int], count: int, number: int
) -> None:
    """Every pooled set holds at least one value: the mean of no values is undefined.

    An input with no sets at all (an empty batch for a norm that pools within a sample) is
    fine: its output and its statistics are empty.
    """
    if count == 0 and number > 0:
        raise NormParameterError(
            f"{norm} pools axes {tuple(axes)} of the input of shape {tuple(shape)} into "
            f"{number} sets of 0 values, whose mean is undefined; allowed: at least 1 value "
            f"per pooled set"
        )


def check_bessel_count(count: int) -> None:
    """The unbiased running variance needs count >= 2: its factor count / (count - 1)."""
    if count < 2:
        raise NormParameterError(
            f"running_var_estimator='unbiased' multiplies the batch variance by count / "
            f"(count - 1), undefined for count={count} value per channel; allowed: count >= 2, "
            f"or running_var_estimator='biased'"
        )


def check_dim(dim: int | None, ndim: int) -> None:
    """dim is None (whole tensor) or an axis of the tensor."""
    if dim is not None and not -ndim <= dim < ndim:
        raise NormParameterError(
            f"dim must be None or an axis in [{-ndim}, {ndim - 1}] of a rank-{ndim} tensor, "
            f"got dim={dim!r}"
        )


def check_param_shape(name: str, param: object, expected: tuple[int, ...]) -> None:
    """A parameter must have exactly the shape its norm defines."""
    if param is None:
        return
    shape = tuple(getattr(param, "shape", ()))
    if shape != expected:
        raise NormParameterError(f"{name} must have shape {expected}, got shape {shape}")
