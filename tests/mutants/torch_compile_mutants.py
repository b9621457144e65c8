"""Planted bugs in the torch.compile adapter: each class is one realistic mistake in caching
compiled graphs.

Each mutant overrides exactly one method of `TorchCompileBackend` and names, in `caught_by`,
the properties that must fail on it and, in `caught_on`, the norms to run them on; the
healthy backend passes those properties on those norms under the ci profile, so a failure is
the bug's. `tests/test_mutants.py` checks that they do.
"""

from __future__ import annotations

from backends.torch_compile_backend import TorchCompileBackend


class CompiledWithTheFirstEps(TorchCompileBackend):
    """The graph closes over the eps of the call that compiled it, as a compiled F.* call
    does, while the cache is keyed without eps: every later eps is silently the first.
    Caught by agreement with the spec."""

    caught_by = ("test_forward_agrees_with_the_spec",)
    caught_on = ("layer_norm",)

    def _graph(self, kind, groups):
        graph = super()._graph(kind, groups)
        first = {}

        def with_first_eps(*arguments):
            first.setdefault("eps", arguments[-1].item())
            return graph(*arguments[:-1], self._scalar(first["eps"]))

        return with_first_eps if kind == "layer_norm" else graph


class GroupSizeAsTheGroupCount(TorchCompileBackend):
    """The size of the group counter taken as C / G, the channels per group: C / G groups of
    G channels. Caught by GN(G = 1) = LN and GN(G = C) = IN, which it turns into each
    other."""

    caught_by = (
        "test_group_norm_with_one_group_equals_layer_norm",
        "test_group_norm_with_one_group_per_channel_equals_instance_norm",
    )
    caught_on = ("group_norm",)

    def _run(self, kind, *arguments, groups=None):
        if kind == "group_norm":
            groups = arguments[0].shape[1] // groups
        return super()._run(kind, *arguments, groups=groups)


class CompiledStepFedTheInitialStatistics(TorchCompileBackend):
    """Every training step is fed the initial running statistics instead of the previous
    step's: after k steps they hold one step's update. Caught by the momentum recurrence."""

    caught_by = ("test_running_statistics_follow_the_recurrence",)
    caught_on = ("batch_norm",)

    def run_training(self, norm, run):
        c = run.batches[0].shape[1]
        w, b = self._affine(run.batches[0], c, run.weight, run.bias)
        eps, momentum = self._scalar(run.eps), self._scalar(run.momentum)
        outputs, mean, var = [], run.running_mean, run.running_var
        for batch in run.batches:
            view = batch.reshape(batch.shape[0], c, -1)
            y, mean, var = self._run(
                "batch_norm_step", view, w, b, run.running_mean, run.running_var, momentum, eps
            )
            outputs.append(y.reshape(batch.shape))
        return outputs, mean, var, len(run.batches)
