"""The TensorFlow adapters translate, and only translate: layout, momentum, dtypes and layer
state reach TensorFlow as TensorFlow means them, layers are built once and reused, and a
missing TensorFlow is a reason, not a crash."""

from __future__ import annotations

import subprocess
import sys
import types
from pathlib import Path

import numpy as np
import pytest

from backends.protocol import NormInputs, TrainingRun
from backends.tensorflow_backend import KerasBackend, TfFusedBackend, TfNnBackend

ROOT = Path(__file__).resolve().parent.parent
BACKENDS = (KerasBackend, TfNnBackend, TfFusedBackend)
REASON = (
    "tensorflow is not installed: pip install tensorflow-cpu==2.21.0 "
    "(import of tensorflow halted; None in sys.modules)"
)


@pytest.fixture
def tf():
    return pytest.importorskip("tensorflow")


def _x(shape: tuple[int, ...], seed: int = 0, dtype: str = "float32") -> np.ndarray:
    return np.random.default_rng(seed).normal(1.0, 2.0, shape).astype(dtype)


# --- a missing framework ----------------------------------------------------------------------


def test_importing_the_adapter_needs_no_tensorflow():
    """tensorflow is imported on first use only: without it the module imports and explains."""
    code = (
        "import sys; sys.modules['tensorflow'] = None\n"
        "import backends.tensorflow_backend as t\n"
        "print(t.KerasBackend().unavailable_reason())"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("tensorflow is not installed: pip install tensorflow-cpu==2.21.0")


@pytest.mark.parametrize("backend_class", BACKENDS)
def test_a_missing_tensorflow_is_an_unavailable_reason_not_a_crash(backend_class, monkeypatch):
    monkeypatch.setitem(
        sys.modules, "tensorflow", None
    )  # what `import tensorflow` reads as not there
    backend = backend_class()
    assert backend.unavailable_reason() == REASON
    assert backend.version() == ""


def test_keras_on_another_backend_is_unavailable(monkeypatch):
    """Keras 3 may run on JAX or PyTorch: then its layers are not TensorFlow's."""

    class Config:
        @staticmethod
        def backend() -> str:
            return "jax"

    class Keras:
        config = Config

    monkeypatch.setitem(sys.modules, "tensorflow", types.ModuleType("tensorflow"))
    monkeypatch.setitem(sys.modules, "keras", Keras)
    assert KerasBackend().unavailable_reason() == (
        "keras runs on 'jax', not tensorflow: set KERAS_BACKEND=tensorflow"
    )


# --- layout and momentum, translated in one place each ----------------------------------------


@pytest.mark.parametrize("norm", ["batch_norm", "instance_norm", "group_norm"])
def test_channels_move_last_and_back(norm):
    """(N, C, *spatial) reaches TensorFlow as (N, *spatial, C) and comes back unchanged."""
    backend = KerasBackend()
    x = _x((2, 3, 4, 5))
    moved = backend.to_framework(norm, x)
    assert moved.shape == (2, 4, 5, 3)
    assert moved[1, 2, 3, 0] == x[1, 0, 2, 3]
    assert np.array_equal(backend.from_framework(norm, moved), x)


@pytest.mark.parametrize("norm", ["layer_norm", "rms_norm"])
def test_trailing_axes_norms_keep_their_layout(norm):
    x = _x((2, 3, 4))
    assert np.array_equal(KerasBackend().to_framework(norm, x), x)


@pytest.mark.parametrize(
    ("backend_class", "weighs", "expected"),
    [
        (KerasBackend, "new", 0.75),  # Keras's momentum weighs the old moving value
        (KerasBackend, "old", 0.25),
        (TfNnBackend, "new", 0.75),  # so does assign_moving_average's decay
        (TfFusedBackend, "new", 0.25),  # exponential_avg_factor weighs the new statistic
        (TfFusedBackend, "old", 0.75),
    ],
)
def test_momentum_is_translated_to_the_framework_meaning(backend_class, weighs, expected):
    assert backend_class().framework_momentum(0.25, weighs) == expected


@pytest.mark.parametrize("backend_class", BACKENDS)
def test_no_backend_has_a_cumulative_average(backend_class):
    with pytest.raises(ValueError, match="no cumulative average"):
        backend_class().framework_momentum(None, "new")


def test_keras_moving_statistics_follow_the_translated_momentum(tf):
    """momentum 0.25 weighing the new batch: one step from zero keeps a quarter of it."""
    batch = _x((8, 3))
    run = TrainingRun((batch,), 1e-3, 0.25, "new", "biased", np.zeros(3), np.ones(3))
    result = KerasBackend().train("batch_norm", run)
    np.testing.assert_allclose(result.running_mean, 0.25 * batch.mean(axis=0), rtol=1e-5)
    np.testing.assert_allclose(
        result.running_var, 0.75 + 0.25 * batch.var(axis=0), rtol=1e-5
    )  # the biased batch variance
    assert result.batches_seen == 1


# --- layer state ---------------------------------------------------------------------------------


def test_keras_layers_are_built_once_and_reused(tf):
    """One layer per (norm, rank, features, groups, affine, dtype): other batch sizes and
    other eps reuse it, since Keras reads `epsilon` at call time."""
    backend = KerasBackend()
    small = NormInputs(_x((2, 6)), eps=1e-5, normalized_shape=(6,))
    large = NormInputs(_x((5, 6), seed=1), eps=1.0, normalized_shape=(6,))
    y_small, y_large = backend.forward("layer_norm", small), backend.forward("layer_norm", large)
    assert backend._layer.cache_info().misses == 1
    assert backend._layer.cache_info().hits == 1
    row = large.x[0].astype(np.float64)
    expected = (row - row.mean()) / np.sqrt(row.var() + 1.0)
    np.testing.assert_allclose(y_large[0], expected, rtol=1e-5)
    assert y_small.shape == (2, 6)


def test_keras_defaults_are_never_overwritten_by_a_call(tf):
    """forward_with_defaults runs a layer whose epsilon no call has set: Keras's 1e-3."""
    backend = KerasBackend()
    x = np.array([[-0.5, 0.5]], dtype=np.float64)
    backend.forward("layer_norm", NormInputs(x, eps=0.75, normalized_shape=(2,)))
    y = backend.forward_with_defaults("layer_norm", NormInputs(x, normalized_shape=(2,)))
    np.testing.assert_allclose(y[0, 1], 0.5 / np.sqrt(0.25 + 1e-3), rtol=1e-12)


def test_keras_evaluation_uses_the_given_running_statistics(tf):
    x = _x((4, 3, 2), dtype="float64")
    mean, var = np.array([1.0, -1.0, 0.5]), np.array([4.0, 1.0, 0.25])
    inputs = NormInputs(x, eps=0.0, training=False, running_mean=mean, running_var=var)
    y = KerasBackend().forward("batch_norm", inputs)
    expected = (x - mean[:, None]) / np.sqrt(var[:, None])
    np.testing.assert_allclose(y, expected, rtol=1e-12)


def test_tf_nn_has_no_default_eps(tf):
    """variance_epsilon is a required argument of tf.nn.batch_normalization."""
    with pytest.raises(TypeError, match="no default variance_epsilon"):
        TfNnBackend().forward_with_defaults("batch_norm", NormInputs(_x((4, 3))))


# --- dtypes and the fused kernel ------------------------------------------------------------


@pytest.mark.parametrize("backend_class", BACKENDS)
@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_outputs_and_gradients_keep_the_input_dtype(tf, backend_class, dtype):
    import ml_dtypes

    numpy_dtype = np.dtype(ml_dtypes.bfloat16) if dtype == "bfloat16" else np.dtype(dtype)
    x = _x((4, 3, 2)).astype(numpy_dtype)
    weight, bias = np.ones(3, numpy_dtype), np.zeros(3, numpy_dtype)
    inputs = NormInputs(x, eps=1e-3, weight=weight, bias=bias)
    backend = backend_class()
    assert backend.forward("batch_norm", inputs).dtype == numpy_dtype
    grads = backend.vjp("batch_norm", inputs, np.ones_like(x))
    assert grads.x.dtype == grads.weight.dtype == grads.bias.dtype == numpy_dtype


@pytest.mark.parametrize(
    ("shape", "view", "data_format"),
    [
        ((2, 3), (2, 1, 1, 3), "NHWC"),
        ((2, 5, 3), (2, 5, 1, 3), "NHWC"),
        ((2, 4, 5, 3), (2, 4, 5, 3), "NHWC"),
        ((2, 2, 4, 5, 3), (2, 2, 4, 5, 3), "NDHWC"),
    ],
)
def test_fused_kernel_sees_every_rank_as_4d_or_5d(tf, shape, view, data_format):
    """4-D and 5-D as they are; 2-D and 3-D as 4-D, which pools the same values per channel."""
    fused, fmt = TfFusedBackend().fused_view(tf.zeros(shape))
    assert (tuple(fused.shape), fmt) == (view, data_format)


def test_fused_backend_provides_batch_norm_without_float64():
    backend = TfFusedBackend()
    assert backend.supports("batch_norm", "bfloat16")
    assert not backend.supports("batch_norm", "float64")
    assert not backend.supports("layer_norm", "float32")


@pytest.mark.parametrize(
    ("backend_class", "asked", "says"),
    [
        (KerasBackend, "unbiased", "built from the biased batch variance"),
        (TfFusedBackend, "biased", "built from the unbiased batch variance"),
    ],
)
def test_a_running_variance_the_framework_cannot_build_is_a_clear_error(backend_class, asked, says):
    run = TrainingRun((_x((4, 3)),), 1e-5, 0.1, "new", asked, np.zeros(3), np.ones(3))
    with pytest.raises(ValueError, match=f"{says}; running_var_estimator='{asked}' is not"):
        backend_class().train("batch_norm", run)
