"""Memory: what each load and store did (Wasm).

A range probe on every load and store: how often it ran, how many bytes it
moved, and the lowest and highest effective address it touched, kept
inline in the module (no event per access). Results: the view
``memory_sites``; where operand events of the same sites exist, their
addresses give the range.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from probe.probes import Kind, Probe

from . import Analysis, Tables

if TYPE_CHECKING:
    from probe.storage import Database


class Memory(Analysis):
    name = "memory"
    description = "Wasm loads and stores per site: count, bytes and address range"
    formats = ("text", "json")

    def probes(self, events: frozenset[str]) -> Iterable[Probe]:
        if "load" in events:
            yield Probe("load", Kind.RANGE)
            yield Probe("store", Kind.RANGE)

    def summary(self, run: dict[str, Any], tables: Tables) -> str | None:
        sites, counts = tables.get("sites", {}), tables.get("counts", {})
        kinds, sizes = list(sites.get("kind", [])), list(sites.get("size", []))
        moved = {"load": [0, 0], "store": [0, 0]}
        for sid, count in zip(counts.get("site_id", []), counts.get("count", []), strict=True):
            kind = kinds[int(sid)]
            if kind in moved:
                moved[kind][0] += int(count)
                moved[kind][1] += int(count) * int(sizes[int(sid)])
        return (
            f"memory: {moved['load'][0]:,} loads ({moved['load'][1]:,} bytes), "
            f"{moved['store'][0]:,} stores ({moved['store'][1]:,} bytes): probe report memory"
        )

    def report(self, db: Database, run_id: str, fmt: str = "text") -> str:
        self.check_format(fmt)
        rows = db.execute(
            'SELECT func, "offset", kind, size, count, bytes, lowest, highest FROM memory_sites '
            'WHERE run_id = ? AND count > 0 ORDER BY bytes DESC, "offset"',
            [run_id],
        ).fetchall()
        if fmt == "json":
            keys = ("func", "offset", "kind", "size", "count", "bytes", "lowest", "highest")
            return json.dumps([dict(zip(keys, r, strict=True)) for r in rows], indent=2)
        if not rows:
            return "No loads or stores ran."
        per_func: dict[str, list[int]] = {}
        for func, _, kind, _, count, moved, _, _ in rows:
            f = per_func.setdefault(func, [0, 0, 0])
            f[0 if kind == "load" else 1] += count
            f[2] += moved
        lines = [f"{'Function':<32} {'Loads':>14} {'Stores':>14} {'Bytes':>16}"]
        for func, (loads, stores, moved) in sorted(per_func.items(), key=lambda f: -f[1][2]):
            lines.append(f"{func[:32]:<32} {loads:>14,} {stores:>14,} {moved:>16,}")
        lines.append("")
        lines.append(f"{'Busiest sites':<32} {'At':>10} {'Kind':>6} {'Runs':>14} {'Addresses':>23}")
        for func, offset, kind, _, count, _, low, high in rows[:20]:
            span = f"{low:#x}-{high:#x}" if low is not None else "?"
            lines.append(f"{func[:32]:<32} {offset:>#10x} {kind:>6} {count:>14,} {span:>23}")
        return "\n".join(lines)
