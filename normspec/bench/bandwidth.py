"""The physical limit: the memory bandwidth of this machine, measured by a large copy.

A normalization layer does little arithmetic per value; on a CPU it is bound by memory
traffic. The fastest any kernel can move a workload's bytes is about the speed of a plain
copy, so `normspec bench` measures a copy at the start of the run and reports each workload's
effective bandwidth (its minimal bytes over its median time) as a fraction of it.

The probe copies a buffer of `PROBE_BYTES` (larger than any workload's arrays) with NumPy,
split over Python threads (NumPy releases the GIL while it copies), and keeps the best rate
over repeats: the limit is what the machine can do, and on a shared machine every slower
repeat is someone else's load. The limit of a run is the copy with as many threads as its
frameworks were given (a layer run on one thread is compared with a copy on one thread);
the copy over every core is recorded beside it, as what the whole machine allows. Bytes are
counted as STREAM counts a copy, read plus written (2 x the buffer); the write-allocate read
a cache may add is not counted, as it is not in the workloads' minimal bytes either.

A fraction above 100% means the workload's arrays were served from a cache faster than the
probe's buffer was from memory; it can happen for arrays that fit in the last-level cache.
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


def copy_rate(source: np.ndarray, target: np.ndarray, threads: int) -> float:
    """Bytes per second of one copy of `source` into `target`, split over `threads`."""
    bounds = np.linspace(0, source.size, threads + 1).astype(int)
    parts = [(source[a:b], target[a:b]) for a, b in itertools.pairwise(bounds)]
    workers = [threading.Thread(target=np.copyto, args=(t, s)) for s, t in parts]
    start = time.perf_counter()
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return 2 * source.nbytes / (time.perf_counter() - start)


def probe(
    threads: int,
    nbytes: int = PROBE_BYTES,
    budget_s: float = PROBE_BUDGET_S,
    min_repeats: int = PROBE_MIN_REPEATS,
) -> dict:
    """The copy bandwidth in GB/s (1e9 bytes per second) over 1 thread, `threads` threads
    and every core; the limit of a run is the best with at most `threads` threads, the
    thread count its frameworks were given."""
    source = np.ones(nbytes // 4, dtype=np.float32)
    target = np.empty_like(source)
    np.copyto(target, source)  # touch every page before timing
    rates: dict[int, float] = {}
    repeats: dict[int, int] = {}
    for count in sorted({1, max(1, threads), default_threads()}):
        best, n = 0.0, 0
        deadline = time.perf_counter() + budget_s
        while n < min_repeats or time.perf_counter() < deadline:
            best = max(best, copy_rate(source, target, count))
            n += 1
        rates[count] = best / 1e9
        repeats[count] = n
    return {
        "limit_gbps": max(rate for count, rate in rates.items() if count <= max(1, threads)),
        "threads": threads,
        "copy_gbps_by_threads": {str(c): r for c, r in rates.items()},
        "repeats_by_threads": {str(c): n for c, n in repeats.items()},
        "buffer_bytes": nbytes,
        "method": f"best of repeated NumPy copies of {nbytes >> 20} MiB, split over 1 thread, "
        f"the run's {threads} and every core; the limit is the best with at most {threads}; "
        "bytes counted as read + written",
    }


def fraction(nbytes: int, seconds: float, limit_gbps: float) -> tuple[float, float]:
    """(effective GB/s, fraction of the limit) of moving `nbytes` in `seconds`."""
    gbps = nbytes / seconds / 1e9
    return gbps, gbps / limit_gbps
