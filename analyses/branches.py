"""Branches: how often each arm of each branch was taken.

A count probe on every branch arm. Wasm: the arms of ``if`` (then, else, or the missing else),
``br_if`` (taken, not taken) and ``br_table`` (one row per distinct target: a histogram).
Python: the arcs of every branch line, as coverage.py names them (from line, to line).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from probe.probes import Kind, Probe

from . import Analysis, Tables

if TYPE_CHECKING:
    from probe.storage import Database

# One arm: (unit, func, where, target, count): where = Wasm offset or Python line.
Arm = tuple[str, str, int, int | None, int]


class Branches(Analysis):
    name = "branches"
    description = "taken counts of every branch arm (br_if, if, br_table; Python arcs)"
    formats = ("text", "json")

    def probes(self, events: frozenset[str]) -> Iterable[Probe]:
        yield Probe("branch", Kind.COUNT)

    def summary(self, run: dict[str, Any], tables: Tables) -> str | None:
        sites, counts = tables.get("sites", {}), tables.get("counts", {})
        hit = dict(
            zip(map(int, counts.get("site_id", [])), map(int, counts.get("count", [])), strict=True)
        )
        wasm = run.get("engine") == "wasm"
        arms = [
            (
                unit,
                func,
                int(off if wasm else line),
                None if t is None else int(t),
                hit.get(int(sid), 0),
            )
            for sid, kind, unit, func, line, off, t in zip(
                sites.get("site_id", []),
                sites.get("kind", []),
                sites.get("unit", []),
                sites.get("func", []),
                sites.get("line", [None] * len(sites.get("kind", []))),
                sites.get("offset", [None] * len(sites.get("kind", []))),
                sites.get("target", []),
                strict=True,
            )
            if kind == "branch"
        ]
        return _text(arms, wasm, top=10)

    def report(self, db: Database, run_id: str, fmt: str = "text") -> str:
        self.check_format(fmt)
        engine = db.execute("SELECT engine FROM runs WHERE run_id = ?", [run_id]).fetchone()
        wasm = bool(engine and engine[0] == "wasm")
        where = 's."offset"' if wasm else "s.line"
        arms = db.execute(
            f"SELECT s.unit, s.func, {where}, s.target, coalesce(c.count, 0) FROM sites s "
            "LEFT JOIN counts c USING (run_id, site_id) "
            f"WHERE s.run_id = ? AND s.kind = 'branch' ORDER BY 1, 3, 4",
            [run_id],
        ).fetchall()
        if fmt == "json":
            grouped: dict[str, list[dict[str, Any]]] = {}
            for unit, func, at, target, count in arms:
                grouped.setdefault(f"{unit}:{at}", []).append(
                    {"func": func, "target": target, "count": count}
                )
            return json.dumps(grouped, indent=2)
        return _text(arms, wasm)


def _text(arms: list[Arm], wasm: bool, top: int | None = None) -> str:
    if not arms:
        return "No branches measured."
    by_branch: dict[tuple[str, int], list[Arm]] = {}
    for arm in arms:
        by_branch.setdefault((arm[0], arm[2]), []).append(arm)
    ranked = sorted(by_branch.values(), key=lambda a: -sum(x[4] for x in a))
    one_sided = sum(1 for a in ranked if sum(1 for x in a if x[4]) == 1 and len(a) > 1)
    never = sum(1 for a in ranked if not any(x[4] for x in a))
    lines = [f"{len(ranked)} branches: {never} never ran, {one_sided} always went one way"]
    lines.append(f"{'Function':<28} {'At':>16} {'Arm to':>10} {'Taken':>14}")
    for arms_of in ranked[:top] if top else ranked:
        for unit, func, at, target, count in arms_of:
            where = f"{at:#x}" if wasm else f"{os.path.basename(unit)}:{at}"
            to = (
                "?"
                if target is None
                else (f"{target:#x}" if wasm else (str(target) if target > 0 else "exit"))
            )
            lines.append(f"{func[:28]:<28} {where:>16} {to:>10} {count:>14,}")
    if top and len(ranked) > top:
        lines.append(f"({len(ranked) - top} more branches: probe report branches)")
    return "\n".join(lines)
