"""What the conventions properties observed, per backend, for the conventions table."""

from __future__ import annotations

#: One entry per (backend, convention): the declared and the observed value.
CONVENTIONS: list[dict] = []


def observe(backend: str, convention: str, declared: object, observed: object) -> None:
    """Record what `backend` declared for `convention` and what a property observed."""
    entry = {
        "backend": backend,
        "convention": convention,
        "declared": declared,
        "observed": observed,
        "agrees": declared == observed,
    }
    if entry not in CONVENTIONS:
        CONVENTIONS.append(entry)
