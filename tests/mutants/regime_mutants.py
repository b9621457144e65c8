"""Planted bugs that hide in a wide regime: each is right on every small input and wrong only
where a kernel branches on size (properties/shapes.py draws these regimes).

Each mutant overrides exactly one building block of `NumpyBackend`, and names its `regime`,
the properties that fail on it (`caught_by`) and the norms they fail on (`caught_on`). No
small shape reaches any of these regimes, and a shape that does has more values than ci's
size budget (1024) allows or is one of few rows among many, so the derandomized ci gate is not
expected to catch them: `normspec hunt` is (tests/test_regime_bugs.py shows both).

None is wrong for float16 alone: the building blocks see the working array (float32 for a
float16 input), not the stored dtype, so a half-precision accumulation bug cannot be planted
by overriding one of them.
"""

from __future__ import annotations

import math

import numpy as np

from backends.numpy_backend import NumpyBackend

#: The lanes of the vectorized loop: it reads 8 values at a time.
LANES = 8
#: Reductions longer than this take the vectorized path; shorter ones a scalar loop.
VECTOR_PATH_ABOVE = 1024
#: The values one block of a blocked reduction sums.
BLOCK = 4096
#: The slots of a per-channel statistics buffer sized for common channel counts.
CHANNEL_SLOTS = 256
#: The groups a per-group statistics table holds (GroupNorm's customary 32).
GROUP_SLOTS = 32
#: Batches above this take the unrolled-by-two batch loop.
UNROLLED_BATCH_ABOVE = 16
#: The rows one launch of a row-wise kernel covers.
ROWS_PER_LAUNCH = 512
#: Output channels from which a WeightNorm kernel takes its "large layer" path.
LARGE_LAYER_OUTPUTS = 64


def _moments_of_the_first(
    x: np.ndarray, axes: tuple[int, ...], count: int
) -> tuple[np.ndarray, np.ndarray]:
    """Mean and biased variance of the first `count` values of each set over `axes` (in the
    array's C order, as a kernel walking the set sees them), kept for broadcasting."""
    others = tuple(a for a in range(x.ndim) if a not in axes)
    rows = np.transpose(x, (*others, *axes)).reshape(*(x.shape[a] for a in others), -1)
    kept = rows[..., :count]
    mean = kept.mean(axis=-1)
    var = np.square(kept - mean[..., None]).mean(axis=-1)
    shape = tuple(1 if a in axes else s for a, s in enumerate(x.shape))
    return mean.reshape(shape), var.reshape(shape)


class VectorLoopRemainderDropped(NumpyBackend):
    """The vectorized reduction reads 8 values at a time and forgets its scalar remainder
    loop: in sets of n > 1024 values (where the kernel switches from its scalar loop to the
    vectorized one) with n % 8 != 0, the last n % 8 values are left out of the mean and the
    variance. Caught by the agreement with the spec on LayerNorm's long rows (n = 2^k +- 1,
    3 * 2^k +- 1, primes)."""

    regime = "reductions of n > 1024 values with n % 8 != 0"
    caught_by = ("test_forward_agrees_with_the_spec",)
    caught_on = ("layer_norm",)

    def statistics(self, x, axes):
        n = math.prod(x.shape[a] for a in axes)
        if n > VECTOR_PATH_ABOVE and n % LANES:
            return _moments_of_the_first(x, axes, n - n % LANES)
        return super().statistics(x, axes)


class LastPartialBlockDropped(NumpyBackend):
    """A blocked reduction sums blocks of 4096 values and drops the last, partial block: in
    sets of n > 4096 values with n % 4096 != 0, the statistics come from the first
    4096 * (n // 4096) values only. Caught by the agreement with the spec on InstanceNorm's
    long reductions (feature maps of 56 x 56 and 112 x 112, 2^k +- 1 values)."""

    regime = "reductions of n > 4096 values with n % 4096 != 0"
    caught_by = ("test_forward_agrees_with_the_spec",)
    caught_on = ("instance_norm",)

    def statistics(self, x, axes):
        n = math.prod(x.shape[a] for a in axes)
        if n > BLOCK and n % BLOCK:
            return _moments_of_the_first(x, axes, n - n % BLOCK)
        return super().statistics(x, axes)


class ChannelStatisticsWrapAt256(NumpyBackend):
    """Per-channel statistics go to a buffer of 256 slots indexed c % 256 (sized for the
    channel counts the kernel was tuned on), and the first channel to write a slot keeps it:
    with more than 256 channels, channel c is normalized with the mean and variance of
    channel c % 256. Caught by the agreement with the spec on BatchNorm with many channels
    (257, 512, 1000, 1021, 1024)."""

    regime = "more than 256 channels, per-channel statistics"
    caught_by = ("test_forward_agrees_with_the_spec",)
    caught_on = ("batch_norm",)

    def statistics(self, x, axes):
        mean, var = super().statistics(x, axes)
        channels = x.shape[1] if x.ndim >= 2 else 0
        if 1 in axes or channels <= CHANNEL_SLOTS:
            return mean, var
        slot = np.arange(channels) % CHANNEL_SLOTS
        return mean.take(slot, axis=1), var.take(slot, axis=1)


class GroupCountCappedAt32(NumpyBackend):
    """The kernel's table of per-group statistics has 32 entries (GroupNorm's customary
    group count), and for more groups it quietly falls back to the largest count it can hold
    that divides the channels: with G > 32, groups are pooled as if G were that count. Caught
    by the agreement with the spec on GroupNorm with many groups (G = C = 1021, G = 64 of
    1024 channels)."""

    regime = "GroupNorm with more than 32 groups"
    caught_by = ("test_forward_agrees_with_the_spec",)
    caught_on = ("group_norm",)

    def to_groups(self, x, num_groups):
        if num_groups > GROUP_SLOTS:
            channels = x.shape[1]
            num_groups = max(g for g in range(1, GROUP_SLOTS + 1) if channels % g == 0)
        return super().to_groups(x, num_groups)


class OddBatchTailSkipped(NumpyBackend):
    """The loop over the batch is unrolled by two for batches above 16, and its odd tail is
    never visited: in training, BatchNorm's statistics over an odd batch of N > 16 samples
    leave out the last sample. Caught by the agreement with the spec in training mode on odd
    batches (17, 31, 33, 63)."""

    regime = "training BatchNorm on odd batches of more than 16 samples"
    caught_by = ("test_forward_agrees_with_the_spec",)
    caught_on = ("batch_norm",)

    def statistics(self, x, axes):
        batch_norm = x.ndim >= 2 and 0 in axes and 1 not in axes
        n = x.shape[0]
        if batch_norm and n > UNROLLED_BATCH_ABOVE and n % 2:
            return super().statistics(x[:-1], axes)
        return super().statistics(x, axes)


class TailRowsReuseStaleStatistics(NumpyBackend):
    """A row-wise kernel covers its rows in launches of 512 and keeps one buffer of row
    statistics that each launch overwrites; the last launch of a row count that is not a
    multiple of 512 is skipped, so with more than 512 rows, rows r of that partial tail are
    normalized with the statistics of row r - 512 left in the buffer. Caught by the agreement
    with the spec on LayerNorm over many rows (1000 rows of 7 to 65 values)."""

    regime = "LayerNorm over more than 512 rows, not a multiple of 512"
    caught_by = ("test_forward_agrees_with_the_spec",)
    caught_on = ("layer_norm",)

    def statistics(self, x, axes):
        mean, var = super().statistics(x, axes)
        rows = x.shape[0] if x.ndim >= 2 else 0
        one_row_axis = axes == tuple(range(1, x.ndim))
        if not one_row_axis or rows <= ROWS_PER_LAUNCH or rows % ROWS_PER_LAUNCH == 0:
            return mean, var
        tail = np.arange(rows - rows % ROWS_PER_LAUNCH, rows)
        mean, var = mean.copy(), var.copy()
        mean[tail], var[tail] = mean[tail - ROWS_PER_LAUNCH], var[tail - ROWS_PER_LAUNCH]
        return mean, var


class ConvWeightNormOverInputChannelsOnly(NumpyBackend):
    """A fast path for the weights of large layers (64 output channels or more) was written
    for 1 x 1 convolutions and linear layers: it reads v as (out, in) and takes ||v|| over the
    input channels only. For a k x k convolution's (out, in, k, k) with dim=0 each
    (in, i, j) column is scaled to length |g| on its own, and ||w|| = |g| * k. Caught by
    ||w|| = |g| on the weights of real convolutions (64 x 3 x 3 x 3, 64 x 64 x 3 x 3)."""

    regime = "WeightNorm of convolution weights (out >= 64, k x k kernels), dim=0"
    caught_by = ("test_weight_norm_has_norm_g",)
    caught_on = ("weight_norm",)

    def weight_norm_axes(self, v, dim):
        large_conv = v.ndim == 4 and v.shape[0] >= LARGE_LAYER_OUTPUTS
        if large_conv and dim is not None and dim % v.ndim == 0:
            return (1,)
        return super().weight_norm_axes(v, dim)
