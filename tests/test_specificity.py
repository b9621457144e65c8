"""Specificity: the honest controls pass every property, so a failure is always a finding.

The planted bugs (tests/test_mutants.py) prove that every property can fail; these tests prove
that none fails on a correct backend. `exact` (the NumPy code in float64, rounded once to the
input's dtype) and `rounding` (float32 accumulation) make only the errors the tolerance model
allows. A failure here is a bug of normspec (a bound too tight, a property that assumes too
much), never of a backend: widening a bound to fix one is right only with a derivation.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CONTROLS = ("exact", "rounding")
#: The honest control of the replicated properties, which the controls above do not get: the
#: NumPy implementation of synchronized BatchNorm from per-replica partial sums.
REPLICATED_CONTROL = "numpy-sync"
#: The bounded random run: dev profile, a fixed seed, this many examples per property.
RANDOM_EXAMPLES = 250
RANDOM_SEED = 20261203


def _properties(*options: str) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "pytest", "properties", "-p", "no:cacheprovider", "-q"]
    command += ["--tb=short", "-W", "ignore::RuntimeWarning", *options]
    for backend in (*CONTROLS, REPLICATED_CONTROL):
        command += ["--backend", backend]
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=1200)


def test_the_honest_controls_pass_every_property_under_ci(tmp_path):
    done = _properties("--profile", "ci", "--results", str(tmp_path / "record.json"))
    record = json.loads((tmp_path / "record.json").read_text())
    statuses = {r["status"] for r in record["results"]}
    # a replicated property is "not provided" for the controls, the others for numpy-sync
    assert done.returncode == 0 and statuses <= {"passed", "not provided"}, done.stdout[-6000:]
    properties = {r["property"] for r in record["results"] if r["status"] == "passed"}
    from normspec.runner.cli import property_names

    # every property of a single backend; the differential ones pair frameworks, not controls
    single = {p for p in property_names() if not p.startswith("test_backends_agree")}
    assert properties == single


@pytest.mark.slow
def test_the_honest_controls_pass_a_bounded_random_run():
    """Random inputs (dev profile, seed fixed for reproducibility): any failure prints its
    shrunk falsifying example, which is a case the tolerance model gets wrong."""
    done = _properties(
        "--profile",
        "dev",
        "--max-examples",
        str(RANDOM_EXAMPLES),
        f"--hypothesis-seed={RANDOM_SEED}",
    )
    assert done.returncode == 0, done.stdout[-12000:]
