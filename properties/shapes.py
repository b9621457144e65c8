"""The shapes cases are drawn from: every shape of a regime within a size budget, in tables.

A strategy that draws a shape dimension by dimension makes one Hypothesis choice per
dimension, and each choice costs the engine about as much as a small kernel call. Here a
regime's shapes are enumerated once, when its strategy is built, and grouped by rank (or
number of normalized axes): drawing a shape is two choices, the group and the row, whatever
its rank. Each group is sorted smallest first, so a shape shrinks toward the first group
(the lowest rank) and, within it, toward the fewest elements.

Two kinds of regime exist. The small regime enumerates every shape of up to 6 channels,
batches of up to 4, spatial sizes up to 5 and normalized sizes up to 8. The wide regimes list
where kernels branch and small shapes never look (`REGIMES`): reductions from a few values up
to 2^20, of sizes just below, at and above powers of two and multiples of 8, 16, 32 and 64
(a vectorized loop's remainder, a blocked or tree reduction's last block); channel counts up
to 1024 (prime ones too) with every group count that divides them (so G = 1, G = C and up to
64 groups and beyond); and odd batches up to 64. Each wide regime is one more group of a
table, as likely as a rank of the small regime.

`max_elements` is the size budget: no shape of a table has more elements. A small shape
above it is first halved along its spatial (normalized) axes toward it, as far as the
regime's floors allow, so the budget shrinks shapes rather than discarding them; a wide shape
above it is left out (halving would only repeat the small regime). The `ci` profile's budget
(1024) keeps the wide shapes of at most 1024 values; `dev` and `hunt` spend theirs on the
large ones (properties/options.py).
"""

from __future__ import annotations

import functools
import itertools
import math

from normspec.errors import NormParameterError

Shape = tuple[int, ...]
#: The small regime: the largest batch, channel count, spatial size and normalized size.
SMALL_BATCH, SMALL_CHANNELS, SMALL_SPATIAL, SMALL_NORMALIZED = 4, 6, 5, 8
#: The largest reduction a wide regime draws: 2^20 values.
LARGEST_REDUCTION = 2**20


def edge_sizes(largest: int = LARGEST_REDUCTION) -> tuple[int, ...]:
    """Sizes where vectorized and blocked kernels branch: 2^k - 1, 2^k and 2^k + 1 for
    2^k = 8 .. `largest`, the odd multiples of 8, 16, 32 and 64 around them (24, 48, 96, ...,
    3 * 2^k) and one below and above each, and a few primes (127, 1021, 4093, 65521)."""
    sizes = set()
    k = 8
    while k <= largest:
        sizes.update((k - 1, k, k + 1, 3 * k - 1, 3 * k, 3 * k + 1))
        k *= 2
    sizes.update((127, 1021, 4093, 65521))
    return tuple(sorted(s for s in sizes if 2 <= s <= largest))


#: The spatial sizes of the long-reduction regime of (N, C, H, W): square feature maps of
#: real networks and their odd neighbours.
FEATURE_MAPS = ((7, 7), (14, 14), (28, 28), (56, 56), (112, 112), (32, 32), (64, 64), (31, 33))
#: Channel counts of the many-channels regime: up to 1024, powers of two, their neighbours,
#: and primes (GroupNorm then has only G = 1 and G = C).
MANY_CHANNELS = (16, 31, 32, 64, 96, 127, 128, 255, 256, 257, 512, 1000, 1021, 1024)
#: Batches of the odd-batches regime, up to 64.
ODD_BATCHES = (5, 7, 9, 15, 17, 31, 33, 63, 64)


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
    fit = functools.partial(
        _wide_channel_shape, batch, min_pooled, pooled_includes_batch, max_elements, min_rank
    )
    for key, candidates in enumerate(_wide_channel_regimes(), start=10):
        groups[key] = {s for s in map(fit, candidates) if s is not None}
    return _sorted_groups(groups, max_elements, f"(N, C, *spatial) shape of rank >= {min_rank}")


@functools.cache
def _wide_channel_regimes() -> tuple[tuple[Shape, ...], ...]:
    """The wide regimes of (N, C, *spatial): long reductions, many channels, odd batches."""
    long_reductions = [(n, c, size) for n in (1, 2) for c in (1, 3) for size in edge_sizes()]
    long_reductions += [(n, c, *hw) for n in (1, 2, 8) for c in (1, 3) for hw in FEATURE_MAPS]
    many_channels = [
        (n, c, *spatial)
        for n in (1, 2, 3)
        for c in MANY_CHANNELS
        for spatial in ((1,), (2,), (7,), (3, 3), (4, 4))
    ]
    odd_batches = [
        (n, c, *spatial)
        for n in ODD_BATCHES
        for c in (1, 2, 3, 8)
        for spatial in ((1,), (2,), (5,), (3, 3), (7, 7))
    ]
    return tuple(map(tuple, (long_reductions, many_channels, odd_batches)))


def _wide_channel_shape(batch, min_pooled, pooled_includes_batch, max_elements, min_rank, shape):
    """`shape` as the strategy's constraints want it (a fixed batch, enough values per pooled
    set, the rank), or None where it cannot be or is above the budget."""
    if batch is not None:
        shape = (batch, *shape[1:])
    if len(shape) < min_rank:
        shape = (*shape, *(1,) * (min_rank - len(shape)))
    pooled = math.prod(shape[2:]) * (shape[0] if pooled_includes_batch else 1)
    if pooled < min_pooled or math.prod(shape) > max_elements:
        return None
    return shape


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
    for key, candidates in enumerate(_wide_trailing_regimes(), start=20):
        rows = groups.setdefault(key, set())
        for leading, normalized in candidates:
            if single_row:
                leading = ()
            elif len(leading) < min_leading:
                leading = (1,) * (min_leading - len(leading)) + leading
            if min_batch > 1:
                leading = (max(min_batch, leading[0] if leading else 1), *leading[1:])
            shape = (*leading, *normalized)
            if math.prod(shape) <= max_elements:
                rows.add((shape, normalized))
    return _sorted_groups(groups, max_elements, "(shape, normalized_shape)")


@functools.cache
def _wide_trailing_regimes() -> tuple[tuple[tuple[Shape, Shape], ...], ...]:
    """The wide regimes of (leading, normalized): long rows (one normalized axis of an edge
    size, or two), and many rows of moderate length (odd counts up to 64, and 1000)."""
    long_rows = [(leading, (n,)) for leading in ((), (1,), (2,), (3,)) for n in edge_sizes()]
    long_rows += [((2,), hw) for hw in FEATURE_MAPS] + [((), (3, 1021)), ((2,), (16, 4093))]
    many_rows = [
        (leading, (n,))
        for leading in (*((b,) for b in (*ODD_BATCHES, 1000)), (2, 33), (4, 17))
        for n in (7, 8, 9, 31, 32, 33, 64, 65)
    ]
    return tuple(map(tuple, (long_rows, many_rows)))


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
    groups[10] = {
        (shape, dim)
        for shape in WIDE_WEIGHTS
        for dim in (None, 0)
        if math.prod(shape) <= max_elements
    }
    return _sorted_groups(groups, max_elements, "weight_norm shape")


#: The wide regime of WeightNorm: the weights of real layers (a linear layer's (out, in), a
#: convolution's (out, in, k, k)) and long vectors of edge sizes.
WIDE_WEIGHTS = (
    (64, 3, 3, 3),
    (64, 64, 3, 3),
    (128, 64, 3, 3),
    (256, 128, 1, 1),
    (512, 256, 3, 3),
    (768, 768),
    (1024, 4096),
    (33, 65),
    *((n,) for n in edge_sizes(2**16)),
)


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
