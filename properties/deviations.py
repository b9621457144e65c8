"""Known deviations of frameworks: strict xfails with a reason and a reproduction.

Each entry of properties/known_deviations.toml (and of the files given with
`--known-deviations`) names backends, norms and properties; every test it covers is marked
xfail. The entry as a whole is strict: a full `ci` run that ran some of its tests and saw
none of them fail is an error, since the deviation is then fixed upstream or no longer
reached (its reproduction says which). A test that did not run (its backend is unavailable
or not installed) is no evidence either way: an entry none of whose tests ran is reported
"not checked", never "no longer observed".
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pytest

from properties.deviations_file import REQUIRED, DeviationsFileError, load_deviations

KNOWN_DEVIATIONS = Path(__file__).with_name("known_deviations.toml")
__all__ = ["KNOWN_DEVIATIONS", "REQUIRED", "Deviations", "DeviationsFileError", "load_deviations"]


def listed(value: str | list[str]) -> list[str]:
    """A deviation names one backend, norm or property, or a list of them."""
    return [value] if isinstance(value, str) else list(value)


def reason(deviation: dict) -> str:
    """The xfail reason of a deviation's tests."""
    return f"known deviation: {deviation['reason']} (reproduction: {deviation['reproduction']})"


@dataclass
class Tally:
    """What a run saw of one deviation: tests matched, tests that ran, tests that failed."""

    entry: dict
    matched: int = 0
    ran: int = 0
    failed: int = 0
    skipped_because: set[str] = field(default_factory=set)
    no_longer_observed: bool = False

    @property
    def status(self) -> str:
        if self.no_longer_observed:
            return "no longer observed"
        if self.failed:
            return "observed"
        if self.matched and not self.ran:
            return "not checked"
        return "not reached by this run"

    def record(self) -> dict:
        """The entry as the report shows it, with what this run saw of it."""
        record = dict(self.entry)
        record["tests_covered"] = self.ran
        record["tests_failed"] = self.failed
        record["status"] = self.status
        if record["status"] == "not checked":
            record["not_checked_because"] = sorted(self.skipped_because)
        return record


class Deviations:
    """The known deviations of a run and what the run saw of each."""

    def __init__(self, entries: list[dict]) -> None:
        self.tallies = [Tally(entry) for entry in entries]

    def mark(self, item: pytest.Item, name: str, norm: str) -> None:
        """Mark `item` (reported under `name`, for `norm`) xfail if a deviation covers it: the
        first that does counts its result; `item.normspec_covering` lists every one that does
        (two may, each for its own dtypes: the hunt's catalogue tells them apart)."""
        covering = [
            index
            for index, tally in enumerate(self.tallies)
            if name in listed(tally.entry["backend"])
            and norm in listed(tally.entry["norm"])
            and item.originalname in listed(tally.entry["property"])
        ]
        if covering:
            first = self.tallies[covering[0]].entry
            item.add_marker(pytest.mark.xfail(strict=False, reason=reason(first)))
            item.normspec_deviation = covering[0]
            item.normspec_covering = covering

    def count(self, record: dict) -> None:
        """Count a result of a test a deviation covers (`record["known_deviation"]`, its
        index): ran (xfailed or xpassed), or skipped with its reason."""
        index = record.get("known_deviation")
        if index is None:
            return
        tally = self.tallies[index]
        tally.matched += 1
        if record["status"] in ("xfailed", "xpassed"):
            tally.ran += 1
            tally.failed += record["status"] == "xfailed"
        elif record["status"] in ("skipped", "not provided"):
            tally.skipped_because.add(record.get("reason", ""))

    def members(self, norm: str, backends: list) -> dict[str, str]:
        """{member name: reason} for each of `backends` with a known deviation for `norm`."""
        found = {}
        for tally in self.tallies:
            if norm in listed(tally.entry["norm"]):
                for backend in backends:
                    if backend.name in listed(tally.entry["backend"]):
                        found.setdefault(backend.name, reason(tally.entry))
        return found

    def settle(self, *, profile: str, full_run: bool) -> list[Tally]:
        """Mark and return the deviations a full ci run ran but did not observe.

        Which of an entry's tests the ci draws reach depends on the draws, so strictness is
        per entry: a ci run over every norm and property (`full_run`) must see one of its
        tests fail. Entries with `ci_reaches = false` are watched by their reproduction."""
        if profile != "ci" or not full_run:
            return []
        gone = [
            t for t in self.tallies if t.ran and not t.failed and t.entry.get("ci_reaches", True)
        ]
        for tally in gone:
            tally.no_longer_observed = True
        return gone

    def records(self) -> list[dict]:
        """Every deviation as the report shows it."""
        return [t.record() for t in self.tallies]
