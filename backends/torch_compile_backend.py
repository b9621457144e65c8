"""The torch.compile adapter: the functional norms as Inductor compiles them, generated C++
kernels rather than ATen's.

A compiled `F.layer_norm(x, shape, w, b, eps)` is a graph of `torch._decomp`'s decomposition
of `aten.native_layer_norm` with eps burnt in: Dynamo guards on every float argument of the
norm ops (eps, momentum), so each new eps is a new graph and a new C++ kernel, and normspec
draws a new eps for almost every example (209 distinct values in one ci run). This adapter
therefore compiles the same decompositions that Inductor lowers the functional ops to
(`torch._decomp.decomposition_table` of `aten.native_layer_norm`, `aten.native_group_norm`,
`aten._native_batch_norm_legit*`; InstanceNorm as `at::instance_norm` composes it, the batch
viewed as one sample of N * C channels), traced once by
`make_fx` with eps and momentum as 0-d tensors and symbolic sizes, then `torch.compile`d
with dynamic shapes: one graph per norm, dtype and configuration, whatever the eps and the
shapes; `torch._weight_norm`, which has no eps, is compiled as it is. Gradients are
AOTAutograd's of those graphs, compiled by Inductor.

Each input is viewed in a canonical rank before the compiled graph sees it, a pure view that
pools the same values (BatchNorm, InstanceNorm, GroupNorm: (N, C, L); LayerNorm: (M, K) with
K = prod(normalized_shape); WeightNorm: (D, rest) with dim first, or a vector), so that ranks do
not multiply the graphs. A call without affine parameters is given weight 1 and bias 0,
exactly x_hat * 1 + 0, so one graph serves both. Only float32 is declared, to keep the
compile count, and with it `make check`, small; RMSNorm is not provided, since its
decomposition (`aten._fused_rms_norm`) adds eps as a Scalar and so needs a graph per eps.
"""

from __future__ import annotations

import functools
import inspect
from dataclasses import replace
from typing import Any

import numpy as np

from backends.framework import DEFAULT, FrameworkRun
from backends.protocol import NormInputs
from backends.torch_backend import TORCH, TorchBackend, _conventions


def _default(function: str, argument: str) -> float:
    """The default of a torch.nn.functional argument, read from its signature."""
    signature = inspect.signature(getattr(TORCH.load().nn.functional, function))
    return signature.parameters[argument].default


class TorchCompileBackend(TorchBackend):
    """Inductor-compiled decompositions of the functional norms, one graph per configuration."""

    name = "torch-compile"
    norms = frozenset({"batch_norm", "layer_norm", "instance_norm", "group_norm", "weight_norm"})
    dtypes = ("float32",)
    trains = frozenset({"batch_norm"})
    conventions = replace(
        _conventions(
            cumulative_average=False,
            layout="channels_first",
            notes={
                "compilation": "the decompositions Inductor lowers F.batch_norm, F.layer_norm, "
                "F.group_norm, F.instance_norm and torch._weight_norm to, traced with eps and "
                "momentum as tensors and compiled once per norm, dtype and configuration with "
                "dynamic shapes (F.* with a float eps would be compiled once per eps value)",
                "rms_norm": "not provided: aten._fused_rms_norm's decomposition adds eps as a "
                "Scalar, so every eps would be its own graph",
                "dtypes": "float32 only, to keep the number of compilations small",
                "momentum": "F.batch_norm's float momentum: no cumulative average",
                "zero variance, eps = 0": "nan for layer_norm, group_norm and instance_norm: "
                "the compiled decomposition computes (x - mean) * rsqrt(0) = 0 * inf, where "
                "eager torch's instance_norm kernel gives 0; batch_norm in training mode "
                "refuses eps <= 0, as F.batch_norm does",
            },
        ),
        zero_variance_zero_eps={
            **_conventions(cumulative_average=False, layout="", notes={}).zero_variance_zero_eps,
            "instance_norm": "nan",
        },
    )

    def __init__(self) -> None:
        # One compiled function per graph: a compilation costs seconds.
        self._compiled = functools.lru_cache(maxsize=64)(self._compile)

    def statistics_dtype(self, dtype: str, norm: str) -> str:
        # Inductor keeps the statistics in registers of the computation dtype.
        return self.accumulation_dtype(dtype)

    # --- the graphs -------------------------------------------------------------------------

    def _graph(self, kind: str, groups: int | None) -> Any:
        """The function of normspec's arguments that `make_fx` traces for `kind`."""
        torch = TORCH.load()
        aten = torch.ops.aten
        table = torch._decomp.decomposition_table
        no_stats = table[aten._native_batch_norm_legit.no_stats]
        if kind == "batch_norm":
            return lambda x, w, b, eps: no_stats(x, w, b, True, 0.0, eps)[0]
        if kind == "batch_norm_evaluation":
            legit = table[aten._native_batch_norm_legit.default]
            return lambda x, w, b, mean, var, eps: legit(x, w, b, mean, var, False, 0.0, eps)[0]
        if kind == "batch_norm_step":
            step = table[aten._native_batch_norm_legit_functional.default]

            def train(x, w, b, mean, var, momentum, eps):
                y, _, _, mean, var = step(x, w, b, mean, var, True, momentum, eps)
                return y, mean, var

            return train
        if kind == "layer_norm":
            layer = table[aten.native_layer_norm.default]
            return lambda x, w, b, eps: layer(x, [x.shape[-1]], w, b, eps)[0]
        if kind == "group_norm":
            group = table[aten.native_group_norm.default]

            def group_norm(x, w, b, counter, eps):
                # num_groups arrives as the size of `counter`: a dynamic size, not a constant
                n, c, length = x.shape
                return group(x, w, b, n, c, length, counter.shape[0], eps)[0]

            return group_norm
        if kind == "instance_norm":

            def instance_norm(x, w, b, eps):
                # at::instance_norm: the batch as one sample of N * C channels
                n, c, length = x.shape
                y = no_stats(x.reshape(1, n * c, length), w.repeat(n), b.repeat(n), True, 0.0, eps)
                return y[0].reshape(n, c, length)

            return instance_norm
        if kind == "weight_norm":
            return lambda v, g: torch._weight_norm(v, g, 0)
        if kind == "weight_norm_whole":
            return lambda v, g: torch._weight_norm(v, g, -1)
        raise ValueError(f"{self.name} does not provide {kind!r}")

    def _examples(self, kind: str, groups: int | None, dtype: str) -> tuple[Any, ...]:
        """Inputs to trace `kind` with: sizes distinct and above 1, so that make_fx keeps every
        size symbolic (it specializes sizes 0 and 1, and gives equal sizes one symbol)."""
        torch = TORCH.load()
        dtype = getattr(torch, dtype)
        tensor = lambda *shape: torch.ones(shape, dtype=dtype)
        eps = self._scalar(1e-5)
        if kind == "layer_norm":
            return tensor(3, 5), tensor(5), tensor(5), eps
        if kind == "group_norm":  # 2 groups of 5 channels: no two sizes alike
            return tensor(3, 10, 7), tensor(10), tensor(10), tensor(2), eps
        x, w, b = tensor(3, 5, 7), tensor(5), tensor(5)
        if kind == "batch_norm_evaluation":
            return x, w, b, tensor(5), tensor(5), eps
        if kind == "batch_norm_step":
            return x, w, b, tensor(5), tensor(5), self._scalar(0.1), eps
        return x, w, b, eps

    def _compile(self, kind: str, groups: int | None, dtype: str) -> Any:
        """The graph of `kind`, traced with symbolic sizes and compiled with dynamic shapes."""
        torch = TORCH.load()
        if kind.startswith("weight_norm"):  # no eps: torch._weight_norm compiles as it is
            return torch.compile(self._graph(kind, groups), dynamic=True)
        make_fx = torch.fx.experimental.proxy_tensor.make_fx
        examples = self._examples(kind, groups, dtype)
        traced = make_fx(self._graph(kind, groups), tracing_mode="symbolic")(*examples)
        return torch.compile(traced, dynamic=True)

    def _run(self, kind: str, *arguments: Any, groups: int | None = None) -> Any:
        """Run the compiled graph of `kind`, compiled on first use.

        The canonical views are cloned, since Dynamo guards on the shape of a view's base.
        Without gradients, sizes of 1 are compiled like any other (backed_size_oblivious),
        where Dynamo would compile a graph for each size that happens to be 1 (a batch of
        one, a single channel, no spatial extent); not with gradients, whose backward graphs
        then assert wrong strides, nor for WeightNorm, whose g broadcasts along axes of 1."""
        torch = TORCH.load()
        dtype = str(arguments[0].dtype).removeprefix("torch.")
        arguments = tuple(a.clone() if a._base is not None else a for a in arguments)
        if kind == "group_norm":  # one graph for every group count (see _graph)
            counter = torch.empty(groups, dtype=arguments[0].dtype)
            arguments, groups = (*arguments[:-1], counter, arguments[-1]), None
        oblivious = not kind.startswith("weight_norm") and not torch.is_grad_enabled()
        with torch.fx.experimental._config.patch(backed_size_oblivious=oblivious):
            return self._compiled(kind, groups, dtype)(*arguments)

    def _scalar(self, value: float) -> Any:
        """eps or momentum as the 0-d tensor the graph takes (float64: it rounds like the
        Python float it replaces, to the dtype of the tensor it meets)."""
        torch = TORCH.load()
        return torch.tensor(float(value), dtype=torch.float64)

    # --- the calls --------------------------------------------------------------------------

    def _eps(self, eps: Any, function: str) -> float:
        return _default(function, "eps") if eps is DEFAULT else eps

    def _affine(self, x: Any, size: int, weight: Any, bias: Any) -> tuple[Any, Any]:
        """weight and bias, flattened; 1 and 0 where the call has none."""
        torch = TORCH.load()
        w = torch.ones(size, dtype=x.dtype) if weight is None else weight.reshape(size)
        b = torch.zeros(size, dtype=x.dtype) if bias is None else bias.reshape(size)
        return w, b

    def call(
        self, norm: str, inputs: NormInputs, x: Any, weight: Any, bias: Any
    ) -> tuple[Any, tuple[Any, Any, Any]]:
        """y by the norm's compiled graph on the canonical view of x, back in x's shape."""
        if norm == "weight_norm":
            return self._weight_norm(inputs, x, weight), (x, weight, None)
        if norm == "layer_norm":
            k = int(np.prod(inputs.normalized_shape))
            w, b = self._affine(x, k, weight, bias)
            eps = self._scalar(self._eps(inputs.eps, "layer_norm"))
            y = self._run("layer_norm", x.reshape(-1, k), w, b, eps)
            return y.reshape(x.shape), (x, weight, bias)
        n, c = x.shape[:2]
        view = x.reshape(n, c, -1)
        w, b = self._affine(x, c, weight, bias)
        eps = self._scalar(self._eps(inputs.eps, norm))
        if norm == "batch_norm" and not inputs.training:
            mean = self._tensor(inputs.running_mean, inputs.x.dtype)
            var = self._tensor(inputs.running_var, inputs.x.dtype)
            y = self._run("batch_norm_evaluation", view, w, b, mean, var, eps)
        elif norm == "instance_norm" and not inputs.training:
            raise ValueError(f"{self.name}: instance_norm with running statistics is not compiled")
        elif norm == "group_norm":
            y = self._run("group_norm", view, w, b, eps, groups=inputs.num_groups)
        else:
            y = self._run(norm, view, w, b, eps)
        return y.reshape(x.shape), (x, weight, bias)

    def _weight_norm(self, inputs: NormInputs, v: Any, g: Any) -> Any:
        """torch._weight_norm on v viewed as (D, rest) with dim moved first, or as a vector
        for dim None: the same values in each norm, in a rank that does not vary."""
        if inputs.dim is None:
            return self._run("weight_norm_whole", v.reshape(-1), g.reshape(1)).reshape(v.shape)
        dim = inputs.dim % v.ndim
        moved = v.movedim(dim, 0)
        size = moved.shape[0]
        w = self._run("weight_norm", moved.reshape(size, -1), g.reshape(size, 1))
        return w.reshape(moved.shape).movedim(0, dim)

    def run_training(self, norm: str, run: FrameworkRun) -> tuple[list[Any], Any, Any, int]:
        """The compiled training step once per batch, the running statistics it returns fed to
        the next; F.batch_norm counts nothing."""
        x = run.batches[0]
        c = x.shape[1]
        w, b = self._affine(x, c, run.weight, run.bias)
        eps = self._scalar(self._eps(run.eps, "batch_norm"))
        momentum = run.momentum
        momentum = self._scalar(
            _default("batch_norm", "momentum") if momentum is DEFAULT else momentum
        )
        mean, var = run.running_mean, run.running_var
        outputs = []
        for batch in run.batches:
            view = batch.reshape(batch.shape[0], c, -1)
            y, mean, var = self._run("batch_norm_step", view, w, b, mean, var, momentum, eps)
            outputs.append(y.reshape(batch.shape))
        return outputs, mean, var, len(run.batches)
