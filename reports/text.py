"""Text: what a person reads in a terminal. A brief result (``result.brief``) is the summary
printed when a run ends; otherwise the full report."""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from functools import singledispatch

from probe.analyses.branches import BranchArms
from probe.analyses.calls import CallGraph
from probe.analyses.coverage import FileCoverage, LineCoverage, WasmCoverage, display
from probe.analyses.hotness import FunctionCounts, LineCounts
from probe.analyses.hotpaths import HotPaths
from probe.analyses.memory import MemoryAccess
from probe.analyses.states import StateTrace
from probe.analyses.trace import TraceEvents


@singledispatch
def render(result: object) -> str:
    raise NotImplementedError(type(result).__name__)


def columns(rows: Sequence[Sequence[str]], left: int = 1, sep: str = "   ") -> list[str]:
    """Rows of cells aligned in columns: the first ``left`` columns to the left, the rest to
    the right (numbers)."""
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]

    def line(row: Sequence[str]) -> str:
        cells = zip(row, widths, strict=True)
        return sep.join(c.ljust(w) if i < left else c.rjust(w) for i, (c, w) in enumerate(cells))

    return [line(r) for r in rows]


# -- coverage ---------------------------------------------------------------------------------


@render.register
def _(result: LineCoverage) -> str:
    """coverage.py's report table: the same columns, order, skips and end lines."""
    files, branch = result.files, result.branch
    names = {p: result.relative(p) for p in files}
    shown, covered, empty = [], 0, 0
    for path in files:
        f = files[path]
        if result.skip_covered and not f.missing and not f.partial_lines():
            covered += 1
        elif result.skip_empty and not f.statements:
            empty += 1
        else:
            shown.append(path)
    if not shown and not covered:
        return "No data to report."
    digits = result.precision
    keyed = []
    for path in shown:
        f = files[path]
        numbers = [f.statements, len(f.missing)]
        if branch:
            numbers += [f.branches, len(f.partial_lines())]
        keyed.append((names[path], numbers, result.percent([f]), path))
    keyed = _sorted(keyed, result.sort, branch)
    every = files.values()
    total = [sum(f.statements for f in every), sum(len(f.missing) for f in every)]
    if branch:
        total += [sum(f.branches for f in every), sum(len(f.partial_lines()) for f in every)]
    rows = [
        (name, numbers, display(pc, digits), _missing(files[path]))
        for name, numbers, pc, path in keyed
    ]
    lines = _table(rows, ("TOTAL", total, display(result.percent(), digits), ""), branch,
                   result.show_missing)  # fmt: skip
    if covered:
        lines += ["", f"{_plural(covered, 'file')} skipped due to complete coverage."]
    if empty:
        lines += ["", f"{_plural(empty, 'empty file')} skipped."]
    return "\n".join(lines)


def _table(rows: list, total: tuple, branch: bool, missing: bool) -> list[str]:
    """coverage.py's text layout, column for column, so that whatever reads its report (a CI
    step's regex on TOTAL, a diff of two reports) reads probe's: the name column as wide as
    the longest name (at least five) plus one, numbers seven wide, Cover as wide as the
    widest percent plus two, Missing after three spaces; trailing spaces stripped."""
    name_w = max([len(r[0]) for r in rows] + [5]) + 1
    cover_w = max([len(total[2]) + 3, len(" Cover") + 1] + [len(r[2]) + 2 for r in rows])
    numbers = ["Stmts", "Miss"] + (["Branch", "BrPart"] if branch else [])
    head = f"{'Name':{name_w}}" + "".join(f"{h:>7}" for h in numbers) + f"{'Cover':>{cover_w}}"
    if missing:
        head += f"{'Missing':>10}"
    rule = "-" * len(head)

    def line(name: str, counts: list[int], pc: str, missed: str) -> str:
        text = f"{name:{name_w}}" + "".join(f"{n:>7}" for n in counts)
        text += f"{pc:>{cover_w - 1}}%" + (f"   {missed:9}" if missing else "")
        return text.rstrip()

    body = [line(*r) for r in rows]
    return [head, rule, *body, *([rule] if body else []), line(*total)]


def _sorted(keyed: list, sort: str, branch: bool) -> list:
    """Rows in coverage.py's order: by name (digits as numbers), or by a column then name;
    a leading '-' reverses."""
    reverse = sort.startswith("-")
    column = sort.lstrip("+-").lower()
    order = {"stmts": 0, "miss": 1, "branch": 2, "brpart": 3}
    if column == "name":
        return sorted(keyed, key=lambda r: _human(r[0]), reverse=reverse)
    if column == "cover":
        return sorted(keyed, key=lambda r: (r[2], r[0]), reverse=reverse)
    if column not in order or (column in ("branch", "brpart") and not branch):
        from probe.errors import UsageError

        raise UsageError(f"can't sort by {sort!r}: name, stmts, miss, branch, brpart or cover")
    return sorted(keyed, key=lambda r: (r[1][order[column]], r[0]), reverse=reverse)


def _human(text: str) -> list:
    import re

    return [int(p) if p.isdigit() else p for p in re.split(r"(\d+)", text)]


def _plural(n: int, thing: str) -> str:
    return f"{n} {thing}" if n == 1 else f"{n} {thing}s"


def _missing(f: FileCoverage) -> str:
    """Missed lines as coverage.py writes them: ranges over consecutive statements (a run
    of missed statements is one range across the lines between them that are not
    statements), then each partial branch's missed arcs whose lines are not missed."""
    statements = sorted(f.executed | f.missing)
    items: list[tuple[int, str]] = []
    start = end = None
    for line in statements:
        if line in f.missing:
            start = line if start is None else start
            end = line
        elif start is not None:
            items.append((start, str(start) if start == end else f"{start}-{end}"))
            start = None
    if start is not None:
        items.append((start, str(start) if start == end else f"{start}-{end}"))
    for src, dst in sorted(f.arcs_missed):
        if src not in f.missing and dst not in f.missing:
            items.append((src, f"{src}->{dst}" if dst > 0 else f"{src}->exit"))
    for line, (arms, taken) in f.arm_counts().items():  # Wasm: arms go to code, not lines
        if line in f.executed and taken < arms:
            items.append((line, f"{line} ({taken}/{arms} arms)"))
    return ", ".join(text for _, text in sorted(items))


@render.register
def _(result: WasmCoverage) -> str:
    if result.sources:
        return _sources(result)
    funcs = result.functions
    if not funcs:
        return "No data to report."
    rows = []
    for f in sorted(funcs.values(), key=lambda f: f.offset):
        ci, ti = f.instructions()
        nb = len(f.blocks)
        pc = 100.0 * ci / ti if ti else 100.0
        rows.append(
            [f.name, f"{f.offset:#x}", str(nb), str(nb - f.covered_blocks()), str(ti),
             str(ti - ci), display(pc) + "%"]
        )  # fmt: skip
    ci = sum(f.instructions()[0] for f in funcs.values())
    ti = sum(f.instructions()[1] for f in funcs.values())
    nb = sum(len(f.blocks) for f in funcs.values())
    cb = sum(f.covered_blocks() for f in funcs.values())
    pc = 100.0 * ci / ti if ti else 100.0
    total = ["TOTAL", "", str(nb), str(nb - cb), str(ti), str(ti - ci), display(pc) + "%"]
    header = ["Function", "Offset", "Blocks", "Miss", "Instrs", "Miss", "Cover"]
    top = 20 if result.brief else None
    shown, note = rows, []
    if top is not None and len(rows) > top:
        shown = sorted(rows, key=lambda r: -int(r[5]))[:top]
        note = [f"({len(rows) - top} more functions: probe report coverage)"]
    head, foot, *body = columns([header, total, *shown])
    rule = "-" * len(head)
    return "\n".join([head, rule, *body, rule, foot, *note])


def _sources(result: WasmCoverage) -> str:
    """Per source file, as coverage.py's report: lines with code, missed, percent, and
    which (the module's own offsets are in ``probe report coverage -f json``)."""
    every = result.sources.values()

    def numbers(files: Iterable[FileCoverage]) -> list[str]:
        files = list(files)
        counts = [sum(f.statements for f in files), sum(len(f.missing) for f in files)]
        if result.branch:  # as coverage.py's --branch table: arms, and lines not taking all
            counts += [sum(f.branches for f in files), sum(len(f.partial_lines()) for f in files)]
        return [str(n) for n in counts]

    rows = []
    for path in sorted(result.sources, key=result.relative):
        f = result.sources[path]
        pc = display(result.percent([f])) + "%"
        rows.append([result.relative(path), *numbers([f]), pc, _missing(f)])
    header = ["Name", "Lines", "Miss", *(["Branch", "BrPart"] if result.branch else [])]
    header += ["Cover", "Missing"]
    foot = ["TOTAL", *numbers(every), display(result.percent()) + "%", ""]
    table = [header, foot, *rows]
    # Missing to the left, after the numbers, as coverage.py's column: it may be long.
    aligned = columns([r[:-1] for r in table])
    head, tail, *body = [f"{a}   {r[-1]}".rstrip() for a, r in zip(aligned, table, strict=True)]
    rule = "-" * len(head)
    return "\n".join([head, rule, *body, rule, tail])


# -- hotness ----------------------------------------------------------------------------------


@render.register
def _(result: FunctionCounts) -> str:
    if not result.functions:
        return "No data to report."
    ranked = result.ranked()
    total = sum(f.executed() for f in ranked) or 1
    lines = [f"{'Function':<32} {'Calls':>14} {'Instructions':>16} {'Share':>7}"]
    lines.append("-" * len(lines[0]))
    for f in ranked[: 10 if result.brief else 25]:
        share = 100.0 * f.executed() / total
        lines.append(f"{f.name[:32]:<32} {f.entered:>14,} {f.executed():>16,} {share:>6.1f}%")
    blocks = sorted(
        ((c * f.sizes.get(o, 0), c, o, f.name) for f in ranked for o, c in f.blocks.items() if c),
        reverse=True,
    )[:10]
    lines.append("")
    lines.append(f"{'Hottest blocks':<32} {'Runs':>14} {'Instructions':>16} {'Offset':>10}")
    for executed, count, offset, name in blocks:
        lines.append(f"{name[:32]:<32} {count:>14,} {executed:>16,} {offset:>#10x}")
    if result.lines:  # DWARF: the source's own lines, and where the hot functions are
        where = result.sources or {}
        lines.append("")
        lines.append(f"{'Busiest source lines':<48} {'Runs':>14}")
        for path, number, count in result.lines[: 10 if result.brief else 25]:
            lines.append(f"{_short(f'{os.path.relpath(path)}:{number}', 48):<48} {count:>14,}")
        placed = [(f.name, where[f.name]) for f in ranked[:10] if f.name in where]
        if placed:
            lines.append("")
            lines.append(f"{'Function':<32} Source")
            for name, (path, number) in placed:
                lines.append(f"{name[:32]:<32} {os.path.relpath(path)}:{number}")
    return "\n".join(lines)


def _short(text: str, width: int) -> str:
    return text if len(text) <= width else "..." + text[-(width - 3) :]


@render.register
def _(result: LineCounts) -> str:
    return "\n".join(f"{c:>14,}  {u}:{n}" for u, n, c in result.lines) or "No data to report."


def _left_out(n: int, what: str, how: str) -> str:
    """What a Wasm report with DWARF left out of the user's view, and where to find it."""
    return f"{n:,} {what} outside your source files left out ({how})" if n else ""


# -- branches ---------------------------------------------------------------------------------


@render.register
def _(result: BranchArms) -> str:
    elsewhere = _left_out(
        result.elsewhere, "branches", "probe run --source/--include/--omit choose the files"
    )
    if not result.arms:
        return "\n".join(filter(None, ["No branches measured.", elsewhere]))
    ranked = result.branches()
    top = 10 if result.brief else None
    one_sided = sum(1 for a in ranked if sum(1 for x in a if x.count) == 1 and len(a) > 1)
    never = sum(1 for a in ranked if not any(x.count for x in a))
    lines = [f"{len(ranked)} branches: {never} never ran, {one_sided} always went one way"]
    sourced = any(a.source for a in result.arms)  # Wasm with DWARF: where in the source too
    lines.append(
        f"{'Function':<28} {'Source':<24} {'At':>8} {'Arm to':>8} {'Taken':>14}"
        if sourced
        else f"{'Function':<28} {'At':>16} {'Arm to':>10} {'Taken':>14}"
    )
    for arms_of in ranked[:top] if top else ranked:
        for a in arms_of:
            where = f"{a.at:#x}" if result.wasm else f"{os.path.basename(a.unit)}:{a.at}"
            if a.target is None:
                to = "?"
            elif result.wasm:
                to = f"{a.target:#x}"
            else:
                to = str(a.target) if a.target > 0 else "exit"
            if sourced:
                src = _short(f"{os.path.basename(a.source or '')}:{a.line}", 24)
                lines.append(f"{a.func[:28]:<28} {src:<24} {where:>8} {to:>8} {a.count:>14,}")
            else:
                lines.append(f"{a.func[:28]:<28} {where:>16} {to:>10} {a.count:>14,}")
    if top and len(ranked) > top:
        lines.append(f"({len(ranked) - top} more branches: probe report branches)")
    if elsewhere:
        lines.append(f"({elsewhere})")
    return "\n".join(lines)


# -- calls ------------------------------------------------------------------------------------


@render.register
def _(result: CallGraph) -> str:
    if not result.edges and not result.unresolved:
        return "No calls measured."
    if result.brief:
        lines = [f"{'Caller':<30} {'Callee':<30} {'Calls':>12}"]
        lines += [f"{a[:30]:<30} {b[:30]:<30} {c:>12,}" for a, b, c, _ in result.edges]
        if result.more:
            lines.append(f"({result.more} more edges: probe report calls)")
        if result.unresolved:
            lines.append(
                f"{result.unresolved:,} indirect calls, their callees in: probe report calls"
            )
        return "\n".join(lines)
    lines = [f"{'Caller':<32} {'Callee':<32} {'Calls':>14}  "]
    for a, b, c, i in result.edges:
        lines.append(f"{a[:32]:<32} {b[:32]:<32} {c:>14,}  {'indirect' if i else ''}")
    lines.append("")
    entered = sum(result.entries.values())
    lines.append(
        f"{len(result.edges)} edges; {len(result.entries)} functions entered {entered:,} times"
    )
    return "\n".join(lines)


# -- memory -----------------------------------------------------------------------------------


@render.register
def _(result: MemoryAccess) -> str:
    if result.brief:
        (loads, loaded), (stores, stored) = result.totals("load"), result.totals("store")
        return (
            f"memory: {loads:,} loads ({loaded:,} bytes), "
            f"{stores:,} stores ({stored:,} bytes): probe report memory"
        )
    if not result.sites:
        return "No loads or stores ran."
    per_func: dict[str, list[int]] = {}
    for a in result.sites:
        f = per_func.setdefault(a.func, [0, 0, 0])
        f[0 if a.kind == "load" else 1] += a.count
        f[2] += a.bytes
    lines = [f"{'Function':<32} {'Loads':>14} {'Stores':>14} {'Bytes':>16}"]
    for func, (loads, stores, moved) in sorted(per_func.items(), key=lambda f: -f[1][2]):
        lines.append(f"{func[:32]:<32} {loads:>14,} {stores:>14,} {moved:>16,}")
    lines.append("")
    lines.append(f"{'Busiest sites':<32} {'At':>10} {'Kind':>6} {'Runs':>14} {'Addresses':>23}")
    for a in result.sites[:20]:
        span = f"{a.lowest:#x}-{a.highest:#x}" if a.lowest is not None else "?"
        lines.append(f"{a.func[:32]:<32} {a.offset:>#10x} {a.kind:>6} {a.count:>14,} {span:>23}")
    return "\n".join(lines)


# -- trace ------------------------------------------------------------------------------------


@render.register
def _(result: TraceEvents) -> str:
    if result.brief:
        return f"trace: {result.total:,} events recorded: probe report trace"
    elsewhere = _left_out(result.elsewhere, "events", "the trace view holds every one: probe query")
    if not result.events:
        return "\n".join(filter(None, ["No events recorded.", elsewhere]))
    lines = [f"{'Seq':>10}  {'Kind':<7} {'Where':<40} {'Value':>20}"]
    for e in result.events:
        if e.source is not None:  # Wasm with DWARF
            where = f"{e.func} {os.path.basename(e.source)}:{e.line}"
        elif e.offset is not None:
            where = f"{e.func} {e.offset:#x}"
        else:
            where = f"{e.func} {os.path.basename(e.unit)}:{e.line}"
        shown = e.detail if e.detail is not None else ("" if e.value is None else str(e.value))
        if e.kind in ("block", "instr", "line"):
            shown = ""  # these events have no operand: their order is the point
        lines.append(f"{e.seq:>10}  {e.kind:<7} {where[:40]:<40} {shown[:20]:>20}")
    if result.total > len(result.events):
        more = result.total - len(result.events)
        lines.append(f"({more:,} more events: probe report trace --format jsonl)")
    if elsewhere:
        lines.append(f"({elsewhere})")
    return "\n".join(lines)


# -- states -----------------------------------------------------------------------------------


@render.register
def _(result: StateTrace) -> str:
    if not result.steps:
        return "No steps recorded."
    out = []
    for s in result.steps:
        where = f"{s.func} {os.path.basename(s.unit)}:{s.line}"
        shown = []
        for v in s.values:
            if v.change == "deleted":
                shown.append(f"del {v.name}")
            elif v.name is None:
                shown.append(f"{v.change} {v.repr}")
            else:
                shown.append(f"{v.name} = {v.repr}" + (" (arg)" if v.change == "arg" else ""))
        indent = "  " * s.depth
        out.append(f"{s.step:>8}  {indent}{s.event:<9} {where}  " + "; ".join(shown))
    if result.outcome != "ok":
        why = f" ({result.message})" if result.message else ""
        out.append(f"outcome: {result.outcome}{why}")
    return "\n".join(line.rstrip() for line in out)


# -- hot paths --------------------------------------------------------------------------------


@render.register
def _(result: HotPaths) -> str:
    out: list[str] = []
    rate, total = result.rate, result.samples
    if total:
        out.append(f"{total:,} samples at {rate} Hz ({total / rate:,.2f} s sampled)")
    else:
        out.append("no samples (the run was too short, or its stacks could not be sampled)")
    unit = result.executed_unit
    shown = result.functions[:10] if result.brief else result.functions[:50]
    if shown:

        def share(n: int) -> str:
            return f"{100 * n / total:.1f}%" if total else "-"

        header = ["function", "self", "self%", "total", "total%", "calls", unit]
        body = [
            [
                f.func if result.engine == "wasm" else f"{f.func} ({result.relative(f.unit)})",
                f"{f.self_samples:,}",
                share(f.self_samples),
                f"{f.total_samples:,}",
                share(f.total_samples),
                "-" if f.calls is None else f"{f.calls:,}",
                "-" if f.executed is None else f"{f.executed:,}",
            ]
            for f in shown
        ]
        out += columns([header, *body])
    if not result.brief and total:
        out.append("")
        out.append("hottest call paths (samples, stack root first):")
        for frames, weight in result.top_stacks(10):
            out.append(f"{weight:>8,}  " + " > ".join(f[0] for f in frames))
    if result.paths:
        out.append("")
        out.append("hottest acyclic paths (Ball-Larus; count, function #path: block offsets):")
        for p in result.paths[: 10 if result.brief else 50]:
            blocks = " ".join(f"{b:#x}" for b in p.blocks)
            out.append(f"{p.count:>12,}  {p.func} #{p.path}: {blocks}")
    return "\n".join(out)
