"""The JSON reports a site is built from, read and checked before anything is written.

The site is generated from these files alone, so a site can be rebuilt from an old run's
JSON. `conformance.json` is required; the envelope, the hunt catalogue and the bench results
are shown when their files are there. A file that is there but cannot be read, or does not
hold what its writer writes, is an error that names it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

CONFORMANCE = "conformance.json"
ENVELOPE = "envelope.json"
HUNT = "hunt/discrepancies.json"
BENCH = "bench"
#: The keys each report must have for the page to show it.
REQUIRED = {
    CONFORMANCE: ("summary", "backends", "results"),
    ENVELOPE: ("command", "summary"),
    HUNT: ("campaign", "entries"),
}


class SiteInputError(ValueError):
    """A report the site is built from is missing or malformed; the message names the file."""


@dataclass(frozen=True)
class Reports:
    """Everything the page shows, as the commands wrote it."""

    directory: Path
    conformance: dict
    #: the raw bytes of conformance.json: what "the same run" means for the history
    conformance_text: str
    envelope: dict | None = None
    envelope_pictures: tuple[str, ...] = ()
    hunt: dict | None = None
    #: every saved bench run that has rows, oldest first
    bench: tuple[dict, ...] = ()
    bench_pictures: tuple[str, ...] = field(default_factory=tuple)


def _load(path: Path, required: tuple[str, ...]) -> tuple[dict, str]:
    """The JSON object at `path` and its text; SiteInputError naming the file otherwise."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise SiteInputError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError) as error:
        raise SiteInputError(f"{path}: cannot be read: {error}") from None
    try:
        document = json.loads(text)
    except json.JSONDecodeError as error:
        raise SiteInputError(
            f"{path}: not valid JSON: {error.msg} at line {error.lineno} column {error.colno}"
        ) from None
    if not isinstance(document, dict):
        raise SiteInputError(f"{path}: expected a JSON object, got {type(document).__name__}")
    missing = [k for k in required if k not in document]
    if missing:
        raise SiteInputError(f"{path}: lacks the key(s) {', '.join(missing)}")
    return document, text


def _results_problem(conformance: dict) -> str | None:
    for i, r in enumerate(conformance["results"]):
        if not isinstance(r, dict) or not {"norm", "property", "backend", "status"} <= r.keys():
            return f"results[{i}] lacks norm, property, backend or status"
    return None


def _bench_runs(directory: Path) -> tuple[dict, ...]:
    """The saved runs of `normspec bench` (bench/*.json with rows), oldest first; an A/B
    comparison has no rows of its own and is left out."""
    runs = []
    for path in sorted((directory / BENCH).glob("*.json")):
        document, _ = _load(path, ())
        ours = document.get("normspec")
        if isinstance(ours, dict) and isinstance(ours.get("rows"), list):
            runs.append(dict(ours, file=f"{BENCH}/{path.name}"))
    return tuple(sorted(runs, key=lambda r: str(r.get("created", ""))))


def load_reports(directory: Path) -> Reports:
    """Read every report in `directory` the site shows, or raise SiteInputError."""
    conformance, text = _load(directory / CONFORMANCE, REQUIRED[CONFORMANCE])
    problem = _results_problem(conformance)
    if problem:
        raise SiteInputError(f"{directory / CONFORMANCE}: {problem}")
    envelope = hunt = None
    if (directory / ENVELOPE).exists():
        envelope, _ = _load(directory / ENVELOPE, REQUIRED[ENVELOPE])
    if (directory / HUNT).exists():
        hunt, _ = _load(directory / HUNT, REQUIRED[HUNT])
    return Reports(
        directory=directory,
        conformance=conformance,
        conformance_text=text,
        envelope=envelope,
        envelope_pictures=tuple(sorted(p.name for p in directory.glob("envelope-*.png"))),
        hunt=hunt,
        bench=_bench_runs(directory),
        bench_pictures=tuple(sorted(p.name for p in directory.glob("bench*.png"))),
    )
