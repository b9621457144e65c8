"""A campaign: the property suite run under a budget, and the tally of what it journaled.

The suite runs as `normspec check` runs it (normspec/runner/engine.py builds the pytest
command, normspec/runner/isolation.py runs it in a child that journals every event and is
restarted after a crash or a hang), with the hunt's plugin loaded (normspec/hunt/plugin.py).
The tally reads the journal as it grows, so whatever ends the campaign (its budget, Ctrl-C,
SIGTERM), what was found up to then is kept: the catalogue is written from the tally.

With `--workers N`, N such children run side by side (engine.side_by_side, as `check
--workers` runs them), each on its share of the cells (`--shard I/N`) and each isolated: a
crash or a hang restarts only its own worker, without the culprit. Every worker hunts to the
same deadline, and the budget, Ctrl-C and SIGTERM end them all.
"""

from __future__ import annotations

import _thread
import contextlib
import os
import signal
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from normspec.hunt.tally import Tally
from normspec.runner.engine import CheckRequest, pytest_command, side_by_side
from normspec.runner.isolation import Journal, run_isolated
from normspec.runner.stopping import Stopped, stop_signals_raise

#: Seconds between two updates of the live display.
DISPLAY_EVERY_S = 0.25
#: The least time a cell may overrun its slice and shrinking before it counts as hung.
HANG_GRACE_S = 30.0
#: Seconds a child that journaled its end has to exit (a framework's exit can be slow)
#: before it is ended: everything it found is in the journal already.
EXIT_GRACE_S = 2.0


@dataclass(frozen=True)
class HuntRequest:
    """What `normspec hunt` was asked to run."""

    backends: tuple[str, ...]
    norms: tuple[str, ...] = ()
    properties: tuple[str, ...] = ()
    budget_s: float = 600.0
    #: Hypothesis' example database: a directory, redis://HOST:PORT/N, or none
    database: str = ".normspec/examples"
    known_deviations: tuple[str, ...] = ()
    seed: int | None = None
    workers: int = 1
    shrink_s: float = 5.0
    #: the size budget (--max-elements); None: the hunt profile's, 2^20 values
    max_elements: int | None = None
    #: how far past its slice and shrinking a cell may run before it counts as hung
    hang_grace_s: float = HANG_GRACE_S
    verbose: bool = False


@dataclass
class Campaign:
    """A finished (or stopped) campaign: its tally, wall time and why it ended."""

    tally: Tally
    seconds: float
    #: None: the suite ran to its end; "budget": stopped at the budget; "interrupted": Ctrl-C;
    #: or the name of the signal that stopped it
    stopped: str | None
    pytest_exit: int | None
    output: str
    workdir: Path


def pytest_arguments(request: HuntRequest, workdir: Path, deadline: float) -> list[str]:
    """The pytest command of the campaign: the suite as `check` runs it, under the hunt
    profile, with the hunt's plugin and database."""
    check = CheckRequest(
        backends=request.backends,
        norms=request.norms,
        properties=request.properties,
        profile="hunt",
        max_elements=request.max_elements,
        known_deviations=request.known_deviations,
        verbose=request.verbose,
        pytest_args=(
            "-p",
            "normspec.hunt.plugin",
            "--hunt-deadline",
            repr(deadline),
            "--hunt-dir",
            str(workdir / "arrays"),
            "--hunt-shrink-s",
            repr(request.shrink_s),
            "--database",
            request.database,
            *(() if request.seed is None else ("--hunt-seed", str(request.seed))),
        ),
    )
    return pytest_command(check, workdir / "results.json")


def worker_arguments(
    request: HuntRequest, worker: int, workdir: Path, deadline: float
) -> list[str]:
    """The pytest command of one worker: the campaign's, on its share of the cells (`--shard
    I/N`, every N-th, as `check --workers` shares them). Its plugin shares the time left among
    the cells of its share, up to the same deadline as every other worker's."""
    command = pytest_arguments(request, workdir, deadline)
    if request.workers > 1:
        command += ["--shard", f"{worker}/{request.workers}"]
    return command


def hang_limit(slice_s: float, request: HuntRequest) -> float:
    """How long a cell may run before it counts as hung: its slice, its shrinking, and a
    grace for an example that is slow (a framework's first call builds its kernels)."""
    return slice_s + request.shrink_s + request.hang_grace_s


def run_campaign(
    request: HuntRequest,
    workdir: Path,
    on_update: Callable[[Tally, float], None] | None = None,
) -> Campaign:
    """Run the campaign until the suite ends, the budget is spent, or it is stopped; return
    what it found either way. `on_update(tally, seconds_left)` is called from a thread of its
    own every DISPLAY_EVERY_S (the live display)."""
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL=os.environ.get("TF_CPP_MIN_LOG_LEVEL", "2"))
    cwd = os.getcwd()
    env["PYTHONPATH"] = os.pathsep.join(p for p in (cwd, env.get("PYTHONPATH")) if p)
    from normspec.hunt.budget import reserve

    tally = Tally(workers=request.workers)
    start_wall, start = time.time(), time.monotonic()
    end = start + request.budget_s
    deadline = start_wall + request.budget_s - reserve(request.budget_s)
    budget_spent = threading.Event()
    finished = threading.Event()

    def watch() -> None:
        while not finished.wait(DISPLAY_EVERY_S):
            end_hung_cell(tally, request)
            now = time.monotonic()
            left = end - now
            if on_update is not None:
                on_update(tally, max(left, 0.0))
            exiting = tally.finished is not None and now - tally.finished > EXIT_GRACE_S
            if (left <= 0 or exiting) and not budget_spent.is_set() and not finished.is_set():
                budget_spent.set()
                _thread.interrupt_main()

    stopped, exit_code = None, None
    workdirs = worker_directories(workdir, request.workers)
    logs = [w / "pytest.log" for w in workdirs]

    def part(worker: int, cancel: threading.Event | None) -> tuple[Journal, int]:
        ran = run_isolated(
            worker_arguments(request, worker, workdirs[worker], deadline),
            env=env,
            cwd=cwd,
            workdir=workdirs[worker],
            # hangs are found against each cell's own slice (end_hung_cell); this is the
            # backstop for a child that hangs outside any cell
            timeout_s=request.budget_s + HANG_GRACE_S,
            profile="hunt",
            on_event=tally.reader(worker),
            output=None if request.verbose else outputs[worker],
            cancel=cancel,
        )
        tally.ended(worker)  # a worker done early does not hold the others' end
        return ran

    watcher = threading.Thread(target=watch, name="normspec-hunt-watch", daemon=True)
    with stop_signals_raise(), contextlib.ExitStack() as files:
        outputs = [files.enter_context(log.open("w")) for log in logs]
        watcher.start()
        try:
            # every worker's child is ended on the way out of an interruption: the budget's
            # (interrupt_main above), Ctrl-C's or a signal's
            _, exit_code = side_by_side(part, request.workers)
        except KeyboardInterrupt:
            if not budget_spent.is_set():
                stopped = "interrupted"
            elif tally.finished is None:
                stopped = "budget"
        except Stopped as stop:
            stopped = stop.signal.name
        finally:
            finished.set()
            watcher.join()
    output = "" if request.verbose else "".join(log.read_text(errors="replace") for log in logs)
    return Campaign(tally, time.monotonic() - start, stopped, exit_code, output, workdir)


def worker_directories(workdir: Path, workers: int) -> list[Path]:
    """A directory per worker for its journals, log and saved arrays (one worker: `workdir`)."""
    if workers == 1:
        return [workdir]
    directories = [workdir / f"worker-{index}" for index in range(workers)]
    for directory in directories:
        directory.mkdir(exist_ok=True)
    return directories


def end_hung_cell(tally: Tally, request: HuntRequest) -> None:
    """End each worker's child whose running cell has overrun `hang_limit`: that worker's
    crash isolation then records the cell as failed and starts its share again without it;
    the other workers hunt on."""
    for pid, (nodeid, slice_s, since) in tally.begun():
        limit = hang_limit(slice_s, request)
        if pid is None or time.monotonic() - since <= limit:
            continue
        with tally.lock:
            if nodeid in tally.hung:
                continue
            tally.hung[nodeid] = limit
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGKILL)


def new_workdir() -> Path:
    """A private directory for one campaign's journal, log and saved arrays."""
    return Path(tempfile.mkdtemp(prefix="normspec-hunt-"))


def interrupt_message(stopped: str | None) -> str | None:
    """What the user is told about how the campaign ended, if it did not end by itself."""
    if stopped == "budget":
        return "the budget is spent: the running cell was stopped; what was found is kept"
    if stopped == "interrupted":
        return "interrupted: what was found so far is kept"
    if stopped:
        return f"stopped by {stopped}: what was found so far is kept"
    return None
