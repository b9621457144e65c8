"""What a CI system and a person at a terminal see of a run: JUnit XML with one test case per
norm x property x backend, and, on a terminal only, one line of progress (cells done of
cells, failures so far) while the run lasts."""

from __future__ import annotations

import json
import os
import pty
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

import normspec.runner.cli as cli
from normspec.runner.cli import main
from normspec.runner.junit import merged_junit
from normspec.runner.progress import Progress, ProgressFile

ROOT = Path(__file__).resolve().parent.parent
MUTANT = "tests.mutants.numpy_mutants:EpsDropped"
PROPERTY = "test_output_has_zero_mean_and_unit_variance"
#: numpy passes, the mutant fails: two cells, one failure
SELECTION = ("--backend", "numpy", "--backend", MUTANT, "--norm", "batch_norm",
             "--property", PROPERTY)  # fmt: skip


def _env() -> dict[str, str]:
    path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)
    return dict(os.environ, PYTHONPATH=path)


def test_junit_xml_has_one_test_case_per_norm_property_and_backend(tmp_path):
    junit = tmp_path / "ci" / "normspec.xml"
    done = subprocess.run(
        [sys.executable, "-m", "normspec", "check", *SELECTION,
         "--report-dir", str(tmp_path / "reports"), "--junit-xml", str(junit)],
        cwd=ROOT, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert done.returncode == 1, done.stdout + done.stderr
    suite = ET.parse(junit).getroot().find("testsuite")
    cases = {c.get("name"): c for c in suite.iter("testcase")}
    assert set(cases) == {f"{PROPERTY}[numpy-batch_norm]", f"{PROPERTY}[{MUTANT}-batch_norm]"}
    assert cases[f"{PROPERTY}[{MUTANT}-batch_norm]"].find("failure") is not None
    assert cases[f"{PROPERTY}[numpy-batch_norm]"].find("failure") is None
    assert (suite.get("name"), suite.get("tests"), suite.get("failures")) == ("normspec", "2", "1")
    results = json.loads((tmp_path / "reports" / "conformance.json").read_text())["results"]
    assert len(results) == len(cases)


def test_a_junit_xml_path_that_is_a_directory_is_refused_before_the_run(
    tmp_path, monkeypatch, capsys
):
    monkeypatch.setattr(cli, "run_properties", lambda *a, **k: pytest.fail("the suite ran"))
    code = main(["check", "--backend", "numpy", "--junit-xml", str(tmp_path),
                 "--report-dir", str(tmp_path / "reports")])  # fmt: skip
    assert code == 2
    assert f"--junit-xml {tmp_path} is a directory" in capsys.readouterr().err


def test_junit_parts_of_one_run_merge_into_one_suite(tmp_path):
    """A run made of several pytest processes (one per part) gives one suite."""
    parts = []
    for i, outcome in enumerate(["", '<failure message="x" />']):
        part = tmp_path / f"part{i}.xml"
        part.write_text(
            '<testsuites><testsuite name="normspec" errors="0" failures="0" skipped="0" '
            f'tests="1" time="1.0"><testcase classname="c" name="t{i}" time="1.5">{outcome}'
            "</testcase></testsuite></testsuites>"
        )
        parts.append(part)
    suite = ET.fromstring(merged_junit([*parts, tmp_path / "missing.xml"])).find("testsuite")
    assert [c.get("name") for c in suite.iter("testcase")] == ["t0", "t1"]
    assert (suite.get("tests"), suite.get("failures"), suite.get("time")) == ("2", "1", "3.000")


def _on_a_terminal(*args: str) -> tuple[int, str]:
    """Run normspec with its output on a pseudo-terminal; its exit status and what it showed."""
    controller, terminal = pty.openpty()
    process = subprocess.Popen(
        [sys.executable, "-m", "normspec", *args],
        cwd=ROOT, env=_env(), stdin=subprocess.DEVNULL, stdout=terminal, stderr=terminal,
    )  # fmt: skip
    os.close(terminal)
    shown = b""
    while True:
        try:
            chunk = os.read(controller, 65536)
        except OSError:  # EIO: every writer of the terminal has gone
            break
        if not chunk:
            break
        shown += chunk
    os.close(controller)
    return process.wait(timeout=600), shown.decode(errors="replace")


def test_a_terminal_shows_one_progress_line_and_the_failures(tmp_path):
    status, shown = _on_a_terminal("check", *SELECTION, "--report-dir", str(tmp_path))
    assert status == 1, shown
    assert "\r\x1b[Knormspec: 2/2 cells, 1 failed" in shown
    assert "[100%]" not in shown  # pytest's own progress is not shown
    assert f"FAILED batch_norm on {MUTANT}: {PROPERTY}" in shown
    assert f"reproduce: normspec check --backend {MUTANT} --norm batch_norm" in shown
    assert "normspec: 1 failed, 1 passed" in shown


def test_output_that_is_not_a_terminal_has_no_progress_line(tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "normspec", "check", *SELECTION, "--report-dir", str(tmp_path)],
        cwd=ROOT, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert done.returncode == 1, done.stdout + done.stderr
    assert "\r" not in done.stdout and "cells," not in done.stdout
    assert "normspec: 1 failed, 1 passed" in done.stdout


def test_the_progress_file_counts_only_complete_lines(tmp_path):
    path = tmp_path / "progress"
    progress = ProgressFile(path)
    assert progress.read() == Progress()
    path.write_text("total 3\ndone\nfai")
    assert progress.read() == Progress(done=1, total=3, failed=0)
    with path.open("a") as f:
        f.write("led\ndone\n")
    assert progress.read() == Progress(done=3, total=3, failed=1)


def test_junit_xml_keeps_the_cells_of_a_part_that_crashed(tmp_path):
    """A segfault takes its pytest process down before it writes its XML: the cells it had
    finished, and the crashed one, come from the run's record."""
    junit = tmp_path / "normspec.xml"
    done = subprocess.run(
        [sys.executable, "-m", "normspec", "check", "--backend", "numpy",
         "--backend", "tests.adapters.crashing:SegfaultsOnGroupNorm",
         "--norm", "layer_norm", "--norm", "group_norm",
         "--property", "test_forward_agrees_with_the_spec",
         "--report-dir", str(tmp_path / "reports"), "--junit-xml", str(junit)],
        cwd=ROOT, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert done.returncode == 1, done.stdout + done.stderr
    cases = {c.get("name"): c for c in ET.parse(junit).getroot().iter("testcase")}
    crashed = (
        "test_forward_agrees_with_the_spec[tests.adapters.crashing:SegfaultsOnGroupNorm-group_norm]"
    )
    assert len(cases) == 4, sorted(cases)
    assert "SIGSEGV" in cases[crashed].find("failure").text
    results = json.loads((tmp_path / "reports" / "conformance.json").read_text())["results"]
    assert len(results) == len(cases)


def test_a_restarted_child_adds_the_cells_it_collects_to_those_done(tmp_path):
    path = tmp_path / "progress"
    path.write_text("total 4\ndone\nfailed\ntotal 2\ndone\n")
    assert ProgressFile(path).read() == Progress(done=3, total=4, failed=1)
