"""The tally of `hunt --workers N`: the children's findings are one pool, what each child is
doing now is its worker's, so the display counts every worker and the hang watch ends only
the child whose cell overran."""

from __future__ import annotations

import os
import signal
import subprocess
import time

import pytest

from normspec.hunt.campaign import HuntRequest, end_hung_cell
from normspec.hunt.display import status_lines
from normspec.hunt.tally import Tally


def _plan(tally: Tally, worker: int, cells: int, pid: int = 1) -> None:
    tally.read({"hunt": "plan", "data": {"cells": cells, "pid": pid}}, worker)


def _start(tally: Tally, worker: int, nodeid: str, backend: str) -> None:
    tally.read({"start": nodeid, "backend": backend, "norm": "layer_norm", "property": "p"}, worker)


def test_the_plans_and_running_cells_of_every_worker_add_up():
    tally = Tally(workers=2)
    assert tally.planned is None
    _plan(tally, 0, 3)
    _plan(tally, 1, 2)
    _start(tally, 0, "a", "numpy")
    _start(tally, 1, "b", "exact")
    for worker, nodeid, examples in ((0, "a", 7), (1, "b", 5)):
        tick = {"nodeid": nodeid, "examples": examples, "failures": 0}
        tally.read({"hunt": "tick", "data": tick}, worker)
    assert tally.planned == 5
    assert tally.examples() == 12 and tally.examples_by_backend() == {"numpy": 7, "exact": 5}
    head, examples, _ = status_lines(tally, 60.0, 1.0)
    assert "cells 1-2/5 (numpy, layer_norm, p; exact, layer_norm, p)" in head
    assert "12 in all" in examples


def test_a_restarted_child_plans_only_what_its_worker_has_not_done():
    tally = Tally(workers=2)
    _plan(tally, 0, 3)
    _plan(tally, 1, 2)
    cell = {"nodeid": "a", "members": ["numpy"], "examples": 4}
    tally.read({"hunt": "cell", "data": cell}, 0)
    _plan(tally, 0, 1)  # worker 0's child crashed in its second cell and was restarted
    assert tally.planned == 2 + 2


def test_the_campaign_has_finished_only_when_every_worker_has():
    tally = Tally(workers=2)
    tally.read({"finished": 0}, 0)
    assert tally.finished is None
    tally.ended(1)  # its child died outside any cell: nothing more will come from it
    assert tally.finished is not None


@pytest.fixture
def two_children():
    """Two processes, each the leader of a process group of its own, as the workers' are."""
    children = [subprocess.Popen(["sleep", "60"], process_group=0) for _ in range(2)]
    yield children
    for child in children:
        if child.poll() is None:
            os.killpg(child.pid, signal.SIGKILL)
        child.wait()


def test_the_hang_watch_ends_only_the_child_whose_cell_overran(two_children):
    request = HuntRequest(backends=("numpy",), shrink_s=0, hang_grace_s=1)
    tally = Tally(workers=2)
    for worker, child in enumerate(two_children):
        _plan(tally, worker, 1, pid=child.pid)
        tally.read({"hunt": "begin", "data": {"nodeid": f"cell-{worker}", "slice_s": 0.5}}, worker)
    with tally.lock:  # worker 0's cell began long ago: past its slice, shrinking and grace
        nodeid, slice_s, _ = tally.by_worker[0].begun
        tally.by_worker[0].begun = (nodeid, slice_s, time.monotonic() - 10)
    end_hung_cell(tally, request)
    assert two_children[0].wait(timeout=5) == -signal.SIGKILL
    assert two_children[1].poll() is None, "the other worker's child was ended too"
    assert tally.hung == {"cell-0": 0.5 + 0 + 1}
