"""A known-deviations file is data a user writes by hand: a malformed one is a message that
names the file, the line and the problem, before anything runs, never a traceback."""

from __future__ import annotations

from pathlib import Path

import pytest

from normspec.runner.cli import main
from properties.deviations_file import DeviationsFileError, load_deviations

ROOT = Path(__file__).resolve().parent.parent

ENTRY = (
    "[[deviation]]\n"
    'backend = "numpy"\n'
    'norm = ["layer_norm", "rms_norm"]\n'
    'property = "test_forward_agrees_with_the_spec"\n'
    'versions = "numpy 2"\n'
    'reason = "an example"\n'
    'reproduction = "python properties/reproductions/none.py"\n'
)


def _file(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "deviations.toml"
    path.write_text(text)
    return path


def _problem(path: Path) -> str:
    with pytest.raises(DeviationsFileError) as raised:
        load_deviations([path])
    return str(raised.value)


def test_the_shipped_file_loads_every_entry():
    deviations = load_deviations([ROOT / "properties" / "known_deviations.toml"])
    assert deviations
    assert all("property" in d and "properties" not in d for d in deviations)


def test_a_well_formed_file_gives_its_entries_in_order(tmp_path):
    path = _file(tmp_path, ENTRY + "\n" + ENTRY.replace('"numpy"', '"torch"'))
    assert [d["backend"] for d in load_deviations([path])] == ["numpy", "torch"]


def test_a_toml_syntax_error_names_the_file_line_and_column(tmp_path):
    path = _file(tmp_path, ENTRY + 'reason2 = "unterminated\n')
    assert _problem(path).startswith(f"{path}:8:")
    assert "invalid TOML" in _problem(path)


def test_a_missing_key_names_the_entry_and_the_key(tmp_path):
    second = ENTRY.replace('reproduction = "python properties/reproductions/none.py"\n', "")
    path = _file(tmp_path, ENTRY + "\n" + second)
    assert _problem(path) == f"{path}:9: deviation #2: lacks required key 'reproduction'"


def test_an_unknown_key_is_named_at_its_line_with_the_key_it_resembles(tmp_path):
    path = _file(tmp_path, ENTRY.replace("property =", "properties ="))
    lacks, unknown = _problem(path).splitlines()
    assert lacks == f"{path}:1: deviation #1: lacks required key 'property'"
    assert unknown.startswith(
        f"{path}:4: deviation #1: unknown key 'properties'; did you mean 'property'?"
    )


def test_a_misspelt_table_is_not_silently_empty(tmp_path):
    path = _file(tmp_path, ENTRY.replace("[[deviation]]", "[[deviations]]"))
    assert _problem(path).startswith(f"{path}:1: unknown top-level key 'deviations'")


@pytest.mark.parametrize(
    ("text", "says"),
    [
        (ENTRY + 'ci_reaches = "no"\n', "'ci_reaches' must be true or false"),
        (
            ENTRY.replace('norm = ["layer_norm", "rms_norm"]', "norm = []"),
            "'norm' must be a name or a non-empty list of names",
        ),
        (ENTRY.replace('reason = "an example"', 'reason = ""'), "'reason' must be a non-empty"),
    ],
)
def test_a_value_of_the_wrong_kind_is_named(tmp_path, text, says):
    assert says in _problem(_file(tmp_path, text))


def test_an_upstream_link_is_an_optional_key_the_report_carries(tmp_path):
    url = "https://github.com/numpy/numpy/issues/1"
    (entry,) = load_deviations([_file(tmp_path, ENTRY + f'upstream = "{url}"\n')])
    assert entry["upstream"] == url
    assert "'upstream' must be a non-empty string" in _problem(
        _file(tmp_path, ENTRY + 'upstream = ""\n')
    )


def test_a_missing_file_is_named(tmp_path):
    assert "does not exist" in _problem(tmp_path / "nowhere.toml")


def test_the_command_line_checks_the_files_before_running(tmp_path, capsys, monkeypatch):
    """Exit 2 with the file and line, and the suite never starts."""
    import normspec.runner.cli as cli

    monkeypatch.setattr(cli, "run_properties", lambda *a, **k: pytest.fail("it ran"))
    path = _file(tmp_path, ENTRY + "norm = 1\n")
    code = main(
        ["check", "--backend", "numpy", "--known-deviations", str(path),
         "--report-dir", str(tmp_path / "reports")]
    )  # fmt: skip
    assert code == 2
    assert f"{path}:8:" in capsys.readouterr().err
