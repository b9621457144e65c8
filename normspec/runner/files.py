"""The files a check writes: where they go is checked before the run, and the reports are
replaced all at once after it, so a directory never holds some old and some new reports."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from normspec.runner.stopping import signals_deferred


def directory_problem(directory: Path, option: str = "--report-dir") -> str | None:
    """Why files cannot be written into `directory` (created if missing); None if they can."""
    if directory.exists() and not directory.is_dir():
        return f"{option} {directory} exists and is not a directory"
    nearest = directory.absolute()
    while not nearest.exists():
        nearest = nearest.parent
    if not nearest.is_dir():
        return f"{option} {directory}: {nearest} is not a directory"
    # permission bits do not tell (root, read-only mounts, ACLs): try it
    try:
        Path(tempfile.mkdtemp(prefix=".normspec-probe-", dir=nearest)).rmdir()
    except OSError as error:
        return f"{option} {directory}: cannot write in {nearest}: {error.strerror or error}"
    return None


def file_problem(path: Path, option: str) -> str | None:
    """Why a file cannot be written at `path`; None if it can."""
    if path.is_dir():
        return f"{option} {path} is a directory"
    return directory_problem(path.absolute().parent, option)


def write_all(directory: Path, files: dict[str, str]) -> list[Path]:
    """Write {name: text} into `directory`: every file replaced, or, if writing any of them
    fails, none (the error is raised and the directory is as it was)."""
    directory.mkdir(parents=True, exist_ok=True)
    # staged inside the directory itself: the same file system, so each move is a rename
    staging = Path(tempfile.mkdtemp(prefix=".normspec-staging-", dir=directory))
    try:
        for name, text in files.items():
            (staging / name).write_text(text)
        with signals_deferred():
            for name in files:
                os.replace(staging / name, directory / name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return [directory / name for name in files]
