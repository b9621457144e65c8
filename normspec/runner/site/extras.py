"""What the other commands found: the hunt catalogue, the envelope and the bench, as HTML.

Each section is there only when its command has written into the report directory. Pictures
are the PNGs the commands drew (matplotlib), linked by their names beside index.html; the
bench's history is drawn here as a small SVG from the saved runs' JSON.
"""

from __future__ import annotations

from html import escape
from pathlib import PurePath


def hunt(catalogue: dict | None) -> str:
    """The hunt catalogue: one row per distinct discrepancy, new ones first."""
    if catalogue is None:
        return ""
    campaign, entries = catalogue["campaign"], catalogue["entries"]
    order = {"new": 0, "bug of normspec": 1, "known deviation": 2}
    rows = []
    for e in sorted(entries, key=lambda e: (order.get(e.get("status"), 3), e.get("id", ""))):
        signature = e.get("signature") or {}
        bad = e.get("status") != "known deviation"
        upstream = str(e.get("upstream", ""))
        link = (
            f'<a href="{escape(upstream)}">{escape(upstream)}</a>'
            if upstream.startswith(("https://", "http://"))
            else escape(upstream)
        )
        reproducer = e.get("reproducer")
        rows.append(
            f'<tr class="{"s-failed" if bad else "s-xfailed"}"><td>{escape(str(e.get("id")))}</td>'
            f"<td>{escape(str(e.get('status')))}</td>"
            f"<td>{escape(str(signature.get('norm', '')))}</td>"
            f"<td>{escape(' vs '.join(e.get('members', [])))}</td>"
            f"<td>{escape(str(signature.get('property', '')))}</td>"
            f"<td>{escape(str(e.get('worst_error_over_bound')))}</td><td>{e.get('hits', 0)}</td>"
            f"<td><details><summary>{escape(str(e.get('failure', '')))}</summary>"
            f"<p>{escape(str(e.get('region', '')))}</p>"
            f"<pre>{escape(str(e.get('minimal_case') or ''))}</pre>"
            f'<p>Reproduce: <code class="reproduction">{escape(str(e.get("reproduction")))}'
            "</code></p>"
            + (
                f'<p>Reproducer: <a href="{escape(_beside(reproducer))}">'
                f"<code>{escape(reproducer)}</code></a></p>"
                if reproducer
                else ""
            )
            + f"</details></td><td>{link}</td></tr>"
        )
    return (
        '<section id="hunt"><h2>Hunt catalogue</h2>'
        f"<p>Last campaign: <code>{escape(str(campaign.get('command', '')))}</code> at "
        f"{escape(str(catalogue.get('created', '')))}; {len(entries)} distinct "
        'discrepancies (<a href="hunt/discrepancies.md">discrepancies.md</a>).</p>'
        "<table><thead><tr><th>id</th><th>status</th><th>norm</th><th>backend</th>"
        "<th>property</th><th>worst error / bound</th><th>hits</th><th>failure</th>"
        f"<th>upstream</th></tr></thead><tbody>{''.join(rows)}</tbody></table></section>"
    )


def _beside(path: str) -> str:
    """The link from index.html to a reproducer, which hunt names by its path from where it
    ran (REPORT_DIR/hunt/reproducers/NAME.py): its last two parts, under hunt/."""
    parts = PurePath(path).parts
    return "/".join(("hunt", *parts[-2:]))


def envelope(report: dict | None, pictures: tuple[str, ...]) -> str:
    """The envelope: its heatmaps, and per backend x norm x dtype where it starts to fail."""
    if report is None and not pictures:
        return ""
    parts = ['<section id="envelope"><h2>Envelope</h2>']
    if report is not None:
        parts.append(f"<p><code>{escape(str(report['command']))}</code></p>")
        rows = "".join(
            f"<tr><td>{escape(s['backend'])}</td><td>{escape(s['norm'])}</td>"
            f"<td>{escape(s['dtype'])}</td><td>{s.get('cells', '')}</td>"
            f"<td>{escape(_counts(s.get('outcomes', {})))}</td>"
            f"<td>{escape(_by_size(s.get('fails_from', {})))}</td>"
            f"<td>{escape(_by_size(s.get('fails_below', {})))}</td></tr>"
            for s in report["summary"]
        )
        parts.append(
            "<table><thead><tr><th>backend</th><th>norm</th><th>dtype</th><th>cells</th>"
            "<th>outcomes</th><th>fails from magnitude (by size)</th>"
            f"<th>fails below magnitude (by size)</th></tr></thead><tbody>{rows}</tbody></table>"
        )
    parts += [
        f'<figure><a href="{escape(p)}"><img src="{escape(p)}" alt="envelope heatmap {escape(p)}" '
        f'loading="lazy"></a><figcaption>{escape(p)}</figcaption></figure>'
        for p in pictures
    ]
    return "".join(parts) + "</section>"


def _counts(counts: dict) -> str:
    return ", ".join(f"{n} {k}" for k, n in counts.items())


def _by_size(values: dict) -> str:
    return ", ".join(f"{size}: {value:g}" for size, value in values.items()) or "-"


def _time(seconds: float) -> str:
    for unit, scale in (("s", 1), ("ms", 1e-3), ("µs", 1e-6)):
        if seconds >= scale:
            return f"{seconds / scale:.3g} {unit}"
    return f"{seconds / 1e-9:.3g} ns"


def sparkline(points: list[float], width: int = 120, height: int = 28) -> str:
    """An SVG line of a row's median time over the saved runs, oldest left; the last run is
    the dot."""
    if len(points) < 2:
        return '<span class="muted">one run</span>'
    low, high = min(points), max(points)
    span = (high - low) or 1.0
    step = (width - 6) / (len(points) - 1)
    xy = [(3 + i * step, 3 + (height - 6) * (1 - (p - low) / span)) for i, p in enumerate(points)]
    path = " ".join(f"{x:.1f},{y:.1f}" for x, y in xy)
    x, y = xy[-1]
    return (
        f'<svg class="spark" width="{width}" height="{height}" viewBox="0 0 {width} {height}">'
        f'<polyline points="{path}" fill="none" stroke="currentColor" stroke-width="1.5"/>'
        f'<circle cx="{x:.1f}" cy="{y:.1f}" r="2.5"/><title>{len(points)} runs: '
        + ", ".join(_time(p) for p in points)
        + "</title></svg>"
    )


def bench(runs: tuple[dict, ...], pictures: tuple[str, ...]) -> str:
    """The latest bench run's table, each row with its fraction of the bandwidth limit and
    the history of its median over every saved run."""
    if not runs:
        return ""
    latest = runs[-1]
    history: dict[str, list[float]] = {}
    for run in runs:
        for row in run["rows"]:
            median = (row.get("time_s") or {}).get("median")
            if median is not None:
                history.setdefault(row["key"], []).append(float(median))
    limit = (latest.get("bandwidth") or {}).get("limit_gbps")
    rows = []
    for row in latest["rows"]:
        median = (row.get("time_s") or {}).get("median")
        fraction = row.get("fraction_of_limit")
        bar = (
            f'<span class="bar" style="width:{min(fraction, 1) * 100:.1f}%"></span>{fraction:.2%}'
            if isinstance(fraction, int | float)
            else ""
        )
        rows.append(
            f'<tr data-norm="{escape(str(row.get("norm")))}" '
            f'data-backends="{escape(str(row.get("backend")))}">'
            f"<td>{escape(str(row.get('backend')))}</td><td>{escape(str(row.get('norm')))}</td>"
            f"<td>{escape(str(row.get('workload')))} {escape(str(row.get('parameters', '')))}</td>"
            f"<td>{escape(str(row.get('mode')))}</td><td>{escape(str(row.get('dtype')))}</td>"
            + (
                f'<td class="num">{_time(median)}</td>'
                if median is not None
                else f'<td class="s-failed">{escape(str(row.get("error", "")))}</td>'
            )
            + f'<td class="num">{row.get("gbps", 0):.3g}</td><td class="fraction">{bar}</td>'
            f"<td>{sparkline(history.get(row['key'], []))}</td></tr>"
        )
    pictures_html = "".join(
        f'<figure><a href="{escape(p)}"><img src="{escape(p)}" alt="{escape(p)}" '
        f'loading="lazy"></a><figcaption>{escape(p)}</figcaption></figure>'
        for p in pictures
    )
    return (
        '<section id="bench"><h2>Bench</h2>'
        f"<p><code>{escape(str(latest.get('command', '')))}</code> at "
        f'{escape(str(latest.get("created", "")))} (<a href="{escape(latest["file"])}">'
        f"{escape(latest['file'])}</a>); bandwidth limit "
        f"{f'{limit:.3g} GB/s' if limit else 'not measured'}; history over {len(runs)} saved "
        "run(s).</p>"
        "<table><thead><tr><th>backend</th><th>norm</th><th>workload</th><th>mode</th>"
        "<th>dtype</th><th>median</th><th>GB/s</th><th>of limit</th><th>history</th></tr>"
        f"</thead><tbody>{''.join(rows)}</tbody></table>{pictures_html}</section>"
    )
