"""numpy-sync: an independent NumPy implementation of synchronized BatchNorm, replica by replica.

Each replica computes partial sums of its own share only, and the partial sums are combined
by `all_reduce` (a sum over replicas), as a synchronized kernel does over a network:

    count = sum_r n_r,   mean = sum_r sum(x_r) / count,   var = sum_r sum((x_r - mean)^2) / count

then each replica normalizes its share with the global statistics. The backward pass all-reduces
sum(g) and sum(g * x_hat) the same way, and the parameter gradients are each replica's own,
summed over replicas as a data-parallel optimizer receives them. Every step is a small method,
so that a planted bug (tests/mutants/replicated_mutants.py) overrides exactly one.

Like the NumPy backend, this is an independent implementation, not the spec: it is the honest
control of the replicated properties and the base of their planted bugs. It computes in
float64 and rounds each result once to the input's dtype.
"""

from __future__ import annotations

import functools

import numpy as np

from backends.framework import DEFAULT
from backends.protocol import Conventions
from backends.replicated import ReplicatedBackend
from normspec.vocabulary import ReplicatedResult, ReplicatedRun

#: The defaults of this backend's layer (PyTorch's: it has to have some).
DEFAULT_EPS = 1e-5
DEFAULT_MOMENTUM = 0.1


class NumpySyncBackend(ReplicatedBackend):
    """Synchronized BatchNorm from per-replica partial sums, in NumPy."""

    name = "numpy-sync"
    dtypes = ("float16", "float32", "float64")
    masks = True
    conventions = Conventions(
        default_eps={"batch_norm": DEFAULT_EPS},
        momentum_weighs="new",
        default_momentum=DEFAULT_MOMENTUM,
        running_var_estimators=("unbiased", "biased"),
        cumulative_average=False,
        layout="channels_first",
        default_affine=False,
        zero_variance_zero_eps="nan",
        notes={"replicas": "2 to 4 replicas in one process; shares may be masked"},
    )

    def accumulation_dtype(self, dtype: str) -> str:
        return "float64"

    def version(self) -> str:
        return np.__version__

    # --- the building blocks ----------------------------------------------------------------

    @staticmethod
    def axes(x: np.ndarray) -> tuple[int, ...]:
        """The axes BatchNorm pools per channel: batch and spatial."""
        return (0, *range(2, x.ndim))

    @staticmethod
    def per_channel(a: np.ndarray, ndim: int) -> np.ndarray:
        """A (C,) statistic shaped to broadcast against (n, C, *spatial)."""
        return np.reshape(a, (1, -1) + (1,) * (ndim - 2))

    @staticmethod
    def all_reduce(partials: list[np.ndarray]) -> np.ndarray:
        """The sum over replicas of each replica's partial value."""
        return np.sum(partials, axis=0)

    def counts(self, shares: list[np.ndarray], masks: list[np.ndarray]) -> list[float]:
        """The number of values each replica pools per channel."""
        return [float(np.sum(m)) * np.prod(x.shape[2:]) for x, m in zip(shares, masks, strict=True)]

    def mean(self, shares, masks, counts) -> np.ndarray:
        """The global mean from each replica's sum and count."""
        sums = [
            np.sum(self.masked(x, m), axis=self.axes(x)) for x, m in zip(shares, masks, strict=True)
        ]
        return self.all_reduce(sums) / self.all_reduce(counts)

    def variances(self, shares, masks, counts, mean) -> list[np.ndarray]:
        """The global (biased) variance as each replica holds it: the sum of squared
        deviations from the global mean, all-reduced, over the global count."""
        squares = [
            np.sum(self.masked(np.square(x - self.per_channel(mean, x.ndim)), m), axis=self.axes(x))
            for x, m in zip(shares, masks, strict=True)
        ]
        var = self.all_reduce(squares) / self.all_reduce(counts)
        return [var] * len(shares)

    def bessel(self, count: float, local_count: float, estimator: str) -> float:
        """The factor from the biased batch variance to the one the running variance takes."""
        return count / (count - 1) if estimator == "unbiased" else 1.0

    def parameter_gradients(self, partials: list[np.ndarray]) -> np.ndarray:
        """The gradient of a parameter: each replica's own, summed over replicas."""
        return self.all_reduce(partials)

    @staticmethod
    def masked(a: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """a with the samples the mask leaves out set to 0."""
        return a * np.reshape(mask, (-1,) + (1,) * (a.ndim - 1))

    # --- one synchronized step --------------------------------------------------------------

    def replicated_step(self, norm: str, run: ReplicatedRun) -> ReplicatedResult:
        self._check_norm(norm)
        run = self.translate(run)
        eps = DEFAULT_EPS if run.eps is DEFAULT else run.eps
        momentum = DEFAULT_MOMENTUM if run.momentum is DEFAULT else run.momentum
        dtype = (run.shares[0][0] if run.shares else run.evaluate[0]).dtype
        f64 = lambda a: None if a is None else np.asarray(a, np.float64)
        weight, bias = f64(run.weight), f64(run.bias)
        masks = [np.ones(len(s), bool) for s in (run.shares[0] if run.shares else run.evaluate)]
        if run.masks is not None:
            masks = [np.asarray(m, bool) for m in run.masks]
        means = [f64(run.initial_mean)] * run.replicas  # the input's dtype, then float64
        vars_ = [f64(run.initial_var)] * run.replicas
        outputs, grads = [], None
        for step, step_shares in enumerate(run.shares):
            shares = [f64(x) for x in step_shares]
            counts = self.counts(shares, masks)
            mean = self.mean(shares, masks, counts)
            variances = self.variances(shares, masks, counts, mean)
            count = self.all_reduce(counts)
            x_hats = [
                (x - self.per_channel(mean, x.ndim)) / self.per_channel(np.sqrt(v + eps), x.ndim)
                for x, v in zip(shares, variances, strict=True)
            ]
            outputs.append(tuple(self._affine(xh, weight, bias).astype(dtype) for xh in x_hats))
            if step == 0 and run.grad_y is not None:
                grads = self._backward(run, x_hats, variances, masks, count, eps, weight, dtype)
            # held in the input's dtype, as a layer's buffers are
            rounded = lambda a: a.astype(dtype).astype(np.float64)
            means = [rounded((1 - momentum) * m + momentum * mean) for m in means]
            vars_ = [
                rounded(
                    (1 - momentum) * rv
                    + momentum * v * self.bessel(count, c, run.running_var_estimator)
                )
                for rv, v, c in zip(vars_, variances, counts, strict=True)
            ]
        evaluation = tuple(
            self._affine(
                (f64(x) - self.per_channel(m, x.ndim)) / self.per_channel(np.sqrt(v + eps), x.ndim),
                weight,
                bias,
            ).astype(dtype)
            for x, m, v in zip(run.evaluate, means, vars_, strict=bool(run.evaluate))
        )
        grad_x, grad_weight, grad_bias = grads or (None, None, None)
        return ReplicatedResult(
            outputs=tuple(outputs),
            running_mean=tuple(m.astype(dtype) for m in means),
            running_var=tuple(v.astype(dtype) for v in vars_),
            grad_x=grad_x,
            grad_weight=grad_weight,
            grad_bias=grad_bias,
            evaluation=evaluation,
        )

    def _affine(self, x_hat, weight, bias):
        if weight is None:
            return x_hat
        return x_hat * self.per_channel(weight, x_hat.ndim) + self.per_channel(bias, x_hat.ndim)

    def _backward(self, run, x_hats, variances, masks, count, eps, weight, dtype):
        """dL/dx per replica from the all-reduced sums of g and g * x_hat; the parameter
        gradients per replica, then combined."""
        upstream = [np.asarray(g, np.float64) for g in run.grad_y]
        scale = 1.0 if weight is None else self.per_channel(weight, x_hats[0].ndim)
        gs = [g * scale for g in upstream]
        sum_g = self.all_reduce(
            [np.sum(self.masked(g, m), axis=self.axes(g)) for g, m in zip(gs, masks, strict=True)]
        )
        sum_gx = self.all_reduce(
            [
                np.sum(self.masked(g * xh, m), axis=self.axes(g))
                for g, xh, m in zip(gs, x_hats, masks, strict=True)
            ]
        )
        grad_x = []
        for g, xh, v, m in zip(gs, x_hats, variances, masks, strict=True):
            pc = functools.partial(self.per_channel, ndim=g.ndim)
            pooled = self.masked(pc(sum_g / count) + xh * pc(sum_gx / count), m)
            grad_x.append(((g - pooled) / pc(np.sqrt(v + eps))).astype(dtype))
        if weight is None:
            return tuple(grad_x), None, None
        grad_weight = self.parameter_gradients(
            [np.sum(g * xh, axis=self.axes(g)) for g, xh in zip(upstream, x_hats, strict=True)]
        )
        grad_bias = self.parameter_gradients([np.sum(g, axis=self.axes(g)) for g in upstream])
        return tuple(grad_x), grad_weight.astype(dtype), grad_bias.astype(dtype)
