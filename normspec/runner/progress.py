"""Progress of a run: cells done of cells, and failures so far.

Two halves of one small protocol. The pytest child loads this module as a plugin
(`-p normspec.runner.progress --progress-file FILE`) and appends to FILE a line `total N`
once the cells are collected, then `done` or `failed` as each cell finishes. A run that
restarts pytest after a crash (normspec/runner/isolation.py) appends a `failed` for the cell
that crashed, and the restarted child a `total` of the cells not yet done. The engine
reads the file as it grows (`ProgressFile`), and `normspec check` shows the count on one
line of its terminal (`ProgressLine`), which nothing else writes to meanwhile.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

if TYPE_CHECKING:  # the plugin's hooks receive pytest's objects; this process needs no pytest
    import pytest

# -- in the pytest child ------------------------------------------------------------------


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.getgroup("normspec").addoption(
        "--progress-file", default=None, help="append a line per finished test here"
    )


def pytest_configure(config: pytest.Config) -> None:
    path = config.getoption("--progress-file")
    if path and not hasattr(config, "workerinput"):  # pytest-xdist's controller counts
        writer = XdistProgressWriter if config.pluginmanager.hasplugin("xdist") else ProgressWriter
        config.pluginmanager.register(writer(Path(path)), "normspec-progress-writer")


class ProgressWriter:
    """Appends `total N`, then `done` or `failed` per finished cell, a line at a time."""

    def __init__(self, path: Path) -> None:
        self.file = path.open("a", buffering=1)
        self.failed: set[str] = set()
        self.collected = False

    def pytest_collection_finish(self, session: pytest.Session) -> None:
        if not session.config.getoption("numprocesses", None):
            self.file.write(f"total {len(session.items)}\n")

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if report.failed:  # in setup, call or teardown: the cell failed
            self.failed.add(report.nodeid)

    def pytest_runtest_logfinish(self, nodeid: str) -> None:
        self.file.write("failed\n" if nodeid in self.failed else "done\n")

    def pytest_unconfigure(self) -> None:
        self.file.close()


class XdistProgressWriter(ProgressWriter):
    """The same, in pytest-xdist's controller, which collects no cells: its workers do."""

    def pytest_xdist_node_collection_finished(self, node: object, ids: list[str]) -> None:
        if not self.collected:  # every worker collects the same cells
            self.collected = True
            self.file.write(f"total {len(ids)}\n")


# -- in normspec check --------------------------------------------------------------------


@dataclass(frozen=True)
class Progress:
    """How far a run is: cells done of `total` (None until collected), failures so far."""

    done: int = 0
    total: int | None = None
    failed: int = 0


class ProgressFile:
    """The child's progress file, read as it grows."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.offset = 0
        self.progress = Progress()

    def read(self) -> Progress:
        """The progress so far, counting only complete lines."""
        if not self.path.exists():
            return self.progress
        with self.path.open() as f:
            f.seek(self.offset)
            text = f.read()
        complete = text[: text.rfind("\n") + 1]
        self.offset += len(complete)
        done, total, failed = self.progress.done, self.progress.total, self.progress.failed
        for line in complete.splitlines():
            if line.startswith("total "):
                # a later `total` comes from a restarted child, which collects only the cells
                # not yet done: they come on top of those
                total = done + int(line.split()[1])
            elif line in ("done", "failed"):
                done += 1
                failed += line == "failed"
        self.progress = Progress(done, total, failed)
        return self.progress


class ProgressLine:
    """One line of a terminal, rewritten in place: `normspec: 120/889 cells, 2 failed`."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.shown = ""

    def show(self, progress: Progress) -> None:
        if progress.total is None:
            text = "normspec: collecting the cells"
        else:
            text = f"normspec: {progress.done}/{progress.total} cells, {progress.failed} failed"
        text = text[: shutil.get_terminal_size().columns - 1]
        if text != self.shown:
            self.stream.write("\r\x1b[K" + text)
            self.stream.flush()
            self.shown = text

    def clear(self) -> None:
        if self.shown:
            self.stream.write("\r\x1b[K")
            self.stream.flush()
            self.shown = ""
