"""Prepare once, call many: the timed call computes what the adapter computes, without the
conversions, and a TensorFlow call is traced once however often it runs."""

from __future__ import annotations

import numpy as np
import pytest

from backends.registry import load_backend
from normspec.bench.calls import Prepared, calibrate, prepare, time_call
from normspec.bench.workloads import BY_ID, Case, make_inputs

FRAMEWORKS = ["torch", "tensorflow"]


def _backend(name):
    backend = load_backend(name)
    reason = backend.unavailable_reason()
    if reason:
        pytest.skip(reason)
    return backend


@pytest.mark.parametrize("name", FRAMEWORKS)
@pytest.mark.parametrize("workload", ["batch_norm:small", "group_norm:small", "rms_norm:small"])
def test_the_prepared_call_computes_what_the_adapter_computes(name, workload):
    """y and dL/dx of the timed call, brought back to NumPy, are the adapter's own forward
    and vjp of the same inputs: the benchmark times the layer the suite tests."""
    backend = _backend(name)
    w = BY_ID[workload]
    inputs, grad_y = make_inputs(w, "float32")

    def numpy_of(tensor):
        return backend.from_framework(w.norm, backend.to_numpy(tensor, inputs.x.dtype))

    y = prepare(backend, Case(name, w, "forward", "float32")).call()
    np.testing.assert_allclose(numpy_of(y), backend.forward(w.norm, inputs), rtol=1e-6)
    y, grads = prepare(backend, Case(name, w, "forward+backward", "float32")).call()
    expected = backend.vjp(w.norm, inputs, grad_y)
    np.testing.assert_allclose(numpy_of(y), backend.forward(w.norm, inputs), rtol=1e-6)
    np.testing.assert_allclose(numpy_of(grads[0]), expected.x, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("mode", ["forward", "forward+backward"])
def test_a_tensorflow_call_is_traced_once_however_often_it_runs(mode):
    backend = _backend("tensorflow")
    prepared = prepare(backend, Case("tensorflow", BY_ID["layer_norm:small"], mode, "float32"))
    for _ in range(20):
        prepared.call()
    assert prepared.traces() == 1
    prepared.check_not_retraced()


def test_a_retraced_call_is_an_error_not_a_cost():
    prepared = Prepared(lambda: None, "test", traces=lambda: 2)
    with pytest.raises(RuntimeError, match="traced 2 times"):
        prepared.check_not_retraced()


def test_numpy_is_called_through_the_protocol():
    prepared = prepare(
        load_backend("numpy"), Case("numpy", BY_ID["layer_norm:small"], "forward", "float32")
    )
    assert prepared.path == "protocol: forward" and prepared.traces is None


def test_a_norm_the_backend_does_not_provide_is_refused():
    backend = _backend("tensorflow")
    with pytest.raises(ValueError, match="does not provide weight_norm"):
        prepare(backend, Case("tensorflow", BY_ID["weight_norm:small"], "forward", "float32"))


@pytest.mark.parametrize("timer", ["cpu", "wall"])
def test_calibration_makes_a_round_last_the_minimum(timer):
    prepared = prepare(
        load_backend("numpy"), Case("numpy", BY_ID["batch_norm:small"], "forward", "float32")
    )
    once, iterations = calibrate(prepared, min_round_s=0.01, warmup_s=0.01, timer=timer)
    assert once > 0 and iterations * once >= 0.01
    assert time_call(prepared, iterations, timer) > 0
