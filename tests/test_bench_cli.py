"""`normspec bench` as a user meets it: bad usage, a run's record, table and plot, progress,
and --compare of a run with itself."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from normspec.bench import report
from normspec.bench.compare import compare
from normspec.runner.cli import main

ROOT = Path(__file__).resolve().parent.parent
pytest.importorskip("pytest_benchmark", reason="pip install 'normspec[bench]'")
pytest.importorskip("matplotlib", reason="pip install 'normspec[bench]'")


def normspec(*args: str) -> subprocess.CompletedProcess:
    """Run the command line in a subprocess, as a user would."""
    return subprocess.run(
        [sys.executable, "-m", "normspec", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--workload", "batch_norm:huge"], "unknown workload 'batch_norm:huge'; valid workl"),
        (["--mode", "backward"], "unknown mode 'backward'; valid modes: forward, forward+b"),
        (["--dtype", "int8"], "unknown dtype 'int8'; valid dtypes: float16, bfloat16"),
        (["--norm", "batchnorm"], "unknown norm 'batchnorm'; valid norms: batch_norm"),
        (["--backend", "nosuch"], "unknown backend 'nosuch'; built-in backends: numpy"),
        (["--fail-over", "10"], "--fail-over takes a percentage such as 10%"),
        (["--compare", "/nonexistent.json"], "--compare: no such file"),
        (["--ab", "/bin/nonexistent-python", sys.executable], "is not an executable"),
        (["--ab", sys.executable, sys.executable, "--compare", __file__], "give one of them"),
        (["--ab", sys.executable, sys.executable, "--passes", "1", "--rounds", "3"], ">= 6"),
        (["--rounds", "0"], "--rounds must be a positive integer"),
        (["--norm", "rms_norm", "--workload", "batch_norm:cnn"], "no workload in common"),
        (["--threads", "0"], "--threads must be a positive integer"),
    ],
)
def test_bad_arguments_exit_2_and_name_what_is_wrong_and_what_is_allowed(args, says, capsys):
    assert main(["bench", *args]) == 2
    assert says in capsys.readouterr().err


@pytest.fixture(scope="module")
def small_run(tmp_path_factory):
    """One short real run over NumPy on the small layer_norm row, in two passes."""
    directory = tmp_path_factory.mktemp("bench")
    done = normspec(
        "bench",
        *("--backend", "numpy", "--workload", "layer_norm:small"),
        *("--passes", "2", "--rounds", "3", "--report-dir", str(directory), "--save", "small"),
    )
    return done, directory


@pytest.mark.slow
def test_a_run_writes_the_record_the_table_and_the_plot(small_run):
    done, directory = small_run
    assert done.returncode == 0, done.stdout + done.stderr
    record = json.loads((directory / "bench" / "small.json").read_text())
    # pytest-benchmark's own format, one entry per case and pass, every round kept
    assert {"machine_info", "commit_info", "benchmarks", "datetime", "version"} <= record.keys()
    assert len(record["benchmarks"]) == 4
    assert all(len(b["stats"]["data"]) == 3 for b in record["benchmarks"])
    ns = record["normspec"]
    assert ns["bandwidth"]["limit_gbps"] > 0
    assert ns["settings"]["timer"] == "cpu" and ns["settings"]["threads"] == 1
    assert len(ns["rows"]) == 2
    for row in ns["rows"]:
        assert "error" not in row, row
        assert len(row["rounds_s"]) == 6 and row["time_s"]["median"] > 0
        assert [len(p) for p in row["rounds_by_pass"]] == [3, 3]
        assert len(row["iterations"]) == 2  # each pass prepared and calibrated afresh
        assert row["gbps"] == pytest.approx(row["bytes"] / row["time_s"]["median"] / 1e9)
    table = (directory / "bench.md").read_text()
    assert "| of limit |" in table and "layer_norm" in table and "Bandwidth limit" in table
    assert (directory / "bench.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.slow
def test_torch_and_tensorflow_run_on_their_own_tensors_with_one_thread_each(tmp_path):
    done = normspec(
        "bench",
        *("--backend", "torch", "--backend", "tensorflow", "--workload", "rms_norm:small"),
        *("--passes", "1", "--rounds", "6", "--report-dir", str(tmp_path), "--save", "fw"),
    )
    assert done.returncode == 0, done.stdout + done.stderr
    ns = json.loads((tmp_path / "bench" / "fw.json").read_text())["normspec"]
    threads = ns["environment"]["threads"]
    for name in ns["environment"]["versions"].keys() - {"python"}:
        assert threads[name] == {"intra_op": 1, "inter_op": 1}, threads
    for row in ns["rows"]:
        assert "error" not in row, row
        assert row["path"].startswith("adapter hooks on framework tensors")
        if row["backend"] == "tensorflow":
            assert row["traces"] == 1 and "tf.function" in row["path"]


@pytest.mark.slow
def test_a_run_shows_progress_with_the_time_left(small_run):
    done, _ = small_run
    lines = [line for line in done.stderr.splitlines() if line.startswith("bench [")]
    assert lines[0].startswith("bench [1/4] numpy/layer_norm:small/forward/float32")
    assert "(pass 1/2)" in lines[0]
    assert "left)" in lines[-1] and "(pass 2/2)" in lines[-1]


@pytest.mark.slow
def test_a_run_compared_with_itself_is_the_same_everywhere(small_run, tmp_path):
    _, directory = small_run
    record = json.loads((directory / "bench" / "small.json").read_text())
    comparison = compare(record, record, threshold=0.10)
    assert comparison["regressions"] == []
    # six rounds may leave the interval too wide for "same", never for a verdict of change
    assert {r["verdict"] for r in comparison["rows"]} <= {"same", "unsure"}
    assert all(r["ratio"] == pytest.approx(1.0) for r in comparison["rows"])
    assert all(r["ci_low"] <= 1.0 <= r["ci_high"] for r in comparison["rows"])
    table = report.compare_markdown(comparison, "small.json")
    assert table.count("| 1.000 |") == len(record["normspec"]["rows"])


def test_compare_reports_rows_missing_on_either_side():
    row = {
        "key": "numpy/layer_norm:small/forward/float32",
        "backend": "numpy",
        "norm": "layer_norm",
        "workload": "small",
        "mode": "forward",
        "dtype": "float32",
        "parameters": "(2, 4, 16)",
        "shape": [2, 4, 16],
        "bytes": 1,
        "rounds_s": [1.0] * 6,
        "time_s": {"median": 1.0},
    }
    environment = {"versions": {}, "threads": {}}
    saved = {
        "normspec": {"rows": [row], "bandwidth": {"limit_gbps": 10}, "environment": environment}
    }
    other = {**row, "key": "torch/layer_norm:small/forward/float32", "backend": "torch"}
    current = {
        "normspec": {"rows": [other], "bandwidth": {"limit_gbps": 20}, "environment": environment}
    }
    comparison = compare(saved, current, 0.1)
    assert {r["key"]: r["verdict"] for r in comparison["rows"]} == {
        other["key"]: "new",
        row["key"]: "not run",
    }
    assert "copy bandwidth was 10.0 GB/s then and 20.0 GB/s now" in comparison["notes"][0]


def test_the_command_line_imports_no_framework_nor_the_bench_extra():
    """`normspec --help` stays fast, and works without `normspec[bench]` installed."""
    heavy = ("torch", "tensorflow", "matplotlib", "pytest_benchmark")
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys, normspec.runner.cli; "
            f"print(sorted(m for m in {heavy!r} if m in sys.modules))",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.stdout.strip() == "[]", done.stdout + done.stderr


def test_without_the_bench_extra_the_error_says_what_to_install(monkeypatch, capsys):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name == "pytest_benchmark" else real(name, *a),
    )
    assert main(["bench", "--backend", "numpy"]) == 2
    assert "pytest_benchmark not installed: pip install" in capsys.readouterr().err


def test_ab_a_kernel_that_kills_its_worker_fails_its_row_and_the_others_run(tmp_path):
    done = normspec(
        "bench",
        "--backend",
        "tests.adapters.crashing:SegfaultsOnGroupNorm",
        *("--workload", "group_norm:small", "--workload", "layer_norm:small"),
        *("--mode", "forward", "--passes", "2", "--rounds", "3"),
        *("--ab", sys.executable, sys.executable, "--report-dir", str(tmp_path), "--save", "x"),
    )
    assert done.returncode == 1, done.stdout + done.stderr
    rows = {
        r["norm"]: r for r in json.loads((tmp_path / "bench" / "ab-x.json").read_text())["rows"]
    }
    assert "exited with status -11" in rows["group_norm"]["error"]
    assert "error" not in rows["layer_norm"] and len(rows["layer_norm"]["rounds_a"]) == 6
    assert "FAILED tests.adapters.crashing:SegfaultsOnGroupNorm/group_norm:small" in done.stdout
