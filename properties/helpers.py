"""Small pieces the property modules share: expected values for a backend, pooled views."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import assume

from backends.protocol import Backend, NormInputs
from normspec import reference
from normspec.reference import Expected
from normspec.tolerance import (
    LARGEST_FINITE,
    SMALLEST_SUBNORMAL,
    UNIT_ROUNDOFF,
    intermediates_out_of_range,
)
from properties.assertions import precision

#: The unit roundoff of the float64 arithmetic the properties themselves do, and the absolute
#: error of one such operation in the subnormal range.
U64 = UNIT_ROUNDOFF["float64"]
ETA64 = SMALLEST_SUBNORMAL["float64"]


def expected_forward(backend: Backend, norm: str, inputs: NormInputs) -> Expected:
    """The spec's output for this call and the bound for this backend's precision."""
    return reference.forward(norm, inputs, precision(backend, inputs.x.dtype.name, norm))


def as64(a: np.ndarray) -> np.ndarray:
    """The exact float64 values of an array of any float dtype."""
    return np.asarray(a, dtype=np.float64)


def pooled(norm: str, inputs: NormInputs, *arrays: np.ndarray):
    """The pooled axes of `norm` and each array viewed so that those axes are its sets S."""
    view, axes = reference.pooled_sets(norm, inputs)
    return axes, [np.broadcast_to(as64(a), inputs.x.shape).reshape(view.shape) for a in arrays]


def set_size(shape: tuple[int, ...], axes: tuple[int, ...]) -> int:
    """|S|: the number of values in each pooled set."""
    return math.prod(shape[a] for a in axes)


def require(backend: Backend, *norms: str) -> None:
    """Skip as "not provided" unless the backend provides every norm named."""
    missing = [n for n in norms if n not in backend.norms]
    if missing:
        pytest.skip(f"not provided: {backend.name} has no {', '.join(missing)}")


def require_training(backend: Backend, norm: str) -> None:
    """Skip as "not provided" unless the backend tracks running statistics for `norm`."""
    if norm not in backend.trains:
        pytest.skip(f"not provided: {backend.name} tracks no running statistics for {norm}")


def assume_defined(norm: str, inputs: NormInputs) -> None:
    """Discard a case whose rounded input has a pooled set with var + eps = 0: its output is
    0/0, a convention of the backend (checked by the conventions properties), not a number."""
    if norm == "weight_norm" or inputs.eps >= SMALLEST_SUBNORMAL[inputs.x.dtype.name]:
        return  # an eps the input's dtype cannot hold is 0 to a backend that rounds to it
    view, axes = reference.pooled_sets(norm, inputs)
    if axes is None:
        return
    spread = np.mean(np.square(view), axis=axes) if norm == "rms_norm" else np.var(view, axis=axes)
    assume(bool(np.all(spread > 0)))


def assume_representable(expected: Expected, dtype: str) -> None:
    """Discard a case whose exact result may overflow the dtype: sums over it would be NaN."""
    assume(bool(np.all(np.abs(expected.value) + expected.bound < LARGEST_FINITE[dtype])))


def intermediates_beyond_range(backend: Backend, norm: str, inputs: NormInputs) -> str | None:
    """Why the backend's accumulation dtype cannot hold an intermediate of this call (its sum
    of squares, its mean square), or None (tolerance.intermediates_out_of_range)."""
    accumulation = backend.accumulation_dtype(inputs.x.dtype.name)
    if norm == "weight_norm":
        v = as64(inputs.x)
        axes = (
            tuple(range(v.ndim))
            if inputs.dim is None
            else tuple(a for a in range(v.ndim) if a != inputs.dim % v.ndim)
        )
        return intermediates_out_of_range(v, axes, 0.0, accumulation)
    view, axes = reference.pooled_sets(norm, inputs)
    if axes is None:  # running statistics: nothing is reduced
        return None
    return intermediates_out_of_range(view, axes, inputs.eps, accumulation)
