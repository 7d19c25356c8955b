"""States: what the program held after each line, as code LLMs are trained on.

A value-level trace of the code in scope (Python): for each line run, the variables it made
new, modified or deleted, with their values; each call's arguments, each return's value,
each exception, the call depth; for lists, dicts and sets, which elements changed. The
engine records it (``engines/cpython/states.py``) into the tables ``steps`` and
``variables`` (view ``states``). ``--max-steps`` caps a run (default 1,000,000 steps).

The result, :class:`StateTrace`, is what the formats of the research tools are written
from: ``ldb``, ``semcoder``, ``traced``, ``codeexecutor`` (a module each in
``probe.reports``), ``jsonl`` (everything recorded) and ``text``.
"""

from __future__ import annotations

import dataclasses
import linecache
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from probe.errors import UsageError
from probe.probes import Kind, Probe

from . import Analysis, Tables

if TYPE_CHECKING:
    from probe.storage import Database

MAX_STEPS = 1_000_000
LEVELS = ("block", "line", "function")
_MOST_IN_A_REPORT = 5_000_000


class States(Analysis):
    name = "states"
    description = "variables after each line, arguments, returns, exceptions (Python)"

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.max_steps = int(options.get("max_steps") or MAX_STEPS)
        if self.max_steps < 1:
            raise UsageError(f"--max-steps must be at least 1, not {self.max_steps}")
        self.level = options.get("level") or "block"
        if self.level not in LEVELS:
            raise UsageError(f"--level {self.level!r}: use one of {', '.join(LEVELS)}")

    def probes(self, events: frozenset[str]) -> Iterable[Probe]:
        if "state" not in events:
            raise UsageError("states are recorded in Python programs only")
        yield Probe("state", Kind.OPERAND, limit=self.max_steps)

    def summary(self, run: dict[str, Any], tables: Tables) -> str | None:
        streamed = run.get("streamed", {})
        steps, changes = streamed.get("steps", 0), streamed.get("variables", 0)
        capped = "step cap" in (run.get("message") or "")
        return (
            f"states: {steps:,} steps, {changes:,} variable changes"
            + (f" (step cap of {self.max_steps:,} reached)" if capped else "")
            + ": probe report states, or query the tables steps and variables"
        )

    def report(self, db: Database, run_id: str, fmt: str = "text") -> str:
        from probe.reports import check, render

        check(self, StateTrace, fmt)
        return render(self, self.result(db, run_id), fmt)

    def result(self, db: Database, run_id: str) -> StateTrace:
        query = "SELECT count(*) FROM steps WHERE run_id = ?"
        ((total,),) = db.execute(query, [run_id]).fetchall()
        if total > _MOST_IN_A_REPORT:
            raise UsageError(
                f"the run has {total:,} steps, too many for one report: query the tables "
                "steps and variables (probe query)"
            )
        run = db.run(run_id)
        tables = {
            name: db.arrow(query, [run_id]).to_pydict()
            for name, query in (
                ("sites", "SELECT * EXCLUDE (run_id) FROM sites WHERE run_id = ? AND kind='func'"),
                ("steps", "SELECT * EXCLUDE (run_id) FROM steps WHERE run_id = ? ORDER BY step"),
                ("variables", "SELECT * EXCLUDE (run_id) FROM variables WHERE run_id = ?"),
            )
        }
        capped = "step cap" in (run.get("message") or "")
        outcome = "step_cap" if capped else ("ok" if run["status"] == "ok" else run["status"])
        trace = StateTrace.from_tables(tables, outcome=outcome, level=self.level)
        trace.message = run.get("message")
        return trace


@dataclass
class Value:
    """A variable's change, or a returned or yielded value, or an exception."""

    name: str | None
    scope: str
    change: str
    type: str | None
    repr: str | None
    size: int | None = None
    length: int | None = None
    str: str | None = None
    json: str | None = None
    delta: str | None = None

    @property
    def text(self) -> str:
        """str() of the value (strings unquoted), as LDB shows values."""
        if self.str is not None:
            return self.str
        return self.repr or ""

    @property
    def cut(self) -> bool:
        """Whether repr holds less than the whole value (size NULL: too big to render)."""
        return self.repr is not None and (self.size is None or self.size > len(self.repr))


@dataclass
class Step:
    step: int
    call: int
    depth: int
    event: str  # 'call' 'line' 'return' 'yield' 'exception'
    unit: str
    func: str
    line: int
    values: list[Value] = field(default_factory=list)

    def changed(self) -> list[Value]:
        """The variables this step made new, modified or deleted (or a call's arguments)."""
        return [v for v in self.values if v.name is not None]

    def value(self) -> Value | None:
        """A return's or yield's value, an exception."""
        return next((v for v in self.values if v.name is None), None)


@dataclass
class StateTrace:
    """The steps of a run (or of one call), in order, with what each changed."""

    steps: list[Step]
    outcome: str = "ok"  # 'ok' | 'exception' | 'step_cap' | 'timeout' | 'error' | ...
    level: str = "block"  # LDB's level
    message: str | None = None
    output: str = ""  # what the program printed (CodeExecutor's <output>)

    @classmethod
    def from_tables(cls, tables: Tables, **fields: Any) -> StateTrace:
        """From the tables ``sites`` (func sites), ``steps`` and ``variables``, as columns."""
        sites = tables.get("sites", {})
        where = {
            sid: (unit, func)
            for sid, kind, unit, func in zip(
                sites.get("site_id", []),
                sites.get("kind", []),
                sites.get("unit", []),
                sites.get("func", []),
                strict=True,
            )
            if kind == "func"
        }
        st = tables.get("steps", {})
        steps = []
        by_step: dict[int, Step] = {}
        for n, call, depth, event, site, line in zip(
            st.get("step", []),
            st.get("call_id", []),
            st.get("depth", []),
            st.get("event", []),
            st.get("site_id", []),
            st.get("line", []),
            strict=True,
        ):
            unit, func = where.get(site, ("?", "?"))
            step = by_step[n] = Step(n, call, depth, event, unit, func, line)
            steps.append(step)
        steps.sort(key=lambda s: s.step)
        va = tables.get("variables", {})
        names = [f.name for f in dataclasses.fields(Value)]
        rows = zip(va.get("step", []), *(va.get(n, []) for n in names), strict=True)
        for row in rows:
            owner = by_step.get(row[0])
            if owner is not None:
                owner.values.append(Value(*row[1:]))
        return cls(steps, **fields)

    def root(self) -> list[Step]:
        """The steps of the outermost call (what LDB and SemCoder annotate): the first call
        at depth 0, the module's code for a whole program."""
        if not self.steps:
            return []
        first = self.steps[0].call
        return [s for s in self.steps if s.call == first]

    def exception(self) -> Step | None:
        """The deepest step where the exception that ended the run was raised, if it ended so."""
        if self.outcome != "exception":
            return None
        raised = [s for s in self.steps if s.event == "exception"]
        if not raised:
            return None
        last = raised[-1]
        # The exception reached the outermost frame: its first raise in that chain.
        chain = [last]
        for s in reversed(raised[:-1]):
            if s.depth == chain[-1].depth + 1 and s.value() and s.value().repr == last.value().repr:  # type: ignore[union-attr]
                chain.append(s)
            elif s.depth <= chain[-1].depth:
                break
        return chain[-1]


def source_lines(unit: str) -> list[str]:
    """A file's lines, without line ends ([] where it can't be read)."""
    return [line.rstrip("\r\n") for line in linecache.getlines(unit)]


def walk(steps: list[Step]) -> Iterable[tuple[Step, dict[str, Value], dict[str, Value]]]:
    """Each step of one call with the frame's variables before and after it (name -> value,
    in the order they appeared; a return adds ``_ret``, as LDB names it)."""
    state: dict[str, Value] = {}
    for step in steps:
        before = dict(state)
        for v in step.values:
            if v.name is None:
                if v.change == "return":
                    state["_ret"] = v
            elif v.change == "deleted":
                state.pop(v.name, None)
            elif v.scope == "local":
                state[v.name] = v
        yield step, before, dict(state)
