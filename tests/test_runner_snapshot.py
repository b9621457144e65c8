"""A committed snapshot of the reports changes only when a result does: under the `ci`
profile, checking an unchanged tree twice writes the same bytes, and what changes on every
run (times, throughput) goes to timings files that git ignores."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from normspec.runner.report import conformance_json, precision_markdown

ROOT = Path(__file__).resolve().parent.parent
COMMITTED = ("conformance.json", "conformance.md", "precision.md", "conventions.md")


def test_checking_twice_writes_the_same_committed_reports(tmp_path):
    reports = []
    for _ in range(2):
        done = subprocess.run(
            [sys.executable, "-m", "normspec", "check", "--backend", "numpy",
             "--report-dir", str(tmp_path)],
            cwd=ROOT, capture_output=True, text=True, timeout=600,
        )  # fmt: skip
        assert done.returncode == 0, done.stdout + done.stderr
        reports.append({name: (tmp_path / name).read_bytes() for name in COMMITTED})
    for name in COMMITTED:
        assert reports[0][name] == reports[1][name], f"{name} differs between two runs"
    assert b'"durations_s"' in (tmp_path / "timings.json").read_bytes()
    assert b"examples / s" in (tmp_path / "timings.md").read_bytes()


@pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")
@pytest.mark.parametrize("name", ["timings.json", "timings.md"])
def test_git_ignores_the_timings_of_the_committed_snapshot(name):
    done = subprocess.run(
        ["git", "check-ignore", "--no-index", f"reports/{name}"], cwd=ROOT, capture_output=True
    )
    if done.returncode == 128:
        pytest.skip("not a git checkout")
    assert done.returncode == 0, f"reports/{name} is not ignored by .gitignore"


def _record(ratios: list[float]) -> dict:
    """A record whose precision entries for one norm x backend x dtype have these ratios."""
    return {
        "results": [],
        "precision": [
            {"property": f"test_{i}", "backend": "torch", "norm": "layer_norm",
             "dtype": "float32", "quantity": "forward output",
             "worst_error_over_bound": ratio, "case": f"Case(seed={i})"}
            for i, ratio in enumerate(ratios)
        ],
    }  # fmt: skip


def test_rounding_noise_does_not_change_the_precision_table():
    """A multithreaded kernel's last bits may differ between runs: two ratios equal at the
    table's resolution keep showing the same case, the first property's."""
    tables = [
        precision_markdown(conformance_json(_record(ratios), "normspec check"))
        for ratios in ([0.4120001, 0.4120003], [0.4120003, 0.4120001])
    ]
    assert tables[0] == tables[1]
    assert "| 0.412 |" in tables[0] and "Case(seed=0)" in tables[0]


def test_a_real_change_in_the_worst_ratio_still_shows():
    table = precision_markdown(conformance_json(_record([0.41, 0.52]), "normspec check"))
    assert "| 0.52 |" in table and "Case(seed=1)" in table
