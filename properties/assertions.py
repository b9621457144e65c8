"""Assertions whose failure messages are written for the person who reads them at 2 a.m.

Every property receives a `Check` (the `check` fixture): the assertions of one property run,
bound to what it runs (property, backend, norm, profile) and to the run's `Recorder`. Every
comparison goes through `Check.within`: it checks an observed array against an expected one
elementwise under a bound from the tolerance model, records the worst error / bound ratio for
the precision table, and on failure names the norm, the backend, the property, the worst
element, the observed and expected values, the error, the bound, the case (whose repr
rebuilds it) and a one-line reproduction.

A property checks several cases per Hypothesis example (`Check.each`, one draw of a list of
cases), each inside `Check.case`: an `assume` or a backend's refusal there discards that case
only, and an example whose every case was discarded is discarded as a whole, as Hypothesis
discards one whose single case was.

Comparisons are NaN-aware: a NaN or an infinity where the expected value is finite is a
failure, and a NaN agrees with a NaN only where the spec itself is undefined (its value and
its bound NaN, 0/0); the one infinity allowed is the one a result rounds to when its exact
value may exceed the dtype's largest finite number.
"""

from __future__ import annotations

import contextlib
import re
import shlex
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np
from hypothesis import currently_in_test_context, reject, target
from hypothesis import strategies as st
from hypothesis.control import current_build_context
from hypothesis.errors import UnsatisfiedAssumption

from backends.protocol import Backend
from normspec.reference import Expected
from normspec.tolerance import LARGEST_FINITE, Precision
from properties.recording import Recorder
from properties.strategies import several

#: hypothesis.target takes finite numbers: an infinite error / bound (a NaN where a number is
#: expected) is targeted as this.
TARGET_CAP = 1e300
_NUMBERS = re.compile(r"[-+]?(?:\d+\.?\d*|\.\d+)(?:e[-+]?\d+)?|\[[^]]*\]")


def precision(backend: Backend, dtype: str, norm: str) -> Precision:
    """The storage, accumulation and statistics dtypes of `backend` for `norm` on inputs of
    `dtype`."""
    return Precision(
        storage=dtype,
        accumulation=backend.accumulation_dtype(dtype),
        statistics=backend.statistics_dtype(dtype, norm),
    )


def error_ratio(
    observed: np.ndarray, expected: np.ndarray, bound: np.ndarray, largest: float = np.inf
) -> np.ndarray:
    """|observed - expected| / bound elementwise.

    0 where both are equal numbers; where the spec itself is undefined (0/0: the expected
    value and its bound are NaN) and so is the observed; or where the expected value may
    exceed the dtype's `largest` finite value and the observed is the infinity of its sign it
    rounds to. inf where either is NaN otherwise (a NaN never equals a NaN whose bound is a
    number: two backends that both return NaN do not agree), where the observed is infinite
    and the expected is not, or where the bound is 0 and they differ.
    """
    with np.errstate(invalid="ignore"):
        error = np.abs(observed - expected)
    overflow = (
        (np.abs(expected) + bound >= largest)
        & np.isinf(observed)
        & (np.sign(observed) == np.sign(expected))
    )
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(error == 0, 0.0, error / bound)
    undefined = np.isnan(observed) & np.isnan(expected) & np.isnan(bound)
    ratio = np.where(overflow | undefined, 0.0, ratio)
    return np.where(np.isnan(ratio), np.inf, ratio)


def within(observed: np.ndarray, expected: Expected, dtype: str) -> bool:
    """Whether |observed - expected.value| <= expected.bound everywhere (see error_ratio)."""
    exp = np.asarray(expected.value, dtype=np.float64)
    bound = np.broadcast_to(np.asarray(expected.bound, dtype=np.float64), exp.shape)
    ratio = error_ratio(np.asarray(observed, dtype=np.float64), exp, bound, LARGEST_FINITE[dtype])
    return bool(ratio.max(initial=0.0) <= 1.0)


@dataclass
class Check:
    """The assertions of one property run, and what they record."""

    property: str
    backend: str
    norm: str
    recorder: Recorder
    profile: str = "ci"
    #: the distinct cases this run checked (each drawn case that reached a comparison)
    cases: int = 0
    #: the drawn cases an assume() or a refusal discarded
    discarded: int = 0
    #: comparisons that left their bound where the input's intermediates are out of range
    #: (normspec/tolerance.py): reason -> {"count", "worst", "case"}; declared limitations
    limitations: dict[str, dict] = field(default_factory=dict)
    _last_case: object = field(default=None, repr=False)
    _target_context: object = field(default=None, repr=False)
    _targets: dict[str, int] = field(default_factory=dict, repr=False)
    _kept: int = field(default=0, repr=False)

    def each(self, data: st.DataObject, *strategies: st.SearchStrategy) -> Iterator:
        """The cases of this example: one draw of a list of cases (of tuples, one value of
        each strategy, when given several), each to be checked inside `case`. If every one
        is discarded, so is the example."""
        self._kept = 0
        yield from data.draw(several(*strategies), label="cases")
        if not self._kept:
            reject()

    @contextlib.contextmanager
    def case(self, case: object) -> Iterator[None]:
        """Check `case`: an assume() or a backend's refusal inside discards this case, not
        the other cases of its example."""
        self.recorder.checking(case)
        try:
            yield
        except UnsatisfiedAssumption:
            self.discarded += 1
        else:
            self._kept += 1

    def precision(self, backend: Backend, dtype: str, norm: str | None = None) -> Precision:
        """`precision` for this run's norm unless another is named."""
        return precision(backend, dtype, norm or self.norm)

    def reproduction(self) -> str:
        """The command that reruns this property, deterministically, under its profile."""
        backends = " ".join(f"--backend {shlex.quote(b)}" for b in self.backend.split(" vs "))
        return (
            f"normspec check {backends} --norm {self.norm} --property {self.property} "
            f"--profile {self.profile}"
        )

    def observe(
        self,
        backend: str,
        convention: str,
        declared: object,
        observed: object,
        agrees: bool | None = None,
    ) -> None:
        """Record what `backend` declared for `convention` and what was observed (see
        `Recorder.observe`)."""
        self.recorder.observe(backend, convention, declared, observed, agrees)

    def within(
        self,
        observed: np.ndarray,
        expected: Expected,
        *,
        what: str,
        case: object,
        dtype: str,
        note: str = "",
        beyond: str | None = None,
    ) -> float:
        """Assert |observed - expected.value| <= expected.bound elementwise; return the worst
        error / bound ratio (recorded for the precision table).

        `beyond`: why the input's intermediates are out of the accumulation dtype's range
        (tolerance.intermediates_out_of_range), or None. There the bound says nothing, and a
        comparison that leaves it is a declared limitation: counted in `limitations` (and the
        report), not a failure, and not in the precision table."""
        __tracebackhide__ = True
        self._count(case)
        obs = np.asarray(observed, dtype=np.float64)
        exp = np.asarray(expected.value, dtype=np.float64)
        bound = np.broadcast_to(np.asarray(expected.bound, dtype=np.float64), exp.shape)
        head = f"{self.norm} on {self.backend}, {self.property}: {what}"
        if obs.shape != exp.shape:
            raise AssertionError(
                f"{head} has shape {obs.shape}, expected {exp.shape}\n"
                f"  case: {case!r}\n  reproduce: {self.reproduction()}"
            )
        ratio = error_ratio(obs, exp, bound, LARGEST_FINITE[dtype])
        worst = float(ratio.max(initial=0.0))
        if beyond is not None:
            if worst > 1.0:
                self._limitation(f"{what}: {beyond} ({dtype})", worst, case)
            return worst
        self.recorder.precision(
            (self.property, self.backend, self.norm, dtype, what), worst, repr(case)
        )
        # guide the search toward the worst inputs; ci does not search (and targets would
        # change how its derandomized runs shrink)
        if self.profile != "ci" and currently_in_test_context():
            target(min(worst, TARGET_CAP), label=self._target_label(what, dtype))
        if worst <= 1.0:
            return worst
        index = tuple(int(i) for i in np.unravel_index(int(np.argmax(ratio)), ratio.shape))
        bad = int(np.count_nonzero(ratio > 1))
        nonfinite = int(np.count_nonzero(~np.isfinite(obs) & np.isfinite(exp)))
        raise AssertionError(
            f"{head} is outside its error bound at {bad} of {ratio.size} elements"
            + (f" ({nonfinite} of them NaN or inf where a number is expected)" if nonfinite else "")
            + f"\n  worst element {index}: observed {obs[index]!r}, expected {exp[index]!r}\n"
            f"  error {abs(obs[index] - exp[index]):.3e} = {worst:.3g} x its bound "
            f"{bound[index]:.3e} ({dtype})\n"
            + (f"  {note}\n" if note else "")
            + f"  case: {case!r}\n  reproduce: {self.reproduction()}"
        )

    def _limitation(self, reason: str, worst: float, case: object) -> None:
        entry = self.limitations.setdefault(reason, {"count": 0, "worst": 0.0, "case": ""})
        entry["count"] += 1
        if worst > entry["worst"] or not entry["case"]:
            entry["worst"], entry["case"] = worst, repr(case)

    def equal(self, observed: object, expected: object, *, what: str, case: object) -> None:
        """Assert an exact equality (counts, shapes, flags) with the same context as above."""
        __tracebackhide__ = True
        self._count(case)
        if observed != expected:
            raise AssertionError(
                f"{self.norm} on {self.backend}, {self.property}: {what} is {observed!r}, "
                f"expected {expected!r}\n  case: {case!r}\n"
                f"  reproduce: {self.reproduction()}"
            )

    def _target_label(self, what: str, dtype: str) -> str:
        """The label of a comparison's error / bound for hypothesis.target: `what` without its
        numbers (which vary from example to example), with the dtype; a label repeated within
        one example (a comparison in a loop) is numbered, since Hypothesis takes each once."""
        context = current_build_context()
        if context is not self._target_context:
            self._target_context, self._targets = context, {}
        label = f"error/bound of {_NUMBERS.sub('#', what)} ({dtype})"
        seen = self._targets[label] = self._targets.get(label, 0) + 1
        return label if seen == 1 else f"{label} [{seen}]"

    def _count(self, case: object) -> None:
        if case is not self._last_case:
            self.cases += 1
            self._last_case = case
