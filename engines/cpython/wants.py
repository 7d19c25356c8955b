"""What the probes of a run want from Python's events, decided once from its ProbeSet and
frozen: the tracer and its back ends read flags, never the ProbeSet.

No ``from __future__ import annotations`` here: Wants is a NamedTuple, which compiles every
string annotation of its fields when the class is built (~5 ms at each run's start)."""

from typing import NamedTuple

from probe.probes import Kind, ProbeSet


class Wants(NamedTuple):
    trace_lines: bool = False  # an event per statement executed (line operand probes)
    line_funcs: tuple[str, ...] | None = None  # ... only in functions matching these globs
    trace_branches: bool = False  # an event per branch arc taken (its marker line ran)
    entries: bool = False  # function entries counted (for func and call probes)
    func_events: bool = False  # an event per entry
    calls: bool = False  # the call graph: (caller, line, callee) sites counted
    call_events: bool = False  # an event per call
    returns: bool = False  # returns counted
    return_events: bool = False  # an event per return, with the value
    line_points: bool = False  # callback probes on lines, funcs, returns
    func_points: bool = False
    return_points: bool = False
    count_lines: Kind | None = None  # lines flagged or counted from events (attached code)
    arcs: bool = False  # branch arcs from line transitions (code without markers)
    contexts: bool = False  # events and counts carry the current context
    gated: bool = False  # record only inside a context (decorated call trees)
    every_line: bool = False  # keep a line's events after its first (counts, arcs, contexts)
    # Lines are only counted: the LINE callback just counts, sites are found at the end.
    count_only: bool = False
    # Line events serve only callback points (no trace of lines or branches), so frames of
    # code without probes can run with line events off (3.11).
    points_only: bool = False

    @classmethod
    def of(
        cls,
        probes: ProbeSet,
        *,
        lines: Kind | None = None,
        arcs: bool = False,
        contexts: bool = False,
        gated: bool = False,
        fine: bool = False,
    ) -> "Wants":
        """``lines``: count line executions from events (FLAG or COUNT) rather than in the
        bytecode; ``arcs``: count branch arcs from line transitions; ``contexts``: there is a
        current context; ``gated``: record only where there is one; ``fine``: contexts change
        often (decorated calls), so line flags keep their events on for each context to see
        its lines (coarse contexts, tests, call context_changed() instead)."""
        kind = probes.kind_for
        switchable = probes.switchable()
        traced = kind("line") == Kind.OPERAND or kind("branch") == Kind.OPERAND
        return cls(
            trace_lines=kind("line") == Kind.OPERAND,
            line_funcs=probes.funcs_for("line", Kind.OPERAND),
            trace_branches=kind("branch") == Kind.OPERAND,
            entries=kind("func") is not None or kind("call") is not None,
            func_events=kind("func") == Kind.OPERAND,
            calls=kind("call") is not None,
            call_events=kind("call") == Kind.OPERAND,
            returns=kind("return") is not None,
            return_events=kind("return") == Kind.OPERAND,
            line_points="line" in switchable,
            func_points="func" in switchable,
            return_points="return" in switchable,
            count_lines=lines,
            arcs=arcs,
            contexts=contexts,
            gated=gated and contexts,
            # Flags may switch a line's events off once it ran, unless something needs every
            # execution: counts, arcs, or contexts that change often.
            every_line=lines == Kind.COUNT or arcs or (fine and contexts),
            count_only=bool(lines) and not (arcs or traced or "line" in switchable),
            points_only="line" in switchable and not traced,
        )

    @property
    def any(self) -> bool:
        """Whether the tracer has anything to do at all."""
        return bool(
            self.count_lines
            or self.arcs
            or self.trace_lines
            or self.trace_branches
            or self.entries
            or self.returns
            or self.line_points
            or self.func_points
            or self.return_points
        )
