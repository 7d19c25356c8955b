"""Analyses: which probes a question needs, and how recorded rows answer it.

An analysis never touches an engine. It names probes (``probes()``), and answers from what
they left: right after a run from the tables still in memory (``summary()``), or later from
the database (``report()``). A built-in analysis defines its answer once, as a result model
built from rows of either source (``rows.py``), and leaves the writing to a report format
(``probe.reports``: one module per format). probe's own analyses are named in ``BUILT_IN``;
other packages' are found through the entry-point group ``probe.analyses``, which is read
only for a name that is not built in: ``importlib.metadata`` scans every installed
distribution, a cost `probe run` would pay before every program (issue 14's 0.04 s).
"""

from __future__ import annotations

from collections.abc import Iterable

from probe.errors import UnknownAnalysis
from probe.probes import Probe

from .rows import Tables

TYPE_CHECKING = False  # typing's, without importing typing on a run's path (architecture)
if TYPE_CHECKING:
    from typing import Any, ClassVar

    from probe.storage import Database

__all__ = ["BUILT_IN", "GROUP", "Analysis", "Report", "Tables", "available", "load"]

# A report: text, a binary file (coverage.py's data), or a folder's files by name (HTML).
Report = str | bytes | dict[str, bytes]


class Analysis:
    """Base class of every analysis, built in or installed."""

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""

    def __init__(self, **options: Any) -> None:
        self.options = options

    def probes(self, events: frozenset[str]) -> Iterable[Probe]:
        """The probes this analysis needs in a run whose engine can probe ``events``."""
        raise NotImplementedError

    def tables(self) -> Tables:
        """Tables this analysis gathered itself while the program ran (in callback probes):
        {name: {column: values}}. Each is stored as table ``name`` with a run_id column,
        created from the first rows' types; never a name of the SQL contract."""
        return {}

    def summary(self, run: dict[str, Any], tables: Tables) -> str | None:
        """A short text printed when a run ends, from the run's own tables (``run``: its
        header, as ``Database.run`` gives it)."""
        return None

    def report(
        self, db: Database, run_id: str, fmt: str = "text"
    ) -> str | bytes | dict[str, bytes]:
        """The full report of a stored run in format ``fmt`` (built-ins: a result model
        written by probe.reports, which refuses a format it can't write; a UsageError)."""
        raise NotImplementedError

    def failure(self) -> str | None:
        """Why the run last summarized or reported falls short of what the user asked of it
        (coverage's fail_under), in a line; None if it doesn't. probe exits 2 then."""
        return None


GROUP = "probe.analyses"  # the entry-point group of other packages' analyses

BUILT_IN = {  # name -> module:class, imported only when run or reported
    "coverage": "probe.analyses.coverage:Coverage",
    "hotness": "probe.analyses.hotness:Hotness",
    "branches": "probe.analyses.branches:Branches",
    "calls": "probe.analyses.calls:Calls",
    "memory": "probe.analyses.memory:Memory",
    "trace": "probe.analyses.trace:Trace",
    "states": "probe.analyses.states:States",
    "hotpaths": "probe.analyses.hotpaths:HotPathsAnalysis",
}


def _built_in(name: str) -> type[Analysis]:
    import importlib

    module, _, cls = BUILT_IN[name].partition(":")
    return getattr(importlib.import_module(module), cls)


def available() -> dict[str, type[Analysis]]:
    """Every analysis installed: probe's own and other packages' (a broken one is left out;
    a package's analysis can't take a built-in name)."""
    from importlib.metadata import entry_points

    found = {name: _built_in(name) for name in BUILT_IN}
    for ep in entry_points(group=GROUP):
        if ep.name not in found:
            try:
                found[ep.name] = ep.load()
            except Exception:  # noqa: BLE001 - a broken plugin must not break probe
                continue
    return found


def load(name: str) -> type[Analysis]:
    """The analysis named ``name`` (only its module is imported)."""
    if name in BUILT_IN:
        return _built_in(name)
    from importlib.metadata import entry_points

    found = entry_points(group=GROUP, name=name)
    if not found:
        known = sorted({*BUILT_IN, *(ep.name for ep in entry_points(group=GROUP))})
        raise UnknownAnalysis(f"unknown analysis {name!r} (available: {', '.join(known)})")
    return next(iter(found)).load()
