"""The run engine: runs the property suite through pytest in a subprocess and reads its record.

A subprocess keeps each run's frameworks, thread pools and Hypothesis state apart from the
caller's, and lets a user's external adapter (`package.module:attr`) import from the
directory `normspec check` was started in.
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from normspec.runner.isolation import DEFAULT_TIMEOUT_S, Journal, junit_parts, run_isolated
from normspec.runner.junit import PYTEST_OPTIONS as JUNIT_OPTIONS
from normspec.runner.junit import merged_junit
from normspec.runner.progress import Progress, ProgressFile
from normspec.runner.stopping import stop_signals_raise
from properties.deviations import KNOWN_DEVIATIONS, Deviations, load_deviations

PROPERTIES = Path(__file__).resolve().parents[2] / "properties"
#: Seconds between two updates of the progress line.
PROGRESS_POLL_S = 0.2


@dataclass(frozen=True)
class CheckRequest:
    """What `normspec check` was asked to run."""

    backends: tuple[str, ...] = ()
    norms: tuple[str, ...] = ()
    properties: tuple[str, ...] = ()
    profile: str = "ci"
    max_examples: int | None = None
    #: the size budget of every drawn input (None: the suite's default)
    max_elements: int | None = None
    #: processes running the properties (pytest-xdist above 1)
    workers: int = 1
    known_deviations: tuple[str, ...] = ()
    verbose: bool = False
    pytest_args: tuple[str, ...] = field(default_factory=tuple)
    #: the time limit of one property x norm x backend, in seconds (None: no limit)
    timeout_s: float | None = DEFAULT_TIMEOUT_S
    #: whether to write JUnit XML (CheckRun.junit_xml)
    junit: bool = False


@dataclass(frozen=True)
class CheckRun:
    """The record the property suite wrote, with pytest's exit status and the wall time."""

    record: dict
    pytest_exit: int
    seconds: float
    #: pytest's output, when it was kept for the caller rather than shown (None: shown)
    output: str | None = None
    #: the JUnit XML of the run, if the request asked for it
    junit_xml: str | None = None


def pytest_command(
    request: CheckRequest, results: Path, *, progress_file: Path | None = None
) -> list[str]:
    """The pytest command line that runs the requested properties and records to `results`
    (and appends its progress to `progress_file`, if given)."""
    command = [
        sys.executable,
        "-m",
        "pytest",
        str(PROPERTIES),
        "-p",
        "no:cacheprovider",
        "--profile",
        request.profile,
        "--results",
        str(results),
        "-W",
        "ignore::RuntimeWarning",
        "--tb=short" if request.verbose else "--tb=no",
        "-rfX",
        "-v" if request.verbose else "-q",
    ]
    for name in request.backends:
        command += ["--backend", name]
    for name in request.norms:
        command += ["--norm", name]
    for path in request.known_deviations:
        command += ["--known-deviations", path]
    if request.max_examples is not None:
        command += ["--max-examples", str(request.max_examples)]
    if request.max_elements is not None:
        command += ["--max-elements", str(request.max_elements)]
    if request.workers > 1:
        # a crashed worker is replaced however often: each crash is one property's finding
        command += ["-p", "xdist", "-n", str(request.workers), "--dist", "worksteal"]
        command += ["--max-worker-restart", "1000000"]
    for name in request.properties:
        command += ["--property", name]
    if request.junit:
        command += list(JUNIT_OPTIONS)  # the file of each part: isolation.run_isolated
    if progress_file is not None:
        command += ["-p", "normspec.runner.progress", "--progress-file", str(progress_file)]
    return command + list(request.pytest_args)


def run_properties(
    request: CheckRequest, on_progress: Callable[[Progress], None] | None = None
) -> CheckRun:
    """Run the property suite and return what it recorded.

    The suite runs isolated (normspec/runner/isolation.py): a property that crashes or hangs
    its process is recorded as failed and the rest of the suite still runs. Without
    `on_progress`, pytest's output streams through; with it, pytest's output is kept
    (CheckRun.output) and `on_progress` is called as cells finish. Each child runs in a
    process group of its own, ended with everything it started when this process is
    interrupted (Ctrl-C: KeyboardInterrupt) or stopped (SIGTERM, SIGHUP: Stopped), which then
    propagate: nothing is recorded and no report is written."""
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL=os.environ.get("TF_CPP_MIN_LOG_LEVEL", "2"))
    cwd = os.getcwd()
    env["PYTHONPATH"] = os.pathsep.join(p for p in (cwd, env.get("PYTHONPATH")) if p)
    with (
        tempfile.TemporaryDirectory(prefix="normspec-") as tmp,
        stop_signals_raise(),
        contextlib.ExitStack() as files,
    ):
        workdir = Path(tmp)
        progress = ProgressFile(workdir / "progress") if on_progress else None
        output = files.enter_context((workdir / "pytest.log").open("w")) if progress else None
        start = time.perf_counter()
        journal, exit_code = run_isolated(
            pytest_command(
                request,
                workdir / "results.json",
                progress_file=progress.path if progress else None,
            ),
            env=env,
            cwd=cwd,
            workdir=workdir,
            timeout_s=request.timeout_s,
            profile=request.profile,
            on_event=_throttled(progress, on_progress) if progress else None,
            output=output,
            junit=request.junit,
            progress_file=progress.path if progress else None,
        )
        seconds = time.perf_counter() - start
        if progress and on_progress:
            on_progress(progress.read())
        junit = merged_junit(junit_parts(workdir), journal.results) if request.junit else None
        return CheckRun(
            record=record(request, journal),
            pytest_exit=exit_code,
            seconds=seconds,
            output=(workdir / "pytest.log").read_text(errors="replace") if progress else None,
            junit_xml=junit,
        )


def _throttled(
    progress: ProgressFile, on_progress: Callable[[Progress], None]
) -> Callable[[dict], None]:
    """A journal-event callback that reports progress at most every PROGRESS_POLL_S."""
    last = [0.0]

    def on_event(event: dict) -> None:
        now = time.monotonic()
        if now - last[0] >= PROGRESS_POLL_S or "finished" in event:
            last[0] = now
            on_progress(progress.read())

    return on_event


def record(request: CheckRequest, journal: Journal) -> dict:
    """The run's record, as properties/recording.py writes it, from the merged journal; the
    known deviations are tallied over every part of the run."""
    deviations = Deviations(
        load_deviations([KNOWN_DEVIATIONS, *map(Path, request.known_deviations)])
    )
    for result in journal.results:
        deviations.count(result)
    deviations.settle(
        profile=request.profile, full_run=not request.norms and not request.properties
    )
    return {
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "profile": request.profile,
        "backends": journal.backends,
        "results": journal.results,
        "precision": journal.precision_rows(),
        "conventions": journal.conventions,
        "known_deviations": deviations.records(),
        "crashes": [c["message"] for c in journal.crashes],
        "workers": request.workers,
    }
