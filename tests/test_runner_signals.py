"""Stopping `normspec check` stops everything it started: SIGTERM (a CI job cancelled) and
Ctrl-C end the pytest child and the processes it started, and leave the previous reports as
they were."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.skipif(
    not Path("/proc/self/stat").exists(), reason="finds processes through Linux /proc"
)

SPAWNER = '''
import os
import subprocess

from backends.numpy_backend import NumpyBackend


class Spawner(NumpyBackend):
    """Starts a long-lived helper process on its first forward call, as a framework's
    compiler or worker pool would, and writes the helper's pid where the test can read it."""

    helper = None

    def forward(self, norm, inputs):
        if Spawner.helper is None:
            Spawner.helper = subprocess.Popen(["sleep", "600"])
            with open("helper.pid", "w") as f:
                f.write(f"{os.getpid()} {Spawner.helper.pid}")
        return super().forward(norm, inputs)
'''


def _alive(pid: int) -> bool:
    """Whether `pid` is a running process (a zombie has ended)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def _wait_for(condition, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.1)
    return condition()


def _default_sigint() -> None:
    # a shell starts background jobs with SIGINT ignored, and Python then keeps it ignored;
    # a user's terminal does not
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.mark.parametrize(
    ("number", "exit_status", "says"),
    [
        (signal.SIGTERM, 128 + signal.SIGTERM, "normspec: stopped by SIGTERM"),
        (signal.SIGINT, 128 + signal.SIGINT, "normspec: interrupted"),
    ],
    ids=["SIGTERM", "Ctrl-C"],
)
def test_stopping_check_ends_its_pytest_child_and_what_that_started(
    tmp_path, number, exit_status, says
):
    (tmp_path / "spawner.py").write_text(SPAWNER)
    reports = tmp_path / "reports"
    reports.mkdir()
    (reports / "conformance.md").write_text("the previous report")
    path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)
    check = subprocess.Popen(
        [sys.executable, "-m", "normspec", "check", "--backend", "spawner:Spawner",
         "--norm", "layer_norm", "--property", "test_forward_agrees_with_the_spec",
         "--max-examples", "1000000", "--report-dir", str(reports)],
        cwd=tmp_path, env=dict(os.environ, PYTHONPATH=path), stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE, text=True, preexec_fn=_default_sigint,
    )  # fmt: skip
    started: list[int] = []
    try:
        pid_file = tmp_path / "helper.pid"
        assert _wait_for(lambda: pid_file.exists() and pid_file.read_text(), 120), (
            "the property suite never started"
        )
        started = [int(pid) for pid in pid_file.read_text().split()]
        assert all(_alive(pid) for pid in started)
        check.send_signal(number)
        _, stderr = check.communicate(timeout=60)
        assert check.returncode == exit_status, stderr
        assert says in stderr and "the previous reports are untouched" in stderr
        assert _wait_for(lambda: not any(_alive(pid) for pid in started), 15), (
            f"still running after normspec check ended: {[p for p in started if _alive(p)]}"
        )
        assert [p.name for p in reports.iterdir()] == ["conformance.md"]
        assert (reports / "conformance.md").read_text() == "the previous report"
    finally:
        # on failure, end what this test started, pytest child and helper, by their pids
        for pid in [check.pid, *started]:
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)
        check.wait()
