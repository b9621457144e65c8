"""What `normspec check` verifies before anything runs: every name it was given, every adapter
it must load, where it writes, and the known-deviations files it reads. A problem found here
is exit 2 with a message that names it; nothing has run, nothing is written."""

from __future__ import annotations

import argparse
import ast
import os
import sys
import traceback
from pathlib import Path

from normspec.runner.engine import PROPERTIES
from normspec.runner.files import directory_problem, file_problem
from normspec.vocabulary import NORMS


def property_names() -> list[str]:
    """The property test functions of the suite, read from its modules without importing."""
    names = []
    for path in sorted(PROPERTIES.glob("test_*.py")):
        tree = ast.parse(path.read_text())
        names += [
            n.name
            for n in tree.body
            if isinstance(n, ast.FunctionDef) and n.name.startswith("test_")
        ]
    return names


def validate(args: argparse.Namespace) -> str | None:
    """Why the arguments cannot run, naming what is wrong and what is allowed; None if fine."""
    from backends.registry import UnknownBackendError, load_backend

    for norm in args.norm:
        if norm not in NORMS:
            return f"unknown norm {norm!r}; valid norms: {', '.join(NORMS)}"
    known = property_names()
    for name in args.property:
        if name not in known:
            return f"unknown property {name!r}; valid properties: {', '.join(known)}"
    if args.timeout < 0:
        return f"--timeout must be >= 0 seconds (0: no limit), got {args.timeout:g}"
    if args.max_examples is not None and args.max_examples < 1:
        return f"--max-examples must be a positive integer, got {args.max_examples}"
    if args.max_elements is not None and args.max_elements < 2:
        return f"--max-elements must be an integer >= 2, got {args.max_elements}"
    if args.workers < 1:
        return f"--workers must be a positive integer (processes side by side), got {args.workers}"
    for name in args.backend:
        try:
            load_backend(name)
        except UnknownBackendError as error:
            return str(error)
        except Exception as error:  # the adapter's own code raised: name it, no traceback
            return adapter_problem(name, error)
    if args.junit_xml and (problem := file_problem(Path(args.junit_xml), "--junit-xml")):
        return problem
    return directory_problem(Path(args.report_dir)) or deviations_problem(args.known_deviations)


def adapter_problem(name: str, error: Exception) -> str:
    """What went wrong loading backend `name`: the module or class that raised, the exception
    and where it was raised."""
    from backends.registry import BUILTIN

    module, _, attr = BUILTIN.get(name, name).partition(":")
    # a module whose import raised is not left in sys.modules
    doing = f"importing {module!r}" if module not in sys.modules else f"loading {attr!r}"
    if isinstance(error, SyntaxError):
        what, where = error.msg, f" at {error.filename}:{error.lineno}"
    else:
        frames = [
            f for f in traceback.extract_tb(error.__traceback__) if not f.filename.startswith("<")
        ]
        what, where = error, f" at {frames[-1].filename}:{frames[-1].lineno}" if frames else ""
    return f"backend {name!r}: {doing} raised {type(error).__name__}: {what}{where}"


def import_from_working_directory() -> None:
    """Let external adapters be imported from the working directory, as `python -m` does.

    The `normspec` console script, unlike `python -m normspec`, does not put the working
    directory on sys.path, while `package.module:attr` names a module importable from there
    (and the pytest child imports it from there: the engine puts it on its PYTHONPATH)."""
    cwd = os.getcwd()
    if cwd not in sys.path and "" not in sys.path:
        sys.path.insert(0, cwd)


def deviations_problem(paths: list[str]) -> str | None:
    """Why the known-deviations files (the suite's own and the user's) cannot be used, naming
    each file, line and problem; None if they can."""
    from properties.deviations_file import DeviationsFileError, load_deviations

    try:
        load_deviations([PROPERTIES / "known_deviations.toml", *map(Path, paths)])
    except DeviationsFileError as error:
        return f"bad known-deviations file:\n{error}"
    return None
