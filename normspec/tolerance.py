"""The tolerance model: error bounds derived from rounding-error analysis, never guessed.

A backend computes in floating point; the oracle in exact-enough float64 from the very values
the backend received (after any cast to float16 or bfloat16), so the rounding of the input is
never counted as the backend's error. What remains is the error of the backend's arithmetic,
which we bound element by element.

Notation: u is the unit roundoff (half the machine epsilon) of the accumulation dtype, u_out
that of the storage dtype the result is returned in. S is the set of n values pooled into one
mean and variance, M = max_S |x|, sigma = sqrt(var_S + eps), x_hat the exact standardized
value. By Higham (Accuracy and Stability of Numerical Algorithms, 2nd ed., section 4.2), any
summation order of n terms in precision u satisfies |fl(sum a) - sum a| <= gamma_n * sum |a|
with gamma_n = n u / (1 - n u); we use gamma = (n + 2) u, adding one rounding for the
division by n and one for the subtraction x - mean (first order, n u << 1).

Standardization with batch statistics (batch, layer, instance, group norm):

    |d mean|         <= gamma * M + u_stat |mean| + eta + eta_stat
    |d var|          <= gamma * (var + 2 M sqrt(var)) + (gamma M)^2 + 3 eta + eta_stat
    |d sigma| / sigma <= |d var| / (2 sigma^2) + 2 u + u_stat
    |d x_hat_i|      <= |d mean| / sigma + |x_hat_i| * (|d sigma| / sigma + 2 u)

where u_stat is the unit roundoff of the dtype the backend holds its statistics in once
computed (the accumulation dtype, unless the backend rounds them to the storage dtype), and
eta and eta_stat the absolute errors of underflow in those dtypes (see Underflow below): the
squares, their mean and the division each underflow once, and the stored statistic once. A
float16 variance below 6e-5 is subnormal and keeps only its absolute precision.

The variance bound covers the two-pass algorithm (error gamma * var + d_mean^2), Welford's
update and shifted sums (the cross term 2 gamma M sqrt(var)). The ratio M / sigma is the
conditioning of the input: rows with a large mean and a small spread are ill-conditioned, and
every correct algorithm loses about u * M / sigma there. The textbook one-pass variance
E[x^2] - E[x]^2 loses u * M^2 / var instead, the square of the conditioning, and so fails
this bound as soon as M / sigma exceeds about 2 (n + 2) (1 + |x_hat|).

The affine map y = w x_hat + b adds two roundings in u and one in u_out for the result:

    |d y_i| <= |w| |d x_hat_i| + 2 u (|w x_hat_i| + |b|) + u_out |y_i|

The other bounds (running statistics, RMSNorm, WeightNorm and every VJP) follow the same rules:
each reduction of m terms contributes gamma_m times the sum of the absolute values of its
terms, each elementwise operation one u times its result, and errors of the inputs of an
operation propagate to first order. Each function below states its formula.

The oracle: the spec runs in float64 and is exact only to float64 rounding. Its error obeys
the same bounds with u = 2^-53, and adds to the backend's; to first order that is the
backend's bound with u + 2^-53 in place of u (and likewise u_out), which is what `Precision`
uses. For float32 and narrower this changes nothing visible; for float64 backends it doubles
the bound, as it must.

Underflow: in the gradual-underflow range the error of a rounding is absolute, not relative
(Higham, eq. 2.8: fl(x op y) = (x op y)(1 + delta) + eta, |eta| <= half the smallest
subnormal). Every bound therefore carries `Precision.underflow`: eta of the stored result plus
eta of a few accumulation-dtype operations. It matters for float16, whose subnormals begin
at 6e-5.

Intermediates out of range (a declared limitation, reported separately): the bounds above
assume that the intermediates of the computation are numbers of the accumulation dtype. Where
the exact output is ordinary but an intermediate is not, they say nothing: the sum of squares
sum_S x^2 of a pooled set (which a one-pass kernel forms, and which bounds the centred sum a
two-pass kernel forms) overflows once n M^2 exceeds the dtype's largest finite value (float32
LayerNorm of values near 1e19), and the mean square underflows below its smallest normal
value, where it keeps only its absolute precision, unless eps dominates it. A careful kernel
can scale its input and stay exact there, but none of the frameworks checked does, and such
inputs are rare in models. normspec's decision: such an input is a *declared limitation*, not
a failure. `intermediates_out_of_range` names it from the input alone; the one property that
draws magnitudes across each dtype's whole range
(test_forward_agrees_with_the_spec_across_the_dtype_range) records a comparison there that
leaves its bound as a limitation, with its count, worst error / bound and an example, in the
report's own section (conformance.md, "Declared limitations"), and fails only on the inputs
whose intermediates fit. Every other property draws magnitudes whose intermediates fit in any
accumulation dtype of float32 or wider. The envelope (`normspec envelope`) maps where each
backend leaves its bound beyond that range.

A comparison reports its error in units of its bound, error / bound: <= 1 passes, and the
number is tracked across runs as the precision of a backend, not only pass or fail.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

UNIT_ROUNDOFF: dict[str, float] = {
    "float64": 2.0**-53,
    "float32": 2.0**-24,
    "float16": 2.0**-11,
    "bfloat16": 2.0**-8,
}
SMALLEST_SUBNORMAL: dict[str, float] = {
    "float64": 2.0**-1074,
    "float32": 2.0**-149,
    "float16": 2.0**-24,
    "bfloat16": 2.0**-133,
}
SMALLEST_NORMAL: dict[str, float] = {
    "float64": 2.0**-1022,
    "float32": 2.0**-126,
    "float16": 2.0**-14,
    "bfloat16": 2.0**-126,
}
LARGEST_FINITE: dict[str, float] = {
    "float64": float(np.finfo(np.float64).max),
    "float32": float(np.finfo(np.float32).max),
    "float16": 65504.0,
    "bfloat16": 3.3895313892515355e38,
}
#: The oracle computes in float64 and errs too: both errors add, to first order, so every
#: bound is the backend's with u + ORACLE_U (this matters only for float64 backends).
ORACLE_U = UNIT_ROUNDOFF["float64"]
#: How many accumulation-dtype roundings an output passes through, for the underflow term.
_OPERATIONS_PER_OUTPUT = 8


@dataclass(frozen=True)
class Precision:
    """The dtype a backend stores results in, the dtype it accumulates reductions in, and the
    dtype it holds computed statistics in (mean, 1/sigma, ||v||) before applying them: a
    backend may reduce in float32 yet round the statistics to float16 (PyTorch's half-precision
    layers do), which costs u_stat * (|mean| / sigma + |x_hat|) more."""

    storage: str
    accumulation: str
    statistics: str = ""

    @property
    def eta(self) -> float:
        """The absolute error of one accumulation-dtype operation whose result underflows."""
        return SMALLEST_SUBNORMAL[self.accumulation] / 2

    @property
    def eta_out(self) -> float:
        """The absolute error of rounding a value to the storage dtype where it underflows
        (an output, or a parameter rounded to the input's dtype)."""
        return SMALLEST_SUBNORMAL[self.storage] / 2

    @property
    def eta_stat(self) -> float:
        """The absolute error of a statistic held in the statistics dtype that underflows."""
        return SMALLEST_SUBNORMAL[self.statistics or self.accumulation] / 2

    @property
    def u_stat(self) -> float:
        """The unit roundoff of the statistics dtype (the accumulation dtype by default)."""
        return UNIT_ROUNDOFF[self.statistics or self.accumulation] + ORACLE_U

    @property
    def u(self) -> float:
        """The unit roundoff of the accumulation dtype, plus the oracle's own (float64)."""
        return UNIT_ROUNDOFF[self.accumulation] + ORACLE_U

    @property
    def u_out(self) -> float:
        """The unit roundoff of the storage dtype, plus the oracle's own (float64)."""
        return UNIT_ROUNDOFF[self.storage] + ORACLE_U

    @property
    def underflow(self) -> float:
        """The absolute error of underflow: eta = half the smallest subnormal, once for the
        stored result and once for each of a few accumulation-dtype operations."""
        eta = lambda dtype: SMALLEST_SUBNORMAL[dtype] / 2
        return eta(self.storage) + _OPERATIONS_PER_OUTPUT * eta(self.accumulation)

    @property
    def largest(self) -> float:
        """The largest finite value of the storage dtype: beyond it a result rounds to inf."""
        return LARGEST_FINITE[self.storage]

    def gamma(self, n: int | np.ndarray) -> float | np.ndarray:
        """gamma = (n + 2) u: the relative error of a sum of n terms, divided by n and used in
        one subtraction."""
        return (np.asarray(n) + 2) * self.u


@dataclass(frozen=True)
class Standardized:
    """The exact standardized values and the bounds on their computed error."""

    x_hat: np.ndarray
    inv_sigma: np.ndarray
    x_hat_error: np.ndarray  # |d x_hat_i|, elementwise
    sigma_rel_error: np.ndarray  # |d sigma| / sigma, broadcastable


def standardized(
    x: np.ndarray,
    mean: np.ndarray,
    var: np.ndarray,
    axes: tuple[int, ...],
    eps: float,
    p: Precision,
) -> Standardized:
    """x_hat = (x - mean_S) / sqrt(var_S + eps) and its error bound, batch statistics.

    mean and var are the spec's mean_S and biased var_S of x, broadcastable against it.
    """
    n = int(np.prod([x.shape[a] for a in axes]))
    sigma = np.sqrt(var + eps)
    m = np.max(np.abs(x), axis=axes, keepdims=True)
    gamma = p.gamma(n)
    var_error = gamma * (var + 2 * m * np.sqrt(var)) + (gamma * m) ** 2 + 3 * p.eta + p.eta_stat
    sigma_rel = var_error / (2 * sigma**2) + 2 * p.u + p.u_stat
    x_hat = (x - mean) / sigma
    mean_error = gamma * m + p.u_stat * np.abs(mean) + p.eta + p.eta_stat
    x_hat_error = mean_error / sigma + np.abs(x_hat) * (sigma_rel + 2 * p.u)
    return Standardized(x_hat, 1 / sigma, x_hat_error, sigma_rel)


def fixed_statistics(
    x: np.ndarray, mean: np.ndarray, var: np.ndarray, eps: float, p: Precision
) -> Standardized:
    """x_hat = (x - mean) / sqrt(var + eps) with given (running) statistics: no reduction.

    |d x_hat_i| <= 2 u (|x_i| + |mean|) / sigma + (3 u + u_stat) |x_hat_i|,
    |d sigma| / sigma <= 2 u + u_stat
    """
    sigma = np.sqrt(var + eps)
    x_hat = (x - mean) / sigma
    sigma_rel = 2 * p.u + p.u_stat
    error = 2 * p.u * (np.abs(x) + np.abs(mean)) / sigma + (p.u + sigma_rel) * np.abs(x_hat)
    return Standardized(x_hat, 1 / sigma, error, np.full_like(sigma, sigma_rel))


def affine_bound(
    s: Standardized, weight: np.ndarray | None, bias: np.ndarray | None, p: Precision
) -> np.ndarray:
    """|d y_i| <= |w| |d x_hat_i| + 2 u (|w x_hat_i| + |b|) + u_out |y_i|, w and b broadcast."""
    w = 1.0 if weight is None else np.abs(weight)
    b = 0.0 if bias is None else np.abs(bias)
    y = np.abs(w * s.x_hat) + b
    return w * s.x_hat_error + 2 * p.u * y + p.u_out * y


def standardized_vjp_bound(
    s: Standardized, g: np.ndarray, grad_x: np.ndarray, axes: tuple[int, ...] | None, p: Precision
) -> np.ndarray:
    """The bound of dx = (1/sigma)(g - mean_S g - x_hat mean_S(g x_hat)), g = w * grad_y.

    With m1 = mean_S g, m2 = mean_S(g x_hat) and d m2 = gamma mean|g x_hat| + mean(|g| |d x_hat|):
        B_i = (1/sigma) [gamma mean|g| + |d x_hat_i| |m2| + (|x_hat_i| + |d x_hat_i|) |d m2|
              + 4 u (|g_i| + |m1| + |x_hat_i m2|)] + |dx_i| |d sigma| / sigma + u_out |dx_i|
    The product |d x_hat_i| |d m2| is second order, but not negligible: on ill-conditioned
    input (M / sigma ~ 1 / u) d x_hat reaches 1e-2 while x_hat may be 0 (a constant set),
    and then the computed x_hat_i times the error of m2 is the leading term.
    With fixed statistics (axes None) dx = g / sigma and only the last two terms and 4 u |g_i|
    remain.
    """
    if axes is None:
        return s.inv_sigma * 4 * p.u * np.abs(g) + np.abs(grad_x) * (s.sigma_rel_error + p.u_out)
    n = int(np.prod([g.shape[a] for a in axes]))
    gamma = p.gamma(n)
    mean = lambda a: np.mean(a, axis=axes, keepdims=True)
    m1, m2 = mean(g), mean(g * s.x_hat)
    m2_error = gamma * mean(np.abs(g * s.x_hat)) + mean(np.abs(g) * s.x_hat_error)
    inner = (
        gamma * mean(np.abs(g))
        + s.x_hat_error * np.abs(m2)
        + (np.abs(s.x_hat) + s.x_hat_error) * m2_error
        + 4 * p.u * (np.abs(g) + np.abs(m1) + np.abs(s.x_hat * m2))
    )
    return s.inv_sigma * inner + np.abs(grad_x) * (s.sigma_rel_error + p.u_out)


def parameter_grad_bounds(
    s: Standardized, grad_y: np.ndarray, other_axes: tuple[int, ...], p: Precision
) -> tuple[np.ndarray, np.ndarray]:
    """Bounds of dw = sum(grad_y * x_hat) and db = sum(grad_y) over the non-feature axes.

    |d dw| <= gamma_m sum|grad_y x_hat| + sum(|grad_y| |d x_hat|) + u_out |dw|
    |d db| <= gamma_m sum|grad_y| + u_out |db|

    with gamma_m = (m + 2) max(u, u_stat): a backend may hold these sums over the batch in
    its statistics dtype.
    """
    m = int(np.prod([grad_y.shape[a] for a in other_axes]))
    gamma = (m + 2) * max(p.u, p.u_stat)  # partial sums may be held in the statistics dtype
    total = lambda a: np.sum(a, axis=other_axes)
    dw = total(grad_y * s.x_hat)
    db = total(grad_y)
    dw_bound = (
        gamma * total(np.abs(grad_y * s.x_hat))
        + total(np.abs(grad_y) * s.x_hat_error)
        + p.u_out * np.abs(dw)
    )
    return dw_bound, gamma * total(np.abs(grad_y)) + p.u_out * np.abs(db)


def rms_scaled(
    x: np.ndarray, mean_square: np.ndarray, axes: tuple[int, ...], eps: float, p: Precision
) -> Standardized:
    """x_hat = x / sqrt(mean_S x^2 + eps): a sum of positive terms, so no cancellation.

    |d r| / r <= gamma / 2 + u + u_stat + (2 eta + eta_stat) / (2 r^2),
    |d x_hat_i| <= |x_hat_i| (|d r| / r + u)
    (the underflow of the squares, of their mean and of the stored statistic).
    mean_square is the spec's mean_S(x^2), broadcastable against x.
    """
    n = int(np.prod([x.shape[a] for a in axes]))
    r = np.sqrt(mean_square + eps)
    rel = p.gamma(n) / 2 + p.u + p.u_stat + (2 * p.eta + p.eta_stat) / (2 * r**2)
    x_hat = x / r
    return Standardized(x_hat, 1 / r, np.abs(x_hat) * (rel + p.u), np.broadcast_to(rel, r.shape))


def rms_vjp_bound(
    s: Standardized, g: np.ndarray, grad_x: np.ndarray, axes: tuple[int, ...], p: Precision
) -> np.ndarray:
    """The bound of dx = (1/r)(g - x_hat mean_S(g x_hat)), by the rules above."""
    n = int(np.prod([g.shape[a] for a in axes]))
    mean = lambda a: np.mean(a, axis=axes, keepdims=True)
    m2 = mean(g * s.x_hat)
    m2_error = p.gamma(n) * mean(np.abs(g * s.x_hat)) + mean(np.abs(g) * s.x_hat_error)
    inner = (
        s.x_hat_error * np.abs(m2)
        + np.abs(s.x_hat) * m2_error
        + 3 * p.u * (np.abs(g) + np.abs(s.x_hat * m2))
    )
    return s.inv_sigma * inner + np.abs(grad_x) * (s.sigma_rel_error + p.u_out)


def weight_norm_bounds(
    v: np.ndarray, g: np.ndarray, axes: tuple[int, ...], p: Precision
) -> tuple[np.ndarray, np.ndarray]:
    """w = g v / ||v|| and its bound |d w_i| <= |w_i| (gamma / 2 + 3 u + 2 u_stat + u_out)
    + eta_stat (|v_i| + |g|).

    A backend may hold both ||v|| and the factor g / ||v|| in the statistics dtype (PyTorch's
    half-precision weight_norm computes v * (g / ||v||) so): two roundings in u_stat, and the
    factor may underflow (eta_stat)."""
    n = int(np.prod([v.shape[a] for a in axes]))
    w = g * v / np.sqrt(np.sum(np.square(v), axis=axes, keepdims=True))
    bound = np.abs(w) * (p.gamma(n) / 2 + 3 * p.u + 2 * p.u_stat + p.u_out)
    return w, bound + p.eta_stat * (np.abs(v) + np.abs(g))


def weight_norm_vjp_bounds(
    v: np.ndarray, g: np.ndarray, grad_w: np.ndarray, axes: tuple[int, ...], p: Precision
) -> tuple[np.ndarray, np.ndarray]:
    """Bounds of dg = sum(grad_w * v/||v||) and dv = (g/||v||)(grad_w - (v/||v||) dg), with
    ||v|| and v/||v|| held in the statistics dtype:

    |d dg| <= gamma sum|grad_w v/||v||| + |dg| (gamma / 2 + 2 u + u_stat),
    |d dv_i| <= |g|/||v|| ((2 u + u_stat) |grad_w_i| + |v_i|/||v|| |d dg|
                           + (3 u + 2 u_stat) |v_i dg| / ||v||)
               + |dv_i| (gamma / 2 + 2 u + u_stat)      (each plus u_out times the result)
    """
    n = int(np.prod([v.shape[a] for a in axes]))
    gamma = p.gamma(n)
    norm = np.sqrt(np.sum(np.square(v), axis=axes, keepdims=True))
    direction = v / norm
    dg = np.sum(grad_w * direction, axis=axes, keepdims=True)
    dv = g / norm * (grad_w - direction * dg)
    stat = 2 * p.u + p.u_stat
    dg_error = gamma * np.sum(np.abs(grad_w * direction), axis=axes, keepdims=True) + np.abs(dg) * (
        gamma / 2 + stat
    )
    dv_bound = np.abs(g) / norm * (
        stat * np.abs(grad_w)
        + np.abs(direction) * dg_error
        + (3 * p.u + 2 * p.u_stat) * np.abs(direction * dg)
    ) + np.abs(dv) * (gamma / 2 + stat + p.u_out)
    return dv_bound, dg_error + p.u_out * np.abs(dg)


def batch_statistics_bounds(
    x: np.ndarray, mean: np.ndarray, var: np.ndarray, axes: tuple[int, ...], p: Precision
) -> tuple[np.ndarray, np.ndarray]:
    """Bounds of a batch's mean and biased variance, per pooled set (see the module text);
    mean and var are the spec's, broadcastable against x."""
    n = int(np.prod([x.shape[a] for a in axes]))
    gamma = p.gamma(n)
    m = np.max(np.abs(x), axis=axes, keepdims=True)
    mean_error = gamma * m + p.u_stat * np.abs(mean)
    var_error = gamma * (var + 2 * m * np.sqrt(var)) + (gamma * m) ** 2 + p.u_stat * var
    return mean_error, var_error


def running_update_bound(
    old: np.ndarray,
    old_error: np.ndarray,
    statistic: np.ndarray,
    statistic_error: np.ndarray,
    a: float,
    p: Precision,
) -> np.ndarray:
    """The bound of new = (1 - a) old + a statistic, stored in the storage dtype.

    |d new| <= |1 - a| |d old| + |a| |d statistic|
               + 3 max(u, u_stat) (|(1 - a) old| + |a statistic|)
               + u_stat (|old| + |statistic|) + u_out |new|

    (the running statistics may be held, and updated, in the statistics dtype, where the
    factors a and 1 - a themselves round: |d a| <= u_stat). The absolute values keep it a
    bound for a momentum outside [0, 1], where the update extrapolates.
    """
    new = (1 - a) * old + a * statistic
    return (
        abs(1 - a) * old_error
        + abs(a) * statistic_error
        + 3 * max(p.u, p.u_stat) * (np.abs((1 - a) * old) + np.abs(a * statistic))
        + p.u_stat * (np.abs(old) + np.abs(statistic))
        + p.u_out * np.abs(new)
    )


def intermediates_out_of_range(
    sets: np.ndarray, axes: tuple[int, ...], eps: float, accumulation: str
) -> str | None:
    """What intermediate of a normalization of `sets` (float64, each pooled set S over
    `axes`) the accumulation dtype cannot hold, or None where every one fits:

        sum_S x^2 > largest finite                   the sum of squares overflows
        0 < mean_S x^2 < smallest normal, and
            mean_S x^2 > u * eps                     the mean square underflows, unless eps
                                                     dominates it
    """
    squares = np.square(sets)
    total = np.sum(squares, axis=axes)
    if np.any(total > LARGEST_FINITE[accumulation]):
        return f"the sum of squares of a pooled set exceeds {accumulation}'s largest finite value"
    mean_square = np.mean(squares, axis=axes)
    smallest_normal = SMALLEST_NORMAL[accumulation]
    underflows = (mean_square > 0) & (mean_square < smallest_normal)
    if np.any(underflows & (mean_square > UNIT_ROUNDOFF[accumulation] * eps)):
        return f"the mean square of a pooled set is below {accumulation}'s smallest normal value"
    return None


def stored_state_out_of_range(states: Sequence[np.ndarray], storage: str) -> str | None:
    """Why a layer cannot store its exact state between training steps in `storage` (the dtype
    of its running buffers), or None where it can:

        |running_var_t| > largest finite of storage, for some step t before the last

    The buffer then holds inf, a correct rounding, and every later step computes from it
    (with momentum 1, (1 - a) inf = 0 inf is NaN): the bounds of the spec's exact recurrence
    say nothing about the steps after it."""
    largest = LARGEST_FINITE[storage]
    if any(np.any(np.abs(state) > largest) for state in states):
        return f"a running variance between steps exceeds {storage}'s largest finite value"
    return None
