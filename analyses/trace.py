"""Trace: the ordered events of chosen sites, with their values.

With no ``--sites``: every basic-block entry (Wasm) or every line (Python), in
execution order. ``--sites`` narrows or widens it; each value is one of

* ``func:GLOB`` — only sites in functions whose names match (``func:main``);
* an event class — ``block``, ``line``, ``branch`` (the arm taken, with the
  condition), ``call``, ``func`` (arguments), ``return`` (return values),
  ``load``/``store`` (addresses), ``instr``.

Results: the view ``trace`` (events joined to their sites; order by ``seq``).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

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
    formats = ("text", "json", "jsonl")

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
        n = run.get("streamed", {}).get("events", 0)
        return f"trace: {n:,} events recorded: probe report trace"

    def report(self, db: Database, run_id: str, fmt: str = "text") -> str:
        self.check_format(fmt)
        # Only what this trace asked for: other analyses of the run may have streamed events.
        row = db.execute("SELECT engine, options FROM runs WHERE run_id = ?", [run_id]).fetchone()
        asked = Trace(**json.loads(row[1] or "{}")) if row else self
        kinds = asked.classes or ["block" if row and row[0] == "wasm" else "line"]
        where = f"run_id = ? AND kind IN ({', '.join('?' * len(set(kinds)))})"
        params: list[Any] = [run_id, *sorted(set(kinds))]
        if asked.funcs:
            where += " AND (" + " OR ".join("func GLOB ?" for _ in asked.funcs) + ")"
            params += asked.funcs
        query = (
            'SELECT seq, kind, unit, func, line, "offset", target, value, detail FROM trace '
            f"WHERE {where} ORDER BY seq"
        )
        keys = ("seq", "kind", "unit", "func", "line", "offset", "target", "value", "detail")
        if fmt in ("json", "jsonl"):
            (count,) = db.execute(f"SELECT count(*) FROM trace WHERE {where}", params).fetchone()
            if count > _MOST_IN_A_REPORT:
                raise UsageError(
                    f"the trace has {count:,} events, too many for one report: query the trace "
                    "view (probe query), or probe export --format parquet"
                )
            rows = db.execute(query, params).fetchall()
            records = [
                {k: v for k, v in zip(keys, row, strict=True) if v is not None} for row in rows
            ]
            if fmt == "jsonl":
                return "\n".join(json.dumps(r) for r in records)
            return json.dumps(records, indent=2)
        total = db.execute(f"SELECT count(*) FROM trace WHERE {where}", params).fetchone()
        rows = db.execute(query + f" LIMIT {_SHOWN}", params).fetchall()
        if not rows:
            return "No events recorded."
        lines = [f"{'Seq':>10}  {'Kind':<7} {'Where':<40} {'Value':>20}"]
        for seq, kind, unit, func, line, offset, _, value, detail in rows:
            where = (
                f"{func} {offset:#x}"
                if offset is not None
                else f"{func} {os.path.basename(unit)}:{line}"
            )
            shown = detail if detail is not None else ("" if value is None else str(value))
            if kind in ("block", "instr", "line"):
                shown = ""  # these events have no operand: their order is the point
            lines.append(f"{seq:>10}  {kind:<7} {where[:40]:<40} {shown[:20]:>20}")
        count = total[0] if total else len(rows)
        if count > len(rows):
            lines.append(f"({count - len(rows):,} more events: probe report trace --format jsonl)")
        return "\n".join(lines)
