"""The command line: `normspec check` (the conformance gate) and `normspec backends`."""

from __future__ import annotations

import argparse
import ast
import os
import shlex
import signal
import sys
import traceback
from collections import Counter
from pathlib import Path

from normspec.runner.isolation import DEFAULT_TIMEOUT_S
from normspec.vocabulary import NORMS

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
STOPPED_BEFORE_REPORTS = "the property suite was ended and the previous reports are untouched"
#: The statuses of a cell that was not checked: a run of nothing else checked nothing.
NOT_RUN = frozenset({"skipped", "not provided"})


def property_names() -> list[str]:
    """The property test functions of the suite, read from its modules without importing."""
    from normspec.runner.engine import PROPERTIES

    names = []
    for path in sorted(PROPERTIES.glob("test_*.py")):
        tree = ast.parse(path.read_text())
        names += [
            n.name
            for n in tree.body
            if isinstance(n, ast.FunctionDef) and n.name.startswith("test_")
        ]
    return names


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
        "conformance.md, conformance.json, conventions.md and precision.md. Exit "
        "status: 0 all passed (known deviations are strict xfails), 1 a property "
        "failed, 2 bad usage (found before anything runs) or nothing ran (every selected "
        "cell skipped or not provided; the reports are then left as they were).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
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
        help="ci: derandomized and fast, for every pull request; dev: random, "
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
        "--report-dir",
        default="reports",
        metavar="DIR",
        help="where the reports are written: created if missing, checked before the run, "
        "and replaced all at once after it (a failed or interrupted run leaves them as they were)",
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
        "-v", "--verbose", action="store_true", help="show each property as it runs, and tracebacks"
    )
    backends = commands.add_parser(
        "backends", help="list the built-in backends and whether each can run here"
    )
    backends.set_defaults(command="backends")
    return parser


def _usage_error(message: str) -> int:
    print(f"normspec: error: {message}", file=sys.stderr)
    return EXIT_USAGE


def validate(args: argparse.Namespace) -> str | None:
    """Why the arguments cannot run, naming what is wrong and what is allowed; None if fine."""
    from backends.registry import UnknownBackendError, load_backend
    from normspec.runner.files import directory_problem

    for norm in args.norm:
        if norm not in NORMS:
            return f"unknown norm {norm!r}; valid norms: {', '.join(NORMS)}"
    known = property_names()
    for name in args.property:
        if name not in known:
            return f"unknown property {name!r}; valid properties: {', '.join(known)}"
    if args.timeout < 0:
        return f"--timeout must be >= 0 seconds (0: no limit), got {args.timeout:g}"
    if args.max_examples is not None and args.max_examples < 1:
        return f"--max-examples must be a positive integer, got {args.max_examples}"
    for name in args.backend:
        try:
            load_backend(name)
        except UnknownBackendError as error:
            return str(error)
        except Exception as error:  # the adapter's own code raised: name it, no traceback
            return adapter_problem(name, error)
    return directory_problem(Path(args.report_dir)) or deviations_problem(args.known_deviations)


def adapter_problem(name: str, error: Exception) -> str:
    """What went wrong loading backend `name`: the module or class that raised, the exception
    and where it was raised."""
    from backends.registry import BUILTIN

    module, _, attr = BUILTIN.get(name, name).partition(":")
    # a module whose import raised is not left in sys.modules
    doing = f"importing {module!r}" if module not in sys.modules else f"loading {attr!r}"
    if isinstance(error, SyntaxError):
        what, where = error.msg, f" at {error.filename}:{error.lineno}"
    else:
        frames = [
            f for f in traceback.extract_tb(error.__traceback__) if not f.filename.startswith("<")
        ]
        what, where = error, f" at {frames[-1].filename}:{frames[-1].lineno}" if frames else ""
    return f"backend {name!r}: {doing} raised {type(error).__name__}: {what}{where}"


def import_from_working_directory() -> None:
    """Let external adapters be imported from the working directory, as `python -m` does.

    The `normspec` console script, unlike `python -m normspec`, does not put the working
    directory on sys.path, while `package.module:attr` names a module importable from there
    (and the pytest child imports it from there: the engine puts it on its PYTHONPATH)."""
    cwd = os.getcwd()
    if cwd not in sys.path and "" not in sys.path:
        sys.path.insert(0, cwd)


def deviations_problem(paths: list[str]) -> str | None:
    """Why the known-deviations files (the suite's own and the user's) cannot be used, naming
    each file, line and problem; None if they can."""
    from normspec.runner.engine import PROPERTIES
    from properties.deviations_file import DeviationsFileError, load_deviations

    try:
        load_deviations([PROPERTIES / "known_deviations.toml", *map(Path, paths)])
    except DeviationsFileError as error:
        return f"bad known-deviations file:\n{error}"
    return None


def check(args: argparse.Namespace, argv: list[str]) -> int:
    """Run `normspec check` (given as `argv`, parsed as `args`) and return its exit status."""
    from normspec.runner.engine import CheckRequest, run_properties
    from normspec.runner.report import conformance_json, write_reports
    from normspec.runner.stopping import Stopped

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
        known_deviations=tuple(os.path.abspath(p) for p in args.known_deviations),
        verbose=args.verbose,
        timeout_s=args.timeout or None,
    )
    try:
        run = run_properties(request)
    except KeyboardInterrupt:
        print(f"\nnormspec: interrupted: {STOPPED_BEFORE_REPORTS}", file=sys.stderr)
        return 128 + signal.SIGINT
    except Stopped as stop:
        print(f"normspec: stopped by {stop.signal.name}: {STOPPED_BEFORE_REPORTS}", file=sys.stderr)
        return 128 + stop.signal
    results = run.record.get("results")
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
    summary = ", ".join(f"{n} {s}" for s, n in report["summary"].items())
    print(
        f"normspec: {summary} in {run.seconds:.1f} s; reports: " + ", ".join(str(p) for p in paths)
    )
    # a known deviation that a full ci run no longer observes fails the run (properties/conftest.py)
    gone = [d for d in report["known_deviations"] if d.get("status") == "no longer observed"]
    failed = report["summary"].get("failed", 0) + len(gone)
    if run.pytest_exit not in (0, 1) or (run.pytest_exit == 1 and not failed):
        return _usage_error(f"pytest stopped with exit status {run.pytest_exit}")
    return EXIT_FAILED if failed else EXIT_OK


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
    """Print each built-in backend and whether it can run here."""
    from backends.registry import BUILTIN, load_backend

    for name in BUILTIN:
        backend = load_backend(name)
        reason = backend.unavailable_reason()
        print(f"{name:22} {'unavailable: ' + reason if reason else 'available'}")
    return EXIT_OK


def main(argv: list[str] | None = None) -> int:
    """The entry point of the `normspec` command."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser().parse_args(argv)
    if args.command == "backends":
        return list_backends()
    return check(args, argv)


if __name__ == "__main__":
    sys.exit(main())
