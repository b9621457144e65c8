"""Where the reports go is checked before anything runs, and the reports are replaced all at
once: a directory never holds some old and some new reports."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

import normspec.runner.cli as cli
from normspec.runner.cli import main
from normspec.runner.engine import CheckRun
from normspec.runner.report import conformance_json, write_reports

RECORD = {
    "profile": "ci",
    "backends": [
        {"name": "numpy", "version": "2", "unavailable": None, "layout": "channels_first",
         "norms": ["layer_norm"]},
    ],
    "results": [
        {"norm": "layer_norm", "backend": "numpy", "property": "test_forward_agrees_with_the_spec",
         "kind": "single", "nodeid": "properties/test_agreement.py::test_x[numpy-layer_norm]",
         "duration_s": 0.1, "examples": 12, "status": "passed"},
    ],
    "precision": [],
    "conventions": [],
    "known_deviations": [],
}  # fmt: skip
REPORTS = (
    "conformance.json",
    "conformance.md",
    "precision.md",
    "conventions.md",
    "timings.json",
    "timings.md",
)


@pytest.fixture
def never_runs(monkeypatch):
    """The suite must not start: a bad destination is found before the run."""
    monkeypatch.setattr(cli, "run_properties", lambda *a, **k: pytest.fail("the suite ran"))


@pytest.fixture
def canned_run(monkeypatch):
    """A run that records RECORD at once, so that only the writing is tested."""
    monkeypatch.setattr(cli, "run_properties", lambda *a, **k: CheckRun(RECORD, 0, 0.1))


def _check(report_dir: Path) -> int:
    return main(["check", "--backend", "numpy", "--report-dir", str(report_dir)])


def test_a_report_dir_that_is_a_file_is_refused_before_the_run(tmp_path, never_runs, capsys):
    existing = tmp_path / "reports"
    existing.write_text("not a directory")
    assert _check(existing) == 2
    assert f"--report-dir {existing} exists and is not a directory" in capsys.readouterr().err


def test_a_report_dir_under_a_file_is_refused_before_the_run(tmp_path, never_runs, capsys):
    (tmp_path / "file").write_text("")
    assert _check(tmp_path / "file" / "reports") == 2
    assert "is not a directory" in capsys.readouterr().err


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs Linux /proc")
def test_a_report_dir_where_nothing_can_be_written_is_refused_before_the_run(never_runs, capsys):
    """/proc refuses new files even to root, whom permission bits do not stop."""
    assert _check(Path("/proc/normspec-reports")) == 2
    assert "--report-dir /proc/normspec-reports: cannot write in /proc" in capsys.readouterr().err


@pytest.mark.skipif(sys.platform == "win32" or os.geteuid() == 0, reason="root writes anywhere")
def test_a_read_only_report_dir_is_refused_before_the_run(tmp_path, never_runs, capsys):
    read_only = tmp_path / "reports"
    read_only.mkdir(mode=0o500)
    assert _check(read_only) == 2
    assert "cannot write in" in capsys.readouterr().err


def test_a_missing_report_dir_is_created(tmp_path, canned_run):
    assert _check(tmp_path / "new" / "reports") == 0
    assert sorted(p.name for p in (tmp_path / "new" / "reports").iterdir()) == sorted(
        [*REPORTS, "index.html", "site-state.json"]  # the HTML report and its history
    )


def test_a_report_that_cannot_be_written_leaves_every_previous_report_untouched(
    tmp_path, canned_run, monkeypatch, capsys
):
    """The disk fills up at the third report: the first two are not replaced either."""
    for name in REPORTS:
        (tmp_path / name).write_text(f"previous {name}")
    write_text = Path.write_text

    def disk_full(path, text, *args, **kwargs):
        if path.name == "precision.md":
            raise OSError(28, "No space left on device")
        return write_text(path, text, *args, **kwargs)

    monkeypatch.setattr(Path, "write_text", disk_full)
    assert _check(tmp_path) == 2
    assert "No space left on device; the previous reports there are untouched" in (
        capsys.readouterr().err
    )
    assert {p.name: p.read_text() for p in tmp_path.iterdir()} == {
        name: f"previous {name}" for name in REPORTS
    }


def test_reports_replace_the_previous_ones_and_leave_nothing_else(tmp_path):
    for name in REPORTS:
        (tmp_path / name).write_text("previous")
    (tmp_path / "notes.txt").write_text("a user's file")
    report = conformance_json(RECORD, "normspec check")
    written = write_reports(report, RECORD, 0.1, tmp_path)
    assert sorted(p.name for p in written) == sorted(REPORTS)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([*REPORTS, "notes.txt"])
    assert all(p.read_text() != "previous" for p in written)
