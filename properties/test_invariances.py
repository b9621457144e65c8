"""Property 5: the normalized output does not see a shift, nor a positive scale, of x."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from normspec.reference import Expected
from properties import strategies
from properties.helpers import as64, assume_defined, expected_forward

#: Shifts: a few simple ones, as likely as a value anywhere in [-1000, 1000] (one choice).
SHIFTS = strategies.Table(
    ((1.0, -3.0, 0.5, 100.0), tuple(float(c) for c in np.linspace(-1e3, 1e3, 4001)))
).strategy
#: Powers of two, so that a * x and eps * a^2 are exact in binary floating point.
SCALES = st.integers(-6, 6).map(lambda k: 2.0**k)


@pytest.mark.norms("batch_norm", "layer_norm", "instance_norm", "group_norm")
@given(data=st.data())
def test_output_is_invariant_to_a_shift_of_the_input(backend, norm, data, check):
    """norm(x + c) = norm(x) for any constant c: each pooled set's mean absorbs it.

    x + c is rounded to the dtype; the bound adds the exact effect of that rounding,
    |spec(fl(x + c)) - spec(x)|, to the bounds of the two calls.
    """
    for case, c in check.each(data, strategies.cases(norm, backend), SHIFTS):
        with check.case(case):
            inputs = case.inputs()
            shifted = replace(inputs, x=(as64(inputs.x) + c).astype(inputs.x.dtype))
            assume(np.all(np.isfinite(as64(shifted.x))))
            assume_defined(norm, inputs)
            assume_defined(norm, shifted)
            before, after = (
                expected_forward(backend, norm, inputs),
                expected_forward(backend, norm, shifted),
            )
            rounding = np.abs(after.value - before.value)
            check.within(
                backend.forward(norm, shifted),
                Expected(
                    as64(backend.forward(norm, inputs)), before.bound + after.bound + rounding
                ),
                what=f"output after adding {c!r} to x",
                case=case,
                dtype=case.dtype,
            )


@pytest.mark.norms("batch_norm", "layer_norm", "instance_norm", "group_norm", "rms_norm")
@given(data=st.data())
def test_output_is_invariant_to_positive_scaling(backend, norm, data, check):
    """norm(a x; eps a^2) = norm(x; eps) for a > 0: mean and std scale with x, and eps with
    the variance. a is a power of two, so a x and eps a^2 are exact (unless they overflow or
    underflow, which discards the case)."""
    for case, a in check.each(data, strategies.cases(norm, backend), SCALES):
        with check.case(case):
            inputs = case.inputs()
            scaled = replace(
                inputs, x=(as64(inputs.x) * a).astype(inputs.x.dtype), eps=case.eps * a * a
            )
            assume(np.array_equal(as64(scaled.x) / a, as64(inputs.x)))
            assume_defined(norm, inputs)
            assume_defined(norm, scaled)  # eps a^2 may be too small for the dtype to hold
            before, after = (
                expected_forward(backend, norm, inputs),
                expected_forward(backend, norm, scaled),
            )
            check.within(
                backend.forward(norm, scaled),
                Expected(as64(backend.forward(norm, inputs)), before.bound + after.bound),
                what=f"output after scaling x by {a!r} and eps by {a * a!r}",
                case=case,
                dtype=case.dtype,
            )
