"""What a backend should return for a call: the spec's value and the tolerance model's bound.

This is the one place that maps a norm call in the adapter vocabulary (`NormInputs`,
`TrainingRun`) onto the spec's functions, and pairs each expected value with its elementwise
error bound for the backend's precision.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from normspec import core, spec, tolerance
from normspec.tolerance import Precision
from normspec.vocabulary import NormInputs, TrainingRun


@dataclass(frozen=True)
class Expected:
    """An expected value and the elementwise bound on a correct backend's error."""

    value: np.ndarray
    bound: np.ndarray

    @classmethod
    def computed(cls, value: np.ndarray, bound: np.ndarray, p: Precision) -> Expected:
        """The value with its rounding bound plus the absolute error of underflow."""
        return cls(value, bound + p.underflow)


@dataclass(frozen=True)
class ExpectedTraining:
    """The expected outputs of k training steps and the running statistics after them."""

    outputs: tuple[Expected, ...]
    running_mean: Expected
    running_var: Expected
    batches_seen: int


def _f64(a: np.ndarray | None) -> np.ndarray | None:
    return None if a is None else core.as_float64(a)


def pooled_sets(norm: str, inputs: NormInputs) -> tuple[np.ndarray, tuple[int, ...] | None]:
    """x in float64, viewed so that each pooled set S is explicit, and the axes of S (None when
    running statistics are used). Reshape any array shaped like x with `.reshape(view.shape)`
    to see it pooled the same way."""
    x = core.as_float64(inputs.x)
    if norm in ("batch_norm", "instance_norm") and not inputs.training:
        return x, None
    if norm == "batch_norm":
        return x, (0, *core.spatial_axes(x.ndim))
    if norm == "instance_norm":
        return x, core.spatial_axes(x.ndim)
    if norm == "group_norm":
        n, c = x.shape[:2]
        grouped = x.reshape(n, inputs.num_groups, c // inputs.num_groups, *x.shape[2:])
        return grouped, core.all_but(grouped.ndim, (0, 1))
    return x, core.trailing_axes(x.ndim, len(inputs.normalized_shape))


def _feature_axes(norm: str, inputs: NormInputs) -> tuple[int, ...]:
    if norm in ("layer_norm", "rms_norm"):
        return core.trailing_axes(inputs.x.ndim, len(inputs.normalized_shape))
    return (1,)


def spec_forward(norm: str, inputs: NormInputs) -> np.ndarray:
    """The spec's output for this call, in float64."""
    x, w, b = inputs.x, _f64(inputs.weight), _f64(inputs.bias)
    if norm == "batch_norm":
        if inputs.training:
            return spec.batch_norm_training(x, eps=inputs.eps, weight=w, bias=b).y
        return _evaluation(x, inputs, w, b)
    if norm == "instance_norm":
        if inputs.training:
            return spec.instance_norm(x, eps=inputs.eps, weight=w, bias=b)
        return _evaluation(x, inputs, w, b)
    if norm == "layer_norm":
        return spec.layer_norm(
            x, normalized_shape=inputs.normalized_shape, eps=inputs.eps, weight=w, bias=b
        )
    if norm == "group_norm":
        return spec.group_norm(x, num_groups=inputs.num_groups, eps=inputs.eps, weight=w, bias=b)
    if norm == "rms_norm":
        return spec.rms_norm(x, normalized_shape=inputs.normalized_shape, eps=inputs.eps, weight=w)
    if norm == "weight_norm":
        return spec.weight_norm(x, w, dim=inputs.dim)
    raise ValueError(f"unknown norm {norm!r}")


def _evaluation(x, inputs: NormInputs, w, b) -> np.ndarray:
    return spec.batch_norm_evaluation(
        x,
        running_mean=_f64(inputs.running_mean),
        running_var=_f64(inputs.running_var),
        eps=inputs.eps,
        weight=w,
        bias=b,
    )


def spec_vjp(norm: str, inputs: NormInputs, grad_y: np.ndarray):
    """The spec's gradients for this call, in float64."""
    x, w, e = inputs.x, _f64(inputs.weight), inputs.eps
    if norm in ("batch_norm", "instance_norm") and not inputs.training:
        return spec.batch_norm_evaluation_vjp(
            x,
            grad_y,
            running_mean=_f64(inputs.running_mean),
            running_var=_f64(inputs.running_var),
            eps=e,
            weight=w,
        )
    if norm == "batch_norm":
        return spec.batch_norm_training_vjp(x, grad_y, eps=e, weight=w)
    if norm == "instance_norm":
        return spec.instance_norm_vjp(x, grad_y, eps=e, weight=w)
    if norm == "layer_norm":
        return spec.layer_norm_vjp(
            x, grad_y, normalized_shape=inputs.normalized_shape, eps=e, weight=w
        )
    if norm == "group_norm":
        return spec.group_norm_vjp(x, grad_y, num_groups=inputs.num_groups, eps=e, weight=w)
    if norm == "rms_norm":
        return spec.rms_norm_vjp(
            x, grad_y, normalized_shape=inputs.normalized_shape, eps=e, weight=w
        )
    if norm == "weight_norm":
        return spec.weight_norm_vjp(x, w, grad_y, dim=inputs.dim)
    raise ValueError(f"unknown norm {norm!r}")


def standardized(norm: str, inputs: NormInputs, p: Precision) -> tolerance.Standardized:
    """The standardized values of the call and their bounds, expanded to the shape of x."""
    view, axes = pooled_sets(norm, inputs)
    if norm == "rms_norm":
        s = tolerance.rms_scaled(view, axes, inputs.eps, p)
    elif axes is None:
        stats = lambda a: core.along(a, view.ndim, (1,))
        s = tolerance.fixed_statistics(
            view, stats(inputs.running_mean), stats(inputs.running_var), inputs.eps, p
        )
    else:
        s = tolerance.standardized(view, axes, inputs.eps, p)
    full = lambda a: np.broadcast_to(a, view.shape).reshape(inputs.x.shape)
    return tolerance.Standardized(
        full(s.x_hat), full(s.inv_sigma), full(s.x_hat_error), full(s.sigma_rel_error)
    )


def forward(norm: str, inputs: NormInputs, p: Precision) -> Expected:
    """The spec's output and the bound on a correct backend's error."""
    value = spec_forward(norm, inputs)
    if norm == "weight_norm":
        _, bound = tolerance.weight_norm_bounds(
            core.as_float64(inputs.x), _f64(inputs.weight), _weight_norm_axes(inputs), p
        )
        return Expected.computed(value, bound, p)
    features = _feature_axes(norm, inputs)
    param = lambda a: None if a is None else core.along(a, inputs.x.ndim, features)
    s = standardized(norm, inputs, p)
    return Expected.computed(
        value, tolerance.affine_bound(s, param(inputs.weight), param(inputs.bias), p), p
    )


def vjp(norm: str, inputs: NormInputs, grad_y: np.ndarray, p: Precision) -> dict[str, Expected]:
    """The spec's gradients ("x", and "weight", "bias" where present) with their bounds."""
    grad_y = core.as_float64(grad_y)
    grads = spec_vjp(norm, inputs, grad_y)
    if norm == "weight_norm":
        dv_bound, dg_bound = tolerance.weight_norm_vjp_bounds(
            core.as_float64(inputs.x), _f64(inputs.weight), grad_y, _weight_norm_axes(inputs), p
        )
        return {
            "x": Expected.computed(grads.x, dv_bound, p),
            "weight": Expected.computed(grads.weight, dg_bound, p),
        }
    features = _feature_axes(norm, inputs)
    s = standardized(norm, inputs, p)
    g = (
        grad_y
        if inputs.weight is None
        else grad_y * core.along(inputs.weight, grad_y.ndim, features)
    )
    view, axes = pooled_sets(norm, inputs)
    as_view = lambda a: a.reshape(view.shape)
    sv = tolerance.Standardized(
        as_view(s.x_hat), as_view(s.inv_sigma), as_view(s.x_hat_error), as_view(s.sigma_rel_error)
    )
    if norm == "rms_norm":
        x_bound = tolerance.rms_vjp_bound(sv, as_view(g), as_view(grads.x), axes, p)
    else:
        x_bound = tolerance.standardized_vjp_bound(sv, as_view(g), as_view(grads.x), axes, p)
    result = {"x": Expected.computed(grads.x, x_bound.reshape(grad_y.shape), p)}
    if inputs.weight is not None:
        dw_bound, db_bound = tolerance.parameter_grad_bounds(
            s, grad_y, core.all_but(grad_y.ndim, features), p
        )
        result["weight"] = Expected.computed(grads.weight, dw_bound, p)
        if grads.bias is not None and norm != "rms_norm":
            result["bias"] = Expected.computed(grads.bias, db_bound, p)
    return result


def _weight_norm_axes(inputs: NormInputs) -> tuple[int, ...]:
    ndim = inputs.x.ndim
    return tuple(range(ndim)) if inputs.dim is None else core.all_but(ndim, (inputs.dim,))


def training(norm: str, run: TrainingRun, p: Precision) -> ExpectedTraining:
    """The spec's recurrence over `run.batches`, with bounds accumulated step by step."""
    running = spec.RunningStatistics(_f64(run.initial_mean), _f64(run.initial_var), 0)
    mean_error = np.zeros_like(running.mean)
    var_error = np.zeros_like(running.var)
    outputs = []
    for batch in run.batches:
        inputs = NormInputs(batch, run.eps, run.weight, run.bias)
        outputs.append(forward(norm, inputs, p))
        if norm == "batch_norm":
            stats = spec.batch_norm_training(batch, eps=run.eps)
            axes = (0, *core.spatial_axes(batch.ndim))
            reduce = lambda a: a.reshape(-1)
        else:
            stats = spec.instance_norm_batch_statistics(batch)
            axes = core.spatial_axes(batch.ndim)
            reduce = lambda a: a.mean(axis=0).reshape(-1)
        d_mean, d_var = tolerance.batch_statistics_bounds(core.as_float64(batch), axes, p)
        new = spec.running_statistics_update(
            running,
            stats,
            momentum=run.momentum,
            momentum_weighs=run.momentum_weighs,
            running_var_estimator=run.running_var_estimator,
        )
        a = spec.weight_of_new_statistic(run.momentum, run.momentum_weighs, new.batches_seen)
        bessel = stats.count / (stats.count - 1) if run.running_var_estimator == "unbiased" else 1
        mean_error = tolerance.running_update_bound(
            running.mean, mean_error, stats.mean, reduce(d_mean), a, p
        )
        var_error = tolerance.running_update_bound(
            running.var, var_error, stats.var * bessel, reduce(d_var) * bessel, a, p
        )
        running = new
    return ExpectedTraining(
        tuple(outputs),
        Expected.computed(running.mean, mean_error, p),
        Expected.computed(running.var, var_error, p),
        running.batches_seen,
    )
