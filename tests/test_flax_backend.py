"""The Flax adapter translates, and only translates: layout, momentum, parameter and
statistics dtypes, WeightNorm's dim and state reach Flax as Flax means them; jitted functions
are traced once per configuration and shape, never per eps; a missing flax is a reason."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from backends.flax_backend import FlaxBackend
from backends.protocol import NormInputs, TrainingRun
from normspec import spec

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def flax():
    return pytest.importorskip("flax", reason="flax is not installed: pip install flax==0.12.8")


def _x(shape=(4, 3, 5), seed=0) -> np.ndarray:
    return np.random.default_rng(seed).normal(1.0, 2.0, shape)


def test_importing_the_adapter_needs_no_flax():
    code = (
        "import sys; sys.modules['flax'] = None\n"
        "import backends.flax_backend as f\n"
        "print(f.FlaxBackend().unavailable_reason())"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("flax is not installed: pip install flax==0.12.8")


def test_channels_move_last_and_back(flax):
    """BatchNorm over (N, C, L) normalizes each channel: Flax's feature axis is the last."""
    x = _x()
    y = FlaxBackend().forward("batch_norm", NormInputs(x, eps=1e-3))
    np.testing.assert_allclose(y, spec.batch_norm_training(x, eps=1e-3).y, rtol=1e-9)


def test_momentum_that_weighs_the_new_statistic_reaches_flax_as_one_minus_it(flax):
    backend = FlaxBackend()
    assert backend.conventions.momentum_weighs == "old"
    batches = (_x(seed=1), _x(seed=2))
    run = lambda m, weighs: TrainingRun(batches, 1e-3, m, weighs, "biased", np.zeros(3), np.ones(3))
    new, old = (
        backend.train("batch_norm", run(0.25, "new")),
        backend.train("batch_norm", run(0.75, "old")),
    )
    np.testing.assert_array_equal(new.running_mean, old.running_mean)
    assert new.batches_seen == 2


def test_a_new_eps_is_an_argument_not_a_new_trace(flax):
    backend = FlaxBackend()
    x = _x()
    for eps in (1e-5, 1e-3, 0.25):
        backend.forward("layer_norm", NormInputs(x, eps=eps, normalized_shape=(5,)))
    assert backend._forward_fn.cache_info().misses == 1
    config = ("layer_norm", 3, 1, False, None, None, None, "float64")
    assert backend._forward_fn(config)._cache_size() == 1  # one trace for the three eps


def test_half_inputs_get_float32_parameters_and_outputs_in_their_dtype(flax):
    """Flax's param_dtype is float32: a float16 weight is held exactly in it, and the float32
    output is rounded to the input's dtype."""
    backend = FlaxBackend()
    assert backend.param_dtype(np.dtype(np.float16)) == np.float32
    assert backend.param_dtype(np.dtype(np.float64)) == np.float64
    x = _x().astype(np.float16)
    inputs = NormInputs(x, eps=1e-3, weight=np.ones(5, np.float16), normalized_shape=(5,))
    assert backend.forward("layer_norm", inputs).dtype == np.float16
    grads = backend.vjp("layer_norm", inputs, x)
    assert {grads.x.dtype, grads.weight.dtype, grads.bias.dtype} == {np.dtype(np.float16)}


def test_weight_norm_dim_is_the_axis_that_keeps_its_norm(flax):
    v = _x((2, 3, 4))
    g = np.arange(1.0, 4.0).reshape(1, 3, 1)
    w = FlaxBackend().forward("weight_norm", NormInputs(v, weight=g, dim=1))
    np.testing.assert_allclose(np.sqrt((w * w).sum(axis=(0, 2))), g.ravel(), rtol=1e-12)


def test_instance_norm_has_no_evaluation_mode(flax):
    x = _x()
    inputs = NormInputs(
        x, eps=1e-3, training=False, running_mean=np.zeros(3), running_var=np.ones(3)
    )
    with pytest.raises(ValueError, match="no running statistics"):
        FlaxBackend().forward("instance_norm", inputs)
