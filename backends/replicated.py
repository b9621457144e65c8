"""Replicated backends: BatchNorm synchronized over R replicas, each holding a share of the batch.

A `ReplicatedBackend` answers `replicated_step` (normspec.vocabulary.ReplicatedRun: the shares
of every step, optional masks, the upstream gradient of the first step, an evaluation input)
with what each replica computed. The protocol's own calls (`forward`, `vjp`, `train` and their
defaults, which the conventions properties make) run the same synchronized layer on the batch
split evenly over `default_replicas` replicas, so a replicated backend's conventions are
measured through its synchronized path.

Frameworks need their replica configuration (logical devices, XLA flags) before they
initialise, which no other backend in the same process may see: a `WorkerBackend` therefore
runs its framework in a worker process of its own (backends/replica_worker.py) and only sends
NumPy arrays to it and back.
"""

from __future__ import annotations

import abc
import importlib.metadata
import importlib.util
from dataclasses import replace

import numpy as np

from backends.framework import DEFAULT
from backends.protocol import Backend, Gradients, NormInputs, TrainingResult, TrainingRun
from backends.replica_worker import Worker, WorkerError
from normspec.vocabulary import MomentumWeighs, ReplicatedResult, ReplicatedRun


def even_split(count: int, replicas: int) -> tuple[int, ...]:
    """The share sizes of `count` samples over `replicas` replicas (fewer if too few samples),
    as equal as they can be, the larger first."""
    replicas = max(1, min(replicas, count))
    return tuple(len(a) for a in np.array_split(np.arange(count), replicas))


def split(x: np.ndarray, sizes: tuple[int, ...]) -> tuple[np.ndarray, ...]:
    """x cut along the batch axis into shares of `sizes`."""
    return tuple(np.split(x, np.cumsum(sizes)[:-1], axis=0))


class ReplicatedBackend(Backend):
    """BatchNorm synchronized across replicas; the properties of
    properties/test_replicated_batch_norm.py and the conventions run it, no others."""

    norms = frozenset({"batch_norm"})
    trains = frozenset({"batch_norm"})
    #: The replica counts R the backend runs.
    replicas: tuple[int, ...] = (2, 3, 4)
    #: R for the protocol's own calls (forward, vjp, train).
    default_replicas: int = 2
    #: Whether a share may hold samples masked out of the statistics (Flax's `mask`).
    masks: bool = False
    replicated = True

    @abc.abstractmethod
    def replicated_step(self, norm: str, run: ReplicatedRun) -> ReplicatedResult:
        """The synchronized steps of `run` (whose momentum `translate` tells in this
        framework's convention)."""

    def translate(self, run: ReplicatedRun) -> ReplicatedRun:
        """`run` with momentum in this framework's meaning; the one translation of momentum."""
        self._require(run)
        if run.momentum is None or run.momentum is DEFAULT:
            return run
        weighs = self.conventions.momentum_weighs
        momentum = run.momentum if run.momentum_weighs == weighs else 1.0 - run.momentum
        return replace(run, momentum=momentum, momentum_weighs=weighs)

    def _require(self, run: ReplicatedRun) -> None:
        if run.replicas not in self.replicas:
            raise ValueError(f"{self.name} runs {self.replicas} replicas, not {run.replicas}")
        if run.masks is not None and not self.masks:
            raise ValueError(f"{self.name}: the framework has no mask for shares")
        if run.momentum is None and not self.conventions.cumulative_average:
            raise ValueError(f"{self.name} has no cumulative average: momentum=None")
        if run.running_var_estimator not in self.conventions.running_var_estimators:
            raise ValueError(
                f"{self.name}: the running variance is built from the "
                f"{' or '.join(self.conventions.running_var_estimators)} batch variance"
            )

    # --- the protocol, through the synchronized layer on an even split ----------------------

    def _sizes(self, x: np.ndarray) -> tuple[int, ...]:
        sizes = even_split(x.shape[0], self.default_replicas)
        if len(sizes) not in self.replicas:  # a batch of one sample: a replica and an empty one
            raise ValueError(f"{self.name}: a batch of {x.shape[0]} cannot be split over replicas")
        return sizes

    def _one_step(
        self, inputs: NormInputs, grad_y: np.ndarray | None = None, eps: object = None
    ) -> ReplicatedResult:
        x = inputs.x
        sizes = self._sizes(x)
        channels = x.shape[1]
        statistics = dict(
            initial_mean=np.zeros(channels, x.dtype), initial_var=np.ones(channels, x.dtype)
        )
        if not inputs.training:
            statistics = dict(initial_mean=inputs.running_mean, initial_var=inputs.running_var)
        run = ReplicatedRun(
            shares=(split(x, sizes),) if inputs.training else (),
            eps=inputs.eps if eps is None else eps,
            momentum=DEFAULT,
            momentum_weighs=self.conventions.momentum_weighs,
            running_var_estimator=self.conventions.running_var_estimators[0],
            weight=inputs.weight,
            bias=inputs.bias,
            grad_y=None if grad_y is None else split(grad_y, sizes),
            evaluate=() if inputs.training else split(x, sizes),
            **statistics,
        )
        return self.replicated_step("batch_norm", run)

    def _check_norm(self, norm: str) -> None:
        if norm not in self.norms:
            raise ValueError(f"{self.name} does not provide {norm!r}")

    def forward(self, norm: str, inputs: NormInputs) -> np.ndarray:
        self._check_norm(norm)
        result = self._one_step(inputs)
        return np.concatenate(result.outputs[0] if inputs.training else result.evaluation)

    def forward_with_defaults(self, norm: str, inputs: NormInputs) -> np.ndarray:
        self._check_norm(norm)
        result = self._one_step(inputs, eps=DEFAULT)
        return np.concatenate(result.outputs[0] if inputs.training else result.evaluation)

    def vjp(self, norm: str, inputs: NormInputs, grad_y: np.ndarray) -> Gradients:
        self._check_norm(norm)
        if not inputs.training:
            raise ValueError(f"{self.name}: gradients are of the synchronized training step")
        result = self._one_step(inputs, grad_y)
        return Gradients(np.concatenate(result.grad_x), result.grad_weight, result.grad_bias)

    def train(self, norm: str, run: TrainingRun) -> TrainingResult:
        self._check_norm(norm)
        sizes = self._sizes(run.batches[0])
        replicated = ReplicatedRun(
            shares=tuple(split(b, sizes) for b in run.batches),
            eps=run.eps,
            momentum=run.momentum,
            momentum_weighs=run.momentum_weighs,
            running_var_estimator=run.running_var_estimator,
            initial_mean=run.initial_mean,
            initial_var=run.initial_var,
            weight=run.weight,
            bias=run.bias,
        )
        result = self.replicated_step(norm, replicated)
        return TrainingResult(
            tuple(np.concatenate(step) for step in result.outputs),
            result.running_mean[0],
            result.running_var[0],
            len(run.batches),
        )

    def train_with_defaults(
        self,
        norm: str,
        batches: tuple[np.ndarray, ...],
        initial_mean: np.ndarray,
        initial_var: np.ndarray,
    ) -> TrainingResult:
        weighs: MomentumWeighs = self.conventions.momentum_weighs
        run = TrainingRun(
            batches,
            eps=DEFAULT,  # type: ignore[arg-type]
            momentum=DEFAULT,  # type: ignore[arg-type]
            momentum_weighs=weighs,
            running_var_estimator=self.conventions.running_var_estimators[0],
            initial_mean=initial_mean,
            initial_var=initial_var,
        )
        return self.train(norm, run)


class WorkerBackend(ReplicatedBackend):
    """A replicated backend whose framework runs in a worker process configured for
    max(replicas) devices before the framework initialises (see backends/replica_worker.py)."""

    #: "module:Class" of the engine the worker builds: it answers `step(norm, run)`.
    engine: str
    #: (module, distribution) of what the engine imports, its framework first: for
    #: availability (found without importing it here) and the version.
    distributions: tuple[tuple[str, str], ...]
    #: Environment variables the worker starts with (device counts, log levels).
    environment: tuple[tuple[str, str], ...] = ()

    def __init__(self) -> None:
        self._worker = None
        self._reason: str | None = None
        self._asked = False

    def unavailable_reason(self) -> str | None:
        """Why not, if a framework is not installed or its worker cannot start it (asked once:
        the worker then stays up for the calls)."""
        if self._asked:
            return self._reason
        self._asked = True
        for module, distribution in self.distributions:
            if importlib.util.find_spec(module) is None:
                self._reason = f"{module} is not installed: pip install {distribution}"
                return self._reason
        try:
            self._call("ready")
        except (WorkerError, ImportError) as error:
            last = str(error).strip().splitlines()[-1]
            self._reason = f"its worker process cannot start the framework: {last}"
        return self._reason

    def version(self) -> str:
        try:
            first, *others = [(m, importlib.metadata.version(d)) for m, d in self.distributions]
        except importlib.metadata.PackageNotFoundError:
            return ""
        return first[1] + "".join(f" ({d} {v})" for d, v in others)

    def replicated_step(self, norm: str, run: ReplicatedRun) -> ReplicatedResult:
        self._check_norm(norm)
        self._require(run)
        return self._call("step", norm, self.translate(run))

    def _call(self, method: str, *arguments: object) -> object:
        if self._worker is None:
            self._worker = Worker(self.engine, dict(self.environment))
        return self._worker.call(method, *arguments)
