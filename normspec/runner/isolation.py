"""Crash isolation: a property that kills or hangs its process is a finding, not the end.

Real kernels segfault, abort and deadlock on odd inputs. The property suite runs in a child
process that journals every event as it happens (`--journal`, properties/recording.py). The
runner watches the journal:

* a property that runs longer than the time limit is killed with its whole process group;
* a child that dies (a signal, os._exit, an abort in native code) is noticed when it exits;

either way the property that was running (started, no result) is recorded as failed, with
the signal, exit status or time limit, and the suite is started again without every test
that already has a result and without the culprit. Every other result is kept. The time
limit applies to each property x norm x backend separately; `normspec check --timeout`
sets it (0 disables it).

The last backend call of each process is kept apart from the journal, in a file the child
overwrites in place (properties/recording.py `last_call_path`), and read only after a crash:
a crashed cell names the call that never returned.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import IO

from normspec.runner.stopping import end_process_group, signals_deferred
from properties.recording import read_last_call

#: The default time limit of one property x norm x backend, in seconds.
DEFAULT_TIMEOUT_S = 600.0
#: How often the runner looks at its child, in seconds.
_POLL_S = 0.05


class CancelledError(Exception):
    """A worker's part of the run was ended because another part of the same run stopped."""


@dataclass
class Journal:
    """Everything a run's children journaled, merged."""

    backends: list[dict] = field(default_factory=list)
    results: list[dict] = field(default_factory=list)
    worst: dict[tuple, dict] = field(default_factory=dict)
    conventions: list[dict] = field(default_factory=list)
    crashes: list[dict] = field(default_factory=list)
    finished: int | None = None
    #: the properties started and not finished, by the pid of their process: (event, since)
    running: dict[int | None, tuple[dict, float]] = field(default_factory=dict)

    def read(self, event: dict) -> None:
        """Take one journaled event."""
        if "backends" in event:
            self.backends = event["backends"]
        elif "start" in event:
            self.running[event.get("pid")] = (event, time.monotonic())
        elif "result" in event:
            self.results.append(event["result"])
            nodeid = event["result"].get("nodeid")
            for pid, (started, _) in list(self.running.items()):
                if started["start"] == nodeid:
                    del self.running[pid]
        elif "precision" in event:
            key = tuple(event["precision"])
            entry = self.worst.get(key)
            if entry is None or event["worst"] > entry["worst"]:
                self.worst[key] = {"worst": event["worst"], "case": event["case"]}
        elif "convention" in event:
            if event["convention"] not in self.conventions:
                self.conventions.append(event["convention"])
        elif "finished" in event:
            self.finished = event["finished"]

    def merge(self, other: Journal) -> None:
        """Take in what another worker's children journaled (`normspec check --workers`)."""
        self.backends = self.backends or other.backends
        self.results += other.results
        for key, entry in other.worst.items():
            if key not in self.worst or entry["worst"] > self.worst[key]["worst"]:
                self.worst[key] = entry
        self.conventions += [c for c in other.conventions if c not in self.conventions]
        self.crashes += other.crashes
        if other.finished is not None:
            self.finished = (self.finished or 0) + other.finished

    def done(self) -> set[str]:
        """The test ids that have a result (a crash counts)."""
        return {r["nodeid"] for r in self.results}

    def precision_rows(self) -> list[dict]:
        """The precision table, as properties/recording.py writes it."""
        return [
            {
                "property": k[0],
                "backend": k[1],
                "norm": k[2],
                "dtype": k[3],
                "quantity": k[4],
                "worst_error_over_bound": v["worst"],
                "case": v["case"],
            }
            for k, v in sorted(self.worst.items())
        ]


def crash_record(started: dict, message: str, seconds: float, profile: str) -> dict:
    """The result of the property that was running when its process died or was killed."""
    backends = started["backend"].split(" vs ")
    return {
        "norm": started["norm"],
        "backend": started["backend"],
        "property": started["property"],
        "kind": "differential" if len(backends) > 1 else "single",
        "nodeid": started["start"],
        "duration_s": round(seconds, 4),
        "examples": 0,
        "status": "failed",
        "message": message,
        "falsifying_example": (
            f"the last call: {started['last_call']}" if "last_call" in started else None
        ),
        "reproduction": (
            f"normspec check {' '.join('--backend ' + b for b in backends)} "
            f"--norm {started['norm']} --property {started['property']} --profile {profile}"
        ),
    }


def why_it_stopped(returncode: int, timed_out: float | None) -> str:
    """What killed the child, in words."""
    if timed_out is not None:
        return (
            f"timed out: no result after {timed_out:g} s, the time limit of one property "
            f"(normspec check --timeout SECONDS changes it); the process was killed"
        )
    if returncode < 0:
        name = signal.Signals(-returncode).name
        return f"crashed: the process was killed by signal {name} ({-returncode}) in this property"
    return (
        f"crashed: the process exited with status {returncode} in this property "
        "(os._exit, or an abort in native code), without a result"
    )


def _stop(process: subprocess.Popen, sig: int = signal.SIGKILL) -> None:
    """Send `sig` to the child's whole process group, and reap it."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, sig)
    process.wait()


def run_isolated(
    command: list[str],
    *,
    env: dict[str, str],
    cwd: str,
    workdir: Path,
    timeout_s: float | None,
    profile: str,
    on_event: Callable[[dict], None] | None = None,
    output: IO | None = None,
    junit: bool = False,
    progress_file: Path | None = None,
    cancel: threading.Event | None = None,
) -> tuple[Journal, int]:
    """Run the suite's pytest `command` until every test has a result; return the merged
    journal and the exit status of the last child (1 if any property crashed or hung).

    The children write their output to `output` (None: this process's), each its JUnit XML
    (if `junit`) to a file of its own (`junit_parts`), and a cell that crashes counts as a
    failed one in `progress_file` (normspec/runner/progress.py). When `cancel` is set (another
    worker of the run stopped), the child is ended and CancelledError raised."""
    journal = Journal()
    skip_file = workdir / "skip-nodeids.txt"
    skip_file.write_text("")
    part = 0
    while True:
        part += 1
        path = workdir / f"journal-{part}.jsonl"
        path.write_text("")
        journal.finished = None
        arguments = [*command, "--journal", str(path), "--skip-nodeids", str(skip_file)]
        if junit:  # a part that crashes writes none: merged_junit adds its results
            arguments.append(f"--junit-xml={workdir / f'junit-{part}.xml'}")
        process = subprocess.Popen(
            arguments, env=env, cwd=cwd, process_group=0, stdout=output, stderr=output
        )
        timed_out = None
        try:
            with path.open() as events:
                pending = ""  # a line the child has not finished writing yet
                while True:
                    returncode = process.poll()
                    *lines, pending = (pending + events.read()).split("\n")
                    for line in lines:
                        event = json.loads(line)
                        journal.read(event)
                        if on_event:
                            on_event(event)
                    if returncode is not None:
                        break
                    if cancel is not None and cancel.is_set():
                        raise CancelledError
                    if timeout_s and _over_time(journal, timeout_s):
                        timed_out = timeout_s
                        _stop(process)
                        returncode = process.returncode
                        break
                    time.sleep(_POLL_S)
        except BaseException:  # Ctrl-C, SIGTERM: the child goes with us
            with signals_deferred():
                end_process_group(process)
            raise
        if journal.finished is not None and not journal.running:
            return journal, 1 if journal.crashes else returncode
        if not journal.running:  # died outside any property: nothing to blame, stop
            journal.crashes.append({"message": why_it_stopped(returncode, timed_out)})
            return journal, returncode if returncode > 0 else 1
        message = why_it_stopped(returncode, timed_out)
        crashed = partial(_crashed, journal, path, profile, progress_file, on_event)
        for pid in list(journal.running):
            crashed(pid, message)
        skip_file.write_text("\n".join(sorted(journal.done())))


def _crashed(
    journal: Journal,
    path: Path,
    profile: str,
    progress_file: Path | None,
    on_event: Callable[[dict], None] | None,
    pid: int | None,
    message: str,
) -> None:
    """Record the property running in process `pid` as failed with `message`, naming the last
    backend call it made."""
    started, since = journal.running.pop(pid)
    last_call = read_last_call(path, started.get("pid"))
    if last_call:
        started["last_call"] = last_call
    record = crash_record(started, message, time.monotonic() - since, profile)
    journal.results.append(record)
    journal.crashes.append(record)
    if progress_file is not None:
        with progress_file.open("a") as progress:
            progress.write("failed\n")
    if on_event:
        on_event({"result": record})


def _over_time(journal: Journal, timeout_s: float) -> bool:
    """Whether the running property has run past the time limit (its child must be killed)."""
    return any(time.monotonic() - since > timeout_s for _, since in journal.running.values())


def junit_parts(workdir: Path) -> list[Path]:
    """The JUnit XML files the parts of a run wrote into `workdir`, in the order they ran."""
    return sorted(workdir.glob("junit-*.xml"), key=lambda p: int(p.stem.split("-")[1]))
