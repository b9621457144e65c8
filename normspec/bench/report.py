"""The reports of `normspec bench`: Markdown tables and PNG plots (matplotlib).

    bench.md, bench.png             a run: time per call and fraction of the bandwidth limit
    bench-compare.md                a run against a saved one (--compare)
    bench-ab.md, bench-ab.png       two interpreters side by side (--ab): B / A per workload

Rows are ordered as the grid is (norm, workload, mode), with the backends of one workload
next to each other, so a reader compares backends within a row group.
"""

from __future__ import annotations

import math
from pathlib import Path

from normspec.bench.progress import duration
from normspec.bench.workloads import MODES, WORKLOADS

_ORDER = {w.id: i for i, w in enumerate(WORKLOADS)}
CLOCKS = {"cpu": "process's CPU time", "wall": "wall clock"}


def seconds(value: float) -> str:
    """A time per call with its unit: 812 ns, 12.3 µs, 4.56 ms, 1.23 s."""
    if not math.isfinite(value):
        return "∞" if value > 0 else "-∞"
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("µs", 1e-6)):
        if value >= scale:
            return f"{value / scale:.3g} {unit}"
    return f"{value / 1e-9:.3g} ns"


def percent(fraction: float) -> str:
    """A fraction as a percentage with two significant digits: 41%, 2.2%, 0.013%."""
    value = 100 * fraction
    if value >= 10:
        return f"{value:.0f}%"
    return f"{value:.2g}%"


def _ordered(rows: list[dict]) -> list[dict]:
    backends = list(dict.fromkeys(r["backend"] for r in rows))
    return sorted(
        rows,
        key=lambda r: (
            _ORDER[f"{r['norm']}:{r['workload']}"],
            MODES.index(r["mode"]),
            r["dtype"],
            backends.index(r["backend"]),
        ),
    )


def _calls(iterations: int | list[int]) -> str:
    """Calls per round: one number, or the range over the passes' calibrations."""
    if isinstance(iterations, int):
        return str(iterations)
    low, high = min(iterations), max(iterations)
    return str(low) if low == high else f"{low}–{high}"


def _label(row: dict) -> str:
    return f"{row['norm']}:{row['workload']} {row['mode']} {row['dtype']}"


def _versions(environment: dict) -> str:
    versions = environment["versions"]
    threads = environment["threads"]
    parts = [f"Python {versions.get('python', '?')}"]
    for name, version in versions.items():
        if name == "python":
            continue
        framework = "tensorflow" if name.startswith("tensorflow") else name.split("-")[0]
        t = threads.get(framework, {})
        thread_note = (
            f", {t['intra_op']} intra-op / {t['inter_op']} inter-op threads"
            if "inter_op" in t
            else ""
        )
        parts.append(f"`{name}` {version or '?'}{thread_note}")
    return "; ".join(parts)


# --- a run --------------------------------------------------------------------------------


def bench_markdown(record: dict) -> str:
    """The table of a run, with its environment and the bandwidth limit."""
    ns = record["normspec"]
    env, probe, settings = ns["environment"], ns["bandwidth"], ns["settings"]
    lines = [
        "# normspec bench",
        "",
        f"`{ns['command']}`, {ns['created']}, {duration(ns['seconds'])}.",
        "",
        f"- Environment: {_versions(env)}; CPU {env['cpu'] or '?'}, {env['cores']} cores.",
        f"- Bandwidth limit: **{probe['limit_gbps']:.1f} GB/s**, the best copy of "
        f"{probe['buffer_bytes'] >> 20} MiB on {probe['threads']} thread(s) as the "
        f"frameworks were given, timed as the rows are ({CLOCKS[probe['timer']]}); a copy "
        f"over every core ({probe['cores']}) on the wall clock: "
        f"{probe['every_core_gbps']:.1f} GB/s.",
        f"- Each case: {settings['passes']} passes over the grid x {settings['rounds']} "
        f"rounds, a round at least {settings['min_round_s'] * 1e3:g} ms of back-to-back "
        f"calls, timed on the {CLOCKS[settings['timer']]}. Median time per call, its 95% "
        "interval (distribution-free), spread = interquartile range / median. GB/s = the "
        "bytes the call must minimally move / median; of limit = GB/s / the bandwidth limit.",
        "",
        "| backend | norm | workload | mode | dtype | median | 95% interval | spread "
        "| GB/s | of limit | rounds x calls |",
        "|---|---|---|---|---|---:|---|---:|---:|---:|---:|",
    ]
    for row in _ordered(ns["rows"]):
        head = (
            f"| {row['backend']} | {row['norm']} | {row['workload']} {row['parameters']} "
            f"| {row['mode']} | {row['dtype']} "
        )
        if "error" in row:
            lines.append(head + f"| failed: {row['error']} | | | | | |")
            continue
        t = row["time_s"]
        lines.append(
            head + f"| {seconds(t['median'])} | {seconds(t['ci_low'])} – {seconds(t['ci_high'])} "
            f"| {t['iqr'] / t['median']:.1%} | {row['gbps']:.3g} "
            f"| {percent(row['fraction_of_limit'])} | {t['n']} x {_calls(row['iterations'])} |"
        )
    paths = sorted({f"{r['backend']}: {r['path']}" for r in ns["rows"] if "path" in r})
    lines += ["", "How each backend was called:", ""] + [f"- {p}" for p in paths]
    if ns.get("skipped"):
        lines += ["", "Not run:", ""] + [f"- {line}" for line in ns["skipped"]]
    return "\n".join(lines) + "\n"


def bench_plot(record: dict, path: Path) -> None:
    """Two panels, one line per workload x mode x dtype and a bar per backend: the median
    time per call (with its interval) and the fraction of the bandwidth limit."""
    plt = _pyplot()
    ns = record["normspec"]
    rows = [r for r in _ordered(ns["rows"]) if "error" not in r]
    backends = list(dict.fromkeys(r["backend"] for r in ns["rows"]))
    labels = list(dict.fromkeys(_label(r) for r in rows))
    height = 0.8 / max(1, len(backends))
    figure, (left, right) = plt.subplots(
        1, 2, sharey=True, figsize=(13, 1.2 + 0.28 * len(labels) * max(1, len(backends)) ** 0.5)
    )
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for b, backend in enumerate(backends):
        mine = [r for r in rows if r["backend"] == backend]
        y = [labels.index(_label(r)) + (b - (len(backends) - 1) / 2) * height for r in mine]
        median = [r["time_s"]["median"] for r in mine]
        low = [max(0.0, r["time_s"]["median"] - r["time_s"]["ci_low"]) for r in mine]
        high = [
            r["time_s"]["ci_high"] - r["time_s"]["median"]
            if math.isfinite(r["time_s"]["ci_high"])
            else 0.0
            for r in mine
        ]
        color = colors[b % len(colors)]
        left.barh(y, median, height, xerr=[low, high], color=color, label=backend, capsize=2)
        fractions = [100 * r["fraction_of_limit"] for r in mine]
        right.barh(y, fractions, height, color=color)
        for value, where in zip(fractions, y, strict=True):
            label = percent(value / 100)
            right.text(value * 1.08, where, label, va="center", fontsize=6)
    left.set_xscale("log")
    left.set_xlabel("median time per call (s), with its 95% interval")
    right.set_xscale("log")
    right.axvline(100, color="black", linestyle="--", linewidth=1)
    right.set_xlabel(
        f"% of the bandwidth limit ({ns['bandwidth']['limit_gbps']:.1f} GB/s copy; dashed: 100%)"
    )
    left.set_yticks(range(len(labels)), labels)
    left.invert_yaxis()
    for axis in (left, right):
        axis.grid(axis="x", which="major", alpha=0.3)
    left.legend(loc="lower right", fontsize="small")
    figure.suptitle(f"normspec bench: {ns['created']}", fontsize="medium")
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


# --- a comparison -------------------------------------------------------------------------


def compare_markdown(comparison: dict, saved_path: str) -> str:
    """The table of a run against a saved run."""
    saved = comparison["saved"]
    threshold = comparison["threshold"]
    lines = [
        "# normspec bench --compare",
        "",
        f"Against `{saved_path}` ({saved['created']}, `{saved['command']}`), threshold "
        f"{threshold:.0%}. current / saved is the ratio of the geometric means of the two "
        "runs' pass medians, with Welch's 95% interval over the passes: a row is *slower* "
        f"when the whole interval is above {1 + threshold:.2f}, *faster* when it is below "
        f"{1 / (1 + threshold):.2f}, *same* when it lies between, *unsure* when it is too "
        "wide to tell.",
        "",
    ]
    lines += [f"> {note}" for note in comparison["notes"]]
    lines += [
        "",
        "| backend | norm | workload | mode | dtype | saved | current | current / saved "
        "| 95% interval | verdict |",
        "|---|---|---|---|---|---:|---:|---:|---|---|",
    ]
    for row in comparison["rows"]:
        c = row["case"]
        head = f"| {c['backend']} | {c['norm']} | {c['workload']} | {c['mode']} | {c['dtype']} "
        if "ratio" not in row:
            reason = f": {row['reason']}" if row.get("reason") else ""
            lines.append(head + f"| | | | | {row['verdict']}{reason} |")
            continue
        verdict = f"**{row['verdict']}**" if row["verdict"] == "slower" else row["verdict"]
        lines.append(
            head + f"| {seconds(row['saved_s'])} | {seconds(row['current_s'])} "
            f"| {row['ratio']:.3f} | {row['ci_low']:.3f} – {row['ci_high']:.3f} | {verdict} |"
        )
    return "\n".join(lines) + "\n"


# --- A/B ----------------------------------------------------------------------------------


def ab_markdown(record: dict) -> str:
    """The table of an A/B run: B / A per workload."""
    threshold, settings = record["threshold"], record["settings"]
    lines = [
        "# normspec bench --ab",
        "",
        f"`{record['command']}`, {record['created']}, {duration(record['seconds'])}.",
        "",
        f"- A: {_interpreter(record['a'])}: {_versions(record['a'])}",
        f"- B: {_interpreter(record['b'])}: {_versions(record['b'])}",
        f"- {settings['passes']} passes of {settings['rounds']} pairs per workload, each pass "
        "in fresh worker processes on both sides; in a pair A and B are timed back to back, "
        "which side goes first alternating. B / A is the geometric mean over the passes of "
        "each pass's median pair ratio, with its 95% interval over the passes (Student's t); "
        f"threshold {threshold:.0%}: *slower* when the whole interval is above "
        f"{1 + threshold:.2f}, *faster* below {1 / (1 + threshold):.2f}, *same* between, "
        "*unsure* when it is too wide to tell.",
        "",
        "| backend | norm | workload | mode | dtype | A | B | B / A | 95% interval | verdict |",
        "|---|---|---|---|---|---:|---:|---:|---|---|",
    ]
    for row in _ordered(record["rows"]):
        head = (
            f"| {row['backend']} | {row['norm']} | {row['workload']} {row['parameters']} "
            f"| {row['mode']} | {row['dtype']} "
        )
        if "error" in row:
            lines.append(head + f"| | | | | failed: {row['error']} |")
            continue
        verdict = f"**{row['verdict']}**" if row["verdict"] == "slower" else row["verdict"]
        lines.append(
            head + f"| {seconds(row['a_s']['median'])} | {seconds(row['b_s']['median'])} "
            f"| {row['ratio']:.3f} | {row['ci_low']:.3f} – {row['ci_high']:.3f} | {verdict} |"
        )
    return "\n".join(lines) + "\n"


def _interpreter(side: dict) -> str:
    """The interpreter as given, and the executable it ran when that differs (a wrapper)."""
    given, ran = side["python"], side.get("executable", side["python"])
    return f"`{given}`" if given == ran else f"`{given}` (running `{ran}`)"


def ab_plot(record: dict, path: Path) -> None:
    """B / A per workload with its interval, beside 1 and the threshold."""
    plt = _pyplot()
    rows = [r for r in _ordered(record["rows"]) if "error" not in r]
    labels = [f"{r['backend']} {_label(r)}" for r in rows]
    figure, axis = plt.subplots(figsize=(9, 1.2 + 0.3 * max(1, len(rows))))
    threshold = record["threshold"]
    for i, row in enumerate(rows):
        color = {"slower": "tab:red", "faster": "tab:green"}.get(row["verdict"], "tab:blue")
        high = row["ci_high"] if math.isfinite(row["ci_high"]) else row["ratio"]
        axis.errorbar(
            row["ratio"],
            i,
            xerr=[[row["ratio"] - row["ci_low"]], [high - row["ratio"]]],
            fmt="o",
            color=color,
            capsize=3,
        )
    axis.axvline(1.0, color="black", linewidth=1)
    axis.axvline(1.0 + threshold, color="tab:red", linestyle="--", linewidth=1)
    axis.axvline(1.0 / (1.0 + threshold), color="tab:green", linestyle="--", linewidth=1)
    axis.set_yticks(range(len(labels)), labels)
    axis.invert_yaxis()
    axis.set_xlabel(f"B / A with its 95% interval (dashed: ±{threshold:.0%} threshold)")
    axis.set_title("normspec bench --ab", fontsize="medium")
    axis.grid(axis="x", alpha=0.3)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def _pyplot():
    """matplotlib's pyplot on the Agg backend (no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt
