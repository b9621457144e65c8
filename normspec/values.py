"""Plain values that the specification and the backends both speak: no math lives here."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

NORMS: tuple[str, ...] = (
    "batch_norm",
    "layer_norm",
    "instance_norm",
    "group_norm",
    "rms_norm",
    "weight_norm",
)

#: What momentum weighs: the new batch statistic (PyTorch) or the old running value (Keras).
MomentumWeighs = Literal["new", "old"]
#: Which batch variance feeds the running variance.
VarianceEstimator = Literal["unbiased", "biased"]


@dataclass(frozen=True)
class Gradients:
    """dL/dx and, where the norm has them, dL/dweight and dL/dbias.

    For weight_norm, x is dL/dv and weight is dL/dg.
    """

    x: np.ndarray
    weight: np.ndarray | None = None
    bias: np.ndarray | None = None
