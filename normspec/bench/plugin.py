"""The pytest plugin of the benchmark run (`-p normspec.bench.plugin --bench-plan FILE`).

It runs in the child processes that `normspec bench` starts, one per pass (results.py),
before any test: it sets the frameworks' thread counts, measures the memory bandwidth (in
the first pass), and parametrizes `suite.py` with the plan's cases for its pass. Passes
sweep the whole grid, so each case's rounds are spread over the run and a burst of someone
else's load lands on a part of every case instead of on all of one case; each pass is a
fresh process and prepares each case afresh (tensors made, graph traced, warmed up,
calibrated), so the luck of a process and of a preparation (where the arrays landed, huge
pages or not) varies between passes, where the statistics can see it.

At the end it writes `--bench-record FILE`: the environment, the probe, each case's
preparation, each failure and the progress so far, which `normspec bench` merges with
pytest-benchmark's JSON and hands on to the next pass.
"""

from __future__ import annotations

import json
import platform
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from backends.registry import load_backend
from normspec.bench import bandwidth
from normspec.bench.calls import Prepared, calibrate, prepare
from normspec.bench.progress import Progress
from normspec.bench.threads import frameworks_of, set_threads
from normspec.bench.workloads import Case

STATE = pytest.StashKey["BenchState"]()


@dataclass
class BenchState:
    """What the run holds between tests."""

    plan: dict
    cases: list[Case]
    backends: dict
    progress: Progress
    record: dict
    prepared: Prepared | None = None
    node_keys: dict[str, str] = field(default_factory=dict)

    @property
    def settings(self) -> dict:
        return self.plan["settings"]

    def prepare(self, case: Case) -> tuple[Prepared, int]:
        """The case prepared afresh (new inputs, a new trace) and warmed up, and its
        iterations per round: each pass is its own preparation, so a run's passes sample
        where the arrays land rather than repeat one preparation's luck."""
        prepared = prepare(self.backends[case.backend], case)
        once, iterations = calibrate(
            prepared,
            self.settings["min_round_s"],
            self.settings["warmup_s"],
            self.settings["timer"],
        )
        entry = self.record["cases"].setdefault(
            case.key, {"path": prepared.path, "calibration_s": [], "iterations": []}
        )
        entry["calibration_s"].append(once)
        entry["iterations"].append(iterations)
        self.prepared = prepared
        return prepared, iterations

    def release(self, case: Case) -> None:
        """Drop the case's tensors, recording how often its call was traced."""
        prepared, self.prepared = self.prepared, None
        if prepared is not None and prepared.traces is not None:
            entry = self.record["cases"][case.key]
            entry["traces"] = max(entry.get("traces", 0), prepared.traces())


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("normspec bench")
    group.addoption("--bench-plan", metavar="FILE", help="the plan normspec bench wrote")
    group.addoption("--bench-record", metavar="FILE", help="where to write the run's record")


def pytest_configure(config: pytest.Config) -> None:
    plan_path = config.getoption("--bench-plan")
    if not plan_path:
        return
    plan = json.loads(Path(plan_path).read_text())
    cases = [Case.from_dict(c) for c in plan["cases"]]
    backends = {name: load_backend(name) for name in dict.fromkeys(c.backend for c in cases)}
    threads = plan["settings"]["threads"]
    record: dict = {
        "threads": set_threads(threads, frameworks_of(list(backends.values()))),
        "versions": {
            "python": platform.python_version(),
            **{name: b.version() for name, b in backends.items()},
        },
        "cases": {},
        "errors": {},
    }
    if plan["probe"]:
        print(f"bench: measuring the memory bandwidth ({threads} thread) ...", file=sys.stderr)
        record["bandwidth"] = bandwidth.probe(threads, plan["settings"]["timer"])
        limit = record["bandwidth"]["limit_gbps"]
        print(f"bench: copy bandwidth {limit:.1f} GB/s", file=sys.stderr)
    steps = [c.key for _ in range(plan["settings"]["passes"]) for c in cases]
    progress = Progress(steps, resume=plan["progress"])
    state = BenchState(plan, cases, backends, progress, record)
    config.stash[STATE] = state
    config.pluginmanager.register(BenchRun(state, config.getoption("--bench-record")))


class BenchRun:
    """The run's hooks, registered once the plan is read."""

    def __init__(self, state: BenchState, record_path: str | None):
        self.state = state
        self.record_path = record_path

    def pytest_generate_tests(self, metafunc: pytest.Metafunc) -> None:
        if "case_pass" not in metafunc.fixturenames:
            return
        p = self.state.plan["pass_index"]
        values = [(case, p) for case in self.state.cases]
        metafunc.parametrize("case_pass", values, ids=[f"{c.key}/pass{p}" for c, _ in values])

    def pytest_collection_modifyitems(self, items: list[pytest.Item]) -> None:
        for item in items:
            case, _ = item.callspec.params["case_pass"]
            self.state.node_keys[item.nodeid] = case.key

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if report.failed:
            key = self.state.node_keys.get(report.nodeid, report.nodeid)
            lines = report.longreprtext.strip().splitlines()
            self.state.record["errors"].setdefault(key, lines[-1] if lines else "failed")

    def pytest_sessionfinish(self) -> None:
        self.state.progress.finish()
        self.state.record["progress"] = self.state.progress.state()
        if self.record_path:
            Path(self.record_path).write_text(json.dumps(self.state.record, indent=1))


@pytest.fixture
def bench_state(request: pytest.FixtureRequest) -> BenchState:
    """The run's state: the plan, the backends, the prepared cases."""
    state = request.config.stash.get(STATE, None)
    if state is None:
        pytest.fail("the benchmark suite runs under normspec bench (--bench-plan FILE)")
    return state
