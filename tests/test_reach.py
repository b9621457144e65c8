"""Reach: where the strategies look (issue 13). Wide shape regimes within each profile's size
budget, values across each dtype's range, and the tolerance model's line between a failure and
a declared limitation (intermediates out of the accumulation dtype's range)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from normspec import reference, tolerance
from normspec.reference import Expected
from normspec.runner.report import conformance_json, conformance_markdown
from normspec.vocabulary import TrainingRun
from properties import shapes, strategies
from properties.assertions import Check
from properties.options import SIZE_BUDGETS
from properties.recipes import ArrayRecipe, Case
from properties.recording import Recorder


def all_rows(groups):
    return [row for group in groups for row in group]


def test_each_profile_has_a_size_budget_and_ci_keeps_the_small_workload():
    assert SIZE_BUDGETS == {"ci": 1024, "dev": 2**16, "hunt": 2**20}


@pytest.mark.parametrize("budget", [1024, 2**16, 2**20])
def test_no_shape_of_any_table_exceeds_its_budget(budget):
    channel = all_rows(shapes.channel_shape_groups(2, max_elements=budget))
    trailing = [s for s, _ in all_rows(shapes.trailing_shape_groups(max_elements=budget))]
    weights = [s for s, _ in all_rows(shapes.weight_shape_groups(max_elements=budget))]
    assert max(math.prod(s) for s in channel + trailing + weights) <= budget


def test_hunts_budget_reaches_reductions_of_2_to_the_20_values_around_powers_of_two():
    rows = all_rows(shapes.trailing_shape_groups(max_elements=2**20))
    lengths = {math.prod(n) for _, n in rows}
    assert {2**20, 2**20 - 1, 2**16 + 1, 1023, 1025, 3 * 2**10 + 1, 65521} <= lengths


def test_many_channels_with_every_divisor_structure_and_odd_batches_are_drawn():
    groups = shapes.with_group_counts(shapes.channel_shape_groups(2, max_elements=2**20))
    rows = all_rows(groups)
    channels = {s[1] for s, _ in rows}
    assert {1024, 1021, 127, 512} <= channels
    group_counts = {g for _, g in rows}
    assert {1, 32, 64, 1024} <= group_counts
    assert {(1021, 1), (1021, 1021)} <= {(s[1], g) for s, g in rows if s[1] == 1021}
    assert {5, 17, 33, 63, 64} <= {s[0] for s, _ in rows}


def test_ci_keeps_the_wide_shapes_of_at_most_1024_values():
    rows = all_rows(shapes.channel_shape_groups(2, max_elements=1024))
    assert (1, 1, 1024) in rows and (1, 1024, 1) in rows and (63, 8, 2) in rows
    assert all(math.prod(s) <= 1024 for s in rows)


@pytest.mark.parametrize("dtype", ["float64", "float32", "bfloat16", "float16"])
def test_the_magnitude_regime_spans_the_dtypes_range(dtype):
    low, high = strategies.MAGNITUDES[dtype]
    scales = {
        strategies._magnitude_recipe((4,), step, 0, 0, dtype).scale
        for step in range(-strategies.MAGNITUDE_STEPS, strategies.MAGNITUDE_STEPS + 1)
    }
    assert min(scales) == 10.0**low and max(scales) == 10.0**high
    shifted = strategies._magnitude_recipe((4,), strategies.MAGNITUDE_STEPS, 1, 0, dtype)
    assert shifted.offset == 10.0**high and shifted.scale == 10.0 ** (high - 3)


def test_an_outlier_set_has_one_value_a_thousand_spreads_away():
    x = ArrayRecipe((1000,), "outlier", seed=3, offset=1.0, scale=2.0).build()
    far = np.abs(x - 1.0) > 100 * 2.0
    assert far.sum() == 1 and np.isclose(x[far][0], 1.0 + 2.0 * 1e3)


class TestIntermediatesOutOfRange:
    """The tolerance model names an input whose sum of squares or mean square the
    accumulation dtype cannot hold; everything else is in range."""

    def test_a_sum_of_squares_beyond_float32_is_out_of_range_and_float64_holds_it(self):
        x = np.full((1, 8), 1e19)
        assert "sum of squares" in tolerance.intermediates_out_of_range(x, (1,), 1e-5, "float32")
        assert tolerance.intermediates_out_of_range(x, (1,), 1e-5, "float64") is None

    def test_1e15_is_in_range_for_float32(self):
        x = np.full((1, 1024), 1e15)
        assert tolerance.intermediates_out_of_range(x, (1,), 1e-5, "float32") is None

    def test_a_subnormal_mean_square_is_out_of_range_unless_eps_dominates_it(self):
        x = np.full((1, 4), 1e-20)  # mean square 1e-40, below float32's smallest normal
        assert "mean square" in tolerance.intermediates_out_of_range(x, (1,), 0.0, "float32")
        assert tolerance.intermediates_out_of_range(x, (1,), 1e-5, "float32") is None

    def test_float16_sums_overflow_at_256_when_they_accumulate_in_float16(self):
        x = np.full((1, 2), 256.0)
        assert tolerance.intermediates_out_of_range(x, (1,), 1e-5, "float16") is not None
        assert tolerance.intermediates_out_of_range(x, (1,), 1e-5, "float32") is None


#: float16 storage and statistics, float32 accumulation: PyTorch's half-precision layers
HALF = tolerance.Precision("float16", "float32", "float16")


class TestStoredStateOutOfRange:
    """A running variance that the layer's buffers cannot hold between two training steps is
    a declared limitation: the buffer holds inf, correctly rounded, and the next step computes
    from it. The final running variance is compared as it is."""

    @staticmethod
    def run(batches, momentum):
        return TrainingRun(
            batches=tuple(np.asarray(b, dtype=np.float64) for b in batches),
            eps=1e-5,
            momentum=momentum,
            momentum_weighs="new",
            running_var_estimator="unbiased",
            initial_mean=np.zeros(1),
            initial_var=np.ones(1),
        )

    def test_a_float16_buffer_cannot_hold_a_running_variance_of_80000_between_steps(self):
        # step 1 with momentum 1 stores the batch variance 80000 (> 65504), step 2 replaces it
        run = self.run([[[-200.0], [200.0]], [[0.0], [1.0]]], momentum=1.0)
        expected = reference.training(
            "batch_norm", run, tolerance.Precision("float16", "float32", "float16")
        )
        (between,) = expected.running_var_between_steps
        assert between == pytest.approx([80000.0])
        assert "running variance" in tolerance.stored_state_out_of_range(
            expected.running_var_between_steps, "float16"
        )
        assert (
            tolerance.stored_state_out_of_range(expected.running_var_between_steps, "float32")
            is None
        )

    def test_one_step_has_no_state_between_steps(self):
        run = self.run([[[-200.0], [200.0]]], momentum=0.1)
        expected = reference.training(
            "batch_norm", run, tolerance.Precision("float16", "float32", "float16")
        )
        assert expected.running_var_between_steps == ()
        assert tolerance.stored_state_out_of_range((), "float16") is None


def make_check() -> Check:
    return Check(property="p", backend="b", norm="layer_norm", recorder=Recorder())


def test_a_comparison_out_of_range_that_leaves_its_bound_is_a_limitation_not_a_failure():
    check = make_check()
    case = Case("layer_norm", ArrayRecipe((2,)), "float32", normalized_shape=(2,))
    expected = tolerance_expected([1.0, -1.0], 1e-6)
    worst = check.within(
        np.array([np.nan, np.nan]),
        expected,
        what="forward output",
        case=case,
        dtype="float32",
        beyond="the sum of squares overflows",
    )
    assert worst == np.inf
    (entry,) = check.limitations.values()
    assert entry["count"] == 1 and entry["case"] == repr(case)
    assert not check.recorder.worst  # not in the precision table


def test_the_same_comparison_in_range_fails():
    check = make_check()
    case = Case("layer_norm", ArrayRecipe((2,)), "float32", normalized_shape=(2,))
    with pytest.raises(AssertionError, match="outside its error bound"):
        check.within(
            np.array([np.nan, np.nan]),
            tolerance_expected([1.0, -1.0], 1e-6),
            what="forward output",
            case=case,
            dtype="float32",
        )
    assert not check.limitations


def tolerance_expected(values, bound) -> Expected:
    return Expected(np.array(values), np.full(len(values), bound))


def test_the_report_lists_declared_limitations_in_their_own_section():
    result = {
        "norm": "layer_norm",
        "backend": "torch",
        "property": "test_forward_agrees_with_the_spec_across_the_dtype_range",
        "status": "passed",
        "limitations": [
            {
                "reason": "forward output: the sum of squares overflows (float32)",
                "count": 3,
                "worst_error_over_bound": None,
                "case": "Case(...)",
            }
        ],
    }
    report = conformance_json({"results": [result], "backends": []}, "normspec check")
    text = conformance_markdown(report)
    assert "## Declared limitations" in text
    assert "| torch | layer_norm |" in text and "| 3 | NaN or inf |" in text
    assert report["summary"] == {"passed": 1}
