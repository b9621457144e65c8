"""Backends as entry points: a package that registers an adapter under the entry-point group
`normspec.backends` is found by name, as pytest finds its plugins. The test builds a small
package, installs it with pip into a temporary directory that only its subprocesses see, and
uses the backend by its name, without `module:attr`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from backends.registry import BUILTIN, ENTRY_POINT_GROUP, backend_names

ROOT = Path(__file__).resolve().parent.parent

#: The package: a company's kernels, here the NumPy backend under another name.
PYPROJECT = f"""
[build-system]
requires = ["setuptools"]
build-backend = "setuptools.build_meta"

[project]
name = "acme-norm-kernels"
version = "1.0"

[project.entry-points."{ENTRY_POINT_GROUP}"]
acme-kernels = "acme_norm_kernels:AcmeKernels"
numpy = "acme_norm_kernels:AcmeKernels"
"""
MODULE = '''
"""Acme's normalization kernels, as a normspec backend."""
from backends.numpy_backend import NumpyBackend


class AcmeKernels(NumpyBackend):
    name = "acme-kernels"

    def version(self):
        return "acme 1.0"
'''


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> dict[str, str]:
    """The environment of a Python that has acme-norm-kernels installed (pip --target)."""
    root = tmp_path_factory.mktemp("plugin")
    source, target = root / "acme-norm-kernels", root / "site"
    source.mkdir()
    (source / "pyproject.toml").write_text(textwrap.dedent(PYPROJECT))
    (source / "acme_norm_kernels.py").write_text(textwrap.dedent(MODULE))
    pip = [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-index"]
    done = subprocess.run(
        [*pip, "--no-build-isolation", "--target", str(target), str(source)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    if done.returncode != 0:
        pytest.fail(f"pip could not install the test package:\n{done.stdout}{done.stderr}")
    return dict(os.environ, PYTHONPATH=os.pathsep.join([str(target), str(ROOT)]))


def _normspec(env: dict[str, str], cwd: Path, *arguments: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "normspec", *arguments],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


def test_without_the_package_only_the_built_in_backends_are_listed():
    assert backend_names()[: len(BUILTIN)] == list(BUILTIN)
    assert "acme-kernels" not in backend_names()


def test_an_installed_backend_is_listed_with_its_version(installed, tmp_path):
    done = _normspec(installed, tmp_path, "backends")
    assert done.returncode == 0, done.stderr
    lines = {line.split()[0]: line for line in done.stdout.splitlines()}
    assert "acme-kernels" in lines, done.stdout
    assert "available  acme 1.0" in lines["acme-kernels"]
    # a built-in name is never taken over by a package: `numpy` is still normspec's
    assert "acme" not in lines["numpy"]


def test_an_installed_backend_is_checked_by_its_name(installed, tmp_path):
    report_dir = tmp_path / "reports"
    done = _normspec(
        installed,
        tmp_path,
        "check",
        "--backend",
        "acme-kernels",
        "--norm",
        "layer_norm",
        "--property",
        "test_forward_agrees_with_the_spec",
        "--report-dir",
        str(report_dir),
    )
    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads((report_dir / "conformance.json").read_text())
    assert {(r["backend"], r["status"]) for r in report["results"]} == {("acme-kernels", "passed")}


def test_an_unknown_name_lists_the_installed_backends(installed, tmp_path):
    done = _normspec(installed, tmp_path, "check", "--backend", "acme")
    assert done.returncode == 2
    assert "installed (normspec.backends entry points): acme-kernels" in done.stderr
