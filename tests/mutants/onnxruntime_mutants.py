"""Planted bugs in the ONNX Runtime adapter: each class is one realistic mistake in writing
an ONNX graph for a norm.

Each mutant overrides exactly one method of `OnnxRuntimeBackend` and names, in `caught_by`,
the properties that must fail on it and, in `caught_on`, the norms to run them on; the
healthy backend passes those properties on those norms under the ci profile, so a failure is
the bug's. `tests/test_mutants.py` checks that they do.
"""

from __future__ import annotations

from backends.onnxruntime_backend import OnnxRuntimeBackend


class OnnxMomentumNotTranslated(OnnxRuntimeBackend):
    """PyTorch's momentum written into the graph as is: ONNX's momentum weighs the old
    running value (running = momentum * running + (1 - momentum) * batch). Caught by the
    momentum recurrence."""

    caught_by = ("test_running_statistics_follow_the_recurrence",)
    caught_on = ("batch_norm",)

    def framework_momentum(self, momentum, weighs):
        return momentum


class OnnxAxisCountedFromTheFront(OnnxRuntimeBackend):
    """LayerNormalization's axis written as the number of normalized axes, counted from the
    front, instead of minus it: the first axes are kept and the wrong trailing set pooled.
    Caught by agreement with the spec."""

    caught_by = ("test_forward_agrees_with_the_spec",)
    caught_on = ("layer_norm",)

    def _attributes(self, norm, inputs, dtype, **kwargs):
        attributes = dict(super()._attributes(norm, inputs, dtype, **kwargs))
        if "axis" in attributes:
            attributes["axis"] = -attributes["axis"]
        return tuple(sorted(attributes.items()))


class OnnxEvaluationInTrainingMode(OnnxRuntimeBackend):
    """training_mode=1 in evaluation too: the graph normalizes with the batch's statistics
    and ignores the running ones it is fed. Caught by the evaluation-mode affine map."""

    caught_by = ("test_evaluation_batch_norm_is_the_affine_map_of_running_statistics",)
    caught_on = ("batch_norm",)

    def _attributes(self, norm, inputs, dtype, **kwargs):
        return super()._attributes(norm, inputs, dtype, **{**kwargs, "training": True})

    def _run(self, norm, dtype, attributes, feeds, outputs=1):
        return super()._run(norm, dtype, attributes, feeds, 3)
