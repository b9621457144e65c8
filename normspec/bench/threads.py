"""The frameworks' thread counts: set explicitly before any work, and recorded.

A benchmark whose thread count depends on a framework's guess of the machine measures the
guess. Each framework in the run gets the same count for its intra-op pool (the threads one
kernel splits its work over) and its inter-op pool (independent ops of a graph). NumPy's
elementwise operations and reductions run on one thread whatever the count; the record says
so rather than pretend to set it.

TensorFlow accepts the setting only before its runtime starts, so this runs first in a fresh
process (the pytest child of `normspec bench`, each worker of `--ab`).
"""

from __future__ import annotations

import os
import sys


def default_threads() -> int:
    """The cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def frameworks_of(backends: list[object]) -> set[str]:
    """The frameworks ("torch", "tensorflow") the backends' adapters run on."""
    found = set()
    for backend in backends:
        for requirement in getattr(backend, "requirements", ()):
            if requirement.module in ("torch", "tensorflow"):
                found.add(requirement.module)
    return found


def set_threads(threads: int, frameworks: set[str]) -> dict[str, dict[str, int | str]]:
    """Set `threads` as the intra-op and inter-op thread counts of each of `frameworks`;
    return what each framework reports back, with NumPy's."""
    record: dict[str, dict[str, int | str]] = {
        "numpy": {"intra_op": 1, "note": "its ufuncs and reductions do not thread"}
    }
    if "torch" in frameworks:
        import torch

        torch.set_num_threads(threads)
        if torch.get_num_interop_threads() != threads:
            try:
                torch.set_num_interop_threads(threads)
            except RuntimeError as error:  # set once per process, before any parallel work
                print(f"normspec bench: torch inter-op threads: {error}", file=sys.stderr)
        record["torch"] = {
            "intra_op": torch.get_num_threads(),
            "inter_op": torch.get_num_interop_threads(),
        }
    if "tensorflow" in frameworks:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        import tensorflow as tf

        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(threads)
        record["tensorflow"] = {
            "intra_op": tf.config.threading.get_intra_op_parallelism_threads(),
            "inter_op": tf.config.threading.get_inter_op_parallelism_threads(),
        }
    return record
