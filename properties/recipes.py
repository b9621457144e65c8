"""Generated cases as values: recipes whose `repr` says how to rebuild the exact input.

Arrays are never drawn element by element: a case holds an `ArrayRecipe` (shape, kind of
data, seed, offset, scale) and `build()` makes the array with NumPy. Printing a case is
enough to rebuild it: `eval(repr(case))` with these three classes in scope gives an equal
case, and its `inputs()` the very arrays the backend saw.

Kinds of data, chosen because each has broken a real implementation:
    normal            N(offset, scale^2)
    large_offset      a large mean and a small spread: ill-conditioned statistics
    constant          every value equal: zero variance everywhere
    constant_samples  some samples constant: zero variance in per-sample sets
    mixed             magnitudes spread over five decades
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from normspec.vocabulary import NormInputs, TrainingRun

KINDS = ("normal", "large_offset", "constant", "constant_samples", "mixed", "outlier")
#: How far a single outlier lies from the offset, in units of the scale.
OUTLIER = 1e3
DTYPES = ("float64", "float32", "float16", "bfloat16")


@functools.cache
def numpy_dtype(name: str) -> np.dtype:
    """The NumPy dtype for a dtype name; bfloat16 comes from ml_dtypes."""
    if name == "bfloat16":
        import ml_dtypes

        return np.dtype(ml_dtypes.bfloat16)
    return np.dtype(name)


@dataclass(frozen=True)
class ArrayRecipe:
    """How to build one float64 array: `ArrayRecipe(...).build()` rebuilds it exactly."""

    shape: tuple[int, ...]
    kind: str = "normal"
    seed: int = 0
    offset: float = 0.0
    scale: float = 1.0

    def build(self) -> np.ndarray:
        """The array, in float64 (cast it to the case's dtype before use)."""
        if self.kind == "constant":
            return np.full(self.shape, self.offset)
        rng = np.random.default_rng(self.seed)
        z = rng.standard_normal(self.shape)
        if self.kind == "mixed":
            z = z * 10.0 ** rng.uniform(-3, 2, self.shape)
        x = self.offset + self.scale * z
        if self.kind == "constant_samples" and self.shape:
            constant = rng.random(self.shape[0]) < 0.5
            x[constant] = self.offset
        if self.kind == "outlier" and x.size:
            x.flat[rng.integers(x.size)] = self.offset + self.scale * OUTLIER
        return x


@dataclass(frozen=True)
class Case:
    """One call of a norm: `Case(...).inputs()` rebuilds the exact arrays a backend sees."""

    norm: str
    x: ArrayRecipe
    dtype: str
    eps: float = 0.0
    weight: ArrayRecipe | None = None
    bias: ArrayRecipe | None = None
    num_groups: int | None = None
    normalized_shape: tuple[int, ...] | None = None
    dim: int | None = None
    training: bool = True
    running_mean: ArrayRecipe | None = None
    running_var: ArrayRecipe | None = None

    def inputs(self) -> NormInputs:
        """The arrays in the case's dtype, as the backend receives them."""
        cast = lambda r, positive=False: None if r is None else cast_recipe(r, self.dtype, positive)
        return NormInputs(
            x=cast(self.x),
            eps=self.eps,
            weight=cast(self.weight),
            bias=cast(self.bias),
            num_groups=self.num_groups,
            normalized_shape=self.normalized_shape,
            dim=self.dim,
            training=self.training,
            running_mean=cast(self.running_mean),
            running_var=cast(self.running_var, positive=True),
        )


@dataclass(frozen=True)
class TrainingCase:
    """k training steps: `TrainingCase(...).run()` rebuilds the exact `TrainingRun`."""

    norm: str
    batches: tuple[ArrayRecipe, ...]
    dtype: str
    eps: float
    momentum: float | None
    momentum_weighs: str
    running_var_estimator: str
    initial_mean: ArrayRecipe
    initial_var: ArrayRecipe
    affine: bool = False

    def run(self) -> TrainingRun:
        """The batches and initial statistics in the case's dtype."""
        channels = self.batches[0].shape[1]
        weight = bias = None
        if self.affine:
            weight = cast_recipe(ArrayRecipe((channels,), seed=1), self.dtype)
            bias = cast_recipe(ArrayRecipe((channels,), seed=2), self.dtype)
        return TrainingRun(
            batches=tuple(cast_recipe(b, self.dtype) for b in self.batches),
            eps=self.eps,
            momentum=self.momentum,
            momentum_weighs=self.momentum_weighs,
            running_var_estimator=self.running_var_estimator,
            initial_mean=cast_recipe(self.initial_mean, self.dtype),
            initial_var=cast_recipe(self.initial_var, self.dtype, positive=True),
            weight=weight,
            bias=bias,
        )


def cast_recipe(recipe: ArrayRecipe, dtype: str, positive: bool = False) -> np.ndarray:
    """The recipe's array in `dtype`; `positive` maps it to |x| + 0.5 first (a variance)."""
    x = recipe.build()
    if positive:
        x = np.abs(x) + 0.5
    return x.astype(numpy_dtype(dtype))
