"""The hunt's half inside the pytest child (`-p normspec.hunt.plugin --hunt-deadline T`).

It adds four things to the property suite without the properties knowing:

* Time slices. The budget ends at an absolute time T. Each cell (property x norm x backend)
  gets an equal share of what is left, (T - now) / cells left, recomputed as each cell
  starts, so a cell that ends early (skipped, exhausted, not provided) leaves its time to the
  others. When its slice ends, a cell stops drawing: the example that ends past it raises
  `SliceEnded`, a pytest skip, which Hypothesis re-raises at once, and the cell is reported
  as passed with the examples it ran. A cell that has found a failure shrinks it for at most
  `--hunt-shrink-s` (Hypothesis' own limit on shrinking, set for the cell), then Hypothesis
  replays the smallest failure found. At T the session stops after the running cell.
* A campaign profile: no limit on examples (time bounds the search), one bug per cell, no
  explain phase, and a target phase that ends at the first failure; the database and the
  rest come from the chosen profile.
* A record of every failing example (`hit`) and, for the first one, the one Hypothesis
  reports and a few on the way, the backend call that left its bound (`culprit`,
  normspec/hunt/judge.py) with its arrays saved to `--hunt-dir`: what a reproducer replays.
* Throughput: examples, rejections and failures per cell, time spent drawing, in the
  backends and in the rest of the property (the spec and the comparisons), a `tick` every
  half second while a cell runs; and, in differential cells, `hypothesis.target` on each
  member's error / bound over its best peer's on the same forward input.

Every event goes to the suite's journal (properties/recording.py) as {"hunt": kind, "data":
{...}}, which the runner's crash isolation ignores and the campaign reads.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections import defaultdict
from dataclasses import dataclass, field
from functools import wraps
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import Phase, settings, target
from hypothesis.control import current_build_context
from hypothesis.errors import HypothesisException
from hypothesis.internal.conjecture import engine

from normspec.hunt.judge import Call, Verdict, arrays_of, culprit, judge

#: Seconds a cell that found a failure may spend shrinking it, beyond its slice.
SHRINK_S = 5.0
#: The shortest slice: a cell gets at least this, so that it draws a few examples.
MIN_SLICE_S = 0.05
#: Seconds between two `tick` events of the running cell.
TICK_S = 0.5
#: Seconds between two culprit analyses of one cell while it shrinks.
CULPRIT_EVERY_S = 2.0
#: Backend calls kept per example (the rest is not needed to find the culprit).
MAX_CALLS = 256
#: In a peer ratio, an error / bound below this counts as this: a peer that is exact does not
#: make every other backend's ratio infinite.
PEER_FLOOR = 1e-3


class SliceEnded(pytest.skip.Exception):
    """The cell's time slice is over: stop drawing. Hypothesis re-raises skips at once; the
    plugin reports the cell as passed with the examples it ran."""


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("normspec hunt")
    group.addoption(
        "--hunt-deadline",
        type=float,
        default=None,
        help="hunt until this time (seconds since the epoch), shared equally among the cells",
    )
    group.addoption("--hunt-dir", default=None, help="where the culprit calls' arrays go")
    group.addoption(
        "--hunt-seed",
        type=int,
        default=None,
        help="Hypothesis' seed for every cell (the example database stays in use)",
    )
    group.addoption(
        "--hunt-shrink-s",
        type=float,
        default=SHRINK_S,
        help="seconds a cell that found a failure may spend shrinking it beyond its slice",
    )


@pytest.hookimpl(trylast=True)  # after the suite's conftest built its backends and recorder
def pytest_configure(config: pytest.Config) -> None:
    deadline = config.getoption("--hunt-deadline")
    if deadline is not None:
        directory = Path(config.getoption("--hunt-dir") or ".")
        directory.mkdir(parents=True, exist_ok=True)
        hunter = Hunter(config, deadline, directory, config.getoption("--hunt-shrink-s"))
        hunter.seed = config.getoption("--hunt-seed")
        config.pluginmanager.register(hunter, "normspec-hunter")
        _end_the_target_phase_at_a_failure()


def _end_the_target_phase_at_a_failure() -> None:
    """Make Hypothesis' target phase end as soon as the run has a failure.

    The target phase hill-climbs every target observed (one per comparison, dtype and place
    in the example) to a local maximum, and looks for a failure only once all are climbed; no
    time limit bounds it (the shrinking one does not). A failure met while climbing left the
    cell climbing until the budget stopped it, and a cell stopped so keeps no finding. Here
    the climb's further attempts are refused as overruns (what Hypothesis does with a choice
    sequence too long to run): every climb ends at once, and the run shrinks and reports its
    failure. The shrinker and the generate phase are untouched.
    """
    runner = engine.ConjectureRunner
    if getattr(runner, "_normspec_hunt", False):
        return
    attempt = runner.cached_test_function

    @wraps(attempt)
    def cached_test_function(self, choices, *args, **kwargs):
        if getattr(self, "_current_phase", None) == "target" and self.interesting_test_cases:
            return engine.Overrun
        return attempt(self, choices, *args, **kwargs)

    runner.cached_test_function = cached_test_function
    runner._normspec_hunt = True


@dataclass
class Cell:
    """What one property x norm x backend did in its slice."""

    nodeid: str
    name: str
    members: list[str]
    norm: str
    property: str
    kind: str
    start: float
    end: float
    slice_s: float
    known: dict | None = None
    examples: int = 0
    invalid: int = 0
    failures: int = 0
    first_failure: int | None = None
    first_failure_s: float | None = None
    slice_ended: bool = False
    inner_s: float = 0.0
    draw_s: float = 0.0
    backend_s: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    last_culprit: float = -1e9
    last_tick: float = 0.0

    def record(self) -> dict:
        return {
            "nodeid": self.nodeid,
            "backend": self.name,
            "members": self.members,
            "norm": self.norm,
            "property": self.property,
            "kind": self.kind,
            "known": self.known,
            "examples": self.examples,
            "invalid": self.invalid,
            "failures": self.failures,
            "first_failure": self.first_failure,
            "first_failure_s": self.first_failure_s,
            "slice_s": round(self.slice_s, 3),
            "slice_ended": self.slice_ended,
            "seconds": round(time.monotonic() - self.start, 4),
            "inner_s": round(self.inner_s, 4),
            "draw_s": round(self.draw_s, 4),
            "backend_s": {k: round(v, 4) for k, v in self.backend_s.items()},
        }


class Hunter:
    """The plugin's state: the running cell, the calls and draws of the running example."""

    def __init__(self, config: pytest.Config, deadline: float, directory: Path, shrink_s: float):
        self.config = config
        self.deadline = deadline
        self.directory = directory
        self.shrink_s = shrink_s
        self.recorder = config.normspec_recorder
        self.cell: Cell | None = None
        self.cells_total = 0
        self.cells_started = 0
        self.session: pytest.Session | None = None
        self.calls: list[Call] = []
        self.draws: list[tuple[str | None, Any]] = []
        self.example_worst: tuple[float, tuple | None] = (0.0, None)
        self.seed: int | None = None
        self._campaign_profile()
        for checked in config.normspec_backends:
            checked.unchecked = CallRecorder(checked.unchecked, self)
        self._precision = self.recorder.precision
        self.recorder.precision = self._saw_precision

    # --- setup ------------------------------------------------------------------------------

    def _campaign_profile(self) -> None:
        """The loaded profile (database, deadline, health checks) with time as the only limit
        on examples, one bug per cell, and no explain phase (it reruns the failure)."""
        base = settings.get_profile(settings.get_current_profile_name())
        settings.register_profile(
            "normspec-hunt-campaign",
            parent=base,
            max_examples=10**9,
            report_multiple_bugs=False,
            phases=[Phase.explicit, Phase.reuse, Phase.generate, Phase.target, Phase.shrink],
        )
        settings.load_profile("normspec-hunt-campaign")

    def event(self, kind: str, data: dict) -> None:
        self.recorder.event(hunt=kind, data=data)

    def _saw_precision(self, key: tuple, ratio: float, case: str) -> None:
        if ratio > self.example_worst[0] or self.example_worst[1] is None:
            self.example_worst = (ratio, key)
        self._precision(key, ratio, case)

    # --- pytest hooks -----------------------------------------------------------------------

    def pytest_sessionstart(self, session: pytest.Session) -> None:
        self.session = session

    def pytest_collection_finish(self, session: pytest.Session) -> None:
        # only the cells that will draw share the time: not those of a backend that cannot
        # run here or does not provide the norm, which the suite skips at once
        self.cells_total = sum(1 for item in session.items if _will_draw(item))
        # the process (and group) id: the campaign ends this child when a cell hangs
        self.event(
            "plan", {"cells": self.cells_total, "deadline": self.deadline, "pid": os.getpid()}
        )

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_call(self, item: pytest.Item):
        subject = _subject(item)
        if subject is None:
            return (yield)
        now, wall = time.monotonic(), time.time()
        left = max(self.deadline - wall, 0.0)
        cells_left = max(self.cells_total - self.cells_started, 1)
        share = min(max(left / cells_left, MIN_SLICE_S), left)
        self.cells_started += _will_draw(item)
        name, members, norm = subject
        covering = [
            self.config.normspec_deviations.tallies[index].entry
            for index in getattr(item, "normspec_covering", ())
        ]
        entry = None
        if covering:
            first, *others = covering
            entry = {"reproduction": first["reproduction"], "reason": first["reason"]}
            if others:
                entry["others"] = [
                    {"reproduction": d["reproduction"], "reason": d["reason"]} for d in others
                ]
        self.cell = Cell(
            nodeid=item.nodeid,
            name=name,
            members=members,
            norm=norm,
            property=item.originalname,
            kind="differential" if len(members) > 1 else _single_kind(members[0]),
            start=now,
            end=now + share,
            slice_s=share,
            known=entry,
        )
        self.calls = []
        self.event("begin", {"nodeid": item.nodeid, "slice_s": share})
        _install(item, self)
        if self.seed is not None:
            # what hypothesis.seed() sets, without the database=None it adds (as does
            # --hypothesis-seed): a seeded campaign still replays and saves its failures
            item.obj._hypothesis_internal_use_seed = self.seed
        try:
            return (yield)
        finally:
            self.event("cell", self.cell.record())

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_makereport(self, item: pytest.Item, call: pytest.CallInfo):
        # a slice that ended is a cell that passed, with the examples it ran: the report is
        # built from the call, so the call is what is told
        if call.when == "call" and call.excinfo and isinstance(call.excinfo.value, SliceEnded):
            call.excinfo = None
        return (yield)

    def pytest_runtest_logfinish(self, nodeid: str) -> None:
        if time.time() >= self.deadline and self.session is not None:
            self.session.shouldstop = "the hunt's budget is spent"

    # --- in each example --------------------------------------------------------------------

    def example(self, inner, args: tuple, kwargs: dict) -> Any:
        """Run one example of the running cell's property (see the module docstring)."""
        cell = self.cell
        context = current_build_context()
        now = time.monotonic()
        cell.examples += 1
        self.calls, self.draws = [], []
        self.recorder.checking(None)  # no case of this example is being checked yet
        self.example_worst = (0.0, None)
        if "data" in kwargs:
            kwargs = dict(kwargs, data=DrawRecorder(kwargs["data"], self.draws, cell))
        start = time.perf_counter()
        try:
            result = inner(*args, **kwargs)
        except HypothesisException:  # assume(), reject(), a refused input: not a finding
            cell.invalid += 1
            raise
        except (Exception, pytest.fail.Exception) as error:
            self._hit(error, context.is_final)
            raise
        finally:
            cell.inner_s += time.perf_counter() - start
            if now - cell.last_tick >= TICK_S:
                cell.last_tick = now
                self.event(
                    "tick",
                    {
                        "nodeid": cell.nodeid,
                        "examples": cell.examples,
                        "failures": cell.failures,
                    },
                )
        if cell.kind == "differential":
            self._peer_targets()
        # the slice ends after an example that ran to its end: an example stopped before it
        # drew would contradict what Hypothesis recorded of the same choices ("inconsistent
        # data generation"); a cell with a failure stops when its shrinking does
        if not cell.failures and not context.is_final and time.monotonic() >= cell.end:
            cell.slice_ended = True
            raise SliceEnded(f"the cell's time slice ({cell.slice_s:.2g} s) is over")
        return result

    def _hit(self, error: BaseException, final: bool) -> None:
        """A failing example: record it, and find the call that left its bound."""
        cell = self.cell
        cell.failures += 1
        now = time.monotonic()
        first = cell.first_failure is None
        if first:
            cell.first_failure = cell.examples
            cell.first_failure_s = round(now - cell.start, 3)
            # Hypothesis reads its shrinking time limit (five minutes) when shrinking starts,
            # which is next: the cell gets --hunt-shrink-s, within the campaign's deadline
            engine.MAX_SHRINKING_SECONDS = min(self.shrink_s, max(self.deadline - time.time(), 0.5))
        ratio, key = self.example_worst
        case = self._failing_case()
        message = str(error).strip()
        self.event(
            "hit",
            {
                "nodeid": cell.nodeid,
                "example": cell.examples,
                "final": final,
                "known": cell.known is not None,
                "kind": cell.kind,
                "error": type(error).__name__,
                "message": message[:4000],
                "worst": ratio if np.isfinite(ratio) else "inf",
                "dtype": key[3] if key else getattr(case, "dtype", None),
                "quantity": key[4] if key else None,
                "case": repr(case) if case is not None else None,
                "draws": [
                    [label, repr(value)]
                    for label, value in self.draws
                    if type(value).__name__ not in ("Case", "TrainingCase")
                ],
            },
        )
        if first or final or now - cell.last_culprit >= CULPRIT_EVERY_S:
            cell.last_culprit = now
            try:
                self._culprit(final)
            except Exception as problem:  # the analysis's own bug: the failure still stands
                self.event(
                    "culprit", {"nodeid": cell.nodeid, "found": False, "error": repr(problem)}
                )

    def _failing_case(self) -> Any:
        """The case being checked when the example failed (a property checks a list of cases
        per example, and stops at the one that fails), else the last case drawn on its own."""
        if self.recorder.case is not None:
            return self.recorder.case
        return next(
            (v for _, v in reversed(self.draws) if type(v).__name__ in ("Case", "TrainingCase")),
            None,
        )

    def _culprit(self, final: bool) -> None:
        """Judge the example's calls; save the culprit's arrays and describe it."""
        found = culprit(self.calls)
        cell = self.cell
        data: dict[str, Any] = {"nodeid": cell.nodeid, "final": final, "example": cell.examples}
        if found is None:
            self.event("culprit", data | {"found": False})
            return
        call = found.call if isinstance(found, Verdict) else found
        arrays, scalars = arrays_of(call)
        path = self.directory / f"cell-{hashlib.sha1(cell.nodeid.encode()).hexdigest()[:12]}.npz"
        partial = path.with_suffix(".partial.npz")
        np.savez(partial, **arrays)
        os.replace(partial, path)
        data |= {
            "found": True,
            "backend": call.backend.name,
            "method": call.method,
            "norm": call.norm,
            "arrays": str(path),
            "scalars": scalars,
        }
        dtype = scalars["dtype"]
        data["accumulation"] = call.backend.accumulation_dtype(dtype)
        if isinstance(found, Verdict):
            data |= {
                "quantity": found.quantity,
                "ratio": found.ratio if np.isfinite(found.ratio) else "inf",
                "index": list(found.index),
                "observed": _number(found.observed),
                "exact": _number(found.exact),
                "bound": found.bound,
                "outside": found.outside,
                "size": found.size,
            }
        else:
            data |= {"raises": f"{type(call.error).__name__}: {call.error}"[:2000]}
        self.event("culprit", data)

    def _peer_targets(self) -> None:
        """Target each member's error / bound over its best peer's on a shared forward input."""
        by_input: dict[int, list[Call]] = defaultdict(list)
        for call in self.calls:
            if call.method == "forward" and call.error is None:
                by_input[id(call.args[0])].append(call)
        for calls in by_input.values():
            if len({c.backend.name for c in calls}) < 2:
                continue
            verdicts = [judge(c) for c in calls]
            if any(v is None for v in verdicts):
                return
            dtype = calls[0].args[0].x.dtype.name
            for k, verdict in enumerate(verdicts):
                best = min(v.ratio for j, v in enumerate(verdicts) if j != k)
                ratio = min(verdict.ratio / max(best, PEER_FLOOR), 1e300)
                name = verdict.call.backend.name
                target(ratio, label=f"error/bound of {name} over its best peer ({dtype})")
            return  # one shared input per example is enough to steer by


def _number(value: float) -> float | str:
    """A float for JSON: NaN and the infinities as strings."""
    return value if np.isfinite(value) else repr(float(value))


def _subject(item: pytest.Item) -> tuple[str, list[str], str] | None:
    """(the name a cell is reported under, its members' names, its norm) of a property that
    Hypothesis drives, or None."""
    if not hasattr(getattr(item, "obj", None), "hypothesis"):
        return None
    params = getattr(getattr(item, "callspec", None), "params", {})
    if "backend" in params:
        return params["backend"].name, [params["backend"].name], params.get("norm", "")
    if "backend_pair" in params:
        names = [b.name for b in params["backend_pair"]]
        return " vs ".join(names), names, params.get("norm", "")
    return None


def _will_draw(item: pytest.Item) -> bool:
    """Whether the suite will run `item`'s examples: a property Hypothesis drives, on
    backends that can run here and provide its norm."""
    if _subject(item) is None:
        return False
    params = item.callspec.params
    backends = [params["backend"]] if "backend" in params else list(params["backend_pair"])
    norm = params.get("norm", "")
    return all(not b.unavailable_reason() and (not norm or norm in b.norms) for b in backends)


def _single_kind(name: str) -> str:
    from backends.registry import CONTROLS

    return "control" if name in CONTROLS else "single"


def _install(item: pytest.Item, hunter: Hunter) -> None:
    """Wrap the Hypothesis inner test of `item`'s function (once: parametrized items share
    it). functools.wraps keeps its source and signature, and so its database key."""
    handle = item.obj.hypothesis
    inner = handle.inner_test
    if getattr(inner, "_normspec_hunt", False):
        return

    @wraps(inner)
    def hunted(*args, **kwargs):
        return hunter.example(inner, args, kwargs)

    hunted._normspec_hunt = True
    handle.inner_test = hunted


class DrawRecorder:
    """The test's `data` object, keeping every value drawn and the time spent drawing."""

    def __init__(self, data: Any, draws: list, cell: Cell) -> None:
        self._data, self._draws, self._cell = data, draws, cell

    def draw(self, strategy: Any, label: Any = None) -> Any:
        start = time.perf_counter()
        try:
            value = self._data.draw(strategy, label=label)
        finally:
            self._cell.draw_s += time.perf_counter() - start
        self._draws.append((label, value))
        return value

    def __getattr__(self, name: str) -> Any:
        return getattr(self._data, name)

    def __repr__(self) -> str:
        return repr(self._data)


class CallRecorder:
    """A backend whose protocol calls are kept (for the culprit) and timed; everything else
    is the backend's own."""

    def __init__(self, backend: Any, hunter: Hunter) -> None:
        self._backend, self._hunter = backend, hunter

    def __getattr__(self, name: str) -> Any:
        return getattr(self._backend, name)

    def __repr__(self) -> str:
        return repr(self._backend)

    def _record(self, method: str, norm: str, *args: Any) -> Any:
        hunter = self._hunter
        call = Call(self._backend, method, norm, args)
        if len(hunter.calls) < MAX_CALLS:
            hunter.calls.append(call)
        start = time.perf_counter()
        try:
            call.result = getattr(self._backend, method)(norm, *args)
        except Exception as error:
            call.error = error
            raise
        finally:
            if hunter.cell is not None:
                hunter.cell.backend_s[self._backend.name] += time.perf_counter() - start
        return call.result

    def forward(self, norm: str, inputs: Any) -> Any:
        return self._record("forward", norm, inputs)

    def vjp(self, norm: str, inputs: Any, grad_y: Any) -> Any:
        return self._record("vjp", norm, inputs, grad_y)

    def train(self, norm: str, run: Any) -> Any:
        return self._record("train", norm, run)

    def forward_with_defaults(self, norm: str, inputs: Any) -> Any:
        return self._record("forward_with_defaults", norm, inputs)

    def train_with_defaults(self, norm: str, *args: Any) -> Any:
        return self._record("train_with_defaults", norm, *args)
