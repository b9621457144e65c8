"""Prepare once, call many: a workload bound to a backend as a call with no conversion in it.

The protocol's `forward` and `vjp` take and return NumPy arrays; for a framework, a call
through them also times the copy of x into a tensor, the layout transpose and the copy back,
which for a large tensor can cost as much as the norm. What `normspec bench` times is the
layer itself:

- A `FrameworkBackend` (torch, TensorFlow, and any adapter written on that template) is
  driven through the adapter's own hooks, the same code path the conformance suite tests:
  `input_tensor` and `parameter_tensors` make the framework tensors once, in the framework's
  layout and on its device; each timed call is `call` (forward, inside `computing()`), or
  `call` inside `recording(...)` and then the gradient it yields (forward+backward). The
  inputs' conversion happens once, in `prepare`; the outputs stay framework tensors. The
  module-based adapters (torch-nn, the Keras layers) load the call's weight and bias into
  their cached layer inside `call`: a copy of C values per call, nothing next to the
  realistic rows, a few small ops in the overhead rows.
- TensorFlow's call is a `tf.function` traced once, in the warm-up, as a TF2 program runs a
  layer; the trace count is checked after the rounds, so a retrace is an error, not a
  silent cost.
- A CUDA device is synchronized before the call returns.
- Any other backend (NumPy, an external adapter on the bare protocol) is called through the
  protocol: `forward`, and `forward` then `vjp`. For NumPy that involves no conversion; for
  another adapter its conversion is part of what is timed, and the report says so.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from backends.framework import FrameworkBackend
from backends.protocol import Backend
from normspec.bench.workloads import Case, make_inputs
from normspec.vocabulary import NormInputs


@dataclass
class Prepared:
    """A case ready to time: `call()` runs it once and returns when the work is done."""

    call: Callable[[], Any]
    #: how the call reaches the kernels, for the report
    path: str
    #: how often a traced function was traced so far (None where nothing is traced)
    traces: Callable[[], int] | None = None

    def check_not_retraced(self) -> None:
        """Raise if the traced function was traced more than once: tracing is not the layer."""
        if self.traces is not None and self.traces() > 1:
            raise RuntimeError(f"the call was traced {self.traces()} times, not once")


def prepare(backend: Backend, case: Case) -> Prepared:
    """`case` on `backend`, ready to call, and called once (built, traced, warm)."""
    inputs, grad_y = make_inputs(case.workload, case.dtype)
    norm = case.workload.norm
    if not backend.supports(norm, case.dtype):
        raise ValueError(f"{backend.name} does not provide {norm} in {case.dtype}")
    if isinstance(backend, FrameworkBackend):
        prepared = _framework(backend, norm, inputs, grad_y, case.mode)
    else:
        prepared = _protocol(backend, norm, inputs, grad_y, case.mode)
    prepared.call()
    return prepared


def _protocol(
    backend: Backend, norm: str, inputs: NormInputs, grad_y: np.ndarray, mode: str
) -> Prepared:
    """The protocol's NumPy-in, NumPy-out calls."""
    if mode == "forward":
        return Prepared(lambda: backend.forward(norm, inputs), "protocol: forward")

    def forward_backward() -> Any:
        backend.forward(norm, inputs)
        return backend.vjp(norm, inputs, grad_y)

    return Prepared(forward_backward, "protocol: forward, then vjp")


def _framework(
    backend: FrameworkBackend, norm: str, inputs: NormInputs, grad_y: np.ndarray, mode: str
) -> Prepared:
    """Framework tensors made once and the adapter's `call` hook, as described above."""
    backend.check(norm, inputs)
    dtype = inputs.x.dtype
    x = backend.input_tensor(norm, inputs.x, dtype)
    weight, bias = backend.parameter_tensors(norm, inputs.weight, inputs.bias, dtype)
    g = backend.input_tensor(norm, grad_y, dtype)

    def forward(x: Any, weight: Any, bias: Any, g: Any) -> Any:
        with backend.computing():
            y, _ = backend.call(norm, inputs, x, weight, bias)
        return y

    def forward_backward(x: Any, weight: Any, bias: Any, g: Any) -> Any:
        # as the adapter's vjp: x, and the parameters the layer has (protocol.Gradients)
        watched = [t for t in (x, weight, bias) if t is not None]
        with backend.recording(watched) as gradient:
            y, sources = backend.call(norm, inputs, x, weight, bias)
        differentiated = [s for s in sources if s is not None]
        return y, gradient(y, differentiated, g)

    step = forward if mode == "forward" else forward_backward
    framework = backend.requirements[0].module
    path = "adapter hooks on framework tensors"
    if framework == "tensorflow":
        return _traced(step, (x, weight, bias, g), path)
    call = lambda: step(x, weight, bias, g)
    if framework == "torch" and getattr(backend, "device", "cpu") != "cpu":
        return Prepared(_synchronized(call), f"{path}, cuda synchronized")
    return Prepared(call, path)


def _traced(step: Callable[..., Any], arguments: tuple[Any, ...], path: str) -> Prepared:
    """`step` as a tf.function, traced on its first call; None arguments stay Python."""
    import tensorflow as tf

    step(*arguments)  # eagerly first: a Keras layer creates its variables outside the graph
    function = tf.function(step)
    return Prepared(
        lambda: function(*arguments),
        f"{path}, tf.function traced once",
        traces=function.experimental_get_tracing_count,
    )


def _synchronized(call: Callable[[], Any]) -> Callable[[], Any]:
    """`call`, returning only when the device has finished it."""
    import torch

    def synchronized() -> Any:
        result = call()
        torch.cuda.synchronize()
        return result

    return synchronized


#: The clocks a round can be timed with. "cpu" is the CPU time of the whole process (every
#: thread of it): on a shared machine it leaves out the time the scheduler gave to other
#: processes, which wall time counts, and with one thread it equals wall time on an idle
#: machine. "wall" is elapsed time: what a multi-threaded run, or a device, needs.
TIMERS: dict[str, Callable[[], float]] = {"cpu": time.process_time, "wall": time.perf_counter}
#: The same clocks, as pytest-benchmark's --benchmark-timer names them.
PYTEST_TIMERS = {"cpu": "time.process_time", "wall": "time.perf_counter"}


def default_timer(threads: int) -> str:
    """cpu time with one thread (the same as elapsed time, less other processes' share);
    wall time with more, where cpu time would add the threads' times up."""
    return "cpu" if threads == 1 else "wall"


def time_call(prepared: Prepared, iterations: int, timer: str = "cpu") -> float:
    """Seconds per call over `iterations` back-to-back calls (one round), on `timer`."""
    clock = TIMERS[timer]
    call = prepared.call
    start = clock()
    for _ in range(iterations):
        call()
    return (clock() - start) / iterations


def calibrate(
    prepared: Prepared, min_round_s: float, warmup_s: float, timer: str = "cpu"
) -> tuple[float, int]:
    """Warm up for `warmup_s`, then the time of one call and the iterations per round that
    make a round last at least `min_round_s` (so the timer's resolution and the loop's own
    cost stay negligible)."""
    deadline = time.perf_counter() + warmup_s
    while time.perf_counter() < deadline:
        prepared.call()
    # a short call: the least of a few, as one that another process interrupted would make
    # its rounds a single call each, and much noisier
    once = time_call(prepared, 1, timer)
    for _ in range(5 if once < min_round_s else 0):
        once = min(once, time_call(prepared, 1, timer))
    return once, max(1, int(np.ceil(min_round_s / max(once, 1e-9))))
