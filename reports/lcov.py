"""LCOV tracefiles, as genhtml and CI services read them: lines and branches of Python
files (coverage.py's own, written by its reporter); for Wasm, functions with their entry
counts, and blocks where lines would be."""

from __future__ import annotations

import os
from functools import singledispatch

from probe.analyses.coverage import LineCoverage, WasmCoverage
from probe.analyses.hotness import FunctionCounts


@singledispatch
def render(result: object) -> str:
    raise NotImplementedError(type(result).__name__)


@render.register
def _(result: LineCoverage) -> str:
    """coverage.py's own LCOV (its ``lcov`` command): lines, functions, branches."""
    from probe.reports.coveragedata import reporting

    with reporting(result) as (cov, tmp):
        path = os.path.join(tmp, "coverage.lcov")
        cov.lcov_report(outfile=path)
        with open(path, encoding="utf-8") as f:
            return f.read()


@render.register(WasmCoverage)
@render.register(FunctionCounts)
def _(result: WasmCoverage | FunctionCounts) -> str:
    if getattr(result, "sources", None):
        return _sources(result)
    # No line tables: byte offsets stand in for line numbers, the module for a source file.
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


def _sources(result: WasmCoverage) -> str:
    """A record per source file (DWARF): its functions with their first lines and entries,
    and its lines with code, each run or not (genhtml renders them beside the source)."""
    out = []
    for path in sorted(result.sources):
        f = result.sources[path]
        out.append(f"SF:{path}")
        funcs = sorted(f.functions.items(), key=lambda item: (item[1], item[0]))
        entered = {n: result.entered(n) for n, _ in funcs}
        for name, line in funcs:
            out.append(f"FN:{line},{name}")
        for name, _ in funcs:
            out.append(f"FNDA:{int(entered[name])},{name}")
        out.append(f"FNF:{len(funcs)}")
        out.append(f"FNH:{sum(entered.values())}")
        lines = sorted(f.executed | f.missing)
        for line in lines:
            out.append(f"DA:{line},{1 if line in f.executed else 0}")
        out.append(f"LF:{len(lines)}")
        out.append(f"LH:{len(f.executed)}")
        found = hit = 0
        for line, branches in sorted(f.arms.items()):  # with --branch
            for block, offset in enumerate(sorted(branches)):
                for arm, (_, count) in enumerate(sorted(branches[offset])):
                    # "-": the line never ran, so its branch was never reached (LCOV's rule)
                    taken = str(count) if line in f.executed else "-"
                    out.append(f"BRDA:{line},{block},{arm},{taken}")
                    found, hit = found + 1, hit + (count > 0)
        if found:
            out.append(f"BRF:{found}")
            out.append(f"BRH:{hit}")
        out.append("end_of_record")
    return "\n".join(out) + "\n"
