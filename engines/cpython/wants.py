"""What the probes of a run want from Python's events, decided once from its ProbeSet and
frozen: the tracer and its back ends read flags, never the ProbeSet.

Wants is a collections.namedtuple, not a typing.NamedTuple: that would import typing and
compile every field's annotation when the class is built (~5 ms at each run's start)."""

from __future__ import annotations

from collections import namedtuple

from probe.probes import Kind, ProbeSet

# Each field and its default: what the tracer and its back ends read.
_FIELDS = (
    ("trace_lines", False),  # an event per statement executed (line operand probes)
    ("line_funcs", None),  # ... only in functions matching these globs
    ("trace_branches", False),  # an event per branch arc taken (its marker line ran)
    ("entries", False),  # function entries counted (for func and call probes)
    ("func_events", False),  # an event per entry
    ("func_funcs", None),  # ... only of functions matching these globs
    ("calls", False),  # the call graph: (caller, line, callee) sites counted
    ("call_events", False),  # an event per call
    ("returns", False),  # returns counted
    ("return_events", False),  # an event per return, with the value
    ("return_funcs", None),  # ... only of functions matching these globs
    ("line_points", False),  # callback probes on lines, funcs, returns
    ("func_points", False),
    ("return_points", False),
    ("count_lines", None),  # lines flagged or counted from events (attached code)
    ("arcs", False),  # branch arcs from line transitions (code without markers)
    ("contexts", False),  # events and counts carry the current context
    ("gated", False),  # record only inside a context (decorated call trees)
    ("every_line", False),  # keep a line's events after its first (counts, arcs, contexts)
    # Lines are only counted: the LINE callback just counts, sites are found at the end.
    ("count_only", False),
    # Line events serve only callback points (no trace of lines or branches), so frames of
    # code without probes can run with line events off (3.11).
    ("points_only", False),
)


class Wants(namedtuple("Wants", [f for f, _ in _FIELDS], defaults=[d for _, d in _FIELDS])):
    """Flags (bools), ``line_funcs``, ``func_funcs``, ``return_funcs`` (tuples of globs, or
    None: every function) and ``count_lines`` (a Kind,
    or None): see _FIELDS."""

    __slots__ = ()

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
    ) -> Wants:
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
            func_funcs=probes.funcs_for("func", Kind.OPERAND),
            calls=kind("call") is not None,
            call_events=kind("call") == Kind.OPERAND,
            returns=kind("return") is not None,
            return_events=kind("return") == Kind.OPERAND,
            return_funcs=probes.funcs_for("return", Kind.OPERAND),
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
