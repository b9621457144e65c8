"""`normspec envelope`: its options, what it checks before it runs, the run, and its files.

It measures every backend x norm x dtype selected, over the grid, together with the peers it
is compared with (every available built-in backend unless `--peer` says otherwise), and
writes `envelope.json` and one `envelope-<dtype>.png` per dtype into the report directory,
each replaced whole. Exit status: 0 when the envelope was written (what it shows is data, not
a verdict), 2 for bad usage (found before anything runs), 130 when interrupted (nothing
written).
"""

from __future__ import annotations

import argparse
import math
import os
import shutil
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

import numpy as np

from normspec.runner.envelope import grid as grids
from normspec.runner.envelope.grid import DTYPES, Grid
from normspec.runner.envelope.heatmap import Axes, draw
from normspec.runner.envelope.measure import Cell, Measurement, measure
from normspec.runner.envelope.output import (
    JSON_NAME,
    envelope_json,
    picture_name,
    write_files,
)
from normspec.runner.envelope.output import report as envelope_report
from normspec.runner.envelope.records import records
from normspec.runner.envelope.summary import line
from normspec.runner.files import directory_problem
from normspec.runner.preflight import adapter_problem, import_from_working_directory
from normspec.runner.site import refresh_site
from normspec.vocabulary import NORMS

EXIT_OK, EXIT_USAGE, EXIT_INTERRUPTED = 0, 2, 128 + signal.SIGINT


def add_envelope_parser(commands: argparse._SubParsersAction) -> None:
    """Add `normspec envelope` to the subcommands of `normspec`."""
    from backends.registry import BUILTIN

    p = commands.add_parser(
        "envelope",
        help="map each backend's error / bound over magnitude x conditioning x size",
        description="Measure, for each backend x norm x dtype, the worst error / bound over a "
        "grid of magnitude (powers of ten across the dtype's range) x conditioning (offset / "
        "spread) x reduction size, and that of its best peer on the same inputs. Writes "
        f"{JSON_NAME} (one record per cell) and {picture_name('DTYPE')} (heatmaps) into "
        "--report-dir. Exit status: 0 when written (cells outside the bound are findings, "
        "not failures), 2 bad usage, 130 interrupted (nothing written).",
    )
    p.add_argument(
        "--backend",
        action="append",
        default=[],
        metavar="NAME",
        help="backend to map, repeatable: one of " + ", ".join(BUILTIN) + ", a control "
        "(exact, rounding), or module:attr (default: every available built-in backend)",
    )
    p.add_argument(
        "--peer",
        action="append",
        default=[],
        metavar="NAME",
        help="backend to compare with on the same inputs, repeatable (default: every "
        "available built-in backend); the best peer of a cell is the one with the smallest "
        "error / bound",
    )
    p.add_argument(
        "--norm",
        action="append",
        default=[],
        metavar="NAME",
        help="norm to map, repeatable: " + ", ".join(NORMS) + " (default: all)",
    )
    p.add_argument(
        "--dtype",
        action="append",
        default=[],
        metavar="NAME",
        help="dtype to map, repeatable: " + ", ".join(DTYPES) + " (default: all)",
    )
    p.add_argument(
        "--magnitudes",
        default=None,
        metavar="LOW:HIGH:STEP",
        help="exponents of ten of the magnitudes, for every dtype (default per dtype: "
        + ", ".join(f"{d} {lo}:{hi}:{st}" for d, (lo, hi, st) in grids.DEFAULT_EXPONENTS.items())
        + "); magnitudes whose inputs a dtype cannot hold are left out for it; write "
        "--magnitudes=-30:30:3 when LOW is negative",
    )
    p.add_argument(
        "--conditionings",
        default=",".join(f"{c:g}" for c in grids.DEFAULT_CONDITIONINGS),
        metavar="C,C,...",
        help="offset / spread values, 0 for centred data (default: %(default)s)",
    )
    p.add_argument(
        "--sizes",
        default=",".join(str(n) for n in grids.DEFAULT_SIZES),
        metavar="N,N,...",
        help="values per pooled set, each >= 2 (default: %(default)s)",
    )
    p.add_argument("--seeds", type=int, default=2, metavar="K", help="inputs per cell (default 2)")
    p.add_argument(
        "--eps", type=float, default=1e-5, help="eps of every call (default 1e-5, torch's)"
    )
    p.add_argument(
        "--threads",
        type=int,
        default=None,
        metavar="N",
        help="threads each framework may use, set before it loads (default: $OMP_NUM_THREADS, "
        "else 1: the same summation order on every run, and no contention on a shared machine)",
    )
    p.add_argument(
        "--report-dir",
        default="reports",
        metavar="DIR",
        help="where envelope.json and the pictures go (default: reports), created if missing",
    )


@dataclass(frozen=True)
class Plan:
    """What a run measures: the grid, the backends mapped and their peers (by name, in
    order), and, per dtype, the norms with at least one backend mapped."""

    grid: Grid
    selected: dict[str, object]
    everyone: dict[str, object]
    work: tuple[tuple[str, str, tuple[str, ...]], ...]  # (dtype, norm, the backends that run)

    def cells(self) -> int:
        return sum(len(self.grid.cells(dtype)) for dtype, _, _ in self.work)


def _usage_error(message: str) -> int:
    print(f"normspec: error: {message}", file=sys.stderr)
    return EXIT_USAGE


def run_envelope(args: argparse.Namespace, argv: list[str]) -> int:
    """Run `normspec envelope` (given as `argv`, parsed as `args`); return its exit status."""
    threads = args.threads if args.threads is not None else os.environ.get("OMP_NUM_THREADS", 1)
    if int(threads) < 1:
        return _usage_error(f"--threads must be >= 1, got {threads}")
    for variable in ("OMP_NUM_THREADS", "TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS"):
        os.environ[variable] = str(threads)
    import_from_working_directory()  # external adapters load as `normspec check` loads them
    plan = _plan(args)
    if isinstance(plan, str):
        return _usage_error(plan)
    status = StatusLine(sys.stdout) if sys.stdout.isatty() else None
    started = time.monotonic()
    try:
        measured = _measure(plan, status)
    except KeyboardInterrupt:
        if status:
            status.clear()
        print("\nnormspec: interrupted: nothing written", file=sys.stderr)
        return EXIT_INTERRUPTED
    seconds = time.monotonic() - started
    cells = records(measured, plan.selected, plan.everyone)
    report = envelope_report(plan, cells, argv, seconds)
    files = {JSON_NAME: envelope_json(report).encode()}
    title = (
        f"normspec envelope: worst error / bound over {plan.grid.seeds} seed(s), eps "
        f"{plan.grid.eps:g}, no affine parameters"
    )
    for dtype in dict.fromkeys(d for d, _, _ in plan.work):
        files[picture_name(dtype)] = draw(
            cells,
            dtype,
            Axes(plan.grid.magnitudes[dtype], plan.grid.conditionings, plan.grid.sizes),
            list(plan.selected),
            [n for d, n, _ in plan.work if d == dtype],
            title,
        )
    stale = [picture_name(d) for d in DTYPES if picture_name(d) not in files]
    try:
        paths = write_files(Path(args.report_dir), files, stale)
    except OSError as error:
        return _usage_error(f"cannot write the envelope to {args.report_dir}: {error}")
    paths += refresh_site(Path(args.report_dir), "envelope")
    for entry in report["summary"]:
        print(line(entry))
    print(
        f"normspec: {len(cells)} cells in {seconds:.0f} s; written: "
        + ", ".join(str(p) for p in paths)
    )
    return EXIT_OK


def _plan(args: argparse.Namespace) -> Plan | str:
    """The plan of the run, or why it cannot run (every name checked, nothing run)."""
    from backends.registry import BUILTIN, UnknownBackendError, load_backend

    for norm in args.norm:
        if norm not in NORMS:
            return f"unknown norm {norm!r}; valid norms: {', '.join(NORMS)}"
    for dtype in args.dtype:
        if dtype not in DTYPES:
            return f"unknown dtype {dtype!r}; valid dtypes: {', '.join(DTYPES)}"
    try:
        grid = _grid(args)
    except ValueError as error:
        return str(error)
    loaded = {}
    for name in dict.fromkeys([*args.backend, *args.peer]):
        try:
            loaded[name] = load_backend(name)
        except UnknownBackendError as error:
            return str(error)
        except Exception as error:  # the adapter's own code raised: name it, no traceback
            return adapter_problem(name, error)
        reason = loaded[name].unavailable_reason()
        if reason:
            return f"backend {name!r} cannot run here: {reason}"
    available = {}
    if not args.backend or not args.peer:  # the default of either is the built-in backends
        for name in BUILTIN:
            backend = loaded.get(name) or load_backend(name)
            if backend.unavailable_reason() is None:
                available[name] = backend
    selected = {n: loaded[n] for n in args.backend} or available
    everyone = {**selected, **({n: loaded[n] for n in args.peer} or available)}
    work = []
    for dtype in args.dtype or DTYPES:
        for norm in args.norm or NORMS:
            running = tuple(n for n, b in everyone.items() if b.supports(norm, dtype))
            if any(n in selected for n in running) and grid.cells(dtype):
                work.append((dtype, norm, running))
    if not work:
        return (
            "nothing to measure: no selected backend provides the selected norms at the "
            f"selected dtypes (backends {', '.join(selected)})"
        )
    problem = directory_problem(Path(args.report_dir))
    if problem:
        return problem
    try:
        import matplotlib  # noqa: F401  (the pictures need it; say so before the run)
    except ImportError:
        return "the envelope's pictures need matplotlib: pip install 'normspec[envelope]'"
    return Plan(grid, selected, everyone, tuple(work))


def _grid(args: argparse.Namespace) -> Grid:
    """The grid of the options (ValueError naming the option that is wrong)."""
    dtypes = args.dtype or DTYPES
    if args.magnitudes is None:
        exponents = {d: grids.DEFAULT_EXPONENTS[d] for d in dtypes}
    else:
        try:
            low, high, step = (int(p) for p in args.magnitudes.split(":"))
        except ValueError:
            raise ValueError(
                f"--magnitudes wants LOW:HIGH:STEP, three integer exponents of ten, got "
                f"{args.magnitudes!r}"
            ) from None
        if step < 1 or low > high:
            raise ValueError(f"--magnitudes wants LOW <= HIGH and STEP >= 1: {args.magnitudes}")
        exponents = dict.fromkeys(dtypes, (low, high, step))
    return Grid(
        {d: grids.magnitudes(e) for d, e in exponents.items()},
        conditionings=_numbers("--conditionings", args.conditionings, whole=False),
        sizes=_numbers("--sizes", args.sizes, whole=True),
        seeds=args.seeds,
        eps=args.eps,
    )


def _numbers(option: str, text: str, whole: bool) -> tuple:
    """The comma-separated numbers of `option`, sorted, each once."""
    try:
        values = [float(v) for v in text.split(",")]
    except ValueError:
        raise ValueError(f"{option} wants comma-separated numbers, got {text!r}") from None
    if whole:
        if not all(math.isfinite(v) and v == int(v) for v in values):
            raise ValueError(f"{option} wants whole numbers, got {text!r}")
        values = [int(v) for v in values]
    return tuple(sorted(set(values)))


def _measure(plan: Plan, status: StatusLine | None) -> list[Measurement]:
    """Every cell of the plan, in order, with a status line on a terminal."""
    total, done, started = plan.cells(), 0, time.monotonic()
    measured = []
    for dtype, norm, running in plan.work:
        backends = {n: plan.everyone[n] for n in running}
        for magnitude, conditioning, size in plan.grid.cells(dtype):
            cell = Cell(norm, dtype, magnitude, conditioning, size)
            with np.errstate(all="ignore"):  # overflow is what the envelope looks for
                measured.append(measure(cell, plan.grid, backends))
            done += 1
            if status:
                elapsed = time.monotonic() - started
                left = elapsed / done * (total - done)
                status.show(
                    f"normspec envelope: {dtype} {norm}: {done}/{total} cells, "
                    f"{_duration(elapsed)} elapsed, about {_duration(left)} left"
                )
    if status:
        status.clear()
    return measured


def _duration(seconds: float) -> str:
    minutes, seconds = divmod(int(seconds), 60)
    return f"{minutes}m{seconds:02d}s" if minutes else f"{seconds}s"


class StatusLine:
    """One line of a terminal, rewritten in place."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.shown = ""

    def show(self, text: str) -> None:
        text = text[: shutil.get_terminal_size().columns - 1]
        if text != self.shown:
            self.stream.write("\r\x1b[K" + text)
            self.stream.flush()
            self.shown = text

    def clear(self) -> None:
        if self.shown:
            self.stream.write("\r\x1b[K")
            self.stream.flush()
            self.shown = ""
