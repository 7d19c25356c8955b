"""Branches: how often each arm of each branch was taken.

A count probe on every branch arm. Wasm: the arms of ``if`` (then, else, or the missing else),
``br_if`` (taken, not taken) and ``br_table`` (one row per distinct target: a histogram).
Python: the arcs of every branch line, as coverage.py names them (from line, to line).

A Wasm module with DWARF line tables places each branch on its source line; the report then
holds the branches in the user's source files (as coverage selects them: ``--source``,
``--include``, ``--omit``; libc's out) and says how many others it left out.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NamedTuple

from probe.probes import Kind, Probe

from . import Analysis, Tables, rows
from .rows import Site

if TYPE_CHECKING:
    from probe.storage import Database


class Arm(NamedTuple):
    unit: str
    func: str
    at: int  # Wasm: the branch's offset; Python: its line
    target: int | None  # where the arm leads (Python: negative = exit of the code at -line)
    count: int
    source: str | None = None  # Wasm with DWARF: the branch's source file and line
    line: int | None = None


@dataclass
class BranchArms:
    """Every arm of every branch, by file, place and target."""

    arms: list[Arm]
    wasm: bool
    brief: bool = False  # a summary: the ten busiest branches
    elsewhere: int = 0  # Wasm with DWARF: branches outside the user's source files, left out

    def branches(self) -> list[list[Arm]]:
        """The arms of each branch, branches by how often they ran, most first."""
        by_branch: dict[tuple[str, int], list[Arm]] = {}
        for arm in self.arms:
            by_branch.setdefault((arm.unit, arm.at), []).append(arm)
        return sorted(by_branch.values(), key=lambda a: -sum(x.count for x in a))


class Branches(Analysis):
    name = "branches"
    description = "taken counts of every branch arm (br_if, if, br_table; Python arcs)"

    def probes(self, events: frozenset[str]) -> Iterable[Probe]:
        yield Probe("branch", Kind.COUNT)

    def summary(self, run: dict[str, Any], tables: Tables) -> str | None:
        from probe.reports import render

        sites = rows.from_tables(tables, ("branch",))
        return render(self, result(run, sites, brief=True), "text")

    def report(self, db: Database, run_id: str, fmt: str = "text") -> str:
        from probe.reports import render

        return render(self, result(db.run(run_id), rows.from_db(db, run_id, ("branch",))), fmt)


def result(run: dict[str, Any], sites: Iterable[Site], brief: bool = False) -> BranchArms:
    wasm = run.get("engine") == "wasm"
    arms = [
        Arm(s.unit, s.func, s.offset, s.target, s.count or 0, s.source, s.line)
        if wasm
        else Arm(s.unit, s.func, s.line, s.target, s.count or 0)
        for s in sites
    ]
    elsewhere = 0
    if any(a.source is not None for a in arms):  # Wasm with DWARF: the user's files
        elsewhere = len({a.at for a in arms if a.source is None})
        arms = [a for a in arms if a.source is not None]
    arms.sort(key=lambda a: (a.unit, a.at, a.target is None, a.target or 0))
    return BranchArms(arms, wasm, brief, elsewhere)
