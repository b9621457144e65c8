"""Differential testing: every pair of backends agrees on the same inputs.

Both backends receive the same call in normspec's vocabulary; their adapters map layouts
and conventions. They must agree within the sum of their two bounds from the tolerance
model, each for its own precision; the worst error / bound is recorded per pair, norm and
dtype. Conventions are mapped: momentum by each adapter, a running variance that is biased in
one and unbiased in the other through the spec's difference between the two.

Since the pair's bound is the sum of the members' bounds against the spec, two backends can
disagree only where one of them leaves its own bound. Where that member has a known deviation
on the same comparison (properties/known_deviations.toml), the input is discarded: the finding
is reported once, as the member's strict xfail, and every other disagreement fails.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from hypothesis import HealthCheck, given, note, reject, settings
from hypothesis import strategies as st

from normspec import reference
from normspec.reference import Expected
from normspec.vocabulary import NORMS
from properties import strategies
from properties.assertions import within
from properties.helpers import as64, assume_defined, expected_forward

#: An upstream gradient dL/dy, given the output's shape where it is used.
UPSTREAM = strategies.upstream_gradients()


def _common_dtypes(pair, norm: str) -> tuple[str, ...]:
    common = tuple(d for d in strategies.DTYPES if all(b.supports(norm, d) for b in pair))
    if not common:
        pytest.skip(f"not provided: {pair[0].name} and {pair[1].name} share no dtype for {norm}")
    return common


def _both_train(pair, norm: str) -> bool:
    return all(norm in b.trains for b in pair)


def _calls(pair, norm: str) -> st.SearchStrategy:
    """Calls both backends support: a common dtype, and evaluation mode only where both
    have it."""
    dtypes = _common_dtypes(pair, norm)
    if norm == "batch_norm" or (norm == "instance_norm" and _both_train(pair, norm)):
        return strategies.training_or_evaluation(norm, pair[0], dtypes=dtypes)
    return strategies.cases(norm, pair[0], dtypes=dtypes)


def _inputs(norm: str, case):
    """The case's inputs, if its spec is defined."""
    inputs = case.inputs()
    assume_defined(norm, inputs)
    return inputs


def _name(pair) -> str:
    return f"{pair[1].name} against {pair[0].name}"


#: `deviating_members` is a function-scoped fixture whose value (a dict of reasons) is the same
#: for every example of a test, so reusing it across examples is correct.
reuses_deviating_members = settings(suppress_health_check=[HealthCheck.function_scoped_fixture])


def discard_known_deviations(
    deviating: dict[str, str], results: list[tuple[str, np.ndarray, Expected]], dtype: str
) -> None:
    """Discard the input if a member with a known deviation (`deviating`: name -> reason)
    leaves its bound against the spec on it: (name, observed, expected) per result."""
    for name, observed, expected in results:
        if name in deviating and not within(observed, expected, dtype):
            note(f"{name} leaves its bound here: {deviating[name]}")
            reject()


@pytest.mark.norms(*NORMS)
@given(data=st.data())
@reuses_deviating_members
def test_backends_agree_on_the_forward_output(backend_pair, norm, data, deviating_members, check):
    """|y_a - y_b| <= B_a + B_b elementwise, B each backend's bound against the spec."""
    for case in check.each(data, _calls(backend_pair, norm)):
        with check.case(case):
            inputs = _inputs(norm, case)
            expected = [expected_forward(b, norm, inputs) for b in backend_pair]
            outputs = [b.forward(norm, inputs) for b in backend_pair]
            discard_known_deviations(
                deviating_members,
                [(b.name, y, e) for b, y, e in zip(backend_pair, outputs, expected, strict=True)],
                case.dtype,
            )
            check.within(
                outputs[1],
                Expected(as64(outputs[0]), expected[0].bound + expected[1].bound),
                what=f"forward output of {_name(backend_pair)}",
                case=case,
                dtype=case.dtype,
            )


@pytest.mark.norms(*NORMS)
@given(data=st.data())
@reuses_deviating_members
def test_backends_agree_on_the_vjp(backend_pair, norm, data, deviating_members, check):
    """|dL/dz_a - dL/dz_b| <= B_a + B_b for z = x and the affine parameters."""
    for case, recipe in check.each(data, _calls(backend_pair, norm), UPSTREAM):
        with check.case(case):
            inputs = _inputs(norm, case)
            grad_y = strategies.upstream(recipe, case).build().astype(inputs.x.dtype)
            bounds = [
                reference.vjp(norm, inputs, as64(grad_y), check.precision(b, case.dtype))
                for b in backend_pair
            ]
            grads = [b.vjp(norm, inputs, grad_y) for b in backend_pair]
            discard_known_deviations(
                deviating_members,
                [
                    (b.name, getattr(g, name), e[name])
                    for b, g, e in zip(backend_pair, grads, bounds, strict=True)
                    for name in e
                ],
                case.dtype,
            )
            for name in bounds[0]:
                check.within(
                    getattr(grads[1], name),
                    Expected(
                        as64(getattr(grads[0], name)), bounds[0][name].bound + bounds[1][name].bound
                    ),
                    what=f"dL/d{name} of {_name(backend_pair)}",
                    case=case,
                    dtype=case.dtype,
                )


@pytest.mark.norms("batch_norm", "instance_norm")
@given(data=st.data())
@reuses_deviating_members
def test_backends_agree_on_the_running_statistics(
    backend_pair, norm, data, deviating_members, check
):
    """After the same k training steps, running_mean and running_var agree within B_a + B_b,
    for a momentum and convention both backends support. Where their running variances differ
    in convention (biased in one, unbiased in the other), each runs its own, and b's running
    variance is mapped to a's: r_b + (R_a - R_b), with R the spec's running variance under
    each convention (the Bessel factor of every step, weighted by the momentum)."""
    first, second = backend_pair
    if not _both_train(backend_pair, norm):
        pytest.skip(
            f"not provided: {first.name} and {second.name} do not both track "
            f"running statistics for {norm}"
        )
    common = tuple(
        e
        for e in first.conventions.running_var_estimators
        if e in second.conventions.running_var_estimators
    )
    training = strategies.training_cases(
        norm,
        first,
        dtypes=_common_dtypes(backend_pair, norm),
        estimators=common or first.conventions.running_var_estimators,
        cumulative_average=all(b.conventions.cumulative_average for b in backend_pair),
    )
    for case in check.each(data, training):
        with check.case(case):
            run = case.run()
            runs = [
                run,
                run if common else replace(run, running_var_estimator=_own_estimator(second)),
            ]
            results = [b.train(norm, r) for b, r in zip(backend_pair, runs, strict=True)]
            expected = [
                reference.training(norm, r, check.precision(b, case.dtype))
                for b, r in zip(backend_pair, runs, strict=True)
            ]
            discard_known_deviations(
                deviating_members,
                [
                    (b.name, getattr(r, field), getattr(e, field))
                    for b, r, e in zip(backend_pair, results, expected, strict=True)
                    for field in ("running_mean", "running_var")
                ],
                case.dtype,
            )
            miscounted = [
                b.name
                for b, r, e in zip(backend_pair, results, expected, strict=True)
                if b.name in deviating_members and r.batches_seen != e.batches_seen
            ]
            if not miscounted:  # a count known to be wrong is the member's own xfail
                check.equal(
                    results[1].batches_seen,
                    results[0].batches_seen,
                    what=f"batches seen by {_name(backend_pair)}",
                    case=case,
                )
            for field in ("running_mean", "running_var"):
                mapped = as64(getattr(results[1], field))
                mapped += getattr(expected[0], field).value - getattr(expected[1], field).value
                bound = getattr(expected[0], field).bound + getattr(expected[1], field).bound
                check.within(
                    mapped,
                    Expected(as64(getattr(results[0], field)), bound),
                    what=f"{field} of {_name(backend_pair)}"
                    + ("" if common else f" (mapped from {runs[1].running_var_estimator})"),
                    case=case,
                    dtype=case.dtype,
                )


def _own_estimator(backend) -> str:
    return backend.conventions.running_var_estimators[0]
