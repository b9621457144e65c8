"""Property 7: the norms that coincide on paper coincide in the backend."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from normspec.reference import Expected
from properties import strategies
from properties.helpers import as64, assume_defined, expected_forward, require


def _assert_same(check, backend, case, first: tuple, second: tuple, what: str) -> None:
    """Both calls of the backend agree within the sum of their bounds."""
    (norm_a, inputs_a), (norm_b, inputs_b) = first, second
    bound = (
        expected_forward(backend, norm_a, inputs_a).bound
        + expected_forward(backend, norm_b, inputs_b).bound
    )
    check.within(
        backend.forward(norm_a, inputs_a),
        Expected(as64(backend.forward(norm_b, inputs_b)), bound),
        what=what,
        case=case,
        dtype=case.dtype,
    )


def _per_channel(param: np.ndarray | None, shape: tuple[int, ...]) -> np.ndarray | None:
    """A per-channel parameter (C,) spread over (C, *spatial), LayerNorm's elementwise shape."""
    if param is None:
        return None
    return np.ascontiguousarray(
        np.broadcast_to(param.reshape((-1,) + (1,) * (len(shape) - 1)), shape)
    )


@pytest.mark.norms("group_norm")
@given(data=st.data())
def test_group_norm_with_one_group_equals_layer_norm(backend, norm, data, check):
    """GN(x; G = 1, w, b) = LN(x; normalized_shape = (C, *spatial), w_c and b_c spread over
    the spatial positions of channel c)."""
    require(backend, "layer_norm")
    for case in check.each(data, strategies.cases(norm, backend)):
        with check.case(case):
            inputs = replace(case.inputs(), num_groups=1)
            assume_defined(norm, inputs)
            features = inputs.x.shape[1:]
            layer = replace(
                inputs,
                num_groups=None,
                normalized_shape=features,
                weight=_per_channel(inputs.weight, features),
                bias=_per_channel(inputs.bias, features),
            )
            _assert_same(
                check,
                backend,
                case,
                (norm, inputs),
                ("layer_norm", layer),
                "group norm with one group against layer norm",
            )


@pytest.mark.norms("group_norm")
@given(data=st.data())
def test_group_norm_with_one_group_per_channel_equals_instance_norm(backend, norm, data, check):
    """GN(x; G = C) = IN(x): a group of one channel pools exactly that channel's positions."""
    require(backend, "instance_norm")
    for case in check.each(data, strategies.cases("instance_norm", backend)):
        with check.case(case):
            inputs = case.inputs()
            assume_defined("instance_norm", inputs)
            grouped = replace(inputs, num_groups=inputs.x.shape[1])
            _assert_same(
                check,
                backend,
                case,
                (norm, grouped),
                ("instance_norm", inputs),
                "group norm with G = C against instance norm",
            )


@pytest.mark.norms("instance_norm")
@given(data=st.data())
def test_instance_norm_equals_training_batch_norm_per_sample(backend, norm, data, check):
    """IN(x)[n] = BN_train(x[n : n + 1]): a batch of one pools one instance per channel."""
    require(backend, "batch_norm")
    for case in check.each(data, strategies.cases(norm, backend)):
        with check.case(case):
            inputs = case.inputs()
            assume_defined(norm, inputs)
            instance = as64(backend.forward(norm, inputs))
            bound = expected_forward(backend, norm, inputs).bound
            for n in range(inputs.x.shape[0]):
                sample = replace(inputs, x=inputs.x[n : n + 1])
                check.within(
                    backend.forward("batch_norm", sample),
                    Expected(
                        instance[n : n + 1],
                        bound[n : n + 1] + expected_forward(backend, "batch_norm", sample).bound,
                    ),
                    what=f"training batch norm of sample {n} against instance norm",
                    case=case,
                    dtype=case.dtype,
                )
