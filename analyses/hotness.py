"""Hotness: how often code ran.

Wasm: a count on every function entry and basic block; the result ranks functions by
executed instructions (block counts times block sizes) and finds the hottest blocks; with
DWARF line tables, the busiest source lines and where each function is in the source.
Python: a count on every line; the result is the busiest lines.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from probe.probes import Kind, Probe

from . import Analysis, Tables, rows
from .coverage import FunctionCoverage, source_files, wasm_functions
from .rows import Site

if TYPE_CHECKING:
    from probe.storage import Database

WASM_KINDS = ("func", "block", "line")
_LINES = 50  # the busiest lines a Python report lists


class Hotness(Analysis):
    name = "hotness"
    description = "execution counts per function and basic block (Wasm) or line (Python)"

    def probes(self, events: frozenset[str]) -> Iterable[Probe]:
        if "block" in events:
            yield Probe("func", Kind.COUNT)
            yield Probe("block", Kind.COUNT)
        else:
            yield Probe("line", Kind.COUNT)

    def summary(self, run: dict[str, Any], tables: Tables) -> str | None:
        if run.get("engine") != "wasm":
            return None  # coverage's summary says what ran; counts are for the report
        from probe.reports import render

        return render(self, result(run, rows.from_tables(tables, WASM_KINDS), brief=True), "text")

    def report(self, db: Database, run_id: str, fmt: str = "text") -> str:
        from probe.reports import render

        run = db.run(run_id)
        kinds = WASM_KINDS if run["engine"] == "wasm" else ("line",)
        return render(self, result(run, rows.from_db(db, run_id, kinds)), fmt)


@dataclass
class FunctionCounts:
    """A Wasm run's counts per function and block of ``module``."""

    functions: dict[str, FunctionCoverage]
    module: str
    brief: bool = False  # a summary: the ten hottest functions
    # With DWARF: the busiest source lines (file, line, count), most first, and each
    # function's first source line (name -> (file, line)).
    lines: list[tuple[str, int, int]] | None = None
    sources: dict[str, tuple[str, int]] | None = None

    def ranked(self) -> list[FunctionCoverage]:
        """Functions by instructions executed, most first."""
        return sorted(self.functions.values(), key=FunctionCoverage.executed, reverse=True)


@dataclass
class LineCounts:
    """A Python run's busiest lines: (file, line, count), most first."""

    lines: list[tuple[str, int, int]]


def result(run: dict[str, Any], sites: Iterable[Site], brief: bool = False) -> Any:
    if run.get("engine") == "wasm":
        sites = list(sites)
        found = FunctionCounts(wasm_functions(sites), run.get("target") or "", brief)
        at = [s for s in sites if s.kind == "line"]
        if at:
            per_line: dict[tuple[str, int], int] = {}
            for s in at:
                key = (s.unit, s.line)
                per_line[key] = max(per_line.get(key, 0), s.count or 0)
            found.sources = {}  # a function in several files (inline code): the first file's
            for unit, f in sorted(source_files(at).items()):
                for func, line in f.functions.items():
                    found.sources.setdefault(func, (unit, line))
            found.lines = sorted(
                ((u, n, c) for (u, n), c in per_line.items() if c),
                key=lambda r: (-r[2], r[0], r[1]),
            )[:_LINES]
        return found
    ran = sorted(
        ((s.unit, s.line, s.count) for s in sites if s.count is not None),
        key=lambda r: (-r[2], r[0], r[1]),
    )
    return LineCounts(ran[:_LINES])
