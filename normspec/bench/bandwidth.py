"""The physical limit: the memory bandwidth of this machine, measured by a large copy.

A normalization layer does little arithmetic per value; on a CPU it is bound by memory
traffic. The fastest any kernel can move a workload's bytes is about the speed of a plain
copy, so `normspec bench` measures a copy at the start of the run and reports each workload's
effective bandwidth (its minimal bytes over its median time) as a fraction of it.

The probe copies a buffer of `PROBE_BYTES` (larger than any workload's arrays) with NumPy
and keeps the best rate over repeats: the limit is what the machine can do, and on a shared
machine every slower repeat is someone else's load. It is timed as the rows are: with one
thread on the process's CPU time (the time the copy ran, not the time the scheduler gave
to other processes), with more on the wall clock, the copy split over as many Python
threads as the frameworks were given (NumPy releases the GIL while it copies), so a layer
on one thread is compared with a copy on one thread. The copy over every core, on the wall
clock, is recorded beside it as what the whole machine allows. Bytes are counted as STREAM
counts a copy, read plus written (2 x the buffer); the write-allocate read a cache may add
is not counted, as it is not in the workloads' minimal bytes either.

A fraction above 100% means the workload's arrays were served from a cache faster than the
probe's buffer was from memory: it happens for arrays that fit in a cache (WeightNorm's
9 MB conv weight, on this machine's large last-level cache).
"""

from __future__ import annotations

import itertools
import threading
import time

import numpy as np

from normspec.bench.threads import default_threads

#: The probe's buffer: 256 MiB, copied into another 256 MiB.
PROBE_BYTES = 256 << 20
#: The probe's time budget per thread count, in seconds, and its repeats at least.
PROBE_BUDGET_S = 0.5
PROBE_MIN_REPEATS = 5


def copy_rate(source: np.ndarray, target: np.ndarray, threads: int, timer: str) -> float:
    """Bytes per second of one copy of `source` into `target`, split over `threads`, on
    `timer` ("cpu": one thread only, the copy runs on the calling thread)."""
    if timer == "cpu":
        if threads != 1:
            raise ValueError("the cpu clock times one thread's copy; use the wall clock")
        start = time.process_time()
        np.copyto(target, source)
        return 2 * source.nbytes / (time.process_time() - start)
    bounds = np.linspace(0, source.size, threads + 1).astype(int)
    parts = [(source[a:b], target[a:b]) for a, b in itertools.pairwise(bounds)]
    workers = [threading.Thread(target=np.copyto, args=(t, s)) for s, t in parts]
    start = time.perf_counter()
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return 2 * source.nbytes / (time.perf_counter() - start)


def _best(
    source: np.ndarray,
    target: np.ndarray,
    threads: int,
    timer: str,
    budget_s: float,
    min_repeats: int,
) -> tuple[float, int]:
    """The best rate in GB/s over repeats for `budget_s`, at least `min_repeats`."""
    best, n = 0.0, 0
    deadline = time.perf_counter() + budget_s
    while n < min_repeats or time.perf_counter() < deadline:
        best = max(best, copy_rate(source, target, threads, timer))
        n += 1
    return best / 1e9, n


def probe(
    threads: int,
    timer: str,
    nbytes: int = PROBE_BYTES,
    budget_s: float = PROBE_BUDGET_S,
    min_repeats: int = PROBE_MIN_REPEATS,
) -> dict:
    """The limit of a run whose frameworks have `threads` threads and whose rounds are
    timed on `timer`, in GB/s (1e9 bytes per second), and the copy over every core."""
    source = np.ones(nbytes // 4, dtype=np.float32)
    target = np.empty_like(source)
    np.copyto(target, source)  # touch every page before timing
    limit, repeats = _best(source, target, threads, timer, budget_s, min_repeats)
    cores = default_threads()
    machine, _ = _best(source, target, cores, "wall", budget_s, min_repeats)
    return {
        "limit_gbps": limit,
        "threads": threads,
        "timer": timer,
        "repeats": repeats,
        "every_core_gbps": machine,
        "cores": cores,
        "buffer_bytes": nbytes,
        "method": f"best of {repeats} NumPy copies of {nbytes >> 20} MiB on {threads} "
        f"thread(s), timed on the {timer} clock; bytes counted as read + written",
    }


def fraction(nbytes: int, seconds: float, limit_gbps: float) -> tuple[float, float]:
    """(effective GB/s, fraction of the limit) of moving `nbytes` in `seconds`."""
    gbps = nbytes / seconds / 1e9
    return gbps, gbps / limit_gbps
