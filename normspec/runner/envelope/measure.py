"""One cell of the envelope: every backend on the same inputs, against the spec and its bound.

For each seed the cell's inputs go to every backend that provides the norm at that dtype;
each output is compared with the spec's value under the tolerance model's bound for that
backend's precision (`properties.assertions.error_ratio`, NaN-aware). A backend's figure for
the cell is its worst error / bound over the seeds. So that a backend and its peers are
compared on one scale, each output is also measured against the bound of every other
precision in the cell (`Observation.under`): a peer's error is read in units of the bound of
the backend it is compared with.

Two facts of the inputs are kept with it, because they say what kind of failure a bad cell
is: the largest exact sum of squares of a pooled set (where it exceeds the largest finite
number of a backend's accumulation dtype, a kernel that forms it overflows although the
output itself is ordinary), and the error / bound of a correctly rounded output (the floor
below which two backends cannot be told apart: see `records.OUTLIER_FACTOR`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from backends.protocol import Backend, Refused
from normspec import reference
from normspec.reference import Expected
from normspec.runner.envelope.grid import Grid, cell_inputs
from normspec.tolerance import LARGEST_FINITE, SMALLEST_SUBNORMAL, UNIT_ROUNDOFF, Precision
from normspec.vocabulary import NormInputs
from properties.assertions import error_ratio, precision


@dataclass(frozen=True)
class Cell:
    """Where on the grid: a norm at a dtype, and the magnitude, conditioning and size."""

    norm: str
    dtype: str
    magnitude: float
    conditioning: float
    size: int


@dataclass
class Observation:
    """What one backend did on one cell, over its seeds."""

    #: the backend's storage, accumulation and statistics dtypes: whose bound it is judged by
    precision: Precision
    #: the worst error / bound over the seeds under the bound of each precision in the cell
    #: (inf where an output is NaN or inf)
    under: dict[Precision, float] = field(default_factory=dict)
    #: some output NaN or inf where the exact value is finite
    non_finite: bool = False
    #: some output identically zero where the exact value is not
    all_zero: bool = False
    #: the error / bound of the exact value rounded once to the dtype (half an ulp)
    rounding: float = 0.0
    #: error / bound > 1 on a seed where the bound holds
    outside: bool = False
    #: error / bound > 1 on a seed where the model's first-order bound does not hold
    bound_void: bool = False
    #: why there is no figure: the backend refused the input, or raised
    refused: str | None = None
    error: str | None = None

    @property
    def measured(self) -> bool:
        """Whether the backend gave an output on every seed."""
        return self.refused is None and self.error is None

    @property
    def error_over_bound(self) -> float:
        """The worst error / bound over the seeds, under the backend's own bound."""
        return self.under.get(self.precision, 0.0)


@dataclass
class Measurement:
    """A cell, what each backend did on it, and the facts of its inputs."""

    cell: Cell
    observations: dict[str, Observation]
    #: the largest exact sum of squares of a pooled set, over the seeds
    sum_of_squares: float = 0.0
    #: the smallest exact sum of squares of a pooled set plus |S| eps (what a kernel takes
    #: the square root of, times |S|), over the seeds
    least_sum_of_squares: float = math.inf
    #: whether some input is subnormal in its dtype (kernels that flush them read 0)
    subnormal_inputs: bool = False
    #: why the spec cannot judge this cell (its own float64 arithmetic overflows), or None
    beyond_reference: str | None = None


def measure(cell: Cell, grid: Grid, backends: Mapping[str, Backend]) -> Measurement:
    """Run every backend of `backends` (each provides cell.norm at cell.dtype) on the cell's
    inputs for each seed of `grid`."""
    observations = {
        name: Observation(precision(b, cell.dtype, cell.norm)) for name, b in backends.items()
    }
    result = Measurement(cell, observations)
    for seed in range(grid.seeds):
        inputs = cell_inputs(
            cell.norm, cell.dtype, cell.magnitude, cell.conditioning, cell.size, seed, grid.eps
        )
        result.beyond_reference = _facts(result, inputs)
        if result.beyond_reference:
            return result
        outputs = {
            name: _output(observations[name], backend, cell.norm, inputs)
            for name, backend in backends.items()
            if observations[name].measured
        }
        judges = {}
        for p in dict.fromkeys(o.precision for o in observations.values()):
            judges[p] = _Judge(cell.norm, inputs, p, reference.forward(cell.norm, inputs, p))
            if not np.all(np.isfinite(judges[p].value)):
                result.beyond_reference = "the spec's value is not finite (0 / 0, or overflow)"
                return result
        for name, observed in outputs.items():
            if observed is not None:
                _judge(observations[name], observed, judges, cell.dtype)
    return result


def _facts(result: Measurement, inputs: NormInputs) -> str | None:
    """Fold the facts of one seed's inputs into `result`; why the spec cannot judge them."""
    cell = result.cell
    view, axes = reference.pooled_sets(cell.norm, inputs)
    with np.errstate(over="ignore"):
        sums = np.sum(np.square(view), axis=axes)
    result.sum_of_squares = max(result.sum_of_squares, float(np.max(sums)))
    least = float(np.min(sums)) + cell.size * inputs.eps
    result.least_sum_of_squares = min(result.least_sum_of_squares, least)
    magnitude = np.abs(view)
    tiny = smallest_normal(cell.dtype)
    result.subnormal_inputs |= bool(np.any((magnitude > 0) & (magnitude < tiny)))
    if not math.isfinite(result.sum_of_squares):
        return "the exact sum of squares overflows float64"
    return None


def _output(
    seen: Observation, backend: Backend, norm: str, inputs: NormInputs
) -> np.ndarray | None:
    """The backend's output in float64, or None with the reason kept in `seen`."""
    try:
        y = backend.forward(norm, inputs)
    except Refused as refusal:  # a declared restriction: no figure, and said so
        seen.refused = str(refusal)
        return None
    except Exception as error:  # a crash on this input is a finding, shown as such
        seen.error = f"{type(error).__name__}: {error}"
        return None
    observed = np.asarray(y, dtype=np.float64)
    if observed.shape != inputs.x.shape:
        seen.error = f"output shape {observed.shape}, expected {inputs.x.shape}"
        return None
    return observed


def smallest_normal(dtype: str) -> float:
    """The smallest positive normal number of `dtype`: 2 u times it is the smallest subnormal."""
    return SMALLEST_SUBNORMAL[dtype] / (2 * UNIT_ROUNDOFF[dtype])


#: Beyond this bound on |d sigma| / sigma the tolerance model's first-order bound does not
#: hold: the computed variance may be far below the exact one, even 0, and x_hat as large as
#: |x - mean| / sqrt(eps), for a kernel that is correct to the model's own rounding errors.
SIGMA_VOID = 0.5


class _Judge:
    """The spec's value for one seed and one precision, and what it takes to judge an output:
    the bound, the error / bound of the value rounded once to the storage dtype, and
    (computed only when an output is outside the bound) whether the bound holds there."""

    def __init__(self, norm: str, inputs: NormInputs, p: Precision, exact: Expected) -> None:
        self.norm, self.inputs, self.p = norm, inputs, p
        self.value = exact.value
        self.bound = np.broadcast_to(np.asarray(exact.bound, dtype=np.float64), self.value.shape)
        self.rounding = float(np.max(p.u_out * np.abs(self.value) / self.bound))
        self._void: bool | None = None

    @property
    def void(self) -> bool:
        """Whether the model's bound on |d sigma| / sigma reaches SIGMA_VOID somewhere."""
        if self._void is None:
            if self.norm == "weight_norm":  # no standardization: ||v|| errs by gamma / 2 at most
                self._void = False
            else:
                s = reference.standardized(self.norm, self.inputs, self.p)
                self._void = bool(np.max(s.sigma_rel_error) >= SIGMA_VOID)
        return self._void


def _judge(seen: Observation, observed: np.ndarray, judges: dict, dtype: str) -> None:
    """Fold one seed's output into `seen`: its error / bound under every judge, and, under its
    own, whether it is non-finite, all zero, outside a bound that holds or a void one."""
    finite = np.isfinite(observed)
    for p, judge in judges.items():
        if finite.all():
            # error_ratio's value where the observed, the exact value and the bound (> 0, it
            # carries the underflow term) are all finite numbers, at a third of its cost
            worst = float(np.max(np.abs(observed - judge.value) / judge.bound, initial=0.0))
        else:
            ratio = error_ratio(observed, judge.value, judge.bound, LARGEST_FINITE[dtype])
            worst = float(ratio.max(initial=0.0))
        seen.under[p] = max(seen.under.get(p, 0.0), worst)
        if p != seen.precision:
            continue
        seen.non_finite |= bool(np.any(~finite & np.isfinite(judge.value)))
        # all zeros is a failure of its own only where it is outside the bound: a set whose
        # values round to one number has an exact output of about 0 too
        seen.all_zero |= bool(worst > 1 and not observed.any() and judge.value.any())
        seen.rounding = max(seen.rounding, judge.rounding)
        if worst > 1:
            if judge.void:
                seen.bound_void = True
            else:
                seen.outside = True
