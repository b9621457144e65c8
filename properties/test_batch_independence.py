"""Property 6: per-sample norms give each sample the output it gets alone; training-mode
BatchNorm does not care about the order of the batch."""

from __future__ import annotations

from dataclasses import replace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from normspec.reference import Expected
from properties import strategies
from properties.helpers import as64, assume_defined, expected_forward

#: The number of a permutation of the batch (`strategies.permutation`): 0 is the identity.
PERMUTATIONS = st.integers(0, 2**32 - 1)


@pytest.mark.norms("batch_norm", "layer_norm", "instance_norm", "group_norm", "rms_norm")
@given(data=st.data())
def test_each_sample_gets_the_output_it_gets_alone(backend, norm, data, check):
    """norm(x)[n] = norm(x[n : n + 1]) for every sample n: no statistic crosses the batch
    (batch_norm in evaluation mode, whose statistics are the running ones)."""
    training = norm != "batch_norm"
    batches = strategies.cases(norm, backend, training=training, min_batch=2)
    for case in check.each(data, batches):
        with check.case(case):
            inputs = case.inputs()
            assume_defined(norm, inputs)
            together = as64(backend.forward(norm, inputs))
            bound = expected_forward(backend, norm, inputs).bound
            for n in range(inputs.x.shape[0]):
                alone = replace(inputs, x=inputs.x[n : n + 1])
                check.within(
                    backend.forward(norm, alone),
                    Expected(together[n : n + 1], 2 * bound[n : n + 1]),
                    what=f"output of sample {n} alone",
                    case=case,
                    dtype=case.dtype,
                )


@pytest.mark.norms("batch_norm")
@given(data=st.data())
def test_training_batch_norm_is_permutation_equivariant_over_the_batch(backend, norm, data, check):
    """BN(x[perm]) = BN(x)[perm] in training mode: the batch statistics ignore order."""
    batches = strategies.cases(norm, backend, min_batch=2)
    for case, index in check.each(data, batches, PERMUTATIONS):
        with check.case(case):
            inputs = case.inputs()
            assume_defined(norm, inputs)
            perm = strategies.permutation(index, inputs.x.shape[0])
            bound = expected_forward(backend, norm, inputs).bound
            permuted = backend.forward(norm, replace(inputs, x=inputs.x[perm]))
            check.within(
                permuted,
                Expected(as64(backend.forward(norm, inputs))[perm], 2 * bound[perm]),
                what=f"output of the batch permuted by {perm.tolist()}",
                case=case,
                dtype=case.dtype,
            )
