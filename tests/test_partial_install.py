"""A partial install (NumPy only, no torch, no TensorFlow) is a passing run in which the
missing frameworks' backends are skipped with their reason and their known deviations are
"not checked": a deviation whose backend did not run is no evidence of a fix."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def without_frameworks(tmp_path: Path) -> dict[str, str]:
    """An environment in which `import torch`, `tensorflow`, `keras`, `jax`, `flax`, `onnx` and
    `onnxruntime` fail as on a machine where they are not installed."""
    shim = tmp_path / "shim"
    for name in ("torch", "tensorflow", "keras", "jax", "flax", "onnx", "onnxruntime"):
        (shim / name).mkdir(parents=True)
        (shim / name / "__init__.py").write_text(
            f"raise ModuleNotFoundError(\"No module named '{name}'\", name={name!r})\n"
        )
    path = os.pathsep.join([str(shim), str(ROOT)])
    return dict(os.environ, PYTHONPATH=path)


@pytest.mark.slow
def test_a_numpy_only_install_passes_and_marks_the_missing_deviations_not_checked(
    without_frameworks, tmp_path
):
    done = subprocess.run(
        [sys.executable, "-m", "normspec", "check", "--report-dir", str(tmp_path / "r")],
        cwd=tmp_path,
        env=without_frameworks,
        capture_output=True,
        text=True,
        timeout=600,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    assert "no longer observed" not in output
    report = json.loads((tmp_path / "r" / "conformance.json").read_text())
    statuses = {r["backend"]: set() for r in report["results"]}
    for r in report["results"]:
        statuses[r["backend"]].add(r["status"])
    assert statuses["numpy"] >= {"passed"}
    assert statuses["torch"] == {"skipped"}
    torch_skip = next(r for r in report["results"] if r["backend"] == "torch")
    assert "torch is not installed" in torch_skip["reason"]
    deviations = report["known_deviations"]
    assert deviations and all(d["status"] == "not checked" for d in deviations), [
        (d["backend"], d["status"]) for d in deviations
    ]
