"""The benchmark grid: realistic workloads per norm, their inputs, and their minimal traffic.

Each norm has one realistic shape, from the networks that use it, and one small shape whose
time is the per-call overhead (dispatch, checks, allocation) rather than memory traffic:

    norm           workload      shape                  parameters     from
    batch_norm     cnn           (32, 64, 56, 56)       C = 64         ResNet-50, first stage
    instance_norm  cnn           (32, 64, 56, 56)       C = 64         style transfer, same maps
    group_norm     cnn           (8, 256, 64, 64)       G = 32         a diffusion U-Net block
    layer_norm     transformer   (8, 512, 1024)         over (1024,)   a BERT-large layer
    rms_norm       transformer   (8, 512, 1024)         over (1024,)   a LLaMA-style layer
    weight_norm    conv          (512, 512, 3, 3)       dim = 0        a 3x3 conv's weight
    every norm     small         (2, 8, 4, 4), (2, 4, 16), (8, 4, 3, 3)    the overhead row

Each runs in two modes: "forward" (y from x, no gradient recorded) and "forward+backward"
(y, then the gradients of x and of the parameters for a given grad_y, as in one training
step of the layer). Every layer is affine (weight and bias; RMSNorm and WeightNorm's g have
a weight only), in training mode, eps = 1e-5. The inputs are seeded, so every run and both
sides of an A/B comparison time the same numbers.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from normspec.vocabulary import NORMS, NormInputs

#: forward: y = norm(x); forward+backward: y, then dL/dx and dL/dparameters for grad_y.
MODES: tuple[str, ...] = ("forward", "forward+backward")
#: The dtype a run uses unless `--dtype` says otherwise.
DEFAULT_DTYPES: tuple[str, ...] = ("float32",)
EPS = 1e-5
SEED = 20240


@dataclass(frozen=True)
class Workload:
    """One shape of one norm, with the parameters a layer of that shape takes."""

    norm: str
    name: str
    shape: tuple[int, ...]
    why: str
    num_groups: int | None = None
    normalized_shape: tuple[int, ...] | None = None
    dim: int | None = None

    @property
    def id(self) -> str:
        """`norm:name`, as `--workload` and the reports name it."""
        return f"{self.norm}:{self.name}"

    @property
    def parameter_shape(self) -> tuple[int, ...]:
        """The shape of the weight (and bias): per channel, per normalized feature, or g."""
        if self.norm in ("layer_norm", "rms_norm"):
            return tuple(self.normalized_shape)
        if self.norm == "weight_norm":
            return tuple(n if a == self.dim else 1 for a, n in enumerate(self.shape))
        return (self.shape[1],)

    @property
    def has_bias(self) -> bool:
        """RMSNorm and WeightNorm scale only."""
        return self.norm not in ("rms_norm", "weight_norm")

    def describe(self) -> str:
        """The shape and its parameters, as the reports print them."""
        extra = ""
        if self.num_groups is not None:
            extra = f", {self.num_groups} groups"
        elif self.normalized_shape is not None:
            extra = f", over {tuple(self.normalized_shape)}"
        elif self.dim is not None:
            extra = f", dim {self.dim}"
        return f"{tuple(self.shape)}{extra}"


def _small(norm: str) -> Workload:
    why = "per-call overhead: a few hundred values, no memory traffic to speak of"
    if norm in ("layer_norm", "rms_norm"):
        return Workload(norm, "small", (2, 4, 16), why, normalized_shape=(16,))
    if norm == "weight_norm":
        return Workload(norm, "small", (8, 4, 3, 3), why, dim=0)
    return Workload(
        norm, "small", (2, 8, 4, 4), why, num_groups=2 if norm == "group_norm" else None
    )


#: The grid, in report order: the realistic workload of each norm, then its small row.
WORKLOADS: tuple[Workload, ...] = (
    Workload("batch_norm", "cnn", (32, 64, 56, 56), "ResNet-50 first stage, batch 32"),
    _small("batch_norm"),
    Workload("instance_norm", "cnn", (32, 64, 56, 56), "style-transfer maps, batch 32"),
    _small("instance_norm"),
    Workload("group_norm", "cnn", (8, 256, 64, 64), "diffusion U-Net block", num_groups=32),
    _small("group_norm"),
    Workload(
        "layer_norm", "transformer", (8, 512, 1024), "BERT-large layer", normalized_shape=(1024,)
    ),
    _small("layer_norm"),
    Workload(
        "rms_norm", "transformer", (8, 512, 1024), "LLaMA-style layer", normalized_shape=(1024,)
    ),
    _small("rms_norm"),
    Workload("weight_norm", "conv", (512, 512, 3, 3), "3x3 conv, 512 -> 512 channels", dim=0),
    _small("weight_norm"),
)
BY_ID: dict[str, Workload] = {w.id: w for w in WORKLOADS}
assert {w.norm for w in WORKLOADS} == set(NORMS)


@dataclass(frozen=True)
class Case:
    """One row of a run: a workload in one mode and dtype on one backend."""

    backend: str
    workload: Workload
    mode: str
    dtype: str

    @property
    def key(self) -> str:
        """`backend/norm:name/mode/dtype`: how the reports, --compare and --ab match rows."""
        return f"{self.backend}/{self.workload.id}/{self.mode}/{self.dtype}"

    def as_dict(self) -> dict:
        """The case as the plan and the reports hold it."""
        w = self.workload
        return {
            "key": self.key,
            "backend": self.backend,
            "norm": w.norm,
            "workload": w.name,
            "shape": list(w.shape),
            "parameters": w.describe(),
            "mode": self.mode,
            "dtype": self.dtype,
            "bytes": minimal_bytes(w, self.mode, self.dtype),
        }

    @classmethod
    def from_dict(cls, record: dict) -> Case:
        """The case a plan or report row names (the shape must still be the grid's)."""
        workload = BY_ID[f"{record['norm']}:{record['workload']}"]
        if list(workload.shape) != list(record["shape"]):
            raise ValueError(f"{record['key']}: the grid's shape is now {workload.shape}")
        return cls(record["backend"], workload, record["mode"], record["dtype"])


def select(norms: tuple[str, ...] = (), workloads: tuple[str, ...] = ()) -> tuple[Workload, ...]:
    """The grid's workloads of `norms` and with ids in `workloads` (empty: no restriction)."""
    return tuple(
        w
        for w in WORKLOADS
        if (not norms or w.norm in norms) and (not workloads or w.id in workloads)
    )


def numpy_dtype(name: str) -> np.dtype:
    """The NumPy dtype for a dtype name; bfloat16 comes from ml_dtypes."""
    if name == "bfloat16":
        import ml_dtypes

        return np.dtype(ml_dtypes.bfloat16)
    return np.dtype(name)


def itemsize(dtype: str) -> int:
    """Bytes per element of `dtype`."""
    return {"float16": 2, "bfloat16": 2, "float32": 4, "float64": 8}[dtype]


def minimal_bytes(workload: Workload, mode: str, dtype: str) -> int:
    """The bytes a call must at least move to and from memory: each input read once, each
    output written once, nothing else.

    forward:          read x, weight, bias; write y.
    forward+backward: also read grad_y, write dL/dx, dL/dweight, dL/dbias.
    The statistics (a value per pooled set) are left out: they are small next to x, and an
    implementation may keep them in registers. Real kernels move more (two passes over x,
    a saved x_hat), so bytes / time is a lower bound of the traffic they achieved.
    """
    if mode not in MODES:
        raise ValueError(f"unknown mode {mode!r}; modes: {', '.join(MODES)}")
    activations = math.prod(workload.shape)
    parameters = math.prod(workload.parameter_shape) * (2 if workload.has_bias else 1)
    forward = 2 * activations + parameters
    if mode == "forward":
        return forward * itemsize(dtype)
    return (2 * forward) * itemsize(dtype)


#: Values drawn per array at most; larger arrays repeat them (see `_normal`).
DRAWN = 1 << 20


def _normal(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """Standard normal float32 values in `shape`: up to `DRAWN` drawn, then repeated. Every
    pass of --ab prepares each workload on both sides anew, and drawing 26 million normals
    twice costs more than timing the call; a norm's time does not depend on the values."""
    size = math.prod(shape)
    drawn = rng.standard_normal(min(size, DRAWN), dtype=np.float32)
    return np.resize(drawn, shape) if size > DRAWN else drawn.reshape(shape)


def make_inputs(workload: Workload, dtype: str) -> tuple[NormInputs, np.ndarray]:
    """The call of `workload` in `dtype` and the grad_y of its backward pass, seeded.

    x and grad_y are standard normal (`_normal`); weight is 1 + N(0, 0.1^2) and bias
    N(0, 0.1^2), as a trained layer has them (WeightNorm's g is ||v|| along `dim` times the
    same factor).
    """
    rng = np.random.default_rng(SEED)
    dt = numpy_dtype(dtype)
    x, grad_y = _normal(rng, workload.shape), _normal(rng, workload.shape)
    scale = 1.0 + 0.1 * rng.standard_normal(workload.parameter_shape)
    if workload.norm == "weight_norm":
        axes = tuple(a for a in range(x.ndim) if a != workload.dim)
        scale = scale * np.sqrt((x.astype(np.float64) ** 2).sum(axis=axes, keepdims=True))
    bias = 0.1 * rng.standard_normal(workload.parameter_shape) if workload.has_bias else None
    inputs = NormInputs(
        x=x.astype(dt, copy=False),
        eps=0.0 if workload.norm == "weight_norm" else EPS,
        weight=scale.astype(dt),
        bias=None if bias is None else bias.astype(dt),
        num_groups=workload.num_groups,
        normalized_shape=workload.normalized_shape,
        dim=workload.dim,
        training=True,
    )
    return inputs, grad_y.astype(dt, copy=False)
