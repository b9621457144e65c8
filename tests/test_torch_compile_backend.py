"""The torch.compile adapter compiles once per norm, dtype and configuration: a new eps, a
new shape or a new rank reuses the compiled graph, and the graphs are the decompositions
Inductor compiles the functional ops to, so their results are torch's."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from backends.protocol import NormInputs, Refused, TrainingRun
from backends.torch_compile_backend import TorchCompileBackend
from normspec import spec

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def backend():
    pytest.importorskip("torch")
    return TorchCompileBackend()


def _x(shape, seed=0) -> np.ndarray:
    return np.random.default_rng(seed).normal(1.0, 2.0, shape).astype(np.float32)


def test_importing_the_adapter_needs_no_torch():
    code = (
        "import sys; sys.modules['torch'] = None\n"
        "import backends.torch_compile_backend as t\n"
        "print(t.TorchCompileBackend().unavailable_reason())"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("torch is not installed: pip install torch==2.13.0")


def test_a_new_eps_shape_or_rank_reuses_the_compiled_graph(backend):
    from torch._dynamo.utils import counters

    first = NormInputs(_x((2, 3, 4)), eps=1e-5)
    backend.forward("batch_norm", first)
    graphs = counters["stats"]["unique_graphs"]
    for shape, eps in [((5, 3, 7), 0.25), ((2, 3, 2, 2), 1e-3), ((4, 3), 0.5)]:
        x = _x(shape)
        y = backend.forward("batch_norm", NormInputs(x, eps=eps))
        np.testing.assert_allclose(y, spec.batch_norm_training(x, eps=eps).y, atol=1e-5)
    assert counters["stats"]["unique_graphs"] == graphs


def test_weight_norm_dim_is_kept_through_the_canonical_view(backend):
    v = _x((2, 3, 4))
    g = np.arange(1.0, 4.0, dtype=np.float32).reshape(1, 3, 1)
    w = backend.forward("weight_norm", NormInputs(v, weight=g, dim=1))
    np.testing.assert_allclose(np.sqrt((w * w).sum(axis=(0, 2))), g.ravel(), rtol=1e-5)


def test_training_threads_the_running_statistics(backend):
    batches = tuple(_x((4, 3, 5), seed) for seed in (1, 2, 3))
    run = TrainingRun(batches, 1e-3, 0.25, "new", "unbiased", np.zeros(3), np.ones(3))
    result = backend.train("batch_norm", run)
    mean = np.zeros(3)
    for b in batches:
        mean = 0.75 * mean + 0.25 * b.astype(np.float64).mean(axis=(0, 2))
    np.testing.assert_allclose(result.running_mean, mean, rtol=1e-5)


def test_what_f_batch_norm_refuses_is_refused(backend):
    with pytest.raises(Refused, match="eps <= 0"):
        backend.forward("batch_norm", NormInputs(_x((2, 3, 4)), eps=0.0))


def test_rms_norm_is_not_provided_and_float32_is_the_only_dtype(backend):
    assert "rms_norm" not in backend.norms
    assert backend.dtypes == ("float32",)
