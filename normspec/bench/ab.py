"""Two interpreters side by side: `normspec bench --ab PYTHON_A PYTHON_B`.

On a shared machine the load changes from one minute to the next, so two runs made at
different times differ for reasons that are not the code. Here both sides run in the same
minutes: a worker process per interpreter (normspec/bench/worker.py), both holding the same
workload, timed in alternation. Each pair is one round of A and one of B back to back; which
side goes first alternates from pair to pair (A B, B A, A B, ...), so neither side always
runs in the other's wake. Both sides run the same number of calls per round (enough for the
faster one to last `min_round_s`), and while one runs the other waits on its input, idle.

A process has luck of its own that lasts as long as it does: where its arrays land, whether
they get huge pages, its allocator's and its runtime's state. Two workers of the same
interpreter differed by up to 89% on one workload, steadily over every round. So the run is
made of passes, each with fresh worker processes on both sides and each workload prepared
anew, and the passes, not the pairs, are the replicates: per workload, B / A is the
geometric mean of the passes' median pair ratios, with Student's 95% interval over the
passes (normspec/bench/stats.py), judged against `--fail-over`: "slower" when the whole
interval is above 1 + threshold.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from normspec.bench import stats
from normspec.bench.progress import Progress
from normspec.bench.results import Settings
from normspec.bench.workloads import Case

#: The repository root, put on each worker's path: B's interpreter need not have normspec.
ROOT = Path(__file__).resolve().parents[2]


class WorkerError(RuntimeError):
    """A worker answered with an error, or died."""


class Side:
    """One worker process, and the interpreter it runs."""

    def __init__(self, label: str, python: str):
        self.label = label
        self.python = python
        env = dict(os.environ)
        env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        path = [str(ROOT), os.getcwd(), env.get("PYTHONPATH", "")]
        env["PYTHONPATH"] = os.pathsep.join(p for p in path if p)
        self.process = subprocess.Popen(
            [python, "-m", "normspec.bench.worker"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=env,
            text=True,
        )

    def ask(self, op: str, **arguments: Any) -> dict:
        """Send one request and wait for its answer."""
        try:
            self.process.stdin.write(json.dumps({"op": op, **arguments}) + "\n")
            self.process.stdin.flush()
        except BrokenPipeError:
            pass  # reported below, with the exit status
        line = self.process.stdout.readline()
        if not line:
            status = self.process.wait()
            raise WorkerError(f"{self.label} ({self.python}) exited with status {status}")
        answer = json.loads(line)
        if "error" in answer:
            raise WorkerError(f"{self.label}: {answer['error']}")
        return answer["ok"]

    def close(self) -> None:
        if self.process.poll() is None:
            try:
                self.process.stdin.write(json.dumps({"op": "quit"}) + "\n")
                self.process.stdin.close()
            except BrokenPipeError:
                pass
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def run_ab(
    python_a: str,
    python_b: str,
    cases: list[Case],
    settings: Settings,
    threshold: float,
    command: str,
) -> dict:
    """Time `cases` on both interpreters in alternation, pass by pass, each pass in fresh
    worker processes; the record with B / A per case."""
    start = time.perf_counter()
    backends = sorted({c.backend for c in cases})
    progress = Progress([c.key for _ in range(settings.passes) for c in cases], label="bench --ab")
    environments: dict[str, dict] = {}
    timed: dict[str, dict] = {c.key: {"A": [], "B": [], "iterations": []} for c in cases}
    errors: dict[str, str] = {}

    def start_sides() -> dict[str, Side]:
        sides = {"A": Side("A", python_a), "B": Side("B", python_b)}
        for label, side in sides.items():
            environment = side.ask("setup", backends=backends, threads=settings.threads)
            environments.setdefault(label, environment)
        return sides

    for pass_index in range(1, settings.passes + 1):
        sides = start_sides()
        try:
            for case in cases:
                progress.step(case.key, f" (pass {pass_index}/{settings.passes})")
                if case.key in errors:
                    continue
                try:
                    _one_pass(case, sides, environments, settings, pass_index, timed[case.key])
                except WorkerError as error:
                    errors[case.key] = str(error)
                    if any(side.process.poll() is not None for side in sides.values()):
                        # a kernel killed its worker: the other cases go on in new ones
                        for side in sides.values():
                            side.close()
                        sides = start_sides()
        finally:
            for side in sides.values():
                side.close()
    progress.finish()
    rows = [_row(case, timed[case.key], errors.get(case.key), threshold) for case in cases]
    return {
        "command": command,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "seconds": time.perf_counter() - start,
        "settings": {**asdict(settings), "pairs": settings.passes * settings.rounds},
        "threshold": threshold,
        "a": {"python": python_a, **environments.get("A", {})},
        "b": {"python": python_b, **environments.get("B", {})},
        "rows": rows,
        "regressions": [r["key"] for r in rows if r.get("verdict") == "slower"],
    }


def _one_pass(
    case: Case,
    sides: dict[str, Side],
    environments: dict[str, dict],
    settings: Settings,
    pass_index: int,
    timed: dict,
) -> None:
    """One pass of `case`: prepared on both sides, then `rounds` pairs, into `timed`."""
    for label in sides:
        reason = environments[label]["unavailable"].get(case.backend)
        if reason:
            raise WorkerError(f"{case.backend} cannot run on {label}: {reason}")
    try:
        prepared = {
            label: side.ask(
                "prepare",
                case=case.as_dict(),
                min_round_s=settings.min_round_s,
                warmup_s=settings.warmup_s,
                timer=settings.timer,
            )
            for label, side in sides.items()
        }
        iterations = max(p["iterations"] for p in prepared.values())
        times: dict[str, list[float]] = {"A": [], "B": []}
        for j in range(settings.rounds):
            # which side goes first alternates pair after pair, across passes too
            first_a = (pass_index * settings.rounds + j) % 2 == 0
            for label in ("A", "B") if first_a else ("B", "A"):
                times[label].append(sides[label].ask("time", iterations=iterations)["seconds"])
        for label, side in sides.items():
            traces = side.ask("release").get("traces")
            if traces is not None:
                timed[f"traces_{label.lower()}"] = max(
                    timed.get(f"traces_{label.lower()}", 0), traces
                )
    except WorkerError:
        for side in sides.values():
            if side.process.poll() is None:
                with contextlib.suppress(WorkerError):
                    side.ask("release")
        raise
    timed["A"].append(times["A"])
    timed["B"].append(times["B"])
    timed["iterations"].append(iterations)
    timed["path_a"], timed["path_b"] = prepared["A"]["path"], prepared["B"]["path"]


def _row(case: Case, timed: dict, error: str | None, threshold: float) -> dict:
    """The report's row of a case: B / A over its passes, or the error that stopped it."""
    row: dict = {**case.as_dict()}
    if error or not timed["A"]:
        row["error"] = error or "no pair was timed"
        return row
    flat = lambda passes: [t for p in passes for t in p]
    ratio = stats.paired_clustered_ratio(timed["A"], timed["B"])
    row.update(
        {k: v for k, v in timed.items() if k not in ("A", "B")},
        a_s=stats.summary(flat(timed["A"])),
        b_s=stats.summary(flat(timed["B"])),
        rounds_a=flat(timed["A"]),
        rounds_b=flat(timed["B"]),
        rounds_a_by_pass=timed["A"],
        rounds_b_by_pass=timed["B"],
        verdict=ratio.verdict(threshold),
        **ratio.as_dict(),
    )
    return row
