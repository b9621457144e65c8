"""The template every framework adapter shares: `FrameworkBackend`.

Whatever the framework, an adapter does these things the same way, and they live here once:

- it imports its framework lazily, from declared `Requirement`s, so that a missing framework
  is a reason (`unavailable_reason`), never a crash, and reports the framework's `version`;
- it leaves an argument to the framework by not passing it: `DEFAULT` stands for "the
  framework's default", and `given(...)` keeps the arguments that are not DEFAULT;
- it runs the protocol's calls through one plumbing: `forward` and `forward_with_defaults`;
  `vjp`, which differentiates the parameters only with a weight (as `Gradients` has them) and
  reshapes the gradients to normspec's shapes; `train` and `train_with_defaults`, with the
  guard on the norms it trains and momentum translated once, from the convention of the run
  (`TrainingRun.momentum_weighs`) to the framework's (`conventions.momentum_weighs`).

What is left to an adapter is its framework's own, the hooks below, each type-hinted with
what it must return: how arrays become tensors and back (`input_tensor`, `parameter_tensors`,
`statistics_tensor`, `to_numpy`, `from_framework`), how the framework computes without and
with gradients (`computing`, `recording`), and the framework calls of each code path (`call`,
`run_training`). In the hooks, `inputs.eps` and a `FrameworkRun`'s eps and momentum may be
DEFAULT: pass them through `given`.
"""

from __future__ import annotations

import abc
import contextlib
import importlib
import os
import sys
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from backends.protocol import Backend, Gradients, NormInputs, TrainingResult, TrainingRun
from normspec.vocabulary import MomentumWeighs


class FrameworkDefault:
    """The value of an argument left to the framework: it is not passed at all."""

    def __repr__(self) -> str:
        return "<the framework's default>"

    def __reduce__(self) -> str:
        # pickled by name, so that a run sent to a replica worker keeps its DEFAULTs
        return "DEFAULT"


DEFAULT = FrameworkDefault()


def given(**arguments: Any) -> dict[str, Any]:
    """The keyword arguments to pass to the framework: those not left to its default."""
    return {name: value for name, value in arguments.items() if value is not DEFAULT}


#: gradient(y, sources, grad_y): the gradients of sum(grad_y * y) for each of `sources`.
Gradient = Callable[[Any, list[Any], Any], Sequence[Any]]


@dataclass(frozen=True)
class Requirement:
    """A module an adapter imports, and the pip requirement that installs it.

    environment: variables set, unless already set, before the module is first imported,
    where they configure it (TensorFlow's log level, the backend Keras runs on).
    """

    module: str
    pip: str
    environment: tuple[tuple[str, str], ...] = ()

    def load(self) -> Any:
        """The module, imported on first use (ImportError when it is not installed).

        sys.modules first: adapters call this on every conversion, and import_module's own
        lookup costs more than a small forward pass.
        """
        module = sys.modules.get(self.module)
        if module is None:  # not imported yet, or blocked by None, which import_module reports
            for variable, value in self.environment:
                os.environ.setdefault(variable, value)
            module = importlib.import_module(self.module)
        return module

    def missing(self) -> str | None:
        """None if the module imports, else what to install and why it did not import."""
        try:
            self.load()
        except ImportError as error:
            return f"{self.module} is not installed: pip install {self.pip} ({error})"
        return None


@dataclass(frozen=True)
class FrameworkRun:
    """A TrainingRun as the framework takes it: tensors, and momentum in its own meaning.

    batches:      each batch as `input_tensor` makes it (the framework's layout and device).
    eps:          the run's eps, or DEFAULT.
    momentum:     in the framework's meaning (conventions.momentum_weighs); None for the
                  cumulative average, where conventions.cumulative_average; or DEFAULT.
    running_mean, running_var: the initial running statistics, as `statistics_tensor` makes
                  them; an adapter may update them in place.
    weight, bias: as `parameter_tensors` makes them; both None without affine parameters.
    dtype:        the NumPy dtype of the batches.
    """

    batches: tuple[Any, ...]
    eps: float | FrameworkDefault
    momentum: float | FrameworkDefault | None
    running_mean: Any
    running_var: Any
    weight: Any
    bias: Any
    dtype: np.dtype


class FrameworkBackend(Backend):
    """The protocol's plumbing for an adapter of a framework; subclasses provide the hooks."""

    #: What the adapter imports, its framework first: each missing one is a reason not to run,
    #: and `version` reports the first's, then the others' in parentheses.
    requirements: tuple[Requirement, ...]

    # --- the protocol -----------------------------------------------------------------------

    def unavailable_reason(self) -> str | None:
        for requirement in self.requirements:
            reason = requirement.missing()
            if reason:
                return reason
        return None

    def version(self) -> str:
        try:
            (_, framework), *others = [(r.module, r.load().__version__) for r in self.requirements]
        except ImportError:
            return ""
        return framework + "".join(f" ({module} {version})" for module, version in others)

    def forward(self, norm: str, inputs: NormInputs) -> np.ndarray:
        return self._forward(norm, inputs)

    def forward_with_defaults(self, norm: str, inputs: NormInputs) -> np.ndarray:
        return self._forward(norm, replace(inputs, eps=DEFAULT))

    def vjp(self, norm: str, inputs: NormInputs, grad_y: np.ndarray) -> Gradients:
        self.check(norm, inputs)
        x, weight, bias = self._tensors(norm, inputs)
        with self.recording(_present(_differentiated(inputs, x, weight, bias))) as gradient:
            y, sources = self.call(norm, inputs, x, weight, bias)
        sources = _differentiated(inputs, *sources)
        # grad_y as the output gradient gives exactly dL/dy = grad_y, without forming the sum
        # of grad_y * y in a low precision.
        grad_y = self.input_tensor(norm, grad_y, inputs.x.dtype)
        grads = iter(gradient(y, _present(sources), grad_y))
        return self.to_gradients(
            norm, inputs, tuple(None if s is None else next(grads) for s in sources)
        )

    def train(self, norm: str, run: TrainingRun) -> TrainingResult:
        self.require_estimator(run)
        # The same run, told in the framework's convention: the one translation of momentum.
        momentum = self.framework_momentum(run.momentum, run.momentum_weighs)
        return self._train(
            norm, replace(run, momentum=momentum, momentum_weighs=self.conventions.momentum_weighs)
        )

    def train_with_defaults(
        self,
        norm: str,
        batches: tuple[np.ndarray, ...],
        initial_mean: np.ndarray,
        initial_var: np.ndarray,
    ) -> TrainingResult:
        # A run in the framework's own conventions whose eps and momentum are not passed.
        defaults = TrainingRun(
            batches,
            eps=DEFAULT,  # type: ignore[arg-type]
            momentum=DEFAULT,  # type: ignore[arg-type]
            momentum_weighs=self.conventions.momentum_weighs,
            running_var_estimator=self.conventions.running_var_estimators[0],
            initial_mean=initial_mean,
            initial_var=initial_var,
        )
        return self._train(norm, defaults)

    # --- the translations that are the same for every framework -----------------------------

    def framework_momentum(self, momentum: float | None, weighs: MomentumWeighs) -> float | None:
        """`momentum`, the weight of the statistic `weighs` names, in the meaning this framework
        reads (conventions.momentum_weighs): unchanged when both weigh the same statistic,
        else 1 - momentum. None, the cumulative average, stays None where the framework has
        one (conventions.cumulative_average)."""
        if momentum is None:
            if self.conventions.cumulative_average:
                return None
            raise ValueError(
                f"{self.name} has no cumulative average: momentum=None is not available"
            )
        return momentum if weighs == self.conventions.momentum_weighs else 1.0 - momentum

    def to_gradients(self, norm: str, inputs: NormInputs, grads: tuple[Any, Any, Any]) -> Gradients:
        """Framework gradients of (x, weight, bias) in normspec's shapes and dtype: dL/dx like
        x in normspec's layout, dL/dweight and dL/dbias like the weight."""
        dtype = inputs.x.dtype
        grad_x, grad_weight, grad_bias = (
            None if g is None else self.to_numpy(g, dtype) for g in grads
        )
        shape = np.shape(inputs.weight)
        return Gradients(
            self.from_framework(norm, grad_x),
            None if grad_weight is None else grad_weight.reshape(shape),
            None if grad_bias is None else grad_bias.reshape(shape),
        )

    def check(self, norm: str, inputs: NormInputs) -> None:
        """Raise before any framework call: ValueError for a norm this backend does not
        provide. An adapter adds the inputs its framework refuses by a declared restriction
        (conventions.notes), as Refused."""
        if norm not in self.norms:
            raise ValueError(f"{self.name} does not provide {norm!r}")

    # --- the shared steps -------------------------------------------------------------------

    def _tensors(self, norm: str, inputs: NormInputs) -> tuple[Any, Any, Any]:
        """x, weight and bias of the call as framework tensors."""
        dtype = inputs.x.dtype
        return (
            self.input_tensor(norm, inputs.x, dtype),
            *self.parameter_tensors(norm, inputs.weight, inputs.bias, dtype),
        )

    def _forward(self, norm: str, inputs: NormInputs) -> np.ndarray:
        self.check(norm, inputs)
        with self.computing():
            y, _ = self.call(norm, inputs, *self._tensors(norm, inputs))
        return self.from_framework(norm, self.to_numpy(y, inputs.x.dtype))

    def _train(self, norm: str, run: TrainingRun) -> TrainingResult:
        """`run`, told in the framework's momentum convention, through `run_training`."""
        if norm not in self.trains:
            raise ValueError(
                f"{self.name} trains running statistics of {sorted(self.trains)}, not {norm!r}"
            )
        dtype = run.batches[0].dtype
        with self.computing():
            weight, bias = self.parameter_tensors(norm, run.weight, run.bias, dtype)
            outputs, mean, var, seen = self.run_training(
                norm,
                FrameworkRun(
                    batches=tuple(self.input_tensor(norm, b, dtype) for b in run.batches),
                    eps=run.eps,
                    momentum=run.momentum,
                    running_mean=self.statistics_tensor(run.initial_mean, dtype),
                    running_var=self.statistics_tensor(run.initial_var, dtype),
                    weight=weight,
                    bias=bias,
                    dtype=dtype,
                ),
            )
            return TrainingResult(
                tuple(self.from_framework(norm, self.to_numpy(y, dtype)) for y in outputs),
                self.to_numpy(mean, dtype),
                self.to_numpy(var, dtype),
                seen,
            )

    # --- the hooks: what each framework provides --------------------------------------------

    @abc.abstractmethod
    def input_tensor(self, norm: str, array: np.ndarray, dtype: np.dtype) -> Any:
        """An input-like array (x, v, grad_y, a batch) as a framework tensor in the NumPy
        `dtype`, in the framework's layout for `norm` and on its device."""

    @abc.abstractmethod
    def parameter_tensors(
        self, norm: str, weight: np.ndarray | None, bias: np.ndarray | None, dtype: np.dtype
    ) -> tuple[Any, Any]:
        """weight and bias as framework tensors for inputs of `dtype`; (None, None) when both
        are None, and a missing one of the pair as the framework initializes it."""

    @abc.abstractmethod
    def statistics_tensor(self, array: np.ndarray, dtype: np.dtype) -> Any:
        """An initial running statistic (C,) as a framework tensor, for batches of `dtype`."""

    @abc.abstractmethod
    def to_numpy(self, tensor: Any, dtype: np.dtype) -> np.ndarray:
        """A C-ordered NumPy copy of a framework tensor, in `dtype`, in the tensor's layout."""

    def from_framework(self, norm: str, array: np.ndarray) -> np.ndarray:
        """An output-like array (y, dL/dx) back in normspec's layout (N, C, *spatial); as it is
        for a framework whose tensors have that logical shape."""
        return array

    def computing(self) -> AbstractContextManager[Any]:
        """The context forward passes and training steps run in: no gradients recorded."""
        return contextlib.nullcontext()

    @abc.abstractmethod
    def recording(self, tensors: list[Any]) -> AbstractContextManager[Gradient]:
        """A context in which the framework records what is computed from `tensors`; it
        yields the `Gradient` function that differentiates what it recorded."""

    @abc.abstractmethod
    def call(
        self, norm: str, inputs: NormInputs, x: Any, weight: Any, bias: Any
    ) -> tuple[Any, tuple[Any, Any, Any]]:
        """y = norm(x) as a framework tensor in the framework's layout, and the tensors whose
        gradients stand for (x, weight, bias) in normspec's vocabulary (None where there is
        none). x, weight and bias are the call's tensors; inputs.eps may be DEFAULT."""

    @abc.abstractmethod
    def run_training(self, norm: str, run: FrameworkRun) -> tuple[Sequence[Any], Any, Any, int]:
        """Feed `run.batches` through one layer in training mode: the output of each step and
        the final running mean and variance, as framework tensors in the framework's layout,
        and how many steps the framework counted (len(run.batches) where it counts none)."""


def _differentiated(inputs: NormInputs, x: Any, weight: Any, bias: Any) -> tuple[Any, Any, Any]:
    """What `vjp` differentiates: x, and the parameters only with a weight, as the spec's
    Gradients have them."""
    return (x, weight, bias) if inputs.weight is not None else (x, None, None)


def _present(tensors: Sequence[Any]) -> list[Any]:
    """The tensors that are not None."""
    return [t for t in tensors if t is not None]
