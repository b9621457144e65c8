"""`normspec hunt`: its arguments, the checks before a campaign, the summary and exit status.

Exit status: 0 when the campaign found nothing outside the known deviations; 1 when it found
a discrepancy no known deviation covers, or the honest control failed (a bug of normspec,
reported apart from the findings); 2 for bad usage (found before anything runs) or when
nothing ran; 128 + the signal when stopped by Ctrl-C, SIGTERM or SIGHUP (after writing the
catalogue of what was found so far).
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import shlex
import shutil
import signal
import sys
from collections import Counter, defaultdict
from pathlib import Path

from normspec.hunt import catalogue
from normspec.hunt.budget import BudgetError, describe, parse_budget
from normspec.hunt.campaign import (
    Campaign,
    HuntRequest,
    interrupt_message,
    new_workdir,
    run_campaign,
)
from normspec.hunt.display import Display
from normspec.runner.engine import PROPERTIES
from normspec.runner.files import write_all
from normspec.runner.preflight import import_from_working_directory, validate
from normspec.runner.site import refresh_site
from normspec.vocabulary import NORMS
from properties.example_database import DEFAULT_DATABASE, unreachable

EXIT_OK, EXIT_FOUND, EXIT_USAGE = 0, 1, 2
#: The control every hunt runs unless told not to.
CONTROL = "exact"
#: Where the catalogue goes, inside --report-dir.
HUNT_DIR = "hunt"


def add_parser(commands: argparse._SubParsersAction) -> None:
    """The `hunt` subcommand of `normspec`."""
    from backends.registry import BUILTIN

    hunt = commands.add_parser(
        "hunt",
        help="search for discrepancies under a time budget; write a catalogue and reproducers",
        description="Run the Hypothesis properties as long campaigns: targeted (each "
        "comparison's error / bound steers the search), persistent (failures are kept in "
        "an example database and replayed first by every later hunt and check), bounded "
        "(--budget, shared among the cells) and interruptible (Ctrl-C keeps what was "
        "found). Writes DIR/hunt/discrepancies.md and .json, one entry per distinct "
        "discrepancy, and a standalone reproducer for each under DIR/hunt/repro/. Runs the "
        f"honest control {CONTROL!r} too: its failure is a bug of normspec, not a finding. "
        "Exit status: 0 nothing new, 1 a discrepancy no known deviation covers (or the "
        "control failed), 2 bad usage or nothing ran, 128 + the signal when stopped.",
    )
    hunt.add_argument(
        "--backend",
        action="append",
        default=[],
        metavar="NAME",
        help="backend to hunt, repeatable: one of " + ", ".join(BUILTIN) + ", or an external "
        "adapter as module:attr (default: all built-in)",
    )
    hunt.add_argument(
        "--norm",
        action="append",
        default=[],
        metavar="NAME",
        help="norm, repeatable: " + ", ".join(NORMS) + " (default: all)",
    )
    hunt.add_argument(
        "--property",
        action="append",
        default=[],
        metavar="NAME",
        help="property test function, repeatable (default: every property Hypothesis drives)",
    )
    hunt.add_argument(
        "--budget",
        default="10m",
        metavar="TIME",
        help="how long to hunt, e.g. 90s, 10m, 1h30m (default 10m); each cell gets an equal "
        "share of what is left when it starts",
    )
    hunt.add_argument(
        "--max-elements",
        type=int,
        default=None,
        metavar="N",
        help="the size budget: no drawn input has more than N elements (default 1048576: "
        "reductions of up to 2^20 values, where blocked kernels branch; lower it on a small "
        "machine or for a faster search of small shapes)",
    )
    hunt.add_argument(
        "--workers",
        type=int,
        default=1,
        metavar="N",
        help="pytest processes to hunt in, side by side (default 1): each takes every N-th "
        "cell and shares the budget among its own cells, each is isolated (a crash or a hang "
        "restarts only its own); about one per free core (a shared --database spreads a "
        "campaign over machines)",
    )
    hunt.add_argument(
        "--database",
        default=DEFAULT_DATABASE,
        metavar="WHERE",
        help="Hypothesis' example database: a directory (default: .normspec/examples), or "
        "redis://HOST:PORT/N to share one campaign across machines (pip install redis)",
    )
    hunt.add_argument(
        "--report-dir",
        default="reports",
        metavar="DIR",
        help="the catalogue goes to DIR/hunt/ (default: reports), merged with the one there",
    )
    hunt.add_argument(
        "--known-deviations",
        action="append",
        default=[],
        metavar="FILE",
        help="an extra TOML file of known deviations",
    )
    hunt.add_argument(
        "--seed",
        type=int,
        default=None,
        metavar="N",
        help="Hypothesis' seed (default: random): give each machine of a shared campaign its own",
    )
    hunt.add_argument(
        "--no-control",
        action="store_true",
        help=f"do not run the honest control {CONTROL!r}",
    )
    hunt.add_argument(
        "--shrink",
        type=float,
        default=5.0,
        metavar="SECONDS",
        help="seconds a cell that found a failure may spend shrinking it (default 5)",
    )
    hunt.add_argument(
        "--merge",
        action="append",
        default=[],
        metavar="FILE",
        help="another campaign's discrepancies.json (another machine's) to merge into this "
        "catalogue, repeatable",
    )
    hunt.add_argument("-v", "--verbose", action="store_true", help="show pytest's output")


def hunted_properties() -> list[str]:
    """The property functions Hypothesis drives (those decorated with @given), read from the
    suite's modules without importing them: the others are deterministic, nothing to hunt."""
    names = []
    for path in sorted(PROPERTIES.glob("test_*.py")):
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, ast.FunctionDef) and any(
                isinstance(d, ast.Call) and getattr(d.func, "id", "") == "given"
                for d in node.decorator_list
            ):
                names.append(node.name)
    return names


def _usage_error(message: str) -> int:
    print(f"normspec hunt: error: {message}", file=sys.stderr)
    return EXIT_USAGE


def hunt(args: argparse.Namespace, argv: list[str]) -> int:
    """Run `normspec hunt` (given as `argv`, parsed as `args`) and return its exit status."""
    import_from_working_directory()
    from backends.registry import BUILTIN

    backends = list(dict.fromkeys(args.backend)) or list(BUILTIN)
    if not args.no_control and CONTROL not in backends:
        backends.append(CONTROL)
    checked = argparse.Namespace(
        norm=args.norm,
        property=args.property,
        timeout=0.0,
        max_examples=None,
        max_elements=args.max_elements,
        workers=args.workers,
        backend=backends,
        junit_xml=None,
        report_dir=args.report_dir,
        known_deviations=args.known_deviations,
    )
    problem = validate(checked) or next(
        (f"--merge {p}: no such file" for p in args.merge if not Path(p).is_file()), None
    )
    if problem:
        return _usage_error(problem)
    try:
        budget = parse_budget(args.budget)
    except BudgetError as error:
        return _usage_error(str(error))
    if args.shrink < 0:
        return _usage_error(f"--shrink must be >= 0 seconds, got {args.shrink:g}")
    database = args.database
    if database.lower() != "none" and "://" not in database:
        database = os.path.abspath(database)
    problem = unreachable(database)
    if problem:
        return _usage_error(problem)
    request = HuntRequest(
        backends=tuple(backends),
        norms=tuple(dict.fromkeys(args.norm)),
        properties=tuple(dict.fromkeys(args.property)) or tuple(hunted_properties()),
        budget_s=budget,
        database=database,
        known_deviations=tuple(os.path.abspath(p) for p in args.known_deviations),
        seed=args.seed,
        workers=args.workers,
        shrink_s=args.shrink,
        max_elements=args.max_elements,
        verbose=args.verbose,
    )
    workdir = new_workdir()
    try:
        return _run(request, args, argv, workdir)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def _run(request: HuntRequest, args: argparse.Namespace, argv: list[str], workdir: Path) -> int:
    display = Display(sys.stdout) if sys.stdout.isatty() and not args.verbose else None
    try:
        run = run_campaign(request, workdir, display.update if display else None)
    finally:
        if display:
            display.clear()
    tally = run.tally
    if tally.planned is None and not tally.results:
        print(run.output[-4000:], file=sys.stderr)
        return _usage_error(
            "nothing ran: the property suite stopped before its first cell "
            f"(pytest exit status {run.pytest_exit}); its output is above"
        )
    if run.stopped not in (None, "budget"):
        print(f"\nnormspec hunt: {run.stopped}: writing what was found so far", file=sys.stderr)
    directory = Path(args.report_dir) / HUNT_DIR
    found = catalogue.findings(tally)
    from normspec.hunt.reproducers import write_reproducers

    versions = {b["name"]: framework_version(b) for b in tally.backends}
    notes = write_reproducers(found, directory, versions)
    when = catalogue.now()
    previous = catalogue.load(directory / "discrepancies.json")
    for other in args.merge:
        previous = catalogue.combine(previous, catalogue.load(Path(other)))
    entries = catalogue.merge(previous, found, when)
    for entry in entries:
        if entry["id"] in notes:
            entry["reproducer"], entry["reproducer_note"] = notes[entry["id"]]
    summary = campaign_summary(run, argv)
    document = catalogue.catalogue_json(entries, summary)
    try:
        paths = write_all(
            directory,
            {
                "discrepancies.json": json.dumps(document, indent=1, default=str) + "\n",
                "discrepancies.md": catalogue.catalogue_markdown(document),
            },
        )
    except OSError as error:
        return _usage_error(f"cannot write the catalogue to {directory}: {error}")
    paths += refresh_site(Path(args.report_dir), "hunt")
    _print_summary(run, summary, found, paths)
    if run.stopped not in (None, "budget"):
        name = "SIGINT" if run.stopped == "interrupted" else run.stopped
        return 128 + signal.Signals[name]
    return EXIT_FOUND if any(f["status"] != catalogue.KNOWN for f in found) else EXIT_OK


def framework_version(row: dict) -> str:
    """How a reproducer names what it runs: "torch 2.13.0+cpu", or an adapter and NumPy's
    version."""
    name, version = row["name"], row.get("version", "")
    for framework in ("torch", "tensorflow"):
        if name.startswith(framework):
            return f"{framework} {version}".strip()
    return f"{name} (NumPy {version})" if version else name


def campaign_summary(run: Campaign, argv: list[str]) -> dict:
    """The campaign as discrepancies.json records it: command, time, cells, throughput."""
    cells = list(run.tally.cells.values())
    return {
        "command": "normspec " + shlex.join(argv),
        "seconds": round(run.seconds, 1),
        "stopped": interrupt_message(run.stopped),
        "cells_planned": run.tally.planned,
        "cells_run": len(cells),
        "statuses": dict(Counter(r["status"] for r in run.tally.results)),
        "examples": sum(c["examples"] for c in cells),
        "throughput": throughput(cells),
        "first_failures": first_failures(cells),
    }


def first_failures(cells: list[dict]) -> list[dict]:
    """How soon each cell that failed found its first failure: the example (counted from 1)
    and the seconds into the cell. Per campaign, not per entry: an entry gathers campaigns."""
    return [
        {
            "backend": cell["backend"],
            "norm": cell["norm"],
            "property": cell["property"],
            "example": cell["first_failure"],
            "seconds": cell.get("first_failure_s"),
        }
        for cell in cells
        if cell.get("first_failure")
    ]


def throughput(cells: list[dict]) -> list[dict]:
    """Examples per second per backend (or pair), and where the time of its cells went:
    drawing the inputs, the backend's calls, the rest of the property (the spec and the
    comparisons), and Hypothesis itself."""
    totals: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    for cell in cells:
        row = totals[cell["backend"]]
        row["examples"] += cell["examples"]
        row["seconds"] += cell["seconds"]
        row["draw"] += cell["draw_s"]
        row["backend"] += sum(cell["backend_s"].values())
        row["inner"] += cell["inner_s"]
    rows = []
    for name, row in sorted(totals.items()):
        seconds = row["seconds"] or 1e-9
        rows.append(
            {
                "backend": name,
                "examples": int(row["examples"]),
                "seconds": round(row["seconds"], 2),
                "examples_per_second": round(row["examples"] / seconds, 1),
                "share_drawing": round(row["draw"] / seconds, 3),
                "share_backend": round(row["backend"] / seconds, 3),
                "share_spec_and_comparison": round(
                    max(row["inner"] - row["draw"] - row["backend"], 0.0) / seconds, 3
                ),
                "share_hypothesis": round(max(seconds - row["inner"], 0.0) / seconds, 3),
            }
        )
    return rows


def _print_summary(run: Campaign, summary: dict, found: list[dict], paths: list[Path]) -> None:
    planned = summary["cells_planned"]
    statuses = ", ".join(f"{n} {s}" for s, n in sorted(summary["statuses"].items()))
    print(
        f"normspec hunt: {describe(run.seconds)}, {summary['cells_run']}/{planned} cells "
        f"({statuses}), {summary['examples']} examples"
        + (f"; {summary['stopped']}" if summary["stopped"] else "")
    )
    for row in summary["throughput"]:
        print(
            f"  {row['backend']}: {row['examples']} examples, {row['examples_per_second']:g}/s "
            f"(drawing {row['share_drawing']:.0%}, backend {row['share_backend']:.0%}, spec "
            f"and comparison {row['share_spec_and_comparison']:.0%}, Hypothesis "
            f"{row['share_hypothesis']:.0%})"
        )
    counts = {s: sum(1 for f in found if f["status"] == s) for s in catalogue.STATUSES}
    print(
        f"  found: {counts[catalogue.NEW]} new, {counts[catalogue.KNOWN]} known deviations, "
        f"{counts[catalogue.CONTROL]} failures of the control (bugs of normspec)"
    )
    for f in found:
        if f["status"] == catalogue.KNOWN:
            continue
        label = "BUG OF NORMSPEC" if f["status"] == catalogue.CONTROL else "NEW"
        s = f["signature"]
        print(
            f"  {label} {f['id']}: {s['norm']} on {s['backend']}, {s['dtype']}, "
            f"{s['property']}: {f['failure']}"
        )
    print("  catalogue: " + ", ".join(str(p) for p in paths))
