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
         "importing 'broken' raised RuntimeError: no driver for the accelerator"),
        ("def f(:\n", "importing 'broken' raised SyntaxError"),
        ("from backends.numpy_backend import NumpyBackend\n"
         "class MyKernels(NumpyBackend):\n"
         "    def __init__(self):\n"
         "        raise ValueError('set MY_KERNELS_HOME')\n",
         "loading 'MyKernels' raised ValueError: set MY_KERNELS_HOME"),
    ],
    ids=["import raises", "syntax error", "constructor raises"],
)  # fmt: skip
def test_an_adapter_that_raises_while_loading_is_a_usage_error_naming_it(tmp_path, source, says):
    (tmp_path / "broken.py").write_text(source)
    done = installed_normspec("check", "--backend", "broken:MyKernels", cwd=tmp_path)
    assert done.returncode == 2, done.stdout + done.stderr
    assert f"normspec: error: backend 'broken:MyKernels': {says}" in done.stderr
    assert str(tmp_path / "broken.py") in done.stderr
    assert "Traceback" not in done.stderr
