"""How cases are drawn: tables of rows in one choice, and plans that draw once per example what
its cases share, then a few choices per case.

Hypothesis spends about as long on each choice it makes as a small kernel call takes, and
about as long on each example as on a dozen choices. The properties' strategies
(properties/strategies.py) are therefore built from two pieces:

* `Table`: rows in groups, drawn in one choice, every group as likely as another, shrinking
  toward the first row of the first group;
* a plan (`Plan`): what an example draws once (`shared`: the dtype, the scalar parameters and
  a seed) and what each of its cases draws (`each`: its shape), and how to `build` a case.
  `several` draws a list of cases of a plan, so an example checks many cases for the cost of
  few choices; each case's seed mixes the example's seed with the case's own choices, so
  shrinking away the other cases of a list leaves the failing one as it was.
"""

from __future__ import annotations

import functools
import zlib
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

from hypothesis import strategies as st

from normspec.errors import NormParameterError

__all__ = [
    "CASES_PER_EXAMPLE",
    "PLANS",
    "Plan",
    "Table",
    "one_of",
    "planned",
    "several",
    "table",
    "use_search",
]

#: `several` draws up to this many lists of up to this many cases (`use_search`): the
#: engine's own work per example costs as much as a few cases, so a long search (hunt)
#: shares it among about 27 (Hypothesis averages about 4.5 and 6 items for such lists), dev
#: among about 4.5, and ci checks one case per example: its cost is the backends' (a
#: compiling engine such as Flax pays a compilation per new shape), and its examples as many
#: as before, so that the gate keeps its time.
CASES_PER_EXAMPLE = {"long": (8, 16), "short": (1, 8), "single": (1, 1)}
_search = ["long"]


def use_search(search: str) -> None:
    """ "long" (hunt), "short" (dev) or "single" (ci) examples from now on
    (`CASES_PER_EXAMPLE`)."""
    if search not in CASES_PER_EXAMPLE:
        raise NormParameterError(f"unknown search {search!r}; allowed: {list(CASES_PER_EXAMPLE)}")
    _search[0] = search


class Table:
    """Rows in groups, drawn in one choice (`strategy`).

    Every group is as likely as another and every row of a group as likely as another,
    however many rows each has: the regimes of a table do not crowd each other out. The
    index shrinks toward the first row of the first group, so a table lists its simplest
    row first (and each group its simplest first).
    """

    def __init__(self, groups: tuple[tuple, ...]) -> None:
        self.groups = tuple(tuple(g) for g in groups if g)
        if not self.groups:
            raise NormParameterError("a table needs at least one row")
        self.width = max(len(g) for g in self.groups)
        if len(self.groups) == 1 and self.width == 1:
            self.strategy = st.just(self.groups[0][0])
        else:
            self.strategy = st.sampled_from(range(len(self.groups) * self.width)).map(self.row)

    def row(self, index: int):
        """The row that `index` draws."""
        group, offset = divmod(index, self.width)
        rows = self.groups[group]
        return rows[offset * len(rows) // self.width]


@functools.cache
def table(groups: tuple[tuple, ...]) -> st.SearchStrategy:
    return Table(groups).strategy


def one_of(values: tuple) -> st.SearchStrategy:
    """Each of `values` as likely, shrinking toward the first."""
    return table((values,))


@dataclass(frozen=True, eq=False)
class Plan:
    """How cases are drawn: `shared` once per example (the dtype, the scalar parameters and a
    seed), `each` once per case, and `build(shared, each, seed)` the case, `seed` mixed from
    both."""

    shared: st.SearchStrategy
    each: st.SearchStrategy
    build: Callable


#: The plan of each strategy `cases`, `training_cases` or `training_or_evaluation` returned.
PLANS: dict[st.SearchStrategy, Plan] = {}


def _case_seed(shared: tuple, each: object, occurrence: int = 0) -> int:
    """The seed of one case: the example's seed mixed with the case's own choices (stable
    across processes, unlike hash()) and how many equal cases came before it."""
    return zlib.crc32(f"{each!r}#{occurrence}".encode(), shared[-1])


@functools.cache
def planned(plan: Plan) -> st.SearchStrategy:
    """The strategy of one case of `plan`, remembered for `several`."""
    strategy = st.tuples(plan.shared, plan.each).map(
        lambda drawn: plan.build(drawn[0], drawn[1], _case_seed(*drawn))
    )
    PLANS[strategy] = plan
    return strategy


def _lists(element: st.SearchStrategy, search: str) -> st.SearchStrategy[list]:
    """Lists of lists of `element`, flattened: shrinking deletes any element, down to one."""
    lists, per_list = CASES_PER_EXAMPLE[search]
    inner = st.lists(element, min_size=1, max_size=per_list)
    if lists == 1:
        return inner
    return st.lists(inner, min_size=1, max_size=lists).map(_flattened)


def _flattened(lists: list[list]) -> list:
    return [item for items in lists for item in items]


def several(*strategies: st.SearchStrategy) -> st.SearchStrategy[list]:
    """A list of draws (at least one; how many on average: `use_search`): of `strategies[0]`,
    or of a tuple of one draw of each of `strategies`. A property checks each; shrinking keeps
    the one that fails. Cases of `cases`, `training_cases` and `training_or_evaluation` share
    their example's dtype, scalar parameters and seed, so that each costs Hypothesis only its
    own few choices."""
    return _several(strategies, _search[0])


@functools.lru_cache(maxsize=512)
def _several(strategies: tuple[st.SearchStrategy, ...], search: str) -> st.SearchStrategy[list]:
    first, extras = strategies[0], strategies[1:]
    plan = PLANS.get(first)
    if plan is None:
        return _lists(first if not extras else st.tuples(*strategies), search)
    element = plan.each if not extras else st.tuples(plan.each, *extras)
    return st.tuples(plan.shared, _lists(element, search)).map(
        functools.partial(_assemble, plan, bool(extras))
    )


def _assemble(plan: Plan, with_extras: bool, drawn: tuple) -> list:
    shared, items = drawn
    seen: Counter[str] = Counter()
    result = []
    for item in items:
        each = item[0] if with_extras else item
        key = repr(each)
        case = plan.build(shared, each, _case_seed(shared, each, seen[key]))
        seen[key] += 1
        result.append((case, *item[1:]) if with_extras else case)
    return result
