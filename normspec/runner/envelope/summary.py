"""What the envelope of one backend x norm x dtype shows, in a few numbers and one line.

Per backend x norm x dtype: how many cells of each outcome, where the backend stops giving
usable outputs as the magnitude grows (`fails_from`: per size, the smallest magnitude >= 1 at
which some conditioning is outside the bound, non-finite or all zero) and as it shrinks
(`fails_below`: the largest magnitude < 1 that fails), and how many of the cells where an
intermediate overflows (the exact sum of squares exceeds the accumulation dtype) fail.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable

#: the outcomes that mean the output is not usable
FAILURES = frozenset({"outside", "non-finite", "all zero"})


def summarize(records: Iterable[dict]) -> list[dict]:
    """One entry per backend x norm x dtype, in the order the records first name them."""
    groups: dict[tuple[str, str, str], list[dict]] = defaultdict(list)
    for r in records:
        groups[(r["backend"], r["norm"], r["dtype"])].append(r)
    return [_entry(key, rs) for key, rs in groups.items()]


def _entry(key: tuple[str, str, str], records: list[dict]) -> dict:
    backend, norm, dtype = key
    failing = [r for r in records if r["outcome"] in FAILURES]
    fails_from: dict[int, float] = {}
    fails_below: dict[int, float] = {}
    for r in failing:
        n, m = r["size"], r["magnitude"]
        if m >= 1:
            fails_from[n] = min(fails_from.get(n, m), m)
        else:
            fails_below[n] = max(fails_below.get(n, m), m)
    overflow = [r for r in records if r["intermediate_overflow"]]
    return {
        "backend": backend,
        "norm": norm,
        "dtype": dtype,
        "cells": len(records),
        "outcomes": dict(Counter(r["outcome"] for r in records).most_common()),
        "fails_from": {str(n): fails_from[n] for n in sorted(fails_from)},
        "fails_below": {str(n): fails_below[n] for n in sorted(fails_below)},
        "intermediate_overflow_cells": len(overflow),
        "intermediate_overflow_failures": sum(r["outcome"] in FAILURES for r in overflow),
    }


def line(entry: dict) -> str:
    """The entry in one line: `torch  float32 layer_norm: 12 non-finite, ...; fails from
    1e19 (n=64) ...`."""
    counts = ", ".join(f"{k} {v}" for k, v in entry["outcomes"].items() if k != "within")
    head = f"{entry['dtype']} {entry['norm']} on {entry['backend']}: {entry['cells']} cells"
    parts = [head + (f" ({counts})" if counts else ", all within")]
    if entry["fails_from"]:
        parts.append("fails from " + _per_size(entry["fails_from"]))
    if entry["fails_below"]:
        parts.append("fails at and below " + _per_size(entry["fails_below"]))
    if entry["intermediate_overflow_cells"]:
        parts.append(
            f"{entry['intermediate_overflow_failures']} of "
            f"{entry['intermediate_overflow_cells']} intermediate-overflow cells fail"
        )
    return "; ".join(parts)


def _per_size(by_size: dict[str, float]) -> str:
    return ", ".join(f"{m:.0e} (n={n})" for n, m in by_size.items())
