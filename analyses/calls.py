"""Calls: the dynamic call graph, with how often each edge was taken.

Wasm: a count on every call site (a direct call's callee is in the module) and,
for ``call_indirect``, the callee each call reached, as an operand event (the
engine records the function that was entered, or -1 for an imported one).
Python: every call between functions in scope, by caller line, counted.
Results: the view ``call_edges``; a function's entries are its ``func`` site count.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from probe.probes import Kind, Probe

from . import Analysis, Tables

if TYPE_CHECKING:
    from probe.storage import Database


class Calls(Analysis):
    name = "calls"
    description = "dynamic call graph: caller -> callee with counts, indirect calls resolved"
    formats = ("text", "json", "dot")

    def probes(self, events: frozenset[str]) -> Iterable[Probe]:
        yield Probe("func", Kind.COUNT)
        yield Probe("call", Kind.OPERAND if "block" in events else Kind.COUNT)

    def summary(self, run: dict[str, Any], tables: Tables) -> str | None:
        sites, counts = tables.get("sites", {}), tables.get("counts", {})
        ran = dict(
            zip(map(int, counts.get("site_id", [])), map(int, counts.get("count", [])), strict=True)
        )
        rows = list(
            zip(
                map(int, sites.get("site_id", [])),
                sites.get("kind", []),
                sites.get("func", []),
                sites.get("target", []),
                strict=True,
            )
        )
        names = {int(t): f for _, k, f, t in rows if k in ("func", "import") and t is not None}
        edges: dict[tuple[str, str], int] = {}
        indirect = 0
        for sid, kind, func, target in rows:
            if kind != "call" or not ran.get(sid):
                continue
            if target is None:
                indirect += ran[sid]
                continue
            key = (func, names.get(int(target), f"func[{target}]"))
            edges[key] = edges.get(key, 0) + ran[sid]
        if not edges and not indirect:
            return "No calls measured."
        top = sorted(edges.items(), key=lambda e: -e[1])[:10]
        lines = [f"{'Caller':<30} {'Callee':<30} {'Calls':>12}"]
        lines += [f"{a[:30]:<30} {b[:30]:<30} {c:>12,}" for (a, b), c in top]
        if len(edges) > len(top):
            lines.append(f"({len(edges) - len(top)} more edges: probe report calls)")
        if indirect:
            lines.append(f"{indirect:,} indirect calls, their callees in: probe report calls")
        return "\n".join(lines)

    def report(self, db: Database, run_id: str, fmt: str = "text") -> str:
        self.check_format(fmt)
        edges = db.execute(
            "SELECT caller, callee, sum(calls)::BIGINT, bool_or(indirect) FROM call_edges "
            "WHERE run_id = ? GROUP BY caller, callee ORDER BY 3 DESC, 1, 2",
            [run_id],
        ).fetchall()
        if fmt == "json":
            return json.dumps(
                [{"caller": a, "callee": b, "calls": c, "indirect": i} for a, b, c, i in edges],
                indent=2,
            )
        if fmt == "dot":
            out = ["digraph calls {"]
            for a, b, c, i in edges:
                style = ", style=dashed" if i else ""
                out.append(f'  "{_esc(a)}" -> "{_esc(b)}" [label="{c}"{style}];')
            return "\n".join([*out, "}"])
        if not edges:
            return "No calls measured."
        entries = dict(
            db.execute(
                "SELECT s.func, sum(c.count)::BIGINT FROM sites s JOIN counts c "
                "USING (run_id, site_id) WHERE s.run_id = ? AND s.kind = 'func' GROUP BY 1",
                [run_id],
            ).fetchall()
        )
        lines = [f"{'Caller':<32} {'Callee':<32} {'Calls':>14}  "]
        for a, b, c, i in edges:
            lines.append(f"{a[:32]:<32} {b[:32]:<32} {c:>14,}  {'indirect' if i else ''}")
        lines.append("")
        lines.append(
            f"{len(edges)} edges; {len(entries)} functions entered {sum(entries.values()):,} times"
        )
        return "\n".join(lines)


def _esc(name: str) -> str:
    return name.replace("\\", "\\\\").replace('"', '\\"')
