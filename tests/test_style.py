"""The house style holds: ruff is clean, and no backend calls the specification."""

from __future__ import annotations

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
