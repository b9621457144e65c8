"""A hunt's budget: how long it runs, written as a person writes it ("10m", "90s", "1h30m").

The budget is wall-clock time from the start of `normspec hunt` to the end of its search; the
pytest child shares what is left equally among the cells it has not started
(normspec/hunt/plugin.py). A little of it is kept back for writing the catalogue and the
reproducers, so that the command ends close to its budget, not after it.
"""

from __future__ import annotations

import re

_PART = re.compile(r"(\d+(?:\.\d+)?)([hms]?)")
_UNIT = {"h": 3600.0, "m": 60.0, "s": 1.0, "": 1.0}


class BudgetError(ValueError):
    """A budget that is not a duration."""


def parse_budget(text: str) -> float:
    """Seconds in `text`: a number of seconds, or parts like 1h, 30m, 45s, 1.5m in a row."""
    compact = text.strip().lower().replace(" ", "")
    position, seconds = 0, 0.0
    while position < len(compact):
        found = _PART.match(compact, position)
        if found is None or found.end() == position:
            break
        seconds += float(found[1]) * _UNIT[found[2]]
        position = found.end()
    if not compact or position != len(compact):
        raise BudgetError(f"--budget {text!r} is not a duration: write e.g. 90s, 10m or 1h30m")
    if seconds <= 0:
        raise BudgetError(f"--budget must be more than 0 seconds, got {text!r}")
    return seconds


def reserve(budget_s: float) -> float:
    """Seconds kept back from the search for ending the suite (the running cell, pytest's
    own ending) and for writing the catalogue and the reproducers."""
    return min(15.0, max(3.0, 0.05 * budget_s), budget_s / 3)


def describe(seconds: float) -> str:
    """`seconds` as 1h02m, 4m05s or 12s."""
    seconds = max(0, round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes:02d}m"
    if minutes:
        return f"{minutes}m{secs:02d}s"
    return f"{secs}s"
