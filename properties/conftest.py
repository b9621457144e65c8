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
import math
from pathlib import Path

import pytest

from backends.protocol import Backend
from backends.registry import BUILTIN, CONTROLS, REPLICATED, load_backend
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
    options.shard_option(config)  # a malformed --shard is a usage error before any work
    names = list(dict.fromkeys(config.getoption("--backend"))) or [*BUILTIN, *REPLICATED, *CONTROLS]
    journal = config.getoption("--journal")
    config.normspec_recorder = Recorder(journal=Path(journal) if journal else None)
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
        # the honest controls and the replicated backends are compared with the spec only
        subjects = [
            b for b in backends if b.name not in CONTROLS and not getattr(b, "replicated", False)
        ]
        pairs = differential_pairs(subjects)
        metafunc.parametrize("backend_pair", pairs, ids=[pair_name(p) for p in pairs])
    if "norm" in metafunc.fixturenames:
        marker = metafunc.definition.get_closest_marker("norms")
        norms = list(marker.args) if marker else list(NORMS)
        chosen = config.getoption("--norm")
        norms = [n for n in norms if not chosen or n in chosen]
        metafunc.parametrize("norm", norms)


#: The property modules whose cells only replicated backends (backends/replicated.py) get.
REPLICATED_FAMILY = ("properties.test_replicated_batch_norm",)
#: The property modules every backend gets, replicated or not.
SHARED_FAMILY = ("properties.test_conventions",)


#: Up to this many backends, every pair is compared; beyond, each backend is compared with the
#: first one selected (numpy by default), so that the pairs grow linearly, not quadratically.
ALL_PAIRS_UP_TO = 4


def differential_pairs(subjects: list[Backend]) -> list[tuple[Backend, Backend]]:
    """The pairs the differential properties compare: every pair of a few backends, or, for
    many, each backend with the first (a star): n - 1 pairs instead of n (n - 1) / 2. Each
    backend is also compared with the spec, so two framework backends that both agree with
    numpy within their bounds agree with each other within the sum of the three bounds."""
    if len(subjects) <= ALL_PAIRS_UP_TO:
        return list(itertools.combinations(subjects, 2))
    return [(subjects[0], other) for other in subjects[1:]]


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
    selected = [
        i
        for i in items
        if not any(
            str(m.kwargs.get("reason", "")).startswith("got empty parameter set")
            for m in i.iter_markers("skip")
        )
        and not (chosen and i.originalname not in chosen)
    ]
    # one worker's share (`--shard I/N`): every N-th cell of the selection in collection order,
    # which is the same in every part of a run, so a part restarted after a crash keeps it;
    # neighbours (the norms of one property and backend) go to different workers
    shard, shards = options.shard_option(config)
    mine = {id(item) for item in selected[shard::shards]}
    unselected = [i for i in items if id(i) not in mine or i.nodeid in done]
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
        replicated = getattr(backend, "replicated", False)
        module = request.module.__name__
        if replicated != (module in REPLICATED_FAMILY) and module not in SHARED_FAMILY:
            kind = "replicated" if replicated else "not replicated"
            pytest.skip(
                f"not provided: {backend.name} is {kind}; the replicated properties are "
                "properties/test_replicated_batch_norm.py"
            )


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
        if check and check.limitations:
            record["limitations"] = [
                {
                    "reason": reason,
                    "count": entry["count"],
                    # None: NaN or inf where a number was expected
                    "worst_error_over_bound": (
                        float(f"{entry['worst']:.3g}") if math.isfinite(entry["worst"]) else None
                    ),
                    "case": entry["case"],
                }
                for reason, entry in sorted(check.limitations.items())
            ]
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


def pytest_sessionfinish(session: pytest.Session) -> None:
    config = session.config
    config.normspec_sampler.stop()
    # one worker's share is never the full run: `normspec check` settles over every share
    full_run = not config.getoption("--property") and not config.getoption("--norm")
    full_run = full_run and options.shard_option(config)[1] == 1
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
