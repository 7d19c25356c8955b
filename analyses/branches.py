"""Branches: how often each arm of each branch was taken.

A count probe on every branch arm. Wasm: the arms of ``if`` (then, else, or the missing else),
``br_if`` (taken, not taken) and ``br_table`` (one row per distinct target: a histogram).
Python: the arcs of every branch line, as coverage.py names them (from line, to line).
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


@dataclass
class BranchArms:
    """Every arm of every branch, by file, place and target."""

    arms: list[Arm]
    wasm: bool
    brief: bool = False  # a summary: the ten busiest branches

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
        Arm(s.unit, s.func, s.offset if wasm else s.line, s.target, s.count or 0) for s in sites
    ]
    arms.sort(key=lambda a: (a.unit, a.at, a.target is None, a.target or 0))
    return BranchArms(arms, wasm, brief)
