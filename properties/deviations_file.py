"""Reading known-deviations files: every `[[deviation]]` entry, checked, with errors that name
the file, the line and the problem.

Plain Python with no pytest import, so that the suite's conftest and the `normspec` command
line read the files the same way: the command line checks them before a run starts, and a
malformed file is a message a person can act on, never a traceback.
"""

from __future__ import annotations

import difflib
import re
import tomllib
from pathlib import Path

#: The keys an entry must have, each a non-empty value.
REQUIRED = ("backend", "norm", "property", "versions", "reason", "reproduction")
#: The keys an entry may have.
OPTIONAL = ("ci_reaches", "upstream")
#: Keys that name what an entry covers: one name, or a list of them.
LISTABLE = ("backend", "norm", "property")

_HEADER = re.compile(r"^\s*\[\[\s*deviation\s*\]\]")
_POSITION = re.compile(r"\s*\(at line (\d+), column (\d+)\)$")


class DeviationsFileError(ValueError):
    """A known-deviations file that cannot be used: missing, not TOML, or a malformed entry."""


def load_deviations(paths: list[Path]) -> list[dict]:
    """Every `[[deviation]]` entry of the given TOML files, in order, checked for its keys.

    Raises DeviationsFileError whose message has one `FILE:LINE: problem` line per problem.
    """
    deviations = []
    for path in map(Path, paths):
        deviations += _load_file(path)
    return deviations


def _load_file(path: Path) -> list[dict]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise DeviationsFileError(f"{path}: known-deviations file does not exist") from None
    except (OSError, UnicodeDecodeError) as error:
        raise DeviationsFileError(f"{path}: cannot read known-deviations file: {error}") from None
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise DeviationsFileError(f"{path}:{_syntax_error(error)}") from None
    lines = text.splitlines()
    problems = [
        f"{path}:{_key_line(lines, 0, len(lines), key)}: unknown top-level key {key!r}; "
        "a known deviation is a [[deviation]] table"
        for key in document
        if key != "deviation"
    ]
    entries = document.get("deviation", [])
    if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
        problems.append(
            f"{path}:{_key_line(lines, 0, len(lines), 'deviation')}: 'deviation' must be an "
            "array of tables, each written [[deviation]]"
        )
        entries = []
    headers = [i for i, line in enumerate(lines) if _HEADER.match(line)]
    for index, entry in enumerate(entries):
        # the n-th [[deviation]] header starts the n-th entry (entries written as an inline
        # array have no header: their problems are reported at line 1)
        start = headers[index] if index < len(headers) else 0
        end = headers[index + 1] if index + 1 < len(headers) else len(lines)
        problems += [
            f"{path}:{line}: deviation #{index + 1}: {problem}"
            for line, problem in _entry_problems(entry, lines, start, end)
        ]
    if problems:
        raise DeviationsFileError("\n".join(problems))
    return entries


def _syntax_error(error: tomllib.TOMLDecodeError) -> str:
    """`LINE:COLUMN: invalid TOML: what` from tomllib's message, which ends in its position."""
    message = str(error)
    found = _POSITION.search(message)
    if found is None:
        return f" invalid TOML: {message}"
    return f"{found[1]}:{found[2]}: invalid TOML: {message[: found.start()]}"


def _entry_problems(entry: dict, lines: list[str], start: int, end: int) -> list[tuple]:
    """(line, problem) for each missing, empty, unknown or mistyped key of one entry."""
    problems = []
    header = start + 1
    for key in REQUIRED:
        if key not in entry:
            problems.append((header, f"lacks required key {key!r}"))
    allowed = REQUIRED + OPTIONAL
    for key, value in entry.items():
        line = _key_line(lines, start, end, key) or header
        if key not in allowed:
            close = difflib.get_close_matches(key, allowed, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            problems.append((line, f"unknown key {key!r}{hint} (keys: {', '.join(allowed)})"))
        elif key == "ci_reaches":
            if not isinstance(value, bool):
                problems.append((line, f"'ci_reaches' must be true or false, got {value!r}"))
        elif key in LISTABLE:
            names = [value] if isinstance(value, str) else value
            if (
                not isinstance(names, list)
                or not names
                or not all(isinstance(n, str) and n for n in names)
            ):
                problems.append(
                    (line, f"{key!r} must be a name or a non-empty list of names, got {value!r}")
                )
        elif not isinstance(value, str) or not value.strip():
            problems.append((line, f"{key!r} must be a non-empty string, got {value!r}"))
    return problems


def _key_line(lines: list[str], start: int, end: int, key: str) -> int:
    """The 1-based line in lines[start:end] where `key` is assigned, or start + 1."""
    assignment = re.compile(rf"^\s*(?:{re.escape(key)}|\"{re.escape(key)}\")\s*=")
    header = re.compile(rf"^\s*\[+\s*{re.escape(key)}\s*\]+")
    for number in range(start, end):
        if assignment.match(lines[number]) or header.match(lines[number]):
            return number + 1
    return start + 1
