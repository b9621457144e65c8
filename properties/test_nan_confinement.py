"""Property 11: a NaN stays in the pooled set it came from.

A NaN in the input is poison for its own statistics, and for nothing else: every other pooled
set is normalized with statistics that never saw it. A kernel that reduces over more than
its sets (a global rescaling for overflow safety, a fused reduction across rows, a shared
accumulator) spreads one bad value over the whole tensor.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from normspec.reference import Expected
from normspec.vocabulary import NORMS
from properties import strategies
from properties.helpers import assume_defined, expected_forward

#: The flat index of the NaN, modulo the size of x: shrinks toward the first element.
POSITIONS = st.integers(0, 2**20 - 1)


@pytest.mark.norms(*NORMS)
@given(data=st.data())
def test_a_nan_stays_in_its_pooled_set(backend, norm, data, check):
    """With x_i = NaN for one element i in the set S_0, y = norm(x) agrees with the spec
    outside S_0 (where the spec's statistics never see x_i) within the tolerance model's bound:

        y_j = spec(x)_j  for every j outside S_0,

    S_0 the set that pools i (WeightNorm: the slice along dim; BatchNorm in evaluation mode,
    which pools nothing: the element i alone). Inside S_0 nothing is required.
    """
    for case, index in check.each(data, strategies.cases(norm, backend), POSITIONS):
        with check.case(case):
            inputs = case.inputs()
            assume_defined(norm, inputs)
            poisoned = index % inputs.x.size
            x = inputs.x.copy()
            x.flat[poisoned] = np.nan
            inputs = type(inputs)(**{**inputs.__dict__, "x": x})
            with np.errstate(invalid="ignore"):
                expected = expected_forward(backend, norm, inputs)
            outside = np.isfinite(expected.value) & np.isfinite(expected.bound)
            assume(bool(outside.any()))  # one pooled set only: nothing is outside it
            y = np.asarray(backend.forward(norm, inputs), dtype=np.float64)
            check.within(
                y[outside],
                Expected(expected.value[outside], expected.bound[outside]),
                what=f"output outside the pooled set of the NaN at flat index {poisoned}",
                case=case,
                dtype=case.dtype,
            )
