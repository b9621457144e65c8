"""Assertions whose failure messages are written for the person who reads them at 2 a.m.

Every comparison goes through `assert_within`: it checks an observed array against an
expected one elementwise under a bound from the tolerance model, records the worst
error / bound ratio for the precision table, and on failure names the norm, the backend,
the property, the worst element, the observed and expected values, the error, the bound,
the case (whose repr rebuilds it) and a one-line reproduction.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass

import numpy as np

from backends.protocol import Backend
from normspec.reference import Expected
from normspec.tolerance import LARGEST_FINITE, Precision


@dataclass
class Current:
    """The property being run, set by the conftest for each test."""

    property: str
    backend: str
    norm: str
    profile: str = "ci"


CURRENT = Current(property="?", backend="?", norm="?")

#: (property, backend, norm, dtype, quantity) -> {"worst": ratio, "case": repr}
PRECISION: dict[tuple[str, str, str, str, str], dict] = {}


def precision(backend: Backend, dtype: str, norm: str | None = None) -> Precision:
    """The storage, accumulation and statistics dtypes of `backend` for `norm` (by default
    the current property's) on inputs of `dtype`."""
    norm = norm or CURRENT.norm
    return Precision(
        storage=dtype,
        accumulation=backend.accumulation_dtype(dtype),
        statistics=backend.statistics_dtype(dtype, norm),
    )


def reproduction() -> str:
    """The command that reruns the current property, deterministically, under the ci profile."""
    c = CURRENT
    backends = " ".join(f"--backend {shlex.quote(b)}" for b in c.backend.split(" vs "))
    return (
        f"normspec check {backends} --norm {c.norm} --property {c.property} --profile {c.profile}"
    )


def error_ratio(
    observed: np.ndarray, expected: np.ndarray, bound: np.ndarray, largest: float = np.inf
) -> np.ndarray:
    """|observed - expected| / bound elementwise: 0 where both agree exactly (NaN included)
    or where the expected value may exceed the dtype's `largest` finite value and the backend
    returned the infinity it rounds to; inf where one is NaN and the other is not, or the
    bound is 0 and they differ."""
    with np.errstate(invalid="ignore"):
        error = np.abs(observed - expected)
    both_nan = np.isnan(observed) & np.isnan(expected)
    overflow = (
        (np.abs(expected) + bound >= largest)
        & np.isinf(observed)
        & (np.sign(observed) == np.sign(expected))
    )
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(error == 0, 0.0, error / bound)
    ratio = np.where(both_nan | overflow, 0.0, ratio)
    return np.where(np.isnan(ratio), np.inf, ratio)


def within(observed: np.ndarray, expected: Expected, dtype: str) -> bool:
    """Whether |observed - expected.value| <= expected.bound everywhere (see error_ratio)."""
    exp = np.asarray(expected.value, dtype=np.float64)
    bound = np.broadcast_to(np.asarray(expected.bound, dtype=np.float64), exp.shape)
    ratio = error_ratio(np.asarray(observed, dtype=np.float64), exp, bound, LARGEST_FINITE[dtype])
    return bool(ratio.max(initial=0.0) <= 1.0)


def assert_within(
    observed: np.ndarray, expected: Expected, *, what: str, case: object, dtype: str, note: str = ""
) -> float:
    """Assert |observed - expected.value| <= expected.bound elementwise; return the worst
    error / bound ratio (recorded for the precision table)."""
    obs = np.asarray(observed, dtype=np.float64)
    exp = np.asarray(expected.value, dtype=np.float64)
    bound = np.broadcast_to(np.asarray(expected.bound, dtype=np.float64), exp.shape)
    c = CURRENT
    head = f"{c.norm} on {c.backend}, {c.property}: {what}"
    if obs.shape != exp.shape:
        raise AssertionError(
            f"{head} has shape {obs.shape}, expected {exp.shape}\n"
            f"  case: {case!r}\n  reproduce: {reproduction()}"
        )
    ratio = error_ratio(obs, exp, bound, LARGEST_FINITE[dtype])
    worst = float(ratio.max(initial=0.0))
    _record(dtype, what, worst, case)
    if worst <= 1.0:
        return worst
    index = tuple(int(i) for i in np.unravel_index(int(np.argmax(ratio)), ratio.shape))
    bad = int(np.count_nonzero(ratio > 1))
    raise AssertionError(
        f"{head} is outside its error bound at {bad} of {ratio.size} elements\n"
        f"  worst element {index}: observed {obs[index]!r}, expected {exp[index]!r}\n"
        f"  error {abs(obs[index] - exp[index]):.3e} = {worst:.3g} x its bound "
        f"{bound[index]:.3e} ({dtype})\n"
        + (f"  {note}\n" if note else "")
        + f"  case: {case!r}\n  reproduce: {reproduction()}"
    )


def assert_equal(observed: object, expected: object, *, what: str, case: object) -> None:
    """Assert an exact equality (counts, shapes, flags) with the same context as above."""
    if observed != expected:
        c = CURRENT
        raise AssertionError(
            f"{c.norm} on {c.backend}, {c.property}: {what} is {observed!r}, "
            f"expected {expected!r}\n  case: {case!r}\n"
            f"  reproduce: {reproduction()}"
        )


def _record(dtype: str, what: str, worst: float, case: object) -> None:
    c = CURRENT
    key = (c.property, c.backend, c.norm, dtype, what)
    entry = PRECISION.get(key)
    if entry is None or worst > entry["worst"]:
        PRECISION[key] = {"worst": worst, "case": repr(case)}
