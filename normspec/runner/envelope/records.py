"""The envelope's records: one per backend x cell, with its best peer and what the cell shows.

A record's `outcome` names what a reader should see in it, the first that applies:

    beyond the reference  the spec's own float64 arithmetic overflows: no judgement
    refused / error       the backend refused the input (a declared restriction) or raised
    non-finite            an output NaN or inf where the exact value is finite
    all zero              the output identically zero where the exact value is not
    outside               error / bound > 1: outside the tolerance model's bound
    bound void            error / bound > 1 only where the model's bound does not hold: its
                          first-order bound on |d sigma| / sigma is >= 1/2 (measure.SIGMA_VOID),
                          so a correct kernel may compute a variance of 0 (see the note there)
    precision outlier     within the bound, but more than OUTLIER_FACTOR times the error /
                          bound of the best peer on the same inputs, and of a correctly
                          rounded output (so that one ulp against an exact peer is no finding)
    within                within the bound

`intermediate_overflow` is true where the exact sum of squares of a pooled set exceeds the
largest finite number of the backend's accumulation dtype: the output is ordinary, an
intermediate a kernel may form is not (issue 13's overflow region). `intermediate_underflow`
is true where the smallest sum of squares of a pooled set, plus |S| eps, is below the
smallest normal number of that dtype: the squares lose their relative precision, and without
eps (WeightNorm) the norm may round to 0. `subnormal_inputs` is true where some input is
subnormal in its own dtype (a kernel that flushes subnormals to zero reads 0 there). All
three are facts of the inputs, independent of what the backend did.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping

from backends.protocol import Backend
from normspec.runner.envelope.measure import Measurement, Observation, smallest_normal
from normspec.tolerance import LARGEST_FINITE

#: How many times a peer's accuracy a backend must lose to be a precision outlier.
OUTLIER_FACTOR = 10.0
OUTCOMES: tuple[str, ...] = (
    "within",
    "precision outlier",
    "outside",
    "bound void",
    "all zero",
    "non-finite",
    "refused",
    "error",
    "beyond the reference",
)


def outcome(seen: Observation, best_peer: float | None, beyond: str | None) -> str:
    """What the record of `seen` shows (see the module's text); best_peer is the best peer's
    error / bound, None without a measured peer."""
    if beyond:
        return "beyond the reference"
    if seen.refused:
        return "refused"
    if seen.error:
        return "error"
    if seen.non_finite:
        return "non-finite"
    if seen.all_zero:
        return "all zero"
    if seen.outside:
        return "outside"
    if seen.bound_void:
        return "bound void"
    if best_peer is not None:
        floor = max(best_peer, seen.rounding)
        if seen.error_over_bound > OUTLIER_FACTOR * floor:
            return "precision outlier"
    return "within"


def best_peer(
    name: str, observations: Mapping[str, Observation]
) -> tuple[str | None, float | None]:
    """The peer of `name` with the smallest error on the cell, and that error over the bound
    of `name` (for peers of the same precision, their own error / bound)."""
    own = observations[name].precision
    measured = [
        (o.under[own], peer)
        for peer, o in observations.items()
        if peer != name and o.measured and own in o.under
    ]
    if not measured:
        return None, None
    ratio, peer = min(measured, key=lambda item: item[0])  # the first of equals, in order
    return peer, ratio


def records(
    measurements: Iterable[Measurement], selected: Iterable[str], backends: Mapping[str, Backend]
) -> list[dict]:
    """One record per cell for each backend of `selected` measured on it."""
    selected = list(selected)
    out = []
    for m in measurements:
        cell = m.cell
        for name in selected:
            seen = m.observations.get(name)
            if seen is None:
                continue
            peer, peer_ratio = best_peer(name, m.observations)
            accumulation = backends[name].accumulation_dtype(cell.dtype)
            out.append(
                {
                    "backend": name,
                    "norm": cell.norm,
                    "dtype": cell.dtype,
                    "magnitude": cell.magnitude,
                    "conditioning": cell.conditioning,
                    "size": cell.size,
                    "error_over_bound": _number(seen.error_over_bound, seen, m),
                    "best_peer": peer,
                    "best_peer_error_over_bound": None
                    if peer is None or m.beyond_reference
                    else _finite(peer_ratio),
                    "outcome": outcome(seen, peer_ratio, m.beyond_reference),
                    "intermediate_overflow": m.sum_of_squares > LARGEST_FINITE[accumulation],
                    "intermediate_underflow": m.least_sum_of_squares
                    < smallest_normal(accumulation),
                    "sum_of_squares": _finite(m.sum_of_squares),
                    "least_sum_of_squares": _finite(m.least_sum_of_squares),
                    "subnormal_inputs": m.subnormal_inputs,
                    "rounding_error_over_bound": _number(seen.rounding, seen, m),
                    **_reason(seen, m),
                }
            )
    return out


def _number(value: float, seen: Observation, m: Measurement) -> float | None:
    """A figure for JSON: None where there is none (no output, or no judgement)."""
    if not seen.measured or m.beyond_reference:
        return None
    return _finite(value)


def _finite(value: float | None) -> float | str | None:
    """A figure for JSON to four significant digits (it is a ratio of errors, not an exact
    value); JSON has no infinity: "inf" says it in a way every reader parses."""
    if value is None:
        return None
    return float(f"{value:.4g}") if math.isfinite(value) else "inf"


def _reason(seen: Observation, m: Measurement) -> dict:
    reason = m.beyond_reference or seen.refused or seen.error
    return {"reason": reason} if reason else {}


def ratio(record: dict) -> float:
    """A record's error / bound as a number (inf for "inf", NaN where there is none)."""
    value = record["error_over_bound"]
    if value is None:
        return math.nan
    return math.inf if value == "inf" else float(value)
