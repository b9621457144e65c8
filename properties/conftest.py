"""The property suite's pytest plumbing: which backends and norms, which Hypothesis profile,
which known deviations, and the machine-readable record of the run.

Options (all optional):
    --backend NAME        a built-in backend or package.module:attr (repeatable; default: all)
    --norm NAME           restrict to these norms (repeatable; default: all)
    --property NAME       restrict to these property functions (repeatable; default: all)
    --profile NAME        ci (derandomized, fast), dev, or hunt (long searches)
    --max-examples N      override the profile's number of examples per property
    --known-deviations F  an extra TOML file of known deviations (strict xfails)
    --results FILE        write the run's record (results, precision, backends) as JSON
"""

from __future__ import annotations

import itertools
import json
import time
import tomllib
from pathlib import Path

import pytest
from hypothesis import HealthCheck, Phase, settings

from backends.protocol import Backend
from backends.registry import BUILTIN, load_backend
from normspec.vocabulary import NORMS
from properties import assertions, observations, strategies
from properties.checked import CheckedBackend

KNOWN_DEVIATIONS = Path(__file__).with_name("known_deviations.toml")
PROFILES = ("ci", "dev", "hunt")
_QUIET = [
    HealthCheck.too_slow,
    HealthCheck.data_too_large,
    HealthCheck.filter_too_much,
    HealthCheck.differing_executors,
]

settings.register_profile(
    "ci",
    derandomize=True,
    max_examples=12,
    deadline=None,
    database=None,
    suppress_health_check=_QUIET,
    print_blob=False,
    phases=[Phase.explicit, Phase.generate, Phase.shrink],
)
settings.register_profile(
    "dev", max_examples=100, deadline=None, suppress_health_check=_QUIET, print_blob=True
)
settings.register_profile(
    "hunt", max_examples=2000, deadline=None, suppress_health_check=_QUIET, print_blob=True
)


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("normspec")
    group.addoption(
        "--backend",
        action="append",
        default=[],
        help="backend to test: " + ", ".join(BUILTIN) + ", or package.module:attr",
    )
    group.addoption(
        "--norm",
        action="append",
        default=[],
        choices=NORMS,
        help="norm to test (repeatable; default: all)",
    )
    group.addoption(
        "--property",
        action="append",
        default=[],
        help="property test function to run (repeatable; default: all)",
    )
    group.addoption("--profile", default="ci", choices=PROFILES, help="Hypothesis profile")
    group.addoption(
        "--max-examples",
        type=int,
        default=None,
        help="examples per property (overrides the profile)",
    )
    group.addoption(
        "--known-deviations",
        action="append",
        default=[],
        help="extra TOML file of known deviations, run as strict xfails",
    )
    group.addoption("--results", default=None, help="write the run's record as JSON here")


def pytest_configure(config: pytest.Config) -> None:
    profile = config.getoption("--profile")
    max_examples = config.getoption("--max-examples")
    if max_examples is not None:
        if max_examples < 1:
            raise pytest.UsageError(f"--max-examples must be >= 1, got {max_examples}")
        settings.register_profile(
            f"{profile}-n", parent=settings.get_profile(profile), max_examples=max_examples
        )
        profile = f"{profile}-n"
    settings.load_profile(profile)
    names = config.getoption("--backend") or list(BUILTIN)
    config.normspec_backends = [CheckedBackend(load_backend(name)) for name in names]
    config.normspec_records = []
    config.normspec_deviations = load_deviations(
        [KNOWN_DEVIATIONS, *map(Path, config.getoption("--known-deviations"))]
    )
    config.addinivalue_line("markers", "norms(*names): the norms a property applies to")


def load_deviations(paths: list[Path]) -> list[dict]:
    """Every [[deviation]] entry of the given TOML files, checked for its required keys."""
    required = ("backend", "norm", "property", "versions", "reason", "reproduction")
    deviations = []
    for path in paths:
        if not path.exists():
            raise pytest.UsageError(f"known-deviations file {path} does not exist")
        for entry in tomllib.loads(path.read_text()).get("deviation", []):
            missing = [k for k in required if not entry.get(k)]
            if missing:
                raise pytest.UsageError(f"{path}: deviation {entry} lacks {missing}")
            deviations.append(entry)
    return deviations


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    config = metafunc.config
    backends = config.normspec_backends
    if "backend" in metafunc.fixturenames:
        metafunc.parametrize("backend", backends, ids=[b.name for b in backends])
    if "backend_pair" in metafunc.fixturenames:
        pairs = list(itertools.combinations(backends, 2))
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
    unselected = [
        i
        for i in items
        if any(
            str(m.kwargs.get("reason", "")).startswith("got empty parameter set")
            for m in i.iter_markers("skip")
        )
        or (chosen and i.originalname not in chosen)
    ]
    if unselected:
        config.hook.pytest_deselected(items=unselected)
        items[:] = [i for i in items if i not in unselected]
    for item in items:
        found = subject(item)
        if found is None:
            continue
        name, _, norm = found
        for index, deviation in enumerate(config.normspec_deviations):
            if (
                name in _listed(deviation["backend"])
                and norm in _listed(deviation["norm"])
                and item.originalname in _listed(deviation["property"])
            ):
                item.add_marker(pytest.mark.xfail(strict=False, reason=_reason(deviation)))
                item.normspec_deviation = index
                deviation["_covered"] = deviation.get("_covered", 0) + 1
                break


def check_deviations_observed(config: pytest.Config) -> list[dict]:
    """The known deviations that a full ci run covered but did not observe.

    A deviation lists every test its cause reaches, and each is an xfail that may pass: which
    of them the ci profile's draws reach depends on the draws. The deviation as a whole is
    strict: a ci run that selects its tests (no --norm or --property filter) must see at least
    one of them fail, else the deviation is gone (fixed upstream) or no longer reached, and
    the run fails until someone looks (its reproduction says which)."""
    full_run = not config.getoption("--property") and not config.getoption("--norm")
    if config.getoption("--profile") != "ci" or not full_run:
        return []
    return [
        d
        for d in config.normspec_deviations
        if d.get("_covered") and not d.get("_observed") and d.get("ci_reaches", True)
    ]


@pytest.fixture
def deviating_members(request: pytest.FixtureRequest, backend_pair, norm) -> dict[str, str]:
    """{member name: reason} for each member of the pair with a known deviation of its own for
    this norm. The pair's bound is the
    sum of the members' bounds against the spec, so a pair can disagree only where a member
    leaves its own bound; the differential properties discard the inputs where a member with
    a known deviation does, and fail on all others. The deviation itself stays a strict xfail
    of that member's own properties."""
    found = {}
    for deviation in request.config.normspec_deviations:
        if norm in _listed(deviation["norm"]):
            for backend in backend_pair:
                if backend.name in _listed(deviation["backend"]):
                    found.setdefault(backend.name, _reason(deviation))
    return found


def _deviation_record(deviation: dict) -> dict:
    """A deviation as the report shows it: the entry, how many tests it covered in this run
    and how many of them it made fail."""
    record = {k: v for k, v in deviation.items() if not k.startswith("_")}
    record["tests_covered"] = deviation.get("_covered", 0)
    record["tests_failed"] = deviation.get("_observed", 0)
    if deviation.get("_unobserved"):
        record["status"] = "no longer observed"
    elif record["tests_failed"]:
        record["status"] = "observed"
    else:
        record["status"] = "not reached by this run"
    return record


def _reason(deviation: dict) -> str:
    return f"known deviation: {deviation['reason']} (reproduction: {deviation['reproduction']})"


def _listed(value: str | list[str]) -> list[str]:
    """A deviation names one backend, norm or property, or a list of them."""
    return [value] if isinstance(value, str) else list(value)


@pytest.fixture(autouse=True)
def _current_property(request: pytest.FixtureRequest) -> None:
    """Skip what cannot run here, and tell the assertions which property is running."""
    found = subject(request.node)
    if found is None:
        return
    name, backends, norm = found
    for backend in backends:
        reason = backend.unavailable_reason()
        if reason:
            pytest.skip(f"unavailable: {backend.name}: {reason}")
        if norm and norm not in backend.norms:
            pytest.skip(f"not provided: {backend.name} has no {norm}")
    strategies.DRAWN["cases"] = 0
    assertions.CURRENT = assertions.Current(
        request.node.originalname, name, norm, request.config.getoption("--profile")
    )


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    outcome = yield
    report = outcome.get_result()
    if subject(item) is None:
        return
    if report.when == "call" or (report.when == "setup" and report.outcome != "passed"):
        record = _record(item, report, call)
        item.config.normspec_records.append(record)
        index = getattr(item, "normspec_deviation", None)
        if index is not None and record["status"] == "xfailed":
            deviation = item.config.normspec_deviations[index]
            deviation["_observed"] = deviation.get("_observed", 0) + 1


def _record(item: pytest.Item, report: pytest.TestReport, call: pytest.CallInfo) -> dict:
    name, backends, norm = subject(item)
    record = {
        "norm": norm,
        "backend": name,
        "property": item.originalname,
        "kind": "differential" if len(backends) > 1 else "single",
        "nodeid": item.nodeid,
        "duration_s": round(report.duration, 4),
        "examples": strategies.DRAWN["cases"],
    }
    if hasattr(report, "wasxfail"):
        # an xfail that passed: these examples did not reach the known deviation
        status = "xfailed" if report.skipped else "xpassed"
        record["reason"] = report.wasxfail
    elif report.skipped:
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        reason = reason.removeprefix("Skipped: ")
        status = "not provided" if reason.startswith("not provided") else "skipped"
        record["reason"] = reason
    else:
        status = report.outcome
    record["status"] = status
    if status == "failed" and call.excinfo is not None:
        error = call.excinfo.value
        notes = getattr(error, "__notes__", [])
        record["message"] = str(error).strip()
        record["falsifying_example"] = (
            "\n".join(n for n in notes if n.startswith(("Falsifying", "Draw"))) or None
        )
        record["reproduction"] = (
            f"normspec check {' '.join('--backend ' + b.name for b in backends)} --norm {norm} "
            f"--property {item.originalname} --profile {item.config.getoption('--profile')}"
        )
    return record


def pytest_terminal_summary(terminalreporter, exitstatus: int, config: pytest.Config) -> None:
    for deviation in config.normspec_deviations:
        if deviation.get("_unobserved"):
            terminalreporter.write_line(
                f"known deviation no longer observed: {deviation['reproduction']} "
                "(fixed upstream, or no longer reached: update or remove its entry)",
                red=True,
            )


def pytest_sessionfinish(session: pytest.Session) -> None:
    config = session.config
    unobserved = check_deviations_observed(config)
    for deviation in unobserved:
        deviation["_unobserved"] = True
    if unobserved:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
    path = config.getoption("--results")
    if not path:
        return
    backends = [
        {
            "name": b.name,
            "version": b.version() if not b.unavailable_reason() else "",
            "unavailable": b.unavailable_reason(),
            "layout": b.conventions.layout,
            "norms": sorted(b.norms),
        }
        for b in config.normspec_backends
    ]
    precision = [
        {
            "property": k[0],
            "backend": k[1],
            "norm": k[2],
            "dtype": k[3],
            "quantity": k[4],
            "worst_error_over_bound": v["worst"],
            "case": v["case"],
        }
        for k, v in sorted(assertions.PRECISION.items())
    ]
    record = {
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "profile": config.getoption("--profile"),
        "backends": backends,
        "results": config.normspec_records,
        "precision": precision,
        "conventions": observations.CONVENTIONS,
        "known_deviations": [_deviation_record(d) for d in config.normspec_deviations],
    }
    Path(path).write_text(json.dumps(record, indent=1, default=str))
