"""The HTML report: `reports/index.html`, one page a person reads at a glance.

It opens on the verdict (the exit status, the counts, what changed since the previous run in
the same directory), then the conformance matrix with filters, the precision heatmap, the
conventions, the known deviations, and what `hunt`, `envelope` and `bench` left in the same
directory. It is built from the JSON reports alone (so an old run's JSON rebuilds its page),
needs no server and no network (CSS and JavaScript are inlined; pictures are the PNGs beside
it), and is written all at once: a missing or malformed input is an error naming the file,
raised before anything is written.
"""

from __future__ import annotations

import json
import sys
from html import escape
from importlib.resources import files
from pathlib import Path

from normspec.runner.files import write_all
from normspec.runner.site import extras, matrix, tables
from normspec.runner.site.changes import STATE, changes, next_state, read_state, run_state
from normspec.runner.site.inputs import CONFORMANCE, Reports, SiteInputError, load_reports

__all__ = ["INDEX", "SiteInputError", "build_site", "refresh_site", "render"]

INDEX = "index.html"


def _asset(name: str) -> str:
    return files(__package__).joinpath(name).read_text()


def render(reports: Reports, state: dict) -> str:
    """The page, as one HTML document."""
    conformance = reports.conformance
    results = conformance["results"]
    backends = [b["name"] for b in conformance["backends"]]
    backends += sorted({r["backend"] for r in results} - set(backends))
    changed = changes(state)
    title = f"normspec: {'FAILED' if matrix.exit_status(conformance) else 'passed'}"
    sections = [
        matrix.verdict(conformance, changed, state.get("previous") is not None),
        matrix.filters(results),
        matrix.grids(results, backends),
        matrix.cell_rows(results),
        tables.precision(conformance.get("precision", [])),
        tables.conventions(conformance),
        tables.deviations(conformance.get("known_deviations", [])),
        extras.hunt(reports.hunt),
        extras.envelope(reports.envelope, reports.envelope_pictures),
        extras.bench(reports.bench, reports.bench_pictures),
    ]
    contents = "".join(
        f'<a href="#{anchor}">{name}</a> '
        for anchor, name in (
            ("matrix", "matrix"),
            ("cells", "cells"),
            ("precision", "precision"),
            ("conventions", "conventions"),
            ("deviations", "known deviations"),
            ("hunt", "hunt"),
            ("envelope", "envelope"),
            ("bench", "bench"),
        )
        if f'id="{anchor}"' in "".join(sections)
    )
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{escape(title)}</title><style>{_asset('page.css')}</style></head>"
        f'<body><header class="muted">normspec report: {contents}'
        f'&middot; <a href="{CONFORMANCE}">{CONFORMANCE}</a></header>'
        + "".join(sections)
        + f"<script>{_asset('page.js')}</script></body></html>\n"
    )


def build_site(directory: Path, *, new_run: bool = False) -> list[Path]:
    """Write index.html (and its history, site-state.json) into `directory` from the JSON
    reports there; `new_run` says the reports come from a run that just finished, so the page
    compares it with the run it showed before. Raises SiteInputError, writing nothing, if a
    report is missing or malformed."""
    reports = load_reports(directory)
    state = next_state(
        read_state(directory),
        run_state(reports.conformance, reports.conformance_text),
        new_run=new_run,
    )
    page = render(reports, state)
    return write_all(
        directory, {INDEX: page, STATE: json.dumps(state, indent=1, sort_keys=True) + "\n"}
    )[:1]


def refresh_site(directory: Path, command: str) -> list[Path]:
    """At the end of `command` (hunt, envelope, bench): rebuild the page if a check has left
    its conformance.json in `directory`; a problem is a warning, never the command's failure."""
    if not (directory / CONFORMANCE).exists():
        return []
    try:
        return build_site(directory)
    except (SiteInputError, OSError) as error:
        print(f"normspec {command}: {INDEX} not rebuilt: {error}", file=sys.stderr)
        return []
