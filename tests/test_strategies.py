"""Meta tests of the strategies (after array-api-tests' meta_tests): every generated case is a
valid call of the spec, rebuilds from its repr, and keeps the promises its strategy documents.

A strategy that drew an invalid case would turn a property into a test of the error path; one
whose repr did not rebuild the case would make a failure unreproducible.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import find, given, settings
from hypothesis import strategies as st

from backends.numpy_backend import NumpyBackend
from normspec import reference
from normspec.errors import NormParameterError
from normspec.tolerance import Precision
from normspec.vocabulary import NORMS
from properties import strategies
from properties.drawing import PLANS, _assemble
from properties.strategies import (
    DEFAULT_SIZE_BUDGET,
    KINDS,
    ArrayRecipe,
    Case,
    Table,
    TrainingCase,
    array_recipes,
    cases,
    channel_shapes,
    eps_values,
    group_counts,
    several,
    training_cases,
    use_size_budget,
)

BACKEND = NumpyBackend()
META = settings(max_examples=30, deadline=None)
#: The names a repr may use: printing a case must be enough to rebuild it.
REPR_SCOPE = {"Case": Case, "TrainingCase": TrainingCase, "ArrayRecipe": ArrayRecipe}


@st.composite
def any_cases(draw: st.DrawFn, norm: str) -> Case:
    """A case of `norm` drawn with any combination of the options `cases` takes."""
    options = {
        "affine": draw(st.sampled_from([None, True, False])),
        "single_instance": draw(st.booleans()),
        "min_batch": draw(st.sampled_from([1, 2])),
        "max_size": draw(st.sampled_from([1024, 64])),
    }
    if norm in ("batch_norm", "instance_norm"):
        options["training"] = draw(st.booleans())
    return draw(cases(norm, BACKEND, **options))


def minimal(strategy, condition=lambda _: True):
    """The simplest value of `strategy` that satisfies `condition`, as shrinking finds it."""
    return find(strategy, condition, settings=settings(database=None, max_examples=500))


def _ignoring_zero_division(f, *args):
    """Zero-variance sets legitimately give 0/0 = NaN; only NormParameterError matters here."""
    with np.errstate(all="ignore"):
        return f(*args)


@pytest.mark.parametrize("norm", NORMS)
@META
@given(data=st.data())
def test_every_case_is_a_valid_call_of_the_spec(norm, data):
    """spec_forward and spec_vjp accept case.inputs(): no NormParameterError, outputs shaped
    like x."""
    case = data.draw(any_cases(norm), label="case")
    inputs = case.inputs()
    assert inputs.x.dtype == np.dtype(case.dtype)
    y = _ignoring_zero_division(reference.spec_forward, norm, inputs)
    grads = _ignoring_zero_division(reference.spec_vjp, norm, inputs, np.ones(inputs.x.shape))
    assert y.shape == inputs.x.shape
    assert grads.x.shape == inputs.x.shape


@pytest.mark.parametrize("norm", NORMS)
@META
@given(data=st.data())
def test_repr_of_a_case_rebuilds_an_equal_case(norm, data):
    """eval(repr(case)) == case, with only the dataclasses in scope, and its arrays are equal."""
    case = data.draw(any_cases(norm), label="case")
    rebuilt = eval(repr(case), dict(REPR_SCOPE))
    assert rebuilt == case
    for name in ("x", "weight", "bias", "running_mean", "running_var"):
        original, again = getattr(case.inputs(), name), getattr(rebuilt.inputs(), name)
        assert (original is None) == (again is None), name
        if original is not None:
            np.testing.assert_array_equal(again, original, err_msg=name)


@pytest.mark.parametrize("norm", ["batch_norm", "instance_norm"])
@META
@given(data=st.data())
def test_repr_of_a_training_case_rebuilds_an_equal_case(norm, data):
    case = data.draw(training_cases(norm, BACKEND), label="case")
    assert eval(repr(case), dict(REPR_SCOPE)) == case


@META
@given(recipe=array_recipes((3, 4, 2)))
def test_array_recipe_build_is_deterministic(recipe):
    """Two builds of one recipe, or of an equal recipe, give the same array bit for bit."""
    first, second = recipe.build(), ArrayRecipe(**vars(recipe)).build()
    assert first.dtype == np.float64 and first.shape == recipe.shape
    np.testing.assert_array_equal(first, second)
    np.testing.assert_array_equal(first, recipe.build())


@pytest.mark.parametrize("kind", KINDS)
def test_array_recipe_kinds_are_what_their_names_say(kind):
    """constant: one value; constant_samples: whole samples equal to the offset; the others
    spread around the offset."""
    x = ArrayRecipe((8, 3, 5), kind, seed=3, offset=7.0, scale=2.0).build()
    per_sample = x.reshape(8, -1)
    if kind == "constant":
        assert np.all(x == 7.0)
    elif kind == "constant_samples":
        constant = np.all(per_sample == 7.0, axis=1)
        assert constant.any() and not constant.all()
    else:
        assert np.ptp(per_sample, axis=1).min() > 0


@META
@given(data=st.data())
def test_group_counts_of_group_norm_cases_divide_the_channels(data):
    case = data.draw(any_cases("group_norm"), label="case")
    channels = case.x.shape[1]
    assert 1 <= case.num_groups <= channels and channels % case.num_groups == 0


@META
@given(data=st.data(), channels=st.integers(1, 64))
def test_group_counts_draws_divisors(data, channels):
    groups = data.draw(group_counts(channels))
    assert channels % groups == 0


def test_group_counts_rejects_no_channels():
    with pytest.raises(NormParameterError, match=r"channels must be >= 1, got 0"):
        group_counts(0)


@META
@given(eps=eps_values())
def test_eps_values_are_finite_and_non_negative(eps):
    assert isinstance(eps, float) and math.isfinite(eps) and eps >= 0.0


@META
@given(data=st.data(), minimum=st.sampled_from([1e-12, 1e-5, 3e-4, 0.1, 1.0]))
def test_eps_values_respect_their_minimum(data, minimum):
    eps = data.draw(eps_values(minimum))
    assert math.isfinite(eps) and eps >= minimum


@pytest.mark.parametrize("minimum", [-1.0, 2.0])
def test_eps_values_rejects_a_minimum_outside_0_to_1(minimum):
    with pytest.raises(
        NormParameterError, match=rf"minimum eps must be in \[0, 1\], got {minimum}"
    ):
        eps_values(minimum)


@pytest.mark.parametrize("norm", NORMS)
@META
@given(data=st.data())
def test_eps_of_every_case_is_finite_and_non_negative(norm, data):
    eps = data.draw(any_cases(norm), label="case").eps
    assert math.isfinite(eps) and eps >= 0.0


@pytest.mark.parametrize("norm", ["batch_norm", "instance_norm"])
@META
@given(data=st.data())
def test_training_cases_give_batches_of_one_shape_and_a_supported_convention(norm, data):
    """Every batch has the first batch's shape; momentum and estimator are the backend's; the
    spec runs the whole recurrence."""
    case = data.draw(training_cases(norm, BACKEND), label="case")
    shapes = {batch.shape for batch in case.batches}
    assert len(shapes) == 1 and 1 <= len(case.batches) <= 4
    assert case.running_var_estimator in BACKEND.conventions.running_var_estimators
    assert case.momentum is None or 0.0 <= case.momentum <= 1.0
    run = case.run()
    assert {b.shape for b in run.batches} == shapes
    expected = reference.training(norm, run, Precision(case.dtype, case.dtype))
    assert expected.batches_seen == len(case.batches)


@pytest.mark.parametrize(
    ("min_rank", "pooled_includes_batch"),
    [(2, True), (3, False), (3, True), (5, False)],
    ids=["batch_norm", "instance_norm", "rank_3_with_batch", "rank_5"],
)
@META
@given(data=st.data(), batch=st.sampled_from([None, 1]))
def test_channel_shapes_pool_at_least_min_pooled_values(
    data, batch, min_rank, pooled_includes_batch
):
    """At least min_pooled = 2 values per channel: over N and the spatial positions for
    BatchNorm, over the spatial positions alone when there are any (rank >= 3)."""
    shape = data.draw(
        channel_shapes(
            min_rank,
            max_size=256,
            batch=batch,
            min_pooled=2,
            pooled_includes_batch=pooled_includes_batch,
        )
    )
    pooled = math.prod(shape[2:]) * (shape[0] if pooled_includes_batch else 1)
    assert len(shape) >= min_rank and pooled >= 2, shape
    if batch is not None:
        assert shape[0] == batch


@META
@given(data=st.data())
def test_array_recipes_rejects_unknown_kinds_with_the_allowed_ones(data):
    with pytest.raises(NormParameterError, match=r"unknown data kinds \['uniform'\]; allowed: "):
        data.draw(array_recipes((2, 3), kinds=("normal", "uniform")))


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"norm": "batchnorm"}, r"unknown norm 'batchnorm'; allowed: batch_norm, "),
        ({"affine": 1}, r"affine must be True, False or None, got 1"),
        ({"norm": "layer_norm", "training": False}, r"training=False .* not layer_norm"),
        ({"min_eps": 2.0}, r"min_eps must be in \[0, 1\], got 2.0"),
        ({"dtype": "bfloat16"}, r"numpy does not support batch_norm in 'bfloat16'; allowed: "),
        ({"max_size": 0}, r"max_size must be an integer >= 1, got 0"),
        ({"min_batch": 1.5}, r"min_batch must be an integer >= 1, got 1.5"),
    ],
)
def test_cases_refuses_bad_arguments_when_built_naming_what_is_allowed(arguments, message):
    """As Hypothesis' own strategies do: the error comes when the strategy is built, not at the
    first draw, and names the argument, the value and what is allowed."""
    arguments = {"norm": "batch_norm", **arguments}
    with pytest.raises(NormParameterError, match=message):
        cases(arguments.pop("norm"), BACKEND, **arguments)


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"norm": "layer_norm"}, r"training cases exist for batch_norm, instance_norm"),
        ({"max_size": -1}, r"max_size must be an integer >= 1, got -1"),
        ({"dtypes": ("float8",)}, r"dtypes must be a non-empty subset of"),
        ({"estimators": ("bessel",)}, r"estimators must be a non-empty subset of"),
    ],
)
def test_training_cases_refuses_bad_arguments_when_built(arguments, message):
    arguments = {"norm": "batch_norm", **arguments}
    with pytest.raises(NormParameterError, match=message):
        training_cases(arguments.pop("norm"), BACKEND, **arguments)


def test_a_strategy_is_built_once_per_combination_of_arguments():
    """Building a strategy costs Hypothesis validation on every draw that builds it: the same
    arguments give the same strategy object."""
    assert cases("layer_norm", BACKEND, affine=False) is cases("layer_norm", BACKEND, affine=False)
    assert training_cases("batch_norm", BACKEND) is training_cases("batch_norm", BACKEND)


@pytest.mark.parametrize("norm", NORMS)
@META
@given(data=st.data())
def test_every_drawn_input_stays_within_the_size_budget(norm, data):
    """The run's budget (`--max-elements`) bounds x, however the case is drawn."""
    use_size_budget(40)
    try:
        options = {"training": data.draw(st.booleans())} if norm in ("batch_norm",) else {}
        drawn = data.draw(several(cases(norm, BACKEND, **options)), label="cases")
    finally:
        use_size_budget(DEFAULT_SIZE_BUDGET)
    assert all(math.prod(case.x.shape) <= 40 for case in drawn)


def test_a_budget_no_shape_fits_is_refused_when_the_strategy_is_built():
    with pytest.raises(NormParameterError, match=r"has at most 2 elements"):
        cases("instance_norm", BACKEND, max_size=2, min_batch=2)


def test_a_table_draws_each_group_as_likely_and_shrinks_to_its_first_row():
    """Groups of 2 and 4 rows: half the indices draw from each; index 0 is the first row, and
    within a group a lower index never draws a later row."""
    table = Table((("a", "b"), ("c", "d", "e", "f")))
    rows = [table.row(i) for i in range(2 * table.width)]
    assert rows[0] == "a" and rows.count("a") + rows.count("b") == table.width
    assert rows[: table.width] == sorted(rows[: table.width])
    assert rows[table.width :] == sorted(rows[table.width :])
    assert minimal(table.strategy) == "a"


def test_a_failing_list_of_cases_shrinks_to_the_one_case_that_fails():
    """Hypothesis shrinks the cases of an example to the case that fails, and that case toward
    the smallest shape that still fails."""
    found = minimal(
        several(cases("group_norm", BACKEND)),
        lambda drawn: any(case.x.shape[1] >= 3 for case in drawn),
    )
    assert len(found) == 1
    shape = found[0].x.shape  # the simplest group (rank 2), a few channels; (1, 3) at best
    assert len(shape) == 2 and shape[1] >= 3 and math.prod(shape) <= 8, shape
    assert found[0].x.kind == "normal" and found[0].dtype == "float64"


def test_deleting_a_case_of_an_example_keeps_every_other_case():
    """A case's data is seeded by its example's seed and its own choices, not by its place in
    the list: shrinking away the other cases leaves the failing one as it was."""
    strategy = cases("layer_norm", BACKEND)
    plan = PLANS[strategy]
    shared = ("float32", ("normal", 1.0, 0.3), 1e-5, None, 1234)
    items = [(((2, 3), (3,)),), (((4, 5), (5,)),), (((2, 3), (3,)),)]
    whole = _assemble(plan, False, (shared, items))
    assert _assemble(plan, False, (shared, items[1:])) == [*whole[1:2], whole[0]]
    assert whole[0] != whole[2]  # equal choices twice: two cases, with different data


def test_permutation_index_zero_is_the_identity_and_every_index_a_permutation():
    assert strategies.permutation(0, 4).tolist() == [0, 1, 2, 3]
    seen = {tuple(strategies.permutation(i, 3).tolist()) for i in range(6)}
    assert len(seen) == 6
    assert sorted(strategies.permutation(10**9, 7).tolist()) == list(range(7))
