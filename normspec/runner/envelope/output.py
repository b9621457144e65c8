"""What `normspec envelope` writes: `envelope.json` (the run, its grid, the definitions of its
fields, a summary, and one record per cell on a line of its own) and a picture per dtype,
replaced together in the report directory."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from normspec.runner.envelope import grid as grids
from normspec.runner.envelope.records import OUTLIER_FACTOR
from normspec.runner.envelope.summary import summarize

if TYPE_CHECKING:
    from normspec.runner.envelope.command import Plan

JSON_NAME = "envelope.json"


def picture_name(dtype: str) -> str:
    """The file name of `dtype`'s picture."""
    return f"envelope-{dtype}.png"


def report(plan: Plan, cells: list[dict], argv: list[str], seconds: float) -> dict:
    """The content of envelope.json: the run, the grid, the definitions, the summary and
    the cells."""
    return {
        "command": "normspec " + shlex.join(argv),
        "seconds": round(seconds, 1),
        "versions": {name: backend.version() for name, backend in plan.everyone.items()},
        "grid": {
            "magnitudes": {d: list(m) for d, m in plan.grid.magnitudes.items()},
            "conditionings": list(plan.grid.conditionings),
            "sizes": list(plan.grid.sizes),
            "seeds": plan.grid.seeds,
            "eps": plan.grid.eps,
            "threads": int(os.environ["OMP_NUM_THREADS"]),
            "layouts": {
                norm: {str(n): _layout(norm, n) for n in plan.grid.sizes}
                for norm in dict.fromkeys(norm for _, norm, _ in plan.work)
            },
        },
        "definitions": {
            "error_over_bound": "max |y - exact| / bound over the elements and seeds; the "
            "bound is the tolerance model's for the backend's precision; 'inf' where an "
            "output is NaN or inf",
            "best_peer": "of the other backends run on the same inputs, the one with the "
            "smallest error_over_bound",
            "outcome": "beyond the reference, refused, error, non-finite, all zero, "
            "outside (error_over_bound > 1), bound void (outside only where the model's "
            "first-order bound on |d sigma| / sigma is >= 1/2, so it cannot bound the output), "
            f"precision outlier (within, but more than {OUTLIER_FACTOR:g} times the best "
            "peer's error_over_bound and the rounding floor), within",
            "intermediate_overflow": "the exact sum of squares of a pooled set exceeds the "
            "largest finite number of the backend's accumulation dtype",
            "rounding_error_over_bound": "the error / bound of the exact output rounded once "
            "to the dtype: the floor below which two backends cannot be told apart",
            "x": "offset + spread * z, z uniform in [-1, 1]; conditioning c = offset / "
            "spread; magnitude = the offset (the spread when c = 0)",
        },
        "summary": summarize(cells),
        "cells": cells,
    }


def envelope_json(report: dict) -> str:
    """The report as JSON, each cell's record on a line of its own (a run has tens of
    thousands: one per line keeps the file small, and diffs and grep readable)."""
    head = json.dumps({k: v for k, v in report.items() if k != "cells"}, indent=1)
    cells = ",\n".join("  " + json.dumps(r) for r in report["cells"])
    return head[:-2] + ',\n "cells": [\n' + cells + "\n ]\n}\n"


def _layout(norm: str, size: int) -> str:
    """How `norm` is called with `size` values per set: the shape of x and its keywords."""
    shape, keywords = grids.layout(norm, size)
    return f"x {shape}" + "".join(f", {k}={v}" for k, v in keywords.items())


def write_files(directory: Path, files: dict[str, bytes], stale: list[str]) -> list[Path]:
    """Replace each of `files` in `directory`, and remove the `stale` pictures of dtypes this
    run did not map, so that the directory holds one run's envelope."""
    directory.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".normspec-envelope-", dir=directory))
    try:
        for name, content in files.items():
            (staging / name).write_bytes(content)
        for name in files:
            os.replace(staging / name, directory / name)
        for name in stale:
            (directory / name).unlink(missing_ok=True)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return [directory / name for name in files]
