"""The command line: `normspec check` (the conformance gate) and `normspec backends`."""

from __future__ import annotations

import argparse
import ast
import os
import shlex
import sys
from pathlib import Path

from normspec.runner.isolation import DEFAULT_TIMEOUT_S
from normspec.vocabulary import NORMS

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


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
        "failed, 2 bad usage or nothing ran.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    check.add_argument(
        "--backend",
        action="append",
        default=[],
        metavar="NAME",
        help="backend to check, repeatable: one of "
        + ", ".join(BUILTIN)
        + ", or an external adapter as package.module:attr (default: all "
        "built-in; those whose framework is missing are reported as skipped)",
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
        "--report-dir", default="reports", metavar="DIR", help="where the reports are written"
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
        "backends",
        help="list the backends (built in, and installed as normspec.backends entry points), "
        "whether each can run here, and their versions",
    )
    backends.set_defaults(command="backends")
    return parser


def _usage_error(message: str) -> int:
    print(f"normspec: error: {message}", file=sys.stderr)
    return EXIT_USAGE


def validate(args: argparse.Namespace) -> str | None:
    """Why the arguments cannot run, naming what is wrong and what is allowed; None if fine."""
    from backends.registry import UnknownBackendError, load_backend

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
    return None


def check(args: argparse.Namespace) -> int:
    """Run `normspec check` and return its exit status."""
    from normspec.runner.engine import CheckRequest, run_properties
    from normspec.runner.report import conformance_json, write_reports

    problem = validate(args)
    if problem:
        return _usage_error(problem)
    request = CheckRequest(
        backends=tuple(args.backend),
        norms=tuple(args.norm),
        properties=tuple(args.property),
        profile=args.profile,
        max_examples=args.max_examples,
        known_deviations=tuple(os.path.abspath(p) for p in args.known_deviations),
        verbose=args.verbose,
        timeout_s=args.timeout or None,
    )
    run = run_properties(request)
    if not run.record.get("results"):
        return _usage_error(
            f"no property ran (pytest exit status {run.pytest_exit}); check "
            "the selection of backends, norms and properties"
        )
    command = "normspec " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    report = conformance_json(run.record, command, run.seconds)
    paths = write_reports(report, Path(args.report_dir))
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


def list_backends() -> int:
    """Print each backend, built in or installed (entry points), whether it can run here,
    and the version of what it runs."""
    from backends.registry import backend_names, load_backend

    for name in backend_names():
        backend = load_backend(name)
        reason = backend.unavailable_reason()
        status = f"unavailable: {reason}" if reason else f"available  {backend.version()}"
        print(f"{name:22} {status.rstrip()}")
    return EXIT_OK


def main(argv: list[str] | None = None) -> int:
    """The entry point of the `normspec` command."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    args = build_parser().parse_args(argv)
    if args.command == "backends":
        return list_backends()
    return check(args)


if __name__ == "__main__":
    sys.exit(main())
