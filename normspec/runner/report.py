"""Reports of a check: the conformance matrix, the conventions table, the precision table.

Each is written twice: as Markdown for a person and inside `conformance.json` for a machine.
They hold only what the run found, so that under the derandomized `ci` profile an unchanged
tree gives the same bytes and a committed snapshot changes only when a result does; what
changes on every run (when, how long, how fast) goes to the timings (`timings.py`).
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

from normspec import __version__
from normspec.runner.files import write_all
from normspec.runner.timings import TIMINGS, timings_json, timings_markdown
from normspec.vocabulary import NORMS

SYMBOL = {
    "passed": "pass",
    "failed": "**FAIL**",
    "xfailed": "xfail (known)",
    "skipped": "skip",
    "not provided": "not provided",
    "xpassed": "pass (xfail not reached)",
}
#: Per-result keys that change on every run; they go to the timings.
VARYING = ("duration_s", "cpu_s", "time_s")
#: Significant digits of an error / bound ratio: the precision table's resolution.
DIGITS = 3


def summarize(results: list[dict]) -> dict[str, int]:
    """The number of results of each status."""
    counts: dict[str, int] = defaultdict(int)
    for r in results:
        counts[r["status"]] += 1
    return dict(sorted(counts.items()))


def conformance_json(record: dict, command: str) -> dict:
    """The machine-readable report: every result, the conventions and the precision table."""
    results = [{k: v for k, v in r.items() if k not in VARYING} for r in record.get("results", [])]
    return {
        "normspec_version": __version__,
        "command": command,
        "profile": record.get("profile"),
        "summary": summarize(results),
        "backends": record.get("backends", []),
        "results": results,
        "conventions": conventions_rows(record),
        "precision": precision_rows(record),
        "slack": slack_rows(record),
        "known_deviations": record.get("known_deviations", []),
        "crashes": record.get("crashes", []),
    }


def slack_rows(record: dict) -> list[dict]:
    """For the honest controls (kind "control"), the worst error / bound per norm x property
    x dtype: how close a correctly rounded backend comes to each bound. Ratios far below 1
    are slack a bug could hide in; near 1, the bound is tight."""
    controls = {r["backend"] for r in record.get("results", []) if r.get("kind") == "control"}
    worst: dict[tuple, float] = {}
    for p in record.get("precision", []):
        if p["backend"] in controls:
            key = (p["norm"], p["property"], p["dtype"], p["backend"])
            ratio = _significant(p["worst_error_over_bound"])
            worst[key] = max(worst.get(key, 0.0), ratio)
    return [
        {
            "norm": k[0],
            "property": k[1],
            "dtype": k[2],
            "backend": k[3],
            "worst_error_over_bound": v,
        }
        for k, v in sorted(worst.items())
    ]


def precision_rows(record: dict) -> list[dict]:
    """The worst error / bound ratio per norm x backend x dtype, with the property, the
    quantity and the case where it was found.

    Ratios are compared at the table's resolution, the first in (property, quantity) order
    winning a tie: rounding noise in the last bits of a multithreaded kernel's result must not
    switch the case a row shows."""
    worst: dict[tuple, dict] = {}
    for p in record.get("precision", []):
        row = dict(p, worst_error_over_bound=_significant(p["worst_error_over_bound"]))
        key = (row["norm"], row["backend"], row["dtype"])
        if key not in worst or row["worst_error_over_bound"] > worst[key]["worst_error_over_bound"]:
            worst[key] = row
    return [worst[k] for k in sorted(worst)]


def _significant(ratio: float) -> float:
    return float(f"{ratio:.{DIGITS}g}")


def conventions_rows(record: dict) -> list[dict]:
    """One row per convention: the value each backend declared and the value observed."""
    rows: dict[str, dict] = {}
    for entry in record.get("conventions", []):
        row = rows.setdefault(
            entry["convention"], {"convention": entry["convention"], "backends": {}}
        )
        row["backends"][entry["backend"]] = {
            "declared": entry["declared"],
            "observed": entry["observed"],
            "agrees": entry["agrees"],
        }
    return [rows[k] for k in sorted(rows)]


def conformance_markdown(report: dict) -> str:
    """The matrix norm x property x backend, then failures, skips and known deviations."""
    results = report["results"]
    backends = [b["name"] for b in report["backends"]]
    lines = [
        "# normspec conformance report",
        "",
        f"`{report['command']}`, profile `{report['profile']}`, normspec "
        f"{report['normspec_version']}. When it ran, how long it took and examples per "
        f"second: {TIMINGS}.md (not committed: they change on every run).",
        "",
        "Summary: " + ", ".join(f"{n} {s}" for s, n in report["summary"].items()),
        "",
        "| backend | version | layout | status |",
        "|---|---|---|---|",
    ]
    for b in report["backends"]:
        status = f"unavailable: {b['unavailable']}" if b["unavailable"] else "ran"
        lines.append(f"| {b['name']} | {b['version']} | {b['layout']} | {status} |")
    single = [r for r in results if r.get("kind", "single") in ("single", "control")]
    pairs = sorted({r["backend"] for r in results if r.get("kind") == "differential"})
    lines += _matrix(single, backends, "")
    if pairs:
        lines += ["", "# Differential: every pair of backends on the same inputs"]
        lines += _matrix([r for r in results if r.get("kind") == "differential"], pairs, " (pairs)")
    failures = [r for r in results if r["status"] == "failed"]
    lines += _limitations(results)
    if report.get("crashes"):
        lines += ["", "## Crashes outside any property", ""]
        lines += [f"- {message}" for message in report["crashes"]]
    if failures:
        lines += ["", "## Failures", ""]
        for r in failures:
            control = r.get("kind") == "control"
            lines += [
                f"### {r['norm']} on {r['backend']}: {r['property']}"
                + (
                    " (an honest control failed: a bug of normspec, not a finding)"
                    if control
                    else ""
                ),
                "",
                "```",
                r.get("message") or r.get("reason", ""),
                "```",
                "",
                f"Reproduce: `{r.get('reproduction', '')}`",
                "",
            ]
    lines += _known_deviations(report.get("known_deviations", []))
    lines += _reasons(results, "xfailed", "Known deviations by test (xfails)")
    lines += _reasons(results, "skipped", "Skipped")
    lines += _reasons(results, "not provided", "Not provided")
    return "\n".join(lines) + "\n"


def _matrix(results: list[dict], columns: list[str], suffix: str) -> list[str]:
    """One table per norm: a row per property, a column per backend (or pair)."""
    cells = {(r["norm"], r["property"], r["backend"]): r for r in results}
    lines = []
    for norm in NORMS:
        properties = sorted({r["property"] for r in results if r["norm"] == norm})
        if not properties:
            continue
        lines += [
            "",
            f"## {norm}{suffix}",
            "",
            "| property | " + " | ".join(columns) + " |",
            "|---|" + "---|" * len(columns),
        ]
        for prop in properties:
            row = [
                SYMBOL.get(cells[(norm, prop, c)]["status"], "?")
                if (norm, prop, c) in cells
                else ""
                for c in columns
            ]
            lines.append(f"| {prop} | " + " | ".join(row) + " |")
    return lines


def _limitations(results: list[dict]) -> list[str]:
    """The declared limitations: comparisons that left their bound on inputs whose
    intermediates the accumulation dtype cannot hold (normspec/tolerance.py), not failures."""
    rows = [(r, lim) for r in results for lim in r.get("limitations", [])]
    if not rows:
        return []
    lines = [
        "",
        "## Declared limitations",
        "",
        "Inputs whose exact output is ordinary but whose sum of squares (or mean square) the "
        "backend's accumulation dtype cannot hold: the bounds say nothing there, so a result "
        "outside them is shown here and does not fail the run (normspec/tolerance.py, "
        "intermediates out of range).",
        "",
        "| backend | norm | property | what | inputs outside the bound | worst error / bound "
        "| example |",
        "|---|---|---|---|---|---|---|",
    ]
    for r, lim in sorted(rows, key=lambda x: (x[0]["backend"], x[0]["norm"], x[1]["reason"])):
        worst = lim["worst_error_over_bound"]
        lines.append(
            f"| {r['backend']} | {r['norm']} | {r['property']} | {lim['reason']} "
            f"| {lim['count']} | {'NaN or inf' if worst is None else f'{worst:g}'} "
            f"| `{lim['case']}` |"
        )
    return lines


def _known_deviations(deviations: list[dict]) -> list[str]:
    """One line per known deviation: where it applies and how many tests it failed."""
    if not deviations:
        return []
    lines = [
        "",
        "## Known deviations",
        "",
        "| backend | norm | status | tests failed / covered | versions | reproduction |",
        "|---|---|---|---|---|---|",
    ]
    for d in deviations:
        backends, norms = (", ".join(_as_list(d[k])) for k in ("backend", "norm"))
        lines.append(
            f"| {backends} | {norms} | {d.get('status', '')} "
            f"| {d.get('tests_failed', 0)} / {d.get('tests_covered', 0)}"
            f" | {d['versions']} | `{d['reproduction']}` |"
        )
    return lines


def _as_list(value: str | list[str]) -> list[str]:
    return [value] if isinstance(value, str) else list(value)


def _reasons(results: list[dict], status: str, title: str) -> list[str]:
    reasons: dict[str, list[str]] = defaultdict(list)
    for r in results:
        if r["status"] == status:
            reasons[r.get("reason", "")].append(f"{r['norm']}/{r['property']}@{r['backend']}")
    if not reasons:
        return []
    lines = ["", f"## {title}", ""]
    for reason, where in sorted(reasons.items()):
        lines.append(
            f"- {reason} ({len(where)}: {', '.join(sorted(where)[:6])}"
            + (", ..." if len(where) > 6 else "")
            + ")"
        )
    return lines


def precision_markdown(report: dict) -> str:
    """The precision table: the worst observed error in units of its bound."""
    lines = [
        "# Precision: worst error / bound",
        "",
        "Each cell is the largest error / bound ratio observed over every comparison of "
        "the run (<= 1 passes). It tracks how close a backend comes to its derived bound, "
        "not only whether it stays inside.",
        "",
        "| norm | backend | dtype | worst error / bound | where | case |",
        "|---|---|---|---|---|---|",
    ]
    for p in report["precision"]:
        case = p["case"].replace("|", "\\|")
        lines.append(
            f"| {p['norm']} | {p['backend']} | {p['dtype']} | "
            f"{p['worst_error_over_bound']:.3g} | {p['property']}: {p['quantity']} | "
            f"`{case}` |"
        )
    lines += _slack(report.get("slack", []))
    return "\n".join(lines) + "\n"


def _slack(rows: list[dict]) -> list[str]:
    """The slack table: one row per norm x property, one column per control x dtype."""
    if not rows:
        return []
    columns = sorted({(r["backend"], r["dtype"]) for r in rows})
    cells = {(r["norm"], r["property"], r["backend"], r["dtype"]): r for r in rows}
    lines = [
        "",
        "## Slack: the honest controls",
        "",
        "The worst error / bound of the honest controls (`exact`: the NumPy code in float64, "
        "rounded once; `rounding`: float32 accumulation), which make only the errors the "
        "tolerance model allows. Near 1 the bound is tight; far below 1 it is loose, and "
        "a bug of that size could hide in it. A control above 1 is a bug of normspec.",
        "",
        "| norm | property | " + " | ".join(f"{b} {d}" for b, d in columns) + " |",
        "|---|---|" + "---|" * len(columns),
    ]
    for norm, prop in sorted({(r["norm"], r["property"]) for r in rows}):
        row = [
            f"{cells[(norm, prop, b, d)]['worst_error_over_bound']:.2g}"
            if (norm, prop, b, d) in cells
            else ""
            for b, d in columns
        ]
        lines.append(f"| {norm} | {prop} | " + " | ".join(row) + " |")
    return lines


def conventions_markdown(report: dict) -> str:
    """One row per convention, one column per backend: observed value (declared if it
    differs)."""
    backends = [b["name"] for b in report["backends"] if not b["unavailable"]]
    lines = [
        "# Conventions, as observed",
        "",
        "Frameworks differ legitimately where the math leaves a choice. Each backend "
        "declares its conventions; a property observes each one. A difference between "
        "backends is a finding, not a failure; a declaration the framework does not "
        "follow is a failure (marked **declared X**).",
        "",
        "| convention | " + " | ".join(backends) + " |",
        "|---|" + "---|" * len(backends),
    ]
    for row in report["conventions"]:
        cells = []
        for b in backends:
            entry = row["backends"].get(b)
            if entry is None:
                cells.append("")
            elif entry["agrees"]:
                cells.append(str(entry["observed"]))
            else:
                cells.append(f"{entry['observed']} (**declared {entry['declared']}**)")
        lines.append(f"| {row['convention']} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def write_reports(report: dict, record: dict, seconds: float, directory: Path) -> list[Path]:
    """Write conformance.json, conformance.md, precision.md, conventions.md and the run's
    timings, all of them or, if one cannot be written, none."""
    timings = timings_json(record, seconds)
    return write_all(
        directory,
        {
            "conformance.json": json.dumps(report, indent=1, default=str) + "\n",
            "conformance.md": conformance_markdown(report),
            "precision.md": precision_markdown(report),
            "conventions.md": conventions_markdown(report),
            f"{TIMINGS}.json": json.dumps(timings, indent=1) + "\n",
            f"{TIMINGS}.md": timings_markdown(timings),
        },
    )
