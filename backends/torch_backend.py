"""The PyTorch adapters: torch.nn.functional, the torch.nn modules, channels-last, CUDA.

One hierarchy, parametrized by (api, device, memory_format):

    TorchBackend                  the translation, shared by every variant
    ├── TorchFunctionalBackend    api: the torch.nn.functional ops ("torch")
    └── TorchModuleBackend        api: the torch.nn modules, which own their state ("torch-nn")
        ├── TorchChannelsLastBackend   memory_format: channels_last inputs
        └── TorchCudaBackend           device: "cuda"

Each translation lives in one place: names in `_given` (normspec's names are torch's, eps,
momentum, weight, bias, running_mean, running_var, num_groups, normalized_shape, dim; only
`training` is spelled `use_input_stats` by instance_norm, and "torch's default" means the
argument is not passed), dtypes and devices in `_tensor` and `_array`, layout in `_layout`,
momentum in `torch_momentum`, weight-norm dim in `torch_dim`, gradients in `_gradients`.
torch is imported lazily, so that this module imports without it.
"""

from __future__ import annotations

import abc
import functools
from typing import Any

import numpy as np

from backends.protocol import (
    Backend,
    Conventions,
    NormInputs,
    Refused,
    TrainingResult,
    TrainingRun,
)
from normspec.vocabulary import NORMS, Gradients, MomentumWeighs

TORCH_REQUIREMENT = "torch==2.13.0"


class _TorchDefault:
    """The value of an argument left to torch: it is not passed at all."""

    def __repr__(self) -> str:
        return "<torch's default>"


DEFAULT = _TorchDefault()

_BATCH_NORM = {2: "BatchNorm1d", 3: "BatchNorm1d", 4: "BatchNorm2d", 5: "BatchNorm3d"}
_INSTANCE_NORM = {3: "InstanceNorm1d", 4: "InstanceNorm2d", 5: "InstanceNorm3d"}


@functools.cache
def _import_torch() -> Any:
    """torch, imported on first use (raises ImportError when it is not installed)."""
    import torch

    return torch


@functools.cache
def _torch_dtype(dtype: np.dtype) -> Any:
    """The torch dtype of a NumPy dtype ("bfloat16" is ml_dtypes' name and torch's).

    Cached: reading `dtype.name` alone costs microseconds, as much as a small forward pass.
    """
    return getattr(_import_torch(), dtype.name)


def _given(**arguments: Any) -> dict[str, Any]:
    """The keyword arguments to pass to torch: those not left to torch's default."""
    return {name: value for name, value in arguments.items() if value is not DEFAULT}


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


class TorchBackend(Backend):
    """The translation between normspec's vocabulary and torch, shared by every variant."""

    device: str = "cpu"
    #: None (torch's default, contiguous) or "channels_last" for 4-D and 5-D inputs.
    memory_format: str | None = None
    norms = frozenset(NORMS)
    dtypes = ("float16", "bfloat16", "float32", "float64")
    trains = frozenset({"batch_norm", "instance_norm"})

    # --- the protocol -----------------------------------------------------------------------

    def unavailable_reason(self) -> str | None:
        try:
            torch = _import_torch()
        except ImportError as error:
            return f"torch is not installed: pip install {TORCH_REQUIREMENT} ({error})"
        if self.device == "cuda" and not torch.cuda.is_available():
            return "torch.cuda.is_available() is False: no CUDA device"
        return None

    def version(self) -> str:
        try:
            return _import_torch().__version__
        except ImportError:
            return ""

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

    def forward(self, norm: str, inputs: NormInputs) -> np.ndarray:
        return self._forward(norm, inputs, inputs.eps)

    def forward_with_defaults(self, norm: str, inputs: NormInputs) -> np.ndarray:
        return self._forward(norm, inputs, DEFAULT)

    def vjp(self, norm: str, inputs: NormInputs, grad_y: np.ndarray) -> Gradients:
        self.refuse(norm, inputs, inputs.eps)
        y, leaves = self._call(norm, inputs, inputs.eps, differentiable=True)
        grads = iter(
            self._autograd(
                y,
                [leaf for leaf in leaves if leaf is not None],
                self._input(grad_y, inputs.x.dtype),
            )
        )
        return self._gradients(inputs, tuple(None if t is None else next(grads) for t in leaves))

    def train(self, norm: str, run: TrainingRun) -> TrainingResult:
        self.require_estimator(run)
        return self._train(
            norm,
            run.batches,
            run.initial_mean,
            run.initial_var,
            eps=run.eps,
            momentum=self.torch_momentum(run.momentum, run.momentum_weighs),
            weight=run.weight,
            bias=run.bias,
        )

    def train_with_defaults(
        self,
        norm: str,
        batches: tuple[np.ndarray, ...],
        initial_mean: np.ndarray,
        initial_var: np.ndarray,
    ) -> TrainingResult:
        return self._train(norm, batches, initial_mean, initial_var, eps=DEFAULT, momentum=DEFAULT)

    def refuse(self, norm: str, inputs: NormInputs, eps: float | _TorchDefault) -> None:
        """Raise Refused for the inputs torch refuses by design (see conventions, "refuses")."""
        x = inputs.x
        if norm == "batch_norm" and inputs.training and eps is not DEFAULT and eps <= 0:
            raise Refused("torch refuses eps <= 0 in training-mode batch_norm")
        if norm == "group_norm":
            per_group = x.shape[0] * (x.shape[1] // inputs.num_groups) * int(np.prod(x.shape[2:]))
            if per_group == 1:
                raise Refused("torch's group_norm refuses one value per channel in training")

    # --- the translations, one place each ---------------------------------------------------

    def torch_momentum(self, momentum: float | None, weighs: MomentumWeighs) -> float | None:
        """torch's momentum is the weight of the new batch statistic; None stays None."""
        if momentum is None:
            return None
        return momentum if weighs == "new" else 1.0 - momentum

    def torch_dim(self, dim: int | None, ndim: int) -> int:
        """weight_norm's dim for torch, where -1 means the whole tensor, never the last axis."""
        return -1 if dim is None else dim % ndim

    def _tensor(self, array: np.ndarray, dtype: np.dtype) -> Any:
        """A copy of `array` on this device in the torch dtype of the NumPy `dtype`."""
        torch = _import_torch()
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
        torch = _import_torch()
        fmt = torch.channels_last if tensor.ndim == 4 else torch.channels_last_3d
        return tensor.contiguous(memory_format=fmt)

    def _input(self, array: np.ndarray, dtype: np.dtype) -> Any:
        """An input-like array (x, v, grad_y) as a tensor in this backend's layout."""
        return self._layout(self._tensor(array, dtype))

    def _array(self, tensor: Any, dtype: np.dtype) -> np.ndarray:
        """A C-ordered NumPy copy of `tensor` in `dtype` (bfloat16 through float32, exactly)."""
        torch = _import_torch()
        tensor = tensor.detach().to("cpu")
        if tensor.dtype == torch.bfloat16:
            tensor = tensor.float()
        return np.array(tensor.numpy(), dtype=dtype, order="C")

    def _affine(self, norm: str, inputs: NormInputs, dtype: np.dtype) -> tuple[Any, Any]:
        """weight and bias tensors; a missing one of the pair is 1 or 0, as torch initializes."""
        torch = _import_torch()
        if inputs.weight is None and inputs.bias is None:
            return None, None
        shape = np.shape(inputs.weight if inputs.weight is not None else inputs.bias)
        weight = (
            self._tensor(inputs.weight, dtype)
            if inputs.weight is not None
            else torch.ones(shape, dtype=_torch_dtype(dtype), device=self.device)
        )
        if norm == "rms_norm":
            return weight, None
        bias = (
            self._tensor(inputs.bias, dtype)
            if inputs.bias is not None
            else torch.zeros(shape, dtype=_torch_dtype(dtype), device=self.device)
        )
        return weight, bias

    def _autograd(self, y: Any, leaves: list[Any], grad_y: Any) -> tuple[Any, ...]:
        """The gradients of L = sum(grad_y * y) for `leaves`, by torch.autograd.

        Passing grad_y as the output gradient gives exactly dL/dy = grad_y, without forming
        the sum in a low precision.
        """
        return _import_torch().autograd.grad(y, leaves, grad_outputs=grad_y)

    def _gradients(self, inputs: NormInputs, grads: tuple[Any, Any, Any]) -> Gradients:
        """Gradients in normspec's shapes: dL/dx like x, dL/dweight and dL/dbias like weight."""
        dtype = inputs.x.dtype
        grad_x, grad_weight, grad_bias = (
            None if g is None else self._array(g, dtype) for g in grads
        )
        if grad_weight is not None:
            grad_weight = grad_weight.reshape(np.shape(inputs.weight))
        if grad_bias is not None:
            grad_bias = grad_bias.reshape(np.shape(inputs.weight))
        return Gradients(grad_x, grad_weight, grad_bias)

    # --- shared steps -----------------------------------------------------------------------

    def _forward(self, norm: str, inputs: NormInputs, eps: float | _TorchDefault) -> np.ndarray:
        self.refuse(norm, inputs, eps)
        with _import_torch().no_grad():
            y, _ = self._call(norm, inputs, eps, differentiable=False)
        return self._array(y, inputs.x.dtype)

    def _train(
        self,
        norm: str,
        batches: tuple[np.ndarray, ...],
        initial_mean: np.ndarray,
        initial_var: np.ndarray,
        *,
        eps: float | _TorchDefault,
        momentum: float | _TorchDefault | None,
        weight: np.ndarray | None = None,
        bias: np.ndarray | None = None,
    ) -> TrainingResult:
        if norm not in self.trains:
            raise ValueError(
                f"{self.name} trains running statistics of {sorted(self.trains)}, not {norm!r}"
            )
        dtype = batches[0].dtype
        weight_t, bias_t = self._affine(
            norm, NormInputs(batches[0], weight=weight, bias=bias), dtype
        )
        with _import_torch().no_grad():
            outputs, mean, var, seen = self._run_training(
                norm,
                [self._input(batch, dtype) for batch in batches],
                weight_t,
                bias_t,
                self._tensor(initial_mean, dtype),
                self._tensor(initial_var, dtype),
                eps,
                momentum,
                dtype,
            )
        return TrainingResult(
            tuple(self._array(y, dtype) for y in outputs),
            self._array(mean, dtype),
            self._array(var, dtype),
            seen,
        )

    @staticmethod
    def _leaves(inputs: NormInputs, x: Any, weight: Any, bias: Any) -> tuple[Any, Any, Any]:
        """The tensors whose gradients `vjp` returns: the parameters only with a weight, as
        the spec's Gradients have them."""
        return (x, weight, bias) if inputs.weight is not None else (x, None, None)

    # --- what each api provides -------------------------------------------------------------

    @abc.abstractmethod
    def _call(
        self, norm: str, inputs: NormInputs, eps: float | _TorchDefault, *, differentiable: bool
    ) -> tuple[Any, tuple[Any, Any, Any]]:
        """y and the tensors standing for (x, weight, bias) in normspec's vocabulary."""

    @abc.abstractmethod
    def _run_training(
        self, norm, xs, weight, bias, running_mean, running_var, eps, momentum, dtype
    ) -> tuple[list[Any], Any, Any, int]:
        """The outputs, the final running mean and variance, and the batches counted."""


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

    def _call(self, norm, inputs, eps, *, differentiable):
        torch = _import_torch()
        F = torch.nn.functional
        dtype = inputs.x.dtype
        x = self._input(inputs.x, dtype).requires_grad_(differentiable)
        if norm == "weight_norm":
            # g keeps the spec's shape (v's with the norm axes of size 1): it broadcasts.
            g = self._tensor(inputs.weight, dtype).requires_grad_(differentiable)
            return torch._weight_norm(x, g, self.torch_dim(inputs.dim, x.ndim)), (x, g, None)
        weight, bias = self._affine(norm, inputs, dtype)
        if differentiable and inputs.weight is not None:
            weight.requires_grad_()
            if bias is not None:
                bias.requires_grad_()
        leaves = self._leaves(inputs, x, weight, bias)
        eps_arg = _given(eps=eps)
        if norm in ("batch_norm", "instance_norm"):
            running = (None, None)
            if not inputs.training:
                running = (
                    self._tensor(inputs.running_mean, dtype),
                    self._tensor(inputs.running_var, dtype),
                )
            if norm == "batch_norm":
                y = F.batch_norm(x, *running, weight, bias, training=inputs.training, **eps_arg)
            else:
                y = F.instance_norm(
                    x, *running, weight, bias, use_input_stats=inputs.training, **eps_arg
                )
        elif norm == "layer_norm":
            y = F.layer_norm(x, tuple(inputs.normalized_shape), weight, bias, **eps_arg)
        elif norm == "group_norm":
            y = F.group_norm(x, inputs.num_groups, weight, bias, **eps_arg)
        elif norm == "rms_norm":
            y = F.rms_norm(x, tuple(inputs.normalized_shape), weight, **eps_arg)
        else:
            raise ValueError(f"{self.name} does not provide {norm!r}")
        return y, leaves

    def _run_training(
        self, norm, xs, weight, bias, running_mean, running_var, eps, momentum, dtype
    ):
        F = _import_torch().nn.functional
        if momentum is None:
            raise ValueError(
                f"{self.name}: F.{norm} has no cumulative average; momentum=None needs a module"
            )
        arguments = _given(eps=eps, momentum=momentum)
        outputs = []
        for x in xs:  # F.batch_norm and F.instance_norm update running_* in place
            if norm == "batch_norm":
                y = F.batch_norm(
                    x, running_mean, running_var, weight, bias, training=True, **arguments
                )
            else:
                y = F.instance_norm(
                    x, running_mean, running_var, weight, bias, use_input_stats=True, **arguments
                )
            outputs.append(y)
        return outputs, running_mean, running_var, len(xs)  # F counts nothing: we do


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
        torch = _import_torch()
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
        torch = _import_torch()
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
        with _import_torch().no_grad():
            if weight is not None:
                module.weight.copy_(weight)
            if bias is not None:
                module.bias.copy_(bias)
            if running_mean is not None:
                module.running_mean.copy_(running_mean)
                module.running_var.copy_(running_var)
                module.num_batches_tracked.zero_()

    def _call(self, norm, inputs, eps, *, differentiable):
        dtype = inputs.x.dtype
        x = self._input(inputs.x, dtype).requires_grad_(differentiable)
        if norm == "weight_norm":
            return self._weight_norm_call(inputs, x)
        weight, bias = self._affine(norm, inputs, dtype)
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
            tuple(_given(eps=eps).items()),
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
        leaves = self._leaves(inputs, x, module.weight, getattr(module, "bias", None))
        return module(x), leaves

    def _weight_norm_call(self, inputs: NormInputs, v: Any) -> tuple[Any, tuple[Any, Any, Any]]:
        holder = self._weight_norm_module(
            tuple(v.shape), self.torch_dim(inputs.dim, v.ndim), inputs.x.dtype
        )
        param = holder.parametrizations.weight
        g = self._tensor(inputs.weight, inputs.x.dtype)
        with _import_torch().no_grad():
            # torch's g drops the reduced axes when it norms the whole tensor: shape ().
            param.original0.copy_(g.reshape(param.original0.shape))
            param.original1.copy_(v)
        return holder.weight, (param.original1, param.original0, None)

    def _run_training(
        self, norm, xs, weight, bias, running_mean, running_var, eps, momentum, dtype
    ):
        module = self._module(
            norm,
            xs[0].ndim,
            xs[0].shape[1],
            None,
            weight is not None,
            True,
            tuple(_given(eps=eps, momentum=momentum).items()),
            dtype,
        )
        self._load(module, weight, bias, running_mean, running_var)
        self._set_mode(module, True)
        outputs = [module(x) for x in xs]
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
