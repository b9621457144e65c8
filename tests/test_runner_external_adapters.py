"""An external adapter as the README shows it: a module in the directory `normspec check` is
started from, named as `module:attr`, run through the installed `normspec` executable."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
NORMSPEC = shutil.which("normspec", path=str(Path(sys.executable).parent))

pytestmark = pytest.mark.skipif(
    NORMSPEC is None, reason="the normspec console script is not installed (pip install -e .)"
)

MY_KERNELS = '''
from backends.numpy_backend import NumpyBackend


class MyKernels(NumpyBackend):
    """Someone's own kernels; here NumPy's, so they pass."""
'''


def installed_normspec(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    """The installed `normspec` executable, run from `cwd`, on this checkout's code."""
    path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)
    return subprocess.run(
        [NORMSPEC, *args],
        cwd=cwd,
        env=dict(os.environ, PYTHONPATH=path),
        capture_output=True,
        text=True,
        timeout=600,
    )


def test_an_adapter_module_in_the_working_directory_is_found(tmp_path):
    (tmp_path / "mymod.py").write_text(MY_KERNELS)
    done = installed_normspec(
        "check", "--backend", "mymod:MyKernels", "--norm", "layer_norm",
        "--property", "test_forward_agrees_with_the_spec", "--report-dir", "reports",
        cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    (result,) = json.loads((tmp_path / "reports" / "conformance.json").read_text())["results"]
    assert (result["backend"], result["status"]) == ("mymod:MyKernels", "passed")


@pytest.mark.parametrize(
    ("source", "says"),
    [
        ("raise RuntimeError('no driver for the accelerator')\n",
         "RuntimeError: no driver for the accelerator"),
        ("def f(:\n", "SyntaxError"),
    ],
    ids=["import raises", "syntax error"],
)  # fmt: skip
def test_an_adapter_whose_import_raises_is_a_finding_with_the_error(tmp_path, source, says):
    """A kernel library that no longer loads is a finding: its cells fail with the import
    error (backends/registry.py), the run completes, and nothing prints a traceback."""
    (tmp_path / "broken.py").write_text(source)
    done = installed_normspec(
        "check", "--backend", "broken:MyKernels", "--norm", "layer_norm",
        "--property", "test_forward_agrees_with_the_spec", "--report-dir", "reports",
        cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 1, done.stdout + done.stderr
    (result,) = json.loads((tmp_path / "reports" / "conformance.json").read_text())["results"]
    assert result["status"] == "failed"
    assert says in result["message"]
    assert "Traceback" not in done.stderr


def test_an_adapter_whose_constructor_raises_is_a_usage_error_naming_it(tmp_path):
    (tmp_path / "broken.py").write_text(
        "from backends.numpy_backend import NumpyBackend\n"
        "class MyKernels(NumpyBackend):\n"
        "    def __init__(self):\n"
        "        raise ValueError('set MY_KERNELS_HOME')\n"
    )
    done = installed_normspec("check", "--backend", "broken:MyKernels", cwd=tmp_path)
    assert done.returncode == 2, done.stdout + done.stderr
    assert (
        "normspec: error: backend 'broken:MyKernels': loading 'MyKernels' raised ValueError: "
        f"set MY_KERNELS_HOME at {tmp_path / 'broken.py'}:4"
    ) in done.stderr
    assert "Traceback" not in done.stderr
