"""What changes on every run of a check: when it ran, how long each cell took, and examples
checked per second. Written next to the reports as timings.json and timings.md, which git
ignores, so that a committed snapshot of the reports changes only when a result does."""

from __future__ import annotations

from collections import defaultdict

#: The timings' file name, without its suffix.
TIMINGS = "timings"
RAN = ("passed", "failed", "xfailed", "xpassed")


def timings_json(record: dict, seconds: float) -> dict:
    """When the run was, its wall time, each result's duration and the throughput."""
    return {
        "created": record.get("created"),
        "seconds": round(seconds, 1),
        "durations_s": {
            r["nodeid"]: r["duration_s"] for r in record.get("results", []) if "nodeid" in r
        },
        "throughput": throughput_rows(record),
    }


def throughput_rows(record: dict) -> list[dict]:
    """Examples checked per second by each backend (or pair), over the properties it ran."""
    totals: dict[str, list[float]] = defaultdict(lambda: [0, 0.0])
    for r in record.get("results", []):
        if r["status"] in RAN and r.get("examples"):
            totals[r["backend"]][0] += r["examples"]
            totals[r["backend"]][1] += r.get("duration_s", 0.0)
    return [
        {
            "backend": b,
            "examples": n,
            "seconds": round(t, 2),
            "examples_per_second": round(n / t, 1) if t else None,
        }
        for b, (n, t) in sorted(totals.items())
    ]


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
        "Examples checked per second, property code and the oracle included, on this machine.",
        "",
        "| backend | examples | seconds | examples / s |",
        "|---|---|---|---|",
    ]
    lines += [
        f"| {t['backend']} | {t['examples']} | {t['seconds']} | {t['examples_per_second']} |"
        for t in timings["throughput"]
    ]
    return "\n".join(lines) + "\n"
