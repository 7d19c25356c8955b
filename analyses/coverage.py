"""Coverage: which code ran.

Python: a flag on every line site, and with ``branch`` on every branch arc; the result is
coverage.py's per-file model, so that its reports (text, JSON, LCOV, Cobertura XML) carry
coverage.py's numbers.

Wasm: a flag on every function entry and basic block (with ``instr``, on every instruction,
exact even when the program traps); the result is per function, blocks and instructions
covered. Without ``instr``, an instruction counts as covered when its block ran. Where the
module has DWARF line tables, the engine adds a ``line`` site per line of the user's source
files (counted from its blocks), and the result is per source file and line too.
"""

from __future__ import annotations

import os
from collections.abc import Iterable

from probe.config import DEFAULT_EXCLUDE, DEFAULT_PARTIAL
from probe.probes import Kind, Probe

from . import Analysis, Report, Tables, rows
from .rows import Site

TYPE_CHECKING = False  # typing's, without importing typing on a run's path (architecture)
if TYPE_CHECKING:
    from typing import Any

    from probe.storage import Database

PYTHON_KINDS = ("file", "line", "branch", "excluded", "no_branch")
WASM_KINDS = ("func", "block", "instr", "line", "branch")


class Coverage(Analysis):
    name = "coverage"
    description = "line coverage, and branch coverage with --branch (coverage.py's numbers)"

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
        from probe.reports import render

        kinds = WASM_KINDS if run.get("engine") == "wasm" else PYTHON_KINDS
        found = result(run, rows.from_tables(tables, kinds), brief=True, view=self.options)
        self._total = _total(found)
        return render(self, found, "text")

    def report(self, db: Database, run_id: str, fmt: str = "text") -> Report:
        from probe.reports import render

        run = db.run(run_id)
        kinds = WASM_KINDS if run["engine"] == "wasm" else PYTHON_KINDS
        found = result(run, rows.from_db(db, run_id, kinds), view=self.options)
        self._total = _total(found)
        if isinstance(found, LineCoverage) and fmt in ("coverage-data", "html"):
            found.contexts = _contexts(db, run_id)
        return render(self, found, fmt)

    def failure(self) -> str | None:
        """Below fail_under, as coverage.py decides it (the total rounded to the precision
        the threshold needs; 100 means every statement and branch) and says it."""
        under = self.options.get("fail_under")
        total = getattr(self, "_total", None)
        if not under or total is None:
            return None
        precision = _precision_for(float(under), int(self.options.get("precision") or 0))
        if float(under) == 100.0:
            if total == 100.0:
                return None
            shown = display(total, precision)
        elif round(total, precision) >= float(under):
            return None
        else:
            shown = f"{round(total, precision):.{precision}f}"
        return (
            f"Coverage failure: total of {shown} is less than "
            f"fail-under={float(under):.{precision}f}"
        )


def result(
    run: dict[str, Any],
    sites: Iterable[Site],
    brief: bool = False,
    view: dict[str, Any] | None = None,
) -> Any:
    """A run's coverage: LineCoverage (Python) or WasmCoverage. ``view``: the report
    settings (show_missing, skip_covered, skip_empty, sort, precision)."""
    if run.get("engine") == "wasm":
        sites = list(sites)
        return WasmCoverage(
            wasm_functions(sites),
            run.get("target") or "",
            brief,
            sources=source_files(sites),
            cwd=run.get("cwd") or os.getcwd(),
        )
    branch = bool((run.get("options") or {}).get("branch"))
    view = view or {}
    return LineCoverage(
        collect(sites),
        run.get("cwd") or os.getcwd(),
        branch,
        brief,
        show_missing=bool(view.get("show_missing")),
        skip_covered=bool(view.get("skip_covered")),
        skip_empty=bool(view.get("skip_empty")),
        sort=str(view.get("sort") or "name"),
        precision=int(view.get("precision") or 0),
        run_id=run.get("run_id"),
        exclude=(*view.get("exclude_lines", DEFAULT_EXCLUDE), *view.get("exclude_also", ())),
        partial=tuple(view.get("partial_branches", DEFAULT_PARTIAL)),
    )


def _contexts(
    db: Database, run_id: str
) -> dict[str, dict[str, tuple[set[int], set[tuple[int, int]]]]]:
    """What each context (a test, in a pytest session) ran: its lines and branch arcs; ""
    is what ran outside every test (coverage.py's empty context). None recorded: empty."""
    found: dict[str, dict[str, tuple[set[int], set[tuple[int, int]]]]] = {}
    if "context_counts" not in db.table_names():
        return found
    rows = db.execute(
        "SELECT c.context, s.kind, s.unit, s.line, s.target FROM context_counts c "
        "JOIN sites s USING (run_id, site_id) WHERE c.run_id = ? AND c.count > 0 "
        "AND s.kind IN ('line', 'branch')",
        [run_id],
    ).fetchall()
    for context, kind, unit, line, target in rows:
        lines, arcs = found.setdefault(context or "", {}).setdefault(unit, (set(), set()))
        if kind == "line":
            lines.add(line)
        else:
            arcs.add((line, target))
    return found


def _total(found: Any) -> float | None:
    if isinstance(found, LineCoverage):
        return found.percent()
    if found.sources:
        return found.percent()
    covered = total = 0
    for f in found.functions.values():
        c, t = f.instructions()
        covered, total = covered + c, total + t
    return 100.0 * covered / total if total else 100.0


def _precision_for(fail_under: float, precision: int) -> int:
    """At least the digits the threshold itself has (fail_under = 92.5 compares to 0.1)."""
    if fail_under == int(fail_under):
        return precision
    return max(precision, len(repr(fail_under).split(".")[1]))


# -- Python: per file, as coverage.py counts ------------------------------------------------


class FileCoverage:
    """One file's results, the fields of coverage.py's JSON report. (The models here are
    plain classes, not dataclasses: a run imports this module; see probe.probes on why.)"""

    def __init__(self, path: str) -> None:
        self.path = path
        self.executed: set[int] = set()
        self.missing: set[int] = set()
        self.excluded: set[int] = set()
        self.arcs_hit: set[tuple[int, int]] = set()
        self.arcs_missed: set[tuple[int, int]] = set()
        # Arcs not taken from lines not held to every arc (`# pragma: no branch`): counted
        # as branches, never missing, as coverage.py counts them.
        self.arcs_excused: set[tuple[int, int]] = set()
        self.no_branch: set[int] = set()
        self.functions: dict[str, int] = {}  # Wasm with DWARF: name -> first line
        # Wasm with DWARF and --branch: line -> branch offset -> [(arm's offset, count)]
        self.arms: dict[int, dict[int, list[tuple[int, int]]]] = {}

    @property
    def statements(self) -> int:
        return len(self.executed) + len(self.missing)

    @property
    def branches(self) -> int:
        """Python's arcs from branch lines, or the arms of Wasm branches on source lines."""
        arms = sum(n for n, _ in self.arm_counts().values())
        return len(self.arcs_hit) + len(self.arcs_missed) + len(self.arcs_excused) + arms

    @property
    def covered_branches(self) -> int:
        arms = sum(taken for _, taken in self.arm_counts().values())
        return len(self.arcs_hit) + len(self.arcs_excused) + arms

    def arm_counts(self) -> dict[int, tuple[int, int]]:
        """Wasm: per source line with branches, (arms, arms taken)."""
        return {
            line: (sum(map(len, by.values())), sum(1 for a in by.values() for _, c in a if c))
            for line, by in self.arms.items()
        }

    def partial_lines(self) -> set[int]:
        """Branch lines that ran but did not take every arc (Wasm: every arm)."""
        arms = {line for line, (n, taken) in self.arm_counts().items() if taken < n}
        return {src for src, _ in self.arcs_missed if src in self.executed} | (arms & self.executed)


class LineCoverage:
    """A Python run's coverage: per file, with paths shown relative to ``cwd``. ``brief``: a
    summary, printed when the run ends. The report settings, as coverage.py's report has
    them: ``show_missing`` (a Missing column: missed lines and partial branches),
    ``skip_covered`` (leave out files at 100%), ``skip_empty`` (files without statements),
    ``sort`` (by a column; "-cover": descending), ``precision`` (digits after the decimal
    point). ``run_id``: the run shown; ``exclude``/``partial``: the regexes of excluded lines
    and of partial branches (coverage.py's by default); ``contexts``: per test, file ->
    (lines, branch arcs) it ran, where a format needs them."""

    def __init__(
        self,
        files: dict[str, FileCoverage],
        cwd: str,
        branch: bool,
        brief: bool = False,
        *,
        show_missing: bool = False,
        skip_covered: bool = False,
        skip_empty: bool = False,
        sort: str = "name",
        precision: int = 0,
        run_id: str | None = None,
        exclude: tuple[str, ...] = DEFAULT_EXCLUDE,
        partial: tuple[str, ...] = DEFAULT_PARTIAL,
        contexts: dict[str, dict[str, tuple[set[int], set[tuple[int, int]]]]] | None = None,
    ) -> None:
        self.files = files
        self.cwd = cwd
        self.branch = branch
        self.brief = brief
        self.show_missing = show_missing
        self.skip_covered = skip_covered
        self.skip_empty = skip_empty
        self.sort = sort
        self.precision = precision
        self.run_id = run_id
        self.exclude = exclude
        self.partial = partial
        self.contexts = contexts

    def relative(self, path: str) -> str:
        return _relative(path, self.cwd)

    def percent(self, files: Iterable[FileCoverage] | None = None) -> float:
        """Covered statements (and branches, with --branch) in percent, as coverage.py."""
        hit = total = 0
        for f in self.files.values() if files is None else files:
            hit += len(f.executed) + (f.covered_branches if self.branch else 0)
            total += f.statements + (f.branches if self.branch else 0)
        return 100.0 * hit / total if total else 100.0


def collect(sites: Iterable[Site]) -> dict[str, FileCoverage]:
    files: dict[str, FileCoverage] = {}
    for s in sites:
        fc = files.get(s.unit)
        if fc is None:
            fc = files[s.unit] = FileCoverage(s.unit)
        if s.kind == "line":
            (fc.executed if s.count else fc.missing).add(s.line)
        elif s.kind == "excluded":
            fc.excluded.add(s.line)
        elif s.kind == "no_branch":
            fc.no_branch.add(s.line)
        elif s.kind == "branch":
            (fc.arcs_hit if s.count else fc.arcs_missed).add((s.line, s.target))
    for fc in files.values():
        fc.arcs_excused = {arc for arc in fc.arcs_missed if arc[0] in fc.no_branch}
        fc.arcs_missed -= fc.arcs_excused
    return files


def display(pc: float, precision: int = 0) -> str:
    """A percent with ``precision`` decimals, never showing 0 for some coverage or 100 for
    incomplete coverage (as coverage.py)."""
    near = 10.0**-precision
    if 0 < pc < near:
        pc = near
    elif 100 - near < pc < 100:
        pc = 100 - near
    return f"{pc:.{precision}f}"


# -- Wasm: per function ---------------------------------------------------------------------


class FunctionCoverage:
    """One Wasm function's: its entry count (1 for a flag, or 0), block offset -> count and
    -> instructions, and exact instruction coverage where it was probed."""

    def __init__(self, name: str, offset: int = 0) -> None:
        self.name = name
        self.offset = offset
        self.entered = 0
        self.blocks: dict[int, int] = {}
        self.sizes: dict[int, int] = {}
        self.instrs: dict[int, int] | None = None

    def covered_blocks(self) -> int:
        return sum(1 for c in self.blocks.values() if c)

    def instructions(self) -> tuple[int, int]:
        """(covered, total) instructions."""
        if self.instrs is not None:
            return sum(1 for c in self.instrs.values() if c), len(self.instrs)
        total = sum(self.sizes.values())
        return sum(self.sizes[b] for b, c in self.blocks.items() if c), total

    def executed(self) -> int:
        """Instructions executed, from block counts times block sizes."""
        return sum(c * self.sizes.get(o, 0) for o, c in self.blocks.items())


class WasmCoverage:
    """A Wasm run's coverage, per function of ``module``; ``brief``: a summary (the 20
    functions with most missed). ``sources``: per source file (DWARF), its lines run and
    missed, its branch arms and its functions' first lines; paths are shown relative to
    ``cwd``."""

    def __init__(
        self,
        functions: dict[str, FunctionCoverage],
        module: str,
        brief: bool = False,
        *,
        sources: dict[str, FileCoverage] | None = None,
        cwd: str = "",
    ) -> None:
        self.functions = functions
        self.module = module
        self.brief = brief
        self.sources = sources or {}
        self.cwd = cwd or os.getcwd()

    def relative(self, path: str) -> str:
        return _relative(path, self.cwd)

    @property
    def branch(self) -> bool:
        """Whether branch arms were measured on source lines (--branch)."""
        return any(f.arms for f in self.sources.values())

    def percent(self, files: Iterable[FileCoverage] | None = None) -> float:
        """Source lines run (and arms taken, with --branch, as coverage.py counts branches),
        in percent, of ``files`` (every source file by default)."""
        hit = total = 0
        for f in self.sources.values() if files is None else files:
            hit += len(f.executed) + f.covered_branches
            total += f.statements + f.branches
        return 100.0 * hit / total if total else 100.0

    def entered(self, name: str) -> bool:
        """Whether the function ``name`` ran."""
        f = self.functions.get(name)
        return bool(f and f.entered)


def _relative(path: str, cwd: str) -> str:
    """``path`` relative to ``cwd`` where it is below it, else as it is."""
    rel = os.path.relpath(path, cwd)
    return path if rel.startswith("..") else rel


def source_files(sites: Iterable[Site]) -> dict[str, FileCoverage]:
    """Source files from a Wasm run's line sites: lines run or missed, and each function's
    first line (a line in several functions, as a header's inline code, ran if any ran)."""
    files: dict[str, FileCoverage] = {}
    sites = list(sites)
    where: dict[tuple[str, int], str] = {}  # (function, line) -> its source file
    for s in sites:
        if s.kind != "line":
            continue
        where[(s.func, s.line)] = s.unit
        fc = files.get(s.unit)
        if fc is None:
            fc = files[s.unit] = FileCoverage(s.unit)
        if s.count:
            fc.executed.add(s.line)
            fc.missing.discard(s.line)
        elif s.line not in fc.executed:
            fc.missing.add(s.line)
        first = fc.functions.get(s.func)
        if first is None or s.line < first:
            fc.functions[s.func] = s.line
    for s in sites:  # a branch's arms, on its instruction's source line
        if s.kind == "branch" and s.line is not None:
            # a database of an older probe has no source: the function's line names it
            source = s.source or where.get((s.func, s.line))
            fc = files.get(source)
            if fc is not None and (s.line in fc.executed or s.line in fc.missing):
                arms = fc.arms.setdefault(s.line, {})
                arms.setdefault(s.offset, []).append((s.target, s.count or 0))
    return files


def wasm_functions(sites: Iterable[Site]) -> dict[str, FunctionCoverage]:
    """Functions with their entry, block and instruction sites (also hotness's model), in
    the order of the sites (the module's)."""
    funcs: dict[str, FunctionCoverage] = {}
    for s in sites:
        f = funcs.get(s.func)
        if f is None:
            f = funcs[s.func] = FunctionCoverage(s.func, s.offset)
        if s.kind == "func":
            f.offset, f.entered = s.offset, s.count or 0
        elif s.kind == "block":
            f.blocks[s.offset] = s.count or 0
            f.sizes[s.offset] = s.size or 0
        elif s.kind == "instr":
            if f.instrs is None:
                f.instrs = {}
            f.instrs[s.offset] = s.count or 0
    return funcs
