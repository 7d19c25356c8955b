"""Coverage: which code ran.

Python: a flag on every line site, and with ``branch`` on every branch
arc; reports follow coverage.py's (text, JSON, LCOV, Cobertura XML) so that
tools that read its output read ours.

Wasm: a flag on every function entry and basic block (with ``instr``, on
every instruction, exact even when the program traps); reports per
function, blocks and instructions covered, as text, JSON and LCOV with
function records. Without ``instr``, an instruction counts as covered when
its block ran.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from probe.errors import UsageError
from probe.probes import Kind, Probe

from . import Analysis, Tables

if TYPE_CHECKING:
    from probe.storage import Database

VERSION = "0.1.0"


@dataclass
class FileCoverage:
    """One file's results, the fields of coverage.py's JSON report."""

    path: str
    executed: set[int] = field(default_factory=set)
    missing: set[int] = field(default_factory=set)
    excluded: set[int] = field(default_factory=set)
    arcs_hit: set[tuple[int, int]] = field(default_factory=set)
    arcs_missed: set[tuple[int, int]] = field(default_factory=set)

    @property
    def statements(self) -> int:
        return len(self.executed) + len(self.missing)

    @property
    def branches(self) -> int:
        return len(self.arcs_hit) + len(self.arcs_missed)

    def partial_lines(self) -> set[int]:
        """Branch lines that ran but did not take every arc."""
        return {src for src, _ in self.arcs_missed if src in self.executed}


# Rows in the shape both sources give: (unit, kind, line, target, count).
Row = tuple[str, str, int, int | None, int | None]


def collect(rows: Iterable[Row]) -> dict[str, FileCoverage]:
    files: dict[str, FileCoverage] = {}
    for unit, kind, line, target, count in rows:
        fc = files.get(unit)
        if fc is None:
            fc = files[unit] = FileCoverage(unit)
        if kind == "line":
            (fc.executed if count else fc.missing).add(line)
        elif kind == "excluded":
            fc.excluded.add(line)
        elif kind == "branch":
            (fc.arcs_hit if count else fc.arcs_missed).add((line, target))
    return files


def rows_from_tables(tables: Tables) -> list[Row]:
    sites, counts = tables.get("sites", {}), tables.get("counts", {})
    hit = dict(zip(counts.get("site_id", []), counts.get("count", []), strict=True))
    return [
        (unit, kind, line, target, hit.get(sid))
        for sid, kind, unit, line, target in zip(
            sites.get("site_id", []),
            sites.get("kind", []),
            sites.get("unit", []),
            sites.get("line", []),
            sites.get("target", []),
            strict=True,
        )
    ]


def rows_from_db(db: Database, run_id: str) -> list[Row]:
    rel = db.execute(
        "SELECT s.unit, s.kind, s.line, s.target, c.count FROM sites s "
        "LEFT JOIN counts c USING (run_id, site_id) "
        "WHERE s.run_id = ? AND s.kind IN ('line', 'branch', 'excluded')",
        [run_id],
    )
    return rel.fetchall()


class Coverage(Analysis):
    name = "coverage"
    description = "line coverage, and branch coverage with --branch (coverage.py's numbers)"
    formats = ("text", "json", "lcov", "xml")

    def probes(self, events: frozenset[str]) -> Iterable[Probe]:
        branch = bool(self.options.get("branch"))
        if "line" in events:
            yield Probe("line", Kind.FLAG)
            if branch:
                yield Probe("branch", Kind.FLAG)
            return
        yield Probe("func", Kind.FLAG)
        yield Probe("block", Kind.FLAG)
        if self.options.get("instr"):
            yield Probe("instr", Kind.FLAG)
        if branch:
            yield Probe("branch", Kind.FLAG)

    def summary(self, run: dict[str, Any], tables: Tables) -> str | None:
        if run.get("engine") == "wasm":
            return _wasm_text(wasm_functions(wasm_rows_from_tables(tables)), top=20)
        files = collect(rows_from_tables(tables))
        cwd = run.get("cwd") or os.getcwd()
        return _text(files, cwd, bool(self.options.get("branch")), missing=False)

    def report(self, db: Database, run_id: str, fmt: str = "text") -> str:
        run = db.execute(
            "SELECT cwd, options, engine, target FROM runs WHERE run_id = ?", [run_id]
        ).fetchone()
        if run is None:
            raise UsageError(f"no run {run_id!r}")
        if run[2] == "wasm":
            return _wasm_report(wasm_functions(wasm_rows_from_db(db, run_id)), run[3], fmt)
        self.check_format(fmt)
        cwd = run[0] or os.getcwd()
        branch = bool(json.loads(run[1] or "{}").get("branch"))
        files = collect(rows_from_db(db, run_id))
        if fmt == "json":
            return _json(files, cwd, branch)
        if fmt == "lcov":
            return _lcov(files, cwd, branch)
        if fmt == "xml":
            return _cobertura(files, cwd, branch)
        return _text(files, cwd, branch, missing=True)


# -- numbers as coverage.py computes and shows them --------------------------


def _percent(fc: Iterable[FileCoverage], branch: bool) -> float:
    hit = total = 0
    for f in fc:
        hit += len(f.executed) + (len(f.arcs_hit) if branch else 0)
        total += f.statements + (f.branches if branch else 0)
    return 100.0 * hit / total if total else 100.0


def _display(pc: float) -> str:
    """Whole percent, never showing 0 for some coverage or 100 for incomplete coverage."""
    if 0 < pc < 1:
        return "1"
    if 99 < pc < 100:
        return "99"
    return str(round(pc))


def _relative(path: str, cwd: str) -> str:
    rel = os.path.relpath(path, cwd)
    return path if rel.startswith("..") else rel


def _ranges(lines: Iterable[int]) -> list[str]:
    out: list[str] = []
    run: list[int] = []
    for n in sorted(lines):
        if run and n == run[-1] + 1:
            run.append(n)
            continue
        if run:
            out.append(str(run[0]) if len(run) == 1 else f"{run[0]}-{run[-1]}")
        run = [n]
    if run:
        out.append(str(run[0]) if len(run) == 1 else f"{run[0]}-{run[-1]}")
    return out


def _arc_text(src: int, dst: int) -> str:
    return f"{src}->{dst}" if dst > 0 else f"{src}->exit"


def _text(files: dict[str, FileCoverage], cwd: str, branch: bool, missing: bool) -> str:
    names = {p: _relative(p, cwd) for p in files}
    header = ["Name", "Stmts", "Miss"] + (["Branch", "BrPart"] if branch else []) + ["Cover"]
    if missing:
        header.append("Missing")
    rows = []
    for path in sorted(files, key=names.get):
        f = files[path]
        row = [names[path], str(f.statements), str(len(f.missing))]
        if branch:
            row += [str(f.branches), str(len(f.partial_lines()))]
        row.append(_display(_percent([f], branch)) + "%")
        if missing:
            partial = sorted(a for a in f.arcs_missed if a[0] in f.executed)
            row.append(", ".join(_ranges(f.missing) + [_arc_text(*a) for a in partial]))
        rows.append(row)
    total = [
        "TOTAL",
        str(sum(f.statements for f in files.values())),
        str(sum(len(f.missing) for f in files.values())),
    ]
    if branch:
        total += [
            str(sum(f.branches for f in files.values())),
            str(sum(len(f.partial_lines()) for f in files.values())),
        ]
    total.append(_display(_percent(files.values(), branch)) + "%")
    if missing:
        total.append("")
    widths = [max(len(r[i]) for r in [header, total, *rows]) for i in range(len(header))]

    def line(r: list[str]) -> str:
        cells = [r[0].ljust(widths[0])] + [
            c.rjust(w) for c, w in zip(r[1:], widths[1:], strict=True)
        ]
        if missing:
            cells[-1] = r[-1]
        return "   ".join(cells).rstrip()

    rule = "-" * len(line(header))
    body = [line(r) for r in rows]
    if not files:
        return "No data to report."
    return "\n".join([line(header), rule, *body, rule, line(total)])


def _summary_json(fs: list[FileCoverage], branch: bool) -> dict[str, Any]:
    covered = sum(len(f.executed) for f in fs)
    stmts = sum(f.statements for f in fs)
    pc_stmts = 100.0 * covered / stmts if stmts else 100.0
    pc = _percent(fs, branch)
    out: dict[str, Any] = {
        "covered_lines": covered,
        "num_statements": stmts,
        "percent_covered": pc,
        "percent_covered_display": _display(pc),
        "missing_lines": stmts - covered,
        "excluded_lines": sum(len(f.excluded) for f in fs),
        "percent_statements_covered": pc_stmts,
        "percent_statements_covered_display": _display(pc_stmts),
    }
    if branch:
        nb = sum(f.branches for f in fs)
        hit = sum(len(f.arcs_hit) for f in fs)
        pc_br = 100.0 * hit / nb if nb else 100.0
        out.update(
            num_branches=nb,
            num_partial_branches=sum(len(f.partial_lines()) for f in fs),
            covered_branches=hit,
            missing_branches=nb - hit,
            percent_branches_covered=pc_br,
            percent_branches_covered_display=_display(pc_br),
        )
    return out


def _json(files: dict[str, FileCoverage], cwd: str, branch: bool) -> str:
    out_files = {}
    for path in sorted(files, key=lambda p: _relative(p, cwd)):
        f = files[path]
        entry: dict[str, Any] = {
            "executed_lines": sorted(f.executed),
            "summary": _summary_json([f], branch),
            "missing_lines": sorted(f.missing),
            "excluded_lines": sorted(f.excluded),
        }
        if branch:
            entry["executed_branches"] = [list(a) for a in sorted(f.arcs_hit)]
            entry["missing_branches"] = [list(a) for a in sorted(f.arcs_missed)]
        out_files[_relative(path, cwd)] = entry
    doc = {
        "meta": {
            "format": 3,
            "version": VERSION,
            "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S"),
            "branch_coverage": branch,
            "show_contexts": False,
            "tool": "probe",
        },
        "files": out_files,
        "totals": _summary_json(list(files.values()), branch),
    }
    return json.dumps(doc, indent=4)


def _lcov(files: dict[str, FileCoverage], cwd: str, branch: bool) -> str:
    out = []
    for path in sorted(files, key=lambda p: _relative(p, cwd)):
        f = files[path]
        out.append(f"SF:{_relative(path, cwd)}")
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


def _cobertura(files: dict[str, FileCoverage], cwd: str, branch: bool) -> str:
    from xml.sax.saxutils import quoteattr  # pulls in urllib: keep it off the run's path

    def rate(hit: int, total: int) -> str:
        return f"{hit / total:.4g}" if total else "1"

    packages: dict[str, list[FileCoverage]] = {}
    for path, f in files.items():
        rel = _relative(path, cwd)
        packages.setdefault(os.path.dirname(rel).replace(os.sep, ".") or ".", []).append(f)
    lines_valid = sum(f.statements for f in files.values())
    lines_hit = sum(len(f.executed) for f in files.values())
    br_valid = sum(f.branches for f in files.values())
    br_hit = sum(len(f.arcs_hit) for f in files.values())
    out = [
        '<?xml version="1.0" ?>',
        f'<coverage version="{VERSION}" timestamp="{int(time.time() * 1000)}" '
        f'lines-valid="{lines_valid}" lines-covered="{lines_hit}" '
        f'line-rate="{rate(lines_hit, lines_valid)}" branches-covered="{br_hit}" '
        f'branches-valid="{br_valid}" branch-rate="{rate(br_hit, br_valid) if branch else 0}" '
        'complexity="0">',
        f"\t<sources>\n\t\t<source>{cwd}</source>\n\t</sources>",
        "\t<packages>",
    ]
    for pkg in sorted(packages):
        fs = sorted(packages[pkg], key=lambda f: f.path)
        p_lines = sum(f.statements for f in fs)
        p_hit = sum(len(f.executed) for f in fs)
        p_br = sum(f.branches for f in fs)
        p_brhit = sum(len(f.arcs_hit) for f in fs)
        out.append(
            f'\t\t<package name={quoteattr(pkg)} line-rate="{rate(p_hit, p_lines)}" '
            f'branch-rate="{rate(p_brhit, p_br) if branch else 0}" complexity="0">'
        )
        out.append("\t\t\t<classes>")
        for f in fs:
            rel = _relative(f.path, cwd)
            out.append(
                f"\t\t\t\t<class name={quoteattr(os.path.basename(rel))} "
                f"filename={quoteattr(rel)} "
                f'line-rate="{rate(len(f.executed), f.statements)}" '
                f'branch-rate="{rate(len(f.arcs_hit), f.branches) if branch else 0}" '
                'complexity="0">'
            )
            out.append("\t\t\t\t\t<methods/>\n\t\t\t\t\t<lines>")
            arcs: dict[int, list[tuple[int, bool]]] = {}
            for src, dst in f.arcs_hit:
                arcs.setdefault(src, []).append((dst, True))
            for src, dst in f.arcs_missed:
                arcs.setdefault(src, []).append((dst, False))
            for n in sorted(f.executed | f.missing):
                attrs = f'number="{n}" hits="{1 if n in f.executed else 0}"'
                if branch and n in arcs:
                    taken = sum(1 for _, hit in arcs[n] if hit)
                    total = len(arcs[n])
                    attrs += (
                        f' branch="true" condition-coverage='
                        f'"{100 * taken // total}% ({taken}/{total})"'
                    )
                    missed = sorted(d for d, hit in arcs[n] if not hit)
                    if missed:
                        attrs += f' missing-branches="{",".join(map(str, missed))}"'
                out.append(f"\t\t\t\t\t\t<line {attrs}/>")
            out.append("\t\t\t\t\t</lines>\n\t\t\t\t</class>")
        out.append("\t\t\t</classes>\n\t\t</package>")
    out.append("\t</packages>\n</coverage>")
    return "\n".join(out) + "\n"


# -- Wasm: per function -----------------------------------------------------------

WasmRow = tuple[str, str, int, int | None, int | None]  # kind, func, offset, size, count


@dataclass
class FunctionCoverage:
    name: str
    offset: int = 0
    entered: int = 0  # entry count (1 for a flag) or 0
    blocks: dict[int, int] = field(default_factory=dict)  # block offset -> count
    sizes: dict[int, int] = field(default_factory=dict)  # block offset -> instructions
    instrs: dict[int, int] | None = None  # exact instruction coverage, when probed

    def covered_blocks(self) -> int:
        return sum(1 for c in self.blocks.values() if c)

    def instructions(self) -> tuple[int, int]:
        """(covered, total) instructions."""
        if self.instrs is not None:
            return sum(1 for c in self.instrs.values() if c), len(self.instrs)
        total = sum(self.sizes.values())
        return sum(self.sizes[b] for b, c in self.blocks.items() if c), total


def wasm_rows_from_tables(tables: Tables) -> list[WasmRow]:
    sites, counts = tables.get("sites", {}), tables.get("counts", {})
    hit = dict(
        zip(map(int, counts.get("site_id", [])), map(int, counts.get("count", [])), strict=True)
    )
    return [
        (kind, func, int(off), None if size is None else int(size), hit.get(int(sid)))
        for sid, kind, func, off, size in zip(
            sites.get("site_id", []),
            sites.get("kind", []),
            sites.get("func", []),
            sites.get("offset", []),
            sites.get("size", [None] * len(sites.get("kind", []))),
            strict=True,
        )
    ]


def wasm_rows_from_db(db: Database, run_id: str) -> list[WasmRow]:
    return db.execute(
        'SELECT s.kind, s.func, s."offset", s.size, c.count FROM sites s '
        "LEFT JOIN counts c USING (run_id, site_id) "
        "WHERE s.run_id = ? AND s.kind IN ('func', 'block', 'instr') ORDER BY s.\"offset\"",
        [run_id],
    ).fetchall()


def wasm_functions(rows: Iterable[WasmRow]) -> dict[str, FunctionCoverage]:
    funcs: dict[str, FunctionCoverage] = {}
    for kind, name, offset, size, count in rows:
        f = funcs.get(name)
        if f is None:
            f = funcs[name] = FunctionCoverage(name, offset)
        if kind == "func":
            f.offset, f.entered = offset, count or 0
        elif kind == "block":
            f.blocks[offset] = count or 0
            f.sizes[offset] = size or 0
        elif kind == "instr":
            if f.instrs is None:
                f.instrs = {}
            f.instrs[offset] = count or 0
    return funcs


def _wasm_report(funcs: dict[str, FunctionCoverage], module: str, fmt: str) -> str:
    if fmt == "json":
        return _wasm_json(funcs, module)
    if fmt == "lcov":
        return wasm_lcov(funcs, module)
    if fmt == "text":
        return _wasm_text(funcs)
    raise UsageError(f"coverage reports of Wasm runs come as text, json or lcov, not {fmt!r}")


def _wasm_text(funcs: dict[str, FunctionCoverage], top: int | None = None) -> str:
    if not funcs:
        return "No data to report."
    rows = []
    for f in sorted(funcs.values(), key=lambda f: f.offset):
        ci, ti = f.instructions()
        nb = len(f.blocks)
        pc = 100.0 * ci / ti if ti else 100.0
        rows.append(
            [
                f.name,
                f"{f.offset:#x}",
                str(nb),
                str(nb - f.covered_blocks()),
                str(ti),
                str(ti - ci),
                _display(pc) + "%",
            ]
        )
    ci = sum(f.instructions()[0] for f in funcs.values())
    ti = sum(f.instructions()[1] for f in funcs.values())
    nb = sum(len(f.blocks) for f in funcs.values())
    cb = sum(f.covered_blocks() for f in funcs.values())
    total = [
        "TOTAL",
        "",
        str(nb),
        str(nb - cb),
        str(ti),
        str(ti - ci),
        _display(100.0 * ci / ti if ti else 100.0) + "%",
    ]
    header = ["Function", "Offset", "Blocks", "Miss", "Instrs", "Miss", "Cover"]
    shown = rows
    note = []
    if top is not None and len(rows) > top:
        shown = sorted(rows, key=lambda r: -int(r[5]))[:top]
        note = [f"({len(rows) - top} more functions: probe report coverage)"]
    widths = [max(len(r[i]) for r in [header, total, *shown]) for i in range(len(header))]

    def line(r: list[str]) -> str:
        return "   ".join(
            [r[0].ljust(widths[0])] + [c.rjust(w) for c, w in zip(r[1:], widths[1:], strict=True)]
        )

    rule = "-" * len(line(header))
    return "\n".join([line(header), rule, *map(line, shown), rule, line(total), *note])


def _wasm_json(funcs: dict[str, FunctionCoverage], module: str) -> str:
    out = {}
    for f in sorted(funcs.values(), key=lambda f: f.offset):
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
            "version": VERSION,
            "engine": "wasm",
            "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S"),
        },
        "module": module,
        "functions": out,
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


def wasm_lcov(funcs: dict[str, FunctionCoverage], module: str) -> str:
    """LCOV with byte offsets standing in for line numbers until DWARF maps them to source."""
    ordered = sorted(funcs.values(), key=lambda f: f.offset)
    out = [f"SF:{module}"]
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
