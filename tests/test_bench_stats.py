"""The statistics of `normspec bench`: the intervals cover what they claim, and the verdicts
say "slower" only when the whole interval is past the threshold."""

from __future__ import annotations

import math

import numpy as np
import pytest

from normspec.bench import stats


@pytest.mark.parametrize(("n", "k"), [(5, None), (6, 1), (15, 4), (20, 6), (45, 16)])
def test_sign_rank_is_the_largest_rank_with_95_percent_coverage(n, k):
    """k-th smallest .. k-th largest covers the median with probability >= 95%, and k + 1
    would not (binomial(n, 1/2) tail)."""
    assert stats.sign_rank(n) == k


def test_the_median_interval_is_unbounded_with_too_few_rounds():
    assert stats.median_interval([1.0, 2.0, 3.0]) == (-math.inf, math.inf)


def test_the_median_interval_is_made_of_order_statistics():
    values = list(range(20, 0, -1))  # 20 .. 1, unsorted on purpose
    assert stats.median_interval(values) == (6.0, 15.0)


def test_summary_reports_the_median_and_quartiles():
    s = stats.summary([1.0, 2.0, 3.0, 4.0, 100.0])
    assert (s["median"], s["q1"], s["q3"], s["min"], s["max"], s["n"]) == (3, 2, 4, 1, 100, 5)


@pytest.mark.parametrize(
    ("low", "high", "verdict"),
    [
        (1.12, 1.20, "slower"),  # the whole interval past 1 + 10%
        (1.05, 1.20, "unsure"),  # could be a 5% slowdown: not past the threshold for sure
        (0.97, 1.04, "same"),
        (0.80, 0.88, "faster"),
        (0.85, 1.30, "unsure"),
    ],
)
def test_a_verdict_needs_the_whole_interval_past_the_threshold(low, high, verdict):
    ratio = stats.Ratio((low + high) / 2, low, high, 10, 10, "test")
    assert ratio.verdict(0.10) == verdict


def _lognormal(rng, n, scale=1.0, sigma=0.05):
    return scale * np.exp(rng.normal(0.0, sigma, n))


def test_independent_ratio_finds_a_planted_15_percent():
    rng = np.random.default_rng(1)
    ratio = stats.independent_ratio(_lognormal(rng, 30), _lognormal(rng, 30, 1.15))
    assert 1.10 < ratio.estimate < 1.20
    assert ratio.low > 1.05 and ratio.verdict(0.05) == "slower"


def test_paired_ratio_finds_a_planted_15_percent_under_a_shared_drift():
    """A drift that both sides of each pair share (the machine's load) cancels."""
    rng = np.random.default_rng(2)
    drift = np.exp(np.linspace(0.0, 0.5, 30))  # the machine gets 65% slower over the run
    a = _lognormal(rng, 30) * drift
    b = _lognormal(rng, 30, 1.15) * drift
    ratio = stats.paired_ratio(a, b)
    assert ratio.low > 1.10 and ratio.verdict(0.10) == "slower"


@pytest.mark.parametrize("method", [stats.independent_ratio, stats.paired_ratio])
def test_an_a_a_comparison_excludes_1_about_5_percent_of_the_time(method):
    """The intervals are calibrated: over 400 A/A comparisons of noisy (log-normal, with
    outliers) timings, 1 falls outside the 95% interval in at most about 5% of them."""
    rng = np.random.default_rng(3)
    misses = 0
    for _ in range(400):
        a, b = _lognormal(rng, 15, sigma=0.1), _lognormal(rng, 15, sigma=0.1)
        b[rng.integers(15)] *= 3.0  # one round that another process interrupted
        ratio = method(a, b)
        misses += not ratio.low <= 1.0 <= ratio.high
    assert misses / 400 < 0.08


def test_paired_samples_must_pair():
    with pytest.raises(ValueError, match="differ in length"):
        stats.paired_ratio([1.0, 2.0], [1.0])


@pytest.mark.parametrize(("text", "value"), [("10%", 0.10), ("2.5%", 0.025), ("0.1", 0.1)])
def test_a_threshold_is_a_percentage_or_a_fraction(text, value):
    assert stats.parse_threshold(text) == pytest.approx(value)


@pytest.mark.parametrize("text", ["10", "ten", "-5%", ""])
def test_a_threshold_that_is_neither_is_refused_with_the_accepted_forms(text):
    with pytest.raises(ValueError, match="--fail-over"):
        stats.parse_threshold(text)


def _passes(rng, passes, rounds, scale=1.0, bias=0.05, sigma=0.03):
    """Round times in passes: each pass (a preparation, a process) has a lasting bias of its
    own, as the arrays it got and the state it started in, and each round a little noise."""
    return [
        list(scale * math.exp(rng.normal(0.0, bias)) * np.exp(rng.normal(0.0, sigma, rounds)))
        for _ in range(passes)
    ]


def test_with_lasting_preparation_luck_only_intervals_over_passes_keep_their_coverage():
    """Over 300 A/A comparisons whose passes carry a lasting 5% bias each, the intervals over
    passes exclude 1 about 5% of the time; intervals over rounds, which take the rounds of
    one pass for independent evidence, exclude it far more often: why passes are the
    replicates."""
    rng = np.random.default_rng(4)  # the figures below are this seed's
    misses = {"passes, paired": 0, "rounds, paired": 0, "passes, two runs": 0}
    for _ in range(300):
        a, b = _passes(rng, 5, 3), _passes(rng, 5, 3)
        flat = lambda passes: [t for p in passes for t in p]
        for name, ratio in (
            ("passes, paired", stats.paired_clustered_ratio(a, b)),
            ("rounds, paired", stats.paired_ratio(flat(a), flat(b))),
            ("passes, two runs", stats.clustered_ratio(a, b)),
        ):
            misses[name] += not ratio.low <= 1.0 <= ratio.high
    assert misses["passes, paired"] / 300 < 0.08, misses
    assert misses["passes, two runs"] / 300 < 0.08, misses
    assert misses["rounds, paired"] / 300 > 0.10, misses  # 15% measured: three times 5%


def test_one_unlucky_process_makes_the_interval_wide_not_a_finding():
    """Four passes agree, the fifth ran 26% slower throughout (as two workers of the same
    interpreter did): unsure, never slower."""
    a = [[1.0, 1.01, 0.99]] * 5
    b = [[1.0, 1.01, 0.99]] * 4 + [[1.26, 1.27, 1.25]]
    ratio = stats.paired_clustered_ratio(a, b)
    assert ratio.low < 1.0 < ratio.high and ratio.verdict(0.10) == "unsure"


def test_a_planted_15_percent_is_found_over_passes():
    rng = np.random.default_rng(5)
    a = _passes(rng, 5, 3, bias=0.02)
    b = [[t * 1.15 for t in p] for p in a]  # the same passes, 15% slower: paired
    assert stats.paired_clustered_ratio(a, b).verdict(0.10) == "slower"
    c = _passes(rng, 3, 5, bias=0.02)
    d = _passes(rng, 3, 5, scale=1.15, bias=0.02)
    ratio = stats.clustered_ratio(c, d)
    assert ratio.verdict(0.05) == "slower", ratio


def test_a_single_pass_falls_back_to_the_rounds_and_says_so():
    a, b = [[1.0] * 6], [[1.2] * 6]
    assert "sign-test" in stats.paired_clustered_ratio(a, b).method
    assert "Mann-Whitney" in stats.clustered_ratio(a, b).method


def test_student_t_quantiles():
    assert stats.t975(4) == 2.776 and stats.t975(4.9) == 2.776
    assert stats.t975(100) == 1.96 and stats.t975(0.5) == math.inf
