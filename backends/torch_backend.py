"""The PyTorch adapters: torch.nn.functional, the torch.nn modules, channels-last, CUDA.

One hierarchy, parametrized by (api, device, memory_format), on the framework template of
`backends.framework`:

    TorchBackend                  the translation, shared by every variant
    ├── TorchFunctionalBackend    api: the torch.nn.functional ops ("torch")
    └── TorchModuleBackend        api: the torch.nn modules, which own their state ("torch-nn")
        ├── TorchChannelsLastBackend   memory_format: channels_last inputs
        └── TorchCudaBackend           device: "cuda"

Each translation lives in one place: names in the calls (normspec's names are torch's, eps,
momentum, weight, bias, running_mean, running_var, num_groups, normalized_shape, dim; only
`training` is spelled `use_input_stats` by instance_norm, and "torch's default" means the
argument is not passed), dtypes and devices in `_tensor` and `to_numpy`, layout in `_layout`,
weight-norm dim in `torch_dim`; momentum is translated by the template, from the conventions.
torch is imported lazily, so that this module imports without it.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Iterator
from contextlib import AbstractContextManager
from typing import Any

import numpy as np

from backends.framework import (
    DEFAULT,
    FrameworkBackend,
    FrameworkRun,
    Gradient,
    Requirement,
    given,
)
from backends.protocol import Conventions, NormInputs, Refused
from normspec.vocabulary import NORMS

TORCH = Requirement("torch", "torch==2.13.0")

_BATCH_NORM = {2: "BatchNorm1d", 3: "BatchNorm1d", 4: "BatchNorm2d", 5: "BatchNorm3d"}
_INSTANCE_NORM = {3: "InstanceNorm1d", 4: "InstanceNorm2d", 5: "InstanceNorm3d"}


@functools.cache
def _torch_dtype(dtype: np.dtype) -> Any:
    """The torch dtype of a NumPy dtype ("bfloat16" is ml_dtypes' name and torch's).

    Cached: reading `dtype.name` alone costs microseconds, as much as a small forward pass.
    """
    return getattr(TORCH.load(), dtype.name)


def _conventions(*, cumulative_average: bool, layout: str, notes: dict[str, str]) -> Conventions:
    """What torch chose, observed on torch 2.13.0 CPU (measured by properties/test_conventions)."""
    return Conventions(
        default_eps={
            "batch_norm": 1e-5,
            "layer_norm": 1e-5,
            "instance_norm": 1e-5,
            "group_norm": 1e-5,
            "rms_norm": "finfo",
            "weight_norm": None,
        },
        momentum_weighs="new",
        default_momentum=0.1,
        running_var_estimators=("unbiased",),
        cumulative_average=cumulative_average,
        layout=layout,
        default_affine=True,
        zero_variance_zero_eps={
            "batch_norm": "refused",
            "instance_norm": "zero",
            "layer_norm": "nan",
            "group_norm": "nan",
            "rms_norm": "nan",
            "weight_norm": "nan",
        },
        notes={
            "rms_norm eps": "eps=None (the default) is the machine epsilon of the computation "
            "(opmath) type: torch.finfo(torch.float32).eps for float16, bfloat16 and float32 "
            "inputs, torch.finfo(torch.float64).eps for float64 (torch.nn.RMSNorm docs; "
            "observed), not the input dtype's own epsilon",
            "weight_norm eps": "none: w = g * v / ||v|| has no eps",
            "zero variance, eps = 0": "nan for layer_norm, group_norm, batch_norm with "
            "running statistics and rms_norm of a zero slice; instance_norm gives 0, since "
            "its kernel (batch_norm's, called directly) takes 1/sigma = 0 when var = eps = 0; "
            "batch_norm in training mode refuses eps <= 0 (ValueError in F.batch_norm)",
            "running variance": "always the unbiased (Bessel-corrected) batch variance; the "
            "output uses the biased one",
            "refuses": "eps <= 0 in training-mode batch_norm (F.batch_norm raises ValueError), "
            "and group_norm with one value per group and sample in all (N = 1, C = G, no "
            "spatial extent): 'Expected more than 1 value per channel when training'",
            "dtypes": "the layer is converted to the input's dtype, as model.half() does: "
            "its parameters and running statistics are held in that dtype. With no float32 "
            "parameter torch then picks its single-dtype kernels, which round the mean and "
            "1/sigma to float16 or bfloat16: batch_norm and instance_norm normalize with the "
            "rounded values, and the backward of every standardizing norm reuses them",
            **notes,
        },
    )


class TorchBackend(FrameworkBackend):
    """The translation between normspec's vocabulary and torch, shared by every variant."""

    requirements = (TORCH,)
    device: str = "cpu"
    #: None (torch's default, contiguous) or "channels_last" for 4-D and 5-D inputs.
    memory_format: str | None = None
    norms = frozenset(NORMS)
    dtypes = ("float16", "bfloat16", "float32", "float64")
    trains = frozenset({"batch_norm", "instance_norm"})

    # --- the protocol -----------------------------------------------------------------------

    def unavailable_reason(self) -> str | None:
        reason = super().unavailable_reason()
        if reason is None and self.device == "cuda" and not TORCH.load().cuda.is_available():
            return "torch.cuda.is_available() is False: no CUDA device"
        return reason

    def accumulation_dtype(self, dtype: str) -> str:
        # ATen's CPU norm kernels (aten/src/ATen/native/cpu/batch_norm_kernel.cpp,
        # layer_norm_kernel.cpp, group_norm_kernel.cpp) reduce float16 and bfloat16 in
        # at::opmath_type, which ATen/OpMathType.h defines as float. float32 is declared as
        # itself: batch_norm's statistics happen to sum in double, the others do not. The
        # statistics they produce are stored in the input dtype (see conventions, "dtypes").
        return "float32" if dtype in ("float16", "bfloat16") else dtype

    def statistics_dtype(self, dtype: str, norm: str) -> str:
        # The layer is held in the input's dtype (conventions, "dtypes"), and so are the
        # statistics ATen saves and applies: the mean and 1/sigma of half-precision
        # batch_norm and instance_norm, the mean and rstd saved for the bfloat16 backward,
        # ||v|| in weight_norm. Reductions still run in float32 (accumulation_dtype).
        return dtype

    def check(self, norm: str, inputs: NormInputs) -> None:
        """Raise Refused for the inputs torch refuses by design (see conventions, "refuses")."""
        super().check(norm, inputs)
        x, eps = inputs.x, inputs.eps
        if norm == "batch_norm" and inputs.training and eps is not DEFAULT and eps <= 0:
            raise Refused("torch refuses eps <= 0 in training-mode batch_norm")
        if norm == "group_norm":
            per_group = x.shape[0] * (x.shape[1] // inputs.num_groups) * int(np.prod(x.shape[2:]))
            if per_group == 1:
                raise Refused("torch's group_norm refuses one value per channel in training")

    # --- the translations, one place each ---------------------------------------------------

    def torch_dim(self, dim: int | None, ndim: int) -> int:
        """weight_norm's dim for torch, where -1 means the whole tensor, never the last axis."""
        return -1 if dim is None else dim % ndim

    def _tensor(self, array: np.ndarray, dtype: np.dtype) -> Any:
        """A copy of `array` on this device in the torch dtype of the NumPy `dtype`."""
        torch = TORCH.load()
        source = np.asarray(array)
        if _torch_dtype(source.dtype) is torch.bfloat16:  # torch cannot read ml_dtypes' type
            source = source.astype(np.float32)  # exact
        # A copy, never a view: torch updates running statistics in place.
        tensor = torch.from_numpy(np.array(source, order="C"))
        return tensor.to(device=self.device, dtype=_torch_dtype(np.dtype(dtype)))

    def _layout(self, tensor: Any) -> Any:
        """`tensor` in this backend's memory format (the logical shape stays (N, C, ...))."""
        if self.memory_format != "channels_last" or tensor.ndim not in (4, 5):
            return tensor
        torch = TORCH.load()
        fmt = torch.channels_last if tensor.ndim == 4 else torch.channels_last_3d
        return tensor.contiguous(memory_format=fmt)

    def input_tensor(self, norm: str, array: np.ndarray, dtype: np.dtype) -> Any:
        """An input-like array (x, v, grad_y, a batch) as a tensor in this backend's layout."""
        return self._layout(self._tensor(array, dtype))

    def parameter_tensors(
        self, norm: str, weight: np.ndarray | None, bias: np.ndarray | None, dtype: np.dtype
    ) -> tuple[Any, Any]:
        """weight and bias tensors; a missing one of the pair is 1 or 0, as torch initializes
        it. RMSNorm has no bias, nor has weight_norm's g."""
        torch = TORCH.load()
        if weight is None and bias is None:
            return None, None
        shape = np.shape(weight if weight is not None else bias)
        weight_t = (
            self._tensor(weight, dtype)
            if weight is not None
            else torch.ones(shape, dtype=_torch_dtype(dtype), device=self.device)
        )
        if norm in ("rms_norm", "weight_norm"):
            return weight_t, None
        bias_t = (
            self._tensor(bias, dtype)
            if bias is not None
            else torch.zeros(shape, dtype=_torch_dtype(dtype), device=self.device)
        )
        return weight_t, bias_t

    def statistics_tensor(self, array: np.ndarray, dtype: np.dtype) -> Any:
        """A running statistic in the batches' dtype, as the layer holds it ("dtypes")."""
        return self._tensor(array, dtype)

    def to_numpy(self, tensor: Any, dtype: np.dtype) -> np.ndarray:
        """A C-ordered NumPy copy of `tensor` in `dtype` (bfloat16 through float32, exactly)."""
        torch = TORCH.load()
        tensor = tensor.detach().to("cpu")
        if tensor.dtype == torch.bfloat16:
            tensor = tensor.float()
        return np.array(tensor.numpy(), dtype=dtype, order="C")

    # --- how torch computes -----------------------------------------------------------------

    def computing(self) -> AbstractContextManager[Any]:
        """torch.no_grad(): forward passes and training steps build no autograd graph."""
        return TORCH.load().no_grad()

    @contextlib.contextmanager
    def recording(self, tensors: list[Any]) -> Iterator[Gradient]:
        """Autograd records what is computed from `tensors` once they require grad."""
        for tensor in tensors:
            tensor.requires_grad_()
        yield self._autograd

    def _autograd(self, y: Any, leaves: list[Any], grad_y: Any) -> tuple[Any, ...]:
        """The gradients of L = sum(grad_y * y) for `leaves`, by torch.autograd (grad_y as
        the output gradient)."""
        return TORCH.load().autograd.grad(y, leaves, grad_outputs=grad_y)


class TorchFunctionalBackend(TorchBackend):
    """The torch.nn.functional ops (and torch._weight_norm); state is passed in by hand."""

    name = "torch"
    conventions = _conventions(
        cumulative_average=False,
        layout="channels_first",
        notes={
            "momentum": "F.batch_norm and F.instance_norm take a float momentum: there is no "
            "cumulative average (momentum=None) without a module"
        },
    )

    def call(
        self, norm: str, inputs: NormInputs, x: Any, weight: Any, bias: Any
    ) -> tuple[Any, tuple[Any, Any, Any]]:
        """y by the functional op, and (x, weight, bias) themselves as the gradients' sources."""
        torch = TORCH.load()
        F = torch.nn.functional
        if norm == "weight_norm":
            # g keeps the spec's shape (v's with the norm axes of size 1): it broadcasts.
            y = torch._weight_norm(x, weight, self.torch_dim(inputs.dim, x.ndim))
            return y, (x, weight, None)
        eps = given(eps=inputs.eps)
        if norm in ("batch_norm", "instance_norm"):
            running = (None, None)
            if not inputs.training:
                running = (
                    self._tensor(inputs.running_mean, inputs.x.dtype),
                    self._tensor(inputs.running_var, inputs.x.dtype),
                )
            if norm == "batch_norm":
                y = F.batch_norm(x, *running, weight, bias, training=inputs.training, **eps)
            else:
                y = F.instance_norm(
                    x, *running, weight, bias, use_input_stats=inputs.training, **eps
                )
        elif norm == "layer_norm":
            y = F.layer_norm(x, tuple(inputs.normalized_shape), weight, bias, **eps)
        elif norm == "group_norm":
            y = F.group_norm(x, inputs.num_groups, weight, bias, **eps)
        elif norm == "rms_norm":
            y = F.rms_norm(x, tuple(inputs.normalized_shape), weight, **eps)
        else:
            raise ValueError(f"{self.name} does not provide {norm!r}")
        return y, (x, weight, bias)

    def run_training(self, norm: str, run: FrameworkRun) -> tuple[list[Any], Any, Any, int]:
        """F.batch_norm or F.instance_norm once per batch, which update the running statistics
        in place; F counts nothing, so the count is the number of batches."""
        F = TORCH.load().nn.functional
        arguments = given(eps=run.eps, momentum=run.momentum)
        mean, var, weight, bias = run.running_mean, run.running_var, run.weight, run.bias
        outputs = []
        for x in run.batches:
            if norm == "batch_norm":
                y = F.batch_norm(x, mean, var, weight, bias, training=True, **arguments)
            else:
                y = F.instance_norm(x, mean, var, weight, bias, use_input_stats=True, **arguments)
            outputs.append(y)
        return outputs, mean, var, len(run.batches)


class TorchModuleBackend(TorchBackend):
    """The torch.nn modules, which own their parameters, running statistics and counters."""

    name = "torch-nn"
    conventions = _conventions(
        cumulative_average=True,
        layout="channels_first",
        notes={
            "modules": "BatchNorm1d for 2-D and 3-D inputs, 2d for 4-D, 3d for 5-D; "
            "InstanceNorm1d/2d/3d for 3-D/4-D/5-D; weight_norm through "
            "torch.nn.utils.parametrizations.weight_norm",
            "instance_norm": "InstanceNorm*d default to affine=False and "
            "track_running_stats=False; they read momentum=None as 0.0 (running statistics "
            "frozen) and never count num_batches_tracked",
        },
    )

    def __init__(self) -> None:
        # Built once per configuration and reloaded per call: construction costs more than
        # a small forward pass. Bound here so that a subclass's builder is the one cached.
        self._module = functools.lru_cache(maxsize=64)(self._build_module)
        self._weight_norm_module = functools.lru_cache(maxsize=64)(self._build_weight_norm)

    def _build_module(
        self,
        norm: str,
        rank: int,
        size: int | tuple[int, ...],
        num_groups: int | None,
        affine: bool,
        track_running_stats: bool,
        options: tuple[tuple[str, Any], ...],
        dtype: np.dtype,
    ) -> Any:
        """A fresh module for one configuration, in `dtype` on this device."""
        torch = TORCH.load()
        nn = torch.nn
        kwargs = dict(options)
        if norm == "batch_norm":
            module = getattr(nn, _BATCH_NORM[rank])(size, affine=affine, **kwargs)
        elif norm == "instance_norm":
            module = getattr(nn, _INSTANCE_NORM[rank])(
                size, affine=affine, track_running_stats=track_running_stats, **kwargs
            )
        elif norm == "layer_norm":
            module = nn.LayerNorm(size, elementwise_affine=affine, bias=affine, **kwargs)
        elif norm == "group_norm":
            module = nn.GroupNorm(num_groups, size, affine=affine, **kwargs)
        elif norm == "rms_norm":
            module = nn.RMSNorm(size, elementwise_affine=affine, **kwargs)
        else:
            raise ValueError(f"{self.name} does not provide {norm!r}")
        return module.to(device=self.device, dtype=_torch_dtype(dtype))

    def _build_weight_norm(self, shape: tuple[int, ...], dim: int, dtype: np.dtype) -> Any:
        """A module holding v as `weight`, reparametrized by weight_norm along `dim`."""
        torch = TORCH.load()
        holder = torch.nn.Module()
        v = torch.ones(shape, dtype=_torch_dtype(dtype), device=self.device)
        holder.weight = torch.nn.Parameter(self._layout(v))
        return torch.nn.utils.parametrizations.weight_norm(holder, "weight", dim=dim)

    def _set_mode(self, module: Any, training: bool) -> None:
        """Training mode pools the batch; evaluation mode uses the running statistics."""
        if module.training != training:  # train() walks the module tree: skip when set
            module.train(training)

    def _load(self, module: Any, weight: Any, bias: Any, running_mean: Any, running_var: Any):
        """Copy this call's parameters and running statistics into the (cached) module."""
        with TORCH.load().no_grad():
            if weight is not None:
                module.weight.copy_(weight)
            if bias is not None:
                module.bias.copy_(bias)
            if running_mean is not None:
                module.running_mean.copy_(running_mean)
                module.running_var.copy_(running_var)
                module.num_batches_tracked.zero_()

    def call(
        self, norm: str, inputs: NormInputs, x: Any, weight: Any, bias: Any
    ) -> tuple[Any, tuple[Any, Any, Any]]:
        """y by the cached module loaded with this call's state, and its parameters as the
        gradients' sources."""
        if norm == "weight_norm":
            return self._weight_norm_call(inputs, x, weight)
        dtype = inputs.x.dtype
        by_name = norm in ("layer_norm", "rms_norm")
        size = tuple(inputs.normalized_shape) if by_name else x.shape[1]
        evaluation = norm in ("batch_norm", "instance_norm") and not inputs.training
        module = self._module(
            norm,
            x.ndim,
            size,
            inputs.num_groups if norm == "group_norm" else None,
            weight is not None,
            # BatchNorm tracks by default; InstanceNorm only where it is asked to evaluate.
            norm == "batch_norm" or evaluation,
            tuple(given(eps=inputs.eps).items()),
            dtype,
        )
        running = (None, None)
        if evaluation:
            running = (
                self._tensor(inputs.running_mean, dtype),
                self._tensor(inputs.running_var, dtype),
            )
        self._load(module, weight, bias, *running)
        self._set_mode(module, not evaluation)
        return module(x), (x, module.weight, getattr(module, "bias", None))

    def _weight_norm_call(
        self, inputs: NormInputs, v: Any, g: Any
    ) -> tuple[Any, tuple[Any, Any, Any]]:
        holder = self._weight_norm_module(
            tuple(v.shape), self.torch_dim(inputs.dim, v.ndim), inputs.x.dtype
        )
        param = holder.parametrizations.weight
        with TORCH.load().no_grad():
            # torch's g drops the reduced axes when it norms the whole tensor: shape ().
            param.original0.copy_(g.reshape(param.original0.shape))
            param.original1.copy_(v)
        return holder.weight, (param.original1, param.original0, None)

    def run_training(self, norm: str, run: FrameworkRun) -> tuple[list[Any], Any, Any, int]:
        """The cached module, loaded with the run's state, once per batch in training mode;
        the module counts the batches (num_batches_tracked)."""
        x = run.batches[0]
        module = self._module(
            norm,
            x.ndim,
            x.shape[1],
            None,
            run.weight is not None,
            True,
            tuple(given(eps=run.eps, momentum=run.momentum).items()),
            run.dtype,
        )
        self._load(module, run.weight, run.bias, run.running_mean, run.running_var)
        self._set_mode(module, True)
        outputs = [module(x) for x in run.batches]
        return outputs, module.running_mean, module.running_var, int(module.num_batches_tracked)


class TorchChannelsLastBackend(TorchModuleBackend):
    """The modules on channels_last (4-D) and channels_last_3d (5-D) inputs: other kernels."""

    name = "torch-channels-last"
    memory_format = "channels_last"
    conventions = _conventions(
        cumulative_average=True,
        layout="channels_last (4-D, 5-D)",
        notes={
            "layout": "4-D inputs are .contiguous(memory_format=torch.channels_last), 5-D "
            "torch.channels_last_3d; the logical shape stays (N, C, *spatial), other ranks "
            "are unchanged",
            **TorchModuleBackend.conventions.notes,
        },
    )


class TorchCudaBackend(TorchModuleBackend):
    """The modules on the first CUDA device."""

    name = "torch-cuda"
    device = "cuda"
    conventions = TorchModuleBackend.conventions
