"""Planted bugs in the NumPy backend: each class is one realistic mistake.

Each mutant overrides exactly one building block of `NumpyBackend` and names, in
`caught_by`, the properties that must fail on it and, in `caught_on`, the norms to run them on.
`tests/test_mutants.py` runs the ci profile against every mutant and checks that they do.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from backends.numpy_backend import NumpyBackend


class BiasedRunningVariance(NumpyBackend):
    """The running variance is fed the biased batch variance although the convention asked
    for the unbiased one. Caught by the momentum recurrence."""

    caught_by = ("test_running_statistics_follow_the_recurrence",)
    caught_on = ("batch_norm",)

    def bessel(self, count: int, estimator: str) -> float:
        return 1.0


class EpsAddedToStd(NumpyBackend):
    """(x - mean) / (sqrt(var) + eps) instead of / sqrt(var + eps). Caught by the statistics
    property (the output variance is var / (sqrt(var) + eps)^2, not var / (var + eps)) and by
    scale invariance (eps no longer scales like the variance)."""

    caught_by = (
        "test_output_has_zero_mean_and_unit_variance",
        "test_output_is_invariant_to_positive_scaling",
    )
    caught_on = ("layer_norm",)

    def normalize(self, x, mean, var, eps):
        return (x - mean) / (np.sqrt(var) + x.dtype.type(eps))


class MomentumConventionFlipped(NumpyBackend):
    """momentum read as the weight of the old value where it weighs the new one, and the
    reverse. Caught by the momentum recurrence, and against the NumPy backend."""

    caught_by = (
        "test_running_statistics_follow_the_recurrence",
        "test_backends_agree_on_the_running_statistics",
    )
    caught_on = ("batch_norm",)

    def momentum_factor(self, momentum, weighs, seen):
        if momentum is None:
            return 1.0 / seen
        return 1.0 - momentum if weighs == "new" else momentum


class GroupsRoundRobin(NumpyBackend):
    """GroupNorm assigns channel c to group c % G instead of the contiguous c // (C / G).
    Caught by the agreement with the spec. (The statistics property catches it too where a
    draw has 2 <= G < C with C / G >= 2, but ci's twelve derandomized draws do not reach such
    a grouping for it.)"""

    caught_by = ("test_forward_agrees_with_the_spec",)
    caught_on = ("group_norm",)

    def to_groups(self, x, num_groups):
        n, c = x.shape[:2]
        return x.reshape(n, c // num_groups, num_groups, *x.shape[2:]).swapaxes(1, 2)

    def from_groups(self, grouped, shape):
        return grouped.swapaxes(1, 2).reshape(shape)


class LayerNormOverEveryAxis(NumpyBackend):
    """LayerNorm pools over the whole tensor, batch included, instead of the trailing
    normalized_shape. Caught by batch independence."""

    caught_by = ("test_each_sample_gets_the_output_it_gets_alone",)
    caught_on = ("layer_norm",)

    def layer_axes(self, x, normalized_shape):
        return tuple(range(x.ndim))


class OnePassVariance(NumpyBackend):
    """var = E[x^2] - E[x]^2 in the working dtype: cancels catastrophically on inputs with a
    large mean and a small spread. Caught by agreement on ill-conditioned input."""

    caught_by = ("test_forward_agrees_with_the_spec_on_ill_conditioned_input",)
    caught_on = ("layer_norm", "batch_norm")

    def statistics(self, x, axes):
        mean = x.mean(axis=axes, keepdims=True)
        return mean, (x * x).mean(axis=axes, keepdims=True) - mean * mean


class EpsDropped(NumpyBackend):
    """eps is never added: (x - mean) / sqrt(var). Caught by the statistics property, whose
    expected variance var / (var + eps) differs from 1 when eps is not negligible, and by
    differential testing against the NumPy backend."""

    caught_by = (
        "test_output_has_zero_mean_and_unit_variance",
        "test_backends_agree_on_the_forward_output",
        "test_backends_agree_on_the_vjp",
    )
    caught_on = ("batch_norm",)

    def normalize(self, x, mean, var, eps):
        return (x - mean) / np.sqrt(var)


class InputGradientWithoutMeanTerm(NumpyBackend):
    """The backward pass forgets the gradient through the mean, -sum(g). Caught by the VJP
    agreement and by the input gradient summing to zero."""

    caught_by = (
        "test_vjp_agrees_with_the_spec",
        "test_input_gradient_sums_to_zero_and_is_orthogonal_to_the_output",
    )
    caught_on = ("batch_norm",)

    def standardized_input_grad(self, g, x_hat, inv_std, axes):
        n = np.prod([g.shape[a] for a in axes])
        return inv_std / n * (n * g - x_hat * (g * x_hat).sum(axis=axes, keepdims=True))


class CumulativeAverageOffByOne(NumpyBackend):
    """momentum=None weighs the t-th batch by 1 / (t + 1): the initial running values count
    as a batch. Caught by the momentum recurrence."""

    caught_by = ("test_running_statistics_follow_the_recurrence",)
    caught_on = ("batch_norm",)

    def momentum_factor(self, momentum, weighs, seen):
        if momentum is None:
            return 1.0 / (seen + 1)
        return super().momentum_factor(momentum, weighs, seen)


class WeightNormOverTheWrongAxes(NumpyBackend):
    """||v|| taken over `dim` instead of over every other axis. Caught by ||w|| = |g|."""

    caught_by = ("test_weight_norm_has_norm_g",)
    caught_on = ("weight_norm",)

    def weight_norm_axes(self, v, dim):
        return tuple(range(v.ndim)) if dim is None else (dim % v.ndim,)


class BiasBeforeWeight(NumpyBackend):
    """(x_hat + bias) * weight instead of weight * x_hat + bias. Caught by affine recovery."""

    caught_by = ("test_affine_with_std_and_mean_recovers_the_input",)
    caught_on = ("batch_norm",)

    def scale_and_shift(self, x_hat, weight, bias, shape):
        if bias is not None:
            x_hat = x_hat + bias.astype(x_hat.dtype).reshape(shape)
        if weight is not None:
            x_hat = x_hat * weight.astype(x_hat.dtype).reshape(shape)
        return x_hat


class EvaluationUsesBatchStatistics(NumpyBackend):
    """Evaluation mode still normalizes with the batch's statistics (the layer was never put
    in eval mode). Caught by the evaluation-mode affine map."""

    caught_by = ("test_evaluation_batch_norm_is_the_affine_map_of_running_statistics",)
    caught_on = ("batch_norm",)

    def uses_running_statistics(self, norm, inputs):
        return False


class MeanNotSubtracted(NumpyBackend):
    """x / sqrt(var + eps): the mean is computed but never subtracted. Caught by shift
    invariance."""

    caught_by = ("test_output_is_invariant_to_a_shift_of_the_input",)
    caught_on = ("layer_norm",)

    def normalize(self, x, mean, var, eps):
        return x / np.sqrt(var + x.dtype.type(eps))


class InstanceNormPoolsTheBatch(NumpyBackend):
    """InstanceNorm pools over the batch too (BatchNorm without the reshape to (1, N * C)).
    Caught by the equivalences GN(G = C) = IN and IN = BN per sample."""

    caught_by = (
        "test_group_norm_with_one_group_per_channel_equals_instance_norm",
        "test_instance_norm_equals_training_batch_norm_per_sample",
    )
    caught_on = ("group_norm", "instance_norm")

    def instance_axes(self, x):
        return (0, *range(2, x.ndim))


class BatchStatisticsOfTheFirstSample(NumpyBackend):
    """Training-mode BatchNorm takes its statistics from the first sample only (a reduction
    loop that never accumulates across the batch). Caught by permutation equivariance."""

    caught_by = ("test_training_batch_norm_is_permutation_equivariant_over_the_batch",)
    caught_on = ("batch_norm",)

    def statistics(self, x, axes):
        if 0 in axes:
            mean, var = super().statistics(x[:1], axes)
            return mean, var
        return super().statistics(x, axes)


class LayerNormOverTheLastAxisOnly(NumpyBackend):
    """LayerNorm pools over the last axis whatever normalized_shape says (mean(-1)). Caught by
    GroupNorm with one group, which pools over (C, *spatial)."""

    caught_by = ("test_group_norm_with_one_group_equals_layer_norm",)
    caught_on = ("group_norm",)

    def layer_axes(self, x, normalized_shape):
        return (x.ndim - 1,)


class StaleWeightNormCache(NumpyBackend):
    """WeightNorm caches ||v|| per shape and never recomputes it when v changes. Caught by
    invariance to scaling v."""

    caught_by = ("test_weight_norm_is_invariant_to_positive_scaling_of_v",)
    caught_on = ("weight_norm",)

    def __init__(self) -> None:
        self._norms: dict = {}

    def forward(self, norm, inputs):
        if norm != "weight_norm":
            return super().forward(norm, inputs)
        v = inputs.x.astype(self.accumulation_dtype(inputs.x.dtype.name))
        key = (v.shape, inputs.dim)
        if key not in self._norms:
            axes = self.weight_norm_axes(v, inputs.dim)
            self._norms[key] = np.sqrt((v * v).sum(axis=axes, keepdims=True))
        g = inputs.weight.astype(v.dtype)
        return (g * v / self._norms[key]).astype(inputs.x.dtype)


# --- declarations that drift from what the framework does ------------------------------------


class DefaultEpsMisdeclared(NumpyBackend):
    """The adapter declares LayerNorm's default eps as 1e-3 (Keras') while the framework uses
    1e-5. Caught by measuring the default eps."""

    caught_by = ("test_default_eps_is_as_declared",)
    caught_on = ("layer_norm",)
    conventions = replace(
        NumpyBackend.conventions,
        default_eps={**NumpyBackend.conventions.default_eps, "layer_norm": 1e-3},
    )


class MomentumMeaningMisdeclared(NumpyBackend):
    """The adapter declares that momentum weighs the old value (Keras) for a framework whose
    momentum weighs the new statistic. Caught by measuring one default step."""

    caught_by = ("test_momentum_is_as_declared",)
    caught_on = ("batch_norm",)
    conventions = replace(NumpyBackend.conventions, momentum_weighs="old")


class RunningVarianceMisdeclared(NumpyBackend):
    """The adapter declares a biased running variance for a framework that feeds it the
    unbiased one. Caught by measuring the Bessel factor of one default step."""

    caught_by = ("test_running_variance_estimator_is_as_declared",)
    caught_on = ("batch_norm",)
    conventions = replace(NumpyBackend.conventions, running_var_estimators=("biased",))


class ZeroVarianceMisdeclared(NumpyBackend):
    """The adapter declares that a constant set with eps = 0 gives 0, where it gives NaN.
    Caught by the constant-input probe."""

    caught_by = ("test_constant_input_with_zero_eps_is_as_declared",)
    caught_on = ("layer_norm",)
    conventions = replace(NumpyBackend.conventions, zero_variance_zero_eps="zero")


class LayoutMisdeclared(NumpyBackend):
    """The adapter declares channels-last for a channels-first framework, and so moves the
    channel axis before calling it. Caught by default 4-D BatchNorm in the declared layout."""

    caught_by = ("test_layout_is_as_declared",)
    caught_on = ("batch_norm",)
    conventions = replace(NumpyBackend.conventions, layout="channels_last")


class NanSpreadsAcrossSets(NumpyBackend):
    """For overflow safety the kernel divides x by the largest |x| of the whole tensor (and
    eps by its square) before normalizing: exact arithmetic is unchanged, but one NaN in any
    pooled set makes every output NaN. Caught by the NaN-confinement property."""

    caught_by = ("test_a_nan_stays_in_its_pooled_set",)
    caught_on = ("layer_norm", "batch_norm")

    def statistics(self, x, axes):
        scale = np.max(np.abs(x))  # NaN as soon as any value is NaN
        mean, var = super().statistics(x / scale, axes)
        return mean * scale, var * scale * scale


class AllNan(NumpyBackend):
    """Every output is NaN (a kernel that never writes its output buffer, read back as NaN).
    NaN must never compare equal to NaN: the properties that compare the backend with itself
    (shift and scale invariance, batch independence, the equivalences between norms) catch it,
    not only the agreement with the spec."""

    caught_by = (
        "test_output_is_invariant_to_a_shift_of_the_input",
        "test_output_is_invariant_to_positive_scaling",
        "test_each_sample_gets_the_output_it_gets_alone",
        "test_training_batch_norm_is_permutation_equivariant_over_the_batch",
        "test_group_norm_with_one_group_equals_layer_norm",
        "test_group_norm_with_one_group_per_channel_equals_instance_norm",
        "test_forward_agrees_with_the_spec",
    )
    caught_on = ("batch_norm", "group_norm", "layer_norm")

    def forward(self, norm, inputs):
        return np.full_like(super().forward(norm, inputs), np.nan)


class HalfInputGivesFloat64(NumpyBackend):
    """forward computes in float64 and forgets to round back: a float16 input gives a float64
    output, whose numbers the tolerance model for float16 would wrongly accept. Caught by the
    protocol check of every call (properties/checked.py), here in the agreement with the spec."""

    caught_by = ("test_forward_agrees_with_the_spec",)
    caught_on = ("layer_norm",)

    def forward(self, norm, inputs):
        x = inputs.x.astype(np.float64)
        return super().forward(norm, replace(inputs, x=x, weight=_f64(inputs.weight)))


class ReturnsAList(NumpyBackend):
    """forward returns a nested Python list (as `.tolist()` would) instead of an ndarray.
    Caught by the protocol check of every call."""

    caught_by = ("test_forward_agrees_with_the_spec",)
    caught_on = ("rms_norm",)

    def forward(self, norm, inputs):
        return super().forward(norm, inputs).tolist()


def _f64(a):
    return None if a is None else a.astype(np.float64)


class SaturatesToHalfRange(NumpyBackend):
    """The kernel stages its input through a saturating float16 buffer: every value beyond
    float16's largest finite value, 65504, is clipped to it, whatever the input's dtype.
    Wrong only on magnitudes above 65504, which the general properties never draw for float32
    and float64 (their offsets stop at 1e6 and most of their data is far smaller); caught by
    the agreement across each dtype's range, where the intermediates of such inputs fit."""

    caught_by = ("test_forward_agrees_with_the_spec_across_the_dtype_range",)
    caught_on = ("layer_norm",)

    def _working(self, x: np.ndarray) -> np.ndarray:
        return np.clip(super()._working(x), -65504.0, 65504.0)


class CountWrapsAt16Bits(NumpyBackend):
    """The count of pooled values is held in 16 bits: past 65535 it wraps (n mod 65536), and
    the mean and variance divide their sums by the wrapped count. Right on every shape the
    size-budgeted properties draw in ci (1024 values); caught by the real-model shapes
    (ResNet's BatchNorm pools 32 * 56 * 56 = 100352 values per channel, counted as 34816)."""

    caught_by = ("test_forward_agrees_with_the_spec_on_the_shapes_of_real_models",)
    caught_on = ("batch_norm",)

    def statistics(self, x: np.ndarray, axes: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
        count = int(np.prod([x.shape[a] for a in axes])) % 2**16
        mean = x.sum(axis=axes, keepdims=True) / x.dtype.type(count)
        centered = x - mean
        return mean, (centered * centered).sum(axis=axes, keepdims=True) / x.dtype.type(count)
