"""The Flax adapter: the `flax.linen` normalization layers on JAX, as a Flax user gets them.

`flax.linen.BatchNorm`, `LayerNorm`, `GroupNorm`, `InstanceNorm`, `RMSNorm` and the
`WeightNorm` wrapper, with every default as it comes: epsilon, a momentum that weighs the old
average, the channels-last feature axis, `use_fast_variance=True`, statistics in at least
float32, parameters in `param_dtype` (float32), running statistics in the mutable
`batch_stats` collection; gradients by `jax.vjp`.

Each translation lives in one place: layout in `framework_axes` (Flax's feature axis is the
last: (N, C, *spatial) -> (N, *spatial, C) for the norms with a channel axis; LayerNorm and
RMSNorm pool the trailing axes in either layout; WeightNorm's v keeps its shape), the module
and its arguments in `_module`, parameter and statistics dtypes in `param_dtype`, state in
`_variables`. Names: Flax calls eps `epsilon`, weight and bias `scale` and `bias`, the
running statistics `batch_stats` `mean` and `var`, normalized_shape `reduction_axes` and
`feature_axes`, and weight-norm's dim `feature_axes` (the axis that keeps its own norm).

Every function is jitted once per configuration (norm, rank, the trailing axes, affine,
num_groups, dim) and traced once per shape and dtype: eps and momentum are arguments of the
jitted function, so a new value is a new argument, never a new trace. JAX runs with
JAX_ENABLE_X64=1, without which it silently computes float64 inputs in float32, and on its CPU
platform; both are set before the first import of JAX. flax and jax are imported lazily.
"""

from __future__ import annotations

import contextlib
import functools
import tempfile
from collections.abc import Iterator
from pathlib import Path
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
from backends.protocol import Conventions, NormInputs
from normspec.vocabulary import NORMS

#: float64 needs x64 (jax's default is float32 only); the CPU platform without probing others.
_ENVIRONMENT = (("JAX_ENABLE_X64", "1"), ("JAX_PLATFORMS", "cpu"))
FLAX = Requirement("flax", "flax==0.12.8", environment=_ENVIRONMENT)
JAX = Requirement("jax", "jax==0.10.2", environment=_ENVIRONMENT)
#: The norms with a channel axis: Flax wants it last.
CHANNEL_NORMS = frozenset({"batch_norm", "instance_norm", "group_norm"})


#: XLA compiles a jitted function once per shape (no dynamic shapes), about 0.1 s of CPU each,
#: and the ci profile draws the same shapes on every run: a persistent cache makes every run
#: after the first on a machine load them instead (override with JAX_COMPILATION_CACHE_DIR).
COMPILATION_CACHE = Path(tempfile.gettempdir()) / "normspec-jax-cache"


@functools.cache
def _jax() -> Any:
    """jax, with x64 on (the environment variable only counts where jax is imported first
    through this adapter, so the flag is also set at run time) and the persistent
    compilation cache, unless JAX_COMPILATION_CACHE_DIR names another."""
    jax = JAX.load()
    jax.config.update("jax_enable_x64", True)
    if not jax.config.jax_compilation_cache_dir:
        jax.config.update("jax_compilation_cache_dir", str(COMPILATION_CACHE))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0)
    return jax


def _linen() -> Any:
    _jax()
    return FLAX.load().linen


@functools.cache
def _kernel_holder() -> type:
    """A Flax module whose only parameter is `kernel`, the v that WeightNorm normalizes."""
    nn = _linen()

    class Kernel(nn.Module):
        shape: tuple[int, ...]
        dtype: Any

        @nn.compact
        def __call__(self) -> Any:
            return self.param("kernel", nn.initializers.ones, self.shape, self.dtype)

    return Kernel


class FlaxBackend(FrameworkBackend):
    """flax.linen's normalization layers, jitted once per configuration."""

    name = "flax"
    requirements = (FLAX, JAX)
    norms = frozenset(NORMS)
    dtypes = ("float16", "bfloat16", "float32", "float64")
    trains = frozenset({"batch_norm"})
    conventions = Conventions(
        # The dataclass defaults of flax/linen/normalization.py (flax 0.12.8).
        default_eps={
            "batch_norm": 1e-5,
            "layer_norm": 1e-6,
            "instance_norm": 1e-6,
            "group_norm": 1e-6,
            "rms_norm": 1e-6,
            "weight_norm": 1e-12,
        },
        # ra_mean = momentum * ra_mean + (1 - momentum) * mean: BatchNorm.__call__
        momentum_weighs="old",
        default_momentum=0.99,
        # _compute_stats returns the biased variance and BatchNorm averages it unchanged
        running_var_estimators=("biased",),
        cumulative_average=False,
        layout="channels_last",
        default_affine=True,
        zero_variance_zero_eps="nan",
        notes={
            "variance": "use_fast_variance=True by default: var = max(0, E[x^2] - E[x]^2) in "
            "one pass (flax/linen/normalization.py, _compute_stats), which the docs call "
            "'faster, but less numerically stable'",
            "weight_norm": "WeightNorm wraps a module whose only parameter is `kernel` (v); "
            "it computes v * rsqrt(sum(v^2) + epsilon) * scale with epsilon = 1e-12 by default, "
            "so normspec's eps (0 for weight_norm) is passed as its epsilon; dim is its "
            "feature_axes, None the whole tensor",
            "instance_norm": "InstanceNorm has no running statistics: evaluation mode is not "
            "available",
            "dtypes": "JAX runs with JAX_ENABLE_X64=1 (without it float64 inputs are silently "
            "computed in float32). Statistics are computed in at least float32 "
            "(force_float32_reductions); parameters are held in param_dtype, Flax's float32 "
            "for float16, bfloat16 and float32 inputs and float64 for float64 inputs, and the "
            "running statistics in float32 (float64 for float64 inputs). The output of a "
            "layer with float32 parameters is float32: the adapter rounds it to the input "
            "dtype",
            "affine": "use_scale and use_bias both follow the call's weight; RMSNorm has no bias",
        },
    )

    def __init__(self) -> None:
        # Built once per configuration; jax.jit then traces once per shape and dtype.
        self._forward_fn = functools.lru_cache(maxsize=128)(self._build_forward)
        self._vjp_fn = functools.lru_cache(maxsize=128)(self._build_vjp)
        self._training_fn = functools.lru_cache(maxsize=32)(self._build_training)
        self._pending: tuple[Any, ...] | None = None

    def accumulation_dtype(self, dtype: str) -> str:
        # _compute_stats promotes x to at least float32 (force_float32_reductions=True), and
        # _normalize applies statistics and float32 parameters in float32.
        return "float32" if dtype in ("float16", "bfloat16") else dtype

    # --- the translations, one place each ---------------------------------------------------

    def framework_axes(self, norm: str, ndim: int) -> tuple[int, ...]:
        """The permutation from normspec's layout to Flax's: channels move last for the norms
        with a channel axis; the others keep their axes."""
        if norm in CHANNEL_NORMS:
            return (0, *range(2, ndim), 1)
        return tuple(range(ndim))

    def from_framework(self, norm: str, array: np.ndarray) -> np.ndarray:
        """An output-like array (y, dL/dx) back in normspec's channels-first layout."""
        order = np.argsort(self.framework_axes(norm, np.ndim(array)))
        return np.ascontiguousarray(np.transpose(array, order))

    def param_dtype(self, dtype: np.dtype) -> np.dtype:
        """Flax's param_dtype: float32 (its default) unless the input is float64, where a
        float32 parameter would round the weight the call is given."""
        return np.dtype(np.float64) if np.dtype(dtype) == np.float64 else np.dtype(np.float32)

    def _array(self, array: np.ndarray, dtype: np.dtype) -> Any:
        """A JAX array in the NumPy `dtype` (ml_dtypes' bfloat16 is JAX's own)."""
        return _jax().numpy.asarray(np.asarray(array, dtype=dtype))

    def input_tensor(self, norm: str, array: np.ndarray, dtype: np.dtype) -> Any:
        """An input-like array (x, v, grad_y, a batch) in Flax's layout."""
        return self._array(np.transpose(array, self.framework_axes(norm, np.ndim(array))), dtype)

    def parameter_tensors(
        self, norm: str, weight: np.ndarray | None, bias: np.ndarray | None, dtype: np.dtype
    ) -> tuple[Any, Any]:
        """weight and bias in `param_dtype`, a missing one of the pair as Flax initializes it
        (ones, zeros); RMSNorm and WeightNorm have no bias."""
        if weight is None and bias is None:
            return None, None
        pdtype = self.param_dtype(dtype)
        shape = np.shape(weight if weight is not None else bias)
        weight = self._array(np.ones(shape) if weight is None else weight, pdtype)
        if norm in ("rms_norm", "weight_norm"):
            return weight, None
        return weight, self._array(np.zeros(shape) if bias is None else bias, pdtype)

    def statistics_tensor(self, array: np.ndarray, dtype: np.dtype) -> Any:
        """A running statistic as batch_stats holds it: in param_dtype's float width."""
        return self._array(array, self.param_dtype(dtype))

    def to_numpy(self, tensor: Any, dtype: np.dtype) -> np.ndarray:
        """A C-ordered NumPy copy of `tensor`, rounded to `dtype`."""
        return np.array(np.asarray(tensor), dtype=dtype, order="C")

    # --- the modules ------------------------------------------------------------------------

    def _module(self, config: tuple, eps: Any, momentum: Any = DEFAULT) -> Any:
        """The Flax module of a configuration, built inside a jitted function: eps and
        momentum are traced values there, or left to Flax's defaults (DEFAULT)."""
        nn = _linen()
        norm, ndim, trailing, affine, num_groups, dim, shape, pdtype = config
        settings = given(epsilon=eps, momentum=momentum)
        affine_args = {"use_scale": affine, "use_bias": affine}
        if norm == "batch_norm":
            return nn.BatchNorm(**affine_args, param_dtype=pdtype, **settings)
        if norm == "instance_norm":
            return nn.InstanceNorm(**affine_args, param_dtype=pdtype, **settings)
        if norm == "group_norm":
            return nn.GroupNorm(
                num_groups=num_groups, **affine_args, param_dtype=pdtype, **settings
            )
        if norm in ("layer_norm", "rms_norm"):
            # Flax's default axes are (-1,): passed only for more trailing axes than one.
            axes = tuple(range(ndim - trailing, ndim))
            axis_args = {} if trailing == 1 else {"reduction_axes": axes, "feature_axes": axes}
            if norm == "layer_norm":
                return nn.LayerNorm(**affine_args, **axis_args, param_dtype=pdtype, **settings)
            return nn.RMSNorm(use_scale=affine, **axis_args, param_dtype=pdtype, **settings)
        if norm == "weight_norm":
            return nn.WeightNorm(
                _kernel_holder()(shape, None),
                feature_axes=None if dim is None else dim % ndim,
                param_dtype=pdtype,
                **settings,
            )
        raise ValueError(f"{self.name} does not provide {norm!r}")

    @staticmethod
    def _variables(norm: str, weight: Any, bias: Any, v: Any = None) -> dict:
        """The `params` collection: scale and bias, or WeightNorm's kernel and its scale."""
        if norm == "weight_norm":
            # the wrapped module is WeightNorm's `layer_instance`; its scale is named by path
            params = {"layer_instance": {"kernel": v}}
            if weight is not None:
                params["layer_instance/kernel/scale"] = weight
            return {"params": params}
        params = {}
        if weight is not None:
            params["scale"] = weight
        if bias is not None:
            params["bias"] = bias
        return {"params": params}

    def _apply(
        self, config: tuple, x: Any, weight: Any, bias: Any, eps: Any, stats: Any = None
    ) -> Any:
        """y of the configuration's module: batch statistics, or `stats` (mean, var) as
        batch_stats in evaluation mode."""
        norm = config[0]
        module = self._module(config, eps)
        if norm == "weight_norm":
            # weight_norm's g is WeightNorm's scale, of the kept axis's size (or a scalar).
            scale = None if weight is None else weight.reshape(_scale_shape(x.shape, config[5]))
            return module.apply(self._variables(norm, scale, None, x))
        variables = self._variables(norm, weight, bias)
        if norm != "batch_norm":
            return module.apply(variables, x)
        if stats is None:
            y, _ = module.apply(variables, x, use_running_average=False, mutable=["batch_stats"])
            return y
        variables["batch_stats"] = {"mean": stats[0], "var": stats[1]}
        return module.apply(variables, x, use_running_average=True)

    def _build_forward(self, config: tuple) -> Any:
        """y = f(x, weight, bias, eps, stats), jitted."""
        return _jax().jit(functools.partial(self._apply, config))

    def _build_vjp(self, config: tuple) -> Any:
        """(dL/dx, dL/dweight, dL/dbias) = f(x, weight, bias, eps, stats, grad_y), jitted; the
        cotangent is cast to the dtype of the output (float32 when the parameters are)."""
        jax = _jax()

        def gradients(x, weight, bias, eps, stats, grad_y):
            y, pullback = jax.vjp(
                lambda x, w, b: self._apply(config, x, w, b, eps, stats), x, weight, bias
            )
            return pullback(grad_y.astype(y.dtype))

        return jax.jit(gradients)

    def _build_training(self, config: tuple, defaults: bool) -> Any:
        """(outputs, mean, var) = f(batches, weight, bias, mean, var, eps, momentum): the
        BatchNorm module applied to each batch in turn, batch_stats mutable."""
        jax = _jax()

        def steps(batches, weight, bias, mean, var, eps, momentum):
            module = self._module(config, DEFAULT if defaults else eps, momentum)
            variables = self._variables("batch_norm", weight, bias)
            outputs = []
            for x in batches:
                variables["batch_stats"] = {"mean": mean, "var": var}
                y, state = module.apply(
                    variables, x, use_running_average=False, mutable=["batch_stats"]
                )
                mean, var = state["batch_stats"]["mean"], state["batch_stats"]["var"]
                outputs.append(y)
            return outputs, mean, var

        if defaults:
            return jax.jit(lambda b, w, bias, m, v: steps(b, w, bias, m, v, DEFAULT, DEFAULT))
        return jax.jit(steps)

    def _config(self, norm: str, inputs: NormInputs, x: Any, weight: Any) -> tuple:
        """What a jitted function is built for; the rest (shapes, dtypes) jit traces."""
        return (
            norm,
            x.ndim,
            len(inputs.normalized_shape or ()),
            weight is not None,
            inputs.num_groups if norm == "group_norm" else None,
            inputs.dim if norm == "weight_norm" else None,
            tuple(x.shape) if norm == "weight_norm" else None,
            self.param_dtype(inputs.x.dtype).name,
        )

    # --- how JAX computes -------------------------------------------------------------------

    @contextlib.contextmanager
    def recording(self, tensors: list[Any]) -> Iterator[Gradient]:
        """JAX has no tape: `call` leaves what it computed y from in `_pending`, and the
        gradient function, called after the context, runs the configuration's jitted vjp."""
        self._pending = None
        yield self._gradient

    def _gradient(self, y: Any, sources: list[Any], grad_y: Any) -> list[Any]:
        config, x, weight, bias, eps, stats = self._pending
        grads = self._vjp_fn(config)(x, weight, bias, eps, stats, grad_y)
        by_source = {id(s): g for s, g in zip((x, weight, bias), grads, strict=True)}
        return [by_source[id(s)] for s in sources]

    def call(
        self, norm: str, inputs: NormInputs, x: Any, weight: Any, bias: Any
    ) -> tuple[Any, tuple[Any, Any, Any]]:
        """y by the configuration's jitted module, and (x, weight, bias) as the sources."""
        if norm == "instance_norm" and not inputs.training:
            raise ValueError(f"{self.name}: Flax's InstanceNorm has no running statistics")
        config = self._config(norm, inputs, x, weight)
        stats = None
        if norm == "batch_norm" and not inputs.training:
            stats = (
                self.statistics_tensor(inputs.running_mean, inputs.x.dtype),
                self.statistics_tensor(inputs.running_var, inputs.x.dtype),
            )
        eps = inputs.eps
        if eps is DEFAULT:
            # Flax's own epsilon, as the dataclass default: read, not assumed.
            eps = type(self._module(config, DEFAULT)).epsilon
        self._pending = (config, x, weight, bias, eps, stats)
        y = self._forward_fn(config)(x, weight, bias, eps, stats)
        return y, (x, weight, bias)

    def run_training(self, norm: str, run: FrameworkRun) -> tuple[list[Any], Any, Any, int]:
        """BatchNorm applied to each batch with batch_stats mutable, the running statistics
        threaded from step to step; Flax counts no batches."""
        x = run.batches[0]
        pdtype = self.param_dtype(run.dtype).name
        config = (norm, x.ndim, 0, run.weight is not None, None, None, None, pdtype)
        defaults = run.eps is DEFAULT and run.momentum is DEFAULT
        fn = self._training_fn(config, defaults)
        arguments = (list(run.batches), run.weight, run.bias, run.running_mean, run.running_var)
        if defaults:
            outputs, mean, var = fn(*arguments)
        else:
            outputs, mean, var = fn(*arguments, run.eps, run.momentum)
        return outputs, mean, var, len(run.batches)


def _scale_shape(shape: tuple[int, ...], dim: int | None) -> tuple[int, ...]:
    """The shape of WeightNorm's scale: the kept axis's size, () for the whole tensor."""
    return () if dim is None else (shape[dim % len(shape)],)
