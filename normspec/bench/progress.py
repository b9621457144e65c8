"""Progress of a long run: workload i of n, the current one, the time spent and left.

The time left is the sum, over the steps still to run, of what the same case took in an
earlier pass, or the mean step so far for a case not yet seen; it settles after the first
pass. Lines go to stderr, one per step, so a log file reads as well as a terminal.
"""

from __future__ import annotations

import sys
import time
from typing import TextIO


def duration(seconds: float) -> str:
    """12s, 3m05s, 1h02m."""
    seconds = max(0, round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


class Progress:
    """Announces each step of a run of `keys` (one per step; a key may repeat, per pass)."""

    def __init__(
        self,
        keys: list[str],
        stream: TextIO | None = None,
        label: str = "bench",
        resume: dict | None = None,
    ):
        """`resume`: the `state()` of the same run's progress in an earlier process."""
        resume = resume or {}
        self.keys = keys
        self.stream = stream or sys.stderr
        self.label = label
        self.start = time.monotonic() - resume.get("elapsed", 0.0)
        self.took: dict[str, float] = dict(resume.get("took", {}))
        self.total = resume.get("total", 0.0)
        self.done = resume.get("done", 0)
        self.current: tuple[str, float] | None = None

    def state(self) -> dict:
        """What a later process needs to go on counting and estimating: see `resume`."""
        return {
            "took": self.took,
            "total": self.total,
            "done": self.done,
            "elapsed": time.monotonic() - self.start,
        }

    def left(self) -> float:
        """Estimated seconds for the steps not yet finished."""
        mean = self.total / self.done if self.done else 0.0
        return sum(self.took.get(key, mean) for key in self.keys[self.done :])

    def step(self, key: str, detail: str = "") -> None:
        """Step `key` starts (the one before it, if any, has finished)."""
        self.finish()
        self.current = (key, time.monotonic())
        elapsed = time.monotonic() - self.start
        estimate = f", about {duration(self.left())} left" if self.done else ""
        width = len(str(len(self.keys)))
        print(
            f"{self.label} [{self.done + 1:>{width}}/{len(self.keys)}] {key}{detail}"
            f" ({duration(elapsed)} elapsed{estimate})",
            file=self.stream,
            flush=True,
        )

    def finish(self) -> None:
        """The current step has finished."""
        if self.current is None:
            return
        key, started = self.current
        # the latest pass is the best guess for the next one (the first also prepared)
        self.took[key] = time.monotonic() - started
        self.total += self.took[key]
        self.done += 1
        self.current = None
