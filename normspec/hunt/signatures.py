"""The region of parameters a discrepancy lives in, and the signature that deduplicates it.

Two failing examples are the same discrepancy when they fail the same property, on the same
norm, backend (or pair) and dtype, in the same region: the decade of the input's magnitude,
the conditioning of its pooled sets, the size class of a pooled set, and the memory layout the
kernel saw. These are the axes along which kernels branch (a blocked reduction over long rows,
a one-pass variance on ill-conditioned sets, a channels-last kernel) and along which a user
reads a finding ("float16 LayerNorm, rows of 256 to 4095 values, magnitude 1e4").
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import asdict, dataclass

import numpy as np

from normspec import reference
from normspec.errors import NormParameterError
from normspec.vocabulary import NormInputs

#: The norms that subtract a mean: their conditioning is max_S |x| / sigma_S.
CENTERED = ("batch_norm", "layer_norm", "instance_norm", "group_norm")
#: The norms TensorFlow's adapters transpose to channels-last.
CHANNEL_NORMS = ("batch_norm", "instance_norm", "group_norm")
#: Upper ends of the size classes of a pooled set (values per set).
SIZE_CLASSES = ((1, "1"), (15, "2-15"), (255, "16-255"), (4095, "256-4095"), (65535, "4096-65535"))


@dataclass(frozen=True)
class Region:
    """Where in parameter space an input lies."""

    magnitude: str
    conditioning: str
    size: str
    layout: str


@dataclass(frozen=True)
class Signature:
    """What makes two failing examples the same discrepancy."""

    norm: str
    backend: str
    property: str
    dtype: str
    magnitude: str
    conditioning: str
    size: str
    layout: str

    @property
    def id(self) -> str:
        """A short stable name: the first 10 hex digits of the signature's SHA-1."""
        text = "|".join(asdict(self).values())
        return hashlib.sha1(text.encode()).hexdigest()[:10]

    def region(self) -> str:
        """The region in words."""
        return (
            f"magnitude {self.magnitude}, {self.conditioning}, sets of {self.size} values, "
            f"{self.layout}"
        )


def magnitude(x: np.ndarray) -> str:
    """The decade of the largest finite |x|: "1e+03" for 1000 <= max|x| < 10000; "0"."""
    values = np.abs(np.asarray(x, dtype=np.float64))
    values = values[np.isfinite(values)]
    largest = float(values.max()) if values.size else 0.0
    if largest == 0.0:
        return "0"
    return f"1e{math.floor(math.log10(largest)):+03d}"


def conditioning(norm: str, x: np.ndarray, eps: float, sets) -> str:
    """The class of max over the pooled sets of max_S |x| / sqrt(var_S + eps): how much
    every correct algorithm loses to cancellation (normspec/tolerance.py)."""
    if norm not in CENTERED:
        return "conditioning n/a"
    view = sets.of(np.asarray(x, dtype=np.float64))
    with np.errstate(all="ignore"):
        var = np.var(view, axis=sets.axes)
        largest = np.max(np.abs(view), axis=sets.axes)
        sigma = np.sqrt(var + eps)
        if np.any(sigma == 0):
            return "a constant set (zero variance)"
        kappa = float(np.nanmax(largest / sigma)) if largest.size else 0.0
    if not np.isfinite(kappa):
        return "non-finite statistics"
    for limit, name in ((10.0, "well"), (1e3, "moderately"), (1e6, "ill")):
        if kappa < limit:
            return f"{name}-conditioned (M/sigma < {limit:g})"
    return "severely ill-conditioned (M/sigma >= 1e+06)"


def size_class(count: int) -> str:
    """The size class of a pooled set of `count` values."""
    for limit, name in SIZE_CLASSES:
        if count <= limit:
            return name
    return "65536+"


def layout(backend: str, norm: str, rank: int) -> str:
    """The memory layout the kernel saw: what the adapter does to a rank-`rank` input."""
    seen = []
    for name in backend.split(" vs "):
        last = (name == "torch-channels-last" and rank in (4, 5)) or (
            name.startswith("tensorflow") and norm in CHANNEL_NORMS
        )
        seen.append("channels_last" if last else "channels_first")
    kinds = " / ".join(dict.fromkeys(seen))
    return f"{rank}-D {kinds}"


def region_of(
    backend: str, norm: str, arrays: dict[str, np.ndarray], scalars: dict
) -> Region | None:
    """The region of a call's input (its arrays and scalars as the culprit event holds them),
    or None where the spec has no pooled sets for it."""
    x = arrays.get("x", arrays.get("batch_0"))
    if x is None:
        return None
    eps = float(scalars.get("eps") or 0.0)
    normalized = scalars.get("normalized_shape")
    inputs = NormInputs(
        x=x,
        eps=eps,
        num_groups=scalars.get("num_groups"),
        normalized_shape=None if normalized is None else tuple(normalized),
        dim=scalars.get("dim"),
    )
    try:
        sets = reference.pooled(norm, inputs)
    except NormParameterError:
        return None
    return Region(
        magnitude=magnitude(x),
        conditioning=conditioning(norm, x, eps, sets),
        size=size_class(sets.count),
        layout=layout(backend, norm, np.ndim(x)),
    )


def region_of_case(backend: str, norm: str, case: object) -> Region | None:
    """The region of a generated case (a `Case` or `TrainingCase` of properties/strategies),
    for a failure whose call was not recorded (a crash, a hang)."""
    if hasattr(case, "inputs"):
        inputs = case.inputs()
        arrays = {"x": inputs.x}
        scalars = {
            "eps": inputs.eps,
            "num_groups": inputs.num_groups,
            "normalized_shape": inputs.normalized_shape,
            "dim": inputs.dim,
        }
    elif hasattr(case, "run"):
        run = case.run()
        arrays, scalars = {"batch_0": run.batches[0]}, {"eps": run.eps}
    else:
        return None
    return region_of(backend, norm, arrays, scalars)


UNKNOWN = Region("unknown", "unknown", "unknown", "unknown")
