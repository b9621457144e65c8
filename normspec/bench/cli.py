"""The `bench` subcommand: its arguments, their validation, and the three ways to run it.

    normspec bench [selection]                        time the grid, write the reports
    normspec bench [selection] --compare FILE         ... and compare with a saved run
    normspec bench [selection] --ab PYTHON_A PYTHON_B two interpreters, alternately

Exit status: 0 done, no regression; 1 a workload got slower beyond --fail-over with 95%
confidence, or a workload failed to run; 2 bad usage.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import shlex
import shutil
import sys
import time
from pathlib import Path

from normspec.bench.calls import TIMERS, default_timer
from normspec.bench.results import Settings
from normspec.bench.workloads import DEFAULT_DTYPES, MODES, WORKLOADS, Case, select
from normspec.runner.site import refresh_site
from normspec.vocabulary import NORMS

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
#: --ab's passes and pairs per pass: its replicates are passes, so it makes more of them.
AB_PASSES, AB_ROUNDS = 5, 3
DTYPES = ("float16", "bfloat16", "float32", "float64")


def add_bench_parser(commands: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add `bench` to the subcommands of `normspec`."""
    from backends.registry import BUILTIN

    defaults = Settings()
    bench = commands.add_parser(
        "bench",
        help="time the norms on a fixed grid of workloads; compare with a saved run or "
        "between two interpreters",
        description="Time each norm, forward and forward+backward, on a fixed grid of "
        "realistic workloads (pytest-benchmark), beside the memory bandwidth the machine "
        "allows. Writes DIR/bench/NAME.json, DIR/bench.md and DIR/bench.png. Exit status: "
        "0 done, 1 a workload regressed beyond --fail-over with confidence or failed, 2 bad "
        "usage.",
    )
    bench.add_argument(
        "--backend",
        action="append",
        default=[],
        metavar="NAME",
        help="backend to time, repeatable: one of " + ", ".join(BUILTIN) + ", or an external "
        "adapter as package.module:attr (default: every built-in that can run here)",
    )
    bench.add_argument(
        "--norm",
        action="append",
        default=[],
        metavar="NAME",
        help="norm to time, repeatable: " + ", ".join(NORMS) + " (default: all)",
    )
    bench.add_argument(
        "--workload",
        action="append",
        default=[],
        metavar="ID",
        help="workload to time, repeatable: " + ", ".join(w.id for w in WORKLOADS) + " "
        "(default: all of the selected norms)",
    )
    bench.add_argument(
        "--mode",
        action="append",
        default=[],
        metavar="MODE",
        help="forward (y alone) or forward+backward (y, then the gradients), repeatable "
        "(default: both)",
    )
    bench.add_argument(
        "--dtype",
        action="append",
        default=[],
        metavar="NAME",
        help="dtype, repeatable: " + ", ".join(DTYPES) + f" (default: {DEFAULT_DTYPES[0]})",
    )
    bench.add_argument(
        "--threads",
        type=int,
        default=defaults.threads,
        metavar="N",
        help="intra-op and inter-op threads of torch and TensorFlow; 1 keeps a shared "
        "machine's load out of the kernels' synchronization (default: %(default)s)",
    )
    bench.add_argument(
        "--timer",
        choices=tuple(TIMERS),
        default=None,
        help="the clock of the rounds: cpu, the process's CPU time, which leaves out the "
        "time other processes took from it; wall, elapsed time (default: cpu with one "
        "thread, wall with more, where CPU times of the threads would add up)",
    )
    bench.add_argument(
        "--passes",
        type=int,
        default=None,
        metavar="P",
        help="sweeps over the grid, each preparing every case afresh (with --ab in fresh "
        f"worker processes); the passes are the replicates of the statistics (default: "
        f"{defaults.passes}, with --ab {AB_PASSES})",
    )
    bench.add_argument(
        "--rounds",
        type=int,
        default=None,
        metavar="N",
        help=f"timed rounds per pass, with --ab pairs per pass (default: {defaults.rounds}, "
        f"with --ab {AB_ROUNDS})",
    )
    bench.add_argument(
        "--save",
        default=None,
        metavar="NAME",
        help="the record's name: DIR/bench/NAME.json (default: the UTC time)",
    )
    bench.add_argument(
        "--report-dir",
        default="reports",
        metavar="DIR",
        help="where the reports are written (default: %(default)s)",
    )
    bench.add_argument(
        "--compare",
        default=None,
        metavar="FILE",
        help="a saved run (DIR/bench/NAME.json) to compare this run with",
    )
    bench.add_argument(
        "--ab",
        nargs=2,
        default=None,
        metavar=("PYTHON_A", "PYTHON_B"),
        help="time every workload on two interpreters (say, two virtual environments) "
        "alternately and report B / A; passes x rounds pairs per workload",
    )
    bench.add_argument(
        "--fail-over",
        default="10%",
        metavar="THRESHOLD",
        help="with --compare or --ab: exit 1 when a workload is slower by more than this "
        "(a percentage, 10%%, or a fraction, 0.1) with 95%% confidence (default: 10%%)",
    )
    return bench


def _usage_error(message: str) -> int:
    print(f"normspec bench: error: {message}", file=sys.stderr)
    return EXIT_USAGE


def _missing_tools(args: argparse.Namespace) -> str | None:
    needed = ["matplotlib"] if args.ab else ["pytest_benchmark", "matplotlib"]
    missing = [m for m in needed if importlib.util.find_spec(m) is None]
    if missing:
        return (
            f"{' and '.join(missing)} not installed: pip install -c constraints.txt "
            "'normspec[bench]' (pytest-benchmark, matplotlib)"
        )
    return None


def _resolve_depth(args: argparse.Namespace) -> None:
    """--passes and --rounds left unset take the defaults of the mode (plain or --ab)."""
    defaults = Settings()
    if args.passes is None:
        args.passes = AB_PASSES if args.ab else defaults.passes
    if args.rounds is None:
        args.rounds = AB_ROUNDS if args.ab else defaults.rounds


def validate(args: argparse.Namespace) -> str | None:
    """Why the arguments cannot run, naming what is wrong and what is allowed; None if fine."""
    from backends.registry import UnknownBackendError, load_backend
    from normspec.bench.stats import parse_threshold

    for norm in args.norm:
        if norm not in NORMS:
            return f"unknown norm {norm!r}; valid norms: {', '.join(NORMS)}"
    ids = [w.id for w in WORKLOADS]
    for workload in args.workload:
        if workload not in ids:
            return f"unknown workload {workload!r}; valid workloads: {', '.join(ids)}"
    for mode in args.mode:
        if mode not in MODES:
            return f"unknown mode {mode!r}; valid modes: {', '.join(MODES)}"
    for dtype in args.dtype:
        if dtype not in DTYPES:
            return f"unknown dtype {dtype!r}; valid dtypes: {', '.join(DTYPES)}"
    _resolve_depth(args)
    for name, value in (
        ("--threads", args.threads),
        ("--passes", args.passes),
        ("--rounds", args.rounds),
    ):
        if value < 1:
            return f"{name} must be a positive integer, got {value}"
    if args.passes * args.rounds < 6:
        return (
            f"a 95% interval needs passes x rounds >= 6, got {args.passes} x {args.rounds} "
            "(and two passes or more to see how preparations differ)"
        )
    if args.timer == "cpu" and args.threads > 1:
        return (
            f"--timer cpu times one thread's work; with --threads {args.threads} the threads' "
            "CPU times would add up: use --timer wall"
        )
    try:
        parse_threshold(args.fail_over)
    except ValueError as error:
        return str(error)
    if args.compare and args.ab:
        return "--compare and --ab are two ways to compare: give one of them"
    if args.compare and not Path(args.compare).is_file():
        return f"--compare: no such file {args.compare!r}"
    for python in args.ab or ():
        if shutil.which(python) is None:
            return f"--ab: {python!r} is not an executable interpreter"
    for name in args.backend:
        try:
            load_backend(name)
        except UnknownBackendError as error:
            return str(error)
    if not select(tuple(args.norm), tuple(args.workload)):
        return "the selected norms and workloads have no workload in common"
    return _missing_tools(args)


def plan(args: argparse.Namespace) -> tuple[list[Case], list[str]]:
    """The cases to run, and why the others of the selection are not run."""
    from backends.registry import BUILTIN, load_backend

    names = args.backend or list(BUILTIN)
    workloads = select(tuple(args.norm), tuple(args.workload))
    dtypes = args.dtype or list(DEFAULT_DTYPES)
    cases, skipped = [], []
    for name in names:
        backend = load_backend(name)
        reason = None if args.ab else backend.unavailable_reason()
        if reason:
            skipped.append(f"{name}: {reason}")
            continue
        for workload in workloads:
            for dtype in dtypes:
                if not backend.supports(workload.norm, dtype):
                    skipped.append(f"{name}/{workload.id}/{dtype}: not provided")
                    continue
                cases += [
                    Case(backend.name, workload, mode, dtype)
                    for mode in MODES
                    if not args.mode or mode in args.mode
                ]
    return cases, skipped


def run_bench(args: argparse.Namespace) -> int:
    """Run `normspec bench` and return its exit status."""
    problem = validate(args)
    if problem:
        return _usage_error(problem)
    from normspec.bench import report, results
    from normspec.bench.stats import parse_threshold

    cases, skipped = plan(args)
    for line in skipped:
        print(f"normspec bench: skipped {line}", file=sys.stderr)
    if not cases:
        return _usage_error("nothing to run: every selected backend was skipped")
    settings = Settings(
        passes=args.passes,
        rounds=args.rounds,
        threads=args.threads,
        timer=args.timer or default_timer(args.threads),
    )
    threshold = parse_threshold(args.fail_over)
    command = "normspec " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    name = args.save or time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    directory = Path(args.report_dir)
    (directory / "bench").mkdir(parents=True, exist_ok=True)
    if args.ab:
        return _run_ab(args, cases, settings, threshold, command, name, directory)

    try:
        record = results.run_grid(cases, settings, command)
    except RuntimeError as error:
        print(f"normspec bench: error: {error}", file=sys.stderr)
        return EXIT_FAILED
    record["normspec"]["skipped"] = skipped
    status = EXIT_OK
    written = [directory / "bench" / f"{name}.json", directory / "bench.md"]
    if args.compare:
        from normspec.bench.compare import compare

        try:
            saved = results.load(Path(args.compare))
        except ValueError as error:
            return _usage_error(str(error))
        comparison = compare(saved, record, threshold)
        record["normspec"]["comparison"] = {"saved": args.compare, **comparison}
        (directory / "bench-compare.md").write_text(
            report.compare_markdown(comparison, args.compare)
        )
        written.append(directory / "bench-compare.md")
        for note in comparison["notes"]:
            print(f"normspec bench: note: {note}", file=sys.stderr)
        for key in comparison["regressions"]:
            row = next(r for r in comparison["rows"] if r["key"] == key)
            print(
                f"normspec bench: REGRESSION {key}: {row['ratio']:.3f}x the saved time "
                f"(95% interval {row['ci_low']:.3f} – {row['ci_high']:.3f}, "
                f"threshold {threshold:.0%})"
            )
        if comparison["regressions"]:
            status = EXIT_FAILED
    written[0].write_text(json.dumps(record, indent=1))
    written[1].write_text(report.bench_markdown(record))
    report.bench_plot(record, directory / "bench.png")
    written.append(directory / "bench.png")
    written += refresh_site(directory, "bench")
    failed = [r for r in record["normspec"]["rows"] if "error" in r]
    for row in failed:
        print(f"normspec bench: FAILED {row['key']}: {row['error']}")
    print(
        f"normspec bench: {len(cases) - len(failed)} of {len(cases)} cases timed in "
        f"{record['normspec']['seconds']:.0f} s; reports: " + ", ".join(map(str, written))
    )
    return EXIT_FAILED if failed else status


def _run_ab(
    args: argparse.Namespace,
    cases: list[Case],
    settings: Settings,
    threshold: float,
    command: str,
    name: str,
    directory: Path,
) -> int:
    from normspec.bench import report
    from normspec.bench.ab import run_ab

    python_a, python_b = args.ab
    record = run_ab(python_a, python_b, cases, settings, threshold, command)
    paths = [directory / "bench" / f"ab-{name}.json", directory / "bench-ab.md"]
    paths[0].write_text(json.dumps(record, indent=1))
    paths[1].write_text(report.ab_markdown(record))
    report.ab_plot(record, directory / "bench-ab.png")
    paths.append(directory / "bench-ab.png")
    paths += refresh_site(directory, "bench")
    failed = [r for r in record["rows"] if "error" in r]
    for row in failed:
        print(f"normspec bench: FAILED {row['key']}: {row['error']}")
    for row in record["rows"]:
        if row.get("verdict") == "slower":
            print(
                f"normspec bench: REGRESSION {row['key']}: B / A = {row['ratio']:.3f} "
                f"(95% interval {row['ci_low']:.3f} – {row['ci_high']:.3f}, "
                f"threshold {threshold:.0%})"
            )
    print(
        f"normspec bench --ab: {len(cases) - len(failed)} of {len(cases)} cases in "
        f"{record['seconds']:.0f} s; reports: " + ", ".join(map(str, paths))
    )
    return EXIT_FAILED if failed or record["regressions"] else EXIT_OK
