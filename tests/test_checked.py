"""The properties call backends through `CheckedBackend`: what the protocol promises is
checked on every call, and a declared refusal discards the example instead of failing it."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.errors import FailedHealthCheck, Unsatisfiable

from backends.numpy_backend import NumpyBackend
from backends.protocol import Refused
from normspec.vocabulary import Gradients, NormInputs, TrainingRun
from properties.checked import CheckedBackend, ProtocolError

X16 = np.linspace(-1, 1, 12, dtype=np.float16).reshape(2, 2, 3)
LAYER = NormInputs(X16, eps=1e-5, normalized_shape=(3,))


class Returning(NumpyBackend):
    """A backend whose forward returns `value(correct output)`."""

    def __init__(self, value):
        self.value = value

    def forward(self, norm, inputs):
        return self.value(super().forward(norm, inputs))


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (lambda y: y.astype(np.float64), r"must have the dtype of the input, float16, got float64"),
        (
            lambda y: y.tolist(),
            r"must be a numpy.ndarray of shape \(2, 2, 3\).* got a builtins.list",
        ),
        (lambda y: y[:, :, :2], r"must have shape \(2, 2, 3\), got \(2, 2, 2\)"),
    ],
)
def test_a_forward_output_of_the_wrong_type_shape_or_dtype_fails(value, message):
    with pytest.raises(ProtocolError, match=message):
        CheckedBackend(Returning(value)).forward("layer_norm", LAYER)


def test_a_correct_backend_passes_the_protocol_checks():
    backend = CheckedBackend(NumpyBackend())
    assert backend.forward("layer_norm", LAYER).dtype == np.float16
    weighted = NormInputs(X16, eps=1e-5, normalized_shape=(3,), weight=np.ones(3, np.float16))
    grads = backend.vjp("layer_norm", weighted, np.ones_like(X16))
    assert grads.weight.shape == (3,)
    run = TrainingRun(
        (X16, X16), 1e-5, 0.1, "new", "unbiased", np.zeros(2, np.float16), np.ones(2, np.float16)
    )
    result = backend.train("batch_norm", run)
    assert result.running_var.dtype == np.float16


def test_missing_parameter_gradients_fail():
    class NoWeightGradient(NumpyBackend):
        def vjp(self, norm, inputs, grad_y):
            return Gradients(super().vjp(norm, inputs, grad_y).x)

    weighted = NormInputs(X16, eps=1e-5, normalized_shape=(3,), weight=np.ones(3, np.float16))
    with pytest.raises(ProtocolError, match=r"vjp's dL/dweight must be a numpy.ndarray"):
        CheckedBackend(NoWeightGradient()).vjp("layer_norm", weighted, np.ones_like(X16))


class RefusesEverything(NumpyBackend):
    def forward(self, norm, inputs):
        raise Refused("this framework refuses every input")


def test_a_refusal_outside_a_property_reaches_the_caller():
    """The conventions probes record a refusal as what the framework does."""
    with pytest.raises(Refused, match="refuses every input"):
        CheckedBackend(RefusesEverything()).forward("layer_norm", LAYER)


def test_a_refusal_inside_a_property_discards_the_example():
    """Every example refused: Hypothesis finds none it may test, and says so (never a pass)."""
    backend = CheckedBackend(RefusesEverything())

    @settings(max_examples=5, database=None)
    @given(st.integers())
    def refused(_):
        backend.forward("layer_norm", LAYER)

    with pytest.raises((Unsatisfiable, FailedHealthCheck)):
        refused()
