"""Hypothesis strategies for normalization cases.

Arrays are never drawn element by element: a case holds an `ArrayRecipe` (shape, kind of
data, seed, offset, scale) whose `repr` says how to rebuild it, and whose `build()` makes the
array with NumPy. This keeps large arrays fast to generate and shrinking meaningful: shapes
shrink toward small, the kind toward "normal", offsets toward 0, scales toward 1, eps toward
the first of its edge values.

Kinds of data, chosen because each has broken a real implementation:
    normal            N(offset, scale^2)
    large_offset      a large mean and a small spread: ill-conditioned statistics
    constant          every value equal: zero variance everywhere
    constant_samples  some samples constant: zero variance in per-sample sets
    mixed             magnitudes spread over five decades
"""

from __future__ import annotations

import functools
import itertools
import math
from dataclasses import dataclass

import numpy as np
from hypothesis import strategies as st

from backends.protocol import Backend, NormInputs, TrainingRun
from normspec.errors import NormParameterError
from normspec.spec import weight_norm_g_shape
from normspec.vocabulary import ReplicatedRun

KINDS = ("normal", "large_offset", "constant", "constant_samples", "mixed")
DTYPES = ("float64", "float32", "float16", "bfloat16")
EPS_EDGES = (1e-5, 1e-3, 0.0, 1e-12, 1.0, 0.1)
#: The largest offset and scale per dtype: beyond them half-precision inputs overflow.
MAX_OFFSET = {"float64": 1e6, "float32": 1e6, "float16": 1e2, "bfloat16": 1e2}
MAX_SCALE = {"float64": 1e2, "float32": 1e2, "float16": 10.0, "bfloat16": 10.0}


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
        rng = np.random.default_rng(self.seed)
        z = rng.standard_normal(self.shape)
        if self.kind == "constant":
            return np.full(self.shape, self.offset)
        if self.kind == "mixed":
            z = z * 10.0 ** rng.uniform(-3, 2, self.shape)
        x = self.offset + self.scale * z
        if self.kind == "constant_samples" and self.shape:
            constant = rng.random(self.shape[0]) < 0.5
            x[constant] = self.offset
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
        cast = lambda r, positive=False: None if r is None else _cast(r, self.dtype, positive)
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
            weight = _cast(ArrayRecipe((channels,), seed=1), self.dtype)
            bias = _cast(ArrayRecipe((channels,), seed=2), self.dtype)
        return TrainingRun(
            batches=tuple(_cast(b, self.dtype) for b in self.batches),
            eps=self.eps,
            momentum=self.momentum,
            momentum_weighs=self.momentum_weighs,
            running_var_estimator=self.running_var_estimator,
            initial_mean=_cast(self.initial_mean, self.dtype),
            initial_var=_cast(self.initial_var, self.dtype, positive=True),
            weight=weight,
            bias=bias,
        )


def _cast(recipe: ArrayRecipe, dtype: str, positive: bool = False) -> np.ndarray:
    x = recipe.build()
    if positive:
        x = np.abs(x) + 0.5
    return x.astype(numpy_dtype(dtype))


# --- scalar strategies -----------------------------------------------------------------------


def eps_values(minimum: float = 0.0) -> st.SearchStrategy[float]:
    """eps: the edge values first, then log-uniform over 1e-12 .. 1 (shrinks to 1e-5)."""
    if not 0 <= minimum <= 1:
        raise NormParameterError(f"minimum eps must be in [0, 1], got {minimum}")
    edges = st.sampled_from([e for e in EPS_EDGES if e >= minimum])
    low = math.log10(max(minimum, 1e-12))
    log_uniform = st.floats(low, 0.0).map(lambda e: float(10.0**e))
    return st.one_of(edges, log_uniform)


def momenta(allow_none: bool) -> st.SearchStrategy[float | None]:
    """momentum in [0, 1]: 0.1, the edges 0 and 1, any value, and None where supported."""
    values = st.one_of(st.sampled_from([0.1, 0.0, 1.0, 0.99]), st.floats(0.0, 1.0))
    return st.one_of(values, st.none()) if allow_none else values


def dtypes_for(backend: Backend, norm: str) -> st.SearchStrategy[str]:
    """The dtypes `backend` supports for `norm`, float64 first so that shrinking reaches it."""
    names = [d for d in DTYPES if backend.supports(norm, d)]
    if not names:
        raise NormParameterError(f"{backend.name} supports no dtype for {norm}")
    return st.sampled_from(names)


def array_recipes(
    shape: tuple[int, ...], dtype: str = "float64", kinds: tuple[str, ...] = KINDS
) -> st.SearchStrategy[ArrayRecipe]:
    """An array of `shape` of one of `kinds`, with offsets and scales the dtype can hold."""
    unknown = set(kinds) - set(KINDS)
    if unknown or not kinds:
        raise NormParameterError(f"unknown data kinds {sorted(unknown)}; allowed: {KINDS}")
    if dtype not in MAX_OFFSET:
        raise NormParameterError(f"unknown dtype {dtype!r}; allowed: {DTYPES}")
    return _array_recipes(tuple(shape), dtype, tuple(kinds))


@st.composite
def _array_recipes(
    draw: st.DrawFn, shape: tuple[int, ...], dtype: str, kinds: tuple[str, ...]
) -> ArrayRecipe:
    kind = draw(st.sampled_from(kinds))
    seed = draw(st.integers(0, 2**32 - 1))
    limit = MAX_OFFSET[dtype]
    if kind == "large_offset":
        offset = draw(st.sampled_from([1e2, 1e3, 1e4, 1e5, -1e3]).filter(lambda o: abs(o) <= limit))
        return ArrayRecipe(shape, kind, seed, offset, draw(st.sampled_from([1.0, 0.1, 1e-2])))
    offset = draw(st.one_of(st.just(0.0), st.floats(-10.0, 10.0)))
    scale = draw(st.one_of(st.just(1.0), st.floats(1e-2, MAX_SCALE[dtype])))
    return ArrayRecipe(shape, kind, seed, offset, scale)


# --- shapes ----------------------------------------------------------------------------------


@st.composite
def channel_shapes(
    draw: st.DrawFn,
    min_rank: int,
    *,
    max_size: int,
    batch: int | None = None,
    min_pooled: int = 1,
    pooled_includes_batch: bool = False,
) -> tuple[int, ...]:
    """(N, C, *spatial) with rank in [min_rank, 5], at most max_size elements, and at least
    `min_pooled` values per pooled set (spatial, or batch and spatial)."""
    rank = draw(st.integers(min_rank, 5))
    n = batch if batch is not None else draw(st.integers(1, 4))
    c = draw(st.integers(1, 6))
    spatial = tuple(draw(st.lists(st.integers(1, 5), min_size=rank - 2, max_size=rank - 2)))
    pooled = math.prod(spatial) * (n if pooled_includes_batch else 1)
    if pooled < min_pooled:
        if spatial:
            spatial = (spatial[0] + min_pooled, *spatial[1:])
        elif pooled_includes_batch and batch is None:
            n = max(n, min_pooled)
        elif pooled_includes_batch:  # a fixed batch of one: pool over a spatial axis instead
            spatial = (min_pooled,)
    floor = 2 if min_pooled > 1 else 1  # halving must keep every pooled set large enough
    shape = (n, c, *spatial)
    while math.prod(shape) > max_size and any(s > floor for s in shape[2:]):
        shape = (n, c, *(max(floor, s // 2) for s in shape[2:]))
    return shape


@st.composite
def trailing_shapes(
    draw: st.DrawFn, *, max_size: int, single_row: bool = False, min_leading: int = 0
) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """(shape, normalized_shape) with normalized_shape a non-empty suffix of shape."""
    k = draw(st.integers(1, 3))
    normalized = tuple(draw(st.lists(st.integers(1, 8), min_size=k, max_size=k)))
    if math.prod(normalized) < 2:
        normalized = (*normalized[:-1], normalized[-1] + 1)
    leading_rank = draw(st.integers(max(min_leading, 0), 2))
    leading = tuple(1 if single_row else draw(st.integers(1, 4)) for _ in range(leading_rank))
    while math.prod(leading) * math.prod(normalized) > max_size and max(normalized) > 1:
        normalized = tuple(max(1, s // 2) for s in normalized)
    return (*leading, *normalized), normalized


def group_counts(channels: int) -> st.SearchStrategy[int]:
    """A divisor of `channels`: the valid group counts of GroupNorm."""
    if channels < 1:
        raise NormParameterError(f"channels must be >= 1, got {channels}")
    return st.sampled_from([g for g in range(1, channels + 1) if channels % g == 0])


# --- cases ---------------------------------------------------------------------------------

#: The family of each norm: which shapes and parameters its cases draw.
FAMILIES = {
    "batch_norm": "channel",
    "instance_norm": "channel",
    "group_norm": "channel",
    "layer_norm": "trailing",
    "rms_norm": "trailing",
    "weight_norm": "weight",
}
#: The norms with an evaluation mode (running statistics).
EVALUATES = ("batch_norm", "instance_norm")


def cases(
    norm: str,
    backend: Backend,
    *,
    affine: bool | None = None,
    single_instance: bool = False,
    min_eps: float = 0.0,
    training: bool = True,
    kinds: tuple[str, ...] = KINDS,
    dtype: str | None = None,
    max_size: int = 1024,
    min_batch: int = 1,
) -> st.SearchStrategy[Case]:
    """A valid call of `norm` for `backend`.

    affine: True, False or None (either). single_instance: one sample (and one row for
    layer_norm/rms_norm), as affine recovery needs. training=False draws running statistics
    (batch_norm, instance_norm). min_eps > 0 keeps zero-variance sets finite. dtype: one the
    backend supports for `norm`, or None to draw one. max_size bounds the elements of x;
    min_batch the batch size. Arguments are checked here, when the strategy is built, with an
    error that names the argument and what is allowed; the strategy is built once per
    combination and reused.
    """
    if norm not in FAMILIES:
        raise NormParameterError(f"unknown norm {norm!r}; allowed: {', '.join(FAMILIES)}")
    if affine is not None and not isinstance(affine, bool):
        raise NormParameterError(f"affine must be True, False or None, got {affine!r}")
    if not training and norm not in EVALUATES:
        raise NormParameterError(
            f"training=False (running statistics) exists for {', '.join(EVALUATES)}, not {norm}"
        )
    if not 0 <= min_eps <= 1:
        raise NormParameterError(f"min_eps must be in [0, 1], got {min_eps!r}")
    unknown = set(kinds) - set(KINDS)
    if unknown or not kinds:
        raise NormParameterError(f"unknown data kinds {sorted(unknown)}; allowed: {KINDS}")
    if dtype is not None and not backend.supports(norm, dtype):
        supported = [d for d in DTYPES if backend.supports(norm, d)]
        raise NormParameterError(
            f"{backend.name} does not support {norm} in {dtype!r}; allowed: {supported}"
        )
    for name, value in (("max_size", max_size), ("min_batch", min_batch)):
        if not isinstance(value, int) or value < 1:
            raise NormParameterError(f"{name} must be an integer >= 1, got {value!r}")
    return _cases(
        norm,
        backend,
        affine,
        single_instance,
        min_eps,
        training,
        tuple(kinds),
        dtype,
        max_size,
        min_batch,
    )


@functools.lru_cache(maxsize=512)
def _cases(
    norm, backend, affine, single_instance, min_eps, training, kinds, dtype, max_size, min_batch
) -> st.SearchStrategy[Case]:
    family = FAMILIES[norm]
    if family == "weight":
        return _weight_norm_cases(norm, backend, kinds, dtype)
    options = dict(
        affine=affine,
        single_instance=single_instance,
        kinds=kinds,
        max_size=max_size,
        min_batch=min_batch,
        dtype=dtype,
        min_eps=min_eps,
    )
    if family == "trailing":
        return _trailing_cases(norm, backend, **options)
    return _channel_cases(norm, backend, training=training, **options)


def _without_constant_sets(kinds: tuple[str, ...], eps: float) -> tuple[str, ...]:
    """With eps = 0, a constant set is 0/0: a convention (see the conventions properties),
    not a number, so such cases draw no constant data."""
    if eps != 0.0:
        return kinds
    return tuple(k for k in kinds if k not in ("constant", "constant_samples")) or ("normal",)


def _affine_parameters(draw, param_shape, dtype, with_affine, bias=True) -> dict:
    if not with_affine:
        return {}
    fields = {"weight": draw(array_recipes(param_shape, dtype, ("normal",)))}
    if bias:
        fields["bias"] = draw(array_recipes(param_shape, dtype, ("normal",)))
    return fields


@st.composite
def _trailing_cases(
    draw, norm, backend, *, affine, single_instance, kinds, max_size, min_batch, dtype, min_eps
) -> Case:
    """LayerNorm and RMSNorm: x of any rank, S the trailing normalized_shape."""
    dtype = dtype or draw(dtypes_for(backend, norm))
    eps = draw(eps_values(min_eps))
    with_affine = draw(st.booleans()) if affine is None else affine
    shape, normalized = draw(
        trailing_shapes(
            max_size=max_size, single_row=single_instance, min_leading=1 if min_batch > 1 else 0
        )
    )
    if min_batch > 1 and shape[0] < min_batch:
        shape = (min_batch, *shape[1:])
    return Case(
        norm=norm,
        x=draw(array_recipes(shape, dtype, _without_constant_sets(kinds, eps))),
        dtype=dtype,
        eps=eps,
        normalized_shape=normalized,
        **_affine_parameters(draw, normalized, dtype, with_affine, bias=norm != "rms_norm"),
    )


@st.composite
def _channel_cases(
    draw,
    norm,
    backend,
    *,
    affine,
    single_instance,
    kinds,
    max_size,
    min_batch,
    dtype,
    min_eps,
    training,
) -> Case:
    """BatchNorm, InstanceNorm and GroupNorm: x (N, C, *spatial), parameters (C,)."""
    dtype = dtype or draw(dtypes_for(backend, norm))
    eps = draw(eps_values(min_eps))
    with_affine = draw(st.booleans()) if affine is None else affine
    fields: dict = {}
    shape = draw(
        channel_shapes(
            3 if norm == "instance_norm" else 2,
            max_size=max_size,
            batch=1 if single_instance else None,
            min_pooled=2 if training else 1,
            pooled_includes_batch=norm == "batch_norm" and training,
        )
    )
    if shape[0] < min_batch:
        shape = (min_batch, *shape[1:])
    if norm == "group_norm":
        if eps == 0.0 and math.prod(shape[2:]) < 2:  # 0/0 needs a set of >= 2 values
            shape = (shape[0], max(shape[1], 2), *shape[2:])
            fields["num_groups"] = draw(group_counts(shape[1]).filter(lambda g: g < shape[1]))
        else:
            fields["num_groups"] = draw(group_counts(shape[1]))
    channels = (shape[1],)
    if not training:
        fields.update(
            training=False,
            running_mean=draw(array_recipes(channels, dtype, ("normal",))),
            running_var=draw(array_recipes(channels, dtype, ("normal",))),
        )
    return Case(
        norm=norm,
        x=draw(array_recipes(shape, dtype, _without_constant_sets(kinds, eps))),
        dtype=dtype,
        eps=eps,
        **fields,
        **_affine_parameters(draw, channels, dtype, with_affine),
    )


@st.composite
def _weight_norm_cases(draw, norm, backend, kinds, dtype) -> Case:
    """WeightNorm: v of rank 1 to 4, g shaped like v with the norm axes of size 1, no eps."""
    dtype = dtype or draw(dtypes_for(backend, norm))
    rank = draw(st.integers(1, 4))
    shape = tuple(draw(st.lists(st.integers(1, 6), min_size=rank, max_size=rank)))
    dim = draw(st.one_of(st.none(), st.integers(0, rank - 1)))
    return Case(
        norm=norm,
        x=draw(array_recipes(shape, dtype, _without_constant_sets(kinds, 0.0))),
        dtype=dtype,
        eps=0.0,
        dim=dim,
        weight=draw(array_recipes(weight_norm_g_shape(shape, dim), dtype, ("normal",))),
    )


def training_cases(
    norm: str,
    backend: Backend,
    *,
    max_size: int = 512,
    dtypes: tuple[str, ...] | None = None,
    estimators: tuple[str, ...] | None = None,
    cumulative_average: bool | None = None,
) -> st.SearchStrategy[TrainingCase]:
    """k in 1..4 training steps with a momentum, a convention and an estimator the backend
    supports (or those given: the common ground of two backends); the batches share their
    channel count and shape. Arguments are checked when the strategy is built."""
    if norm not in EVALUATES:
        raise NormParameterError(f"training cases exist for {', '.join(EVALUATES)}, not {norm!r}")
    if not isinstance(max_size, int) or max_size < 1:
        raise NormParameterError(f"max_size must be an integer >= 1, got {max_size!r}")
    if dtypes is not None and (not dtypes or set(dtypes) - set(DTYPES)):
        raise NormParameterError(f"dtypes must be a non-empty subset of {DTYPES}, got {dtypes!r}")
    allowed = ("unbiased", "biased")
    if estimators is not None and (not estimators or set(estimators) - set(allowed)):
        raise NormParameterError(
            f"estimators must be a non-empty subset of {allowed}, got {estimators!r}"
        )
    return _training_cases(
        norm,
        backend,
        max_size,
        None if dtypes is None else tuple(dtypes),
        None if estimators is None else tuple(estimators),
        cumulative_average,
    )


@functools.lru_cache(maxsize=256)
@st.composite
def _training_cases(
    draw: st.DrawFn,
    norm: str,
    backend: Backend,
    max_size: int,
    dtypes: tuple[str, ...] | None,
    estimators: tuple[str, ...] | None,
    cumulative_average: bool | None,
) -> TrainingCase:
    dtype = draw(st.sampled_from(dtypes) if dtypes else dtypes_for(backend, norm))
    conventions = backend.conventions
    estimators = estimators or conventions.running_var_estimators
    if cumulative_average is None:
        cumulative_average = conventions.cumulative_average
    min_rank = 3 if norm == "instance_norm" else 2
    shape = draw(
        channel_shapes(
            min_rank, max_size=max_size, min_pooled=2, pooled_includes_batch=norm == "batch_norm"
        )
    )
    k = draw(st.integers(1, 4))
    kinds = ("normal", "large_offset", "mixed")
    batches = tuple(draw(array_recipes(shape, dtype, kinds)) for _ in range(k))
    channels = (shape[1],)
    return TrainingCase(
        norm=norm,
        batches=batches,
        dtype=dtype,
        eps=draw(eps_values(1e-12)),
        momentum=draw(momenta(cumulative_average)),
        momentum_weighs=draw(st.sampled_from(["new", "old"])),
        running_var_estimator=draw(st.sampled_from(estimators)),
        initial_mean=draw(array_recipes(channels, dtype, ("normal",))),
        initial_var=draw(array_recipes(channels, dtype, ("normal",))),
        affine=draw(st.booleans()),
    )


# --- replicated BatchNorm: a global batch split over R replicas --------------------------------


@dataclass(frozen=True)
class ReplicatedCase:
    """k synchronized steps on R replicas: `ReplicatedCase(...).run()` rebuilds the exact
    `ReplicatedRun`, and `whole()` the `TrainingRun` of plain BatchNorm on the whole batch.

    batches: the global batch of each step, (N, C, *spatial); `sizes` cuts each into the
    replicas' shares (sum = N), and `masked[r]` of replica r's last samples are masked out of
    the statistics (the whole batch is the unmasked samples, in order).
    """

    batches: tuple[ArrayRecipe, ...]
    sizes: tuple[int, ...]
    dtype: str
    eps: float
    momentum: float
    momentum_weighs: str
    running_var_estimator: str
    initial_mean: ArrayRecipe
    initial_var: ArrayRecipe
    grad_y: ArrayRecipe
    affine: bool = True
    masked: tuple[int, ...] | None = None

    def kept(self) -> np.ndarray:
        """The indices, in the global batch, of the samples that count."""
        masked = self.masked or (0,) * len(self.sizes)
        starts = np.cumsum((0, *self.sizes[:-1]))
        return np.concatenate(
            [np.arange(s, s + n - m) for s, n, m in zip(starts, self.sizes, masked, strict=True)]
        )

    def _weight_bias(self) -> tuple[np.ndarray | None, np.ndarray | None]:
        if not self.affine:
            return None, None
        channels = (self.batches[0].shape[1],)
        return _cast(ArrayRecipe(channels, seed=1), self.dtype), _cast(
            ArrayRecipe(channels, seed=2), self.dtype
        )

    def upstream(self) -> np.ndarray:
        """dL/dy of the first step's global output: zero on the masked samples, whose outputs
        the spec's loss does not have."""
        g = np.zeros(self.batches[0].shape)
        kept = self.kept()
        g[kept] = self.grad_y.build()[kept]
        return g.astype(numpy_dtype(self.dtype))

    def run(self) -> ReplicatedRun:
        """The shares of every step, the masks, dL/dy and the evaluation input (the first
        batch) as the replicated backend receives them."""
        cut = lambda a: tuple(np.split(a, np.cumsum(self.sizes)[:-1], axis=0))
        batches = [_cast(b, self.dtype) for b in self.batches]
        weight, bias = self._weight_bias()
        masks = None
        if self.masked is not None:
            masks = tuple(
                np.arange(n) < n - m for n, m in zip(self.sizes, self.masked, strict=True)
            )
        return ReplicatedRun(
            shares=tuple(cut(b) for b in batches),
            eps=self.eps,
            momentum=self.momentum,
            momentum_weighs=self.momentum_weighs,
            running_var_estimator=self.running_var_estimator,
            initial_mean=_cast(self.initial_mean, self.dtype),
            initial_var=_cast(self.initial_var, self.dtype, positive=True),
            weight=weight,
            bias=bias,
            masks=masks,
            grad_y=cut(self.upstream()),
            evaluate=cut(batches[0]),
        )

    def whole(self) -> TrainingRun:
        """Plain BatchNorm's run on the whole batch: every step's unmasked samples."""
        run = self.run()
        kept = self.kept()
        weight, bias = self._weight_bias()
        return TrainingRun(
            batches=tuple(np.concatenate(step)[kept] for step in run.shares),
            eps=self.eps,
            momentum=self.momentum,
            momentum_weighs=self.momentum_weighs,
            running_var_estimator=self.running_var_estimator,
            initial_mean=run.initial_mean,
            initial_var=run.initial_var,
            weight=weight,
            bias=bias,
        )


def replicated_cases(backend: Backend, *, steps: int = 1) -> st.SearchStrategy[ReplicatedCase]:
    """A global batch of N samples (N >= R) split over R of the backend's replica counts:
    even, uneven, one replica with a single sample; where the backend has masks, some shares
    partly or wholly masked out (at least two values still count per channel); and 1 to
    `steps` training steps."""
    if not isinstance(steps, int) or steps < 1:
        raise NormParameterError(f"steps must be an integer >= 1, got {steps!r}")
    if not getattr(backend, "replicated", False):
        raise NormParameterError(f"{backend.name} is not a replicated backend")
    return _replicated_cases(backend, steps)


@functools.lru_cache(maxsize=64)
@st.composite
def _replicated_cases(draw: st.DrawFn, backend: Backend, steps: int) -> ReplicatedCase:
    replicas = draw(st.sampled_from(backend.replicas))
    dtype = draw(dtypes_for(backend, "batch_norm"))
    count = draw(st.integers(replicas, 2 * replicas + 1))
    cuts = (
        draw(
            st.lists(
                st.integers(1, count - 1), min_size=replicas - 1, max_size=replicas - 1, unique=True
            )
        )
        if replicas > 1
        else []
    )
    bounds = (0, *sorted(cuts), count)
    sizes = tuple(b - a for a, b in itertools.pairwise(bounds))
    spatial = tuple(draw(st.lists(st.integers(1, 3), max_size=2)))
    shape = (count, draw(st.integers(1, 3)), *spatial)
    masked = None
    if backend.masks and draw(st.booleans()):
        masked = tuple(draw(st.integers(0, n)) for n in sizes)
        if (count - sum(masked)) * math.prod(spatial) < 2:
            masked = None
    k = draw(st.integers(1, steps))
    kinds = ("normal", "large_offset", "mixed")
    channels = (shape[1],)
    return ReplicatedCase(
        batches=tuple(draw(array_recipes(shape, dtype, kinds)) for _ in range(k)),
        sizes=sizes,
        dtype=dtype,
        eps=draw(eps_values(1e-12)),
        momentum=draw(momenta(False)),
        momentum_weighs=draw(st.sampled_from(["new", "old"])),
        running_var_estimator=draw(st.sampled_from(backend.conventions.running_var_estimators)),
        initial_mean=draw(array_recipes(channels, dtype, ("normal",))),
        initial_var=draw(array_recipes(channels, dtype, ("normal",))),
        grad_y=draw(array_recipes(shape, dtype, ("normal",))),
        affine=draw(st.booleans()),
        masked=masked,
    )


def even_shares_cases(backend: Backend) -> st.SearchStrategy[ReplicatedCase]:
    """One step on R equal shares of well-conditioned data (mean 0 before sampling, at least 8
    values per channel, no masks): the split that every synchronization scheme gets right
    and the data on which a one-pass variance is as accurate as two passes, so that a
    backend whose known deviations cover the harder splits and data is still checked here."""
    if not getattr(backend, "replicated", False):
        raise NormParameterError(f"{backend.name} is not a replicated backend")
    return _even_shares_cases(backend)


@functools.lru_cache(maxsize=64)
@st.composite
def _even_shares_cases(draw: st.DrawFn, backend: Backend) -> ReplicatedCase:
    replicas = draw(st.sampled_from(backend.replicas))
    dtype = draw(dtypes_for(backend, "batch_norm"))
    per_replica = draw(st.integers(2, 3))
    shape = (replicas * per_replica, draw(st.integers(1, 3)), draw(st.integers(2, 3)))
    shape = shape if replicas * per_replica * shape[2] >= 8 else (*shape[:2], 4)
    seeds = st.integers(0, 2**32 - 1)
    scale = draw(st.sampled_from([1.0, 0.5, 2.0]))
    recipe = lambda s, k=1.0: ArrayRecipe(s, "normal", draw(seeds), 0.0, k)
    channels = (shape[1],)
    return ReplicatedCase(
        batches=(recipe(shape, scale),),
        sizes=(per_replica,) * replicas,
        dtype=dtype,
        eps=draw(eps_values(1e-12)),
        momentum=draw(momenta(False)),
        momentum_weighs=draw(st.sampled_from(["new", "old"])),
        running_var_estimator=draw(st.sampled_from(backend.conventions.running_var_estimators)),
        initial_mean=recipe(channels),
        initial_var=recipe(channels),
        grad_y=recipe(shape),
        affine=draw(st.booleans()),
    )
