"""The record of a run: one result per property x norm x backend, the precision table and the
observed conventions, written as JSON at the end of the session (`--results FILE`).

One `Recorder` per pytest session lives on `config.normspec_recorder`; each property's
`Check` (properties/assertions.py) writes into it. No module-level state.

With a journal (`--journal FILE`), the recorder also appends every event to that file as one
JSON line the moment it happens: a property starting, its result, a new worst precision
ratio, an observed convention, and the end of the session. A run whose process dies (a
segfaulting kernel, os._exit, a hang killed by the runner's time limit) leaves in its journal
everything recorded up to the property that killed it, which the runner names as the
culprit; see normspec/runner/isolation.py.

Every backend call is recorded too, but not as an event: a property makes thousands of calls
a second, so each call's description (and the case being checked) is written over the
previous one in a small file of its own process (`last_call_path`), one system call and no
flush, which outlives the process and which the runner reads only when it died.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest


@dataclass
class Recorder:
    """What a run has recorded so far."""

    results: list[dict] = field(default_factory=list)
    #: (property, backend, norm, dtype, quantity) -> {"worst": ratio, "case": repr}
    worst: dict[tuple[str, str, str, str, str], dict] = field(default_factory=dict)
    conventions: list[dict] = field(default_factory=list)
    journal: Path | None = None
    _file: object = field(default=None, repr=False)
    _call_fd: int | None = field(default=None, repr=False)
    _case: object = field(default=None, repr=False)
    _case_repr: str = field(default="", repr=False)

    def event(self, **event: object) -> None:
        """Append one event to the journal at once, in one write (a crash may follow)."""
        if self.journal is None:
            return
        if self._file is None:
            self._file = os.open(self.journal, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        os.write(self._file, (json.dumps(event, default=str) + "\n").encode())

    @property
    def case(self) -> object:
        """The case being checked, or None before the first of a property."""
        return self._case

    def checking(self, case: object) -> None:
        """A case is being checked: the calls that follow are its."""
        self._case = case
        self._case_repr = ""

    def calling(self, backend: str, method: str, norm: str, description: str) -> None:
        """A backend is about to be called: if it never returns, this was its input (and the
        case being checked), in `last_call_path`."""
        if self.journal is None:
            return
        if self._call_fd is None:
            path = last_call_path(self.journal, os.getpid())
            self._call_fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        if self._case is not None and not self._case_repr:
            self._case_repr = repr(self._case)
        text = f"{backend}.{method}({norm!r}, {description})"
        if self._case_repr:
            text += f", checking {self._case_repr}"
        os.pwrite(self._call_fd, text.encode() + b"\0", 0)

    def start(self, nodeid: str, subject: tuple[str, list, str], property_name: str) -> None:
        """A property starts: if the process dies now, this is the one that killed it."""
        name, _, norm = subject
        self._case = None
        if self._call_fd is not None:
            os.pwrite(self._call_fd, b"\0", 0)
        self.event(
            start=nodeid,
            backend=name,
            norm=norm,
            property=property_name,
            pid=os.getpid(),
        )

    def add(self, record: dict) -> None:
        """One result of a property x norm x backend."""
        self.results.append(record)
        self.event(result=record)

    def precision(self, key: tuple[str, str, str, str, str], ratio: float, case: str) -> None:
        """Keep the worst error / bound ratio seen for `key`, with its case."""
        entry = self.worst.get(key)
        if entry is None or ratio > entry["worst"]:
            self.worst[key] = {"worst": ratio, "case": case}
            self.event(precision=list(key), worst=ratio, case=case)

    def observe(
        self,
        backend: str,
        convention: str,
        declared: object,
        observed: object,
        agrees: bool | None = None,
    ) -> None:
        """Record what `backend` declared for `convention` and what a property observed; they
        agree if equal, unless the property judged agreement itself (a measured number)."""
        entry = {
            "backend": backend,
            "convention": convention,
            "declared": declared,
            "observed": observed,
            "agrees": declared == observed if agrees is None else agrees,
        }
        if entry not in self.conventions:
            self.conventions.append(entry)
            self.event(convention=entry)

    def precision_rows(self) -> list[dict]:
        """The precision table, one row per (property, backend, norm, dtype, quantity)."""
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


def last_call_path(journal: Path, pid: int) -> Path:
    """The file in which process `pid` of a run journaled to `journal` keeps its last call."""
    return journal.with_name(f"{journal.name}.{pid}.call")


def read_last_call(journal: Path, pid: int | None) -> str | None:
    """The last backend call process `pid` made (see `Recorder.calling`), if any."""
    if pid is None:
        return None
    try:
        text = last_call_path(journal, pid).read_bytes().split(b"\0", 1)[0]
    except OSError:
        return None
    return text.decode(errors="replace") or None


def _kind(backends: list) -> str:
    """differential (a pair), control (an honest control: its failure is a bug of normspec),
    or single."""
    from backends.registry import CONTROLS

    if len(backends) > 1:
        return "differential"
    return "control" if backends[0].name in CONTROLS else "single"


def result_record(
    item: pytest.Item,
    report: pytest.TestReport,
    call: pytest.CallInfo,
    subject: tuple[str, list, str],
    cases: int,
) -> dict:
    """The result of one property x norm x backend (or pair), as the reports show it."""
    name, backends, norm = subject
    record = {
        "norm": norm,
        "backend": name,
        "property": item.originalname,
        "kind": _kind(backends),
        "nodeid": item.nodeid,
        "duration_s": round(report.duration, 4),
        "examples": cases,
    }
    if hasattr(report, "wasxfail"):
        # an xfail that passed: these examples did not reach the known deviation
        status = "xfailed" if report.skipped else "xpassed"
        record["reason"] = report.wasxfail
    elif report.skipped:
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        reason = reason.removeprefix("Skipped: ")
        status = "not provided" if reason.startswith("not provided") else "skipped"
        record["reason"] = reason
        record["examples"] = 0  # a skipped cell ran no example
    else:
        status = report.outcome
    record["status"] = status
    if status == "failed" and call.excinfo is not None:
        error = call.excinfo.value
        notes = getattr(error, "__notes__", [])
        record["message"] = str(error).strip()
        record["falsifying_example"] = (
            "\n".join(n for n in notes if n.startswith(("Falsifying", "Draw"))) or None
        )
        record["reproduction"] = (
            f"normspec check {' '.join('--backend ' + b.name for b in backends)} --norm {norm} "
            f"--property {item.originalname} --profile {item.config.getoption('--profile')}"
        )
    return record


def backend_rows(backends: list) -> list[dict]:
    """Each backend of the run: name, version, why it cannot run here, layout, norms."""
    return [
        {
            "name": b.name,
            "version": b.version() if not b.unavailable_reason() else "",
            "unavailable": b.unavailable_reason(),
            "layout": b.conventions.layout,
            "norms": sorted(b.norms),
        }
        for b in backends
    ]


def write_record(
    path: Path,
    *,
    profile: str,
    backends: list,
    recorder: Recorder,
    known_deviations: list[dict],
) -> None:
    """The run's record as JSON: what the runner's reports are made from."""
    record = {
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "profile": profile,
        "backends": backend_rows(backends),
        "results": recorder.results,
        "precision": recorder.precision_rows(),
        "conventions": recorder.conventions,
        "known_deviations": known_deviations,
    }
    path.write_text(json.dumps(record, indent=1, default=str))
