"""`normspec report`: rebuild reports/index.html from the JSON reports in a directory."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from normspec.runner.site import INDEX, SiteInputError, build_site

EXIT_OK, EXIT_USAGE = 0, 2


def add_report_parser(commands: argparse._SubParsersAction) -> None:
    """The `report` subcommand."""
    report = commands.add_parser(
        "report",
        help=f"write {INDEX}, the HTML report, from the JSON reports of earlier runs",
        description=f"Write {INDEX} into the report directory from the JSON reports there "
        "(conformance.json, required; envelope.json, hunt/discrepancies.json and "
        "bench/*.json when present): one self-contained page, opened from disk or attached "
        "as a CI artifact. `check`, `hunt`, `envelope` and `bench` write it at their end. "
        "Exit status: 0 written, 2 a report is missing or malformed (nothing is written).",
    )
    report.add_argument(
        "--report-dir",
        default="reports",
        metavar="DIR",
        help="the directory of the JSON reports, where the page is written (default: reports)",
    )


def run_report(args: argparse.Namespace) -> int:
    """Run `normspec report` and return its exit status."""
    directory = Path(args.report_dir)
    if not directory.is_dir():
        print(f"normspec report: error: {directory}: no such directory", file=sys.stderr)
        return EXIT_USAGE
    try:
        paths = build_site(directory)
    except SiteInputError as error:
        print(f"normspec report: error: {error}; nothing was written", file=sys.stderr)
        return EXIT_USAGE
    except OSError as error:
        print(f"normspec report: error: cannot write {directory / INDEX}: {error}", file=sys.stderr)
        return EXIT_USAGE
    print(f"normspec report: written: {', '.join(str(p) for p in paths)}")
    return EXIT_OK
