"""The NumPy backend: an independent, vectorized implementation in the array's own dtype.

It is written the way a NumPy user writes these layers (reshape, two-pass moments, the
textbook backward pass), never by calling the specification: its value is in being a second,
separate implementation that the float64 oracle can disagree with. Each step is a small
method so that the planted bugs of `tests/mutants` can replace exactly one of them.

Conventions, chosen to match PyTorch so that the two can be compared directly: momentum is
the weight of the new batch statistic, the running variance is unbiased by default (biased
on request), momentum=None is the cumulative average, float16 accumulates in float32.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from backends.protocol import (
    Backend,
    Conventions,
    NormInputs,
    TrainingResult,
    TrainingRun,
)
from normspec.vocabulary import Gradients

#: The defaults of the NumPy "framework" itself: `forward_with_defaults` and
#: `train_with_defaults` use these, and the conventions below declare them. A declaration
#: that drifts from them is what the conventions properties catch.
DEFAULT_EPS: dict[str, float | None] = {
    "batch_norm": 1e-5,
    "layer_norm": 1e-5,
    "instance_norm": 1e-5,
    "group_norm": 1e-5,
    "rms_norm": 1e-6,
    "weight_norm": None,
}
DEFAULT_MOMENTUM = 0.1


class NumpyBackend(Backend):
    """Every norm in NumPy, computed in the input's dtype (float16 accumulates in float32)."""

    name = "numpy"
    dtypes = ("float16", "float32", "float64")
    trains = frozenset({"batch_norm", "instance_norm"})
    conventions = Conventions(
        default_eps=dict(DEFAULT_EPS),
        momentum_weighs="new",
        default_momentum=DEFAULT_MOMENTUM,
        running_var_estimators=("unbiased", "biased"),
        cumulative_average=True,
        layout="channels_first",
        default_affine=True,
        zero_variance_zero_eps="nan",
    )

    def version(self) -> str:
        return np.__version__

    def accumulation_dtype(self, dtype: str) -> str:
        return "float32" if dtype == "float16" else dtype

    # --- the building blocks ----------------------------------------------------------------

    def statistics(self, x: np.ndarray, axes: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
        """Two-pass mean and biased variance over `axes`, kept for broadcasting."""
        mean = x.mean(axis=axes, keepdims=True)
        centered = x - mean
        return mean, (centered * centered).mean(axis=axes, keepdims=True)

    def normalize(self, x: np.ndarray, mean: np.ndarray, var: np.ndarray, eps: float) -> np.ndarray:
        """(x - mean) / sqrt(var + eps)."""
        return (x - mean) / np.sqrt(var + x.dtype.type(eps))

    def scale_and_shift(
        self,
        x_hat: np.ndarray,
        weight: np.ndarray | None,
        bias: np.ndarray | None,
        shape: tuple[int, ...],
    ) -> np.ndarray:
        """weight * x_hat + bias, the parameters reshaped to `shape`."""
        if weight is not None:
            x_hat = x_hat * weight.astype(x_hat.dtype).reshape(shape)
        if bias is not None:
            x_hat = x_hat + bias.astype(x_hat.dtype).reshape(shape)
        return x_hat

    def layer_axes(self, x: np.ndarray, normalized_shape: tuple[int, ...]) -> tuple[int, ...]:
        """The trailing axes that LayerNorm and RMSNorm pool over."""
        return tuple(range(x.ndim - len(normalized_shape), x.ndim))

    def to_groups(self, x: np.ndarray, num_groups: int) -> np.ndarray:
        """(N, C, *s) -> (N, G, C/G, *s): channels c*C/G .. (c+1)*C/G - 1 form group g."""
        n, c = x.shape[:2]
        return x.reshape(n, num_groups, c // num_groups, *x.shape[2:])

    def from_groups(self, grouped: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
        """The inverse of `to_groups`."""
        return grouped.reshape(shape)

    def momentum_factor(self, momentum: float | None, weighs: str, seen: int) -> float:
        """The weight of the new batch statistic in the step that makes `seen` batches."""
        if momentum is None:
            return 1.0 / seen
        return momentum if weighs == "new" else 1.0 - momentum

    def bessel(self, count: int, estimator: str) -> float:
        """The factor that turns the biased batch variance into the running one."""
        return count / (count - 1) if estimator == "unbiased" else 1.0

    def instance_axes(self, x: np.ndarray) -> tuple[int, ...]:
        """The axes InstanceNorm pools over: the spatial axes of one (sample, channel)."""
        return tuple(range(2, x.ndim))

    def uses_running_statistics(self, norm: str, inputs: NormInputs) -> bool:
        """Whether this call normalizes with the running statistics (evaluation mode)."""
        return norm in ("batch_norm", "instance_norm") and not inputs.training

    def weight_norm_axes(self, v: np.ndarray, dim: int | None) -> tuple[int, ...]:
        """The axes ||v|| is taken over: all but `dim`."""
        if dim is None:
            return tuple(range(v.ndim))
        return tuple(a for a in range(v.ndim) if a != dim % v.ndim)

    def standardized_input_grad(
        self, g: np.ndarray, x_hat: np.ndarray, inv_std: np.ndarray, axes: tuple[int, ...]
    ) -> np.ndarray:
        """The textbook backward pass of batch-statistics standardization.

        dx = inv_std / n * (n * g - sum(g) - x_hat * sum(g * x_hat))
        """
        n = np.prod([g.shape[a] for a in axes])
        sum_g = g.sum(axis=axes, keepdims=True)
        sum_g_x_hat = (g * x_hat).sum(axis=axes, keepdims=True)
        return inv_std / n * (n * g - sum_g - x_hat * sum_g_x_hat)

    # --- the protocol -----------------------------------------------------------------------

    def forward(self, norm: str, inputs: NormInputs) -> np.ndarray:
        x = self._working(inputs.x)
        if norm == "weight_norm":
            g = inputs.weight.astype(x.dtype)
            norm_v = np.sqrt((x * x).sum(axis=self.weight_norm_axes(x, inputs.dim), keepdims=True))
            return (g * x / norm_v).astype(inputs.x.dtype)
        if norm == "rms_norm":
            axes = self.layer_axes(x, inputs.normalized_shape)
            rms = np.sqrt((x * x).mean(axis=axes, keepdims=True) + x.dtype.type(inputs.eps))
            y = self.scale_and_shift(x / rms, inputs.weight, None, inputs.normalized_shape)
            return y.astype(inputs.x.dtype)
        x_hat, _, _ = self._standardize(norm, x, inputs)
        y = self.scale_and_shift(
            x_hat, inputs.weight, inputs.bias, self._param_shape(norm, x, inputs)
        )
        return y.astype(inputs.x.dtype)

    def vjp(self, norm: str, inputs: NormInputs, grad_y: np.ndarray) -> Gradients:
        x = self._working(inputs.x)
        g = grad_y.astype(x.dtype)
        out = inputs.x.dtype
        if norm == "weight_norm":
            return self._weight_norm_vjp(x, inputs, g)
        if norm == "rms_norm":
            return self._rms_norm_vjp(x, inputs, g)
        x_hat, inv_std, axes = self._standardize(norm, x, inputs)
        shape = self._param_shape(norm, x, inputs)
        param_axes = tuple(a for a in range(x.ndim) if shape[a] == 1)
        grad_weight = grad_bias = None
        if inputs.weight is not None:
            grad_weight = (g * x_hat).sum(axis=param_axes).reshape(inputs.weight.shape)
            grad_bias = g.sum(axis=param_axes).reshape(inputs.weight.shape)
            g = g * inputs.weight.astype(x.dtype).reshape(shape)
        if axes is None:  # running statistics: a per-channel affine map
            grad_x = g * inv_std
        elif norm == "group_norm":
            grouped = lambda a: self.to_groups(a, inputs.num_groups)
            grad_x = self.from_groups(
                self.standardized_input_grad(grouped(g), grouped(x_hat), inv_std, axes), x.shape
            )
        else:
            grad_x = self.standardized_input_grad(g, x_hat, inv_std, axes)
        return Gradients(grad_x.astype(out), _cast(grad_weight, out), _cast(grad_bias, out))

    def train(self, norm: str, run: TrainingRun) -> TrainingResult:
        acc = np.dtype(self.accumulation_dtype(run.batches[0].dtype.name))
        mean, var = run.initial_mean.astype(acc), run.initial_var.astype(acc)
        outputs = []
        for seen, batch in enumerate(run.batches, start=1):
            x = batch.astype(acc)
            inputs = NormInputs(x=x, eps=run.eps, weight=run.weight, bias=run.bias)
            x_hat, _, axes = self._standardize(norm, x, inputs)
            outputs.append(
                self.scale_and_shift(
                    x_hat, run.weight, run.bias, self._param_shape(norm, x, inputs)
                ).astype(batch.dtype)
            )
            batch_mean, batch_var = self.statistics(x, axes)
            count = int(np.prod([x.shape[a] for a in axes]))
            if norm == "instance_norm":  # instances share the running statistics equally
                batch_mean, batch_var = batch_mean.mean(axis=0), batch_var.mean(axis=0)
            a = self.momentum_factor(run.momentum, run.momentum_weighs, seen)
            mean = (1 - a) * mean + a * batch_mean.reshape(-1)
            var = (1 - a) * var + a * batch_var.reshape(-1) * self.bessel(
                count, run.running_var_estimator
            )
        stored = run.batches[0].dtype  # held in the accumulation dtype, returned as stored
        return TrainingResult(
            tuple(outputs), mean.astype(stored), var.astype(stored), len(run.batches)
        )

    def forward_with_defaults(self, norm: str, inputs: NormInputs) -> np.ndarray:
        eps = DEFAULT_EPS[norm]
        inputs = replace(inputs, eps=0.0 if eps is None else eps)
        if self.conventions.layout == "channels_first" or inputs.x.ndim < 3:
            return self.forward(norm, inputs)
        # as an adapter of a channels-last framework would: trust the declared layout
        x = np.moveaxis(inputs.x, 1, -1)
        return np.moveaxis(self.forward(norm, replace(inputs, x=x)), -1, 1)

    def train_with_defaults(
        self,
        norm: str,
        batches: tuple[np.ndarray, ...],
        initial_mean: np.ndarray,
        initial_var: np.ndarray,
    ) -> TrainingResult:
        return self.train(
            norm,
            TrainingRun(
                batches,
                DEFAULT_EPS[norm],
                DEFAULT_MOMENTUM,
                "new",
                "unbiased",
                initial_mean,
                initial_var,
            ),
        )

    # --- helpers ----------------------------------------------------------------------------

    def _working(self, x: np.ndarray) -> np.ndarray:
        return x.astype(self.accumulation_dtype(x.dtype.name))

    def _param_shape(self, norm: str, x: np.ndarray, inputs: NormInputs) -> tuple[int, ...]:
        if norm in ("layer_norm", "rms_norm"):
            k = len(inputs.normalized_shape)
            return (1,) * (x.ndim - k) + tuple(inputs.normalized_shape)
        return (1, x.shape[1]) + (1,) * (x.ndim - 2)

    def _standardize(self, norm: str, x: np.ndarray, inputs: NormInputs):
        """x_hat, 1/sigma and the pooled axes (None when running statistics are used)."""
        if self.uses_running_statistics(norm, inputs):
            shape = (1, x.shape[1]) + (1,) * (x.ndim - 2)
            mean = inputs.running_mean.astype(x.dtype).reshape(shape)
            var = inputs.running_var.astype(x.dtype).reshape(shape)
            return self.normalize(x, mean, var, inputs.eps), 1 / np.sqrt(var + inputs.eps), None
        if norm == "group_norm":
            grouped = self.to_groups(x, inputs.num_groups)
            axes = tuple(range(2, grouped.ndim))
            mean, var = self.statistics(grouped, axes)
            x_hat = self.from_groups(self.normalize(grouped, mean, var, inputs.eps), x.shape)
            return x_hat, 1 / np.sqrt(var + x.dtype.type(inputs.eps)), axes
        if norm == "layer_norm":
            axes = self.layer_axes(x, inputs.normalized_shape)
        elif norm == "instance_norm":
            axes = self.instance_axes(x)
        else:
            axes = (0, *range(2, x.ndim))
        mean, var = self.statistics(x, axes)
        return (
            self.normalize(x, mean, var, inputs.eps),
            1 / np.sqrt(var + x.dtype.type(inputs.eps)),
            axes,
        )

    def _rms_norm_vjp(self, x: np.ndarray, inputs: NormInputs, g: np.ndarray) -> Gradients:
        axes = self.layer_axes(x, inputs.normalized_shape)
        n = np.prod(inputs.normalized_shape)
        inv_rms = 1 / np.sqrt((x * x).mean(axis=axes, keepdims=True) + x.dtype.type(inputs.eps))
        x_hat = x * inv_rms
        grad_weight = None
        if inputs.weight is not None:
            lead = tuple(range(x.ndim - len(inputs.normalized_shape)))
            grad_weight = (g * x_hat).sum(axis=lead)
            g = g * inputs.weight.astype(x.dtype)
        grad_x = inv_rms * (g - x_hat * (g * x_hat).sum(axis=axes, keepdims=True) / n)
        out = inputs.x.dtype
        return Gradients(grad_x.astype(out), _cast(grad_weight, out))

    def _weight_norm_vjp(self, v: np.ndarray, inputs: NormInputs, g_w: np.ndarray) -> Gradients:
        axes = self.weight_norm_axes(v, inputs.dim)
        g = inputs.weight.astype(v.dtype)
        norm_v = np.sqrt((v * v).sum(axis=axes, keepdims=True))
        direction = v / norm_v
        grad_g = (g_w * direction).sum(axis=axes, keepdims=True)
        grad_v = g / norm_v * (g_w - direction * grad_g)
        out = inputs.x.dtype
        return Gradients(grad_v.astype(out), grad_g.astype(out))


def _cast(a: np.ndarray | None, dtype: np.dtype) -> np.ndarray | None:
    return None if a is None else a.astype(dtype)
