"""`normspec check` as a user meets it: exit statuses, error messages, reports, external
adapters and frameworks that are not installed."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from normspec.runner.cli import main, property_names

ROOT = Path(__file__).resolve().parent.parent


def normspec(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    """Run the command line in a subprocess, as a user would."""
    return subprocess.run(
        [sys.executable, "-m", "normspec", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=600,
    )


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--backend", "nosuch"], "unknown backend 'nosuch'; built-in backends: numpy"),
        (["--backend", "nosuch.module:Thing"], "cannot import 'nosuch.module'"),
        (["--backend", "tests.mutants.numpy_mutants:Nothing"], "has no attribute 'Nothing'"),
        (["--backend", "normspec.vocabulary:NORMS"], "not a backends.protocol.Backend"),
        (["--norm", "batchnorm"], "unknown norm 'batchnorm'; valid norms: batch_norm, layer_norm"),
        (["--property", "test_nothing"], "unknown property 'test_nothing'; valid properties: "),
        (["--max-examples", "0"], "--max-examples must be a positive integer"),
    ],
)
def test_bad_arguments_exit_2_and_name_what_is_wrong_and_what_is_allowed(args, says, capsys):
    assert main(["check", *args]) == 2
    assert says in capsys.readouterr().err


def test_check_on_numpy_passes_and_writes_every_report(tmp_path):
    done = normspec("check", "--backend", "numpy", "--report-dir", str(tmp_path))
    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads((tmp_path / "conformance.json").read_text())
    assert report["results"], "no result recorded"
    assert {r["status"] for r in report["results"]} <= {"passed", "not provided"}
    for r in report["results"]:
        assert {"norm", "backend", "property", "status"} <= r.keys()
    ran = {r["property"] for r in report["results"] if r["status"] == "passed"}
    # the differential properties pair backends, and the replicated ones run replicated backends
    from properties import test_replicated_batch_norm as replicated

    others = {p for p in property_names() if "backends_agree" in p} | {
        name for name in vars(replicated) if name.startswith("test_")
    }
    assert set(property_names()) - ran <= others
    for name in ("conformance.md", "precision.md", "conventions.md"):
        assert (tmp_path / name).read_text().startswith("# ")


def test_an_external_adapter_is_loaded_by_module_and_attribute(tmp_path):
    """A failing external adapter makes check exit 1 and its report carries the shrunk
    falsifying example and a one-line reproduction."""
    done = normspec(
        "check",
        "--backend",
        "tests.mutants.numpy_mutants:EpsDropped",
        "--norm",
        "batch_norm",
        "--property",
        "test_output_has_zero_mean_and_unit_variance",
        "--report-dir",
        str(tmp_path),
    )
    assert done.returncode == 1, done.stdout + done.stderr
    (failure,) = [
        r
        for r in json.loads((tmp_path / "conformance.json").read_text())["results"]
        if r["status"] == "failed"
    ]
    assert failure["backend"] == "tests.mutants.numpy_mutants:EpsDropped"
    assert "Case(norm='batch_norm'" in failure["falsifying_example"]
    assert failure["reproduction"].startswith(
        "normspec check --backend tests.mutants.numpy_mutants:EpsDropped --norm batch_norm"
    )
    assert "**FAIL**" in (tmp_path / "conformance.md").read_text()


def test_a_framework_that_is_not_installed_is_a_skip_with_its_reason(tmp_path):
    done = normspec(
        "check", "--backend", "numpy", "--backend", "tests.fakes:UninstalledFramework",
        "--norm", "layer_norm", "--property", "test_forward_agrees_with_the_spec",
        "--report-dir", str(tmp_path),
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    results = json.loads((tmp_path / "conformance.json").read_text())["results"]
    status = {r["backend"]: (r["status"], r.get("reason", "")) for r in results}
    assert status["numpy"][0] == "passed"
    assert status["tests.fakes:UninstalledFramework"][0] == "skipped"
    assert "imaginary_framework is not installed" in status["tests.fakes:UninstalledFramework"][1]


def test_a_norm_the_backend_lacks_is_not_provided_rather_than_failed(tmp_path):
    done = normspec(
        "check", "--backend", "tests.fakes:LayerNormOnly", "--norm", "group_norm",
        "--norm", "layer_norm", "--property", "test_forward_agrees_with_the_spec",
        "--report-dir", str(tmp_path),
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    results = json.loads((tmp_path / "conformance.json").read_text())["results"]
    assert {r["norm"]: r["status"] for r in results} == {
        "group_norm": "not provided",
        "layer_norm": "passed",
    }


@pytest.mark.parametrize(
    ("backend", "norm", "says"),
    [
        ("tests.fakes:UninstalledFramework", "layer_norm", "imaginary_framework is not installed"),
        ("tests.fakes:LayerNormOnly", "group_norm", "not provided: tests.fakes:LayerNormOnly has "),
    ],
    ids=["every cell skipped", "every cell not provided"],
)
def test_a_run_where_nothing_ran_exits_2_with_the_reason_and_writes_no_report(
    tmp_path, backend, norm, says
):
    done = normspec(
        "check", "--backend", backend, "--norm", norm,
        "--property", "test_forward_agrees_with_the_spec", "--report-dir", str(tmp_path / "r"),
    )  # fmt: skip
    assert done.returncode == 2, done.stdout + done.stderr
    assert "normspec: error: nothing ran: all 1 selected cells were skipped or not provided" in (
        done.stderr
    )
    assert says in done.stderr
    assert not (tmp_path / "r").exists()


def test_torch_cuda_without_a_gpu_is_nothing_ran_not_a_pass(tmp_path):
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        pytest.skip("a CUDA device is present: torch-cuda runs here")
    done = normspec(
        "check", "--backend", "torch-cuda", "--norm", "layer_norm",
        "--report-dir", str(tmp_path),
    )  # fmt: skip
    assert done.returncode == 2, done.stdout + done.stderr
    assert "nothing ran" in done.stderr and "no CUDA device" in done.stderr


def test_a_backend_named_twice_runs_once(tmp_path):
    done = normspec(
        "check", "--backend", "numpy", "--backend", "numpy", "--norm", "layer_norm",
        "--norm", "layer_norm", "--property", "test_forward_agrees_with_the_spec",
        "--report-dir", str(tmp_path),
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    results = json.loads((tmp_path / "conformance.json").read_text())["results"]
    assert [(r["backend"], r["norm"]) for r in results] == [("numpy", "layer_norm")]


def test_the_ci_profile_gives_the_same_results_on_every_run(tmp_path):
    runs = []
    for i in range(2):
        out = tmp_path / str(i)
        normspec(
            "check",
            "--backend",
            "tests.mutants.numpy_mutants:OnePassVariance",
            "--norm",
            "layer_norm",
            "--property",
            "test_forward_agrees_with_the_spec_on_ill_conditioned_input",
            "--report-dir",
            str(out),
        )
        runs.append(json.loads((out / "conformance.json").read_text())["results"][0])
    assert runs[0]["message"] == runs[1]["message"]


def test_a_known_deviation_that_no_full_ci_run_observes_fails_the_run(tmp_path):
    """A deviation listed for a test that passes is gone (fixed upstream) or no longer reached:
    the full ci run fails and says which, while each of its tests is a non-strict xfail."""
    deviations = tmp_path / "deviations.toml"
    deviations.write_text(
        "[[deviation]]\n"
        'backend = "numpy"\nnorm = "layer_norm"\n'
        'property = "test_forward_agrees_with_the_spec"\n'
        'versions = "none"\nreason = "a deviation that numpy does not have"\n'
        'reproduction = "python properties/reproductions/none.py"\n'
    )
    done = normspec(
        "check", "--backend", "numpy", "--known-deviations", str(deviations),
        "--report-dir", str(tmp_path),
    )  # fmt: skip
    assert done.returncode == 1, done.stdout + done.stderr
    assert "known deviation no longer observed: python properties/reproductions/none.py" in (
        done.stdout
    )
    report = json.loads((tmp_path / "conformance.json").read_text())
    [entry] = [d for d in report["known_deviations"] if d["backend"] == "numpy"]
    assert (entry["status"], entry["tests_covered"], entry["tests_failed"]) == (
        "no longer observed",
        1,
        0,
    )
    assert "xpassed" in report["summary"]
