"""What changed since the previous run in the same directory.

The site keeps `site-state.json` beside `index.html`: the statuses of the run it shows and of
the run before. A new run (the end of `normspec check`) moves the shown run to "previous";
rebuilding the page from the same conformance.json (`normspec report`, or the end of `hunt`,
`envelope` or `bench`) keeps the previous run it had, so a rebuild never hides a change.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

STATE = "site-state.json"


def cell_key(result: dict) -> str:
    """The name of a cell: norm/property@backend."""
    return f"{result['norm']}/{result['property']}@{result['backend']}"


def run_state(conformance: dict, text: str) -> dict:
    """What the next build needs to know of this run."""
    return {
        "digest": hashlib.sha256(text.encode()).hexdigest(),
        "command": conformance.get("command", ""),
        "summary": conformance["summary"],
        "statuses": {cell_key(r): r["status"] for r in conformance["results"]},
    }


def read_state(directory: Path) -> dict:
    """The state the previous build left, or an empty one (first build, or a state file that
    cannot be read: it only ever costs the comparison, never the site)."""
    try:
        state = json.loads((directory / STATE).read_text())
    except (OSError, ValueError):
        return {}
    return state if isinstance(state, dict) else {}


def next_state(old: dict, current: dict, *, new_run: bool) -> dict:
    """The state to store: this run, and the run to compare it with."""
    shown = old.get("current")
    if not new_run and shown and shown.get("digest") == current["digest"]:
        previous = old.get("previous")
    else:
        previous = shown
    return {"current": current, "previous": previous}


def changes(state: dict) -> list[tuple[str, str | None, str | None]]:
    """(cell, previous status, status) for each cell whose status differs, including cells
    that appeared (previous None) or went away (status None); sorted by cell."""
    previous = (state.get("previous") or {}).get("statuses", {})
    current = state["current"]["statuses"]
    return [
        (key, previous.get(key), current.get(key))
        for key in sorted(previous.keys() | current.keys())
        if previous.get(key) != current.get(key)
    ]
