"""A backend as the properties call it: refusals become rejections, outputs are checked.

Every property calls its backend through `CheckedBackend`, which adds two things to the
adapter protocol of `backends.protocol` without the adapters knowing Hypothesis:

* A declared refusal (`backends.protocol.Refused`) inside a Hypothesis test discards the
  example, as `hypothesis.reject()` does; outside one (the conventions probes) it propagates.
* Every result is checked against what the protocol promises before any number is compared:
  NumPy arrays (not lists, not framework tensors), in the shape of the input and in its
  dtype (a float16 input gives a float16 output), gradients for exactly the parameters the
  call has, one output per training step and running statistics of shape (C,). A backend
  that returns float64 for a float16 input would otherwise be judged on numbers it did not
  round, and pass.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from hypothesis import currently_in_test_context, reject

from backends.protocol import Backend, Refused
from normspec.vocabulary import (
    Gradients,
    NormInputs,
    ReplicatedResult,
    ReplicatedRun,
    TrainingResult,
    TrainingRun,
)
from properties.recording import Recorder


def _array(a: np.ndarray) -> str:
    return f"{a.dtype}{tuple(a.shape)}"


def describe(call_input: object) -> str:
    """A short description of a call's input: shapes, dtypes and parameters. It is written
    before every call, so it is cheap: the case being checked, journaled with it, rebuilds
    the values."""
    if isinstance(call_input, TrainingRun):
        batches = ", ".join(_array(b) for b in call_input.batches)
        return f"batches [{batches}], eps={call_input.eps!r}, momentum={call_input.momentum!r}"
    if isinstance(call_input, NormInputs):
        parts = [f"x {_array(call_input.x)}"]
        for name in ("eps", "num_groups", "normalized_shape", "dim", "training"):
            value = getattr(call_input, name)
            if value is not None:
                parts.append(f"{name}={value!r}")
        return ", ".join(parts)
    if isinstance(call_input, ReplicatedRun):
        sizes = [len(x) for x in (call_input.shares[0] if call_input.shares else ())]
        return f"{call_input.replicas} replicas, shares {sizes}, steps {len(call_input.shares)}"
    if isinstance(call_input, tuple):  # train_with_defaults: the batches
        return "batches [" + ", ".join(_array(b) for b in call_input) + "]"
    return repr(call_input)


class ProtocolError(AssertionError):
    """An adapter returned something the protocol does not allow (type, shape or dtype)."""


def check_array(what: str, value: object, shape: tuple[int, ...], dtype: np.dtype) -> None:
    """`value` must be a NumPy array of `shape` and `dtype`."""
    __tracebackhide__ = True
    if not isinstance(value, np.ndarray):
        raise ProtocolError(
            f"{what} must be a numpy.ndarray of shape {shape} and dtype {dtype}, "
            f"got a {type(value).__module__}.{type(value).__qualname__}"
        )
    if value.shape != tuple(shape):
        raise ProtocolError(f"{what} must have shape {tuple(shape)}, got {value.shape}")
    if value.dtype != dtype:
        raise ProtocolError(f"{what} must have the dtype of the input, {dtype}, got {value.dtype}")


def check_gradients(grads: object, inputs: NormInputs, norm: str) -> None:
    """dL/dx like x; dL/dweight (and dL/dbias, except for rms_norm) like the weight when the
    call has one, else None."""
    __tracebackhide__ = True
    if not isinstance(grads, Gradients):
        raise ProtocolError(
            f"vjp must return normspec.vocabulary.Gradients, got {type(grads).__qualname__}"
        )
    dtype = inputs.x.dtype
    check_array("vjp's dL/dx", grads.x, inputs.x.shape, dtype)
    if inputs.weight is None:
        return
    check_array("vjp's dL/dweight", grads.weight, inputs.weight.shape, dtype)
    if norm not in ("rms_norm", "weight_norm") and grads.bias is not None:
        check_array("vjp's dL/dbias", grads.bias, inputs.weight.shape, dtype)


def check_training(result: object, batches: tuple[np.ndarray, ...]) -> None:
    """One output per batch, shaped like it; running statistics of shape (C,); all in the
    batches' dtype."""
    __tracebackhide__ = True
    if not isinstance(result, TrainingResult):
        raise ProtocolError(
            f"train must return normspec.vocabulary.TrainingResult, got {type(result).__qualname__}"
        )
    if len(result.outputs) != len(batches):
        raise ProtocolError(
            f"train must return one output per batch: {len(batches)}, got {len(result.outputs)}"
        )
    dtype = batches[0].dtype
    for step, (y, batch) in enumerate(zip(result.outputs, batches, strict=True), start=1):
        check_array(f"train's output of step {step}", y, batch.shape, dtype)
    channels = (batches[0].shape[1],)
    check_array("train's running_mean", result.running_mean, channels, dtype)
    check_array("train's running_var", result.running_var, channels, dtype)


class CheckedBackend:
    """`backend`, with its calls checked against the protocol (see the module docstring).

    Every attribute that is not a call (name, conventions, norms, dtypes, ...) is the
    backend's own."""

    def __init__(self, backend: Backend, recorder: Recorder | None = None) -> None:
        self.unchecked = backend
        self.recorder = recorder

    def __getattr__(self, name: str) -> Any:
        return getattr(self.unchecked, name)

    def __repr__(self) -> str:
        return repr(self.unchecked)

    def _call(self, call, norm, *args):
        recorder = self.recorder
        if recorder is not None and recorder.journal is not None:
            # journal the input first: the call may not return
            recorder.calling(self.unchecked.name, call.__name__, norm, describe(args[0]))
        try:
            return call(norm, *args)
        except Refused:
            if currently_in_test_context():
                reject()
            raise

    def forward(self, norm: str, inputs: NormInputs) -> np.ndarray:
        y = self._call(self.unchecked.forward, norm, inputs)
        check_array("forward's output", y, inputs.x.shape, inputs.x.dtype)
        return y

    def forward_with_defaults(self, norm: str, inputs: NormInputs) -> np.ndarray:
        y = self._call(self.unchecked.forward_with_defaults, norm, inputs)
        check_array("forward_with_defaults's output", y, inputs.x.shape, inputs.x.dtype)
        return y

    def vjp(self, norm: str, inputs: NormInputs, grad_y: np.ndarray) -> Gradients:
        grads = self._call(self.unchecked.vjp, norm, inputs, grad_y)
        check_gradients(grads, inputs, norm)
        return grads

    def train(self, norm: str, run: TrainingRun) -> TrainingResult:
        result = self._call(self.unchecked.train, norm, run)
        check_training(result, run.batches)
        return result

    def train_with_defaults(
        self,
        norm: str,
        batches: tuple[np.ndarray, ...],
        initial_mean: np.ndarray,
        initial_var: np.ndarray,
    ) -> TrainingResult:
        result = self._call(
            self.unchecked.train_with_defaults, norm, batches, initial_mean, initial_var
        )
        check_training(result, batches)
        return result

    def replicated_step(self, norm: str, run: ReplicatedRun) -> ReplicatedResult:
        """A replicated backend's synchronized steps: each replica's outputs, input gradient
        and evaluation shaped like its share, in its dtype; statistics (C,)."""
        result = self._call(self.unchecked.replicated_step, norm, run)
        first = run.shares[0] if run.shares else run.evaluate
        dtype, channels = first[0].dtype, (first[0].shape[1],)
        for step, (outputs, shares) in enumerate(zip(result.outputs, run.shares, strict=True)):
            for r, (y, x) in enumerate(zip(outputs, shares, strict=True)):
                check_array(f"replica {r}'s output of step {step + 1}", y, x.shape, dtype)
        for r, (y, x) in enumerate(zip(result.evaluation, run.evaluate, strict=True)):
            check_array(f"replica {r}'s evaluation output", y, x.shape, dtype)
        for r, (mean, var) in enumerate(zip(result.running_mean, result.running_var, strict=True)):
            check_array(f"replica {r}'s running_mean", mean, channels, dtype)
            check_array(f"replica {r}'s running_var", var, channels, dtype)
        if run.grad_y is not None:
            for r, (dx, x) in enumerate(zip(result.grad_x, run.shares[0], strict=True)):
                check_array(f"replica {r}'s dL/dx", dx, x.shape, dtype)
            if run.weight is not None:
                check_array("dL/dweight summed over replicas", result.grad_weight, channels, dtype)
                check_array("dL/dbias summed over replicas", result.grad_bias, channels, dtype)
        return result
