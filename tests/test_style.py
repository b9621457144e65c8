"""The house style holds: ruff is clean, and no backend calls the specification."""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
RUFF = shutil.which("ruff", path=str(Path(sys.executable).parent)) or shutil.which("ruff")


@pytest.mark.skipif(RUFF is None, reason="ruff is not installed: pip install ruff")
@pytest.mark.parametrize("command", [["check"], ["format", "--check"]])
def test_ruff_is_clean(command):
    done = subprocess.run([RUFF, *command, "."], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def test_no_backend_imports_the_specification():
    """A backend that reuses the oracle proves nothing."""
    offenders = [
        str(p.relative_to(ROOT))
        for p in (ROOT / "backends").glob("*.py")
        if "normspec.spec" in p.read_text() or "from normspec import spec" in p.read_text()
    ]
    assert not offenders


def _imports(path: Path) -> set[str]:
    """The modules `path` imports, as dotted names (relative imports are not used here)."""
    tree = ast.parse(path.read_text())
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
            found |= {f"{node.module}.{alias.name}" for alias in node.names}
    return found


FRAMEWORKS = ("torch", "tensorflow", "keras", "jax", "flax", "onnx", "onnxruntime")
#: The ground floor: the vocabulary, the spec and the tolerance model.
GROUND = ("vocabulary", "errors", "core", "spec", "tolerance", "reference")
#: layer -> (its modules, the prefixes of what it must never import)
LAYERS = {
    "ground floor": (
        [ROOT / "normspec" / f"{name}.py" for name in GROUND] + [ROOT / "normspec/__init__.py"],
        ("backends", "properties", "normspec.runner", "hypothesis", "pytest", *FRAMEWORKS),
    ),
    "backends": (
        sorted((ROOT / "backends").glob("*.py")),
        ("properties", "normspec.runner", "normspec.spec", "normspec.reference", "hypothesis"),
    ),
    "properties": (sorted((ROOT / "properties").glob("*.py")), ("normspec.runner", "tests")),
}


def _offends(module: str, forbidden: tuple[str, ...]) -> bool:
    return any(module == f or module.startswith(f + ".") for f in forbidden)


@pytest.mark.parametrize("layer", LAYERS)
def test_imports_only_point_down(layer):
    """Ground floor (vocabulary, spec, tolerance) <- backends <- properties <- runner: no module
    imports a layer above its own, the spec and the tolerance model import no framework and
    no Hypothesis, and the backends import neither the spec nor the properties."""
    paths, forbidden = LAYERS[layer]
    assert paths, f"no modules found for {layer}"
    offenders = {
        str(path.relative_to(ROOT)): sorted(m for m in _imports(path) if _offends(m, forbidden))
        for path in paths
    }
    assert not {k: v for k, v in offenders.items() if v}, offenders


def test_the_layering_guard_sees_an_upward_import(tmp_path):
    """The guard itself: a module that imports the runner is reported."""
    module = tmp_path / "m.py"
    module.write_text("from normspec.runner import cli\nimport hypothesis.strategies\n")
    imported = _imports(module)
    assert _offends("normspec.runner.cli", ("normspec.runner",))
    assert {m for m in imported if _offends(m, ("normspec.runner", "hypothesis"))} == {
        "normspec.runner",
        "normspec.runner.cli",
        "hypothesis.strategies",
    }
