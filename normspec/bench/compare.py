"""A run against a saved run: which workloads got slower, by how much, how sure.

Rows are matched by key (backend/norm:workload/mode/dtype). For each row measured in both,
the ratio current / saved is estimated from the passes of both (stats.clustered_ratio: the
passes' medians, Welch's interval) and judged against the threshold: a row is a regression
when the whole 95% interval of the ratio lies above 1 + threshold. One number (the medians'
ratio) is never enough: a 12% difference between two runs whose passes spread by 20% is
not a finding.

Absolute times from two runs at different times carry the difference in the machine's load
between them, which no spread within either run can show. On a shared machine the figure to
trust is a ratio measured in one interleaved run (`--ab`); `compare` says when the two runs'
bandwidth probes differ, a sign that the machine was not in the same state.
"""

from __future__ import annotations

from normspec.bench import stats

#: The probes of two runs that differ by more than this are reported.
PROBE_DRIFT = 0.10
#: A median ratio over all rows further than this from 1 is reported.
DRIFT = 0.05


def compare(saved: dict, current: dict, threshold: float) -> dict:
    """The comparison of `current` against `saved` (both records of `results`), by row."""
    before = {row["key"]: row for row in saved["normspec"]["rows"]}
    rows = []
    for row in current["normspec"]["rows"]:
        entry = {"key": row["key"], "case": _case(row)}
        old = before.get(row["key"])
        if old is None:
            entry["verdict"] = "new"
        elif "rounds_s" not in old or "rounds_s" not in row:
            entry["verdict"] = "not measured"
            entry["reason"] = row.get("error") or old.get("error", "")
        elif old["shape"] != row["shape"] or old["bytes"] != row["bytes"]:
            entry["verdict"] = "not comparable"
            entry["reason"] = f"shape {old['shape']} then, {row['shape']} now"
        else:
            ratio = stats.clustered_ratio(_passes(old), _passes(row))
            entry.update(
                saved_s=old["time_s"]["median"],
                current_s=row["time_s"]["median"],
                verdict=ratio.verdict(threshold),
                **ratio.as_dict(),
            )
        rows.append(entry)
    measured = {row["key"] for row in current["normspec"]["rows"]}
    for key, old in before.items():
        if key not in measured:
            rows.append({"key": key, "case": _case(old), "verdict": "not run"})
    return {
        "threshold": threshold,
        "saved": {
            "created": saved["normspec"].get("created"),
            "command": saved["normspec"].get("command"),
            "versions": saved["normspec"]["environment"]["versions"],
            "threads": saved["normspec"]["environment"]["threads"],
        },
        "notes": _notes(saved["normspec"], current["normspec"], rows),
        "rows": rows,
        "regressions": [r["key"] for r in rows if r["verdict"] == "slower"],
    }


def _passes(row: dict) -> list[list[float]]:
    """A row's rounds by pass (a record without passes: one pass of every round)."""
    return row.get("rounds_by_pass") or [row["rounds_s"]]


def _case(row: dict) -> dict:
    return {k: row[k] for k in ("backend", "norm", "workload", "mode", "dtype", "parameters")}


def _notes(saved: dict, current: dict, rows: list[dict]) -> list[str]:
    """What makes the two runs' absolute times less comparable."""
    notes = []
    ratios = sorted(r["ratio"] for r in rows if "ratio" in r)
    if len(ratios) >= 3 and abs(stats.quantile(ratios, 0.5) - 1) > DRIFT:
        notes.append(
            f"the median row moved by {stats.quantile(ratios, 0.5):.3f}x: when every row "
            "moves together, suspect the machine (its load, its clock) before the code"
        )
    a, b = saved["bandwidth"]["limit_gbps"], current["bandwidth"]["limit_gbps"]
    if abs(b / a - 1) > PROBE_DRIFT:
        notes.append(
            f"the copy bandwidth was {a:.1f} GB/s then and {b:.1f} GB/s now: the machine was "
            "not in the same state, so absolute times differ for reasons other than the code; "
            "prefer `normspec bench --ab`"
        )
    if saved["environment"]["threads"] != current["environment"]["threads"]:
        notes.append(
            f"thread counts differ: {saved['environment']['threads']} then, "
            f"{current['environment']['threads']} now"
        )
    return notes
