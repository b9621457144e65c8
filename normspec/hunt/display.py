"""The live progress display of `normspec hunt` on a terminal: a few lines, rewritten in place.

    normspec hunt: 1m12s left, cell 45/210 (torch, layer_norm, test_vjp_agrees_with_the_spec)
      examples: numpy 5120, torch 3100, tensorflow 900, exact 3225 (12345 in all, 160/s)
      failures: 3 cells (1 new); worst error/bound 3.2e+04 (tensorflow-nn rms_norm float16)

With `--workers N` the head names the N cells running side by side ("cells 45-46/210 (torch,
...; numpy, ...)") and the counts are those of every worker. When the output is not a
terminal (a CI log) nothing is shown while the hunt runs: its summary at the end says the
same.
"""

from __future__ import annotations

import shutil
import threading
import time
from typing import TextIO

from normspec.hunt.budget import describe
from normspec.hunt.tally import Tally


class Display:
    """Lines of a terminal, rewritten in place from a thread of their own."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.shown = 0
        self.lock = threading.Lock()
        self.start = time.monotonic()

    def update(self, tally: Tally, seconds_left: float) -> None:
        lines = status_lines(tally, seconds_left, time.monotonic() - self.start)
        width = shutil.get_terminal_size().columns - 1
        with self.lock:
            text = "".join("\x1b[2K" + line[:width] + "\n" for line in lines)
            self.stream.write(("\x1b[F" * self.shown) + text)
            self.stream.flush()
            self.shown = len(lines)

    def clear(self) -> None:
        with self.lock:
            if self.shown:
                self.stream.write("\x1b[F\x1b[2K" * self.shown)
                self.stream.flush()
                self.shown = 0


def status_lines(tally: Tally, seconds_left: float, elapsed: float) -> list[str]:
    """What the display shows: time left and the running cells (one per worker); examples per
    backend; failures and the worst error / bound so far."""
    planned, running = tally.planned, tally.running()
    with tally.lock:
        done = len(tally.cells)
    if planned is None:
        head = "starting the property suite (importing the frameworks)"
    else:
        first, last = min(done + 1, planned), min(done + max(len(running), 1), planned)
        head = f"cell {first}/{planned}" if first == last else f"cells {first}-{last}/{planned}"
        if running:
            head += " (" + "; ".join(_cell_named(start) for start in running) + ")"
    counts = tally.examples_by_backend()
    total = tally.examples()
    examples = ", ".join(f"{name} {n}" for name, n in sorted(counts.items())) or "none yet"
    failing, new = tally.failures()
    worst = tally.worst_ratio()
    worst_text = (
        f"worst error/bound {worst[0]:.3g} ({worst[1][1]} {worst[1][2]} {worst[1][3]})"
        if worst
        else "no comparison yet"
    )
    rate = total / elapsed if elapsed > 0 else 0.0
    return [
        f"normspec hunt: {describe(seconds_left)} left, {head}",
        f"  examples: {examples} ({total} in all, {rate:.0f}/s)",
        f"  failures: {failing} cells ({new} new); {worst_text}",
    ]


def _cell_named(start: dict) -> str:
    """A running cell as the display names it: backend, norm, property."""
    return f"{start['backend']}, {start['norm']}, {start['property']}"
