"""Stand-in adapters for the command line's tests: a framework that is not installed, and a
backend that provides one norm."""

from __future__ import annotations

from backends.numpy_backend import NumpyBackend


class UninstalledFramework(NumpyBackend):
    """An adapter whose framework is missing: every property must be skipped with the reason."""

    def unavailable_reason(self) -> str | None:
        return "imaginary_framework is not installed: pip install imaginary_framework"


class LayerNormOnly(NumpyBackend):
    """A backend that provides LayerNorm alone: the other norms are "not provided"."""

    norms = frozenset({"layer_norm"})
