"""Hypothesis strategies for normalization cases.

A case is a value (properties/recipes.py): its `repr` rebuilds the exact input. The
strategies here decide which cases are drawn, and how they shrink; properties/drawing.py
holds the machinery that makes them cheap to draw (tables in one choice, plans that draw once
per example what its cases share).

Every strategy is built once per combination of arguments (cached) and reused. A property
checks several cases per example (`several`): the dtype, a row of values (kind, offset,
scale), eps, a row of parameters (affine or not, and their magnitudes) and a seed are drawn
once per example, and each case draws only its shape (properties/shapes.py): an example is
one configuration tried on many shapes. Across examples every combination is as likely as if
each case drew its own, and NumPy builds each case's arrays from a seed mixed from the
example's and the case's own choices. Tables list their simplest row first, so each choice
shrinks on its own toward it: shapes toward small, the kind toward "normal" with offset 0 and
scale 1, eps toward 1e-5, the parameters toward none, the dtype toward float64; and Hypothesis
shrinks a failing list to the case that fails.

The size budget bounds the elements of every drawn input: `max_size` where a strategy is
given one, else the run's budget (`normspec check --max-elements`, `use_size_budget`). A new
regime of shapes or values is a new group of rows in a table: `Table` keeps every group as
likely as another, whatever its size.
"""

from __future__ import annotations

import functools
import itertools
import math
from dataclasses import dataclass

import numpy as np
from hypothesis import strategies as st

from backends.protocol import Backend
from normspec.errors import NormParameterError
from normspec.spec import weight_norm_g_shape
from normspec.vocabulary import ReplicatedRun, TrainingRun
from properties import shapes
from properties.drawing import PLANS, Plan, Table, one_of, planned, several, table, use_search
from properties.recipes import (
    DTYPES,
    KINDS,
    ArrayRecipe,
    Case,
    TrainingCase,
    cast_recipe,
    numpy_dtype,
)

__all__ = [
    "DTYPES",
    "GENERAL_KINDS",
    "KINDS",
    "WIDE_KINDS",
    "ArrayRecipe",
    "Case",
    "ReplicatedCase",
    "Table",
    "TrainingCase",
    "array_recipes",
    "cases",
    "channel_shapes",
    "dtypes_for",
    "eps_values",
    "group_counts",
    "momenta",
    "numpy_dtype",
    "permutation",
    "replicated_cases",
    "several",
    "size_budget",
    "training_cases",
    "training_or_evaluation",
    "upstream",
    "upstream_gradients",
    "use_search",
    "use_size_budget",
]

EPS_EDGES = (1e-5, 1e-3, 0.0, 1e-12, 1.0, 0.1)
#: The largest offset and scale per dtype: beyond them half-precision inputs overflow.
MAX_OFFSET = {"float64": 1e6, "float32": 1e6, "float16": 1e2, "bfloat16": 1e2}
MAX_SCALE = {"float64": 1e2, "float32": 1e2, "float16": 10.0, "bfloat16": 10.0}
#: Offsets and scales of the well-conditioned kinds, the simplest first.
OFFSETS = (0.0, 1.0, -2.0, 0.5, 5.0, -10.0, 7.25, -0.125, 3.3, -6.0)
SCALES = (1.0, 0.01, 0.3, 2.0, 10.0, 0.05, 40.0, 100.0)
#: The large offsets and small spreads of the ill-conditioned kind.
LARGE_OFFSETS = (1e2, 1e3, 1e4, 1e5, -1e3)
SMALL_SPREADS = (1.0, 0.1, 1e-2)
#: (offset, scale) of an affine parameter, running statistic or upstream gradient.
PARAMETER_VALUES = ((0.0, 1.0), (1.0, 0.1), (-2.0, 1.0), (0.5, 3.0), (5.0, 0.01), (0.0, 10.0))
#: The kinds every property draws unless it names its own: those whose intermediates fit
#: any accumulation dtype of float32 or wider (the others: `WIDE_KINDS`).
GENERAL_KINDS = ("normal", "large_offset", "constant", "constant_samples", "mixed")
#: The kinds of the wide value regimes: "magnitude", normal data scaled across each dtype's
#: whole range (`MAGNITUDES`), centred or on an offset of the same magnitude a thousand
#: spreads away; and "outlier", one value OUTLIER spreads from the rest of a set. Where their
#: intermediates do not fit, a result outside its bound is a declared limitation
#: (normspec/tolerance.py).
WIDE_KINDS = ("magnitude", "outlier")
#: log10 of the smallest and largest scale of the magnitude regime, per dtype: from near the
#: smallest normal value to a few normal deviates below the largest finite one (float64 stops
#: at 1e150, where the float64 oracle's own squares would overflow).
MAGNITUDES = {
    "float64": (-150, 150),
    "float32": (-37, 37),
    "bfloat16": (-37, 37),
    "float16": (-4, 4),
}
#: The magnitude regime's grid: 2 * MAGNITUDE_STEPS + 1 exponents, evenly over each range.
MAGNITUDE_STEPS = 20
#: The momenta tried first; any other value in [0, 1] comes from a grid.
MOMENTUM_EDGES = (0.1, 0.0, 1.0, 0.99)
#: The seed an example's cases mix their own into.
SEEDS = st.integers(0, 2**32 - 1)
#: The size budget of a run when none is set: the small workload.
DEFAULT_SIZE_BUDGET = 1024

_budget = [DEFAULT_SIZE_BUDGET]


def use_size_budget(max_elements: int) -> None:
    """Bound every input drawn from now on to `max_elements` elements (the run's budget,
    set once per run from `--max-elements`, as Hypothesis loads its profile)."""
    if not isinstance(max_elements, int) or max_elements < 2:
        raise NormParameterError(f"the size budget must be an integer >= 2, got {max_elements!r}")
    _budget[0] = max_elements


def size_budget() -> int:
    """The run's size budget: the most elements of any drawn input."""
    return _budget[0]


def _bounded(max_size: int | None) -> int:
    return size_budget() if max_size is None else min(max_size, size_budget())


# --- tables of values ------------------------------------------------------------------------


@functools.cache
def _values(kinds: tuple[str, ...]) -> st.SearchStrategy[tuple[str, float, float]]:
    """(kind, offset, scale): every kind as likely; per kind the simplest pair first, then the
    pairs by how far they are from it."""
    groups = []
    for kind in kinds:
        if kind == "magnitude":  # (kind, step of the grid, centred or not), 1 first
            steps = sorted(range(-MAGNITUDE_STEPS, MAGNITUDE_STEPS + 1), key=abs)
            groups.append(tuple((kind, k, shifted) for k in steps for shifted in (0, 1)))
            continue
        if kind == "large_offset":
            pairs = [(o, s) for o in LARGE_OFFSETS for s in SMALL_SPREADS]
        else:
            pairs = sorted(
                ((o, s) for o in OFFSETS for s in SCALES),
                key=lambda p: OFFSETS.index(p[0]) + SCALES.index(p[1]),
            )
        groups.append(tuple((kind, o, s) for o, s in pairs))
    return table(tuple(groups))


@functools.cache
def _parameters(affine: bool | None) -> st.SearchStrategy:
    """None (no affine parameters) or ((weight offset, scale), (bias offset, scale)): None
    first where it is allowed, as likely as all the magnitudes together."""
    if affine is False:
        return st.just(None)
    pairs = tuple(
        sorted(
            ((w, b) for w in PARAMETER_VALUES for b in PARAMETER_VALUES),
            key=lambda p: PARAMETER_VALUES.index(p[0]) + PARAMETER_VALUES.index(p[1]),
        )
    )
    return table((pairs,) if affine else ((None,), pairs))


def _recipe(shape, row, seed: int, dtype: str) -> ArrayRecipe:
    """The recipe of a values row, its offset and scale clipped to what `dtype` holds."""
    kind, offset, scale = row
    if kind == "magnitude":
        return _magnitude_recipe(shape, offset, scale, seed, dtype)
    offset = math.copysign(min(abs(offset), MAX_OFFSET[dtype]), offset)
    return ArrayRecipe(tuple(shape), kind, seed % 2**32, offset, min(scale, MAX_SCALE[dtype]))


def _magnitude_recipe(shape, step: int, shifted: int, seed: int, dtype: str) -> ArrayRecipe:
    """Normal data at 10^e, e the grid's `step` over the dtype's range (`MAGNITUDES`):
    centred (N(0, 10^e)), or shifted (10^e + N(0, 10^(e-3)))."""
    low, high = MAGNITUDES[dtype]
    exponent = round(step / MAGNITUDE_STEPS * (high if step >= 0 else -low))
    magnitude = 10.0**exponent
    offset, scale = (magnitude, magnitude * 1e-3) if shifted else (0.0, magnitude)
    return ArrayRecipe(tuple(shape), "normal", seed % 2**32, offset, scale)


def _check_kinds(kinds: tuple[str, ...]) -> None:
    allowed = (*GENERAL_KINDS, *WIDE_KINDS)
    unknown = set(kinds) - set(allowed)
    if unknown or not kinds:
        raise NormParameterError(f"unknown data kinds {sorted(unknown)}; allowed: {allowed}")


# --- scalar strategies -----------------------------------------------------------------------


@functools.cache
def eps_values(minimum: float = 0.0) -> st.SearchStrategy[float]:
    """eps: the edge values, as likely as all others together, then a log-uniform grid over
    max(minimum, 1e-12) .. 1; shrinks to 1e-5."""
    if not 0 <= minimum <= 1:
        raise NormParameterError(f"minimum eps must be in [0, 1], got {minimum}")
    edges = tuple(e for e in EPS_EDGES if e >= minimum)
    low = math.log10(max(minimum, 1e-12))
    grid = tuple(e for e in (float(10.0**k) for k in np.linspace(low, 0.0, 48)) if e >= minimum)
    return table((edges, grid))


@functools.cache
def momenta(allow_none: bool) -> st.SearchStrategy[float | None]:
    """momentum in [0, 1]: 0.1, the edges 0 and 1, 0.99, a grid (as likely as the edges), and
    None where supported (as likely as a number); shrinks to 0.1."""
    grid = tuple(round(float(m), 6) for m in np.linspace(0.0, 1.0, 41))
    if not allow_none:
        return table((MOMENTUM_EDGES, grid))
    return st.one_of(table((MOMENTUM_EDGES, grid)), st.none())


def dtypes_for(backend: Backend, norm: str) -> st.SearchStrategy[str]:
    """The dtypes `backend` supports for `norm`, float64 first so that shrinking reaches it."""
    names = tuple(d for d in DTYPES if backend.supports(norm, d))
    if not names:
        raise NormParameterError(f"{backend.name} supports no dtype for {norm}")
    return one_of(names)


def array_recipes(
    shape: tuple[int, ...], dtype: str = "float64", kinds: tuple[str, ...] = GENERAL_KINDS
) -> st.SearchStrategy[ArrayRecipe]:
    """An array of `shape` of one of `kinds`, with offsets and scales the dtype can hold."""
    _check_kinds(tuple(kinds))
    if dtype not in MAX_OFFSET:
        raise NormParameterError(f"unknown dtype {dtype!r}; allowed: {DTYPES}")
    return _array_recipes(tuple(shape), dtype, tuple(kinds))


@functools.lru_cache(maxsize=256)
def _array_recipes(shape, dtype, kinds) -> st.SearchStrategy[ArrayRecipe]:
    return st.tuples(_values(kinds), SEEDS).map(
        lambda drawn: _recipe(shape, drawn[0], drawn[1], dtype)
    )


@functools.cache
def upstream_gradients() -> st.SearchStrategy[tuple[float, float]]:
    """The (offset, scale) of an upstream gradient dL/dy of normal data, drawn before the
    case; `upstream` makes its recipe. Its magnitudes fit every dtype."""
    return one_of(PARAMETER_VALUES)


def upstream(drawn: tuple[float, float], case: Case) -> ArrayRecipe:
    """The upstream gradient `drawn` (by `upstream_gradients`) for `case`: shaped like its
    output, seeded from its own seed."""
    offset, scale = drawn
    return ArrayRecipe(case.x.shape, "normal", (case.x.seed + 7) % 2**32, offset, scale)


@functools.cache
def channel_shapes(
    min_rank: int,
    *,
    max_size: int,
    batch: int | None = None,
    min_pooled: int = 1,
    pooled_includes_batch: bool = False,
) -> st.SearchStrategy[tuple[int, ...]]:
    """(N, C, *spatial) with rank in [min_rank, 5], each rank as likely, at most max_size
    elements, and at least `min_pooled` values per pooled set (spatial, or batch and
    spatial)."""
    return table(
        shapes.channel_shape_groups(
            min_rank,
            max_elements=max_size,
            batch=batch,
            min_pooled=min_pooled,
            pooled_includes_batch=pooled_includes_batch,
        )
    )


def group_counts(channels: int) -> st.SearchStrategy[int]:
    """A divisor of `channels`: the valid group counts of GroupNorm."""
    return one_of(shapes.divisors(channels))


def permutation(index: int, n: int) -> np.ndarray:
    """A permutation of range(n): for index < n!, the one numbered `index` in lexicographic
    order (0 is the identity, so an index drawn with `st.integers` shrinks toward few
    displaced elements); beyond, a shuffle seeded by `index`."""
    if index >= math.factorial(n):
        return np.random.default_rng(index).permutation(n)
    rest, order = list(range(n)), []
    for k in range(n, 0, -1):
        position, index = divmod(index, math.factorial(k - 1))
        order.append(rest.pop(position))
    return np.array(order)


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
    kinds: tuple[str, ...] = GENERAL_KINDS,
    dtype: str | None = None,
    max_size: int | None = None,
    min_batch: int = 1,
    dtypes: tuple[str, ...] | None = None,
) -> st.SearchStrategy[Case]:
    """A valid call of `norm` for `backend`.

    affine: True, False or None (either). single_instance: one sample (and one row for
    layer_norm/rms_norm), as affine recovery needs. training=False draws running statistics
    (batch_norm, instance_norm). min_eps > 0 keeps zero-variance sets finite. dtype: one the
    backend supports for `norm`, or None to draw one, from `dtypes` if given (those of two
    backends), else from all the backend supports. max_size bounds the elements of x (the
    run's size budget when None, and never above it); min_batch the batch size. Arguments
    are checked here, when the strategy is built, with an error that names the argument and
    what is allowed; the strategy is built once per combination and reused.
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
    _check_kinds(tuple(kinds))
    for name in (dtype,) if dtype is not None else dtypes or ():
        if not backend.supports(norm, name):
            supported = [d for d in DTYPES if backend.supports(norm, d)]
            raise NormParameterError(
                f"{backend.name} does not support {norm} in {name!r}; allowed: {supported}"
            )
    for name, value in (("max_size", max_size), ("min_batch", min_batch)):
        if value is not None and (not isinstance(value, int) or value < 1):
            raise NormParameterError(f"{name} must be an integer >= 1, got {value!r}")
    return planned(
        _case_plan(
            norm,
            backend,
            affine,
            single_instance,
            min_eps,
            training,
            tuple(kinds),
            (dtype,) if dtype else tuple(dtypes) if dtypes else None,
            _bounded(max_size),
            min_batch,
        )
    )


@functools.lru_cache(maxsize=512)
def _case_plan(
    norm, backend, affine, single_instance, min_eps, training, kinds, dtypes, max_size, min_batch
) -> Plan:
    family = FAMILIES[norm]
    dtypes = one_of(dtypes) if dtypes else dtypes_for(backend, norm)
    if family == "weight":
        layout = table(shapes.weight_shape_groups(max_elements=max_size))
        shared = st.tuples(dtypes, _values(kinds), _parameters(True), SEEDS)
        each = st.tuples(layout)
        return Plan(shared, each, functools.partial(_weight_norm_case, norm))
    if family == "trailing":
        groups = shapes.trailing_shape_groups(
            max_elements=max_size,
            single_row=single_instance,
            min_leading=1 if min_batch > 1 else 0,
            min_batch=min_batch,
        )
    else:
        groups = shapes.channel_shape_groups(
            3 if norm == "instance_norm" else 2,
            max_elements=max_size,
            batch=1 if single_instance else None,
            min_pooled=2 if training else 1,
            pooled_includes_batch=norm == "batch_norm" and training,
        )
        if min_batch > 1:
            groups = shapes.with_min_batch(groups, min_batch, max_size)
        if norm == "group_norm":
            groups = shapes.with_group_counts(groups)
    shared = st.tuples(dtypes, _values(kinds), eps_values(min_eps), _parameters(affine), SEEDS)
    drawn = [table(groups)]
    if not training:
        drawn.append(_parameters(True))  # the running statistics
    return Plan(shared, st.tuples(*drawn), functools.partial(_case, norm, family))


@functools.lru_cache(maxsize=256)
def training_or_evaluation(norm: str, backend: Backend, **options) -> st.SearchStrategy[Case]:
    """`cases` in training mode or, as likely, in evaluation mode (running statistics);
    shrinks toward training mode. Each case of an example picks its own mode."""
    training, evaluation = (
        PLANS[cases(norm, backend, training=mode, **options)] for mode in (True, False)
    )
    # the mode is named in the draw, not given as its plan: a case's seed mixes the repr of
    # its choices, which must be the same in every process
    each = st.one_of(
        training.each.map(lambda e: ("training", e)),
        evaluation.each.map(lambda e: ("evaluation", e)),
    )
    plans = {"training": training, "evaluation": evaluation}
    return planned(Plan(training.shared, each, functools.partial(_either, plans)))


def _either(plans: dict[str, Plan], shared: tuple, each: tuple, seed: int) -> Case:
    mode, drawn = each
    return plans[mode].build(shared, drawn, seed)


def _without_constant_sets(row: tuple[str, float, float], eps: float) -> tuple:
    """With eps = 0, a constant set is 0/0: a convention (see the conventions properties),
    not a number, so such cases draw normal data instead."""
    if eps == 0.0 and row[0] in ("constant", "constant_samples"):
        return ("normal", *row[1:])
    return row


def _parameter(shape, pair, seed: int, dtype: str) -> ArrayRecipe:
    return _recipe(shape, ("normal", *pair), seed, dtype)


def _case(norm: str, family: str, shared: tuple, each: tuple, seed: int) -> Case:
    """The case that a draw of `_case_plan` describes; its arrays are seeded from `seed`."""
    dtype, row, eps, parameters, _ = shared
    layout, *running = each
    fields: dict = {}
    if family == "trailing":
        shape, normalized = layout
        fields["normalized_shape"] = normalized
        param_shape = normalized
    else:
        shape = layout
        if norm == "group_norm":
            shape, groups = layout
            if eps == 0.0 and groups == shape[1] and math.prod(shape[2:]) < 2:
                # 0/0 needs a set of >= 2 values: two channels in one group
                shape, groups = (shape[0], max(shape[1], 2), *shape[2:]), 1
            fields["num_groups"] = groups
        param_shape = (shape[1],)
    if running:
        fields.update(
            training=False,
            running_mean=_parameter(param_shape, running[0][0], seed + 3, dtype),
            running_var=_parameter(param_shape, running[0][1], seed + 4, dtype),
        )
    if parameters is not None:
        fields["weight"] = _parameter(param_shape, parameters[0], seed + 1, dtype)
        if norm != "rms_norm":
            fields["bias"] = _parameter(param_shape, parameters[1], seed + 2, dtype)
    x = _recipe(shape, _without_constant_sets(row, eps), seed, dtype)
    return Case(norm=norm, x=x, dtype=dtype, eps=eps, **fields)


def _weight_norm_case(norm: str, shared: tuple, each: tuple, seed: int) -> Case:
    """WeightNorm: v of rank 1 to 4, g shaped like v with the norm axes of size 1, no eps."""
    dtype, row, parameters, _ = shared
    ((shape, dim),) = each
    return Case(
        norm=norm,
        x=_recipe(shape, _without_constant_sets(row, 0.0), seed, dtype),
        dtype=dtype,
        eps=0.0,
        dim=dim,
        weight=_parameter(weight_norm_g_shape(shape, dim), parameters[0], seed + 1, dtype),
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
    return planned(
        _training_plan(
            norm,
            backend,
            _bounded(max_size),
            None if dtypes is None else tuple(dtypes),
            None if estimators is None else tuple(estimators),
            cumulative_average,
        )
    )


#: The kinds of the batches of a training case: their statistics must be numbers.
TRAINING_KINDS = ("normal", "large_offset", "mixed")


@functools.lru_cache(maxsize=256)
def _training_plan(
    norm: str,
    backend: Backend,
    max_size: int,
    dtypes: tuple[str, ...] | None,
    estimators: tuple[str, ...] | None,
    cumulative_average: bool | None,
) -> Plan:
    conventions = backend.conventions
    estimators = estimators or conventions.running_var_estimators
    if cumulative_average is None:
        cumulative_average = conventions.cumulative_average
    layout = channel_shapes(
        3 if norm == "instance_norm" else 2,
        max_size=max_size,
        min_pooled=2,
        pooled_includes_batch=norm == "batch_norm",
    )
    shared = st.tuples(
        one_of(dtypes) if dtypes else dtypes_for(backend, norm),
        eps_values(1e-12),
        one_of(("new", "old")),
        one_of(tuple(estimators)),
        st.booleans(),
        _parameters(True),
        SEEDS,
    )
    each = st.tuples(
        layout,
        st.lists(_values(TRAINING_KINDS), min_size=1, max_size=4),
        momenta(cumulative_average),
    )
    return Plan(shared, each, functools.partial(_training_case, norm))


def _training_case(norm: str, shared: tuple, each: tuple, seed: int) -> TrainingCase:
    dtype, eps, weighs, estimator, affine, initial, _ = shared
    shape, rows, momentum = each
    channels = (shape[1],)
    return TrainingCase(
        norm=norm,
        batches=tuple(_recipe(shape, row, seed + 8 * k, dtype) for k, row in enumerate(rows)),
        dtype=dtype,
        eps=eps,
        momentum=momentum,
        momentum_weighs=weighs,
        running_var_estimator=estimator,
        initial_mean=_parameter(channels, initial[0], seed + 1, dtype),
        initial_var=_parameter(channels, initial[1], seed + 2, dtype),
        affine=affine,
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
        return cast_recipe(ArrayRecipe(channels, seed=1), self.dtype), cast_recipe(
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
        batches = [cast_recipe(b, self.dtype) for b in self.batches]
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
            initial_mean=cast_recipe(self.initial_mean, self.dtype),
            initial_var=cast_recipe(self.initial_var, self.dtype, positive=True),
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
