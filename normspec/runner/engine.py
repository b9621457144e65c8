"""The run engine: runs the property suite through pytest in a subprocess and reads its record.

A subprocess keeps each run's frameworks, thread pools and Hypothesis state apart from the
caller's, and lets a user's external adapter (`package.module:attr`) import from the
directory `normspec check` was started in.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from normspec.runner.isolation import (
    DEFAULT_TIMEOUT_S,
    CancelledError,
    Journal,
    junit_parts,
    run_isolated,
)
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
    known_deviations: tuple[str, ...] = ()
    verbose: bool = False
    pytest_args: tuple[str, ...] = field(default_factory=tuple)
    #: the time limit of one property x norm x backend, in seconds (None: no limit)
    timeout_s: float | None = DEFAULT_TIMEOUT_S
    #: whether to write JUnit XML (CheckRun.junit_xml)
    junit: bool = False
    #: how many pytest processes share the cells (each isolated as above)
    workers: int = 1


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
    its process is recorded as failed and the rest of the suite still runs. With
    `request.workers` = N > 1, N such isolated runs share the cells (`--shard I/N`: every
    N-th cell each) side by side, and their journals are merged; Hypothesis draws each cell's
    examples from the cell alone, so the results are those of one worker. Without
    `on_progress`, pytest's output streams through; with it, pytest's output is kept
    (CheckRun.output) and `on_progress` is called as cells finish. Each child runs in a
    process group of its own, ended with everything it started when this process is
    interrupted (Ctrl-C: KeyboardInterrupt) or stopped (SIGTERM, SIGHUP: Stopped), which then
    propagate: nothing is recorded and no report is written."""
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL=os.environ.get("TF_CPP_MIN_LOG_LEVEL", "2"))
    cwd = os.getcwd()
    env["PYTHONPATH"] = os.pathsep.join(p for p in (cwd, env.get("PYTHONPATH")) if p)
    workers = max(1, request.workers)
    with (
        tempfile.TemporaryDirectory(prefix="normspec-") as tmp,
        stop_signals_raise(),
        contextlib.ExitStack() as files,
    ):
        workdirs = (
            [Path(tmp)] if workers == 1 else [Path(tmp) / f"worker-{i}" for i in range(workers)]
        )
        for workdir in workdirs:
            workdir.mkdir(exist_ok=True)
        progress = Progresses([w / "progress" for w in workdirs]) if on_progress else None
        logs = [w / "pytest.log" for w in workdirs]
        outputs = [files.enter_context(log.open("w")) for log in logs] if progress else None
        on_event = _throttled(progress, on_progress) if progress and on_progress else None

        def part(index: int, cancel: threading.Event | None = None) -> tuple[Journal, int]:
            workdir = workdirs[index]
            command = pytest_command(
                request,
                workdir / "results.json",
                progress_file=workdir / "progress" if progress else None,
            )
            if workers > 1:
                command += ["--shard", f"{index}/{workers}"]
            return run_isolated(
                command,
                env=env,
                cwd=cwd,
                workdir=workdir,
                timeout_s=request.timeout_s,
                profile=request.profile,
                on_event=on_event,
                output=outputs[index] if outputs else None,
                junit=request.junit,
                progress_file=workdir / "progress" if progress else None,
                cancel=cancel,
            )

        start = time.perf_counter()
        journal, exit_code = side_by_side(part, workers)
        seconds = time.perf_counter() - start
        if progress and on_progress:
            on_progress(progress.read())
        junit = None
        if request.junit:
            parts = [p for w in workdirs for p in junit_parts(w)]
            junit = merged_junit(parts, journal.results)
        return CheckRun(
            record=record(request, journal),
            pytest_exit=exit_code,
            seconds=seconds,
            output="".join(log.read_text(errors="replace") for log in logs) if progress else None,
            junit_xml=junit,
        )


def side_by_side(
    part: Callable[[int, threading.Event | None], tuple[Journal, int]], workers: int
) -> tuple[Journal, int]:
    """Run `part(i, cancel)` for every worker i in a thread of its own; merge their journals.
    If this thread is interrupted or stopped, or a part fails, every other part is cancelled
    (`cancel` is set: its child ended) before the exception propagates. One worker's part
    runs in this thread, without `cancel`: an interruption reaches it directly."""
    if workers == 1:
        return part(0, None)
    cancel = threading.Event()
    outcomes: list[tuple[Journal, int] | BaseException | None] = [None] * workers
    # each part says it is over with an Event, not by its thread's end: on CPython before
    # 3.13, a Thread.join() that Ctrl-C (or the hunt's budget, interrupt_main) interrupts can
    # mark a thread that still runs as stopped (python/cpython#90882), and a later join() then
    # returns at once, before that part has ended its child
    over = [threading.Event() for _ in range(workers)]

    def run(index: int) -> None:
        try:
            outcomes[index] = part(index, cancel)
        except BaseException as error:  # handed to the main thread below
            outcomes[index] = error
            cancel.set()
        finally:
            over[index].set()

    threads = [
        threading.Thread(target=run, args=(i,), name=f"normspec-worker-{i}") for i in range(workers)
    ]
    for thread in threads:
        thread.start()
    try:
        for done in over:
            while not done.wait(0.1):
                pass
    except BaseException:
        cancel.set()
        for done in over:
            done.wait()
        raise
    errors = [
        o for o in outcomes if isinstance(o, BaseException) and not isinstance(o, CancelledError)
    ]
    if errors:
        raise errors[0]
    journal, codes = Journal(), []
    for journal_part, code in outcomes:  # type: ignore[misc]
        journal.merge(journal_part)
        codes.append(code)
    # worker i ran cells i, i + N, i + 2N, ... of the selection: dealt back, the results are in
    # the order one worker gives them
    dealt = [part[0].results for part in outcomes]  # type: ignore[index]
    journal.results = [r for round_ in itertools.zip_longest(*dealt) for r in round_ if r]
    return journal, _combined_exit(codes)


def _combined_exit(codes: list[int]) -> int:
    """One pytest exit status for the parts' statuses: an error (2, 3, 4) wins, then a failure
    (1); a part that collected nothing (5) counts only when every part did."""
    errors = [c for c in codes if c not in (0, 1, 5)]
    if errors:
        return errors[0]
    if 1 in codes:
        return 1
    return 5 if all(c == 5 for c in codes) else 0


class Progresses:
    """The progress files of a run's workers, read as one."""

    def __init__(self, paths: list[Path]) -> None:
        self.files = [ProgressFile(path) for path in paths]

    def read(self) -> Progress:
        """The progress so far of every worker together; no total until each has one."""
        parts = [f.read() for f in self.files]
        totals = [p.total for p in parts]
        return Progress(
            done=sum(p.done for p in parts),
            total=None if None in totals else sum(totals),
            failed=sum(p.failed for p in parts),
        )


def _throttled(
    progress: Progresses, on_progress: Callable[[Progress], None]
) -> Callable[[dict], None]:
    """A journal-event callback that reports progress at most every PROGRESS_POLL_S; the
    workers' threads call it, one at a time."""
    last = [0.0]
    lock = threading.Lock()

    def on_event(event: dict) -> None:
        with lock:
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
        "conventions": _in_backend_order(journal.conventions, journal.backends),
        "known_deviations": deviations.records(),
        "crashes": [c["message"] for c in journal.crashes],
        "workers": request.workers,
    }


def _in_backend_order(conventions: list[dict], backends: list[dict]) -> list[dict]:
    """The observed conventions in the order of the run's backends (the order observed kept
    within each), so that the report is the same however many workers ran it."""
    position = {b["name"]: i for i, b in enumerate(backends)}
    return sorted(conventions, key=lambda c: position.get(c["backend"], len(position)))
