"""Property 10: the backend's forward output agrees with the float64 spec."""

from __future__ import annotations

import functools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from backends.protocol import NormInputs
from normspec import reference
from normspec.reference import Expected
from normspec.tolerance import Precision
from normspec.vocabulary import NORMS
from properties import strategies
from properties.helpers import (
    assume_defined,
    assume_representable,
    expected_forward,
    intermediates_beyond_range,
)
from properties.recipes import ArrayRecipe, Case


def _cases(backend, norm: str) -> st.SearchStrategy:
    """batch_norm in either mode; instance_norm in evaluation mode only where it tracks
    running statistics; every other norm has only one mode."""
    if norm == "batch_norm" or (norm == "instance_norm" and norm in backend.trains):
        return strategies.training_or_evaluation(norm, backend)
    return strategies.cases(norm, backend)


@pytest.mark.norms(*NORMS)
@given(data=st.data())
def test_forward_agrees_with_the_spec(backend, norm, data, check):
    """|norm_backend(x) - norm_spec(x)| <= B elementwise, B the tolerance model's bound for
    the backend's storage and accumulation dtypes and the conditioning of x."""
    for case in check.each(data, _cases(backend, norm)):
        with check.case(case):
            inputs = case.inputs()
            assume_defined(norm, inputs)
            check.within(
                backend.forward(norm, inputs),
                expected_forward(backend, norm, inputs),
                what="forward output",
                case=case,
                dtype=case.dtype,
            )


@pytest.mark.norms("batch_norm", "layer_norm", "instance_norm", "group_norm")
@given(data=st.data())
def test_forward_agrees_with_the_spec_on_ill_conditioned_input(backend, norm, data, check):
    """The same agreement on rows with a large mean and a small spread, where the bound grows
    with the conditioning M / sigma: a correct two-pass or Welford variance stays inside it,
    the one-pass E[x^2] - E[x]^2 (error ~ (M / sigma)^2) does not."""
    ill_conditioned = strategies.cases(norm, backend, kinds=("large_offset",))
    for case in check.each(data, ill_conditioned):
        with check.case(case):
            inputs = case.inputs()
            assume_defined(norm, inputs)
            check.within(
                backend.forward(norm, inputs),
                expected_forward(backend, norm, inputs),
                what="forward output on ill-conditioned input",
                case=case,
                dtype=case.dtype,
            )


@pytest.mark.norms(*NORMS)
@given(data=st.data())
def test_forward_agrees_with_the_spec_across_the_dtype_range(backend, norm, data, check):
    """The same agreement on data scaled across each dtype's whole range (float32 from 1e-37
    to 1e37, float16 from 1e-4 to 1e4), centred or on an offset of its own magnitude, and on
    sets with one outlier a thousand spreads away. Where the input's sum of squares or mean
    square does not fit the backend's accumulation dtype (tolerance.intermediates_out_of_range)
    the bound says nothing: a result outside it there is a declared limitation, counted in the
    report, not a failure; everywhere else the bound holds as for any input."""
    wide = strategies.cases(norm, backend, kinds=strategies.WIDE_KINDS)
    for case in check.each(data, wide):
        with check.case(case):
            inputs = case.inputs()
            assume_defined(norm, inputs)
            expected = expected_forward(backend, norm, inputs)
            assume_representable(expected, case.dtype)
            check.within(
                backend.forward(norm, inputs),
                expected,
                what="forward output across the dtype's range",
                case=case,
                dtype=case.dtype,
                beyond=intermediates_beyond_range(backend, norm, inputs),
            )


#: The shapes of real models, one call each in float32: ResNet-50's first BatchNorm, a U-Net
#: GroupNorm of 32 groups, an instance-normalized feature map of a style-transfer network,
#: transformer LayerNorm and RMSNorm over a hidden size of 768 (a batch of sequences) and of
#: 4096 (two tokens), and a convolution's weight for WeightNorm. Fixed, so that the ci gate
#: sees them on every run whatever its size budget; (shape, normalized_shape or num_groups
#: or dim).
REAL_MODEL_SHAPES = {
    "batch_norm": (((32, 64, 56, 56), None),),
    "group_norm": (((2, 512, 32, 32), 32),),
    "instance_norm": (((4, 128, 64, 64), None),),
    "layer_norm": (((4, 1024, 768), (768,)), ((2, 4096), (4096,))),
    "rms_norm": (((4, 1024, 768), (768,)), ((2, 4096), (4096,))),
    "weight_norm": (((512, 256, 3, 3), 0),),
}


def real_model_case(norm: str, shape: tuple[int, ...], detail, dtype: str) -> Case:
    """A trained layer's call on `shape`: data N(0.5, 2), weight N(1, 0.1), bias N(0, 0.1)
    shaped like the norm's parameters, eps 1e-5 (no eps for WeightNorm)."""
    data = ArrayRecipe(shape, "normal", seed=sum(shape), offset=0.5, scale=2.0)
    if norm == "weight_norm":
        g_shape = tuple(s if a == detail else 1 for a, s in enumerate(shape))
        weight = ArrayRecipe(g_shape, "normal", seed=1, offset=1.0, scale=0.1)
        return Case(norm, data, dtype, eps=0.0, weight=weight, dim=detail)
    parameters = detail if norm in ("layer_norm", "rms_norm") else (shape[1],)
    return Case(
        norm,
        data,
        dtype,
        eps=1e-5,
        weight=ArrayRecipe(parameters, "normal", seed=1, offset=1.0, scale=0.1),
        bias=None if norm == "rms_norm" else ArrayRecipe(parameters, "normal", 2, 0.0, 0.1),
        num_groups=detail if norm == "group_norm" else None,
        normalized_shape=detail if norm in ("layer_norm", "rms_norm") else None,
    )


REAL_MODEL_DTYPES = ("float32", "float64", "bfloat16", "float16")


@functools.lru_cache(maxsize=8)
def _real_model_inputs(case: Case) -> NormInputs:
    """The inputs of a real-model case, built once for every backend of the process."""
    return case.inputs()


@functools.lru_cache(maxsize=16)
def _real_model_expected(case: Case, precision: Precision) -> Expected:
    """The spec's output and bound of a real-model case, computed once per precision: most
    backends share float32's, and each of these calls reduces millions of values (all the
    shapes' expected values at two precisions take about 600 MB)."""
    return reference.forward(case.norm, _real_model_inputs(case), precision)


@pytest.mark.norms(*NORMS)
def test_forward_agrees_with_the_spec_on_the_shapes_of_real_models(backend, norm, check):
    """The agreement of the forward output with the spec on the shapes of real models, in
    float32 (the backend's widest other dtype if it has no float32): reductions of 3136 to
    100352 values, 64 to 512 channels, 32 groups; one deterministic call per shape."""
    dtype = next(d for d in REAL_MODEL_DTYPES if backend.supports(norm, d))
    for shape, detail in REAL_MODEL_SHAPES[norm]:
        case = real_model_case(norm, shape, detail, dtype)
        with check.case(case):
            inputs = _real_model_inputs(case)
            check.within(
                backend.forward(norm, inputs),
                _real_model_expected(case, check.precision(backend, dtype)),
                what=f"forward output on the real-model shape {shape}",
                case=case,
                dtype=dtype,
            )
