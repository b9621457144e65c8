"""The catalogue: one entry per distinct discrepancy, merged across campaigns.

`findings` turns a campaign's tally into one finding per failing cell, named by the signature
of its smallest failing example (normspec/hunt/signatures.py); `merge` folds them into the
catalogue a previous campaign left (hits add up, the worst error is the worst of both, the
upstream note is kept); `catalogue_markdown` writes it for a person, grouped as new
discrepancies, failures of the honest control (bugs of normspec, never findings) and known
deviations.
"""

from __future__ import annotations

import json
import math
import re
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np

from normspec.hunt.signatures import UNKNOWN, Region, Signature, region_of, region_of_case
from normspec.hunt.tally import Tally

#: The statuses of an entry, in the order the catalogue shows them.
NEW, CONTROL, KNOWN = "new", "bug of normspec", "known deviation"
STATUSES = (NEW, CONTROL, KNOWN)
DTYPES = ("float64", "float32", "float16", "bfloat16")
#: What an entry's `upstream` says until someone has looked.
NOT_SEARCHED = "not searched yet"


def parse_case(text: str | None) -> object | None:
    """The case a `repr` describes (properties/strategies.py: its dataclasses' reprs rebuild
    them), or None if it names something else."""
    if not text:
        return None
    from properties import strategies

    names = {k: v for k, v in vars(strategies).items() if isinstance(v, type)}
    names |= {"np": np, "inf": math.inf, "nan": math.nan}
    try:
        return eval(text, {"__builtins__": {}}, names)  # a repr of our own dataclasses
    except (SyntaxError, NameError, TypeError, ValueError):  # not a constructor call
        return None


def _ratio(value: float | str | None) -> float:
    if value is None:
        return 0.0
    return math.inf if value == "inf" else float(value)


def _shown(value: float) -> float | str:
    return "inf" if math.isinf(value) else value


def dtypes_named(text: str) -> list[str]:
    """The dtypes a known deviation's reason names ("float16" is not read in "bfloat16")."""
    return [d for d in DTYPES if re.search(rf"\b{d}\b", text)]


def status_of(kind: str, known: dict | None, dtype: str | None) -> tuple[str, str]:
    """(status, why) of a finding: a control's failure is a bug of normspec; a cell covered
    by a known deviation is that deviation unless its reason names other dtypes only. Where
    several deviations cover the cell (`known["others"]`), the first whose reason allows the
    dtype is the one."""
    if kind == "control":
        return CONTROL, "the honest control failed: the tolerance model or a property is wrong"
    if known is None:
        return NEW, "no known deviation covers this backend, norm and property"
    for deviation in (known, *known.get("others", ())):
        named = dtypes_named(deviation["reason"])
        if not (named and dtype and dtype not in named):
            return KNOWN, f"matches the known deviation reproduced by {deviation['reproduction']}"
    named = dtypes_named(known["reason"])
    return NEW, (
        f"a known deviation covers this cell ({known['reproduction']}) but names only "
        f"{', '.join(named)}: this is {dtype}"
    )


def _reproduction(cell: dict) -> str:
    backends = " ".join(f"--backend {m}" for m in cell["members"])
    return (
        f"normspec check {backends} --norm {cell['norm']} --property {cell['property']} "
        "--profile hunt   (replays it from the example database)"
    )


def findings(tally: Tally) -> list[dict]:
    """One finding per cell that failed in this campaign: its signature, the worst error, the
    smallest failing input, how often it was hit, and the call a reproducer replays."""
    results = {r["nodeid"]: r for r in tally.results if "nodeid" in r}
    found = []
    for nodeid, hits in tally.hits.items():
        if not hits:
            continue
        cell = tally.cells.get(nodeid) or _cell_from_result(results.get(nodeid), hits)
        if cell is None:
            continue
        final = next((h for h in reversed(hits) if h["final"]), hits[-1])
        culprits = [c for c in tally.culprits.get(nodeid, []) if c.get("found")]
        culprit = next((c for c in reversed(culprits) if c["final"]), None) or (
            culprits[-1] if culprits else None
        )
        dtype = final.get("dtype") or (culprit or {}).get("scalars", {}).get("dtype") or "?"
        region = _region(cell, final, culprit)
        signature = Signature(
            norm=cell["norm"],
            backend=cell["backend"],
            property=cell["property"],
            dtype=dtype,
            **asdict(region),
        )
        worst_hit = max(hits, key=lambda h: _ratio(h.get("worst")))
        status, why = status_of(cell["kind"], cell.get("known"), dtype)
        found.append(
            {
                "id": signature.id,
                "signature": asdict(signature),
                "region": signature.region(),
                "kind": cell["kind"],
                "members": cell["members"],
                "status": status,
                "status_because": why,
                "known_deviation": cell.get("known"),
                "worst_error_over_bound": _shown(_ratio(worst_hit.get("worst"))),
                "worst_case": worst_hit.get("case"),
                "minimal_case": final.get("case"),
                "minimal_draws": final.get("draws", []),
                "failure": _first_line(final.get("message", ""), cell),
                "message": final.get("message", ""),
                "hits": len(hits),
                "first_failure_at_example": cell.get("first_failure") or hits[0]["example"],
                "examples_in_cell": cell.get("examples", 0),
                "shrunk": final["final"],
                "culprit": culprit,
                "reproduction": _reproduction(cell),
                "result": (results.get(nodeid) or {}).get("status", "not finished"),
            }
        )
    found += _failed_elsewhere(
        tally, {f["signature"]["property"] + f["signature"]["backend"] for f in found}
    )
    return found


def _first_line(message: str, cell: dict | None = None) -> str:
    """The first line of a failure message, without the norm, backend and property that the
    entry names already."""
    line = message.strip().splitlines()[0] if message.strip() else ""
    if cell is not None:
        line = line.removeprefix(f"{cell['norm']} on {cell['backend']}, {cell['property']}: ")
    return line


def _region(cell: dict, final: dict, culprit: dict | None) -> Region:
    """The region of the culprit call's input, else of the smallest case."""
    if culprit is not None and Path(culprit["arrays"]).exists():
        with np.load(culprit["arrays"]) as saved:
            arrays = dict(saved)
        region = region_of(cell["backend"], cell["norm"], arrays, culprit["scalars"])
        if region is not None:
            return region
    case = parse_case(final.get("case"))
    if case is not None:
        region = region_of_case(cell["backend"], cell["norm"], case)
        if region is not None:
            return region
    return UNKNOWN


def _cell_from_result(result: dict | None, hits: list[dict]) -> dict | None:
    """A cell that did not report its end (the campaign stopped in it), from what is known."""
    if result is None:
        return None
    members = result["backend"].split(" vs ")
    return {
        "nodeid": result["nodeid"],
        "backend": result["backend"],
        "members": members,
        "norm": result["norm"],
        "property": result["property"],
        "kind": result.get("kind", "single"),
        "known": None,
        "examples": result.get("examples", 0),
        "first_failure": hits[0]["example"],
    }


def _failed_elsewhere(tally: Tally, seen: set[str]) -> list[dict]:
    """A cell that failed with no failing example recorded: it crashed or hung (with the last
    call it made), or failed outside Hypothesis (a deterministic property, a fixture)."""
    found = []
    for result in tally.results:
        message = result.get("message") or result.get("reason") or ""
        if result.get("status") != "failed":
            continue
        if result["nodeid"] in tally.hung:
            message = (
                f"timed out: the cell ran past {tally.hung[result['nodeid']]:.0f} s (its slice, "
                "its shrinking and a grace) and was ended: a hang, or an example far slower "
                "than the rest"
            )
        if result["property"] + result["backend"] in seen:
            continue
        signature = Signature(
            result["norm"], result["backend"], result["property"], "?", *asdict(UNKNOWN).values()
        )
        found.append(
            {
                "id": signature.id,
                "signature": asdict(signature),
                "region": "unknown: no failing example was recorded",
                "kind": result.get("kind", "single"),
                "members": result["backend"].split(" vs "),
                "status": CONTROL if result.get("kind") == "control" else NEW,
                "status_because": "the cell failed: " + (_first_line(message) or "no message"),
                "known_deviation": None,
                "worst_error_over_bound": "inf",
                "worst_case": result.get("falsifying_example"),
                "minimal_case": result.get("falsifying_example"),
                "minimal_draws": [],
                "failure": _first_line(message),
                "message": message,
                "hits": 1,
                "first_failure_at_example": None,
                "examples_in_cell": 0,
                "shrunk": False,
                "culprit": None,
                "reproduction": result.get("reproduction", ""),
                "result": "failed",
            }
        )
    return found


# --- merging campaigns -------------------------------------------------------------------


def load(path: Path) -> list[dict]:
    """The entries of a catalogue written before (none if there is none)."""
    if not path.exists():
        return []
    try:
        return json.loads(path.read_text()).get("entries", [])
    except (json.JSONDecodeError, AttributeError):
        return []


def merge(previous: list[dict], found: list[dict], when: str) -> list[dict]:
    """The catalogue after this campaign: each finding added to the entry of its signature
    (hits summed, the worst of both worst errors, the newer smallest input and reproducer),
    or a new entry; entries this campaign did not meet are kept as they were."""
    entries = {e["id"]: dict(e) for e in previous}
    for finding in found:
        entry = entries.get(finding["id"])
        fresh = {k: v for k, v in finding.items() if k not in ("culprit", "message")}
        fresh["last_seen"] = when
        fresh["seen_in_this_campaign"] = True
        if entry is None:
            fresh |= {"first_seen": when, "campaigns": 1, "upstream": NOT_SEARCHED}
            entries[finding["id"]] = fresh
            continue
        worst = max(
            _ratio(entry["worst_error_over_bound"]), _ratio(finding["worst_error_over_bound"])
        )
        keep_worst_case = _ratio(entry["worst_error_over_bound"]) >= _ratio(
            finding["worst_error_over_bound"]
        )
        entry |= fresh | {
            "hits": entry.get("hits", 0) + finding["hits"],
            "campaigns": entry.get("campaigns", 0) + 1,
            "worst_error_over_bound": _shown(worst),
            "worst_case": entry["worst_case"] if keep_worst_case else finding["worst_case"],
            "upstream": entry.get("upstream", NOT_SEARCHED),
            "first_seen": entry.get("first_seen", when),
        }
    for entry in entries.values():
        if not any(f["id"] == entry["id"] for f in found):
            entry["seen_in_this_campaign"] = False
    order = {s: i for i, s in enumerate(STATUSES)}
    return sorted(
        entries.values(),
        key=lambda e: (order.get(e["status"], 9), -_ratio(e["worst_error_over_bound"]), e["id"]),
    )


def combine(entries: list[dict], others: list[dict]) -> list[dict]:
    """Two catalogues' entries as one (another machine's, say): an entry in both has the
    hits and campaigns of both, the worse worst error, and the upstream note that says more."""
    combined = {e["id"]: dict(e) for e in entries}
    for other in others:
        entry = combined.get(other["id"])
        if entry is None:
            combined[other["id"]] = dict(other)
            continue
        worse = _ratio(other["worst_error_over_bound"]) > _ratio(entry["worst_error_over_bound"])
        entry["hits"] = entry.get("hits", 0) + other.get("hits", 0)
        entry["campaigns"] = entry.get("campaigns", 0) + other.get("campaigns", 0)
        if worse:
            entry["worst_error_over_bound"] = other["worst_error_over_bound"]
            entry["worst_case"] = other.get("worst_case")
        if entry.get("upstream", NOT_SEARCHED) == NOT_SEARCHED:
            entry["upstream"] = other.get("upstream", NOT_SEARCHED)
        entry["first_seen"] = min(entry.get("first_seen", ""), other.get("first_seen", "")) or None
    return list(combined.values())


def now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


# --- the files ---------------------------------------------------------------------------


def catalogue_json(entries: list[dict], campaign: dict) -> dict:
    """discrepancies.json: the entries, and the campaign that last wrote them."""
    return {"created": now(), "campaign": campaign, "entries": entries}


def _ratio_text(value: float | str) -> str:
    ratio = _ratio(value)
    return "inf (NaN or inf where a number is expected)" if math.isinf(ratio) else f"{ratio:.3g}"


def catalogue_markdown(catalogue: dict) -> str:
    """discrepancies.md: how to read it, then one section per entry, new ones first."""
    campaign, entries = catalogue["campaign"], catalogue["entries"]
    lines = [
        "# Discrepancies found by normspec hunt",
        "",
        f"Last campaign: {campaign['command']} at {catalogue['created']}, "
        f"{campaign['seconds']:.0f} s, {campaign['examples']} examples"
        + (f" ({campaign['stopped']})" if campaign.get("stopped") else "")
        + ".",
        "",
        "One entry per distinct discrepancy: the same property failing on the same norm, "
        "backend (or pair) and dtype in the same region (magnitude decade of the input, "
        "conditioning of its pooled sets, size class of a set, memory layout). Each gives the "
        "worst error seen in units of its bound (error / bound, > 1 fails), the smallest "
        "failing input Hypothesis shrank it to (a `repr` that rebuilds it), how often it was "
        "hit (failing examples, the shrinker's included, over all campaigns), whether a known "
        "deviation covers it, and a standalone reproducer that exits 1 while it stands.",
        "",
    ]
    if not entries:
        lines.append("Nothing found yet.")
    counts = {s: sum(1 for e in entries if e["status"] == s) for s in STATUSES}
    lines += [f"- {n} {s}" for s, n in counts.items() if n]
    titles = {
        NEW: "New discrepancies",
        CONTROL: "Bugs of normspec: the honest control failed (not findings)",
        KNOWN: "Known deviations, met again",
    }
    for status in STATUSES:
        chosen = [e for e in entries if e["status"] == status]
        if not chosen:
            continue
        lines += ["", f"## {titles[status]}", ""]
        for entry in chosen:
            lines += _entry_markdown(entry)
    return "\n".join(lines) + "\n"


def _entry_markdown(entry: dict) -> list[str]:
    s = entry["signature"]
    lines = [
        f"### {entry['id']}: {s['norm']} on {s['backend']}, {s['dtype']}: {s['property']}",
        "",
        f"- region: {entry['region']}",
        f"- status: {entry['status']} ({entry['status_because']})",
        f"- worst error / bound: {_ratio_text(entry['worst_error_over_bound'])}",
        f"- failure: {entry['failure']}",
        f"- smallest failing input{'' if entry.get('shrunk') else ' (not fully shrunk)'}: "
        f"`{entry['minimal_case']}`",
    ]
    draws = [f"{label or 'draw'} = {value}" for label, value in entry.get("minimal_draws", [])]
    if draws:
        lines.append(f"- also drawn: {'; '.join(draws)}")
    lines += [
        f"- hits: {entry['hits']} in {entry.get('campaigns', 1)} campaign(s); first failure at "
        f"example {entry['first_failure_at_example']} of the cell",
        f"- reproducer: {entry.get('reproducer') or 'none: ' + entry.get('reproducer_note', '')}",
        f"- rerun in the suite: `{entry['reproduction']}`",
        f"- upstream: {entry.get('upstream', NOT_SEARCHED)}",
        f"- seen: {entry.get('first_seen')} .. {entry.get('last_seen')}",
        "",
    ]
    if entry["status"] == NEW and entry.get("reproducer"):
        lines += [
            "To keep watching it once confirmed, add to properties/known_deviations.toml:",
            "",
            "```toml",
            "[[deviation]]",
            f'backend = "{s["backend"]}"' if " vs " not in s["backend"] else "# backend = ?",
            f'norm = "{s["norm"]}"',
            f'property = "{s["property"]}"',
            'versions = "?"',
            f'reason = """{entry["failure"]} ({s["dtype"]}, {entry["region"]})"""',
            f'reproduction = "python {entry["reproducer"]}"',
            "```",
            "",
        ]
    return lines
