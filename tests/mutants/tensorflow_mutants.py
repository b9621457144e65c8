"""Planted bugs in the TensorFlow adapters: each class is one realistic mistake in using
TensorFlow or Keras.

Each mutant overrides exactly one method of `KerasBackend`, `TfNnBackend` or `TfFusedBackend`
and names, in `caught_by`, the properties that must fail on it and, in `caught_on`, the norms
to run them on; the healthy backend passes those properties on those norms under the ci
profile, so a failure is the bug's. `tests/test_mutants.py` checks that they do.
"""

from __future__ import annotations

from backends.framework import DEFAULT
from backends.tensorflow_backend import KerasBackend, TfFusedBackend, TfNnBackend

# --- Keras -----------------------------------------------------------------------------------


class KerasMomentumNotTranslated(KerasBackend):
    """PyTorch's momentum handed to Keras as is: Keras's momentum weighs the old moving value,
    so momentum=0.1 "new" becomes a layer that keeps 90 % of the new batch. Caught by the
    momentum recurrence."""

    caught_by = ("test_running_statistics_follow_the_recurrence",)
    caught_on = ("batch_norm",)

    def framework_momentum(self, momentum, weighs):
        return momentum


class ChannelsLeftFirst(KerasBackend):
    """(N, C, H, W) handed to a channels-last layer untransposed: BatchNormalization's default
    axis=-1 normalizes each column W over (N, C, H). Caught by zero mean and unit variance
    per channel."""

    caught_by = ("test_output_has_zero_mean_and_unit_variance",)
    caught_on = ("batch_norm",)

    def framework_axes(self, norm, ndim):
        return tuple(range(ndim))


class TrainingStepsInInferenceMode(KerasBackend):
    """The training loop calls the layer without training=True, so Keras runs it in
    inference mode: the moving statistics never move and each step is normalized with them.
    Caught by the momentum recurrence."""

    caught_by = ("test_running_statistics_follow_the_recurrence",)
    caught_on = ("batch_norm",)

    def run_training(self, norm, run):
        layer = self._layer_for(
            norm, run.batches[0], affine=run.weight is not None, defaults=run.eps is DEFAULT
        )
        self._configure(layer, run.eps, run.momentum)
        self._load(norm, layer, run.weight, run.bias, run.running_mean, run.running_var)
        outputs = [layer(x) for x in run.batches]
        return outputs, layer.moving_mean, layer.moving_variance, len(run.batches)


class GammaAndBetaSwapped(KerasBackend):
    """weight assigned to beta and bias to gamma: y = bias * x_hat + weight. Caught by affine
    recovery (weight = std, bias = mean must give back x)."""

    caught_by = ("test_affine_with_std_and_mean_recovers_the_input",)
    caught_on = ("batch_norm", "layer_norm")

    def _load(self, norm, layer, weight, bias, running_mean=None, running_var=None):
        super()._load(norm, layer, bias, weight, running_mean, running_var)


class EpsilonNeverSet(KerasBackend):
    """The cached layer keeps the epsilon it was built with (Keras's 1e-3) whatever eps the
    call asks for. Caught by agreement with the spec, and by the variance var / (var + eps)."""

    caught_by = ("test_forward_agrees_with_the_spec", "test_output_has_zero_mean_and_unit_variance")
    caught_on = ("layer_norm",)

    def _configure(self, layer, eps, momentum=DEFAULT):
        super()._configure(layer, DEFAULT, momentum)


# --- tf.nn -----------------------------------------------------------------------------------


class GroupsAndGroupSizeSwapped(TfNnBackend):
    """The channels-last reshape (..., C) -> (..., C/G, G) instead of (..., G, C/G): C/G
    groups of G channels. Caught by the equivalences GN(G = 1) = LN and GN(G = C) = IN,
    which it turns into each other."""

    caught_by = (
        "test_group_norm_with_one_group_equals_layer_norm",
        "test_group_norm_with_one_group_per_channel_equals_instance_norm",
    )
    caught_on = ("group_norm",)

    def group_shape(self, channels, num_groups):
        return channels // num_groups, num_groups


class InstanceMomentsOverTheBatch(TfNnBackend):
    """InstanceNorm's tf.nn.moments over axes [0, 1, 2] copied from BatchNorm: it pools the
    batch too. Caught by batch independence and by IN = BN per sample."""

    caught_by = (
        "test_each_sample_gets_the_output_it_gets_alone",
        "test_instance_norm_equals_training_batch_norm_per_sample",
    )
    caught_on = ("instance_norm",)

    def pooled_axes(self, norm, ndim, normalized_ndim=0):
        if norm == "instance_norm":
            return list(range(ndim - 1))
        return super().pooled_axes(norm, ndim, normalized_ndim)


class DecayReadAsTheNewWeight(TfNnBackend):
    """moving -= decay * (moving - batch): the decay of assign_moving_average read as the
    weight of the new batch. Caught by the momentum recurrence."""

    caught_by = ("test_running_statistics_follow_the_recurrence",)
    caught_on = ("batch_norm",)

    def update_moving_average(self, moving, batch, decay):
        moving.assign_sub((moving - batch) * decay)


# --- the fused kernel ------------------------------------------------------------------------


class FusedEvaluationInTrainingMode(TfFusedBackend):
    """fused_batch_norm called with its default is_training=True in evaluation: it normalizes
    with the batch's statistics and ignores the running ones it is given. Caught by the
    evaluation-mode affine map."""

    caught_by = ("test_evaluation_batch_norm_is_the_affine_map_of_running_statistics",)
    caught_on = ("batch_norm",)

    def call(self, norm, inputs, x, weight, bias):
        if inputs.training:
            return super().call(norm, inputs, x, weight, bias)
        mean = self._tensor(inputs.running_mean, "float32")
        variance = self._tensor(inputs.running_var, "float32")
        y, _, _ = self._fused(x, weight, bias, mean, variance, training=True, eps=inputs.eps)
        return y, (x, weight, bias)


class FusedRunningStatisticsNotThreaded(TfFusedBackend):
    """Every step gets the initial running statistics instead of the previous step's output:
    after k steps they hold one step's update. Caught by the momentum recurrence."""

    caught_by = ("test_running_statistics_follow_the_recurrence",)
    caught_on = ("batch_norm",)

    def run_training(self, norm, run):
        mean, variance = run.running_mean, run.running_var
        outputs, new_mean, new_variance = [], mean, variance
        for x in run.batches:
            y, new_mean, new_variance = self._fused(
                x,
                run.weight,
                run.bias,
                mean,
                variance,
                training=True,
                eps=run.eps,
                momentum=run.momentum,
            )
            outputs.append(y)
        return outputs, new_mean, new_variance, len(run.batches)
