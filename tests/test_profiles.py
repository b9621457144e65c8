"""The suite's Hypothesis profiles are the same wherever they run. Under CI=true (set by
GitHub Actions, GitLab CI and most others) Hypothesis loads a built-in "ci" profile of its
own, derandomized and without a database; dev and hunt must not inherit it, or a hunt in a
CI job would search the same inputs every time and keep nothing it found."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SHOW = """
import json
from hypothesis import settings
import properties.options
print(json.dumps({name: {
    "derandomize": settings.get_profile(name).derandomize,
    "phases": [p.name for p in settings.get_profile(name).phases],
    "max_examples": settings.get_profile(name).max_examples,
    "database": settings.get_profile(name).database is not None,
} for name in ("ci", "dev", "hunt")}))
"""


def profiles(environment: dict[str, str]) -> dict:
    done = subprocess.run(
        [sys.executable, "-c", SHOW],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return json.loads(done.stdout)


@pytest.fixture(scope="module")
def outside_and_inside_ci() -> tuple[dict, dict]:
    outside = {k: v for k, v in os.environ.items() if k not in ("CI", "TF_BUILD")}
    return profiles(outside), profiles(dict(outside, CI="true"))


def test_the_profiles_do_not_depend_on_the_ci_environment_variable(outside_and_inside_ci):
    outside, inside = outside_and_inside_ci
    assert outside == inside


def test_dev_and_hunt_search_afresh_and_replay_what_they_found(outside_and_inside_ci):
    for found in outside_and_inside_ci:
        for name in ("dev", "hunt"):
            assert not found[name]["derandomize"], name
            assert "reuse" in found[name]["phases"], name
        assert found["ci"]["derandomize"] and "reuse" not in found["ci"]["phases"]
