"""Two interpreters side by side: `normspec bench --ab PYTHON_A PYTHON_B`.

On a shared machine the load changes from one minute to the next, so two runs made at
different times differ for reasons that are not the code. Here both sides run in the same
minutes: a worker process per interpreter (normspec/bench/worker.py), both holding the same
workload, timed in alternation. Each pair is one round of A and one of B back to back; which
side goes first alternates from pair to pair (A B, B A, A B, ...), so neither side always
runs in the other's wake. Both sides run the same number of calls per round (enough for the
faster one to last `min_round_s`), and while one runs the other waits on its input, idle.

Per workload the result is the ratio B / A: the median of the pairs' ratios, with the sign
test's 95% interval (normspec/bench/stats.py), judged against `--fail-over`: "slower" when
the whole interval is above 1 + threshold.
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
    """Time `cases` on both interpreters in alternation; the record with B / A per case."""
    pairs = settings.passes * settings.rounds
    sides = {"A": Side("A", python_a), "B": Side("B", python_b)}
    start = time.perf_counter()
    try:
        backends = sorted({c.backend for c in cases})
        environments = {
            label: side.ask("setup", backends=backends, threads=settings.threads)
            for label, side in sides.items()
        }
        progress = Progress([c.key for c in cases], label="bench --ab")
        rows = []
        for case in cases:
            progress.step(case.key, f" ({pairs} pairs)")
            rows.append(_one_case(case, sides, environments, settings, pairs, threshold))
        progress.finish()
    finally:
        for side in sides.values():
            side.close()
    return {
        "command": command,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "seconds": time.perf_counter() - start,
        "settings": {**asdict(settings), "pairs": pairs},
        "threshold": threshold,
        "a": {"python": python_a, **environments["A"]},
        "b": {"python": python_b, **environments["B"]},
        "rows": rows,
        "regressions": [r["key"] for r in rows if r.get("verdict") == "slower"],
    }


def _one_case(
    case: Case,
    sides: dict[str, Side],
    environments: dict[str, dict],
    settings: Settings,
    pairs: int,
    threshold: float,
) -> dict:
    row: dict = {**case.as_dict()}
    for label in sides:
        reason = environments[label]["unavailable"].get(case.backend)
        if reason:
            row["error"] = f"{case.backend} cannot run on {label}: {reason}"
            return row
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
        fastest = min(p["call_s"] for p in prepared.values())
        iterations = max(p["iterations"] for p in prepared.values())
        times: dict[str, list[float]] = {"A": [], "B": []}
        for j in range(pairs):
            for label in ("A", "B") if j % 2 == 0 else ("B", "A"):
                times[label].append(sides[label].ask("time", iterations=iterations)["seconds"])
        for label, side in sides.items():
            traces = side.ask("release").get("traces")
            if traces is not None:
                row[f"traces_{label.lower()}"] = traces
    except WorkerError as error:
        row["error"] = str(error)
        for side in sides.values():
            if side.process.poll() is None:
                with contextlib.suppress(WorkerError):
                    side.ask("release")
        return row
    ratio = stats.paired_ratio(times["A"], times["B"])
    row.update(
        iterations=iterations,
        calibration_s=fastest,
        path_a=prepared["A"]["path"],
        path_b=prepared["B"]["path"],
        a_s=stats.summary(times["A"]),
        b_s=stats.summary(times["B"]),
        rounds_a=times["A"],
        rounds_b=times["B"],
        verdict=ratio.verdict(threshold),
        **ratio.as_dict(),
    )
    return row
