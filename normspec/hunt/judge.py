"""Which backend call of a failing example left its bound: the call a reproducer replays.

A property fails when some comparison leaves its bound, and almost every comparison is built
from the bounds of single calls against the spec (forward, VJP, k training steps), so a
failing example nearly always holds one call whose own output leaves its own bound. This
module judges each call of the example against the spec (`normspec.reference`), elementwise,
and names the worst: the backend, the method, the quantity (y, dL/dx, running_var, ...), the
element, the observed and exact values and the bound there. A call that raised is a culprit
too. Runs in the pytest child, on the example Hypothesis reports (and a few on the way).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from backends.protocol import Refused
from normspec import reference
from normspec.errors import NormParameterError
from normspec.reference import Expected
from normspec.tolerance import LARGEST_FINITE
from normspec.vocabulary import NormInputs, TrainingRun
from properties.assertions import error_ratio, precision

#: The protocol's calls a reproducer can replay.
REPLAYABLE = ("forward", "vjp", "train")


@dataclass
class Call:
    """One call of a backend in an example: its input arguments and what it returned or
    raised. `backend` is the adapter itself (not the protocol-checking wrapper)."""

    backend: Any
    method: str
    norm: str
    args: tuple
    result: Any = None
    error: BaseException | None = None


@dataclass
class Verdict:
    """The worst quantity of one call against the spec: ratio = error / bound at `index`."""

    call: Call
    quantity: str
    ratio: float
    index: tuple[int, ...]
    observed: float
    exact: float
    bound: float
    #: how many elements leave their bound, of how many
    outside: int = 0
    size: int = 0
    extra: dict = field(default_factory=dict)


def _quantities(call: Call) -> list[tuple[str, np.ndarray, Expected, str]]:
    """(name, observed, expected, dtype) for each compared output of the call."""
    backend, norm = call.backend, call.norm
    if call.method == "forward":
        (inputs,) = call.args
        dtype = inputs.x.dtype.name
        expected = reference.forward(norm, inputs, precision(backend, dtype, norm))
        return [("y", call.result, expected, dtype)]
    if call.method == "vjp":
        inputs, grad_y = call.args
        dtype = inputs.x.dtype.name
        grad64 = np.asarray(grad_y, dtype=np.float64)
        expected = reference.vjp(norm, inputs, grad64, precision(backend, dtype, norm))
        return [
            (f"dL/d{name}", getattr(call.result, name), want, dtype)
            for name, want in expected.items()
            if getattr(call.result, name, None) is not None
        ]
    (run,) = call.args
    dtype = run.batches[0].dtype.name
    expected = reference.training(norm, run, precision(backend, dtype, norm))
    found = [
        ("running_mean", call.result.running_mean, expected.running_mean, dtype),
        ("running_var", call.result.running_var, expected.running_var, dtype),
    ]
    found += [
        (f"output of step {k + 1}", y, want, dtype)
        for k, (y, want) in enumerate(zip(call.result.outputs, expected.outputs, strict=False))
    ]
    return found


def judge(call: Call) -> Verdict | None:
    """The worst quantity of `call` against the spec, or None where the spec has no value
    for its input (outside the spec's domain) or the method is not one a reproducer replays."""
    if call.method not in REPLAYABLE or call.error is not None:
        return None
    try:
        with np.errstate(all="ignore"):
            quantities = _quantities(call)
    except NormParameterError:
        return None
    worst = None
    for name, observed, expected, dtype in quantities:
        obs = np.asarray(observed, dtype=np.float64)
        exp = np.asarray(expected.value, dtype=np.float64)
        if obs.shape != exp.shape:
            continue  # the protocol check reports it
        bound = np.broadcast_to(np.asarray(expected.bound, dtype=np.float64), exp.shape)
        with np.errstate(all="ignore"):
            ratio = error_ratio(obs, exp, bound, LARGEST_FINITE[dtype])
        if ratio.size == 0:
            continue
        flat = int(np.argmax(ratio))
        index = tuple(int(i) for i in np.unravel_index(flat, ratio.shape))
        value = float(ratio.max())
        if worst is None or value > worst.ratio:
            worst = Verdict(
                call,
                name,
                value,
                index,
                float(obs[index]),
                float(exp[index]),
                float(bound[index]),
                int(np.count_nonzero(ratio > 1)),
                int(ratio.size),
            )
    return worst


def culprit(calls: list[Call]) -> Verdict | Call | None:
    """The call to replay: the one whose output leaves its bound by the most, else the first
    that raised, else None (no single call is wrong on its own)."""
    verdicts = [v for v in map(judge, calls) if v is not None and v.ratio > 1]
    if verdicts:
        return max(verdicts, key=lambda v: v.ratio)
    raised = [
        c
        for c in calls
        if c.error is not None and not isinstance(c.error, Refused) and c.method in REPLAYABLE
    ]
    return raised[0] if raised else None


def arrays_of(call: Call) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """The call's arrays (bfloat16 as float32, which holds them exactly) and its scalar
    parameters, as a reproducer rebuilds them."""
    arrays: dict[str, np.ndarray] = {}
    scalars: dict[str, Any] = {}
    first = call.args[0]
    if isinstance(first, NormInputs):
        dtype = first.x.dtype.name
        for name in ("x", "weight", "bias", "running_mean", "running_var"):
            value = getattr(first, name)
            if value is not None:
                arrays[name] = value
        scalars.update(
            eps=first.eps,
            num_groups=first.num_groups,
            normalized_shape=None
            if first.normalized_shape is None
            else list(first.normalized_shape),
            dim=first.dim,
            training=first.training,
        )
        if call.method == "vjp":
            arrays["grad_y"] = call.args[1]
    elif isinstance(first, TrainingRun):
        dtype = first.batches[0].dtype.name
        for k, batch in enumerate(first.batches):
            arrays[f"batch_{k}"] = batch
        arrays["initial_mean"], arrays["initial_var"] = first.initial_mean, first.initial_var
        for name in ("weight", "bias"):
            if getattr(first, name) is not None:
                arrays[name] = getattr(first, name)
        scalars.update(
            eps=first.eps,
            momentum=first.momentum,
            momentum_weighs=first.momentum_weighs,
            running_var_estimator=first.running_var_estimator,
            steps=len(first.batches),
        )
    else:
        raise TypeError(f"not a replayable call input: {type(first).__name__}")
    scalars["dtype"] = dtype
    storable = {
        name: np.asarray(a).astype(np.float32) if np.asarray(a).dtype.name == "bfloat16" else a
        for name, a in arrays.items()
    }
    return storable, scalars
