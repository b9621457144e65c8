"""Property 8: the backend's gradients are the spec's, and obey the constraints of a
normalization."""

from __future__ import annotations

import functools
from dataclasses import replace

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from normspec import reference
from normspec.reference import Expected
from normspec.vocabulary import NORMS
from properties import strategies
from properties.helpers import (
    U64,
    as64,
    assume_defined,
    assume_representable,
    expected_forward,
    pooled,
    set_size,
)

#: An upstream gradient dL/dy: its magnitudes, drawn with the case (`_upstream`).
UPSTREAM = strategies.upstream_gradients()


def _upstream(drawn, case, inputs) -> np.ndarray:
    """The upstream gradient `drawn` shaped like the output, in the input's dtype."""
    return strategies.upstream(drawn, case).build().astype(inputs.x.dtype)


@pytest.mark.norms(*NORMS)
@given(data=st.data())
def test_vjp_agrees_with_the_spec(backend, norm, data, check):
    """dL/dx (and dL/dweight, dL/dbias where present) of L = sum(grad_y * norm(x)) equal the
    spec's hand-derived VJP within the tolerance model; batch_norm in both modes."""
    if norm == "batch_norm":
        calls = strategies.training_or_evaluation(norm, backend)
    else:
        calls = strategies.cases(norm, backend)
    for case, recipe in check.each(data, calls, UPSTREAM):
        with check.case(case):
            inputs = case.inputs()
            assume_defined(norm, inputs)
            grad_y = _upstream(recipe, case, inputs)
            grads = backend.vjp(norm, inputs, grad_y)
            expected = reference.vjp(
                norm, inputs, as64(grad_y), check.precision(backend, case.dtype)
            )
            for name, want in expected.items():
                observed = getattr(grads, name)
                check.equal(observed is not None, True, what=f"presence of dL/d{name}", case=case)
                check.within(observed, want, what=f"dL/d{name}", case=case, dtype=case.dtype)


#: A negligible eps that frameworks refusing eps = 0 accept, and whose 1 / sigma^3 still
#: fits in float64 for any set with a nonzero variance.
NO_EPS = 1e-30


@pytest.mark.norms("batch_norm", "layer_norm", "instance_norm", "group_norm")
@given(data=st.data())
def test_input_gradient_sums_to_zero_and_is_orthogonal_to_the_output(backend, norm, data, check):
    """Without affine and without eps, over every pooled set S, with y = norm(x) and
    dx = dL/dx for any upstream gradient:

        sum_S dx = 0   and   sum_S dx * y = 0

    (y does not change when x is shifted or scaled, so dx has no component along 1 or y).
    With eps > 0 the second sum is eps / (var + eps) * sum_S(g y) / sigma exactly; eps is
    1e-30 (accepted where a framework refuses eps = 0), and the bound of the second sum adds
    eps / (var + eps) * sum_S |g y| / sigma, negligible unless var is tiny. Bounds otherwise:
    the sums of the elementwise bounds, sum_S B_dx and sum_S (B_dx |y| + |dx| B_y).
    """
    plain = strategies.cases(norm, backend, affine=False)
    for drawn, recipe in check.each(data, plain, UPSTREAM):
        case = replace(drawn, eps=NO_EPS)
        with check.case(case):
            inputs = case.inputs()
            assume_defined(norm, replace(inputs, eps=0.0))
            grad_y = _upstream(recipe, case, inputs)
            dx = backend.vjp(norm, inputs, grad_y).x
            y = backend.forward(norm, inputs)
            want_dx = reference.vjp(
                norm, inputs, as64(grad_y), check.precision(backend, case.dtype)
            )["x"]
            want_y = expected_forward(backend, norm, inputs)
            assume_representable(want_dx, case.dtype)
            axes, (x, g, dx, y, b_dx, b_y) = pooled(
                norm, inputs, inputs.x, grad_y, dx, y, want_dx.bound, want_y.bound
            )
            total = functools.partial(np.sum, axis=axes)
            slack = U64 * (set_size(dx.shape, axes) + 2)  # this test's own float64 sums
            zeros = np.zeros(total(dx).shape)
            check.within(
                total(dx),
                Expected(zeros, total(b_dx) + slack * total(np.abs(dx))),
                what="sum of dL/dx over each set",
                case=case,
                dtype=case.dtype,
            )
            var = np.var(x, axis=axes)
            eps_term = NO_EPS / (var + NO_EPS) * total(np.abs(g * y)) / np.sqrt(var + NO_EPS)
            bound = (
                total(b_dx * (np.abs(y) + b_y) + np.abs(dx) * b_y)
                + slack * total(np.abs(dx * y))
                + eps_term
            )
            check.within(
                total(dx * y),
                Expected(zeros, bound),
                what="sum of dL/dx * y over each set",
                case=case,
                dtype=case.dtype,
            )
