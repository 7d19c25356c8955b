"""Calls: the dynamic call graph, with how often each edge was taken.

Wasm: a count on every call site (a direct call's callee is in the module) and, for
``call_indirect``, the callee each call reached, as an operand event (the engine records the
function that was entered, or -1 for an imported one). Python: every call between functions
in scope, by caller line, counted. A function's entries are its ``func`` site's count.

The result is defined here once; the ``call_edges`` view (storage/schema.py) gives the same
edges to SQL, per call site (tests/test_analyses.py holds the two to the same answer).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from probe.probes import Kind, Probe

from . import Analysis, Tables, rows
from .rows import Site

if TYPE_CHECKING:
    from probe.storage import Database

KINDS = ("call", "func", "import")
_BRIEF = 10  # edges a summary lists

# Indirect calls resolved: {call site id: {callee number: calls}}.
Resolved = dict[int, dict[int, int]]


@dataclass
class CallGraph:
    """Edges (caller, callee, calls, indirect), most taken first; functions' entries."""

    edges: list[tuple[str, str, int, bool]]
    entries: dict[str, int]
    unresolved: int = 0  # indirect calls whose callees are not known (a summary: not read)
    brief: bool = False  # a summary: the ten most taken edges
    more: int = 0  # edges beyond those listed


class Calls(Analysis):
    name = "calls"
    description = "dynamic call graph: caller -> callee with counts, indirect calls resolved"

    def probes(self, events: frozenset[str]) -> Iterable[Probe]:
        yield Probe("func", Kind.COUNT)
        yield Probe("call", Kind.OPERAND if "block" in events else Kind.COUNT)

    def summary(self, run: dict[str, Any], tables: Tables) -> str | None:
        from probe.reports import render

        # The events that resolve indirect calls were streamed to the journal, not kept.
        graph = result(rows.from_tables(tables, KINDS), None, brief=True)
        return render(self, graph, "text")

    def report(self, db: Database, run_id: str, fmt: str = "text") -> str:
        from probe.reports import render

        sites = rows.from_db(db, run_id, KINDS)
        return render(self, result(sites, resolved(db, run_id, sites)), fmt)


def resolved(db: Database, run_id: str, sites: Iterable[Site]) -> Resolved:
    """The callee of every indirect call, from its operand events."""
    indirect = [s.site_id for s in sites if s.kind == "call" and s.target is None]
    found: Resolved = {}
    if not indirect:
        return found
    for site, callee, calls in db.execute(
        "SELECT site_id, value, count(*) FROM events WHERE run_id = ? AND site_id IN "
        f"({', '.join('?' * len(indirect))}) GROUP BY ALL",
        [run_id, *indirect],
    ).fetchall():
        found.setdefault(site, {})[callee] = calls
    return found


def result(sites: Iterable[Site], resolved: Resolved | None, brief: bool = False) -> CallGraph:
    """The call graph from call and function sites; ``resolved``: indirect calls' callees
    (None where they are not at hand: their calls are counted as unresolved)."""
    sites = list(sites)
    names = {s.target: s.func for s in sites if s.kind in ("func", "import")}

    def callee(number: int) -> str:
        if number in names:
            return names[number]
        return "<import>" if number < 0 else f"func[{number}]"

    edges: dict[tuple[str, str], list] = {}
    entries: dict[str, int] = {}
    unresolved = 0
    for s in sites:
        if s.kind == "func" and s.count is not None:
            entries[s.func] = entries.get(s.func, 0) + s.count
        if s.kind != "call":
            continue
        if s.target is not None:
            taken = [(s.target, s.count)] if s.count is not None else []
            indirect = False
        elif resolved is None:
            unresolved += s.count or 0
            continue
        else:
            taken = list(resolved.get(s.site_id, {}).items())
            indirect = True
        for number, calls in taken:
            edge = edges.setdefault((s.func, callee(number)), [0, False])
            edge[0] += calls
            edge[1] = edge[1] or indirect
    listed = sorted(
        ((a, b, c, i) for (a, b), (c, i) in edges.items()), key=lambda e: (-e[2], e[0], e[1])
    )
    shown = listed[:_BRIEF] if brief else listed
    return CallGraph(shown, entries, unresolved, brief, len(listed) - len(shown))
