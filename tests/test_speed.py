"""What makes the search fast, and says how fast it is: several cases per example, each
discarded on its own; the time shares of a run; the summary every run prints."""

from __future__ import annotations

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from hypothesis.errors import FailedHealthCheck, Unsatisfiable

from normspec.runner.timings import summary, throughput
from properties.assertions import Check
from properties.profiling import PARTS, Sampler, Stopwatch
from properties.recording import Recorder

QUICK = settings(max_examples=20, database=None, deadline=None)


def _check() -> Check:
    return Check(property="p", backend="numpy", norm="layer_norm", recorder=Recorder())


def test_an_assume_discards_its_case_and_not_the_others_of_its_example():
    check = _check()
    checked = []

    @QUICK
    @given(data=st.data())
    def prop(data):
        for value in check.each(data, st.integers(0, 9)):
            with check.case(value):
                assume(value % 2 == 0)
                checked.append(value)

    prop()
    assert checked and all(v % 2 == 0 for v in checked)
    assert check.discarded > 0


def test_an_example_whose_every_case_is_discarded_is_discarded_never_passed():
    check = _check()

    @QUICK
    @given(data=st.data())
    def prop(data):
        for value in check.each(data, st.integers(0, 9)):
            with check.case(value):
                assume(False)

    with pytest.raises((Unsatisfiable, FailedHealthCheck)):
        prop()


def test_a_failure_inside_a_case_fails_the_example():
    check = _check()

    @QUICK
    @given(data=st.data())
    def prop(data):
        for value in check.each(data, st.integers(0, 9)):
            with check.case(value):
                assert value < 5

    with pytest.raises(AssertionError):
        prop()


def test_the_sampler_attributes_the_time_of_a_part_to_that_part():
    """Time spent in the oracle (normspec/) is counted as spec, and the shares sum to the
    measured CPU time."""
    import numpy as np

    from normspec import core

    sampler = Sampler(interval_s=0.0005)
    if not sampler.start():
        pytest.skip("no SIGPROF here")
    watch = Stopwatch(sampler)
    watch.begin()
    x = np.ones((64, 64))
    for _ in range(3000):
        core.moments(x, (1,))
    timing = watch.end()
    sampler.stop()
    assert set(timing["time_s"]) <= set(PARTS)
    assert max(timing["time_s"], key=timing["time_s"].get) == "spec"
    assert abs(sum(timing["time_s"].values()) - timing["cpu_s"]) < 0.01


def test_the_summary_gives_cases_per_core_per_second_and_the_shares():
    record = {
        "workers": 2,
        "results": [
            {
                "status": "passed",
                "examples": 3000,
                "cpu_s": 2.0,
                "time_s": {"drawing": 0.4, "spec": 1.0, "backend": 0.6},
            },
            {"status": "skipped", "examples": 0},
        ],
    }
    run = throughput(record, seconds=1.5)
    assert run["cases_per_cpu_second"] == 1500.0 and run["cases_per_second"] == 2000.0
    assert run["shares"] == {"drawing": 0.2, "spec": 0.5, "backend": 0.3}
    assert summary(run) == (
        "3,000 cases, 1,500/s per core (CPU time of the properties), 2,000/s on the wall "
        "clock with 2 workers; time: drawing 20%, spec 50%, backend 30%"
    )


DRAW = """
from hypothesis import given, settings, strategies as st
from backends.numpy_backend import NumpyBackend
from properties import strategies

drawn = []

@settings(derandomize=True, max_examples=5, database=None)
@given(st.data())
def draw(data):
    drawn.append(data.draw(strategies.several(strategies.training_or_evaluation(
        "batch_norm", NumpyBackend()))))

draw()
print(repr(drawn))
"""


def test_a_derandomized_draw_gives_the_same_cases_in_every_process():
    """A case's seed mixes the repr of its choices: nothing in it may vary between processes
    (an object's address, a hash), or ci's reports would change on every run."""
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    runs = [
        subprocess.run(
            [sys.executable, "-c", DRAW],
            cwd=root,
            capture_output=True,
            text=True,
            env={"PYTHONPATH": str(root), "PYTHONHASHSEED": str(seed)},
            check=True,
        ).stdout
        for seed in (1, 2)
    ]
    assert runs[0] == runs[1] and "Case(" in runs[0]
