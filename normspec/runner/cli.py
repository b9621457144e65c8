"""The command line: `normspec check` (the conformance gate), `normspec backends` and
`normspec report` (the HTML report)."""

from __future__ import annotations

import argparse
import os
import shlex
import signal
import sys
from collections import Counter
from pathlib import Path

from normspec.bench.cli import add_bench_parser, run_bench
from normspec.hunt import command as hunt_command
from normspec.runner.engine import CheckRequest, CheckRun, run_properties
from normspec.runner.envelope.command import add_envelope_parser, run_envelope
from normspec.runner.files import write_all
from normspec.runner.isolation import DEFAULT_TIMEOUT_S
from normspec.runner.preflight import import_from_working_directory, property_names, validate
from normspec.runner.progress import ProgressLine
from normspec.runner.report import conformance_json, write_reports
from normspec.runner.site import INDEX, SiteInputError, build_site
from normspec.runner.site.command import add_report_parser, run_report
from normspec.runner.stopping import Stopped
from normspec.runner.timings import search_throughput, throughput
from normspec.runner.timings import summary as throughput_summary
from normspec.vocabulary import NORMS

__all__ = ["main", "property_names"]

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
STOPPED_BEFORE_REPORTS = "the property suite was ended and the previous reports are untouched"
#: The statuses of a cell that was not checked: a run of nothing else checked nothing.
NOT_RUN = frozenset({"skipped", "not provided"})


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of `normspec`."""
    from backends.registry import BUILTIN

    parser = argparse.ArgumentParser(
        prog="normspec",
        description="Property-based verification and differential testing of normalization "
        "layers against a float64 executable specification.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    check = commands.add_parser(
        "check",
        help="run the properties; exit 1 if any fails; write reports",
        description="Run the property suite against the chosen backends and write "
        "conformance.md, conformance.json, conventions.md and precision.md, the run's "
        f"timings.json and timings.md, and {INDEX}, the HTML report. Exit status: 0 all "
        "passed (known deviations are strict xfails), 1 a property failed, 2 bad usage "
        "(found before anything runs) or nothing ran (every selected cell skipped or not "
        "provided; the reports are then left as they were), 128 + the signal when stopped "
        "by Ctrl-C, SIGTERM or SIGHUP.",
    )
    check.add_argument(
        "--backend",
        action="append",
        default=[],
        metavar="NAME",
        help="backend to check, repeatable (named twice, it runs once): one of "
        + ", ".join(BUILTIN)
        + ", or an external adapter as module:attr, importable from the working directory "
        "(default: all built-in; those whose framework is missing are reported as skipped)",
    )
    check.add_argument(
        "--norm",
        action="append",
        default=[],
        metavar="NAME",
        help="norm to check, repeatable: " + ", ".join(NORMS) + " (default: all)",
    )
    check.add_argument(
        "--property",
        action="append",
        default=[],
        metavar="NAME",
        help="property test function to run, repeatable (default: all)",
    )
    check.add_argument(
        "--profile",
        default="ci",
        choices=("ci", "dev", "hunt"),
        help="ci (the default): derandomized and fast, for every pull request; dev: random, "
        "100 examples; hunt: random, 2000 examples, for long campaigns",
    )
    check.add_argument(
        "--max-examples",
        type=int,
        default=None,
        metavar="N",
        help="examples per property, overriding the profile",
    )
    check.add_argument(
        "--max-elements",
        type=int,
        default=None,
        metavar="N",
        help="the size budget: no drawn input has more than N elements (default: the "
        "profile's, 1024 for ci, 65536 for dev, 1048576 for hunt, which reach reductions of "
        "2^20 values; lower it for a quick run or a small machine)",
    )
    check.add_argument(
        "--report-dir",
        default="reports",
        metavar="DIR",
        help="where the reports are written (default: reports): created if missing, checked "
        "before the run, and replaced all at once after it (a failed or interrupted run "
        "leaves them as they were)",
    )
    check.add_argument(
        "--known-deviations",
        action="append",
        default=[],
        metavar="FILE",
        help="an extra TOML file of known deviations (strict xfails), e.g. your own kernels'",
    )
    check.add_argument(
        "--timeout",
        type=float,
        default=DEFAULT_TIMEOUT_S,
        metavar="SECONDS",
        help="the time limit of one property x norm x backend: a property that runs longer is "
        "killed and reported as failed (timed out), and the run goes on; 0 for no limit",
    )
    check.add_argument(
        "--workers",
        type=int,
        default=1,
        metavar="N",
        help="run the cells in N pytest processes side by side, each with every cell's "
        "isolation (default 1; the number of cores is a good choice, `make check` uses 2): "
        "the results are the same, the wall time shorter",
    )
    check.add_argument(
        "--junit-xml",
        default=None,
        metavar="FILE",
        help="also write JUnit XML for CI systems (pytest's writer), one test case per "
        "norm x property x backend; written with the reports",
    )
    check.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        help="show pytest's output, each property as it runs, and tracebacks (on a terminal "
        "the run otherwise shows one line: cells done of cells, failures so far)",
    )
    add_envelope_parser(commands)
    backends = commands.add_parser(
        "backends",
        help="list the backends (built in, and installed as normspec.backends entry points), "
        "whether each can run here, and their versions",
    )
    backends.set_defaults(command="backends")
    add_bench_parser(commands)
    hunt_command.add_parser(commands)
    add_report_parser(commands)
    return parser


def _usage_error(message: str) -> int:
    print(f"normspec: error: {message}", file=sys.stderr)
    return EXIT_USAGE


def check(args: argparse.Namespace, argv: list[str]) -> int:
    """Run `normspec check` (given as `argv`, parsed as `args`) and return its exit status."""
    import_from_working_directory()
    problem = validate(args)
    if problem:
        return _usage_error(problem)
    request = CheckRequest(
        # naming a backend twice runs it once: dict keeps the first of each, in order
        backends=tuple(dict.fromkeys(args.backend)),
        norms=tuple(dict.fromkeys(args.norm)),
        properties=tuple(dict.fromkeys(args.property)),
        profile=args.profile,
        max_examples=args.max_examples,
        max_elements=args.max_elements,
        known_deviations=tuple(os.path.abspath(p) for p in args.known_deviations),
        verbose=args.verbose,
        timeout_s=args.timeout or None,
        junit=args.junit_xml is not None,
        workers=args.workers,
    )
    # a terminal shows one progress line, and the summary below instead of pytest's output
    line = ProgressLine(sys.stdout) if sys.stdout.isatty() and not args.verbose else None
    try:
        run = run_properties(request, line.show if line else None)
    except KeyboardInterrupt:
        print(f"\nnormspec: interrupted: {STOPPED_BEFORE_REPORTS}", file=sys.stderr)
        return 128 + signal.SIGINT
    except Stopped as stop:
        print(f"normspec: stopped by {stop.signal.name}: {STOPPED_BEFORE_REPORTS}", file=sys.stderr)
        return 128 + stop.signal
    finally:
        if line:
            line.clear()
    return record_run(run, args, argv)


def record_run(run: CheckRun, args: argparse.Namespace, argv: list[str]) -> int:
    """Write the reports of a finished run, say what it found, and return the exit status."""
    results = run.record.get("results")
    if run.output is not None and (not results or run.pytest_exit not in (0, 1)):
        print(_tail(run.output), file=sys.stderr)  # pytest's own words: the cause
    if not results:
        return _usage_error(
            f"no property ran (pytest exit status {run.pytest_exit}); check "
            "the selection of backends, norms and properties"
        )
    if all(r["status"] in NOT_RUN for r in results):
        return _usage_error(nothing_ran(results, args.report_dir))
    report = conformance_json(run.record, "normspec " + shlex.join(argv))
    try:
        paths = write_reports(report, run.record, run.seconds, Path(args.report_dir))
    except OSError as error:
        return _usage_error(
            f"cannot write the reports to {args.report_dir}: {error}; the previous reports "
            "there are untouched"
        )
    paths += _site(Path(args.report_dir))
    if args.junit_xml and run.junit_xml is not None:
        junit = Path(args.junit_xml)
        try:
            paths += write_all(junit.parent, {junit.name: run.junit_xml})
        except OSError as error:
            return _usage_error(f"cannot write --junit-xml {junit}: {error}")
    # a known deviation that a full ci run no longer observes fails the run (properties/)
    gone = [d for d in report["known_deviations"] if d.get("status") == "no longer observed"]
    if run.output is not None:  # pytest's summary was not shown: say what failed
        _print_findings(report["results"], gone)
    summary = ", ".join(f"{n} {s}" for s, n in report["summary"].items())
    print(
        f"normspec: {summary} in {run.seconds:.1f} s; reports: " + ", ".join(str(p) for p in paths)
    )
    print(f"normspec: {throughput_summary(throughput(run.record, run.seconds))}")
    if report["summary"].get("failed") or report["summary"].get("xfailed"):
        search = throughput_summary(search_throughput(run.record))
        print(f"normspec: the search, without shrinking what it found: {search}")
    failed = report["summary"].get("failed", 0) + len(gone)
    if run.pytest_exit not in (0, 1) or (run.pytest_exit == 1 and not failed):
        return _usage_error(f"pytest stopped with exit status {run.pytest_exit}")
    return EXIT_FAILED if failed else EXIT_OK


def _site(directory: Path) -> list[Path]:
    """Write the HTML report of the run just recorded; a problem with it is a warning: the
    run's verdict is in the reports already written."""
    try:
        return build_site(directory, new_run=True)
    except (SiteInputError, OSError) as error:
        print(f"normspec: {INDEX} not written: {error}", file=sys.stderr)
        return []


def _print_findings(results: list[dict], gone: list[dict]) -> None:
    """One block per failed cell (what failed, and the command that reruns it) and a line per
    known deviation no longer observed."""
    for r in results:
        if r["status"] == "failed":
            message = (r.get("message") or r.get("reason") or "").strip().splitlines()
            print(f"FAILED {r['norm']} on {r['backend']}: {r['property']}")
            if message:
                print(f"  {message[0]}")
            if r.get("reproduction"):
                print(f"  reproduce: {r['reproduction']}")
    for d in gone:
        print(
            f"known deviation no longer observed: {d['reproduction']} (fixed upstream, or no "
            "longer reached: update or remove its entry)"
        )


def _tail(output: str, lines: int = 40) -> str:
    return "\n".join(output.rstrip().splitlines()[-lines:])


def nothing_ran(results: list[dict], report_dir: str) -> str:
    """Why a run that selected cells checked none of them: each reason, with how many cells."""
    reasons = Counter(r.get("reason") or r["status"] for r in results)
    shown = [f"{reason} ({n})" for reason, n in reasons.most_common(3)]
    if len(reasons) > 3:
        shown.append(f"{len(reasons) - 3} more reasons")
    return (
        f"nothing ran: all {len(results)} selected cells were skipped or not provided, so "
        f"nothing was checked; the reports in {report_dir} are left as they were. Reasons: "
        + "; ".join(shown)
    )


def list_backends() -> int:
    """Print each backend, built in or installed (entry points), whether it can run here,
    and the version of what it runs."""
    from backends.registry import CONTROLS, backend_names, load_backend

    for name in backend_names():
        backend = load_backend(name)
        reason = backend.unavailable_reason()
        status = f"unavailable: {reason}" if reason else f"available  {backend.version()}"
        role = "  (honest control)" if name in CONTROLS else ""
        print(f"{name:22} {status.rstrip()}{role}")
    return EXIT_OK


def main(argv: list[str] | None = None) -> int:
    """The entry point of the `normspec` command."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser().parse_args(argv)
    if args.command == "backends":
        return list_backends()
    if args.command == "envelope":
        return run_envelope(args, argv)
    if args.command == "bench":
        return run_bench(args)
    if args.command == "hunt":
        return hunt_command.hunt(args, argv)
    if args.command == "report":
        return run_report(args)
    return check(args, argv)


if __name__ == "__main__":
    sys.exit(main())
