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


def run_grid(cases: list[Case], settings: Settings, command: str) -> dict:
    """Run `cases` under pytest-benchmark, one child process per pass; return the merged
    record. A process has luck of its own that lasts as long as it does (a torch kernel
    that ran at 8 ms in one process ran at 17 ms throughout another), so a pass per process
    lets the passes, the statistics' replicates, sample it.

    Progress goes to stderr as it happens; pytest's own output is shown only when a child
    fails."""
    env = dict(os.environ)
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    cwd = os.getcwd()
    env["PYTHONPATH"] = os.pathsep.join(p for p in (cwd, env.get("PYTHONPATH")) if p)
    raws, records = [], []
    progress: dict = {"took": {}, "total": 0.0, "elapsed": 0.0}
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="normspec-bench-") as tmp:
        for pass_index in range(1, settings.passes + 1):
            directory = Path(tmp) / f"pass{pass_index}"
            directory.mkdir()
            progress["elapsed"] = time.perf_counter() - start  # the children's starts too
            plan = {
                "settings": asdict(settings),
                "cases": [c.as_dict() for c in cases],
                "pass_index": pass_index,
                "probe": pass_index == 1,
                "progress": progress,
            }
            raw, record = _run_pass(plan, directory, env, cwd, settings)
            raws.append(raw)
            records.append(record)
            progress = record["progress"]
    return merge(raws, records, cases, settings, command, time.perf_counter() - start)


def _run_pass(
    plan: dict, directory: Path, env: dict, cwd: str, settings: Settings
) -> tuple[dict, dict]:
    """One pass in a child pytest: pytest-benchmark's JSON and the plugin's record."""
    (directory / "plan.json").write_text(json.dumps(plan))
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
        str(directory / "plan.json"),
        "--bench-record",
        str(directory / "record.json"),
        "--benchmark-json",
        str(directory / "benchmark.json"),
        "--benchmark-disable-gc",
        "--benchmark-quiet",
        "--benchmark-timer",
        PYTEST_TIMERS[settings.timer],
        "--benchmark-sort",
        "name",
    ]
    output = directory / "pytest.log"
    with open(output, "w") as sink:
        done = subprocess.run(child, env=env, cwd=cwd, stdout=sink, stderr=None)
    record_path = directory / "record.json"
    if not record_path.exists():
        raise RuntimeError(
            f"pass {plan['pass_index']} of the benchmark stopped (pytest exit status "
            f"{done.returncode}) before writing its record:\n{_tail(output)}"
        )
    raw_path = directory / "benchmark.json"
    raw = json.loads(raw_path.read_text()) if raw_path.exists() else _empty_raw()
    return raw, json.loads(record_path.read_text())


def _tail(path: Path, lines: int = 40) -> str:
    return "\n".join(path.read_text().splitlines()[-lines:])


def _empty_raw() -> dict:
    """pytest-benchmark's layout when no benchmark finished (it then writes nothing)."""
    return {"machine_info": {}, "commit_info": {}, "benchmarks": [], "version": None}


def merge(
    raws: list[dict],
    records: list[dict],
    cases: list[Case],
    settings: Settings,
    command: str,
    seconds: float,
) -> dict:
    """The passes' pytest-benchmark JSON in one, with the "normspec" key: one row per case
    over its passes."""
    raw = dict(next((r for r in raws if r["benchmarks"]), raws[0]))
    raw["benchmarks"] = [b for r in raws for b in r["benchmarks"]]
    record = _merge_records(records)
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


def _merge_records(records: list[dict]) -> dict:
    """The passes' records in one: the first's environment and probe, every pass's
    calibrations, the most traces, the first error of each case."""
    merged = {**records[0], "cases": {}, "errors": {}}
    for record in records:
        for key, entry in record["cases"].items():
            into = merged["cases"].setdefault(
                key, {"path": entry["path"], "calibration_s": [], "iterations": []}
            )
            into["calibration_s"] += entry["calibration_s"]
            into["iterations"] += entry["iterations"]
            if "traces" in entry:
                into["traces"] = max(into.get("traces", 0), entry["traces"])
        for key, error in record["errors"].items():
            merged["errors"].setdefault(key, error)
    return merged


def load(path: Path) -> dict:
    """A saved run's record; ValueError naming the file when it is not one."""
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise ValueError(f"cannot read the saved run {path}: {error}") from None
    if "normspec" not in data or "rows" not in data["normspec"]:
        raise ValueError(f"{path} is not a normspec bench record (no 'normspec' rows)")
    return data
