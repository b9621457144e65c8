"""The precision heatmap, the conventions table and the known deviations, as HTML."""

from __future__ import annotations

import math
from html import escape

DTYPES = ("float64", "float32", "float16", "bfloat16")


def heat(ratio: float) -> str:
    """The background of an error / bound ratio: green far inside the bound, yellow near it,
    red beyond it (ratio > 1 fails)."""
    if ratio > 1:
        return "hsl(0, 75%, 62%)"
    # 0 .. 1 on a log scale from 1e-4: hue 130 (green) down to 45 (yellow)
    position = 1 + max(math.log10(ratio), -4) / 4 if ratio > 0 else 0.0
    return f"hsl({130 - 85 * position:.0f}, 65%, {88 - 18 * position:.0f}%)"


def precision(rows: list[dict]) -> str:
    """The worst error / bound per norm x backend (rows) and dtype (columns)."""
    if not rows:
        return ""
    dtypes = [d for d in DTYPES if any(r["dtype"] == d for r in rows)]
    dtypes += sorted({r["dtype"] for r in rows} - set(DTYPES))
    cells = {(r["norm"], r["backend"], r["dtype"]): r for r in rows}
    lines = []
    for norm, backend in sorted({(r["norm"], r["backend"]) for r in rows}):
        tds = []
        for d in dtypes:
            r = cells.get((norm, backend, d))
            if r is None:
                tds.append("<td></td>")
                continue
            ratio = float(r["worst_error_over_bound"])
            tip = f"{r['property']}: {r['quantity']}\n{r.get('case', '')}"
            tds.append(
                f'<td class="heat" style="background:{heat(ratio)}" title="{escape(tip)}">'
                f"{ratio:.3g}</td>"
            )
        lines.append(
            f'<tr data-norm="{escape(norm)}" data-backends="{escape(backend)}">'
            f"<th>{escape(norm)}</th><th>{escape(backend)}</th>{''.join(tds)}</tr>"
        )
    head = "".join(f"<th>{escape(d)}</th>" for d in dtypes)
    return (
        '<section id="precision"><h2>Precision: worst error / bound</h2>'
        "<p>The largest error / bound ratio of the run per norm, backend and dtype (&le; 1 "
        "passes; hover a cell for the property, the quantity and the case).</p>"
        f"<table><thead><tr><th>norm</th><th>backend</th>{head}</tr></thead>"
        f"<tbody>{''.join(lines)}</tbody></table></section>"
    )


def conventions(conformance: dict) -> str:
    """A row per convention, a column per backend: the observed value, and the declared one
    where the framework does not follow its declaration."""
    rows = conformance.get("conventions", [])
    if not rows:
        return ""
    backends = [b["name"] for b in conformance["backends"] if not b.get("unavailable")]
    body = []
    for row in rows:
        tds = []
        for b in backends:
            entry = row["backends"].get(b)
            if entry is None:
                tds.append("<td></td>")
            elif entry["agrees"]:
                tds.append(f"<td>{escape(str(entry['observed']))}</td>")
            else:
                tds.append(
                    f'<td class="s-failed">{escape(str(entry["observed"]))} '
                    f"(declared {escape(str(entry['declared']))})</td>"
                )
        body.append(f"<tr><th>{escape(row['convention'])}</th>{''.join(tds)}</tr>")
    head = "".join(f"<th>{escape(b)}</th>" for b in backends)
    return (
        '<section id="conventions"><h2>Conventions, as observed</h2>'
        "<p>Where the math leaves a choice, frameworks differ legitimately: a difference "
        "between backends is a finding; a declaration the framework does not follow is a "
        "failure (red).</p>"
        f"<table><thead><tr><th>convention</th>{head}</tr></thead>"
        f"<tbody>{''.join(body)}</tbody></table></section>"
    )


def _names(value: str | list[str]) -> str:
    return ", ".join([value] if isinstance(value, str) else value)


def _link(url: str) -> str:
    if url.startswith(("https://", "http://")):
        return f'<a href="{escape(url)}">{escape(url)}</a>'
    return escape(url)


def deviations(entries: list[dict]) -> str:
    """The known deviations: where, what, the reproducer and the upstream report."""
    if not entries:
        return ""
    rows = "".join(
        f'<tr class="{"s-failed" if d.get("status") == "no longer observed" else ""}">'
        f"<td>{escape(_names(d['backend']))}</td><td>{escape(_names(d['norm']))}</td>"
        f"<td>{escape(str(d.get('status', '')))}</td>"
        f"<td>{d.get('tests_failed', 0)} / {d.get('tests_covered', 0)}</td>"
        f"<td>{escape(str(d.get('versions', '')))}</td>"
        f"<td><details><summary>{escape(d['reason'].splitlines()[0])}</summary>"
        f"<p>{escape(d['reason'])}</p><p>Properties: {escape(_names(d['property']))}</p>"
        "</details></td>"
        f'<td><code class="reproduction">{escape(d["reproduction"])}</code></td>'
        f"<td>{_link(d['upstream']) if d.get('upstream') else 'not recorded'}</td></tr>"
        for d in entries
    )
    return (
        '<section id="deviations"><h2>Known deviations</h2>'
        "<p>Strict xfails: each stays visible here while the framework deviates, and a run "
        "that no longer observes one fails.</p>"
        "<table><thead><tr><th>backend</th><th>norm</th><th>status</th>"
        "<th>tests failed / covered</th><th>versions</th><th>what</th><th>reproducer</th>"
        f"<th>upstream</th></tr></thead><tbody>{rows}</tbody></table></section>"
    )
