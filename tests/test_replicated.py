"""Replicated backends: how normspec splits a batch, runs a framework in its own worker
process, and gives the replicated property only to the backends that are replicated."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from backends.registry import load_backend
from backends.replica_worker import Worker, WorkerError
from backends.replicated import even_split
from normspec import reference
from normspec.vocabulary import NormInputs
from properties.assertions import precision, within
from properties.strategies import ArrayRecipe, ReplicatedCase

ROOT = Path(__file__).resolve().parent.parent


def _case(sizes, masked=None, dtype="float32", seed=3) -> ReplicatedCase:
    count = sum(sizes)
    return ReplicatedCase(
        batches=(ArrayRecipe((count, 2, 3), seed=seed),),
        sizes=sizes,
        dtype=dtype,
        eps=1e-3,
        momentum=0.9,
        momentum_weighs="old",
        running_var_estimator="biased",
        initial_mean=ArrayRecipe((2,)),
        initial_var=ArrayRecipe((2,), seed=1),
        grad_y=ArrayRecipe((count, 2, 3), seed=2),
        masked=masked,
    )


def test_an_even_split_puts_the_larger_shares_first_and_never_an_empty_one():
    assert even_split(7, 2) == (4, 3)
    assert even_split(8, 4) == (2, 2, 2, 2)
    assert even_split(1, 2) == (1,)


def test_the_whole_batch_of_a_case_is_its_unmasked_samples_in_order():
    case = _case((3, 2, 2), masked=(1, 2, 0))
    run = case.run()
    assert [len(s) for s in run.shares[0]] == [3, 2, 2]
    assert [m.tolist() for m in run.masks] == [[True, True, False], [False, False], [True, True]]
    batch = case.batches[0].build().astype(np.float32)
    np.testing.assert_array_equal(case.whole().batches[0], batch[[0, 1, 5, 6]])
    upstream = np.concatenate(run.grad_y)
    assert not upstream[[2, 3, 4]].any(), "a masked sample's output has no cotangent"


class RaisingEngine:
    def step(self, *_):
        raise RuntimeError("the framework broke")


class DyingEngine:
    def step(self, *_):
        os._exit(3)


def test_an_error_in_the_worker_comes_back_with_its_traceback():
    worker = Worker("tests.test_replicated:RaisingEngine", {})
    with pytest.raises(WorkerError, match="the framework broke"):
        worker.call("step")
    worker.close()


def test_a_worker_that_dies_is_an_error_of_the_call_not_a_hang():
    worker = Worker("tests.test_replicated:DyingEngine", {})
    with pytest.raises(WorkerError, match="exited with status 3"):
        worker.call("step")


def test_only_replicated_backends_get_the_replicated_cells():
    done = subprocess.run(
        [
            *(sys.executable, "-m", "pytest", "properties/test_replicated_batch_norm.py"),
            *("properties/test_statistics.py", "--backend", "numpy", "--backend", "numpy-sync"),
            *("--norm", "batch_norm", "-q", "-rs", "-p", "no:cacheprovider"),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "not provided: numpy is not replicated" in done.stdout
    assert "not provided: numpy-sync is replicated" in done.stdout
    assert "4 passed, 4 skipped" in done.stdout


@pytest.mark.parametrize("name", ["numpy-sync", "keras-sync", "flax-sync"])
def test_a_replicated_backend_equals_batch_norm_on_the_whole_batch_for_an_uneven_split(name):
    """Shares of 4 and 3: keras-sync and numpy-sync weigh the replicas by their counts; Flax
    pads the 3 and masks the padding, and its known deviation (an unweighted pmean of the
    replicas' means) shows here as a difference."""
    backend = load_backend(name)
    reason = backend.unavailable_reason()
    if reason:
        pytest.skip(reason)
    case = _case((4, 3))
    result = backend.replicated_step("batch_norm", case.run())
    whole = case.whole()
    inputs = NormInputs(whole.batches[0], case.eps, whole.weight, whole.bias)
    expected = reference.forward("batch_norm", inputs, precision(backend, "float32", "batch_norm"))
    agrees = within(np.concatenate(result.outputs[0]), expected, "float32")
    assert agrees == (name != "flax-sync")
