"""Property 1: the normalized output has zero mean and unit variance over each pooled set."""

from __future__ import annotations

import functools

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from normspec import core
from normspec.reference import Expected
from properties import strategies
from properties.helpers import ETA64, U64, assume_defined, expected_forward, pooled, set_size


@pytest.mark.norms("batch_norm", "layer_norm", "instance_norm", "group_norm", "rms_norm")
@given(data=st.data())
def test_output_has_zero_mean_and_unit_variance(backend, norm, data, check):
    """Without affine, over every pooled set S of y = norm(x):

        mean_S(y) = 0   and   var_S(y) = var_S(x) / (var_S(x) + eps)

    (unit variance when var >> eps). RMSNorm does not center: mean_S(y^2) = ms / (ms + eps)
    with ms = mean_S(x^2). Bounds: the mean of the elementwise bounds B, and
    mean((2|x_hat| + B) B) + mean(B)^2 for the variance.
    """
    for case in check.each(data, strategies.cases(norm, backend, affine=False)):
        with check.case(case):
            inputs = case.inputs()
            assume_defined(norm, inputs)
            y = backend.forward(norm, inputs)
            expected = expected_forward(backend, norm, inputs)
            axes, (x, y, bound, exact) = pooled(
                norm, inputs, inputs.x, y, expected.bound, expected.value
            )
            mean = functools.partial(np.mean, axis=axes, keepdims=True)
            n = set_size(x.shape, axes)
            slack = U64 * (n + 4)  # this test's own float64 arithmetic, relative and absolute
            underflow = (n + 4) * ETA64
            if norm == "rms_norm":
                ms = mean(np.square(x))
                square_bound = (
                    mean((2 * np.abs(exact) + bound) * bound)
                    + slack * mean(np.square(y))
                    + underflow
                )
                check.within(
                    mean(np.square(y)),
                    Expected(ms / (ms + case.eps), square_bound),
                    what="mean of y^2 over each set",
                    case=case,
                    dtype=case.dtype,
                )
                continue
            _, var = core.moments(x, axes)
            mean_bound = mean(bound) + slack * mean(np.abs(y)) + underflow
            check.within(
                mean(y),
                Expected(np.zeros_like(var), mean_bound),
                what="mean of y over each set",
                case=case,
                dtype=case.dtype,
            )
            observed_var = mean(np.square(y - mean(y)))
            var_bound = (
                mean((2 * np.abs(exact) + bound) * bound)
                + mean_bound**2
                + slack * mean(np.square(y))
                + underflow
            )
            check.within(
                observed_var,
                Expected(var / (var + case.eps), var_bound),
                what="variance of y over each set",
                case=case,
                dtype=case.dtype,
            )
