"""What changes on every run of a check: when it ran, how long each cell took, examples
checked per second, and where the time went. Written next to the reports as timings.json and
timings.md, which git ignores, so that a committed snapshot of the reports changes only when a
result does.

A case is one drawn call checked against its property (the report's "examples"). Throughput
is given per core, cases per CPU second of the properties (each property's process time,
summed over the workers: comparable across machines and loads), and per wall second of the
whole run. The time shares come from the properties' sampling profiler
(properties/profiling.py): drawing, spec, backend, comparison, and the rest."""

from __future__ import annotations

from collections import Counter, defaultdict

#: The timings' file name, without its suffix.
TIMINGS = "timings"
RAN = ("passed", "failed", "xfailed", "xpassed")
#: The parts of the time shares, in the order a summary names them.
PARTS = (
    "drawing",
    "building",
    "spec",
    "backend",
    "comparison",
    "property",
    "journal",
    "engine",
    "other",
)


def timings_json(record: dict, seconds: float) -> dict:
    """When the run was, its wall time, each result's duration and the throughput."""
    return {
        "created": record.get("created"),
        "seconds": round(seconds, 1),
        "durations_s": {
            r["nodeid"]: r["duration_s"] for r in record.get("results", []) if "nodeid" in r
        },
        "run": throughput(record, seconds),
        "search": search_throughput(record),
        "throughput": throughput_rows(record),
    }


def throughput(record: dict, seconds: float) -> dict:
    """The run's cases, the CPU time of its properties, cases per CPU second (per core) and
    per wall second, and the share of each part of the time."""
    ran = [r for r in record.get("results", []) if r["status"] in RAN]
    cases = sum(r.get("examples", 0) for r in ran)
    cpu = sum(r.get("cpu_s", 0.0) for r in ran)
    return {
        "cases": cases,
        "cpu_s": round(cpu, 2),
        "wall_s": round(seconds, 2),
        "workers": record.get("workers", 1),
        "cases_per_cpu_second": round(cases / cpu, 1) if cpu else None,
        "cases_per_second": round(cases / seconds, 1) if seconds else None,
        "shares": shares(ran),
    }


def search_throughput(record: dict) -> dict:
    """`throughput` over the cells that found nothing (passed or xpassed): the search alone.
    A cell that finds a discrepancy spends the rest of its time shrinking it, one case at a
    time, which is not searching; this is the figure to compare across runs and versions."""
    searched = [r for r in record.get("results", []) if r["status"] in ("passed", "xpassed")]
    return throughput({**record, "results": searched}, 0.0)  # per core only: no wall time


def shares(results: list[dict]) -> dict[str, float]:
    """The fraction of the properties' time each part took, over `results`."""
    total: Counter[str] = Counter()
    for r in results:
        total.update(r.get("time_s", {}))
    whole = sum(total.values())
    return {p: round(total[p] / whole, 3) for p in PARTS if total[p]} if whole else {}


def summary(run: dict) -> str:
    """One line: the cases, the throughput per core and per second, and the time shares."""
    if not run["cases"]:
        return "no case checked"
    text = f"{run['cases']:,} cases"
    if run["cases_per_cpu_second"]:
        text += f", {run['cases_per_cpu_second']:,.0f}/s per core (CPU time of the properties)"
    if run["cases_per_second"]:
        workers = f" with {run['workers']} workers" if run["workers"] > 1 else ""
        text += f", {run['cases_per_second']:,.0f}/s on the wall clock{workers}"
    if run["shares"]:
        text += "; time: " + ", ".join(f"{p} {f:.0%}" for p, f in run["shares"].items())
    return text


def throughput_rows(record: dict) -> list[dict]:
    """Examples checked per second by each backend (or pair), over the properties it ran."""
    by_backend: dict[str, list[dict]] = defaultdict(list)
    for r in record.get("results", []):
        if r["status"] in RAN and r.get("examples"):
            by_backend[r["backend"]].append(r)
    rows = []
    for backend, results in sorted(by_backend.items()):
        n = sum(r["examples"] for r in results)
        t = sum(r.get("duration_s", 0.0) for r in results)
        cpu = sum(r.get("cpu_s", 0.0) for r in results)
        rows.append(
            {
                "backend": backend,
                "examples": n,
                "seconds": round(t, 2),
                "examples_per_second": round(n / t, 1) if t else None,
                "cpu_s": round(cpu, 2),
                "examples_per_cpu_second": round(n / cpu, 1) if cpu else None,
                "shares": shares(results),
            }
        )
    return rows


def timings_markdown(timings: dict) -> str:
    """The run's time and the throughput table."""
    lines = [
        "# Timings",
        "",
        f"Run at {timings['created']}, {timings['seconds']} s. These change on every run, so "
        "they are kept apart from the reports a repository commits (normspec's .gitignore "
        "ignores reports/timings.*); the results are in conformance.md.",
        "",
        "## Throughput",
        "",
        f"The run: {summary(timings['run'])}.",
        "",
        f"The search (the cells that found nothing, without the time spent shrinking what "
        f"the others found): {summary(timings['search'])}.",
        "",
        "Cases (examples) checked per second of each property's wall time, and per CPU "
        "second (per core), property code and the oracle included, on this machine; then the "
        "share of the CPU time each part took.",
        "",
        "| backend | examples | seconds | examples / s | CPU s | examples / CPU s | "
        + " | ".join(PARTS)
        + " |",
        "|---|---|---|---|---|---|" + "---|" * len(PARTS),
    ]
    for t in timings["throughput"]:
        parts = " | ".join(f"{t['shares'].get(p, 0):.0%}" for p in PARTS)
        lines.append(
            f"| {t['backend']} | {t['examples']} | {t['seconds']} | {t['examples_per_second']} "
            f"| {t['cpu_s']} | {t['examples_per_cpu_second']} | {parts} |"
        )
    return "\n".join(lines) + "\n"
