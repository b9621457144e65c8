"""Conventions are data: each backend's declared conventions, observed and verified.

Each property probes the framework with its own defaults, records what it observed for the
conventions table, and fails only when the observation contradicts the backend's own
declaration. Two backends that differ are a finding for the table, not a failure.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import pytest

from backends.protocol import NormInputs, Refused, TrainingRun
from normspec import reference
from normspec.reference import Expected
from normspec.tolerance import UNIT_ROUNDOFF
from properties.helpers import as64, require_training
from properties.strategies import numpy_dtype

#: The pooled set of each probe: two values, one pooled set (channels-first shapes).
PROBE_SHAPES = {
    "batch_norm": (2, 1),
    "layer_norm": (1, 2),
    "instance_norm": (1, 1, 2),
    "group_norm": (1, 1, 2),
    "rms_norm": (1, 2),
}
STANDARDIZED = ("batch_norm", "layer_norm", "instance_norm", "group_norm", "rms_norm")


def _probe_dtype(backend) -> str:
    """float64 where the backend has it, for the sharpest observation; else float32."""
    return "float64" if "float64" in backend.dtypes else "float32"


def _declared_eps(backend, norm: str, dtype: str) -> float | None:
    """The declared default eps as a number: "finfo" is the machine epsilon of the dtype the
    backend accumulates `dtype` in."""
    declared = backend.conventions.default_eps.get(norm)
    if declared == "finfo":
        return float(np.finfo(numpy_dtype(backend.accumulation_dtype(dtype))).eps)
    return declared


def _inputs(norm: str, x: np.ndarray, eps: float = 0.0) -> NormInputs:
    trailing = (x.shape[-1],) if norm in ("layer_norm", "rms_norm") else None
    return NormInputs(
        x=x, eps=eps, normalized_shape=trailing, num_groups=1 if norm == "group_norm" else None
    )


@pytest.mark.norms(*STANDARDIZED)
def test_default_eps_is_as_declared(backend, norm, check):
    """The framework's default eps, measured: on the set {-a, a} (RMSNorm: {a, a}) the output
    at a is y = a / sqrt(a^2 + eps), so eps = a^2 / y^2 - a^2. With a^2 = eps_declared the
    measurement errs by at most 64 u eps (a few roundings, each doubled by the squares)."""
    dtype = _probe_dtype(backend)
    declared = _declared_eps(backend, norm, dtype)
    if declared is None:
        check.observe(backend.name, f"default eps: {norm}", "required", "required")
        pytest.skip(f"not provided: {backend.name} has no default eps for {norm}")
    a = np.sqrt(declared)
    values = [a, a] if norm == "rms_norm" else [-a, a]
    x = np.array(values, dtype=np.float64).reshape(PROBE_SHAPES[norm]).astype(numpy_dtype(dtype))
    a = float(as64(x).reshape(-1)[-1])
    y = float(as64(backend.forward_with_defaults(norm, _inputs(norm, x))).reshape(-1)[-1])
    measured = a * a / (y * y) - a * a
    bound = 64 * UNIT_ROUNDOFF[dtype] * declared
    check.observe(
        backend.name,
        f"default eps: {norm}",
        backend.conventions.default_eps.get(norm),
        f"{measured:.3g}",
        agrees=abs(measured - declared) <= bound,
    )
    check.within(
        np.array([measured]),
        Expected(np.array([declared]), np.array([bound])),
        what=f"default eps measured on {{-a, a}} with a = {a:.3g}",
        case=x,
        dtype=dtype,
    )


#: The probe of a backend that has no default momentum (tf.nn): a != 1 - a, so the weight
#: measured tells the two meanings apart; and the eps it is run with.
PROBE_MOMENTUM = 0.3
PROBE_EPS = 1e-5


class DefaultStep(NamedTuple):
    """One training step with the framework's defaults and what it reveals: a, the weight of
    the new statistic, and c, the factor applied to the biased batch variance. `momentum` and
    `eps` are the ones the step ran with: the defaults, or the probe's where there are none."""

    batch: np.ndarray
    mean0: np.ndarray
    var0: np.ndarray
    result: object
    a: float
    bessel: float
    dtype: str
    momentum: float | None
    eps: float


def _one_default_step(backend) -> DefaultStep:
    """One training step from known running statistics, with the framework's defaults; a
    backend without defaults (eps and momentum required) is given the probe's momentum in its
    own declared meaning, untranslated. 2 values per channel, so that the Bessel factor
    n / (n - 1) is 2."""
    dtype = _probe_dtype(backend)
    c = backend.conventions
    rng = np.random.default_rng(7)
    batch = rng.normal(3.0, 2.0, (2, 3)).astype(numpy_dtype(dtype))
    mean0 = np.full(3, 0.5, dtype=numpy_dtype(dtype))
    var0 = np.full(3, 2.0, dtype=numpy_dtype(dtype))
    eps = _declared_eps(backend, "batch_norm", dtype)
    if eps is None:
        momentum, eps = PROBE_MOMENTUM, PROBE_EPS
        run = TrainingRun(
            (batch,), eps, momentum, c.momentum_weighs, c.running_var_estimators[0], mean0, var0
        )
        result = backend.train("batch_norm", run)
    else:
        momentum = c.default_momentum
        result = backend.train_with_defaults("batch_norm", (batch,), mean0, var0)
    x = as64(batch)
    a = (as64(result.running_mean) - 0.5) / (x.mean(axis=0) - 0.5)
    bessel = (as64(result.running_var) - (1 - a) * 2.0) / (a * x.var(axis=0))
    return DefaultStep(
        batch, mean0, var0, result, float(np.mean(a)), float(np.mean(bessel)), dtype, momentum, eps
    )


@pytest.mark.norms("batch_norm")
def test_momentum_is_as_declared(backend, norm, check):
    """The weight a of the new batch statistic in one default training step, measured as
    a = (running_mean_1 - running_mean_0) / (batch_mean - running_mean_0), is the declared
    momentum m if momentum weighs the new statistic and 1 - m if it weighs the old value; the
    running statistics follow the recurrence with the declared defaults. A backend with no
    default momentum is probed with m = PROBE_MOMENTUM, passed as it is."""
    require_training(backend, norm)
    step = _one_default_step(backend)
    batch, a, dtype = step.batch, step.a, step.dtype
    c = backend.conventions
    m = step.momentum
    no_default = c.default_momentum is None and not c.cumulative_average
    meaning = "new" if m is None or np.isclose(a, m) else "old" if np.isclose(a, 1 - m) else "?"
    check.observe(backend.name, "momentum weighs", c.momentum_weighs, meaning)
    if no_default:
        check.observe(backend.name, "default momentum", "required", "required")
    else:
        measured = a if meaning == "new" else 1 - a
        check.observe(
            backend.name,
            "default momentum",
            c.default_momentum,
            f"{measured:.3g}",
            agrees=m is None or bool(np.isclose(measured, m)),
        )
        weight = None if m is None else (m if c.momentum_weighs == "new" else 1 - m)
        check.observe(
            backend.name,
            "weight of the new batch statistic per default step",
            "1 / t" if weight is None else round(weight, 12),
            f"{a:.3g}",
            agrees=bool(np.isclose(a, 1.0 if weight is None else weight)),
        )
    check.equal(
        meaning, c.momentum_weighs, what=f"momentum meaning (a = {a:.6g}, m = {m})", case=batch
    )
    run = TrainingRun(
        (batch,),
        step.eps,
        m,
        c.momentum_weighs,
        c.running_var_estimators[0],
        step.mean0,
        step.var0,
    )
    expected = reference.training(norm, run, check.precision(backend, dtype))
    check.within(
        step.result.running_mean,
        expected.running_mean,
        what="running_mean after one default step",
        case=batch,
        dtype=dtype,
    )
    check.within(
        step.result.running_var,
        expected.running_var,
        what="running_var after one default step",
        case=batch,
        dtype=dtype,
    )


@pytest.mark.norms("batch_norm")
def test_running_variance_estimator_is_as_declared(backend, norm, check):
    """The running variance is fed var_B * c with c = n / (n - 1) (unbiased) or 1 (biased);
    with n = 2, c = (running_var_1 - (1 - a) running_var_0) / (a var_B) is 2 or 1."""
    require_training(backend, norm)
    step = _one_default_step(backend)
    observed = "unbiased" if abs(step.bessel - 2.0) < abs(step.bessel - 1.0) else "biased"
    declared = backend.conventions.running_var_estimators[0]
    check.observe(backend.name, "running variance", declared, observed)
    check.equal(
        observed,
        declared,
        what=f"running variance estimator (c = {step.bessel:.6g})",
        case=step.batch,
    )


@pytest.mark.norms(*STANDARDIZED)
def test_constant_input_with_zero_eps_is_as_declared(backend, norm, check):
    """A pooled set of equal values with eps = 0 is 0 / 0: the framework gives NaN or 0, or
    refuses eps = 0; which one is its convention (RMSNorm: a set of zeros)."""
    dtype = _probe_dtype(backend)
    value = 0.0 if norm == "rms_norm" else 1.5
    x = np.full((2, 2, 3), value, dtype=numpy_dtype(dtype))
    try:
        y = as64(backend.forward(norm, _inputs(norm, x)))
        observed = "nan" if np.all(np.isnan(y)) else "zero" if np.all(y == 0) else "mixed"
    except Refused:
        observed = "refused"
    declared = backend.conventions.zero_variance(norm)
    check.observe(backend.name, f"constant input, eps = 0: {norm}", declared, observed)
    check.equal(observed, declared, what="output of a constant set with eps = 0", case=x)


@pytest.mark.norms("batch_norm")
def test_layout_is_as_declared(backend, norm, check):
    """With the framework's default axis in its declared layout, training-mode BatchNorm of a
    4-D batch normalizes each channel: the adapter's layout mapping matches the framework."""
    dtype = _probe_dtype(backend)
    eps = _declared_eps(backend, norm, dtype)
    x = np.random.default_rng(3).normal(size=(2, 3, 2, 2)).astype(numpy_dtype(dtype))
    if eps is None:  # no defaults (tf.nn): the probe's eps, the layout still the framework's
        eps = PROBE_EPS
        y = backend.forward(norm, _inputs(norm, x, eps))
    else:
        y = backend.forward_with_defaults(norm, _inputs(norm, x))
    inputs = _inputs(norm, x, eps)
    expected = reference.forward(norm, inputs, check.precision(backend, dtype))
    agrees = bool(np.all(np.abs(as64(y) - expected.value) <= expected.bound))
    declared = backend.conventions.layout
    check.observe(backend.name, "layout", declared, declared if agrees else f"not {declared}")
    check.within(
        y,
        expected,
        what=f"default 4-D batch norm in the declared {declared} layout",
        case=x,
        dtype=dtype,
    )
