"""Property 2: an affine map built from the statistics undoes the normalization."""

from __future__ import annotations

import functools
from dataclasses import replace

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from normspec import core, reference, tolerance
from normspec.reference import Expected
from properties import strategies
from properties.helpers import as64, assume_defined


def _parameters(norm: str, inputs, eps: float) -> tuple[np.ndarray, np.ndarray]:
    """weight = sqrt(var_S + eps) and bias = mean_S for the set each parameter serves
    (RMSNorm: weight = sqrt(mean_S x^2 + eps), no bias), in float64."""
    view, axes = reference.pooled_sets(norm, inputs)
    if norm == "rms_norm":
        center = np.zeros_like(view)
        spread = np.mean(np.square(view), axis=axes, keepdims=True)
    else:
        center, spread = core.moments(view, axes)
    full = lambda a: np.broadcast_to(a, view.shape).reshape(inputs.x.shape)
    sigma, mean = full(np.sqrt(spread + eps)), full(center)
    if norm in ("layer_norm", "rms_norm"):  # a single row: the parameters are that row
        index = (0,) * (inputs.x.ndim - len(inputs.normalized_shape))
    else:  # one sample: each channel's parameters are constant over the other axes
        index = (0, slice(None), *(0,) * (inputs.x.ndim - 2))
    return sigma[index], mean[index]


def _rounded(a: np.ndarray, p: tolerance.Precision) -> np.ndarray:
    """The error of rounding `a` to the dtype: u_out relative, or eta_out absolute."""
    return p.u_out * np.abs(a) + p.eta_out


@pytest.mark.norms("batch_norm", "layer_norm", "instance_norm", "group_norm", "rms_norm")
@given(data=st.data())
def test_affine_with_std_and_mean_recovers_the_input(backend, norm, data, check):
    """With weight = sqrt(var_S + eps) and bias = mean_S per the norm's grouping, y = x:

        weight * (x - mean_S) / sqrt(var_S + eps) + bias = x.

    Instance, group and layer norm get one sample (one row), so that each parameter serves
    one set. Bound: the forward bound plus the rounding of the parameters to the dtype,
    |x_hat| (u_out |w| + eta_out) + u_out |b| + eta_out, eta_out the absolute error of a
    value that underflows to a subnormal of the dtype.
    """
    single = strategies.cases(norm, backend, affine=False, single_instance=True)
    for case in check.each(data, single):
        with check.case(case):
            inputs = case.inputs()
            assume_defined(norm, inputs)
            weight, bias = _parameters(norm, inputs, case.eps)
            dtype = inputs.x.dtype
            inputs = replace(
                inputs,
                weight=weight.astype(dtype),
                bias=None if norm == "rms_norm" else bias.astype(dtype),
            )
            y = backend.forward(norm, inputs)
            p = check.precision(backend, case.dtype)
            s = reference.standardized(norm, inputs, p)
            features = (
                (1,)
                if inputs.normalized_shape is None
                else core.trailing_axes(inputs.x.ndim, len(inputs.normalized_shape))
            )
            w = core.along(inputs.weight, inputs.x.ndim, features)
            b = None if inputs.bias is None else core.along(inputs.bias, inputs.x.ndim, features)
            # the parameters are rounded to the dtype: u_out relative, or eta_out absolute where
            # they are subnormal (a mean of 1e-5 in float16)
            rounded = functools.partial(_rounded, p=p)
            bound = tolerance.affine_bound(s, w, b, p) + np.abs(s.x_hat) * rounded(w)
            if b is not None:
                bound = bound + rounded(b)
            check.within(
                y,
                Expected.computed(as64(inputs.x), bound, p),
                what="output with weight = std and bias = mean",
                case=case,
                dtype=case.dtype,
            )
