"""The adapter protocol: what a backend must provide for normspec to test it.

A backend receives and returns NumPy arrays in normspec's vocabulary and its channels-first
layout, (N, C, *spatial); everything framework-specific (names, layouts, dtypes, devices,
layer state) is translated inside the adapter. See README.md, "Writing an adapter".
"""

from __future__ import annotations

import abc
from dataclasses import dataclass, field

import numpy as np

from normspec.vocabulary import (
    NORMS,
    Gradients,
    MomentumWeighs,
    NormInputs,
    TrainingResult,
    TrainingRun,
    VarianceEstimator,
)

__all__ = [
    "Backend",
    "Conventions",
    "Gradients",
    "NormInputs",
    "Refused",
    "TrainingResult",
    "TrainingRun",
]


class Refused(Exception):  # noqa: N818  (a refusal is not an error of the adapter)
    """The framework refuses this input by a documented restriction (say, eps = 0 in
    PyTorch's training-mode BatchNorm). Adapters raise it only for restrictions their
    Conventions.notes declare. The property layer turns it into a rejected example, so a
    declared restriction never reads as a failure; a property whose every example is refused
    still fails, as unsatisfiable."""


@dataclass(frozen=True)
class Conventions:
    """What a framework chose where the math leaves a choice. Data, verified by a property.

    default_eps: the eps each norm uses when none is given: a number, "finfo" for the machine
        epsilon of the accumulation dtype, or None where there is no default (eps required,
        or the norm has no eps).
    momentum_weighs: "new" if momentum is the weight of the new batch statistic (PyTorch),
        "old" if it is the weight of the old running value (Keras).
    default_momentum: the momentum used when none is given.
    running_var_estimators: the batch variances the running variance can be built from,
        "unbiased" (Bessel-corrected) or "biased"; the first is the framework's default.
    cumulative_average: whether momentum=None (the cumulative moving average) exists.
    layout: the memory layout the framework's layers compute in ("channels_first" (N, C, ...)
        or "channels_last" (N, ..., C)); the adapter transposes to and from it.
    default_affine: whether the layers have a learnable weight and bias by default.
    zero_variance_zero_eps: what a constant slice gives with eps = 0: "nan" (0/0), "zero"
        or "refused"; one value for every norm, or a value per norm.
    notes: anything else a reader of the conventions table should know, by topic.
    """

    default_eps: dict[str, float | str | None]
    momentum_weighs: MomentumWeighs
    default_momentum: float | None
    running_var_estimators: tuple[VarianceEstimator, ...]
    cumulative_average: bool
    layout: str
    default_affine: bool
    zero_variance_zero_eps: str | dict[str, str]
    notes: dict[str, str] = field(default_factory=dict)

    def zero_variance(self, norm: str) -> str:
        """What a constant slice of `norm` gives with eps = 0."""
        if isinstance(self.zero_variance_zero_eps, str):
            return self.zero_variance_zero_eps
        return self.zero_variance_zero_eps[norm]


class Backend(abc.ABC):
    """An implementation of the norms, adapted to normspec's vocabulary."""

    #: The name the CLI and the report use.
    name: str
    #: The norms this backend provides; the others are "not provided", never failures.
    norms: frozenset[str] = frozenset(NORMS)
    #: The dtypes the backend accepts, by NumPy name ("bfloat16" via ml_dtypes).
    dtypes: tuple[str, ...] = ("float32", "float64")
    #: Norms whose running statistics can be trained with `train`.
    trains: frozenset[str] = frozenset({"batch_norm"})
    conventions: Conventions

    def unavailable_reason(self) -> str | None:
        """None if the backend can run here, else why not (a framework or device missing)."""
        return None

    def supports(self, norm: str, dtype: str) -> bool:
        """Whether `norm` is provided for inputs of `dtype`."""
        return norm in self.norms and dtype in self.dtypes

    def accumulation_dtype(self, dtype: str) -> str:
        """The dtype the backend accumulates reductions in for inputs of `dtype`."""
        return dtype

    def statistics_dtype(self, dtype: str, norm: str) -> str:
        """The dtype the backend holds computed statistics (mean, 1/sigma, ||v||) in, for
        inputs of `dtype`: the accumulation dtype unless it rounds them to another."""
        return self.accumulation_dtype(dtype)

    def version(self) -> str:
        """The version of the framework under test."""
        return ""

    @abc.abstractmethod
    def forward(self, norm: str, inputs: NormInputs) -> np.ndarray:
        """y = norm(x) in the dtype of `inputs.x`."""

    @abc.abstractmethod
    def vjp(self, norm: str, inputs: NormInputs, grad_y: np.ndarray) -> Gradients:
        """The gradients of sum(grad_y * norm(x)) for x and the affine parameters."""

    @abc.abstractmethod
    def train(self, norm: str, run: TrainingRun) -> TrainingResult:
        """Feed `run.batches` through one layer in training mode; return its running stats."""

    @abc.abstractmethod
    def forward_with_defaults(self, norm: str, inputs: NormInputs) -> np.ndarray:
        """`forward` with every default of the framework: its own eps (inputs.eps is ignored)
        and its default axis for its declared layout. Verifies the declared conventions."""

    @abc.abstractmethod
    def train_with_defaults(
        self,
        norm: str,
        batches: tuple[np.ndarray, ...],
        initial_mean: np.ndarray,
        initial_var: np.ndarray,
    ) -> TrainingResult:
        """`train` with the framework's default eps, momentum and running variance, from the
        given initial running statistics and without affine parameters."""

    def require_estimator(self, run: TrainingRun) -> None:
        """Raise ValueError unless the framework builds its running variance from the batch
        variance `run` asks for (conventions.running_var_estimators)."""
        available = self.conventions.running_var_estimators
        if run.running_var_estimator not in available:
            raise ValueError(
                f"{self.name}: the running variance is built from the "
                f"{' or '.join(available)} batch variance; "
                f"running_var_estimator={run.running_var_estimator!r} is not available"
            )

    def __repr__(self) -> str:
        return f"<backend {self.name}>"
