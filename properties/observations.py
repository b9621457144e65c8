"""What the conventions properties observed, per backend, for the conventions table."""

from __future__ import annotations

#: One entry per (backend, convention): the declared and the observed value.
CONVENTIONS: list[dict] = []


def observe(
    backend: str, convention: str, declared: object, observed: object, agrees: bool | None = None
) -> None:
    """Record what `backend` declared for `convention` and what a property observed; they
    agree if equal, unless the property judged agreement itself (a measured number)."""
    entry = {
        "backend": backend,
        "convention": convention,
        "declared": declared,
        "observed": observed,
        "agrees": declared == observed if agrees is None else agrees,
    }
    if entry not in CONVENTIONS:
        CONVENTIONS.append(entry)
