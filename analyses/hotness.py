"""Hotness: how often code ran.

Wasm: a count on every function entry and basic block; the report ranks
functions by executed instructions (block counts times block sizes) and
lists the hottest blocks. Python: a count on every line.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from probe.errors import UsageError
from probe.probes import Kind, Probe

from . import Analysis, Tables
from .coverage import (
    FunctionCoverage,
    wasm_functions,
    wasm_lcov,
    wasm_rows_from_db,
    wasm_rows_from_tables,
)

if TYPE_CHECKING:
    from probe.storage import Database


class Hotness(Analysis):
    name = "hotness"
    description = "execution counts per function and basic block (Wasm) or line (Python)"
    formats = ("text", "json", "lcov")

    def probes(self, events: frozenset[str]) -> Iterable[Probe]:
        if "block" in events:
            yield Probe("func", Kind.COUNT)
            yield Probe("block", Kind.COUNT)
        else:
            yield Probe("line", Kind.COUNT)

    def summary(self, run: dict[str, Any], tables: Tables) -> str | None:
        if run.get("engine") != "wasm":
            return None
        return _text(wasm_functions(wasm_rows_from_tables(tables)), top=10)

    def report(self, db: Database, run_id: str, fmt: str = "text") -> str:
        self.check_format(fmt)
        engine = db.execute("SELECT engine FROM runs WHERE run_id = ?", [run_id]).fetchone()
        if engine and engine[0] != "wasm":
            if fmt == "lcov":
                raise UsageError("hotness LCOV is for Wasm runs; use coverage's for Python")
            rows = db.execute(
                "SELECT s.unit, s.line, c.count FROM sites s JOIN counts c USING (run_id, site_id) "
                "WHERE s.run_id = ? AND s.kind = 'line' "
                "ORDER BY c.count DESC, s.unit, s.line LIMIT 50",
                [run_id],
            ).fetchall()
            if fmt == "json":
                return json.dumps(
                    [{"unit": u, "line": n, "count": c} for u, n, c in rows], indent=2
                )
            return "\n".join(f"{c:>14,}  {u}:{n}" for u, n, c in rows) or "No data to report."
        funcs = wasm_functions(wasm_rows_from_db(db, run_id))
        if fmt == "lcov":
            module = db.execute("SELECT target FROM runs WHERE run_id = ?", [run_id]).fetchone()
            return wasm_lcov(funcs, module[0] if module else "")
        if fmt == "json":
            return json.dumps(
                {
                    f.name: {
                        "offset": f.offset,
                        "calls": f.entered,
                        "instructions_executed": _executed(f),
                        "blocks": {str(o): c for o, c in sorted(f.blocks.items()) if c},
                    }
                    for f in funcs.values()
                },
                indent=2,
            )
        return _text(funcs)


def _executed(f: FunctionCoverage) -> int:
    return sum(c * f.sizes.get(o, 0) for o, c in f.blocks.items())


def _text(funcs: dict[str, FunctionCoverage], top: int = 25) -> str:
    if not funcs:
        return "No data to report."
    ranked = sorted(funcs.values(), key=_executed, reverse=True)
    total = sum(_executed(f) for f in ranked) or 1
    lines = [f"{'Function':<32} {'Calls':>14} {'Instructions':>16} {'Share':>7}"]
    lines.append("-" * len(lines[0]))
    for f in ranked[:top]:
        share = 100.0 * _executed(f) / total
        lines.append(f"{f.name[:32]:<32} {f.entered:>14,} {_executed(f):>16,} {share:>6.1f}%")
    blocks = sorted(
        ((c * f.sizes.get(o, 0), c, o, f.name) for f in ranked for o, c in f.blocks.items() if c),
        reverse=True,
    )[:10]
    lines.append("")
    lines.append(f"{'Hottest blocks':<32} {'Runs':>14} {'Instructions':>16} {'Offset':>10}")
    for executed, count, offset, name in blocks:
        lines.append(f"{name[:32]:<32} {count:>14,} {executed:>16,} {offset:>#10x}")
    return "\n".join(lines)
