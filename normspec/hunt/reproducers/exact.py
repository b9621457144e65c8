"""The exact value a reproducer compares with: the norm's formula in float64 NumPy, written out.

A reproducer is read by someone who has never heard of normspec, so the formula is in the
script itself, a few lines per norm, from the values the layer received (`received`, float64
copies of its input tensors). The shapes it needs are numbers: `Sets` computes them from
normspec's pooled sets (the spec's table), and the code below only reshapes and reduces.
The generator runs this code on the culprit's own arrays and checks it against the spec's
value before it writes a script (normspec/hunt/reproducers/__init__.py).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from normspec import reference
from normspec.vocabulary import NormInputs

#: The norms that subtract a mean.
CENTERED = ("batch_norm", "layer_norm", "instance_norm", "group_norm")


@dataclass(frozen=True)
class Sets:
    """The pooled sets of a call, as numbers: x viewed as VIEW, each set the block of AXES;
    parameters broadcast as PARAM; the axes of x the parameters do not vary along, OTHER."""

    view: tuple[int, ...]
    axes: tuple[int, ...]
    param: tuple[int, ...]
    other: tuple[int, ...]
    count: int
    #: for InstanceNorm's running statistics: the axis of the (N, C) statistics to average
    per_channel_mean: bool = False


def sets_of(norm: str, x_shape: tuple[int, ...], scalars: dict) -> Sets:
    """The pooled sets of `norm` on an input of `x_shape` with the call's scalars."""
    normalized = scalars.get("normalized_shape")
    inputs = NormInputs(
        x=np.empty(x_shape, dtype=np.uint8),  # only its shape is read
        eps=0.0,
        num_groups=scalars.get("num_groups"),
        normalized_shape=None if normalized is None else tuple(normalized),
        dim=scalars.get("dim"),
    )
    sets = reference.pooled(norm, inputs)
    param = [1] * len(x_shape)
    for axis, size in zip(sets.features, sets.param_shape, strict=True):
        param[axis] = size
    other = tuple(a for a in range(len(x_shape)) if a not in sets.features)
    return Sets(
        view=tuple(sets.view),
        axes=tuple(sets.axes),
        param=tuple(param),
        other=other,
        count=math.prod(sets.view[a] for a in sets.axes),
        per_channel_mean=norm == "instance_norm",
    )


def _affine(present: set[str], target: str = "x_hat") -> list[str]:
    lines = [f"exact = {target}"]
    if "weight" in present:
        lines.append("exact = exact * received['weight'].reshape(PARAM)")
    if "bias" in present:
        lines.append("exact = exact + received['bias'].reshape(PARAM)")
    return lines


def _standardized(norm: str, evaluation: bool, source: str = "received['x']") -> list[str]:
    """Lines that leave x_hat (shaped like x) and, with batch statistics, view, mean, var."""
    if norm == "weight_norm":
        raise ValueError("weight_norm has no standardization")
    if evaluation:
        return [
            f"x64 = {source}",
            "mean = received['running_mean'].reshape(PARAM)",
            "var = received['running_var'].reshape(PARAM)",
            "x_hat = (x64 - mean) / np.sqrt(var + eps)",
        ]
    if norm in CENTERED:
        return [
            f"x64 = {source}",
            "view = x64.reshape(VIEW)",
            "mean = view.mean(axis=AXES, keepdims=True)",
            "var = ((view - mean) ** 2).mean(axis=AXES, keepdims=True)  # biased",
            "x_hat = ((view - mean) / np.sqrt(var + eps)).reshape(x64.shape)",
        ]
    return [  # rms_norm: no centering
        f"x64 = {source}",
        "view = x64.reshape(VIEW)",
        "mean = np.zeros_like(view)",
        "var = (view**2).mean(axis=AXES, keepdims=True)  # the mean square",
        "x_hat = (view / np.sqrt(var + eps)).reshape(x64.shape)",
    ]


def forward_lines(norm: str, evaluation: bool, present: set[str]) -> list[str]:
    """`exact`: the output y."""
    if norm == "weight_norm":
        return [
            "v = received['x']",
            "norm_v = np.sqrt((v**2).sum(axis=AXES, keepdims=True))",
            "exact = received['weight'] * v / norm_v  # w = g v / ||v||",
        ]
    return _standardized(norm, evaluation) + _affine(present)


def vjp_lines(norm: str, evaluation: bool, present: set[str], quantity: str) -> list[str]:
    """`exact`: dL/dx, dL/dweight or dL/dbias of L = sum(grad_y * y)."""
    if norm == "weight_norm":
        lines = [
            "v, g, grad_w = received['x'], received['weight'], received['grad_y']",
            "norm_v = np.sqrt((v**2).sum(axis=AXES, keepdims=True))",
            "u = v / norm_v",
            "grad_g = (grad_w * u).sum(axis=AXES, keepdims=True)  # dL/dg",
            "grad_v = g / norm_v * (grad_w - u * grad_g)  # dL/dv",
        ]
        return [*lines, f"exact = {'grad_v' if quantity == 'dL/dx' else 'grad_g'}"]
    lines = _standardized(norm, evaluation)
    lines.append("grad_y = received['grad_y']")
    if quantity == "dL/dweight":
        return [
            *lines,
            "exact = (grad_y * x_hat).sum(axis=OTHER).reshape(received['weight'].shape)",
        ]
    if quantity == "dL/dbias":
        return [*lines, "exact = grad_y.sum(axis=OTHER).reshape(received['weight'].shape)"]
    g = "grad_y * received['weight'].reshape(PARAM)" if "weight" in present else "grad_y"
    lines.append(f"g = {g}  # dL/dx_hat")
    if evaluation:
        return [*lines, "exact = g / np.sqrt(var + eps)"]
    lines += [
        "gv, xv = g.reshape(VIEW), x_hat.reshape(VIEW)",
        "inv_sigma = 1 / np.sqrt(var + eps)",
    ]
    if norm in CENTERED:
        lines.append(
            "exact = inv_sigma * (gv - gv.mean(axis=AXES, keepdims=True)"
            " - xv * (gv * xv).mean(axis=AXES, keepdims=True))"
        )
    else:
        lines.append("exact = inv_sigma * (gv - xv * (gv * xv).mean(axis=AXES, keepdims=True))")
    return [*lines, "exact = exact.reshape(x64.shape)"]


def train_lines(present: set[str], quantity: str, sets: Sets) -> list[str]:
    """`exact`: the running mean or variance after every step, or one step's output."""
    per_channel = (
        "stat.reshape(stat.shape[0], -1).mean(axis=0)  # InstanceNorm: the mean over N"
        if sets.per_channel_mean
        else "stat.reshape(-1)"
    )
    lines = [
        "running_mean, running_var = received['initial_mean'], received['initial_var']",
        "outputs = []",
        "for t, batch in enumerate(received['batches'], start=1):",
        "    view = batch.reshape(VIEW)",
        "    mean = view.mean(axis=AXES, keepdims=True)",
        "    var = ((view - mean) ** 2).mean(axis=AXES, keepdims=True)  # biased",
        "    y = ((view - mean) / np.sqrt(var + eps)).reshape(batch.shape)",
    ]
    if "weight" in present:
        lines.append("    y = y * received['weight'].reshape(PARAM)")
    if "bias" in present:
        lines.append("    y = y + received['bias'].reshape(PARAM)")
    lines += [
        "    outputs.append(y)",
        "    if momentum is None:  # the cumulative average",
        "        a = 1.0 / t",
        "    else:  # the weight of the new statistic",
        "        a = momentum if momentum_weighs == 'new' else 1.0 - momentum",
        f"    bessel = {sets.count} / ({sets.count} - 1) if estimator == 'unbiased' else 1.0",
        "    per_channel = lambda stat: " + per_channel,
        "    running_mean = (1 - a) * running_mean + a * per_channel(mean)",
        "    running_var = (1 - a) * running_var + a * per_channel(var) * bessel",
    ]
    if quantity in ("running_mean", "running_var"):
        return [*lines, f"exact = {quantity}"]
    step = int(quantity.rsplit(" ", 1)[1])  # "output of step k"
    return [*lines, f"exact = outputs[{step - 1}]"]


def exact_lines(
    norm: str, method: str, evaluation: bool, present: set[str], quantity: str, sets: Sets
) -> list[str]:
    """The lines that compute `exact` for this call's `quantity`."""
    if method == "forward":
        return forward_lines(norm, evaluation, present)
    if method == "vjp":
        return vjp_lines(norm, evaluation, present, quantity)
    return train_lines(present, quantity, sets)


def constants(sets: Sets) -> list[str]:
    """The shapes the exact code reads, as literals."""
    return [
        f"VIEW = {sets.view}  # x viewed so that each pooled set S is a block of AXES",
        f"AXES = {sets.axes}",
        f"PARAM = {sets.param}  # how weight and bias broadcast against x",
        f"OTHER = {sets.other}  # the axes the parameters do not vary along",
    ]
