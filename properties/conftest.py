"""The property suite's pytest hooks: the glue between pytest and the modules that do the work.

    properties/options.py     the options and the Hypothesis profiles
    properties/deviations.py  the known deviations (strict xfails)
    properties/recording.py   the record of the run (results, precision, conventions)
    properties/checked.py     backends as the properties call them (protocol checks)

Each property receives its backend (or pair) and norm by parametrization, and a `check`
fixture: its assertions, bound to what it runs and to the run's recorder.
"""

from __future__ import annotations

import itertools
import subprocess
from pathlib import Path

import pytest

from backends.protocol import Backend
from backends.registry import BUILTIN, CONTROLS, load_backend
from normspec.vocabulary import NORMS
from properties import options
from properties.assertions import Check
from properties.checked import CheckedBackend
from properties.deviations import (
    KNOWN_DEVIATIONS,
    Deviations,
    DeviationsFileError,
    load_deviations,
)
from properties.profiling import Sampler, Stopwatch
from properties.recording import Recorder, backend_rows, result_record, write_record


def pytest_addoption(parser: pytest.Parser) -> None:
    options.add_options(parser)


def pytest_configure(config: pytest.Config) -> None:
    options.load_profile(config)
    names = list(dict.fromkeys(config.getoption("--backend"))) or [*BUILTIN, *CONTROLS]
    journal = config.getoption("--journal")
    worker = getattr(config, "workerinput", {}).get("workerid")  # a pytest-xdist worker
    config.normspec_recorder = Recorder(journal=Path(journal) if journal else None, worker=worker)
    config.normspec_backends = [
        CheckedBackend(load_backend(name), config.normspec_recorder) for name in names
    ]
    config.normspec_recorder.event(backends=backend_rows(config.normspec_backends))
    paths = [KNOWN_DEVIATIONS, *map(Path, config.getoption("--known-deviations"))]
    try:
        config.normspec_deviations = Deviations(load_deviations(paths))
    except DeviationsFileError as error:
        raise pytest.UsageError(str(error)) from None
    config.addinivalue_line("markers", "norms(*names): the norms a property applies to")
    config.normspec_sampler = Sampler()
    config.normspec_stopwatch = Stopwatch(config.normspec_sampler)


def pytest_sessionstart(session: pytest.Session) -> None:
    session.config.normspec_sampler.start()


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    config = metafunc.config
    backends = config.normspec_backends
    if "backend" in metafunc.fixturenames:
        metafunc.parametrize("backend", backends, ids=[b.name for b in backends])
    if "backend_pair" in metafunc.fixturenames:
        # the honest controls are compared with the spec, not with the frameworks
        subjects = [b for b in backends if b.name not in CONTROLS]
        pairs = list(itertools.combinations(subjects, 2))
        metafunc.parametrize("backend_pair", pairs, ids=[pair_name(p) for p in pairs])
    if "norm" in metafunc.fixturenames:
        marker = metafunc.definition.get_closest_marker("norms")
        norms = list(marker.args) if marker else list(NORMS)
        chosen = config.getoption("--norm")
        norms = [n for n in norms if not chosen or n in chosen]
        metafunc.parametrize("norm", norms)


def pair_name(pair: tuple[Backend, Backend]) -> str:
    """How a pair of backends is named in test ids and reports."""
    return f"{pair[0].name} vs {pair[1].name}"


def subject(item: pytest.Item) -> tuple[str, list[Backend], str] | None:
    """(the name the item is reported under, the backends it runs, its norm), or None for an
    item that runs no backend."""
    params = getattr(getattr(item, "callspec", None), "params", {})
    norm = params.get("norm", "")
    if "backend" in params:
        return params["backend"].name, [params["backend"]], norm
    if "backend_pair" in params:
        return pair_name(params["backend_pair"]), list(params["backend_pair"]), norm
    return None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # a property none of whose norms (or pairs) was selected is not run at all
    chosen = config.getoption("--property")
    skip_file = config.getoption("--skip-nodeids")
    done = set(Path(skip_file).read_text().split("\n")) if skip_file else set()
    unselected = [
        i
        for i in items
        if any(
            str(m.kwargs.get("reason", "")).startswith("got empty parameter set")
            for m in i.iter_markers("skip")
        )
        or (chosen and i.originalname not in chosen)
        or i.nodeid in done
    ]
    if unselected:
        config.hook.pytest_deselected(items=unselected)
        items[:] = [i for i in items if i not in unselected]
    for item in items:
        found = subject(item)
        if found is not None:
            config.normspec_deviations.mark(item, found[0], found[2])


@pytest.fixture
def check(request: pytest.FixtureRequest) -> Check:
    """The assertions of this property run, bound to what it runs and to the recorder."""
    found = subject(request.node)
    name, _, norm = found if found else ("?", [], "")
    return Check(
        property=request.node.originalname,
        backend=name,
        norm=norm,
        recorder=request.config.normspec_recorder,
        profile=request.config.getoption("--profile"),
    )


@pytest.fixture
def deviating_members(request: pytest.FixtureRequest, backend_pair, norm) -> dict[str, str]:
    """{member name: reason} for each member of the pair with a known deviation of its own for
    this norm. The pair's bound is the sum of the members' bounds against the spec, so a pair
    can disagree only where a member leaves its own bound; the differential properties
    discard the inputs where a member with a known deviation does, and fail on all others.
    The deviation itself stays a strict xfail of that member's own properties."""
    return request.config.normspec_deviations.members(norm, list(backend_pair))


@pytest.fixture(autouse=True)
def _skip_what_cannot_run(request: pytest.FixtureRequest) -> None:
    """Skip a backend that cannot run here, and a norm it does not provide."""
    found = subject(request.node)
    if found is None:
        return
    _, backends, norm = found
    for backend in backends:
        reason = backend.unavailable_reason()
        if reason:
            pytest.skip(f"unavailable: {backend.name}: {reason}")
        if norm and norm not in backend.norms:
            pytest.skip(f"not provided: {backend.name} has no {norm}")


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    found = subject(item)
    if found is not None:
        item.config.normspec_recorder.start(item.nodeid, found, item.originalname)
        item.config.normspec_stopwatch.begin()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    outcome = yield
    report = outcome.get_result()
    found = subject(item)
    if found is None:
        return
    if report.when == "call" or (report.when == "setup" and report.outcome != "passed"):
        check = getattr(item, "funcargs", {}).get("check")
        record = result_record(item, report, call, found, check.cases if check else 0)
        record.update(item.config.normspec_stopwatch.end())
        if hasattr(item, "normspec_deviation"):
            record["known_deviation"] = item.normspec_deviation
        item.config.normspec_recorder.add(record)
        item.config.normspec_deviations.count(record)


def pytest_terminal_summary(terminalreporter, exitstatus: int, config: pytest.Config) -> None:
    for tally in config.normspec_deviations.tallies:
        if tally.no_longer_observed:
            terminalreporter.write_line(
                f"known deviation no longer observed: {tally.entry['reproduction']} "
                "(fixed upstream, or no longer reached: update or remove its entry)",
                red=True,
            )


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node, error) -> None:
    """pytest-xdist's controller: a worker finished or died. Take what it recorded; journal a
    death with its exit status, so that the runner fails the property it was running."""
    config = node.config
    shipped = getattr(node, "workeroutput", {}).get("normspec")
    if shipped:
        config.normspec_recorder.merge(shipped)
        for record in shipped["results"]:
            config.normspec_deviations.count(record)
    if error:
        popen = getattr(getattr(node.gateway, "_io", None), "popen", None)
        try:
            returncode = popen.wait(timeout=5) if popen is not None else None
        except subprocess.TimeoutExpired:
            returncode = None
        config.normspec_recorder.event(
            worker_down=node.gateway.id, error=str(error), returncode=returncode
        )


def pytest_sessionfinish(session: pytest.Session) -> None:
    config = session.config
    config.normspec_sampler.stop()
    if hasattr(config, "workerinput"):  # a pytest-xdist worker: its controller settles
        config.workeroutput["normspec"] = config.normspec_recorder.shipped()
        return
    full_run = not config.getoption("--property") and not config.getoption("--norm")
    profile = config.getoption("--profile")
    if config.normspec_deviations.settle(profile=profile, full_run=full_run):
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
    config.normspec_recorder.event(
        finished=int(session.exitstatus), known_deviations=config.normspec_deviations.records()
    )
    path = config.getoption("--results")
    if path:
        write_record(
            Path(path),
            profile=config.getoption("--profile"),
            backends=config.normspec_backends,
            recorder=config.normspec_recorder,
            known_deviations=config.normspec_deviations.records(),
        )
