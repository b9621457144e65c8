"""Every known deviation is data a user can act on: it names a backend, a norm and a property
that exist, and its reproduction is a standalone script that uses only the framework and
NumPy, and still shows the deviation (exit status 1) with the pinned versions."""

from __future__ import annotations

import ast
import importlib.util
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from backends.registry import BUILTIN, REPLICATED
from normspec.runner.cli import property_names
from normspec.vocabulary import NORMS

ROOT = Path(__file__).resolve().parent.parent
DEVIATIONS = tomllib.loads((ROOT / "properties" / "known_deviations.toml").read_text()).get(
    "deviation", []
)
#: The frameworks a reproduction may use, and the standard modules it needs around them.
FRAMEWORKS = {"torch", "tensorflow", "keras", "jax", "flax", "onnx", "onnxruntime"}
ALLOWED_IMPORTS = {"numpy", "ml_dtypes", "sys", "os", "math", *FRAMEWORKS}


def _listed(value: str | list[str]) -> list[str]:
    return [value] if isinstance(value, str) else list(value)


def _id(deviation: dict) -> str:
    return _script(deviation).stem


def _script(deviation: dict) -> Path:
    return ROOT / deviation["reproduction"].split()[-1]


@pytest.mark.parametrize("deviation", DEVIATIONS, ids=_id)
def test_a_known_deviation_names_what_exists(deviation):
    for backend in _listed(deviation["backend"]):
        for name in backend.split(" vs "):
            assert name in BUILTIN or name in REPLICATED, f"unknown backend {name!r}"
    assert set(_listed(deviation["norm"])) <= set(NORMS)
    assert set(_listed(deviation["property"])) <= set(property_names())
    assert deviation["reason"] and deviation["versions"]


@pytest.mark.parametrize("deviation", DEVIATIONS, ids=_id)
def test_its_reproduction_uses_only_the_framework_and_numpy_and_still_deviates(deviation):
    script = _script(deviation)
    assert script.is_file(), f"no reproduction script at {script}"
    tree = ast.parse(script.read_text())
    imported = {
        alias.name.split(".")[0]
        for node in ast.walk(tree)
        if isinstance(node, ast.Import)
        for alias in node.names
    }
    imported |= {
        node.module.split(".")[0]
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and node.module
    }
    assert imported <= ALLOWED_IMPORTS, f"imports beyond the framework: {imported}"
    for framework in imported & FRAMEWORKS:
        if importlib.util.find_spec(framework) is None:
            pytest.skip(f"{framework} is not installed")
    done = subprocess.run(
        [sys.executable, str(script)],
        capture_output=True,
        text=True,
        timeout=300,
        env={"TF_CPP_MIN_LOG_LEVEL": "2", "PATH": "/usr/bin"},
    )
    assert done.returncode == 1, (
        f"{script.name} exited {done.returncode}: the deviation "
        f"may be fixed upstream\n{done.stdout}{done.stderr}"
    )
    assert "DEVIATES" in done.stdout
