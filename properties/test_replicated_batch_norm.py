"""Property 12: synchronized BatchNorm on R replicas is BatchNorm on the whole batch.

A global batch is split over R replicas (evenly, unevenly, one replica with a single sample,
and where the framework has masks, shares partly or wholly masked out); each replica sees its
share only, and the layer synchronizes its statistics across replicas. Whatever the split,
one synchronized step must give what the spec's BatchNorm gives on the concatenated batch of
the samples that count. Only replicated backends (backends/replicated.py) get these cells.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from normspec import reference
from normspec.vocabulary import NormInputs
from properties import strategies
from properties.helpers import as64


def _rows(case: strategies.ReplicatedCase, per_replica: tuple[np.ndarray, ...]) -> np.ndarray:
    """The rows of the concatenated per-replica arrays that belong to the whole batch."""
    return np.concatenate(per_replica)[case.kept()]


@pytest.mark.norms("batch_norm")
@given(data=st.data())
def test_synchronized_step_equals_batch_norm_on_the_whole_batch(backend, norm, data, check):
    """For shares x_1 .. x_R of the whole batch X (the unmasked samples), one synchronized
    training step gives, per replica r and for L = sum(grad_y * y) over every replica:

        y_r = BN(X)[rows of r],   dL/dx_r = VJP_BN(X, grad_y)[rows of r],
        sum_r dL/dweight_r = dL/dweight of BN(X),   sum_r dL/dbias_r = dL/dbias of BN(X),

    and dL/dx = 0 for a masked sample (its output has no cotangent and it pools nothing).
    """
    case = data.draw(strategies.replicated_cases(backend), label="case")
    _check_synchronized_step(backend, norm, case, check)


@pytest.mark.norms("batch_norm")
@given(data=st.data())
def test_synchronized_step_on_even_shares_of_well_conditioned_data_equals_batch_norm(
    backend, norm, data, check
):
    """The same claim on R equal shares of data with mean 0 and no masks, the split and the
    data every synchronization scheme and a one-pass variance get right: a backend whose
    known deviations cover uneven shares and ill-conditioned data is still checked here."""
    case = data.draw(strategies.even_shares_cases(backend), label="case")
    _check_synchronized_step(backend, norm, case, check)


def _check_synchronized_step(backend, norm, case, check) -> None:
    """Outputs, dL/dx per sample (0 where masked) and the parameter gradients summed over
    replicas of one synchronized step, against the spec's BatchNorm on the whole batch."""
    run = case.run()
    result = backend.replicated_step(norm, run)
    whole = case.whole()
    p = check.precision(backend, case.dtype)
    inputs = NormInputs(whole.batches[0], case.eps, whole.weight, whole.bias)
    check.within(
        _rows(case, result.outputs[0]),
        reference.forward(norm, inputs, p),
        what="outputs of the synchronized step",
        case=case,
        dtype=case.dtype,
    )
    upstream = as64(case.upstream()[case.kept()])
    expected = reference.vjp(norm, inputs, upstream, p)
    check.within(
        _rows(case, result.grad_x), expected["x"], what="dL/dx", case=case, dtype=case.dtype
    )
    masked = np.setdiff1d(np.arange(sum(case.sizes)), case.kept())
    check.equal(
        bool(np.all(np.concatenate(result.grad_x)[masked] == 0)),
        True,
        what="dL/dx of the masked samples is 0",
        case=case,
    )
    for name in ("weight", "bias"):
        if name in expected:
            check.within(
                getattr(result, f"grad_{name}"),
                expected[name],
                what=f"dL/d{name} summed over replicas",
                case=case,
                dtype=case.dtype,
            )


@pytest.mark.norms("batch_norm")
@given(data=st.data())
def test_synchronized_running_statistics_follow_the_whole_batch(backend, norm, data, check):
    """After k synchronized steps every replica holds the running statistics plain BatchNorm
    holds after k steps on the whole batches (the global count n in Bessel's n / (n - 1), the
    momentum in the framework's declared convention), its outputs at each step are the whole
    batch's, and evaluation mode afterwards normalizes each share with them:

        y_r = weight * (x_r - running_mean) / sqrt(running_var + eps) + bias.
    """
    case = data.draw(strategies.replicated_cases(backend, steps=3), label="case")
    result = backend.replicated_step(norm, case.run())
    whole = case.whole()
    p = check.precision(backend, case.dtype)
    expected = reference.training(norm, whole, p)
    for r in range(len(case.sizes)):
        for what in ("running_mean", "running_var"):
            check.within(
                getattr(result, what)[r],
                getattr(expected, what),
                what=f"{what} of replica {r} after {len(case.batches)} steps",
                case=case,
                dtype=case.dtype,
            )
    for step, outputs in enumerate(result.outputs):
        check.within(
            _rows(case, outputs),
            expected.outputs[step],
            what=f"outputs of synchronized step {step + 1}",
            case=case,
            dtype=case.dtype,
        )
    evaluate = NormInputs(
        np.concatenate(case.run().evaluate),
        case.eps,
        whole.weight,
        whole.bias,
        training=False,
        running_mean=np.asarray(result.running_mean[0]),
        running_var=np.asarray(result.running_var[0]),
    )
    check.within(
        np.concatenate(result.evaluation),
        reference.forward(norm, evaluate, p),
        what="evaluation-mode outputs after training",
        case=case,
        dtype=case.dtype,
    )
