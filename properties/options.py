"""The suite's options and Hypothesis profiles.

Options (all optional):
    --backend NAME        a built-in backend or package.module:attr (repeatable; default: all)
    --norm NAME           restrict to these norms (repeatable; default: all)
    --property NAME       restrict to these property functions (repeatable; default: all)
    --profile NAME        ci (derandomized, fast), dev, or hunt (long searches)
    --max-examples N      override the profile's number of examples per property
    --max-elements N      the size budget: no drawn input has more elements (default: the
                          profile's, `SIZE_BUDGETS`)
    --known-deviations F  an extra TOML file of known deviations (strict xfails)
    --results FILE        write the run's record (results, precision, backends) as JSON
    --journal FILE        append each event as it happens (the runner's crash isolation)
    --skip-nodeids FILE   test ids not to run (the part of the run before a crash)
    --shard I/N           run only worker I's share of N (`normspec check --workers N`)
    --database WHERE      Hypothesis' example database for dev and hunt: a directory,
                          redis://HOST:PORT/N or none (default .normspec/examples)
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, Phase, settings

from backends.registry import BUILTIN
from normspec.vocabulary import NORMS
from properties import strategies

PROFILES = ("ci", "dev", "hunt")
#: Each profile's size budget when --max-elements is not given: ci keeps the gate fast (the
#: wide regimes' shapes of at most 1024 values), dev reaches reductions of 65536 values, and
#: hunt spends its time on the large ones, up to 2^20 values (properties/shapes.py).
SIZE_BUDGETS = {"ci": strategies.DEFAULT_SIZE_BUDGET, "dev": 2**16, "hunt": 2**20}
_QUIET = [
    HealthCheck.too_slow,
    HealthCheck.data_too_large,
    HealthCheck.filter_too_much,
    HealthCheck.differing_executors,
    # `check` and `deviating_members` are per test item, and the same for all its examples
    HealthCheck.function_scoped_fixture,
]

# Every profile starts from Hypothesis' own "default", not from whatever profile is loaded
# when this module is imported: under CI=true Hypothesis loads its built-in "ci" profile
# (derandomized, no database), and registering ours under that name makes ours the loaded
# one, so that dev and hunt would inherit its derandomization and its phases without reuse:
# a hunt in a CI job would then neither replay nor keep what it found.
_DEFAULT = settings.get_profile("default")
settings.register_profile(
    "ci",
    parent=_DEFAULT,
    derandomize=True,
    max_examples=12,
    deadline=None,
    database=None,
    suppress_health_check=_QUIET,
    print_blob=False,
    phases=[Phase.explicit, Phase.generate, Phase.shrink],
)
settings.register_profile(
    "dev",
    parent=_DEFAULT,
    max_examples=100,
    deadline=None,
    suppress_health_check=_QUIET,
    print_blob=True,
)
settings.register_profile(
    "hunt",
    parent=_DEFAULT,
    max_examples=2000,
    deadline=None,
    suppress_health_check=_QUIET,
    print_blob=True,
)


def add_options(parser: pytest.Parser) -> None:
    """The suite's command-line options."""
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
        "--max-elements",
        type=int,
        default=None,
        help="the size budget: the most elements of any drawn input (default: the "
        "profile's: " + ", ".join(f"{p} {n}" for p, n in SIZE_BUDGETS.items()) + ")",
    )
    group.addoption(
        "--known-deviations",
        action="append",
        default=[],
        help="extra TOML file of known deviations, run as strict xfails",
    )
    group.addoption("--results", default=None, help="write the run's record as JSON here")
    group.addoption(
        "--journal",
        default=None,
        help="append every event of the run to this file as it happens (JSON lines)",
    )
    group.addoption(
        "--skip-nodeids",
        default=None,
        help="a file of test ids (one a line) not to run: those a previous part of the run did",
    )
    group.addoption(
        "--shard",
        default="0/1",
        help="I/N: run only the I-th of N interleaved shares of the selected cells (0-based), "
        "one worker of `normspec check --workers N`",
    )
    group.addoption(
        "--database",
        default=None,
        help="Hypothesis' example database of the dev and hunt profiles, which replay the "
        "failures it holds first: a directory, redis://HOST:PORT/N (shared across hosts) or "
        "none (default: .normspec/examples; ci is derandomized and keeps none)",
    )


def load_profile(config: pytest.Config) -> None:
    """Load the chosen Hypothesis profile, with --max-examples and --database applied, and the
    size budget."""
    profile = config.getoption("--profile")
    max_elements = config.getoption("--max-elements")
    if max_elements is None:
        max_elements = SIZE_BUDGETS[profile]
    if max_elements < 2:
        raise pytest.UsageError(f"--max-elements must be >= 2, got {max_elements}")
    strategies.use_size_budget(max_elements)
    strategies.use_search({"hunt": "long", "dev": "short"}.get(profile, "single"))
    max_examples = config.getoption("--max-examples")
    database = config.getoption("--database")
    if profile != "ci":  # derandomized runs keep no database: each one is the same
        # imported here, not above: Hypothesis draws constants from every local module loaded,
        # so a module that ci does not need would change what ci's derandomized runs draw
        from properties.example_database import (
            DEFAULT_DATABASE,
            DatabaseSpecError,
            example_database,
        )

        try:
            settings.register_profile(
                f"{profile}-db",
                parent=settings.get_profile(profile),
                database=example_database(database or DEFAULT_DATABASE),
            )
        except DatabaseSpecError as error:
            raise pytest.UsageError(str(error)) from None
        profile = f"{profile}-db"
    elif database is not None:
        raise pytest.UsageError("--database: the ci profile is derandomized and keeps none")
    if max_examples is not None:
        if max_examples < 1:
            raise pytest.UsageError(f"--max-examples must be >= 1, got {max_examples}")
        settings.register_profile(
            f"{profile}-n", parent=settings.get_profile(profile), max_examples=max_examples
        )
        profile = f"{profile}-n"
    settings.load_profile(profile)


def shard_option(config: pytest.Config) -> tuple[int, int]:
    """--shard I/N as (I, N), 0 <= I < N."""
    text = config.getoption("--shard")
    index, _, count = text.partition("/")
    try:
        shard, shards = int(index), int(count)
    except ValueError:
        shard, shards = -1, 0
    if not 0 <= shard < shards:
        raise pytest.UsageError(f"--shard must be I/N with 0 <= I < N, got {text!r}")
    return shard, shards
