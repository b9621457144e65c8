"""The planted slowdown of `normspec bench`'s tests: 15% more work on one workload.

`--compare` against a run without it, and `--ab` with it switched on in B alone, must flag
that workload, and no other (tests/test_bench_teeth.py). It is switched on by an environment
variable, so that the same interpreter serves both sides of an A/B run and CI needs no
second framework version.
"""

from __future__ import annotations

import os
import time

from backends.numpy_backend import NumpyBackend
from normspec.bench.workloads import BY_ID

#: The workload id (say batch_norm:small) whose forward pass gets slower; unset: none.
SLOWDOWN = "NORMSPEC_PLANTED_SLOWDOWN"
#: How much more work, as a share of the forward pass's own time.
EXTRA = 0.15


class PlantedSlowdown(NumpyBackend):
    """NumPy, whose forward pass on the workload named by $NORMSPEC_PLANTED_SLOWDOWN (its
    norm and its shape, nothing else) keeps the CPU busy for another 15% of the time the
    pass itself took. Redoing 15% of the values is not 15% of the time (a slice that fits in
    a cache costs less per value: 8% measured on batch_norm:cnn); a share of the measured
    time is 15% whatever the size and the cache. perf_counter, not process_time: reading
    the process's CPU clock is a system call that would itself add several percent to a
    20 µs call. Its outputs are NumPy's."""

    name = "planted-slowdown"

    def __init__(self) -> None:
        target = os.environ.get(SLOWDOWN)
        self.target = BY_ID[target] if target else None

    def forward(self, norm, inputs):
        target = self.target
        if target is None or norm != target.norm or inputs.x.shape != target.shape:
            return super().forward(norm, inputs)
        start = time.perf_counter()
        y = super().forward(norm, inputs)
        now = time.perf_counter()
        deadline = now + EXTRA * (now - start)
        while time.perf_counter() < deadline:
            pass
        return y
