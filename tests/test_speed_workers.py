"""`normspec check --workers 2` keeps the gate's isolation: each property runs in one of two
pytest-xdist workers, a worker that segfaults, exits or hangs is replaced, the property it was
running is reported as failed with its reason and its last call, and every other result is
kept (the same run as tests/test_isolation.py, in two workers)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.test_isolation import MISBEHAVING, PROPERTIES

ROOT = Path(__file__).resolve().parent.parent
pytest.importorskip("xdist")


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> tuple[subprocess.CompletedProcess, dict, dict]:
    reports = tmp_path_factory.mktemp("reports")
    command = [sys.executable, "-m", "normspec", "check", "--report-dir", str(reports)]
    command += ["--timeout", "3", "--workers", "2", "--backend", "numpy"]
    for name in MISBEHAVING:
        command += ["--backend", name]
    for name in PROPERTIES:
        command += ["--property", name]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)
    report = json.loads((reports / "conformance.json").read_text())
    return done, report, json.loads((reports / "timings.json").read_text())


def test_the_run_completes_with_exit_status_1(run):
    done, _, _ = run
    assert done.returncode == 1, done.stdout[-3000:] + done.stderr[-3000:]


@pytest.mark.parametrize("backend", MISBEHAVING)
def test_each_misbehaving_cell_is_a_failure_with_its_reason(run, backend):
    _, report, _ = run
    norm, reason = MISBEHAVING[backend]
    failed = [r for r in report["results"] if r["backend"] == backend and r["status"] == "failed"]
    culprits = [r for r in failed if norm is None or r["norm"] == norm]
    assert {r["property"] for r in culprits} == set(PROPERTIES), failed
    for r in culprits:
        assert reason in r["message"], r["message"]
    if norm is not None:  # the crash of one norm took nothing else with it
        others = [r for r in report["results"] if r["backend"] == backend and r["norm"] != norm]
        assert others and all(r["status"] in ("passed", "not provided") for r in others), others


def test_a_crashed_cell_names_the_last_call_it_made(run):
    _, report, _ = run
    crash = next(r for r in report["results"] if "SIGSEGV" in r.get("message", ""))
    assert "forward('group_norm', x " in crash["falsifying_example"]


def test_every_other_result_is_present_and_the_timings_count_both_workers(run):
    _, report, timings = run
    cells = {(r["backend"], r["property"], r["norm"]) for r in report["results"]}
    assert len(cells) == len(report["results"]) == 5 * (6 + 5)
    numpy = [r for r in report["results"] if r["backend"] == "numpy"]
    assert numpy and all(r["status"] == "passed" for r in numpy)
    assert timings["run"]["workers"] == 2 and timings["run"]["cases"] > 0
