"""Progress of a long run: step i of n, the current one, and a time left that learns from
the first pass."""

from __future__ import annotations

import io

from normspec.bench import progress
from normspec.bench.progress import Progress, duration


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_each_step_names_itself_its_rank_and_the_time_left(monkeypatch):
    clock = Clock()
    monkeypatch.setattr(progress.time, "monotonic", clock)
    stream = io.StringIO()
    run = Progress(["a", "b", "a", "b"], stream=stream)  # two cases, two passes
    run.step("a", " (pass 1/2)")
    clock.now = 10.0
    run.step("b", " (pass 1/2)")
    clock.now = 40.0  # b took 30 s
    run.step("a", " (pass 2/2)")  # left: a's 10 s and b's 30 s, from pass 1
    lines = stream.getvalue().splitlines()
    assert lines[0] == "bench [1/4] a (pass 1/2) (0s elapsed)"
    assert lines[1] == "bench [2/4] b (pass 1/2) (10s elapsed, about 30s left)"
    assert lines[2] == "bench [3/4] a (pass 2/2) (40s elapsed, about 40s left)"


def test_durations_read_as_a_person_says_them():
    assert [duration(s) for s in (4.4, 65, 3725)] == ["4s", "1m05s", "1h02m"]
