"""JSON documents. Python coverage has coverage.py's layout (format 3: ``meta``, ``files`` →
``executed_lines``, ``missing_lines``, ``excluded_lines``, branches, ``summary``; ``totals``),
so that tools reading coverage.py's JSON read ours."""

from __future__ import annotations

import json
import time
from functools import singledispatch
from typing import Any

from probe import __version__
from probe.analyses.branches import BranchArms
from probe.analyses.calls import CallGraph
from probe.analyses.coverage import FileCoverage, LineCoverage, WasmCoverage, display
from probe.analyses.hotness import FunctionCounts, LineCounts
from probe.analyses.memory import MemoryAccess
from probe.analyses.trace import TraceEvents


@singledispatch
def render(result: object) -> str:
    raise NotImplementedError(type(result).__name__)


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S")


@render.register
def _(result: LineCoverage) -> str:
    files, branch = result.files, result.branch
    out_files = {}
    for path in sorted(files, key=result.relative):
        f = files[path]
        entry: dict[str, Any] = {
            "executed_lines": sorted(f.executed),
            "summary": _summary(result, [f]),
            "missing_lines": sorted(f.missing),
            "excluded_lines": sorted(f.excluded),
        }
        if branch:
            entry["executed_branches"] = [list(a) for a in sorted(f.arcs_hit)]
            entry["missing_branches"] = [list(a) for a in sorted(f.arcs_missed)]
        out_files[result.relative(path)] = entry
    doc = {
        "meta": {
            "format": 3,
            "version": __version__,
            "timestamp": _now(),
            "branch_coverage": branch,
            "show_contexts": False,
            "tool": "probe",
        },
        "files": out_files,
        "totals": _summary(result, list(files.values())),
    }
    return json.dumps(doc, indent=4)


def _summary(result: LineCoverage, fs: list[FileCoverage]) -> dict[str, Any]:
    covered = sum(len(f.executed) for f in fs)
    stmts = sum(f.statements for f in fs)
    pc_stmts = 100.0 * covered / stmts if stmts else 100.0
    pc = result.percent(fs)
    out: dict[str, Any] = {
        "covered_lines": covered,
        "num_statements": stmts,
        "percent_covered": pc,
        "percent_covered_display": display(pc),
        "missing_lines": stmts - covered,
        "excluded_lines": sum(len(f.excluded) for f in fs),
        "percent_statements_covered": pc_stmts,
        "percent_statements_covered_display": display(pc_stmts),
    }
    if result.branch:
        nb = sum(f.branches for f in fs)
        hit = sum(f.covered_branches for f in fs)
        pc_br = 100.0 * hit / nb if nb else 100.0
        out.update(
            num_branches=nb,
            num_partial_branches=sum(len(f.partial_lines()) for f in fs),
            covered_branches=hit,
            missing_branches=nb - hit,
            percent_branches_covered=pc_br,
            percent_branches_covered_display=display(pc_br),
        )
    return out


@render.register
def _(result: WasmCoverage) -> str:
    out = {}
    for f in sorted(result.functions.values(), key=lambda f: f.offset):
        ci, ti = f.instructions()
        out[f.name] = {
            "offset": f.offset,
            "entered": bool(f.entered),
            "blocks": len(f.blocks),
            "covered_blocks": f.covered_blocks(),
            "missing_blocks": sorted(o for o, c in f.blocks.items() if not c),
            "instructions": ti,
            "covered_instructions": ci,
        }
    ci = sum(f["covered_instructions"] for f in out.values())
    ti = sum(f["instructions"] for f in out.values())
    doc = {
        "meta": {
            "format": 1,
            "tool": "probe",
            "version": __version__,
            "engine": "wasm",
            "timestamp": _now(),
        },
        "module": result.module,
        "functions": out,
        "files": {
            result.relative(path): _source_file(result, f)
            for path, f in sorted(result.sources.items())
        },
        "totals": {
            "functions": len(out),
            "covered_functions": sum(1 for f in out.values() if f["entered"]),
            "blocks": sum(f["blocks"] for f in out.values()),
            "covered_blocks": sum(f["covered_blocks"] for f in out.values()),
            "instructions": ti,
            "covered_instructions": ci,
            "percent_covered": 100.0 * ci / ti if ti else 100.0,
        },
    }
    return json.dumps(doc, indent=2)


def _source_file(result: WasmCoverage, f: FileCoverage) -> dict[str, Any]:
    """A source file of a Wasm run, in coverage.py's JSON names; with --branch, each branch
    line's arms: per branch instruction (its offset), each arm's target offset and count."""
    doc: dict[str, Any] = {
        "executed_lines": sorted(f.executed),
        "missing_lines": sorted(f.missing),
        "functions": dict(sorted(f.functions.items(), key=lambda kv: kv[1])),
    }
    summary = {
        "num_statements": f.statements,
        "covered_lines": len(f.executed),
        "missing_lines": len(f.missing),
    }
    if result.branch:
        doc["branches"] = {
            str(line): [
                {"offset": at, "arms": [{"target": t, "count": c} for t, c in sorted(arms)]}
                for at, arms in sorted(by.items())
            ]
            for line, by in sorted(f.arms.items())
        }
        summary |= {
            "num_branches": f.branches,
            "covered_branches": f.covered_branches,
            "missing_branches": f.branches - f.covered_branches,
            "num_partial_branches": len(f.partial_lines()),
        }
    doc["summary"] = summary | {"percent_covered": result.percent([f])}
    return doc


@render.register
def _(result: FunctionCounts) -> str:
    doc = {
        f.name: {
            "offset": f.offset,
            "calls": f.entered,
            "instructions_executed": f.executed(),
            "blocks": {str(o): c for o, c in sorted(f.blocks.items()) if c},
        }
        for f in result.functions.values()
    }
    return json.dumps(doc, indent=2)


@render.register
def _(result: LineCounts) -> str:
    return json.dumps([{"unit": u, "line": n, "count": c} for u, n, c in result.lines], indent=2)


@render.register
def _(result: BranchArms) -> str:
    grouped: dict[str, list[dict[str, Any]]] = {}
    for arm in result.arms:
        record = {"func": arm.func, "target": arm.target, "count": arm.count}
        if arm.source is not None:  # Wasm with DWARF: the branch's source line
            record |= {"source": arm.source, "line": arm.line}
        grouped.setdefault(f"{arm.unit}:{arm.at}", []).append(record)
    return json.dumps(grouped, indent=2)


@render.register
def _(result: CallGraph) -> str:
    return json.dumps(
        [{"caller": a, "callee": b, "calls": c, "indirect": i} for a, b, c, i in result.edges],
        indent=2,
    )


@render.register
def _(result: MemoryAccess) -> str:
    return json.dumps([a._asdict() for a in result.sites], indent=2)


@render.register
def _(result: TraceEvents) -> str:
    return json.dumps(records(result), indent=2)


def records(result: TraceEvents) -> list[dict[str, Any]]:
    """Each event as a record, its empty fields left out (also the JSONL format's lines)."""
    return [{k: v for k, v in e._asdict().items() if v is not None} for e in result.events]
