"""What a backend should return for a call: the spec's value and the tolerance model's bound.

This is the one place that maps a norm call in the adapter vocabulary (`NormInputs`,
`TrainingRun`) onto the spec, through its table `spec.NORMS`, and pairs each expected value
with its elementwise error bound for the backend's precision. The bounds take the statistics
the spec used (`spec.Normalized`) rather than computing them again.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from normspec import core, spec, tolerance
from normspec.tolerance import Precision
from normspec.vocabulary import Gradients, NormInputs, TrainingRun


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
    #: the exact running variance after each step but the last: the state a layer stores
    #: between steps (tolerance.stored_state_out_of_range)
    running_var_between_steps: tuple[np.ndarray, ...] = ()


def _f64(a: np.ndarray | None) -> np.ndarray | None:
    return None if a is None else core.as_float64(a)


def _row(norm: str) -> spec.Norm:
    if norm not in spec.NORMS:
        raise ValueError(f"unknown norm {norm!r}; allowed: {sorted(spec.NORMS)}")
    return spec.NORMS[norm]


def _evaluating(row: spec.Norm, inputs: NormInputs) -> bool:
    """Whether the call normalizes with its running statistics instead of the batch's."""
    return row.evaluation is not None and not inputs.training


def _keywords(inputs: NormInputs, names: tuple[str, ...]) -> dict:
    """The named fields of `inputs`, arrays in float64: the keyword arguments of a spec call."""
    fields = {name: getattr(inputs, name) for name in names}
    return {n: _f64(v) if isinstance(v, np.ndarray) else v for n, v in fields.items()}


_RUNNING = ("running_mean", "running_var", "eps", "weight")


def pooled(norm: str, inputs: NormInputs) -> spec.PooledSets:
    """The pooled sets of this call (reduction axes, feature axes, parameter shape)."""
    row = _row(norm)
    return row.sets(np.shape(inputs.x), **_keywords(inputs, row.structure))


def pooled_sets(norm: str, inputs: NormInputs) -> tuple[np.ndarray, tuple[int, ...] | None]:
    """x in float64, viewed so that each pooled set S is explicit, and the axes of S (None when
    running statistics are used). Reshape any array shaped like x with `.reshape(view.shape)`
    to see it pooled the same way."""
    x = core.as_float64(inputs.x)
    if _evaluating(_row(norm), inputs):
        return x, None
    sets = pooled(norm, inputs)
    return sets.of(x), sets.axes


def normalized(norm: str, inputs: NormInputs) -> spec.Normalized:
    """The spec's output for this call with the batch statistics it used."""
    row = _row(norm)
    return row.forward(inputs.x, **_keywords(inputs, row.parameters))


def spec_forward(norm: str, inputs: NormInputs) -> np.ndarray:
    """The spec's output for this call, in float64."""
    row = _row(norm)
    if _evaluating(row, inputs):
        return row.evaluation(inputs.x, **_keywords(inputs, (*_RUNNING, "bias")))
    return normalized(norm, inputs).y


def spec_vjp(norm: str, inputs: NormInputs, grad_y: np.ndarray) -> Gradients:
    """The spec's gradients for this call, in float64."""
    row = _row(norm)
    if _evaluating(row, inputs):
        return row.evaluation_vjp(inputs.x, grad_y, **_keywords(inputs, _RUNNING))
    return row.vjp(inputs.x, grad_y, **_keywords(inputs, row.vjp_parameters))


def standardized(
    norm: str, inputs: NormInputs, p: Precision, stats: spec.Normalized | None = None
) -> tolerance.Standardized:
    """The standardized values of the call and their bounds, expanded to the shape of x.

    `stats` are the spec's statistics for this call, computed here when not given.
    """
    row, x = _row(norm), core.as_float64(inputs.x)
    if _evaluating(row, inputs):
        along = lambda a: core.along(a, x.ndim, pooled(norm, inputs).features)
        s = tolerance.fixed_statistics(
            x, along(inputs.running_mean), along(inputs.running_var), inputs.eps, p
        )
        view_shape = x.shape
    else:
        if stats is None:
            stats = normalized(norm, inputs)
        sets = stats.sets
        view, mean, var = sets.of(x), sets.broadcastable(stats.mean), sets.broadcastable(stats.var)
        if row.centered:
            s = tolerance.standardized(view, mean, var, sets.axes, inputs.eps, p)
        else:
            s = tolerance.rms_scaled(view, var, sets.axes, inputs.eps, p)
        view_shape = sets.view
    full = lambda a: core.broadcast_reshape(a, view_shape, x.shape)
    return tolerance.Standardized(
        full(s.x_hat), full(s.inv_sigma), full(s.x_hat_error), full(s.sigma_rel_error)
    )


def forward(norm: str, inputs: NormInputs, p: Precision) -> Expected:
    """The spec's output and the bound on a correct backend's error."""
    if _evaluating(_row(norm), inputs):
        return _expected_output(norm, inputs, spec_forward(norm, inputs), None, p)
    stats = normalized(norm, inputs)
    return _expected_output(norm, inputs, stats.y, stats, p)


def _expected_output(
    norm: str, inputs: NormInputs, value: np.ndarray, stats: spec.Normalized | None, p: Precision
) -> Expected:
    if norm == "weight_norm":  # a reparametrization, with an error analysis of its own
        _, bound = tolerance.weight_norm_bounds(
            core.as_float64(inputs.x), _f64(inputs.weight), pooled(norm, inputs).axes, p
        )
        return Expected.computed(value, bound, p)
    features = pooled(norm, inputs).features
    param = lambda a: None if a is None else core.along(a, inputs.x.ndim, features)
    s = standardized(norm, inputs, p, stats)
    return Expected.computed(
        value, tolerance.affine_bound(s, param(inputs.weight), param(inputs.bias), p), p
    )


def vjp(norm: str, inputs: NormInputs, grad_y: np.ndarray, p: Precision) -> dict[str, Expected]:
    """The spec's gradients ("x", and "weight", "bias" where present) with their bounds."""
    grad_y = core.as_float64(grad_y)
    grads = spec_vjp(norm, inputs, grad_y)
    row, sets = _row(norm), pooled(norm, inputs)
    if norm == "weight_norm":
        dv_bound, dg_bound = tolerance.weight_norm_vjp_bounds(
            core.as_float64(inputs.x), _f64(inputs.weight), grad_y, sets.axes, p
        )
        return {
            "x": Expected.computed(grads.x, dv_bound, p),
            "weight": Expected.computed(grads.weight, dg_bound, p),
        }
    s = standardized(norm, inputs, p)
    g = (
        grad_y
        if inputs.weight is None
        else grad_y * core.along(inputs.weight, grad_y.ndim, sets.features)
    )
    evaluating = _evaluating(row, inputs)
    as_view = (lambda a: a) if evaluating else sets.of
    axes = None if evaluating else sets.axes
    sv = tolerance.Standardized(
        as_view(s.x_hat), as_view(s.inv_sigma), as_view(s.x_hat_error), as_view(s.sigma_rel_error)
    )
    if row.centered:
        x_bound = tolerance.standardized_vjp_bound(sv, as_view(g), as_view(grads.x), axes, p)
    else:
        x_bound = tolerance.rms_vjp_bound(sv, as_view(g), as_view(grads.x), axes, p)
    result = {"x": Expected.computed(grads.x, x_bound.reshape(grad_y.shape), p)}
    if inputs.weight is not None:
        dw_bound, db_bound = tolerance.parameter_grad_bounds(
            s, grad_y, core.all_but(grad_y.ndim, sets.features), p
        )
        result["weight"] = Expected.computed(grads.weight, dw_bound, p)
        if grads.bias is not None and row.bias:
            result["bias"] = Expected.computed(grads.bias, db_bound, p)
    return result


def training(norm: str, run: TrainingRun, p: Precision) -> ExpectedTraining:
    """The spec's recurrence over `run.batches`, with bounds accumulated step by step.

    Each step computes its batch statistics once (`normalized`): the output, its bound, what
    the running statistics are fed and that feed's bound all take them.
    """
    running = spec.RunningStatistics(_f64(run.initial_mean), _f64(run.initial_var), 0)
    mean_error = np.zeros_like(running.mean)
    var_error = np.zeros_like(running.var)
    outputs, between = [], []
    for batch in run.batches:
        inputs = NormInputs(batch, run.eps, run.weight, run.bias)
        stats = normalized(norm, inputs)
        outputs.append(_expected_output(norm, inputs, stats.y, stats, p))
        sets, fed = stats.sets, spec.batch_statistics(stats)
        d_mean, d_var = tolerance.batch_statistics_bounds(
            sets.of(core.as_float64(batch)),
            sets.broadcastable(stats.mean),
            sets.broadcastable(stats.var),
            sets.axes,
            p,
        )
        d_mean, d_var = (spec.per_channel(norm, sets.per_set(d)) for d in (d_mean, d_var))
        new = spec.running_statistics_update(
            running,
            fed,
            momentum=run.momentum,
            momentum_weighs=run.momentum_weighs,
            running_var_estimator=run.running_var_estimator,
        )
        a = spec.weight_of_new_statistic(run.momentum, run.momentum_weighs, new.batches_seen)
        bessel = fed.count / (fed.count - 1) if run.running_var_estimator == "unbiased" else 1
        mean_error = tolerance.running_update_bound(
            running.mean, mean_error, fed.mean, d_mean, a, p
        )
        var_error = tolerance.running_update_bound(
            running.var, var_error, fed.var * bessel, d_var * bessel, a, p
        )
        running = new
        between.append(running.var)
    return ExpectedTraining(
        tuple(outputs),
        Expected.computed(running.mean, mean_error, p),
        Expected.computed(running.var, var_error, p),
        running.batches_seen,
        tuple(between[:-1]),
    )
