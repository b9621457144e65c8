"""`normspec hunt` as a user meets it: it finds a planted bug within its budget, writes the
catalogue and a reproducer that exits 1 while the bug stands and 0 once it is fixed, tells a
known deviation from a new discrepancy, keeps its failures in a database that every later
hunt and check replays first (on disk, or in a Redis server shared by two hunts), and keeps
what it found when it is interrupted.

Budgets are seconds, databases and reports live in tmp_path, and the discrepancies are the
planted bugs of tests/mutants and one real known deviation of torch.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from normspec.hunt.budget import BudgetError, parse_budget
from normspec.runner.cli import main

ROOT = Path(__file__).resolve().parent.parent
#: A planted bug that random search meets after a few examples: the one-pass variance fails
#: only on a large offset, which the first examples do not draw.
ONE_PASS = (
    "--backend",
    "tests.mutants.numpy_mutants:OnePassVariance",
    "--norm",
    "layer_norm",
    "--property",
    "test_forward_agrees_with_the_spec",
    "--no-control",
)
EPS_DROPPED = (
    "--backend",
    "tests.mutants.numpy_mutants:EpsDropped",
    "--norm",
    "batch_norm",
    "--property",
    "test_output_has_zero_mean_and_unit_variance",
)


def _env() -> dict[str, str]:
    return dict(os.environ, PYTHONPATH=str(ROOT), TF_CPP_MIN_LOG_LEVEL="2")


def hunt(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    """Run `normspec hunt` in a subprocess, as a user would."""
    return subprocess.run(
        [sys.executable, "-m", "normspec", "hunt", *args],
        cwd=cwd,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=600,
    )


def catalogue(report_dir: Path) -> dict:
    return json.loads((report_dir / "hunt" / "discrepancies.json").read_text())


def entry_of(report_dir: Path, backend: str) -> dict:
    entries = [e for e in catalogue(report_dir)["entries"] if e["signature"]["backend"] == backend]
    assert len(entries) == 1, entries
    return entries[0]


def test_a_budget_is_written_as_a_person_writes_it():
    assert parse_budget("90s") == 90 and parse_budget("10m") == 600
    assert parse_budget("1h30m") == 5400 and parse_budget("45") == 45
    assert parse_budget("1.5m") == 90
    for bad in ("ten minutes", "", "0s", "5x"):
        with pytest.raises(BudgetError):
            parse_budget(bad)


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--budget", "soon"], "is not a duration"),
        (["--workers", "0"], "--workers must be a positive integer"),
        (["--max-elements", "1"], "--max-elements must be an integer >= 2"),
        (["--database", "redis://127.0.0.1:1/0"], "the Redis server does not answer"),
        (["--database", "mongodb://x"], "unknown database"),
        (["--backend", "nosuch"], "unknown backend 'nosuch'"),
        (["--norm", "batchnorm"], "unknown norm 'batchnorm'"),
    ],
)
def test_bad_usage_exits_2_before_anything_runs(args, says, capsys, tmp_path):
    if "redis://" in args[-1]:
        pytest.importorskip("redis")
    assert main(["hunt", "--report-dir", str(tmp_path), *args]) == 2
    assert says in capsys.readouterr().err


def test_a_planted_bug_is_found_catalogued_and_reproduced(tmp_path):
    """EpsDropped within a 12 s budget: exit 1, one new entry with its signature, worst
    error, smallest input and hits; a reproducer that exits 1 on the mutant and 0 on the
    healthy NumPy backend; the exact control passes; the failure is in the database, where
    the suite's dev profile replays it first."""
    reports, database = tmp_path / "reports", tmp_path / "db"
    start = time.monotonic()
    done = hunt(
        *EPS_DROPPED, "--budget", "12s", "--database", str(database), "--report-dir", str(reports)
    )
    assert done.returncode == 1, done.stdout + done.stderr
    assert time.monotonic() - start < 12 + 15, "the budget was not kept"
    assert "/s (drawing" in done.stdout  # examples per second per backend, and the shares
    found = entry_of(reports, "tests.mutants.numpy_mutants:EpsDropped")
    assert found["status"] == "new" and found["hits"] >= 1
    assert found["signature"]["norm"] == "batch_norm" and found["signature"]["dtype"]
    assert found["minimal_case"].startswith("Case(norm='batch_norm'")
    assert float(found["worst_error_over_bound"]) > 1
    exact = [e for e in catalogue(reports)["entries"] if e["signature"]["backend"] == "exact"]
    assert not exact, "the honest control failed: a bug of normspec"
    # the mutant's cell failed; the control's ran until its slice ended, and passed
    assert catalogue(reports)["campaign"]["statuses"] == {"failed": 1, "passed": 1}
    assert "EpsDropped" in (reports / "hunt" / "discrepancies.md").read_text()

    script = Path(found["reproducer"])
    text = script.read_text()
    assert "import normspec" not in text and "from normspec" not in text
    ran = subprocess.run(
        [sys.executable, str(script)], cwd=ROOT, env=_env(), capture_output=True, text=True
    )
    assert ran.returncode == 1 and "DEVIATES" in ran.stdout, ran.stdout + ran.stderr
    fixed = script.with_name("fixed.py")
    healthy = "from backends.numpy_backend import NumpyBackend as adapter"
    fixed.write_text(
        text.replace("from tests.mutants.numpy_mutants import EpsDropped as adapter", healthy)
    )
    ran = subprocess.run(
        [sys.executable, str(fixed)], cwd=ROOT, env=_env(), capture_output=True, text=True
    )
    assert ran.returncode == 0 and "fixed" in ran.stdout, ran.stdout + ran.stderr

    replay = subprocess.run(
        [
            *(sys.executable, "-m", "pytest", "properties", "-p", "no:cacheprovider", "-q"),
            *("--tb=no", "--profile", "dev", "--database", str(database)),
            *("--hypothesis-show-statistics", *EPS_DROPPED),
        ],
        cwd=ROOT,
        env=_env(),
        capture_output=True,
        text=True,
    )
    # the failure is replayed in the reuse phase, before any new draw; the database may also
    # hold passing examples (the pareto front of hypothesis.target), replayed beside it
    reuse = replay.stdout.partition("during reuse phase")[2].partition("during generate")[0]
    statistics = replay.stdout[replay.stdout.find("Hypothesis Statistics") :]
    assert re.search(r"- \d+ passing, 1 failing", reuse), statistics[:3000]


def test_a_known_deviation_is_told_apart_and_its_reproducer_stands_alone(tmp_path):
    """torch's channels_last group_norm cancels on ill-conditioned input: a known deviation,
    so exit 0; its reproducer runs isolated, from elsewhere, with normspec unimportable, and
    exits 1 while torch 2.13 computes it this way."""
    pytest.importorskip("torch")
    reports = tmp_path / "reports"
    done = hunt(
        "--backend",
        "torch-channels-last",
        "--norm",
        "group_norm",
        "--property",
        "test_forward_agrees_with_the_spec_on_ill_conditioned_input",
        "--no-control",
        "--budget",
        "20s",
        "--database",
        str(tmp_path / "db"),
        "--report-dir",
        str(reports),
    )
    assert done.returncode == 0, done.stdout + done.stderr
    found = entry_of(reports, "torch-channels-last")
    assert found["status"] == "known deviation", found
    assert "torch_group_norm_channels_last_cancellation" in found["known_deviation"]["reproduction"]
    blocked = "normspec", "backends", "properties", "hypothesis", "pytest", "tests"
    guard = (
        "import runpy, sys\n"
        f"for name in {blocked!r}:\n"
        "    sys.modules[name] = None  # importing it fails\n"
        f"runpy.run_path({found['reproducer']!r}, run_name='__main__')\n"
    )
    ran = subprocess.run(
        [sys.executable, "-I", "-c", guard],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert ran.returncode == 1 and "DEVIATES" in ran.stdout, ran.stdout + ran.stderr


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def redis_server(tmp_path):
    """A real redis-server on loopback, on a free port, for this test only."""
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("redis-server is not installed (Debian: apt-get install redis-server)")
    redis = pytest.importorskip("redis")
    port = _free_port()
    server = subprocess.Popen(
        [
            *(binary, "--port", str(port), "--bind", "127.0.0.1"),
            *("--save", "", "--appendonly", "no", "--dir", str(tmp_path)),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    client = redis.Redis(host="127.0.0.1", port=port)
    for _ in range(100):
        try:
            client.ping()
            break
        except redis.exceptions.ConnectionError:
            time.sleep(0.05)
    else:
        server.kill()
        pytest.fail("redis-server did not start")
    yield f"redis://127.0.0.1:{port}/0"
    server.terminate()
    server.wait(timeout=10)


def _first_failure(reports: Path) -> int:
    return entry_of(reports, "tests.mutants.numpy_mutants:OnePassVariance")[
        "first_failure_at_example"
    ]


def test_two_hunts_on_one_redis_database_share_their_failures(redis_server, tmp_path):
    """Two machines, one database: hunt A (seed 1) finds the one-pass variance after some
    examples; hunt B (seed 2) on the same Redis database fails on its very first example,
    replayed from A's; the same hunt B on a database of its own needs many."""
    first = hunt(
        *ONE_PASS,
        "--seed",
        "1",
        "--budget",
        "20s",
        "--database",
        redis_server,
        "--report-dir",
        str(tmp_path / "a"),
    )
    assert first.returncode == 1, first.stdout + first.stderr
    assert _first_failure(tmp_path / "a") > 1
    second = hunt(
        *ONE_PASS,
        "--seed",
        "2",
        "--budget",
        "20s",
        "--database",
        redis_server,
        "--report-dir",
        str(tmp_path / "b"),
    )
    assert second.returncode == 1, second.stdout + second.stderr
    assert _first_failure(tmp_path / "b") == 1, "B did not replay A's failure first"
    alone = hunt(
        *ONE_PASS,
        "--seed",
        "2",
        "--budget",
        "20s",
        "--database",
        str(tmp_path / "own"),
        "--report-dir",
        str(tmp_path / "c"),
    )
    assert alone.returncode == 1, alone.stdout + alone.stderr
    assert _first_failure(tmp_path / "c") > 1, "without the shared database B finds it later"


@pytest.mark.parametrize("workers", ["1", "2"])
def test_ctrl_c_keeps_what_was_found(tmp_path, workers):
    """Interrupted after a failure was found and while the control still hunts (in the same
    worker or in another): exit 130, and the catalogue holds the failure."""
    reports, database = tmp_path / "reports", tmp_path / "db"
    process = subprocess.Popen(
        [
            *(sys.executable, "-m", "normspec", "hunt", *EPS_DROPPED, "--budget", "5m"),
            *("--database", str(database), "--report-dir", str(reports), "--workers", workers),
        ],
        cwd=ROOT,
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 120
    while not (database.exists() and any(database.rglob("*"))) and time.monotonic() < deadline:
        time.sleep(0.2)  # the failure is saved to the database when it is found
    time.sleep(3)  # let it shrink and move on to the control's cell
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=120)
    assert process.returncode == 128 + signal.SIGINT, out + err
    assert "interrupted" in err
    found = entry_of(reports, "tests.mutants.numpy_mutants:EpsDropped")
    assert found["status"] == "new"


def _entry(id_: str, hits: int, worst: float | str, upstream: str = "not searched yet") -> dict:
    return {
        "id": id_,
        "status": "new",
        "hits": hits,
        "campaigns": 1,
        "worst_error_over_bound": worst,
        "worst_case": f"case of {worst}",
        "upstream": upstream,
        "first_seen": "2026-01-01",
    }


def test_campaigns_and_machines_merge_into_one_catalogue():
    """The same signature met again adds its hits and keeps the worse error; another
    machine's catalogue folds in the same way and keeps an upstream note someone wrote."""
    from normspec.hunt.catalogue import combine, merge

    mine = [_entry("a", 3, 2.0), _entry("b", 1, "inf")]
    theirs = [_entry("a", 5, 9.0, upstream="pytorch/pytorch#1"), _entry("c", 2, 1.5)]
    both = {e["id"]: e for e in combine(mine, theirs)}
    assert both["a"]["hits"] == 8 and both["a"]["worst_error_over_bound"] == 9.0
    assert both["a"]["upstream"] == "pytorch/pytorch#1" and set(both) == {"a", "b", "c"}
    found = [
        _entry("a", 2, 4.0)
        | {"signature": {}, "culprit": None, "message": "", "minimal_case": "Case(...)"}
    ]
    after = {e["id"]: e for e in merge(list(both.values()), found, "2026-02-02")}
    assert after["a"]["hits"] == 10 and after["a"]["campaigns"] == 3
    assert after["a"]["worst_error_over_bound"] == 9.0 and after["a"]["seen_in_this_campaign"]
    assert not after["b"]["seen_in_this_campaign"]


def test_a_known_deviation_covers_only_the_dtypes_its_reason_names():
    from normspec.hunt.catalogue import KNOWN, NEW, status_of

    float16_only = {"reproduction": "python r.py", "reason": "in float16 the sum overflows"}
    assert status_of("single", float16_only, "float16")[0] == KNOWN
    assert status_of("single", float16_only, "float32")[0] == NEW
    assert status_of("single", float16_only, "bfloat16")[0] == NEW  # "bfloat16" is not read
    assert status_of("single", {"reproduction": "r", "reason": "any dtype"}, "float32")[0] == KNOWN
    assert status_of("control", None, "float32")[0] == "bug of normspec"


def test_of_two_known_deviations_covering_a_cell_the_one_naming_the_dtype_matches():
    from normspec.hunt.catalogue import KNOWN, NEW, status_of

    bfloat16 = {"reproduction": "python bf16.py", "reason": "bfloat16 cancels"}
    both = bfloat16 | {"others": [{"reproduction": "python f16.py", "reason": "float16 overflows"}]}
    status, why = status_of("single", both, "float16")
    assert status == KNOWN and "f16.py" in why
    status, why = status_of("single", both, "bfloat16")
    assert status == KNOWN and "bf16.py" in why
    assert status_of("single", both, "float32")[0] == NEW


def test_the_region_of_an_input_names_its_decade_conditioning_size_and_layout():
    import numpy as np

    from normspec.hunt.signatures import region_of

    x = 1000.0 + np.random.default_rng(0).standard_normal((2, 3, 4, 4))
    region = region_of(
        "torch-channels-last", "group_norm", {"x": x}, {"eps": 1e-5, "num_groups": 3}
    )
    assert region.magnitude == "1e+03" and region.size == "16-255"
    assert (
        region.conditioning.startswith("ill-conditioned") and region.layout == "4-D channels_last"
    )
    flat = region_of("numpy", "layer_norm", {"x": x[0, 0]}, {"eps": 0.0, "normalized_shape": [4]})
    assert flat.size == "2-15" and flat.layout == "2-D channels_first"


def test_a_cell_that_hangs_is_ended_and_the_hunt_goes_on(tmp_path, monkeypatch):
    """A kernel that never returns on layer_norm: its cell is ended once it overruns its
    slice, its shrinking and the grace, filed as timed out, and the next cell still runs."""
    from normspec.hunt.campaign import HuntRequest, run_campaign
    from normspec.hunt.catalogue import findings

    monkeypatch.chdir(ROOT)
    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    request = HuntRequest(
        backends=("tests.adapters.hanging:HangsOnLayerNorm",),
        norms=("layer_norm", "rms_norm"),
        properties=("test_forward_agrees_with_the_spec",),
        budget_s=30,
        database=str(tmp_path / "db"),
        shrink_s=1,
        hang_grace_s=2,
    )
    (tmp_path / "work").mkdir()
    run = run_campaign(request, tmp_path / "work")
    statuses = {r["norm"]: r["status"] for r in run.tally.results}
    assert statuses == {"layer_norm": "failed", "rms_norm": "passed"}, run.output[-3000:]
    (found,) = findings(run.tally)
    assert found["signature"]["norm"] == "layer_norm" and found["failure"].startswith("timed out")


def _as_written(reports: Path) -> tuple[list[dict], str]:
    """The catalogue's entries (JSON) and its Markdown, without what differs between any two
    campaigns: the time stamps, the report directory, and the line quoting the command."""

    def plain(text: str) -> str:
        text = re.sub(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", "WHEN", text)
        return text.replace(str(reports), "DIR")

    document = json.loads(plain((reports / "hunt" / "discrepancies.json").read_text()))
    markdown = plain((reports / "hunt" / "discrepancies.md").read_text())
    return document["entries"], "\n".join(
        line for line in markdown.splitlines() if not line.startswith("Last campaign:")
    )


def test_two_workers_find_and_catalogue_a_planted_bug_as_one_does(tmp_path):
    """`--workers 2` on EpsDropped and the exact control, each worker with one of the two
    cells: exit 1 within the budget, the same cells run with the same statuses, and the same
    catalogue (JSON entries and Markdown) as one worker with the same seed writes."""
    written = {}
    for workers in ("1", "2"):
        reports = tmp_path / f"reports-{workers}"
        start = time.monotonic()
        done = hunt(
            *EPS_DROPPED,
            *("--workers", workers, "--seed", "1", "--budget", "12s"),
            *("--database", str(tmp_path / f"db-{workers}"), "--report-dir", str(reports)),
        )
        assert done.returncode == 1, done.stdout + done.stderr
        assert time.monotonic() - start < 12 + 15, "the budget was not kept"
        assert "one process" not in done.stderr
        campaign = catalogue(reports)["campaign"]
        assert campaign["cells_planned"] == campaign["cells_run"] == 2, campaign
        assert campaign["statuses"] == {"failed": 1, "passed": 1}, campaign
        found = entry_of(reports, "tests.mutants.numpy_mutants:EpsDropped")
        assert found["status"] == "new" and Path(found["reproducer"]).is_file()
        written[workers] = _as_written(reports)
    assert written["2"] == written["1"]


def test_the_budget_ends_every_worker(tmp_path, monkeypatch):
    """Two workers, one stuck in a kernel that never returns (its hang grace longer than the
    budget), the other done early: at the budget the campaign stops, and neither child nor
    anything they started outlives it."""
    from normspec.hunt.campaign import HuntRequest, run_campaign

    monkeypatch.chdir(ROOT)
    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    request = HuntRequest(
        backends=("tests.adapters.hanging:HangsOnLayerNorm",),
        norms=("layer_norm", "rms_norm"),
        properties=("test_forward_agrees_with_the_spec",),
        budget_s=12,
        database=str(tmp_path / "db"),
        workers=2,
        hang_grace_s=600,
    )
    (tmp_path / "work").mkdir()
    start = time.monotonic()
    run = run_campaign(request, tmp_path / "work")
    assert time.monotonic() - start < 12 + 10, "the budget was not kept"
    assert run.stopped == "budget", run.output[-3000:]
    assert {r["norm"]: r["status"] for r in run.tally.results} == {"rms_norm": "passed"}
    pids = [w.pid for w in run.tally.by_worker.values()]
    assert None not in pids
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.killpg(pid, 0)
