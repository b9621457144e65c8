"""Where a run's time goes: drawing, the spec, the backend, the comparisons, and the rest.

A sampling profiler, so that every property is measured without a line of its own: every
millisecond of CPU time the process spends (SIGPROF, all threads counted), the stack of the
main thread is classified by the innermost frame that belongs to a part of normspec:

    drawing     the strategies (properties/strategies.py, shapes.py) and Hypothesis'
                draws under `Check.each`
    building    NumPy building the arrays of the drawn recipes (properties/recipes.py)
    spec        the oracle and the tolerance model (normspec/)
    backend     the adapter and its framework (backends/, properties/checked.py)
    comparison  the assertions (properties/assertions.py)
    property    the property's own arithmetic (properties/test_*.py, helpers.py)
    journal     the run's record (properties/recording.py)
    engine      Hypothesis outside any draw: the engine's per-example work, shrinking
    other       pytest and the rest

NumPy, torch and the other libraries count for whichever part called them. The shares are
estimates (one sample per millisecond of CPU time); `cpu_s` of a property, measured with
`time.process_time`, is exact.
"""

from __future__ import annotations

import atexit
import signal
import threading
import time
from collections import Counter
from pathlib import Path

PARTS = (
    "drawing",
    "building",
    "spec",
    "backend",
    "comparison",
    "property",
    "journal",
    "engine",
    "other",
)
#: Seconds of CPU time between two samples.
INTERVAL_S = 0.001

_ROOT = Path(__file__).resolve().parent.parent
_BY_FILE = {
    "properties/strategies.py": "drawing",
    "properties/shapes.py": "drawing",
    "properties/recipes.py": "building",
    "properties/assertions.py": "comparison",
    "properties/checked.py": "backend",
    "properties/recording.py": "journal",
    "properties/profiling.py": "other",
}
#: A Hypothesis frame: the part is that of the first normspec frame outside it.
_HYPOTHESIS = "hypothesis"


def _part_of(code) -> str | None:
    """The part a code object belongs to; None for a library frame."""
    path = code.co_filename
    if "/hypothesis/" in path:
        return _HYPOTHESIS
    try:
        relative = Path(path).resolve().relative_to(_ROOT).as_posix()
    except ValueError:
        return None
    if relative == "properties/assertions.py" and code.co_name == "each":
        return "drawing"
    if relative in _BY_FILE:
        return _BY_FILE[relative]
    if relative.startswith("backends/"):
        return "backend"
    if relative.startswith("normspec/") and not relative.startswith("normspec/runner/"):
        return "spec"
    if relative.startswith("properties/"):
        return "property"
    if relative.startswith("tests/"):  # mutants and misbehaving adapters are backends
        return "backend"
    return None


class Sampler:
    """Counts samples per part while it runs (`start`, `stop`); one per process."""

    def __init__(self, interval_s: float = INTERVAL_S) -> None:
        self.interval_s = interval_s
        self.samples: Counter[str] = Counter()
        self._parts: dict[object, str | None] = {}
        self._running = False

    def start(self) -> bool:
        """Start sampling; False where it cannot (not the main thread, no SIGPROF)."""
        if self._running:
            return True
        if threading.current_thread() is not threading.main_thread():
            return False
        if not hasattr(signal, "setitimer"):
            return False
        signal.signal(signal.SIGPROF, self._sample)
        signal.siginterrupt(signal.SIGPROF, False)  # system calls resume after a sample
        signal.setitimer(signal.ITIMER_PROF, self.interval_s, self.interval_s)
        self._running = True
        atexit.register(self.stop)  # a SIGPROF at interpreter exit would end the process
        return True

    def stop(self) -> None:
        """Stop sampling."""
        if self._running:
            signal.setitimer(signal.ITIMER_PROF, 0, 0)
            signal.signal(signal.SIGPROF, signal.SIG_IGN)
            self._running = False

    def _sample(self, signum: int, frame) -> None:
        seen_hypothesis, inner = False, None
        while frame is not None:
            code = frame.f_code
            part = self._parts.get(code, 0)
            if part == 0:
                part = self._parts[code] = _part_of(code)
            if part == _HYPOTHESIS:
                seen_hypothesis = True
            elif part is not None:
                # @given's wrapper bears the test's name and file: the engine runs inside it
                wrapper = (
                    part == "property" and inner is not None and inner.co_name == "wrapped_test"
                )
                self.samples["engine" if wrapper else part] += 1
                return
            inner, frame = code, frame.f_back
        self.samples["engine" if seen_hypothesis else "other"] += 1

    def snapshot(self) -> Counter[str]:
        """The samples so far, per part."""
        return Counter(self.samples)


class Stopwatch:
    """CPU seconds and the samples of each part between `begin` and `end` of one property."""

    def __init__(self, sampler: Sampler) -> None:
        self.sampler = sampler
        self._cpu = 0.0
        self._samples: Counter[str] = Counter()

    def begin(self) -> None:
        self._cpu = time.process_time()
        self._samples = self.sampler.snapshot()

    def end(self) -> dict:
        """{"cpu_s": CPU seconds, "time_s": {part: estimated seconds}} since `begin`."""
        cpu = time.process_time() - self._cpu
        counts = self.sampler.snapshot() - self._samples
        total = sum(counts.values())
        shares = {p: round(cpu * counts[p] / total, 4) for p in PARTS if counts[p]} if total else {}
        return {"cpu_s": round(cpu, 4), "time_s": shares}
