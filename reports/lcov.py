"""LCOV tracefiles, as genhtml and CI services read them: lines and branches of Python
files; for Wasm, functions with their entry counts, and blocks where lines would be."""

from __future__ import annotations

from functools import singledispatch

from probe.analyses.coverage import LineCoverage, WasmCoverage
from probe.analyses.hotness import FunctionCounts


@singledispatch
def render(result: object) -> str:
    raise NotImplementedError(type(result).__name__)


@render.register
def _(result: LineCoverage) -> str:
    files, branch = result.files, result.branch
    out = []
    for path in sorted(files, key=result.relative):
        f = files[path]
        out.append(f"SF:{result.relative(path)}")
        for n in sorted(f.executed | f.missing):
            out.append(f"DA:{n},{1 if n in f.executed else 0}")
        out.append(f"LF:{f.statements}")
        out.append(f"LH:{len(f.executed)}")
        if branch:
            arcs = sorted(f.arcs_hit | f.arcs_missed)
            by_line: dict[int, int] = {}
            for src, dst in arcs:
                i = by_line.setdefault(src, 0)
                by_line[src] += 1
                taken = "-" if src not in f.executed else ("1" if (src, dst) in f.arcs_hit else "0")
                out.append(f"BRDA:{src},0,{i},{taken}")
            out.append(f"BRF:{f.branches}")
            out.append(f"BRH:{len(f.arcs_hit)}")
        out.append("end_of_record")
    return "\n".join(out) + "\n"


@render.register(WasmCoverage)
@render.register(FunctionCounts)
def _(result: WasmCoverage | FunctionCounts) -> str:
    # Byte offsets stand in for line numbers until DWARF maps them to source.
    ordered = sorted(result.functions.values(), key=lambda f: f.offset)
    out = [f"SF:{result.module}"]
    for f in ordered:
        out.append(f"FN:{f.offset},{f.name}")
    for f in ordered:
        out.append(f"FNDA:{f.entered},{f.name}")
    out.append(f"FNF:{len(ordered)}")
    out.append(f"FNH:{sum(1 for f in ordered if f.entered)}")
    blocks = sorted((o, c) for f in ordered for o, c in f.blocks.items())
    for offset, count in blocks:
        out.append(f"DA:{offset},{count}")
    out.append(f"LF:{len(blocks)}")
    out.append(f"LH:{sum(1 for _, c in blocks if c)}")
    out.append("end_of_record")
    return "\n".join(out) + "\n"
