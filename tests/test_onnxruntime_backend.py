"""The ONNX Runtime adapter builds one graph per configuration and only translates: the
layout's axis, momentum, the float32 attributes, running statistics threaded between steps;
what ONNX cannot express (a float64 eps with no float32 value, gradients, WeightNorm) is a
declared refusal or "not provided", never a wrong answer."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from backends.onnxruntime_backend import DEFAULT_EPS, OnnxRuntimeBackend
from backends.protocol import NormInputs, Refused, TrainingRun
from normspec import spec

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def ort():
    return pytest.importorskip("onnxruntime", reason="pip install onnxruntime==1.32.0")


def _x(shape=(4, 3, 5), seed=0) -> np.ndarray:
    return np.random.default_rng(seed).normal(1.0, 2.0, shape)


def test_importing_the_adapter_needs_no_onnxruntime():
    code = (
        "import sys; sys.modules['onnxruntime'] = None\n"
        "import backends.onnxruntime_backend as o\n"
        "print(o.OnnxRuntimeBackend().unavailable_reason())"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("onnxruntime is not installed: pip install onnxruntime==1.32.0")


def test_one_session_serves_every_shape_and_rank_of_a_configuration(ort):
    backend = OnnxRuntimeBackend()
    for shape in [(2, 5), (4, 3, 5), (2, 3, 4, 5)]:
        x = _x(shape)
        y = backend.forward("layer_norm", NormInputs(x, eps=0.5, normalized_shape=(5,)))
        np.testing.assert_allclose(y, spec.layer_norm(x, normalized_shape=(5,), eps=0.5).y)
    assert backend._session.cache_info().misses == 1


def test_a_float64_eps_without_a_float32_value_is_refused(ort):
    """ONNX stores epsilon as a 32-bit float: 1e-5 cannot reach a double graph, 0.5 can."""
    backend = OnnxRuntimeBackend()
    x = _x()
    with pytest.raises(Refused, match="32-bit float"):
        backend.forward("batch_norm", NormInputs(x, eps=1e-5))
    backend.forward("batch_norm", NormInputs(x, eps=0.5))
    backend.forward("batch_norm", NormInputs(x.astype(np.float32), eps=1e-5))
    assert float(np.float32(1e-5)) == DEFAULT_EPS != 1e-5


def test_momentum_weighs_the_old_value_and_statistics_thread_through_the_steps(ort):
    backend = OnnxRuntimeBackend()
    batches = tuple(_x(seed=s).astype(np.float32) for s in (1, 2, 3))
    run = TrainingRun(batches, 1e-3, 0.25, "new", "biased", np.zeros(3), np.ones(3))
    result = backend.train("batch_norm", run)
    mean = np.zeros(3)
    for b in batches:
        mean = 0.75 * mean + 0.25 * b.astype(np.float64).mean(axis=(0, 2))
    np.testing.assert_allclose(result.running_mean, mean, rtol=1e-5)
    assert result.batches_seen == 3


def test_gradients_are_not_provided(ort):
    x = _x()
    with pytest.raises(pytest.skip.Exception, match="not provided: onnxruntime computes no"):
        OnnxRuntimeBackend().vjp("layer_norm", NormInputs(x, eps=0.5, normalized_shape=(5,)), x)


def test_float64_is_declared_for_every_operator_but_instance_normalization(ort):
    backend = OnnxRuntimeBackend()
    assert backend.supports("layer_norm", "float64")
    assert not backend.supports("instance_norm", "float64")
    assert not backend.supports("batch_norm", "bfloat16")
    assert "weight_norm" not in backend.norms
