"""Properties 3 and 4: the running statistics follow the momentum recurrence, and evaluation
mode is the affine map they define."""

from __future__ import annotations

import functools

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from normspec import core, reference
from normspec.reference import Expected
from normspec.tolerance import stored_state_out_of_range
from properties import strategies
from properties.helpers import as64, expected_forward, require_training


@pytest.mark.norms("batch_norm", "instance_norm")
@given(data=st.data())
def test_running_statistics_follow_the_recurrence(backend, norm, data, check):
    """After k training steps, with a the weight of the new batch statistic (momentum if it
    weighs the new value, 1 - momentum if it weighs the old, 1/t for momentum None):

        running_mean_t = (1 - a) running_mean_(t-1) + a mean_B
        running_var_t  = (1 - a) running_var_(t-1)  + a var_B * (n / (n - 1) if unbiased)

    and every step's output is normalized with its own batch's statistics. A running
    variance that its buffer's dtype cannot hold between steps is a declared limitation
    (tolerance.stored_state_out_of_range), not a failure.
    """
    require_training(backend, norm)
    for case in check.each(data, strategies.training_cases(norm, backend)):
        with check.case(case):
            run = case.run()
            result = backend.train(norm, run)
            expected = reference.training(norm, run, check.precision(backend, case.dtype))
            check.equal(result.batches_seen, expected.batches_seen, what="batches seen", case=case)
            check.within(
                result.running_mean,
                expected.running_mean,
                what="running_mean after k steps",
                case=case,
                dtype=case.dtype,
            )
            check.within(
                result.running_var,
                expected.running_var,
                what="running_var after k steps",
                case=case,
                dtype=case.dtype,
                beyond=stored_state_out_of_range(
                    expected.running_var_between_steps,
                    backend.statistics_dtype(case.dtype, norm),
                ),
            )
            for step, (observed, want) in enumerate(
                zip(result.outputs, expected.outputs, strict=True)
            ):
                check.within(
                    observed,
                    want,
                    what=f"output of training step {step + 1}",
                    case=case,
                    dtype=case.dtype,
                )


@pytest.mark.norms("batch_norm", "instance_norm")
@given(data=st.data())
def test_evaluation_batch_norm_is_the_affine_map_of_running_statistics(backend, norm, data, check):
    """In evaluation mode no statistic of x is used: per channel c,

        y = scale_c * x + shift_c,  scale_c = weight_c / sqrt(running_var_c + eps),
                                    shift_c = bias_c - running_mean_c * scale_c.

    InstanceNorm has this mode only where it tracks running statistics.
    """
    if norm == "instance_norm":
        require_training(backend, norm)
    for case in check.each(data, strategies.cases(norm, backend, training=False)):
        with check.case(case):
            inputs = case.inputs()
            y = backend.forward(norm, inputs)
            along = functools.partial(core.along, ndim=inputs.x.ndim, feature_axes=(1,))
            weight = 1.0 if inputs.weight is None else along(inputs.weight)
            bias = 0.0 if inputs.bias is None else along(inputs.bias)
            scale = weight / np.sqrt(along(inputs.running_var) + case.eps)
            shift = bias - along(inputs.running_mean) * scale
            bound = expected_forward(backend, norm, inputs).bound
            check.within(
                y,
                Expected(scale * as64(inputs.x) + shift, bound),
                what="evaluation-mode output",
                case=case,
                dtype=case.dtype,
            )
