"""The verdict and the conformance matrix, as HTML.

The matrix is drawn twice from the same results: a grid per norm (a row per property, a
column per backend, each cell a coloured link) to see at a glance, and one row per cell with
its reason, message, shrunk falsifying example and reproduction command behind a click
(<details>), which the filters act on.
"""

from __future__ import annotations

from html import escape

from normspec.runner.site.changes import cell_key
from normspec.vocabulary import NORMS

#: Statuses in the order the verdict counts them, with the word the page shows for each.
STATUSES = {
    "failed": "FAIL",
    "passed": "pass",
    "xfailed": "xfail",
    "xpassed": "xpass",
    "skipped": "skip",
    "not provided": "not provided",
}
#: The shorter word of the grid, whose columns stay narrow.
SHORT = dict(STATUSES, **{"not provided": "n/a"})
#: What each status means, for the legend.
MEANING = {
    "failed": "the property does not hold",
    "passed": "the property holds on every example",
    "xfailed": "a known deviation, observed",
    "xpassed": "a known deviation these examples did not reach",
    "skipped": "not run here (the backend is unavailable)",
    "not provided": "the backend has no such norm",
}


def status_class(status: str) -> str:
    """The CSS class of a status: `s-failed`, `s-not-provided`."""
    return "s-" + status.replace(" ", "-")


def exit_status(conformance: dict) -> int:
    """The exit status `normspec check` gave this run: 1 if a property failed or a known
    deviation is no longer observed, else 0."""
    gone = [
        d
        for d in conformance.get("known_deviations", [])
        if d.get("status") == "no longer observed"
    ]
    return 1 if conformance["summary"].get("failed", 0) or gone else 0


def verdict(conformance: dict, changed: list[tuple], has_previous: bool) -> str:
    """The page's first section: exit status, counts, what changed."""
    code = exit_status(conformance)
    counts = conformance["summary"]
    total = sum(counts.values())
    badges = "".join(
        f'<li class="count {status_class(s)}" data-status="{escape(s)}" title="{MEANING[s]}">'
        f'<a href="#status={escape(s)}"><b id="count-{s.replace(" ", "-")}">'
        f"{counts.get(s, 0)}</b> {STATUSES[s]}</a></li>"
        for s in STATUSES
    )
    extra = sorted(set(counts) - set(STATUSES))
    badges += "".join(f'<li class="count"><b>{counts[s]}</b> {escape(s)}</li>' for s in extra)
    word = "FAILED" if code else "PASSED"
    return (
        f'<section id="verdict" class="{"bad" if code else "good"}">'
        f'<h1><span id="verdict-word">{word}</span>: exit status '
        f'<span id="exit-status">{code}</span></h1>'
        f'<p class="command"><code>{escape(conformance.get("command", ""))}</code>, profile '
        f"{escape(str(conformance.get('profile')))}, normspec "
        f"{escape(str(conformance.get('normspec_version', '')))}; {total} cells</p>"
        f'<ul class="counts">{badges}</ul>'
        + _changes(changed, has_previous)
        + _crashes(conformance.get("crashes", []))
        + "</section>"
    )


def _changes(changed: list[tuple], has_previous: bool, shown: int = 200) -> str:
    if not has_previous:
        return '<p id="changes">No previous run in this directory to compare with.</p>'
    if not changed:
        return '<p id="changes">Nothing changed since the previous run in this directory.</p>'
    items = "".join(
        f"<li><code>{escape(key)}</code>: {escape(before or 'absent')} &rarr; "
        f'<span class="{status_class(after or "absent")}">{escape(after or "absent")}</span></li>'
        for key, before, after in changed[:shown]
    )
    more = f"<li>and {len(changed) - shown} more</li>" if len(changed) > shown else ""
    return (
        f'<details id="changes" open><summary>{len(changed)} cell(s) changed since the '
        f"previous run in this directory</summary><ul>{items}{more}</ul></details>"
    )


def _crashes(crashes: list[str]) -> str:
    if not crashes:
        return ""
    items = "".join(f"<li><pre>{escape(c)}</pre></li>" for c in crashes)
    return f"<h2>Crashes outside any property</h2><ul>{items}</ul>"


def cell_id(result: dict) -> str:
    """An HTML id for a cell, stable across runs."""
    return "cell-" + "".join(c if c.isalnum() or c in "-_" else "_" for c in cell_key(result))


def members(result: dict) -> list[str]:
    """The backends a cell ran: one, or the two of a differential pair."""
    return result["backend"].split(" vs ")


def reproduction(result: dict) -> str:
    """The command that reruns a cell: the one the run recorded, or, for a report older than
    that, one made from the cell's names."""
    if result.get("reproduction"):
        return result["reproduction"]
    backends = " ".join(f"--backend {b}" for b in members(result))
    return f"normspec check {backends} --norm {result['norm']} --property {result['property']}"


def grids(results: list[dict], backends: list[str]) -> str:
    """One grid per norm (and per norm for the differential pairs): property x backend."""
    single = [r for r in results if r.get("kind", "single") != "differential"]
    pairs = [r for r in results if r.get("kind") == "differential"]
    parts = [_grid(single, backends, norm, "") for norm in _norms(single)]
    columns = sorted({r["backend"] for r in pairs})
    parts += [_grid(pairs, columns, norm, " (differential pairs)") for norm in _norms(pairs)]
    return '<section id="matrix"><h2>Conformance matrix</h2>' + "".join(parts) + "</section>"


def _norms(results: list[dict]) -> list[str]:
    present = {r["norm"] for r in results}
    return [n for n in NORMS if n in present] + sorted(present - set(NORMS))


def _grid(results: list[dict], columns: list[str], norm: str, suffix: str) -> str:
    cells = {(r["property"], r["backend"]): r for r in results if r["norm"] == norm}
    used = [c for c in columns if any(b == c for _, b in cells)]
    head = "".join(
        f'<th data-backends="{escape(" ".join(c.split(" vs ")))}"><span>{escape(c)}</span></th>'
        for c in used
    )
    rows = []
    for prop in sorted({p for p, _ in cells}):
        row = []
        for c in used:
            r = cells.get((prop, c))
            if r is None:
                row.append(f'<td data-backends="{escape(" ".join(c.split(" vs ")))}"></td>')
                continue
            row.append(
                f'<td class="{status_class(r["status"])}" data-status="{escape(r["status"])}" '
                f'data-backends="{escape(" ".join(members(r)))}">'
                f'<a href="#{cell_id(r)}" title="{escape(c)}: {escape(r["status"])}">'
                f"{SHORT.get(r['status'], escape(r['status']))}</a></td>"
            )
        rows.append(f"<tr><th>{escape(prop)}</th>{''.join(row)}</tr>")
    return (
        f'<div class="grid" data-norm="{escape(norm)}"><h3>{escape(norm)}{suffix}</h3>'
        f"<table><thead><tr><th>property</th>{head}</tr></thead><tbody>{''.join(rows)}"
        "</tbody></table></div>"
    )


def cell_rows(results: list[dict]) -> str:
    """One row per cell, in the matrix's order, each with its details behind a click."""
    order = {n: i for i, n in enumerate(NORMS)}
    ordered = sorted(
        results,
        key=lambda r: (
            r["status"] != "failed",
            order.get(r["norm"], len(order)),
            r["norm"],
            r["property"],
            r["backend"],
        ),
    )
    rows = "".join(_cell_row(r) for r in ordered)
    return (
        '<section id="cells"><h2>Every cell</h2>'
        '<p>Failures first. <span id="shown">' + str(len(results)) + "</span> of "
        f"{len(results)} cells shown.</p>"
        '<table id="cell-table"><thead><tr><th>status</th><th>norm</th><th>property</th>'
        f"<th>backend</th><th>details</th></tr></thead><tbody>{rows}</tbody></table></section>"
    )


def _cell_row(r: dict) -> str:
    status = r["status"]
    details = []
    if r.get("reason"):
        details.append(f'<p class="reason">{escape(r["reason"])}</p>')
    if r.get("message"):
        details.append(f'<pre class="message">{escape(r["message"])}</pre>')
    if r.get("falsifying_example"):
        details.append(
            f'<p>Shrunk falsifying example:</p><pre class="example">'
            f"{escape(r['falsifying_example'])}</pre>"
        )
    if status in ("failed", "xpassed"):
        details.append(
            f'<p>Reproduce: <code class="reproduction">{escape(reproduction(r))}</code></p>'
        )
    if r.get("nodeid"):
        details.append(f'<p class="nodeid">pytest: <code>{escape(r["nodeid"])}</code></p>')
    if "examples" in r:
        details.append(f"<p>{r['examples']} example(s)</p>")
    summary = _first_line(r.get("message") or r.get("reason") or status)
    return (
        f'<tr id="{cell_id(r)}" class="cell {status_class(status)}" '
        f'data-norm="{escape(r["norm"])}" data-backends="{escape(" ".join(members(r)))}" '
        f'data-status="{escape(status)}">'
        f'<td class="status">{STATUSES.get(status, escape(status))}</td>'
        f"<td>{escape(r['norm'])}</td><td>{escape(r['property'])}</td>"
        f"<td>{escape(r['backend'])}</td>"
        f"<td><details{' open' if status == 'failed' else ''}><summary>{escape(summary)}"
        f"</summary>{''.join(details)}</details></td></tr>"
    )


def _first_line(text: str, width: int = 120) -> str:
    line = text.strip().splitlines()[0] if text.strip() else ""
    return line if len(line) <= width else line[: width - 1] + "…"


def filters(results: list[dict]) -> str:
    """The filter bar: backend, norm, status; the page also reads them from the URL's hash
    (index.html#status=failed&backend=numpy), so a link can carry a view."""
    backends = sorted({b for r in results for b in members(r)})
    norms = _norms(results)
    statuses = [s for s in STATUSES if any(r["status"] == s for r in results)]

    def select(name: str, values: list[str]) -> str:
        options = "".join(f'<option value="{escape(v)}">{escape(v)}</option>' for v in values)
        return (
            f'<label>{name} <select id="filter-{name}" data-filter="{name}">'
            f'<option value="">all</option>{options}</select></label>'
        )

    return (
        '<nav id="filters">'
        + select("backend", backends)
        + select("norm", norms)
        + select("status", statuses)
        + '<button type="button" id="filter-reset">show all</button></nav>'
    )
