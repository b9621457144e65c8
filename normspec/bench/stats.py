"""Statistics for a noisy, shared machine: medians, spreads, and distribution-free intervals.

Timings on a shared machine are not normal: most rounds cluster near the true time and a
few are much slower, when another process took the core. So every summary here is built on
order statistics, which a few slow rounds cannot drag, and every interval is distribution-
free (no normality assumed), at 95% unless said otherwise:

- one sample: the median, the interquartile range, and the interval for the median from
  the binomial distribution of how many rounds fall below it (the sign test's interval);
- two independent samples (a run against a saved run): the ratio of their times as the
  Hodges-Lehmann shift of the log times, with the Mann-Whitney interval;
- paired samples (A and B timed alternately): the median of the per-pair ratios B/A with
  the sign test's interval.

A ratio is judged against a threshold t: "slower" only when the whole interval is above
1 + t (the regression exceeds t with confidence), "faster" only when it is all below
1 / (1 + t), "same" when it lies inside [1 / (1 + t), 1 + t], and "unsure" otherwise (the
spread is too wide to tell: more rounds, or a quieter machine).
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
