"""Two honest backends: controls whose only errors are the roundings the protocol allows.

They exist to test normspec itself. A conformance gate that reports a correct kernel as wrong
is as broken as one that misses a bug; the planted bugs of tests/mutants prove the suite's
sensitivity, these two prove its specificity: each must pass every property, for every
dtype, at every profile, and a failure of either is a bug of normspec's tolerance model or of
a property, never a finding.

* `exact`: the NumPy backend's own code evaluated in float64, each result rounded once to the
  input's dtype. Its only error is that final rounding (and float64's own, for float64).
* `rounding`: the same code accumulating in float32 for float16, bfloat16 and float32
  inputs (float64 for float64): every intermediate rounded to float32, as its declared
  accumulation dtype allows.

Neither calls the specification: they are the NumPy backend, an independent implementation,
at two precisions.
"""

from __future__ import annotations

from backends.numpy_backend import NumpyBackend

ALL_DTYPES = ("float16", "bfloat16", "float32", "float64")


class ExactBackend(NumpyBackend):
    """The NumPy backend in float64, each result rounded once to the input's dtype."""

    name = "exact"
    dtypes = ALL_DTYPES

    def accumulation_dtype(self, dtype: str) -> str:
        return "float64"


class RoundingBackend(NumpyBackend):
    """The NumPy backend accumulating in float32 (float64 inputs in float64)."""

    name = "rounding"
    dtypes = ALL_DTYPES

    def accumulation_dtype(self, dtype: str) -> str:
        return "float64" if dtype == "float64" else "float32"
