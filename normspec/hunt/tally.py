"""The tally of a campaign: everything its children journaled, as it arrives.

A campaign runs the suite in one pytest child per worker (`hunt --workers N`, each with its
share of the cells), and each worker's thread hands the tally that child's events. What was
found (cells, hits, culprits, results, the worst errors) is one pool; what a child is doing
now (its plan, its running cell, its process) is kept per worker, so that the hang watch
ends the right child and the display counts every worker.
"""

from __future__ import annotations

import threading
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass
class Worker:
    """What one worker's child is doing now, as its journal tells it."""

    #: cells its children planned (a restarted child plans only the cells not yet done)
    planned: int | None = None
    #: cells it finished (their `cell` events)
    done: int = 0
    #: the `start` event of its running test, and the last `tick` of its running cell
    running: dict | None = None
    tick: dict | None = None
    #: its child's process (and group) id, and the running cell, its slice and when it began
    pid: int | None = None
    begun: tuple[str, float, float] | None = None
    #: when its child journaled the end of the suite, or its part of the run ended
    #: (time.monotonic()), or None
    finished: float | None = None


@dataclass
class Tally:
    """Everything the campaign's children journaled, as it arrives (thread-safe: the workers'
    threads write it, the watch and the display read it)."""

    #: how many workers hand it events (`hunt --workers`)
    workers: int = 1
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    by_worker: dict[int, Worker] = field(default_factory=dict)
    cells: dict[str, dict] = field(default_factory=dict)
    hits: dict[str, list[dict]] = field(default_factory=lambda: defaultdict(list))
    culprits: dict[str, list[dict]] = field(default_factory=lambda: defaultdict(list))
    results: list[dict] = field(default_factory=list)
    worst: dict[tuple, dict] = field(default_factory=dict)
    backends: list[dict] = field(default_factory=list)
    #: cells ended because they hung: nodeid -> the limit they ran past, in seconds
    hung: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.by_worker = {index: Worker() for index in range(self.workers)}

    def reader(self, worker: int) -> Callable[[dict], None]:
        """The journal callback of `worker`'s children."""
        return lambda event: self.read(event, worker)

    def read(self, event: dict, worker: int = 0) -> None:
        """Take one journaled event (the suite's own, and the hunt plugin's) of `worker`."""
        with self.lock:
            state = self.by_worker[worker]
            if "hunt" in event:
                self._hunt(state, event["hunt"], event["data"])
            elif "result" in event:
                self.results.append(event["result"])
                state.running = state.tick = state.begun = None
            elif "start" in event:
                state.running, state.tick = event, None
            elif "precision" in event:
                key = tuple(event["precision"])
                if key not in self.worst or event["worst"] > self.worst[key]["worst"]:
                    self.worst[key] = {"worst": event["worst"], "case": event["case"]}
            elif "backends" in event:
                self.backends = event["backends"]
            elif "finished" in event:
                state.finished = time.monotonic()

    def _hunt(self, state: Worker, kind: str, data: dict) -> None:
        if kind == "plan":
            state.planned = state.done + data["cells"]
            state.pid = data.get("pid")
            state.finished = None
        elif kind == "begin":
            state.begun = (data["nodeid"], data["slice_s"], time.monotonic())
        elif kind == "cell":
            self.cells[data["nodeid"]] = data
            state.done += 1
        elif kind == "tick":
            state.tick = data
        elif kind == "hit":
            self.hits[data["nodeid"]].append(data)
        elif kind == "culprit":
            self.culprits[data["nodeid"]].append(data)

    def ended(self, worker: int) -> None:
        """`worker`'s part of the run is over (its suite ended, or its child died outside any
        cell): it counts as finished."""
        with self.lock:
            state = self.by_worker[worker]
            state.finished = state.finished or time.monotonic()

    @property
    def planned(self) -> int | None:
        """Cells planned by every worker that has planned so far (None: none has yet)."""
        with self.lock:
            plans = [w.planned for w in self.by_worker.values() if w.planned is not None]
        return sum(plans) if plans else None

    @property
    def finished(self) -> float | None:
        """When the last worker finished (time.monotonic()), or None while one has not."""
        with self.lock:
            ends = [w.finished for w in self.by_worker.values()]
        return None if None in ends else max(ends)

    def running(self) -> list[dict]:
        """The `start` events of the tests the workers are running now, in worker order."""
        with self.lock:
            return [w.running for w in self.by_worker.values() if w.running]

    def begun(self) -> list[tuple[int | None, tuple[str, float, float]]]:
        """(the child's process id, (nodeid, slice, since)) of each worker's running cell."""
        with self.lock:
            return [(w.pid, w.begun) for w in self.by_worker.values() if w.begun is not None]

    def _running_ticks(self) -> list[tuple[dict, dict]]:
        """(start event, last tick) of each worker's running cell that has ticked."""
        return [
            (w.running, w.tick)
            for w in self.by_worker.values()
            if w.tick and w.running and w.tick["nodeid"] == w.running["start"]
        ]

    def examples_by_backend(self) -> dict[str, int]:
        """Examples tried per backend; a pair's examples count for both of its members."""
        with self.lock:
            counts: dict[str, int] = defaultdict(int)
            for cell in self.cells.values():
                for member in cell["members"]:
                    counts[member] += cell["examples"]
            for running, tick in self._running_ticks():
                for member in running["backend"].split(" vs "):
                    counts[member] += tick["examples"]
            return dict(counts)

    def examples(self) -> int:
        """Examples tried in all, those of the running cells included."""
        with self.lock:
            done = sum(cell["examples"] for cell in self.cells.values())
            return done + sum(tick["examples"] for _, tick in self._running_ticks())

    def failures(self) -> tuple[int, int]:
        """(cells with a failing example, those of them not covered by a known deviation)."""
        with self.lock:
            failing = [hits[0] for hits in self.hits.values() if hits]
            return len(failing), sum(1 for h in failing if not h.get("known"))

    def worst_ratio(self) -> tuple[float, tuple] | None:
        """The worst error / bound seen so far and its (property, backend, norm, dtype, what)."""
        with self.lock:
            if not self.worst:
                return None
            key = max(self.worst, key=lambda k: self.worst[k]["worst"])
            return self.worst[key]["worst"], key
