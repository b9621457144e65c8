"""Statistics for a noisy, shared machine: medians, spreads, and intervals that say how sure.

Timings on a shared machine are not normal: most rounds cluster near the true time and a
few are much slower, when another process took the core. And rounds are not independent:
every round of one preparation of a workload in one process shares that process's luck (where
its arrays landed, whether they got huge pages, the state of the allocator), which moved
an A/A comparison by as much as 26% (numpy group_norm:small) and 89% (a TensorFlow small
row) between two processes of the same interpreter. So:

- one sample: the median, the interquartile range, and the interval for the median from the
  binomial distribution of how many rounds fall below it (the sign test's interval);
- the unit of replication is the pass (a fresh preparation, for --ab in fresh processes),
  not the round: a ratio is estimated from the passes' medians of log times, with Student's
  t interval over passes (Welch's for two runs, the paired one for A and B timed in the same
  passes), which widens when the passes disagree, as it must;
- with a single pass there is nothing to measure that luck by: the round-level intervals
  (Hodges-Lehmann with Mann-Whitney for two runs, the sign test over pairs) are used, and
  the method says so.

A ratio is judged against a threshold t: "slower" only when the whole interval is above
1 + t (the regression exceeds t with confidence), "faster" only when it is all below
1 / (1 + t), "same" when it lies inside [1 / (1 + t), 1 + t], and "unsure" otherwise (the
spread is too wide to tell: more passes, or a quieter machine).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np

CONFIDENCE = 0.95


def quantile(values: Sequence[float], q: float) -> float:
    """The q-quantile (linear interpolation, as NumPy's default)."""
    return float(np.quantile(np.asarray(values, dtype=float), q))


def summary(values: Sequence[float], confidence: float = CONFIDENCE) -> dict[str, float]:
    """median, q1, q3, iqr, min, max, n, and the median's interval (ci_low, ci_high)."""
    low, high = median_interval(values, confidence)
    return {
        "median": quantile(values, 0.5),
        "q1": quantile(values, 0.25),
        "q3": quantile(values, 0.75),
        "iqr": quantile(values, 0.75) - quantile(values, 0.25),
        "min": float(min(values)),
        "max": float(max(values)),
        "n": len(values),
        "ci_low": low,
        "ci_high": high,
    }


def _binomial_cdf(k: int, n: int) -> float:
    """P(Binomial(n, 1/2) <= k)."""
    return sum(math.comb(n, i) for i in range(k + 1)) / 2.0**n


def sign_rank(n: int, confidence: float = CONFIDENCE) -> int | None:
    """The largest k (1-based) such that the k-th smallest and k-th largest of n values
    bracket the median with at least `confidence`; None when n is too small for that."""
    alpha = 1.0 - confidence
    k = None
    for candidate in range(1, n // 2 + 1):
        if 2 * _binomial_cdf(candidate - 1, n) <= alpha:
            k = candidate
        else:
            break
    return k


def median_interval(values: Sequence[float], confidence: float = CONFIDENCE) -> tuple[float, float]:
    """The distribution-free interval for the median: (-inf, inf) when there are too few."""
    ordered = sorted(float(v) for v in values)
    k = sign_rank(len(ordered), confidence)
    if k is None:
        return -math.inf, math.inf
    return ordered[k - 1], ordered[len(ordered) - k]


@dataclass(frozen=True)
class Ratio:
    """How much slower the second sample is than the first: estimate and interval."""

    estimate: float
    low: float
    high: float
    n_first: int
    n_second: int
    method: str

    def verdict(self, threshold: float) -> str:
        """ "slower", "faster", "same" or "unsure" against a relative threshold (0.1: 10%)."""
        if self.low > 1.0 + threshold:
            return "slower"
        if self.high < 1.0 / (1.0 + threshold):
            return "faster"
        if self.low >= 1.0 / (1.0 + threshold) and self.high <= 1.0 + threshold:
            return "same"
        return "unsure"

    def as_dict(self) -> dict:
        return {
            "ratio": self.estimate,
            "ci_low": self.low,
            "ci_high": self.high,
            "n": [self.n_first, self.n_second],
            "method": self.method,
        }


def independent_ratio(
    first: Sequence[float], second: Sequence[float], confidence: float = CONFIDENCE
) -> Ratio:
    """second / first for two independent samples of times: exp of the Hodges-Lehmann
    estimate of the shift of log times (the median of all pairwise differences), with the
    Mann-Whitney interval (normal approximation of the U statistic's distribution)."""
    a = np.log(np.asarray(first, dtype=float))
    b = np.log(np.asarray(second, dtype=float))
    n, m = len(a), len(b)
    differences = np.sort((b[:, None] - a[None, :]).ravel())
    estimate = math.exp(float(np.median(differences)))
    z = NormalDist().inv_cdf(0.5 + confidence / 2)
    k = math.floor(n * m / 2 - z * math.sqrt(n * m * (n + m + 1) / 12))
    if k < 1:
        low, high = 0.0, math.inf
    else:
        low = math.exp(float(differences[k - 1]))
        high = math.exp(float(differences[n * m - k]))
    return Ratio(estimate, low, high, n, m, "Hodges-Lehmann ratio, Mann-Whitney interval")


def paired_ratio(
    first: Sequence[float], second: Sequence[float], confidence: float = CONFIDENCE
) -> Ratio:
    """second / first for pairs timed together: the median of the pairs' ratios, with the
    sign test's interval."""
    if len(first) != len(second):
        raise ValueError(f"paired samples differ in length: {len(first)} and {len(second)}")
    ratios = [s / f for f, s in zip(first, second, strict=True)]
    low, high = median_interval(ratios, confidence)
    return Ratio(
        quantile(ratios, 0.5),
        max(low, 0.0),
        high,
        len(first),
        len(second),
        "median of paired ratios, sign-test interval",
    )


#: Student's t quantile at 0.975 (a two-sided 95% interval) by degrees of freedom 1 .. 30.
_T975 = (
    12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228,
    2.201, 2.179, 2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086,
    2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042,
)  # fmt: skip


def t975(df: float) -> float:
    """Student's t quantile at 0.975 for `df` degrees of freedom (rounded down, which widens
    the interval); the normal quantile past 30."""
    if df < 1:
        return math.inf
    return _T975[int(df) - 1] if df < 31 else 1.96


def _log_medians(clusters: Sequence[Sequence[float]]) -> np.ndarray:
    return np.log([quantile(c, 0.5) for c in clusters])


def clustered_ratio(first: Sequence[Sequence[float]], second: Sequence[Sequence[float]]) -> Ratio:
    """second / first for two runs, each a list of passes of round times: the ratio of the
    geometric means of the passes' medians, with Welch's 95% interval over passes. Fewer
    than two passes on a side: `independent_ratio` over every round."""
    if len(first) < 2 or len(second) < 2:
        flat = lambda clusters: [t for c in clusters for t in c]
        return independent_ratio(flat(first), flat(second))
    a, b = _log_medians(first), _log_medians(second)
    difference = float(b.mean() - a.mean())
    va, vb = a.var(ddof=1) / len(a), b.var(ddof=1) / len(b)
    se = math.sqrt(va + vb)
    df = (va + vb) ** 2 / (va**2 / (len(a) - 1) + vb**2 / (len(b) - 1)) if se > 0 else 1.0
    half = t975(df) * se
    return Ratio(
        math.exp(difference),
        math.exp(difference - half),
        math.exp(difference + half),
        sum(map(len, first)),
        sum(map(len, second)),
        f"ratio of the passes' medians ({len(a)} and {len(b)} passes), Welch interval",
    )


def paired_clustered_ratio(
    first: Sequence[Sequence[float]], second: Sequence[Sequence[float]]
) -> Ratio:
    """second / first for pairs timed in passes (first[p][j] with second[p][j]): the
    geometric mean over passes of each pass's median pair ratio, with Student's 95% interval
    over passes. One pass: `paired_ratio` over its pairs."""
    if len(first) != len(second):
        raise ValueError(f"paired passes differ in number: {len(first)} and {len(second)}")
    if len(first) < 2:
        return paired_ratio(first[0], second[0])
    logs = np.array(
        [
            np.median(np.log(np.asarray(b, dtype=float) / np.asarray(a, dtype=float)))
            for a, b in zip(first, second, strict=True)
        ]
    )
    mean = float(logs.mean())
    half = t975(len(logs) - 1) * float(logs.std(ddof=1)) / math.sqrt(len(logs))
    return Ratio(
        math.exp(mean),
        math.exp(mean - half),
        math.exp(mean + half),
        sum(map(len, first)),
        sum(map(len, second)),
        f"median pair ratio per pass ({len(logs)} passes), Student interval over passes",
    )


def parse_threshold(text: str) -> float:
    """'10%' or '0.1' -> 0.1; ValueError with the accepted forms otherwise."""
    cleaned = text.strip()
    try:
        if cleaned.endswith("%"):
            value = float(cleaned[:-1]) / 100.0
        else:
            value = float(cleaned)
            if value >= 1.0:
                raise ValueError
    except ValueError:
        raise ValueError(
            f"--fail-over takes a percentage such as 10% or a fraction such as 0.1, got {text!r}"
        ) from None
    if not 0.0 <= value < 10.0:
        raise ValueError(f"--fail-over must be between 0% and 1000%, got {text!r}")
    return value
