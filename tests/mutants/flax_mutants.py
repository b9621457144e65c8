"""Planted bugs in the Flax adapter: each class is one realistic mistake in using Flax.

Each mutant overrides exactly one method of `FlaxBackend` and names, in `caught_by`, the
properties that must fail on it and, in `caught_on`, the norms to run them on; the healthy
backend passes those properties on those norms under the ci profile (its known deviations
are elsewhere), so a failure is the bug's. `tests/test_mutants.py` checks that they do.
"""

from __future__ import annotations

from backends.flax_backend import FlaxBackend
from backends.framework import DEFAULT


class FlaxChannelsLeftFirst(FlaxBackend):
    """(N, C, L) handed to a channels-last layer untransposed: InstanceNorm's feature axis -1
    normalizes each position over the channels instead of each channel over the positions.
    Caught by zero mean and unit variance per pooled set."""

    caught_by = ("test_output_has_zero_mean_and_unit_variance",)
    caught_on = ("instance_norm",)

    def framework_axes(self, norm, ndim):
        return tuple(range(ndim))


class FlaxEpsilonLeftAtItsDefault(FlaxBackend):
    """The module is built without this call's epsilon: Flax's 1e-6 whatever eps is asked
    for. Caught by agreement with the spec."""

    caught_by = ("test_forward_agrees_with_the_spec",)
    caught_on = ("rms_norm",)

    def _module(self, config, eps, momentum=DEFAULT):
        return super()._module(config, DEFAULT, momentum)


class FlaxGroupsAndGroupSizeSwapped(FlaxBackend):
    """GroupNorm built with num_groups=C/G: C/G groups of G channels instead of G groups of
    C/G. Caught by the equivalences GN(G = 1) = LN and GN(G = C) = IN, which it turns into
    each other."""

    caught_by = (
        "test_group_norm_with_one_group_equals_layer_norm",
        "test_group_norm_with_one_group_per_channel_equals_instance_norm",
    )
    caught_on = ("group_norm",)

    def _config(self, norm, inputs, x, weight):
        config = super()._config(norm, inputs, x, weight)
        if norm != "group_norm":
            return config
        channels = x.shape[-1]
        return (*config[:4], channels // config[4], *config[5:])
