"""Memory: what each load and store did (Wasm).

A range probe on every load and store: how often it ran, how many bytes it moved, and the
lowest and highest effective address it touched, kept inline in the module (no event per
access). Where operand events of the same sites exist instead, their addresses give the
range. The ``memory_sites`` view gives the same per site to SQL.
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

KINDS = ("load", "store")


class Access(NamedTuple):
    func: str
    offset: int
    kind: str  # 'load' or 'store'
    size: int  # bytes per access
    count: int
    bytes: int
    lowest: int | None  # lowest and highest address touched
    highest: int | None


@dataclass
class MemoryAccess:
    """Loads and stores that ran, most bytes first; in a summary, only the totals."""

    sites: list[Access]
    brief: bool = False

    def totals(self, kind: str) -> tuple[int, int]:
        """(accesses, bytes) of one kind."""
        of = [a for a in self.sites if a.kind == kind]
        return sum(a.count for a in of), sum(a.bytes for a in of)


class Memory(Analysis):
    name = "memory"
    description = "Wasm loads and stores per site: count, bytes and address range"

    def probes(self, events: frozenset[str]) -> Iterable[Probe]:
        if "load" in events:
            yield Probe("load", Kind.RANGE)
            yield Probe("store", Kind.RANGE)

    def summary(self, run: dict[str, Any], tables: Tables) -> str | None:
        from probe.reports import render

        return render(self, result(rows.from_tables(tables, KINDS), {}, brief=True), "text")

    def report(self, db: Database, run_id: str, fmt: str = "text") -> str:
        from probe.reports import render

        return render(self, result(rows.from_db(db, run_id, KINDS), _ranges(db, run_id)), fmt)


def _ranges(db: Database, run_id: str) -> dict[int, tuple[int, int]]:
    """Lowest and highest address per load/store site from operand events, where a trace
    recorded them."""
    found = db.execute(
        "SELECT e.site_id, min(e.value), max(e.value) FROM events e JOIN sites s "
        "USING (run_id, site_id) WHERE e.run_id = ? AND s.kind IN ('load', 'store') GROUP BY 1",
        [run_id],
    ).fetchall()
    return {site: (low, high) for site, low, high in found}


def result(
    sites: Iterable[Site], ranges: dict[int, tuple[int, int]], brief: bool = False
) -> MemoryAccess:
    """Accesses per site from the range probes, or ``ranges`` of their operand events."""
    found = []
    for s in sites:
        count = s.count or 0
        if not count:
            continue
        low, high = s.low, s.high
        if low is None and s.site_id in ranges:
            low, high = ranges[s.site_id]
        top = None if high is None else high + s.size - 1
        found.append(Access(s.func, s.offset, s.kind, s.size, count, count * s.size, low, top))
    found.sort(key=lambda a: (-a.bytes, a.offset))
    return MemoryAccess(found, brief)
