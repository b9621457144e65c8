"""Planted bugs in the PyTorch adapters: each class is one realistic mistake in using torch.

Each mutant overrides exactly one translation step of the torch adapters (`backends.torch_backend`
or the template it is built on, `backends.framework`) and names, in
`caught_by`, the properties that must fail on it and, in `caught_on`, the norms to run them on.
`tests/test_mutants.py` runs the ci profile against every mutant and checks that they do.
"""

from __future__ import annotations

from backends.torch_backend import (
    TORCH,
    TorchChannelsLastBackend,
    TorchFunctionalBackend,
    TorchModuleBackend,
)


class MomentumNotTranslated(TorchFunctionalBackend):
    """momentum handed to torch as given, even where it weighs the old running value: torch
    then weighs the new batch statistic by m instead of 1 - m. Caught by the recurrence."""

    caught_by = ("test_running_statistics_follow_the_recurrence",)
    caught_on = ("batch_norm",)

    def framework_momentum(self, momentum, weighs):
        return momentum


class EvaluationInTrainingMode(TorchModuleBackend):
    """The module is never put in eval mode, so "evaluation" normalizes with the statistics
    of the batch. Caught by the evaluation map: y is not affine in x with running stats."""

    caught_by = ("test_evaluation_batch_norm_is_the_affine_map_of_running_statistics",)
    caught_on = ("batch_norm",)

    def _set_mode(self, module, training):
        module.train(True)


class WeightNormOverTheWholeTensor(TorchFunctionalBackend):
    """weight_norm's dim handed to torch as -1 whatever normspec asked: torch reads -1 as
    "the whole tensor", so each slice gets g * ||v_slice|| / ||v||. Caught by ||w|| = g."""

    caught_by = ("test_weight_norm_has_norm_g",)
    caught_on = ("weight_norm",)

    def torch_dim(self, dim, ndim):
        return -1


class EpsDropped(TorchFunctionalBackend):
    """eps is not passed to torch, so every call uses torch's default 1e-5. Caught by the
    agreement with the spec and by the variance of the output, var / (var + eps)."""

    caught_by = (
        "test_forward_agrees_with_the_spec",
        "test_output_has_zero_mean_and_unit_variance",
    )
    caught_on = ("layer_norm",)

    def forward(self, norm, inputs):
        return self.forward_with_defaults(norm, inputs)


class WeightGradientReadFromBias(TorchModuleBackend):
    """dL/dweight is read from the bias's .grad slot: the sum of grad_y instead of the sum of
    grad_y * x_hat. Caught by the agreement of the VJP with the spec."""

    caught_by = ("test_vjp_agrees_with_the_spec",)
    caught_on = ("layer_norm", "batch_norm")

    def to_gradients(self, norm, inputs, grads):
        grad_x, _, grad_bias = grads
        return super().to_gradients(norm, inputs, (grad_x, grad_bias, grad_bias))


class OutputGradientIgnored(TorchFunctionalBackend):
    """autograd run on y.sum() instead of sum(grad_y * y): every VJP is taken against a
    gradient of ones. Caught by the agreement of the VJP with the spec."""

    caught_by = ("test_vjp_agrees_with_the_spec",)
    caught_on = ("rms_norm",)

    def _autograd(self, y, leaves, grad_y):
        return TORCH.load().autograd.grad(y.sum(), leaves)


class ChannelsLastReadInMemoryOrder(TorchChannelsLastBackend):
    """The output read back in storage order, as if a channels_last tensor were laid out
    (N, C, H, W): values land on the wrong channels and positions. Caught by the agreement
    with the spec on 4-D and 5-D inputs."""

    caught_by = ("test_forward_agrees_with_the_spec",)
    caught_on = ("layer_norm", "instance_norm")

    def to_numpy(self, tensor, dtype):
        if tensor.ndim in (4, 5):
            memory_order = (0, *range(2, tensor.ndim), 1)  # N, *spatial, C
            tensor = tensor.permute(memory_order).reshape(tensor.shape)
        return super().to_numpy(tensor, dtype)
