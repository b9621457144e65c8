"""Planted bugs in synchronized BatchNorm: each is wrong only when the batch is split.

Each mutant overrides exactly one building block of `NumpySyncBackend` (the independent,
replica-by-replica implementation) and names, in `caught_by`, the replicated property that
must fail on it. On one replica, or on shares where the bug cancels, each is correct: only the
split draws of properties/test_replicated_batch_norm.py can catch them.
"""

from __future__ import annotations

import numpy as np

from backends.numpy_sync_backend import NumpySyncBackend


class UnweightedMeanOfReplicaMeans(NumpySyncBackend):
    """The global mean is the plain average of the replicas' means, not weighted by their
    counts: right for equal shares, wrong for 4 + 3. Caught by the outputs of the synchronized
    step."""

    caught_by = ("test_synchronized_step_equals_batch_norm_on_the_whole_batch",)
    caught_on = ("batch_norm",)

    def mean(self, shares, masks, counts):
        sums = [
            np.sum(self.masked(x, m), axis=self.axes(x)) for x, m in zip(shares, masks, strict=True)
        ]
        return np.mean([s / c for s, c in zip(sums, counts, strict=True)], axis=0)


class BesselWithTheLocalCount(NumpySyncBackend):
    """The running variance takes Bessel's correction n_r / (n_r - 1) with the replica's own
    count instead of the global n / (n - 1). Caught by the running statistics."""

    caught_by = ("test_synchronized_running_statistics_follow_the_whole_batch",)
    caught_on = ("batch_norm",)

    def bessel(self, count, local_count, estimator):
        if estimator == "biased":
            return 1.0
        return local_count / (local_count - 1) if local_count > 1 else np.inf


class ParameterGradientsNotSummedOverReplicas(NumpySyncBackend):
    """dL/dweight and dL/dbias are the first replica's own, never all-reduced: the optimizer
    sees one share's gradient. Caught by the parameter gradients of the synchronized step, on
    any split."""

    caught_by = (
        "test_synchronized_step_equals_batch_norm_on_the_whole_batch",
        "test_synchronized_step_on_even_shares_of_well_conditioned_data_equals_batch_norm",
    )
    caught_on = ("batch_norm",)

    def parameter_gradients(self, partials):
        return partials[0]


class MeanSynchronizedVarianceLocal(NumpySyncBackend):
    """The mean is all-reduced but each replica divides by its own variance (about the global
    mean, over its own share). Caught by the outputs of the synchronized step, on any split."""

    caught_by = (
        "test_synchronized_step_equals_batch_norm_on_the_whole_batch",
        "test_synchronized_step_on_even_shares_of_well_conditioned_data_equals_batch_norm",
    )
    caught_on = ("batch_norm",)

    def variances(self, shares, masks, counts, mean):
        return [
            np.sum(self.masked(np.square(x - self.per_channel(mean, x.ndim)), m), axis=self.axes(x))
            / max(c, 1.0)
            for x, m, c in zip(shares, masks, counts, strict=True)
        ]
