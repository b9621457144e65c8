"""A benchmark run: its plan, the pytest-benchmark child that runs it, and its record.

The record is pytest-benchmark's own JSON (machine_info, commit_info, benchmarks with every
round's time per call, datetime, version), so pytest-benchmark's tools read it, with one
key added, "normspec":

    command, created, settings   what was run and how (passes, rounds, round time, threads)
    environment                  Python and framework versions, thread counts, the CPU
    bandwidth                    the probe: limit_gbps and how it was measured
    rows                         one per case: the case (backend, norm, workload, shape,
                                 mode, dtype, bytes), how it was called, the rounds' times
                                 per call (all, and by pass), their summary (median,
                                 quartiles, interval of the median), effective GB/s and
                                 the fraction of the limit, or the error that stopped it
    skipped                      backends that cannot run here, with the reason
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from normspec.bench import bandwidth, stats
from normspec.bench.calls import PYTEST_TIMERS
from normspec.bench.workloads import Case

SUITE = Path(__file__).resolve().parent / "suite.py"


@dataclass(frozen=True)
class Settings:
    """How long and how carefully each case is timed."""

    #: times the whole grid is swept; each case's rounds are spread over the passes
    passes: int = 3
    #: timed rounds per case and pass
    rounds: int = 5
    #: a round is at least this long: calls are repeated back to back until it is
    min_round_s: float = 0.025
    #: calls before the first timed round of a preparation (after its build and trace)
    warmup_s: float = 0.1
    #: the frameworks' intra-op and inter-op thread counts
    threads: int = 1
    #: the clock of the rounds, "cpu" or "wall" (calls.TIMERS)
    timer: str = "cpu"


def run_grid(cases: list[Case], settings: Settings, command: str, log: Path | None = None) -> dict:
    """Run `cases` under pytest-benchmark in a child process; return the merged record.

    Progress goes to stderr as it happens; pytest's own output goes to `log` (or is shown
    only when the child fails)."""
    env = dict(os.environ)
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    cwd = os.getcwd()
    env["PYTHONPATH"] = os.pathsep.join(p for p in (cwd, env.get("PYTHONPATH")) if p)
    with tempfile.TemporaryDirectory(prefix="normspec-bench-") as tmp:
        tmpdir = Path(tmp)
        plan = {"settings": asdict(settings), "cases": [c.as_dict() for c in cases]}
        (tmpdir / "plan.json").write_text(json.dumps(plan))
        child = [
            sys.executable,
            "-m",
            "pytest",
            str(SUITE),
            "-p",
            "normspec.bench.plugin",
            "-p",
            "no:cacheprovider",
            "-s",
            "-q",
            "--tb=short",
            "--rootdir",
            str(SUITE.parent),
            "-c",
            os.devnull,
            "--bench-plan",
            str(tmpdir / "plan.json"),
            "--bench-record",
            str(tmpdir / "record.json"),
            "--benchmark-json",
            str(tmpdir / "benchmark.json"),
            "--benchmark-disable-gc",
            "--benchmark-timer",
            PYTEST_TIMERS[settings.timer],
            "--benchmark-sort",
            "name",
        ]
        output = log or tmpdir / "pytest.log"
        start = time.perf_counter()
        with open(output, "w") as sink:
            done = subprocess.run(child, env=env, cwd=cwd, stdout=sink, stderr=None)
        seconds = time.perf_counter() - start
        record_path = tmpdir / "record.json"
        if not record_path.exists():
            raise RuntimeError(
                f"the benchmark run stopped (pytest exit status {done.returncode}) before "
                f"writing its record:\n{_tail(output)}"
            )
        record = json.loads(record_path.read_text())
        raw_path = tmpdir / "benchmark.json"
        raw = json.loads(raw_path.read_text()) if raw_path.exists() else _empty_raw()
    return merge(raw, record, cases, settings, command, seconds)


def _tail(path: Path, lines: int = 40) -> str:
    return "\n".join(path.read_text().splitlines()[-lines:])


def _empty_raw() -> dict:
    """pytest-benchmark's layout when no benchmark finished (it then writes nothing)."""
    return {"machine_info": {}, "commit_info": {}, "benchmarks": [], "version": None}


def merge(
    raw: dict, record: dict, cases: list[Case], settings: Settings, command: str, seconds: float
) -> dict:
    """pytest-benchmark's JSON with the "normspec" key: one row per case over its passes."""
    passes: dict[str, dict[int, list[float]]] = {c.key: {} for c in cases}
    for bench in raw["benchmarks"]:
        by_pass = passes[bench["group"]]
        by_pass.setdefault(bench["extra_info"]["pass_index"], []).extend(bench["stats"]["data"])
    limit = record["bandwidth"]["limit_gbps"]
    rows = []
    for case in cases:
        row = {**case.as_dict(), **record["cases"].get(case.key, {})}
        by_pass = [passes[case.key][p] for p in sorted(passes[case.key])]
        times = [t for rounds in by_pass for t in rounds]
        error = record["errors"].get(case.key)
        if error or not times:
            row["error"] = error or "no round was timed"
        else:
            row["rounds_s"] = times
            row["rounds_by_pass"] = by_pass
            row["time_s"] = stats.summary(times)
            row["gbps"], row["fraction_of_limit"] = bandwidth.fraction(
                row["bytes"], row["time_s"]["median"], limit
            )
        rows.append(row)
    cpu = raw.get("machine_info", {}).get("cpu", {})
    raw["normspec"] = {
        "command": command,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "seconds": seconds,
        "settings": asdict(settings),
        "environment": {
            "versions": record["versions"],
            "threads": record["threads"],
            "cpu": cpu.get("brand_raw", ""),
            "cores": os.cpu_count(),
        },
        "bandwidth": record["bandwidth"],
        "rows": rows,
    }
    return raw


def load(path: Path) -> dict:
    """A saved run's record; ValueError naming the file when it is not one."""
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise ValueError(f"cannot read the saved run {path}: {error}") from None
    if "normspec" not in data or "rows" not in data["normspec"]:
        raise ValueError(f"{path} is not a normspec bench record (no 'normspec' rows)")
    return data
