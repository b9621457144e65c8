"""One side of `normspec bench --ab`: a process of interpreter A or B that times on request.

`python -m normspec.bench.worker` reads one JSON request per line on stdin and answers one
JSON line on stdout, {"ok": ...} or {"error": "..."}:

    {"op": "setup", "backends": [...], "threads": n}   set the thread counts; versions, and
                                                        the backends that cannot run here
    {"op": "prepare", "case": {...}, "min_round_s": s, "warmup_s": s, "timer": "cpu"}
                                                        build, trace, warm up, calibrate
    {"op": "time", "iterations": k}                     one round: seconds per call
    {"op": "release"}                                   drop the case (and check its traces)
    {"op": "quit"}

It needs only NumPy, the frameworks of the backends it runs, and this repository on its
path: the second interpreter of an A/B comparison (another virtual environment, another
framework version) does not need normspec installed. Whatever a framework prints goes to
stderr; stdout carries the answers alone.
"""

from __future__ import annotations

import json
import os
import platform
import sys
import traceback
from typing import Any, TextIO

from backends.registry import load_backend
from normspec.bench.calls import Prepared, calibrate, prepare, time_call
from normspec.bench.threads import frameworks_of, set_threads
from normspec.bench.workloads import Case


class Worker:
    """The state of one side: its backends and the case it has prepared."""

    def __init__(self) -> None:
        self.backends: dict[str, Any] = {}
        self.prepared: Prepared | None = None
        self.timer = "cpu"

    def setup(self, backends: list[str], threads: int) -> dict:
        loaded = {name: load_backend(name) for name in backends}
        unavailable = {name: b.unavailable_reason() for name, b in loaded.items()}
        self.backends = {n: b for n, b in loaded.items() if unavailable[n] is None}
        return {
            "executable": sys.executable,
            "threads": set_threads(threads, frameworks_of(list(self.backends.values()))),
            "versions": {
                "python": platform.python_version(),
                **{name: b.version() for name, b in self.backends.items()},
            },
            "unavailable": {n: r for n, r in unavailable.items() if r is not None},
        }

    def prepare(self, case: dict, min_round_s: float, warmup_s: float, timer: str) -> dict:
        self.prepared = None
        parsed = Case.from_dict(case)
        self.prepared = prepare(self.backends[parsed.backend], parsed)
        self.timer = timer
        once, iterations = calibrate(self.prepared, min_round_s, warmup_s, timer)
        return {"call_s": once, "iterations": iterations, "path": self.prepared.path}

    def time(self, iterations: int) -> dict:
        if iterations > 1:  # a short call: one call first, as the other side ran in between
            self.prepared.call()
        return {"seconds": time_call(self.prepared, iterations, self.timer)}

    def release(self) -> dict:
        prepared, self.prepared = self.prepared, None
        if prepared is None:
            return {}
        prepared.check_not_retraced()
        return {"traces": prepared.traces() if prepared.traces else None}


def serve(requests: TextIO, answers: TextIO) -> None:
    """Answer requests until "quit" or the end of input."""
    worker = Worker()
    for line in requests:
        request = json.loads(line)
        op = request.pop("op")
        if op == "quit":
            break
        try:
            answer = {"ok": getattr(worker, op)(**request)}
        except Exception as error:  # reported to the coordinator, which records the row
            traceback.print_exc(file=sys.stderr)
            answer = {"error": f"{type(error).__name__}: {error}"}
        answers.write(json.dumps(answer) + "\n")
        answers.flush()


def main() -> None:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    answers = os.fdopen(os.dup(sys.stdout.fileno()), "w")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())  # stray prints go to stderr
    serve(sys.stdin, answers)


if __name__ == "__main__":
    main()
