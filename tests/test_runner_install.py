"""normspec installed as a package (`pip install .`, not editable) carries what the properties
read at run time, and `normspec check` runs from it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
NOT_SOURCE = shutil.ignore_patterns(
    ".git", ".venv", "build", "*.egg-info", "__pycache__", ".hypothesis", "reports", ".*_cache"
)


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """A non-editable install of this checkout into a directory of its own (dependencies are
    the running interpreter's; nothing is downloaded)."""
    source = tmp_path_factory.mktemp("source") / "normspec"
    shutil.copytree(ROOT, source, ignore=NOT_SOURCE)
    target = tmp_path_factory.mktemp("installed")
    done = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-index",
         "--no-build-isolation", "--target", str(target), str(source)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    if done.returncode != 0 and "No module named pip" in done.stderr:
        pytest.skip("pip is not installed")
    assert done.returncode == 0, done.stdout + done.stderr
    return target


def test_the_known_deviations_and_their_reproductions_are_installed(installed):
    properties = installed / "properties"
    assert (properties / "known_deviations.toml").is_file()
    shipped = {p.name for p in (ROOT / "properties" / "reproductions").glob("*.py")}
    assert shipped
    assert {p.name for p in (properties / "reproductions").glob("*.py")} == shipped


def test_check_runs_from_the_installed_package(installed, tmp_path):
    env = dict(os.environ, PYTHONPATH=str(installed))
    done = subprocess.run(
        [sys.executable, "-m", "normspec", "check", "--backend", "numpy", "--norm", "layer_norm",
         "--property", "test_forward_agrees_with_the_spec", "--report-dir", str(tmp_path / "r")],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert (tmp_path / "r" / "conformance.json").is_file()
    page = (tmp_path / "r" / "index.html").read_text()  # its stylesheet and script installed
    assert "<style>" in page and "document.body.dataset.ready" in page
