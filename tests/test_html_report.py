"""reports/index.html, the HTML report: opened in a real browser (headless Chromium), it shows
the run's verdict and matrix, its filters work, and it is rebuilt from the JSON alone; bad
input is an error that names the file and never a half-written site."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from normspec.runner.cli import main
from normspec.runner.site import INDEX, SiteInputError, build_site, refresh_site
from normspec.runner.site.changes import STATE, changes, next_state

ROOT = Path(__file__).resolve().parent.parent
#: A failing planted bug, a backend that cannot run here, and a correct one, on one norm.
SMALL_RUN = (
    "--backend", "numpy",
    "--backend", "tests.mutants.numpy_mutants:EpsDropped",
    "--backend", "tests.fakes:UninstalledFramework",
    "--norm", "batch_norm",
)  # fmt: skip
CHROMIUM = next(
    (shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome") if shutil.which(n)),
    None,
)
needs_chromium = pytest.mark.skipif(
    CHROMIUM is None,
    reason="no Chromium on PATH to load the page in (Debian: apt-get install chromium; "
    ".ci/run installs it)",
)


@pytest.fixture(scope="module")
def small_run(tmp_path_factory) -> Path:
    """The report directory of a small `normspec check` with failures, passes and skips."""
    directory = tmp_path_factory.mktemp("reports")
    done = subprocess.run(
        [sys.executable, "-m", "normspec", "check", *SMALL_RUN, "--report-dir", str(directory)],
        cwd=ROOT, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert done.returncode == 1, done.stdout + done.stderr
    return directory


def browse(page: Path, fragment: str = "", *args: str) -> tuple[str, str]:
    """(the DOM after the page's script ran, Chromium's log) of `page`#`fragment`."""
    with_profile = page.parent / f".chromium-{time.monotonic_ns()}"
    try:
        done = subprocess.run(
            [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--enable-logging=stderr",
             "--v=0", f"--user-data-dir={with_profile}", *args,
             page.absolute().as_uri() + (f"#{fragment}" if fragment else "")],
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
    finally:
        shutil.rmtree(with_profile, ignore_errors=True)
    return done.stdout, done.stderr


def dom(page: Path, fragment: str = "") -> tuple[str, list[str]]:
    """The rendered DOM and the console messages (errors, uncaught exceptions, logs)."""
    html, log = browse(page, fragment, "--dump-dom")
    assert "</html>" in html, log[-2000:]
    return html, [line for line in log.splitlines() if ":CONSOLE" in line]


def cell_rows(html: str) -> list[dict]:
    """Each cell row's status and whether it is hidden."""
    return [
        {"status": m[1], "hidden": " hidden" in m[0]}
        for m in re.finditer(r'<tr id="cell-[^>]*data-status="([^"]*)"[^>]*>', html)
    ]


@needs_chromium
def test_the_console_check_catches_a_page_that_throws(tmp_path):
    """The check below is not vacuous: an uncaught error is a console message."""
    page = tmp_path / "broken.html"
    page.write_text("<html><body><script>undefinedFunction();</script></body></html>")
    _, console = dom(page)
    assert any("undefinedFunction" in line for line in console)


@needs_chromium
def test_the_page_renders_with_no_console_errors(small_run):
    html, console = dom(small_run / INDEX)
    assert console == []
    assert 'data-ready="yes"' in html  # the script ran to its end
    assert 'id="matrix"' in html and "batch_norm" in html


@needs_chromium
def test_the_counts_on_the_page_equal_those_in_conformance_json(small_run):
    summary = json.loads((small_run / "conformance.json").read_text())["summary"]
    html, _ = dom(small_run / INDEX)
    shown = {
        m[1].replace("-", " "): int(m[2]) for m in re.finditer(r'id="count-([a-z-]+)">(\d+)', html)
    }
    assert {k: v for k, v in shown.items() if v} == summary
    assert summary["failed"] and summary["passed"] and summary["skipped"]
    assert re.search(r'id="exit-status">1<', html)
    assert len(cell_rows(html)) == sum(summary.values())


@needs_chromium
def test_a_status_filter_hides_exactly_the_rows_of_other_statuses(small_run):
    html, console = dom(small_run / INDEX, "status=failed")
    assert console == []
    rows = cell_rows(html)
    assert {r["status"] for r in rows if not r["hidden"]} == {"failed"}
    assert all(r["hidden"] for r in rows if r["status"] != "failed")
    summary = json.loads((small_run / "conformance.json").read_text())["summary"]
    assert f'<span id="shown">{summary["failed"]}</span>' in html


@needs_chromium
def test_a_backend_filter_hides_the_rows_that_do_not_run_it(small_run):
    """Showing numpy shows its own cells and its differential pairs, and hides the rest."""
    html, _ = dom(small_run / INDEX, "backend=numpy")
    rows = [
        (re.search(r'data-backends="([^"]*)"', tag)[1].split(), ' hidden=""' in tag)
        for tag in re.findall(r'<tr id="cell-[^>]*>', html)
    ]
    assert [hidden for backends, hidden in rows] == ["numpy" not in b for b, _ in rows]
    assert any(b == ["numpy"] for b, hidden in rows if not hidden)
    assert any(hidden for _, hidden in rows)


@needs_chromium
def test_a_failing_cells_reproduction_command_is_on_the_page(small_run):
    html, _ = dom(small_run / INDEX)
    failed = next(
        r
        for r in json.loads((small_run / "conformance.json").read_text())["results"]
        if r["status"] == "failed"
    )
    assert failed["reproduction"] in html.replace("&amp;", "&")
    assert failed["reproduction"].startswith(
        "normspec check --backend tests.mutants.numpy_mutants:EpsDropped --norm batch_norm"
    )


@needs_chromium
def test_a_screenshot_is_written_beside_the_report(small_run):
    shot = small_run / "index.png"
    _, log = browse(small_run / INDEX, "", f"--screenshot={shot}", "--window-size=1280,1400")
    assert shot.is_file() and shot.read_bytes().startswith(b"\x89PNG"), log[-2000:]


def test_check_writes_the_page_with_its_reports(small_run):
    page = (small_run / INDEX).read_text()
    assert page.startswith("<!DOCTYPE html>")
    assert "http://" not in page.replace('"http://www.w3.org/2000/svg"', "")
    assert "No previous run in this directory" in page


def test_report_rebuilds_the_page_from_the_json_alone(small_run, tmp_path, capsys):
    shutil.copy(small_run / "conformance.json", tmp_path)
    assert main(["report", "--report-dir", str(tmp_path)]) == 0
    page = (tmp_path / INDEX).read_text()
    assert page.count('<tr id="cell-') == sum(
        json.loads((tmp_path / "conformance.json").read_text())["summary"].values()
    )
    assert str(tmp_path / INDEX) in capsys.readouterr().out


def test_a_missing_conformance_json_is_an_error_naming_it_and_writes_nothing(tmp_path, capsys):
    assert main(["report", "--report-dir", str(tmp_path)]) == 2
    error = capsys.readouterr().err
    assert str(tmp_path / "conformance.json") in error and "no such file" in error
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("name", "text", "says"),
    [
        ("conformance.json", '{"summary": {}, "backends": [], "results": [', "not valid JSON"),
        ("conformance.json", '{"summary": {}, "results": []}', "lacks the key(s) backends"),
        ("conformance.json", "[1, 2]", "expected a JSON object"),
        ("envelope.json", "{not json", "not valid JSON"),
        ("hunt/discrepancies.json", '{"entries": []}', "lacks the key(s) campaign"),
        ("bench/run.json", "", "not valid JSON"),
    ],
)
def test_a_malformed_json_is_an_error_naming_it_and_leaves_the_previous_page(
    small_run, tmp_path, capsys, name, text, says
):
    shutil.copy(small_run / "conformance.json", tmp_path)
    assert main(["report", "--report-dir", str(tmp_path)]) == 0
    (tmp_path / name).parent.mkdir(exist_ok=True)
    (tmp_path / name).write_text(text)
    before = sorted(p.name for p in tmp_path.iterdir()), (tmp_path / INDEX).read_text()
    capsys.readouterr()
    assert main(["report", "--report-dir", str(tmp_path)]) == 2
    error = capsys.readouterr().err
    assert str(tmp_path / name) in error and says in error
    assert (sorted(p.name for p in tmp_path.iterdir()), (tmp_path / INDEX).read_text()) == before


def test_the_page_says_which_cells_changed_since_the_previous_run(small_run, tmp_path):
    report = json.loads((small_run / "conformance.json").read_text())
    (tmp_path / "conformance.json").write_text(json.dumps(report))
    build_site(tmp_path, new_run=True)
    fixed = next(r for r in report["results"] if r["status"] == "failed")
    fixed["status"] = "passed"
    (tmp_path / "conformance.json").write_text(json.dumps(report))
    build_site(tmp_path, new_run=True)
    page = (tmp_path / INDEX).read_text()
    key = f"{fixed['norm']}/{fixed['property']}@{fixed['backend']}"
    assert "1 cell(s) changed since the previous run" in page
    assert f"<code>{key}</code>: failed &rarr;" in page
    # rebuilding the same run's page (normspec report) keeps the comparison
    build_site(tmp_path)
    assert "1 cell(s) changed since the previous run" in (tmp_path / INDEX).read_text()


def test_the_committed_page_is_written_again_byte_for_byte_by_an_unchanged_run(small_run, tmp_path):
    """The snapshot in reports/ (conformance.json, index.html, site-state.json) is what a
    fresh clone starts from: rerunning the same results must leave `git status` clean."""
    shutil.copy(small_run / "conformance.json", tmp_path)
    build_site(tmp_path, new_run=True)
    build_site(tmp_path, new_run=True)  # the snapshot as committed, after two runs
    committed = {n: (tmp_path / n).read_bytes() for n in (INDEX, STATE)}
    build_site(tmp_path, new_run=True)
    assert {n: (tmp_path / n).read_bytes() for n in (INDEX, STATE)} == committed
    assert b"Nothing changed since the previous run" in committed[INDEX]


def test_a_new_run_is_compared_with_the_run_shown_before_it():
    def run(digest: str, **statuses: str) -> dict:
        return {"digest": digest, "statuses": statuses}

    first = next_state({}, run("a", x="passed"), new_run=True)
    assert first["previous"] is None
    second = next_state(first, run("b", x="failed", y="passed"), new_run=True)
    assert changes(second) == [("x", "passed", "failed"), ("y", None, "passed")]
    rebuilt = next_state(second, run("b", x="failed", y="passed"), new_run=False)
    assert rebuilt == second
    same_again = next_state(second, run("b", x="failed", y="passed"), new_run=True)
    assert changes(same_again) == []


def test_the_page_shows_the_envelope_the_bench_and_the_hunt_beside_the_matrix(tmp_path):
    """From the committed reports (1,089 cells), plus a hunt catalogue; within a second."""
    shutil.copytree(ROOT / "reports", tmp_path / "r")
    directory = tmp_path / "r"
    (directory / "hunt").mkdir(exist_ok=True)
    (directory / "hunt" / "discrepancies.json").write_text(
        json.dumps(
            {
                "created": "2026-12-03T00:00:00Z",
                "campaign": {"command": "normspec hunt --budget 1m"},
                "entries": [
                    {
                        "id": "0123456789",
                        "status": "new",
                        "signature": {"norm": "layer_norm", "property": "test_p"},
                        "members": ["torch"],
                        "failure": "forward output off by 3 bounds",
                        "reproduction": "normspec check --backend torch --norm layer_norm",
                        "upstream": "https://github.com/pytorch/pytorch/issues/1",
                        "reproducer": "reports/hunt/reproducers/torch_layer_norm_0123.py",
                        "hits": 2,
                    }
                ],
            }
        )
    )
    for saved in (directory / "bench").glob("*.json"):  # an older run: a history of two
        older = json.loads(saved.read_text())
        if "normspec" in older:
            older["normspec"]["created"] = "2026-01-01T00:00:00Z"
            (directory / "bench" / f"older-{saved.name}").write_text(json.dumps(older))
    started = time.perf_counter()
    build_site(directory, new_run=True)
    assert time.perf_counter() - started < 1.0
    page = (directory / INDEX).read_text()
    for section in ("verdict", "matrix", "precision", "conventions", "deviations"):
        assert f'<section id="{section}"' in page
    assert '<section id="hunt"' in page and "pytorch/pytorch/issues/1" in page
    assert 'href="hunt/reproducers/torch_layer_norm_0123.py"' in page
    if (directory / "envelope.json").exists():
        assert '<section id="envelope"' in page and 'src="envelope-float32.png"' in page
    if list((directory / "bench").glob("*.json")):
        assert '<section id="bench"' in page and '<svg class="spark"' in page
        assert "of limit" in page


def test_the_other_commands_leave_the_page_alone_without_a_check_before_them(tmp_path):
    assert refresh_site(tmp_path, "bench") == []
    assert not (tmp_path / INDEX).exists() and not (tmp_path / STATE).exists()


def test_a_site_input_error_is_a_value_error_naming_the_file(tmp_path):
    with pytest.raises(SiteInputError, match=re.escape(str(tmp_path / "conformance.json"))):
        build_site(tmp_path)


def test_a_known_deviation_links_its_upstream_report_and_shows_its_reproducer():
    from normspec.runner.site.tables import deviations

    url = "https://github.com/pytorch/pytorch/issues/2"
    entry = {
        "backend": "torch",
        "norm": ["layer_norm", "rms_norm"],
        "property": "test_p",
        "versions": "torch 2",
        "reason": "what deviates\nand why",
        "reproduction": "python properties/reproductions/x.py",
        "status": "observed",
    }
    html = deviations([dict(entry, upstream=url), entry])
    assert f'<a href="{url}">' in html and "not recorded" in html
    assert html.count('<code class="reproduction">python properties/reproductions/x.py<') == 2


def test_bench_hunt_and_envelope_rebuild_the_page_a_check_left(small_run, tmp_path, capsys):
    shutil.copy(small_run / "conformance.json", tmp_path)
    assert refresh_site(tmp_path, "envelope") == [tmp_path / INDEX]
    (tmp_path / "envelope.json").write_text("{")
    assert refresh_site(tmp_path, "envelope") == []  # a warning, not the command's failure
    assert "normspec envelope: index.html not rebuilt" in capsys.readouterr().err
