"""flax-sync: `flax.linen.BatchNorm(axis_name=...)` under `jax.pmap` on 2 to 4 CPU devices.

As a Flax user writes data-parallel BatchNorm: the module with `axis_name` set, applied inside
`jax.pmap(..., axis_name=...)`, every other default as it comes (epsilon 1e-5, momentum 0.99
weighing the old average, the biased variance in `batch_stats`, `use_fast_variance=True`).
pmap needs equal shares, so unequal shares are padded to the largest with zeros and the
padding is masked out with BatchNorm's `mask` (how Flax's documentation says to leave samples
out of the statistics); equal unmasked shares pass no mask. Parameter gradients are
`lax.psum`med over the replicas, as a user does before the optimizer.

JAX reads its host device count (`XLA_FLAGS=--xla_force_host_platform_device_count=4`) when
its backend initialises, and the `flax` backend in the pytest process has long initialised
its own: the engine runs in a worker process (backends/replica_worker.py).
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np

from backends.framework import DEFAULT, given
from backends.protocol import Conventions
from backends.replicated import WorkerBackend
from normspec.vocabulary import ReplicatedResult, ReplicatedRun

AXIS = "replicas"
DEVICES = 4


class FlaxSyncBackend(WorkerBackend):
    """flax.linen.BatchNorm synchronized over pmap's replicas, in a worker process."""

    name = "flax-sync"
    dtypes = ("float32", "float64")
    replicas = (2, 3, 4)
    masks = True
    engine = "backends.flax_sync_backend:FlaxSyncEngine"
    distributions = (("flax", "flax"), ("jax", "jax"))
    environment = (
        ("XLA_FLAGS", f"--xla_force_host_platform_device_count={DEVICES}"),
        ("JAX_ENABLE_X64", "1"),
        ("JAX_PLATFORMS", "cpu"),
    )
    conventions = Conventions(
        default_eps={"batch_norm": 1e-5},
        # ra_mean = momentum * ra_mean + (1 - momentum) * mean: BatchNorm.__call__
        momentum_weighs="old",
        default_momentum=0.99,
        running_var_estimators=("biased",),
        cumulative_average=False,
        layout="channels_last",
        default_affine=True,
        zero_variance_zero_eps="nan",
        notes={
            "replicas": f"jax.pmap over {DEVICES} host CPU devices (XLA_FLAGS), in a worker "
            "process; unequal shares are padded to the largest and masked with BatchNorm's "
            "mask",
            "variance": "use_fast_variance=True: each replica's masked E[x] and E[x^2], "
            "then lax.pmean of both over the replicas",
        },
    )

    def accumulation_dtype(self, dtype: str) -> str:
        return "float32" if dtype in ("float16", "bfloat16") else dtype


class FlaxSyncEngine:
    """The worker's side: pmapped BatchNorm steps, built once per configuration and traced
    once per shape by pmap."""

    def __init__(self) -> None:
        import jax

        jax.config.update("jax_enable_x64", True)
        self.jax = jax
        self._functions = functools.lru_cache(maxsize=64)(self._build)

    def _module(self, affine: bool, pdtype: str, eps: Any, momentum: Any) -> Any:
        from flax import linen as nn

        return nn.BatchNorm(
            use_scale=affine,
            use_bias=affine,
            param_dtype=pdtype,
            axis_name=AXIS,
            **given(epsilon=eps, momentum=momentum),
        )

    def _build(self, kind: str, replicas: int, affine: bool, pdtype: str, defaults: bool) -> Any:
        """The pmapped function of one kind: "train", "vjp" or "evaluate"."""
        jax = self.jax

        def variables(weight, bias, mean=None, var=None):
            params = {"scale": weight, "bias": bias} if affine else {}
            state = {} if mean is None else {"batch_stats": {"mean": mean, "var": var}}
            return {"params": params, **state}

        def module(eps, momentum=DEFAULT):
            return self._module(affine, pdtype, DEFAULT if defaults else eps, momentum)

        def train(x, mask, weight, bias, mean, var, eps, momentum):
            m = module(eps, DEFAULT if defaults else momentum)
            y, state = m.apply(
                variables(weight, bias, mean, var),
                x,
                use_running_average=False,
                mask=mask,
                mutable=["batch_stats"],
            )
            return y, state["batch_stats"]["mean"], state["batch_stats"]["var"]

        def vjp(x, mask, weight, bias, eps, grad_y):
            def apply(x, weight, bias):
                y, _ = module(eps).apply(
                    variables(weight, bias),
                    x,
                    use_running_average=False,
                    mask=mask,
                    mutable=["batch_stats"],
                )
                return y

            y, pullback = jax.vjp(apply, x, weight, bias)
            dx, dweight, dbias = pullback(grad_y.astype(y.dtype))
            # what a data-parallel optimizer receives: the sum of the replicas' gradients
            return dx, jax.lax.psum(dweight, AXIS), jax.lax.psum(dbias, AXIS)

        def evaluate(x, weight, bias, mean, var, eps):
            return module(eps).apply(
                variables(weight, bias, mean, var), x, use_running_average=True
            )

        fn, in_axes = {
            "train": (train, (0, 0, 0, 0, 0, 0, None, None)),
            "vjp": (vjp, (0, 0, 0, 0, None, 0)),
            "evaluate": (evaluate, (0, 0, 0, 0, 0, None)),
        }[kind]
        return jax.pmap(fn, axis_name=AXIS, in_axes=in_axes, devices=jax.devices()[:replicas])

    # --- translations -----------------------------------------------------------------------

    @staticmethod
    def _to_last(x: np.ndarray) -> np.ndarray:
        return np.moveaxis(x, 1, -1)

    @staticmethod
    def _to_first(y: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(np.moveaxis(y, -1, 1))

    def _stacked(self, shares, dtype) -> tuple[np.ndarray, int]:
        """The shares channels-last, padded with zeros to the largest, stacked over replicas."""
        size = max(len(x) for x in shares)
        padded = [
            np.concatenate([x, np.zeros((size - len(x), *x.shape[1:]), x.dtype)]) for x in shares
        ]
        return np.stack([self._to_last(x) for x in padded]).astype(dtype), size

    def _masks(self, run: ReplicatedRun, sizes, size: int, ndim: int) -> np.ndarray | None:
        """BatchNorm's mask, (R, size, 1, ...): None for equal shares with no mask."""
        if run.masks is None and len(set(sizes)) == 1:
            return None
        keep = [
            np.arange(size) < n if run.masks is None else np.pad(m, (0, size - n))
            for n, m in zip(sizes, run.masks or [None] * len(sizes), strict=True)
        ]
        return np.stack(keep).reshape(len(sizes), size, *(1,) * (ndim - 1))

    def ready(self) -> bool:
        """The framework imported and its devices configured."""
        return True

    def step(self, norm: str, run: ReplicatedRun) -> ReplicatedResult:
        """The run's synchronized steps, backward pass and evaluation."""
        first = run.shares[0] if run.shares else run.evaluate
        dtype = first[0].dtype
        replicas = len(first)
        if replicas > len(self.jax.devices()):
            raise ValueError(f"flax-sync has {len(self.jax.devices())} devices, not {replicas}")
        pdtype = "float64" if dtype == np.float64 else "float32"
        affine = run.weight is not None
        defaults = run.eps is DEFAULT
        eps = 0.0 if defaults else run.eps
        momentum = 0.0 if run.momentum is DEFAULT else run.momentum
        build = lambda kind: self._functions(kind, replicas, affine, pdtype, defaults)
        stack = lambda a: np.stack([np.asarray(a, pdtype)] * replicas)
        weight = stack(run.weight if affine else np.ones(first[0].shape[1]))
        bias = stack(run.bias if affine else np.zeros(first[0].shape[1]))
        mean, var = stack(run.initial_mean), stack(run.initial_var)
        sizes = [len(x) for x in first]
        outputs, grads = [], (None, None, None)
        for t, shares in enumerate(run.shares):
            x, size = self._stacked(shares, dtype)
            mask = self._masks(run, sizes, size, x.ndim - 1)
            if t == 0 and run.grad_y is not None:
                g, _ = self._stacked(run.grad_y, dtype)
                dx, dw, db = build("vjp")(x, mask, weight, bias, eps, g)
                grads = (
                    tuple(self._unstack(dx, sizes, dtype)),
                    np.asarray(dw[0], dtype) if affine else None,
                    np.asarray(db[0], dtype) if affine else None,
                )
            y, mean, var = build("train")(x, mask, weight, bias, mean, var, eps, momentum)
            outputs.append(tuple(self._unstack(y, sizes, dtype)))
        evaluation = ()
        if run.evaluate:
            x, _ = self._stacked(run.evaluate, dtype)
            y = build("evaluate")(x, weight, bias, mean, var, eps)
            evaluation = tuple(self._unstack(y, [len(e) for e in run.evaluate], dtype))
        return ReplicatedResult(
            outputs=tuple(outputs),
            running_mean=tuple(np.asarray(m, dtype) for m in np.asarray(mean)),
            running_var=tuple(np.asarray(v, dtype) for v in np.asarray(var)),
            grad_x=grads[0],
            grad_weight=grads[1],
            grad_bias=grads[2],
            evaluation=evaluation,
        )

    def _unstack(self, stacked: Any, sizes, dtype) -> list[np.ndarray]:
        """Each replica's rows (its padding dropped), channels-first, in `dtype`."""
        array = np.asarray(stacked)
        return [self._to_first(array[r, :n]).astype(dtype) for r, n in enumerate(sizes)]
