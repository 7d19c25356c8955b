"""Trace: the ordered events of chosen sites, with their values.

With no ``--sites``: every basic-block entry (Wasm) or every line (Python), in
execution order. ``--sites`` narrows or widens it; each value is one of

* ``func:GLOB`` — only sites in functions whose names match (``func:main``);
* an event class — ``block``, ``line``, ``branch`` (the arm taken, with the
  condition), ``call``, ``func`` (arguments), ``return`` (return values),
  ``load``/``store`` (addresses), ``instr``.

The result reads the view ``trace`` (events joined to their sites; order by ``seq``).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NamedTuple

from probe.errors import UsageError
from probe.probes import EVENTS, Kind, Probe, Site

from . import Analysis, Tables

if TYPE_CHECKING:
    from probe.storage import Database

_SHOWN = 50  # events the text report prints from the start
_MOST_IN_A_REPORT = 5_000_000  # a JSON report holds every event in memory


class Trace(Analysis):
    name = "trace"
    description = "ordered events of chosen sites with their values (--sites)"

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.classes: list[str] = []
        self.funcs: list[str] = []
        for spec in options.get("sites") or ():
            if spec.startswith("func:") and len(spec) > 5:
                self.funcs.append(spec[5:])
            elif spec in EVENTS:
                self.classes.append(spec)
            else:
                raise UsageError(f"--sites {spec!r}: give func:GLOB or one of {', '.join(EVENTS)}")

    def probes(self, events: frozenset[str]) -> Iterable[Probe]:
        default = "block" if "block" in events else "line"
        classes = [c for c in self.classes if c in events] or [default]
        for event in classes:
            if not self.funcs:
                yield Probe(event, Kind.OPERAND)
            for pattern in self.funcs:
                yield Probe(event, Kind.OPERAND, Site(event, None, func=pattern))

    def summary(self, run: dict[str, Any], tables: Tables) -> str | None:
        from probe.reports import render

        # The events were streamed to the journal, not kept: a summary has their number.
        return render(self, TraceEvents([], run.get("streamed", {}).get("events", 0), True), "text")

    def report(self, db: Database, run_id: str, fmt: str = "text") -> str:
        from probe.reports import check, render

        check(self, TraceEvents, fmt)  # before reading what may be millions of events
        return render(self, self.result(db, run_id, every=fmt != "text"), fmt)

    def result(self, db: Database, run_id: str, every: bool = True) -> TraceEvents:
        """The events this trace asked for (not other analyses' of the run): ``every`` one,
        or the first few, with how many there are."""
        run = db.run(run_id)
        asked = Trace(**run["options"])
        kinds = asked.classes or ["block" if run["engine"] == "wasm" else "line"]
        where = f"run_id = ? AND kind IN ({', '.join('?' * len(set(kinds)))})"
        params: list[Any] = [run_id, *sorted(set(kinds))]
        if asked.funcs:
            where += " AND (" + " OR ".join("func GLOB ?" for _ in asked.funcs) + ")"
            params += asked.funcs
        (total,) = db.execute(f"SELECT count(*) FROM trace WHERE {where}", params).fetchone()
        if every and total > _MOST_IN_A_REPORT:
            raise UsageError(
                f"the trace has {total:,} events, too many for one report: query the trace "
                "view (probe query), or probe export --format parquet"
            )
        query = (
            'SELECT seq, kind, unit, func, line, "offset", target, value, detail FROM trace '
            f"WHERE {where} ORDER BY seq" + ("" if every else f" LIMIT {_SHOWN}")
        )
        return TraceEvents([Event(*row) for row in db.execute(query, params).fetchall()], total)


class Event(NamedTuple):
    seq: int
    kind: str
    unit: str
    func: str
    line: int | None
    offset: int | None
    target: int | None
    value: int | None
    detail: str | None


@dataclass
class TraceEvents:
    """Events in execution order (all, or the first of ``total``)."""

    events: list[Event]
    total: int
    brief: bool = False  # a summary: only the number
