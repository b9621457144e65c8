"""Every planted bug is caught: the ci profile, run against each mutant backend through
`normspec check --backend tests.mutants.MODULE:CLASS`, fails the properties the mutant names.

This is what keeps the property suite honest: a property that no mutant can make fail
proves nothing.
"""

from __future__ import annotations

import importlib
import inspect
import json
import subprocess
import sys
from pathlib import Path

import pytest

from properties import strategies  # noqa: F401  (the suite must import before it is run)

ROOT = Path(__file__).resolve().parent.parent
MODULES = (
    "numpy_mutants",
    "torch_mutants",
    "tensorflow_mutants",
    "flax_mutants",
    "onnxruntime_mutants",
    "torch_compile_mutants",
    "replicated_mutants",
)


def _mutants() -> list:
    """(module, class) for every mutant class of every mutant module that exists."""
    found = []
    for name in MODULES:
        if not (ROOT / "tests" / "mutants" / f"{name}.py").exists():
            continue
        module = importlib.import_module(f"tests.mutants.{name}")
        for _, cls in inspect.getmembers(module, inspect.isclass):
            if cls.__module__ == module.__name__ and hasattr(cls, "caught_by"):
                found.append(pytest.param(name, cls, id=f"{name}:{cls.__name__}"))
    return found


def run_check(
    backends: list[str], norms: tuple[str, ...], properties: tuple[str, ...], report_dir: Path
) -> tuple[int, dict]:
    """Run `normspec check` as a user would, and return its exit status and JSON report."""
    command = [sys.executable, "-m", "normspec", "check", "--report-dir", str(report_dir)]
    command += ["--profile", "ci"]
    for backend in backends:
        command += ["--backend", backend]
    for norm in norms:
        command += ["--norm", norm]
    for prop in properties:
        command += ["--property", prop]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600)
    report_path = report_dir / "conformance.json"
    report = json.loads(report_path.read_text()) if report_path.exists() else {}
    return done.returncode, report | {"_output": done.stdout + done.stderr}


def test_every_property_has_a_mutant_that_makes_it_fail():
    """The union of the mutants' `caught_by` covers every property of the suite."""
    from normspec.runner.cli import property_names

    caught = {p for param in _mutants() for p in param.values[1].caught_by}
    uncovered = sorted(set(property_names()) - caught)
    assert not uncovered, f"properties that no planted bug makes fail: {uncovered}"


@pytest.mark.parametrize(("module", "mutant"), _mutants())
def test_mutant_is_caught_by_the_property_meant_to_catch_it(module, mutant, tmp_path):
    """`normspec check` exits 1 and each property in `caught_by` fails on one of `caught_on`;
    a differential property runs the mutant against its healthy twin (`differs_from`, by
    default the NumPy backend)."""
    backend = mutant()
    reason = backend.unavailable_reason()
    if reason:
        pytest.skip(f"{mutant.__name__}: {reason}")
    name = f"tests.mutants.{module}:{mutant.__name__}"
    backends = [name]
    if any(p.startswith("test_backends_agree") for p in mutant.caught_by):
        backends.insert(0, getattr(mutant, "differs_from", "numpy"))  # the healthy twin
    status, report = run_check(backends, mutant.caught_on, mutant.caught_by, tmp_path)
    assert status == 1, f"normspec check exited {status} on {name}:\n{report['_output']}"
    failed = {r["property"] for r in report["results"] if r["status"] == "failed"}
    missed = [p for p in mutant.caught_by if p not in failed]
    assert not missed, (
        f"{mutant.__name__} ({mutant.__doc__.splitlines()[0]}) was not caught "
        f"by {missed}; results: "
        + json.dumps([(r["norm"], r["property"], r["status"]) for r in report["results"]])
    )
