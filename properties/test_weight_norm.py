"""Property 9: WeightNorm's w has norm |g| and the direction of v."""

from __future__ import annotations

import functools
from dataclasses import replace

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from normspec import core
from normspec.reference import Expected
from properties import strategies
from properties.helpers import U64, as64, expected_forward

SCALES = st.integers(-6, 6).map(lambda k: 2.0**k)


def _length(a: np.ndarray, axes: tuple[int, ...]) -> np.ndarray:
    """The Euclidean norm over `axes`, kept for broadcasting."""
    return np.sqrt(np.sum(np.square(a), axis=axes, keepdims=True))


def _norm_axes(inputs) -> tuple[int, ...]:
    ndim = inputs.x.ndim
    return tuple(range(ndim)) if inputs.dim is None else core.all_but(ndim, (inputs.dim,))


@pytest.mark.norms("weight_norm")
@given(data=st.data())
def test_weight_norm_has_norm_g(backend, norm, data, check):
    """||w|| over every axis but dim equals |g|, for w = g v / ||v||. Bound: by the triangle
    inequality | ||w_computed|| - ||w|| | <= ||B||, B the elementwise bound of w."""
    for case in check.each(data, strategies.cases(norm, backend)):
        with check.case(case):
            inputs = case.inputs()
            w = as64(backend.forward(norm, inputs))
            bound = expected_forward(backend, norm, inputs).bound
            axes = _norm_axes(inputs)
            length = functools.partial(_length, axes=axes)
            g = np.abs(as64(inputs.weight))
            check.within(
                length(w),
                Expected(g, length(bound) + U64 * (w.size + 2) * g),
                what="norm of w over the non-dim axes",
                case=case,
                dtype=case.dtype,
            )


@pytest.mark.norms("weight_norm")
@given(data=st.data())
def test_weight_norm_is_invariant_to_positive_scaling_of_v(backend, norm, data, check):
    """w(a v, g) = w(v, g) for a > 0: only the direction of v matters. a is a power of two,
    so a v is exact unless it overflows or underflows (such cases are discarded)."""
    for case, a in check.each(data, strategies.cases(norm, backend), SCALES):
        with check.case(case):
            inputs = case.inputs()
            scaled = replace(inputs, x=(as64(inputs.x) * a).astype(inputs.x.dtype))
            assume(np.array_equal(as64(scaled.x) / a, as64(inputs.x)))
            bound = (
                expected_forward(backend, norm, inputs).bound
                + expected_forward(backend, norm, scaled).bound
            )
            check.within(
                backend.forward(norm, scaled),
                Expected(as64(backend.forward(norm, inputs)), bound),
                what=f"w after scaling v by {a!r}",
                case=case,
                dtype=case.dtype,
            )
