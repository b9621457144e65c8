"""The run engine: runs the property suite through pytest in a subprocess and reads its record.

A subprocess keeps each run's frameworks, thread pools and Hypothesis state apart from the
caller's, and lets a user's external adapter (`package.module:attr`) import from the
directory `normspec check` was started in.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

PROPERTIES = Path(__file__).resolve().parents[2] / "properties"


@dataclass(frozen=True)
class CheckRequest:
    """What `normspec check` was asked to run."""

    backends: tuple[str, ...] = ()
    norms: tuple[str, ...] = ()
    properties: tuple[str, ...] = ()
    profile: str = "ci"
    max_examples: int | None = None
    known_deviations: tuple[str, ...] = ()
    verbose: bool = False
    pytest_args: tuple[str, ...] = field(default_factory=tuple)


@dataclass(frozen=True)
class CheckRun:
    """The record the property suite wrote, with pytest's exit status and the wall time."""

    record: dict
    pytest_exit: int
    seconds: float


def pytest_command(request: CheckRequest, results: Path) -> list[str]:
    """The pytest command line that runs the requested properties and records to `results`."""
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
    for name in request.properties:
        command += ["--property", name]
    return command + list(request.pytest_args)


def run_properties(request: CheckRequest) -> CheckRun:
    """Run the property suite, streaming pytest's progress, and return what it recorded."""
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL=os.environ.get("TF_CPP_MIN_LOG_LEVEL", "2"))
    cwd = os.getcwd()
    env["PYTHONPATH"] = os.pathsep.join(p for p in (cwd, env.get("PYTHONPATH")) if p)
    with tempfile.TemporaryDirectory(prefix="normspec-") as tmp:
        results = Path(tmp) / "results.json"
        start = time.perf_counter()
        exit_code = subprocess.call(pytest_command(request, results), env=env, cwd=cwd)
        seconds = time.perf_counter() - start
        record = json.loads(results.read_text()) if results.exists() else {}
    return CheckRun(record, exit_code, seconds)
