"""A gate that survives its adapters: a backend that segfaults, one that exits, one that
hangs and one whose import fails are each reported as failures with their reason, every
other result of the run is kept, and the exit status is 1 (normspec/runner/isolation.py); in
one process and in two side by side (`--workers 2`)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
MISBEHAVING = {
    "tests.adapters.crashing:SegfaultsOnGroupNorm": ("group_norm", "signal SIGSEGV (11)"),
    "tests.adapters.crashing:ExitsOnInstanceNorm": ("instance_norm", "exited with status 3"),
    "tests.adapters.hanging:HangsOnLayerNorm": ("layer_norm", "timed out: no result after 3 s"),
    "tests.adapters.broken_import:Anything": (None, "import error: ImportError: libmykernels"),
}
PROPERTIES = ("test_forward_agrees_with_the_spec", "test_output_is_invariant_to_positive_scaling")


@pytest.fixture(scope="module", params=[1, 2], ids=["one worker", "two workers"])
def run(request, tmp_path_factory) -> tuple[subprocess.CompletedProcess, dict]:
    reports = tmp_path_factory.mktemp("reports")
    command = [sys.executable, "-m", "normspec", "check", "--report-dir", str(reports)]
    command += ["--timeout", "3", "--workers", str(request.param), "--backend", "numpy"]
    for name in MISBEHAVING:
        command += ["--backend", name]
    for name in PROPERTIES:
        command += ["--property", name]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)
    return done, json.loads((reports / "conformance.json").read_text())


def test_the_run_completes_with_exit_status_1(run):
    done, _ = run
    assert done.returncode == 1, done.stdout[-3000:] + done.stderr[-3000:]


@pytest.mark.parametrize("backend", MISBEHAVING)
def test_each_misbehaving_cell_is_a_failure_with_its_reason(run, backend):
    _, report = run
    norm, reason = MISBEHAVING[backend]
    failed = [r for r in report["results"] if r["backend"] == backend and r["status"] == "failed"]
    culprits = [r for r in failed if norm is None or r["norm"] == norm]
    assert {r["property"] for r in culprits} == set(PROPERTIES), failed
    for r in culprits:
        assert reason in r["message"], r["message"]
        assert r["reproduction"].startswith(f"normspec check --backend {backend} ")
    if norm is not None:  # the crash of one norm took nothing else with it
        others = [r for r in report["results"] if r["backend"] == backend and r["norm"] != norm]
        assert others and all(r["status"] in ("passed", "not provided") for r in others), others


def test_a_crashed_cell_names_the_last_call_it_made(run):
    _, report = run
    crash = next(r for r in report["results"] if "SIGSEGV" in r.get("message", ""))
    assert "forward('group_norm', x " in crash["falsifying_example"]


def test_every_other_result_is_present(run):
    """One result per backend x property x norm: 5 backends, 6 norms for the agreement and 5
    for scaling invariance (no weight_norm), none lost to a crash."""
    _, report = run
    cells = {(r["backend"], r["property"], r["norm"]) for r in report["results"]}
    assert len(cells) == len(report["results"]) == 5 * (6 + 5)
    numpy = [r for r in report["results"] if r["backend"] == "numpy"]
    assert numpy and all(r["status"] == "passed" for r in numpy)


def test_a_module_that_does_not_exist_is_bad_usage_not_a_finding(tmp_path):
    command = [sys.executable, "-m", "normspec", "check", "--report-dir", str(tmp_path)]
    done = subprocess.run(
        [*command, "--backend", "no_such_module:Kernels"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert "cannot import 'no_such_module'" in done.stderr
    assert not (tmp_path / "conformance.json").exists()
