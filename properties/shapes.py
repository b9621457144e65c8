"""The shapes cases are drawn from: every shape of a regime within a size budget, in tables.

A strategy that draws a shape dimension by dimension makes one Hypothesis choice per
dimension, and each choice costs the engine about as much as a small kernel call. Here a
regime's shapes are enumerated once, when its strategy is built, and grouped by rank (or
number of normalized axes): drawing a shape is two choices, the group and the row, whatever
its rank. Each group is sorted smallest first, so a shape shrinks toward the first group
(the lowest rank) and, within it, toward the fewest elements.

Only the small regime exists so far: up to 6 channels, batches of up to 4, spatial sizes up
to 5 and normalized sizes up to 8. `max_elements` is the size budget: no shape of a table
has more elements, and a shape above it is first halved along its spatial (normalized) axes
toward it, as far as the regime's floors allow, so the budget shrinks shapes rather than
discarding them. A new regime (sizes near powers of two, many channels, the shapes of real
models) is one more function returning groups of shapes, joined to these with `st.one_of`.
"""

from __future__ import annotations

import functools
import itertools
import math

from normspec.errors import NormParameterError

Shape = tuple[int, ...]
#: The small regime: the largest batch, channel count, spatial size and normalized size.
SMALL_BATCH, SMALL_CHANNELS, SMALL_SPATIAL, SMALL_NORMALIZED = 4, 6, 5, 8


def _order(row: tuple) -> tuple:
    """A row's place in its table: fewest elements first, then the row itself (None first)."""
    shape = row[0] if isinstance(row[0], tuple) else row
    return math.prod(shape), tuple(-1 if v is None else v for v in row)


def _sorted_groups(groups: dict[int, set], max_elements: int, what: str) -> tuple[tuple, ...]:
    """The non-empty groups, in key order, each sorted by `_order`."""
    tables = tuple(tuple(sorted(rows, key=_order)) for _, rows in sorted(groups.items()))
    tables = tuple(t for t in tables if t)
    if not tables:
        raise NormParameterError(f"no {what} has at most {max_elements} elements")
    return tables


@functools.cache
def channel_shape_groups(
    min_rank: int,
    *,
    max_elements: int,
    batch: int | None = None,
    min_pooled: int = 1,
    pooled_includes_batch: bool = False,
) -> tuple[tuple[Shape, ...], ...]:
    """(N, C, *spatial) of rank min_rank..5, one group per rank, with at least `min_pooled`
    values per pooled set (spatial, or batch and spatial) and at most `max_elements` values."""
    groups: dict[int, set] = {}
    batches = (batch,) if batch is not None else range(1, SMALL_BATCH + 1)
    for rank in range(min_rank, 6):
        rows = groups.setdefault(rank, set())
        sizes = range(1, SMALL_SPATIAL + 1)
        for n, c, spatial in itertools.product(
            batches, range(1, SMALL_CHANNELS + 1), itertools.product(sizes, repeat=rank - 2)
        ):
            shape = _channel_shape(
                n, c, spatial, batch, min_pooled, pooled_includes_batch, max_elements
            )
            if math.prod(shape) <= max_elements:
                rows.add(shape)
    return _sorted_groups(groups, max_elements, f"(N, C, *spatial) shape of rank >= {min_rank}")


def _channel_shape(n, c, spatial, batch, min_pooled, pooled_includes_batch, max_elements):
    """The shape (n, c, *spatial) with enough values per pooled set, halved toward the
    budget along its spatial axes."""
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
    while math.prod(shape) > max_elements and any(s > floor for s in shape[2:]):
        shape = (n, c, *(max(floor, s // 2) for s in shape[2:]))
    return shape


@functools.cache
def trailing_shape_groups(
    *, max_elements: int, single_row: bool = False, min_leading: int = 0, min_batch: int = 1
) -> tuple[tuple[tuple[Shape, Shape], ...], ...]:
    """(shape, normalized_shape), normalized_shape a non-empty suffix of shape with at least
    2 values, one group per (number of normalized axes, number of leading axes)."""
    groups: dict[int, set] = {}
    sizes = range(1, SMALL_NORMALIZED + 1)
    for k, leading_rank in itertools.product((1, 2, 3), range(max(min_leading, 0), 3)):
        rows = groups.setdefault(k * 3 + leading_rank, set())
        leading_sizes = (1,) if single_row else range(1, SMALL_BATCH + 1)
        for normalized, leading in itertools.product(
            itertools.product(sizes, repeat=k),
            itertools.product(leading_sizes, repeat=leading_rank),
        ):
            if math.prod(normalized) < 2:
                normalized = (*normalized[:-1], normalized[-1] + 1)
            while math.prod(leading) * math.prod(normalized) > max_elements and max(normalized) > 1:
                normalized = tuple(max(1, s // 2) for s in normalized)
            shape = (*leading, *normalized)
            if min_batch > 1 and shape[0] < min_batch:
                shape = (min_batch, *shape[1:])
            if math.prod(shape) <= max_elements:
                rows.add((shape, normalized))
    return _sorted_groups(groups, max_elements, "(shape, normalized_shape)")


@functools.cache
def weight_shape_groups(*, max_elements: int) -> tuple[tuple[tuple[Shape, int | None], ...], ...]:
    """(shape of v, dim): v of rank 1 to 4, sizes up to 6, dim None or an axis of v; one
    group per rank."""
    groups: dict[int, set] = {}
    for rank in range(1, 5):
        rows = groups.setdefault(rank, set())
        for shape in itertools.product(range(1, SMALL_CHANNELS + 1), repeat=rank):
            if math.prod(shape) <= max_elements:
                rows.update((shape, dim) for dim in (None, *range(rank)))
    return _sorted_groups(groups, max_elements, "weight_norm shape")


@functools.cache
def with_group_counts(groups: tuple[tuple[Shape, ...], ...]) -> tuple[tuple[tuple, ...], ...]:
    """Each shape of `groups` with each valid group count of its channels: (shape, G)."""
    return tuple(
        tuple(sorted(((s, g) for s in rows for g in divisors(s[1])), key=_order)) for rows in groups
    )


@functools.cache
def with_min_batch(groups: tuple[tuple[Shape, ...], ...], min_batch: int, max_elements: int):
    """The shapes of `groups` with a batch of at least `min_batch`, within the budget."""
    raised = lambda s: (max(s[0], min_batch), *s[1:])
    grown = {
        i: {raised(s) for s in rows if math.prod(raised(s)) <= max_elements}
        for i, rows in enumerate(groups)
    }
    return _sorted_groups(grown, max_elements, f"shape with a batch of at least {min_batch}")


def divisors(channels: int) -> tuple[int, ...]:
    """The valid group counts of GroupNorm for `channels`: its divisors, smallest first."""
    if channels < 1:
        raise NormParameterError(f"channels must be >= 1, got {channels}")
    return tuple(g for g in range(1, channels + 1) if channels % g == 0)
