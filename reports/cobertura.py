"""Cobertura XML, as CI services read it: for Python, coverage.py's own ``xml`` report, written
by its reporter over the run's data; for Wasm, per source file (DWARF) or per module."""

from __future__ import annotations

import os
from collections.abc import Iterable
from functools import singledispatch

from probe.analyses.coverage import LineCoverage, WasmCoverage


@singledispatch
def render(result: object) -> str:
    raise NotImplementedError(type(result).__name__)


@render.register
def _(result: LineCoverage) -> str:
    """coverage.py's own Cobertura XML (its ``xml`` command)."""
    from probe.reports.coveragedata import reporting

    with reporting(result) as (cov, tmp):
        path = os.path.join(tmp, "coverage.xml")
        cov.xml_report(outfile=path, skip_empty=result.skip_empty)
        with open(path, encoding="utf-8") as f:
            return f.read()


@render.register
def _(result: WasmCoverage) -> str:
    """Per source file where the module has DWARF line tables; else the module as one file,
    its blocks' offsets standing in for lines (as in the LCOV)."""
    files: dict[str, _File] = {}
    if result.sources:
        for path, f in result.sources.items():
            hits = {n: 1 for n in f.executed} | {n: 0 for n in f.missing}
            funcs = {name: (line, result.entered(name)) for name, line in f.functions.items()}
            files[result.relative(path)] = (hits, funcs, f.arm_counts())
    else:
        hits = {o: int(bool(c)) for f in result.functions.values() for o, c in f.blocks.items()}
        funcs = {f.name: (f.offset, bool(f.entered)) for f in result.functions.values()}
        files[result.relative(result.module)] = (hits, funcs, {})
    return _cobertura(files, result.cwd)


# A file: line -> hits, function -> (first line, ran), line -> (branch arms, arms taken).
_File = tuple[dict[int, int], dict[str, tuple[int, bool]], dict[int, tuple[int, int]]]


def _cobertura(files: dict[str, _File], source: str) -> str:
    import time
    import xml.etree.ElementTree as ET

    from probe import __version__

    def rate(hits: dict) -> str:
        return f"{sum(1 for h in hits.values() if h) / len(hits):.4g}" if hits else "1"

    def arm_rate(arms: Iterable[tuple[int, int]]) -> tuple[int, int, str]:
        n, taken = map(sum, zip(*arms, strict=True)) if arms else (0, 0)
        return n, taken, f"{taken / n:.4g}" if n else "0"

    every = {(name, n): h for name, (hits, _, _) in files.items() for n, h in hits.items()}
    valid, covered, branch_rate = arm_rate(
        [a for *_, arms in files.values() for a in arms.values()]
    )
    root = ET.Element(
        "coverage",
        {
            "version": __version__,
            "timestamp": str(int(time.time() * 1000)),
            "lines-valid": str(len(every)),
            "lines-covered": str(sum(1 for h in every.values() if h)),
            "line-rate": rate(every),
            "branches-valid": str(valid),
            "branches-covered": str(covered),
            "branch-rate": branch_rate,
            "complexity": "0",
        },
    )
    ET.SubElement(ET.SubElement(root, "sources"), "source").text = source
    package = ET.SubElement(
        ET.SubElement(root, "packages"),
        "package",
        {"name": ".", "line-rate": rate(every), "branch-rate": branch_rate, "complexity": "0"},
    )
    classes = ET.SubElement(package, "classes")
    for name in sorted(files):
        hits, functions, arms = files[name]
        cls = ET.SubElement(
            classes,
            "class",
            {"name": name, "filename": name, "line-rate": rate(hits),
             "branch-rate": arm_rate(list(arms.values()))[2], "complexity": "0"},
        )  # fmt: skip
        methods = ET.SubElement(cls, "methods")
        for func, (_, ran) in sorted(functions.items(), key=lambda kv: kv[1][0]):
            ET.SubElement(
                methods,
                "method",
                {"name": func, "signature": "", "line-rate": str(int(ran)), "branch-rate": "0",
                 "complexity": "0"},
            )  # fmt: skip
        lines = ET.SubElement(cls, "lines")
        for n in sorted(hits):
            line = {"number": str(n), "hits": str(hits[n])}
            if n in arms:  # as coverage.py writes a branch line
                total, taken = arms[n]
                pc = 100 * taken // total if total else 100
                line |= {"branch": "true", "condition-coverage": f"{pc}% ({taken}/{total})"}
            ET.SubElement(lines, "line", line)
    ET.indent(root)
    return '<?xml version="1.0" ?>\n' + ET.tostring(root, encoding="unicode") + "\n"
