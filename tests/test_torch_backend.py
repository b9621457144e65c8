"""The PyTorch adapters translate, and only translate: momentum, weight-norm dim, dtypes,
layout, devices and module state reach torch as torch means them, and a missing torch or GPU
is a reason, not a crash."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from backends.protocol import NormInputs, Refused, TrainingRun
from backends.torch_backend import (
    TorchBackend,
    TorchChannelsLastBackend,
    TorchCudaBackend,
    TorchFunctionalBackend,
    TorchModuleBackend,
)
from normspec import spec

ROOT = Path(__file__).resolve().parent.parent
CPU_BACKENDS = (TorchFunctionalBackend, TorchModuleBackend, TorchChannelsLastBackend)
ALL_BACKENDS = (*CPU_BACKENDS, TorchCudaBackend)


@pytest.fixture
def torch():
    return pytest.importorskip("torch")


def _batches(k: int, shape: tuple[int, ...] = (4, 3, 5), seed: int = 0) -> tuple[np.ndarray, ...]:
    rng = np.random.default_rng(seed)
    return tuple(rng.normal(1.0, 2.0, shape) for _ in range(k))


def _run(batches, momentum, weighs="new") -> TrainingRun:
    channels = batches[0].shape[1]
    return TrainingRun(
        batches, 1e-3, momentum, weighs, "unbiased", np.zeros(channels), np.ones(channels)
    )


# --- a missing framework or device ------------------------------------------------------------


def test_importing_the_adapter_needs_no_torch():
    """torch is imported on first use only: without it the module imports and explains."""
    code = (
        "import sys; sys.modules['torch'] = None\n"
        "import backends.torch_backend as t\n"
        "print(t.TorchModuleBackend().unavailable_reason())"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("torch is not installed: pip install torch==2.13.0")


@pytest.mark.parametrize("backend_class", ALL_BACKENDS)
def test_a_missing_torch_is_an_unavailable_reason_not_a_crash(backend_class, monkeypatch):
    monkeypatch.setitem(sys.modules, "torch", None)  # what `import torch` reads as not there
    backend = backend_class()
    assert backend.unavailable_reason() == (
        "torch is not installed: pip install torch==2.13.0 "
        "(import of torch halted; None in sys.modules)"
    )
    assert backend.version() == ""


def test_without_a_gpu_the_cuda_backend_says_so(torch):
    if torch.cuda.is_available():
        pytest.skip("a CUDA device is present")
    assert TorchCudaBackend().unavailable_reason() == (
        "torch.cuda.is_available() is False: no CUDA device"
    )


# --- state: momentum, counters, caching -------------------------------------------------------


@pytest.mark.parametrize("backend_class", CPU_BACKENDS)
def test_momentum_that_weighs_the_old_value_reaches_torch_as_one_minus_it(torch, backend_class):
    backend = backend_class()
    assert backend.conventions.momentum_weighs == "new"
    assert backend.framework_momentum(0.25, "old") == 0.75
    assert backend.framework_momentum(0.25, "new") == 0.25
    batches = _batches(3)
    old = backend.train("batch_norm", _run(batches, 0.25, "old"))
    new = backend.train("batch_norm", _run(batches, 0.75, "new"))
    np.testing.assert_array_equal(old.running_mean, new.running_mean)
    np.testing.assert_array_equal(old.running_var, new.running_var)


def test_modules_report_num_batches_tracked_and_start_each_run_afresh(torch):
    backend = TorchModuleBackend()
    run = _run(_batches(3), 0.1)
    assert backend.train("batch_norm", run).batches_seen == 3
    # the cached module is reset, not continued, and the caller's arrays are not written
    assert backend.train("batch_norm", _run(_batches(2), 0.1)).batches_seen == 2
    np.testing.assert_array_equal(run.initial_mean, np.zeros(3))
    np.testing.assert_array_equal(run.initial_var, np.ones(3))


def test_momentum_none_is_the_modules_cumulative_average_and_refused_by_the_functional_ops(
    torch,
):
    batches = _batches(4)
    assert TorchModuleBackend().framework_momentum(None, "old") is None
    result = TorchModuleBackend().train("batch_norm", _run(batches, None))
    batch_means = [spec.batch_norm_training(b, eps=1e-3).mean for b in batches]
    np.testing.assert_allclose(result.running_mean, np.mean(batch_means, axis=0), rtol=1e-12)
    assert not TorchFunctionalBackend.conventions.cumulative_average
    with pytest.raises(ValueError, match="cumulative average"):
        TorchFunctionalBackend().train("batch_norm", _run(batches, None))


def test_evaluation_after_training_uses_the_running_statistics_it_is_given(torch):
    """A cached module carries nothing from one call into the next."""
    backend = TorchModuleBackend()
    backend.train("batch_norm", _run(_batches(2), 0.5))
    x = _batches(1)[0]
    mean, var = np.array([0.5, -1.0, 2.0]), np.array([0.25, 4.0, 1.0])
    inputs = NormInputs(x, eps=1e-3, training=False, running_mean=mean, running_var=var)
    expected = spec.batch_norm_evaluation(x, running_mean=mean, running_var=var, eps=1e-3)
    np.testing.assert_allclose(backend.forward("batch_norm", inputs), expected, rtol=1e-12)


def test_modules_are_built_once_per_configuration(torch):
    backend = TorchModuleBackend()
    inputs = NormInputs(_batches(1)[0], eps=1e-5, normalized_shape=(5,))
    backend.forward("layer_norm", inputs)
    backend.forward("layer_norm", inputs)
    assert backend._module.cache_info().hits == 1


# --- weight norm's dim ------------------------------------------------------------------------


@pytest.mark.parametrize("backend_class", CPU_BACKENDS)
def test_weight_norm_dim_minus_one_is_the_last_axis_and_none_the_whole_tensor(torch, backend_class):
    """torch reads dim=-1 as "the whole tensor"; normspec's -1 is the last axis."""
    backend = backend_class()
    assert backend.torch_dim(-1, 3) == 2
    assert backend.torch_dim(None, 3) == -1
    v = np.random.default_rng(1).normal(size=(2, 3, 4))
    g = np.arange(1.0, 5.0).reshape(1, 1, 4)
    w = backend.forward("weight_norm", NormInputs(v, weight=g, dim=-1))
    np.testing.assert_allclose(np.sqrt((w * w).sum(axis=(0, 1))), g.ravel(), rtol=1e-12)


# --- dtypes and layout ------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", ["float16", "bfloat16", "float32", "float64"])
def test_outputs_and_gradients_come_back_in_the_input_dtype(torch, dtype):
    import ml_dtypes

    np_dtype = np.dtype(ml_dtypes.bfloat16) if dtype == "bfloat16" else np.dtype(dtype)
    x = _batches(1)[0].astype(np.float32).astype(np_dtype)
    weight = np.ones(5, dtype=np_dtype)
    inputs = NormInputs(x, eps=1e-3, weight=weight, normalized_shape=(5,))
    for backend in (TorchFunctionalBackend(), TorchModuleBackend()):
        assert backend.supports("layer_norm", dtype)
        assert backend.forward("layer_norm", inputs).dtype == np_dtype
        grads = backend.vjp("layer_norm", inputs, x)
        assert {grads.x.dtype, grads.weight.dtype, grads.bias.dtype} == {np_dtype}


def test_bfloat16_values_cross_into_torch_and_back_exactly(torch):
    import ml_dtypes

    backend = TorchFunctionalBackend()
    x = np.array([1.0, 2.0**-133, 3.3895e38, -0.1], dtype=ml_dtypes.bfloat16)
    tensor = backend._tensor(x, x.dtype)
    assert tensor.dtype == torch.bfloat16
    back = backend.to_numpy(tensor, x.dtype)
    assert back.dtype == x.dtype
    np.testing.assert_array_equal(back.view(np.uint16), x.view(np.uint16))


def test_channels_last_inputs_reach_torch_in_channels_last(torch, monkeypatch):
    seen = []
    batch_norm = torch.nn.functional.batch_norm

    def spy(x, *args, **kwargs):
        seen.append((x.ndim, x.is_contiguous(), x.is_contiguous(memory_format=fmt[x.ndim])))
        return batch_norm(x, *args, **kwargs)

    fmt = {3: torch.contiguous_format, 4: torch.channels_last, 5: torch.channels_last_3d}
    monkeypatch.setattr(torch.nn.functional, "batch_norm", spy)
    backend = TorchChannelsLastBackend()
    assert backend.conventions.layout == "channels_last (4-D, 5-D)"
    for shape in [(2, 3, 4), (2, 3, 4, 5), (2, 3, 2, 4, 5)]:
        backend.forward("batch_norm", NormInputs(np.ones(shape), eps=1e-3))
    # 4-D and 5-D tensors are not contiguous in torch's default sense, only channels-last
    assert seen == [(3, True, True), (4, False, True), (5, False, True)]


# --- parameters, defaults and torch's own refusals --------------------------------------------


def test_parameter_gradients_come_with_a_weight_as_the_spec_gives_them(torch):
    x = _batches(1)[0]
    backend = TorchModuleBackend()
    plain = backend.vjp("group_norm", NormInputs(x, eps=1e-3, num_groups=3), x)
    assert plain.weight is None and plain.bias is None
    weighted = NormInputs(x, eps=1e-3, num_groups=3, weight=np.full(3, 2.0))
    grads = backend.vjp("group_norm", weighted, x)  # no bias given: it is 0, and has a gradient
    expected = spec.group_norm_vjp(x, x, num_groups=3, eps=1e-3, weight=np.full(3, 2.0))
    np.testing.assert_allclose(grads.weight, expected.weight, rtol=1e-10)
    np.testing.assert_allclose(grads.bias, expected.bias, rtol=1e-10)


@pytest.mark.parametrize("backend_class", CPU_BACKENDS)
def test_forward_with_defaults_passes_no_eps(torch, backend_class):
    """torch's own default: 1e-5 for layer_norm; for rms_norm the machine epsilon of the
    float32 computation type, also for float16 input (not float16's own epsilon)."""
    backend = backend_class()
    x = _batches(1)[0] * 1e-3
    ln = NormInputs(x, eps=1e-5, normalized_shape=(5,))
    np.testing.assert_array_equal(
        backend.forward_with_defaults("layer_norm", ln), backend.forward("layer_norm", ln)
    )
    half = x.astype(np.float16)
    rms = NormInputs(half, eps=float(np.finfo(np.float32).eps), normalized_shape=(5,))
    np.testing.assert_array_equal(
        backend.forward_with_defaults("rms_norm", rms), backend.forward("rms_norm", rms)
    )


def test_torch_refusing_eps_zero_in_training_is_a_declared_refusal(torch):
    """torch refuses eps = 0 in training-mode BatchNorm; the adapter says so as Refused, which
    a property reads as a discarded example, not as a failure of torch."""
    assert TorchModuleBackend().conventions.zero_variance("batch_norm") == "refused"
    with pytest.raises(Refused, match="eps <= 0"):
        TorchModuleBackend().forward("batch_norm", NormInputs(_batches(1)[0], eps=0.0))


@pytest.mark.parametrize("backend_class", ALL_BACKENDS)
def test_every_variant_is_the_one_adapter_with_its_own_parameters(backend_class):
    """One hierarchy: the variants differ in (api, device, memory_format), not in code."""
    backend = backend_class()
    assert isinstance(backend, TorchBackend)
    expected = {
        "torch": ("cpu", None),
        "torch-nn": ("cpu", None),
        "torch-channels-last": ("cpu", "channels_last"),
        "torch-cuda": ("cuda", None),
    }
    assert (backend.device, backend.memory_format) == expected[backend.name]
