"""Python probes beyond flags and counts of lines: events in order, calls, returns, callbacks.

What it records, for the files in scope:

* ``line`` operand probes: one event per statement executed, in order (a trace);
* ``branch`` operand probes: one event per branch arc taken (its marker line ran), value
  the line it leads to (negative: an exit);
* ``func``: entries of each function (counts; operand: one event per entry);
* ``call``: the dynamic call graph, one site per (caller, line, callee) with its count
  (operand: one event per call, value the callee's function number);
* ``return``: returns of each function (operand: the returned value, as an integer where
  it is one, and its repr);
* callback probes on ``line``, ``func`` and ``return`` sites, with the frame, through a
  Switchboard: they can be inserted and removed while the program runs;
* in code that was compiled without probes (a session, a decorated call, a test: see
  attach.py), line flags and counts, and branch arcs as the line that follows a branch line
  in the same frame;
* with a ``context`` (a decorated function, a test id): the context of every event, and
  counts per context.

This module is what the probes mean; how the interpreter reports events is a back end's
(``Hooks``): sys.monitoring on 3.12+ (sysmon.py), sys.settrace on 3.11 (settrace.py), the
same results. Events are buffered and handed to the recorder one batch per EVENT_BATCH.
"""

from __future__ import annotations

import os
import threading
from collections import Counter
from collections.abc import Callable
from types import CodeType, FrameType

from probe.engines import Recorder
from probe.errors import UsageError
from probe.probes import Kind, Probe, ProbeSet, Site, SiteEvent, Switchboard, site_matches

from .compat import MONITORING
from .source import MARKER_BASE, SourceInfo
from .tables import SiteIds
from .wants import Wants

TYPE_CHECKING = False  # typing's, without importing typing on a run's path (architecture)
if TYPE_CHECKING:
    from typing import Protocol
else:
    Protocol = object  # the protocols are plain classes at run time

EVENT_BATCH = 65536
_DETAIL_CHARS = 200  # a returned value's repr is cut here


class Need:
    """What a code object in scope needs, decided once: its func site, its line events, its
    returns; whether its entries and its returns are recorded as events (``--sites
    func:GLOB`` chooses the functions). (Not a NamedTuple: see analyses/rows.py.)"""

    __slots__ = ("site", "lines", "returns", "entry_events", "return_events")

    def __init__(
        self, site: int, lines: bool, returns: bool, entry_events: bool, return_events: bool
    ) -> None:
        self.site, self.lines, self.returns = site, lines, returns
        self.entry_events, self.return_events = entry_events, return_events


class Hooks(Protocol):
    """How the interpreter's events reach a Tracer: one implementation per mechanism."""

    def start(self, frame: FrameType | None) -> None:
        """Begin; ``frame`` and its callers are already running and are recorded too."""

    def stop(self) -> None: ...

    def context_changed(self) -> None:
        """Lines switched off after their first event must report again."""

    def switched_on(self, event: str) -> None:
        """A callback probe on ``event`` sites was inserted: events switched off may be
        wanted again."""


class Tracer:
    """Records the run's events, calls and returns, and fires its callback probes."""

    def __init__(
        self,
        probes: ProbeSet,
        wanted: Callable[[str], bool],
        info_for: Callable[[str], SourceInfo | None],
        ids: SiteIds,
        recorder: Recorder,
        *,
        lines: Kind | None = None,
        arcs: bool = False,
        context: Callable[[], str | None] | None = None,
        gated: bool = False,
        fine: bool = False,
    ) -> None:
        """``context``: the current context, per thread or task; the others: see Wants.of."""
        self.wants = Wants.of(
            probes, lines=lines, arcs=arcs, contexts=context is not None, gated=gated, fine=fine
        )
        self.wanted = wanted
        self.is_probe = getattr(wanted, "is_probe", lambda filename: False)
        self.info_for = info_for
        self.ids = ids
        self.recorder = recorder
        self.context = context if context is not None else _no_context
        self.arc_counts: Counter[int] = Counter()  # branch arcs of attached code
        self.context_counts: Counter[tuple[str | None, int]] = Counter()
        self._physical: Counter[tuple[str | None, int, int]] = Counter()  # (context, stmt, line)
        # Only counting lines: events go here by (context, file, line), sites found at the end.
        self.raw: dict[tuple[str | None, str, int], int] = {}
        self.last: dict[FrameType, int] = {}  # arcs: the statement each frame ran last
        self.board = Switchboard(self._resolve, self._switch, lazy=True)
        self._initial = [p for p in probes.callback_probes() if p.callback is not None]
        # What each code object needs, decided once. Keyed by id: 3.11's probed code objects
        # hold a list, so they can't be hashed; the code object is kept alongside so that its
        # id is not reused.
        self.codes: dict[int, Need | None] = {}
        self._held: list[CodeType] = []
        self._lines: dict[tuple[str, int], int | None] = {}  # (file, line) -> site to trace
        self.entry_counts: Counter[int] = Counter()
        self.call_counts: Counter[int] = Counter()
        self.return_counts: Counter[int] = Counter()
        self._buffer: list[tuple[int, int | None, str | None, str | None, int]] = []
        self._seq = 0
        self._lock = threading.Lock()
        self._thread = threading.local()  # .tid: the OS id of the thread, asked for once
        self._real: dict[str, str] = {}
        self._trace_sites: dict[int, bool] = {}
        if MONITORING:
            from .sysmon import Hooks as Mechanism
        else:
            from .settrace import Hooks as Mechanism
        self.hooks: Hooks = Mechanism(self)

    @property
    def needed(self) -> bool:
        return self.wants.any

    # -- starting and stopping --------------------------------------------------------

    def start(self, frame: FrameType | None) -> None:
        """Record from now on; ``frame`` (the caller's) and its callers are running already."""
        for probe in self._initial:
            self.board.insert(probe)
        self.hooks.start(frame)

    def stop(self) -> None:
        self.hooks.stop()
        self.last.clear()
        self.flush()

    def forked(self, recorder: Recorder) -> None:
        """In a forked child: count from zero (what ran before the fork is the parent's), and
        record to ``recorder``, the child's part of the run (whose counts, not events, are
        added to the run's)."""
        self.recorder = recorder
        for counted in (self.arc_counts, self.context_counts, self._physical, self.raw,
                        self.entry_counts, self.call_counts, self.return_counts):  # fmt: skip
            counted.clear()
        self._buffer = []
        self._lock = threading.Lock()  # another thread of the parent may have held it
        self._thread = threading.local()  # the child's thread has an id of its own

    def context_changed(self) -> None:
        """A new context began (a test): lines switched off after their first run in the
        last one must report again."""
        self.hooks.context_changed()

    # -- events -------------------------------------------------------------------------

    def event(self, site: int, value: int | None = None, detail: str | None = None) -> None:
        context = self.context()
        tid = getattr(self._thread, "tid", None)  # a timeline's slices are per thread
        if tid is None:
            tid = self._thread.tid = threading.get_native_id()
        self._buffer.append((site, value, detail, context, tid))  # one append: whole, any thread
        if len(self._buffer) >= EVENT_BATCH:
            self.flush()

    def flush(self) -> None:
        with self._lock:
            n = len(self._buffer)
            if not n:
                return
            # Copy, then cut, the first n: events other threads add meanwhile land after them.
            taken = self._buffer[:n]
            del self._buffer[:n]
            sites, values, details, contexts, threads = (list(c) for c in zip(*taken, strict=True))
            batch = {
                "seq": list(range(self._seq, self._seq + n)),
                "site_id": sites,
                "value": values,
                "detail": details,
                "thread": threads,
            }
            if self.wants.contexts:
                batch["context"] = contexts
            self.recorder.append("events", batch)
            self._seq += n

    # -- what a code object needs, once ---------------------------------------------------

    def need(self, code: CodeType) -> Need | None:
        """What ``code`` needs (None: it is not in scope), decided on first sight."""
        known = self.codes.get(id(code), False)
        if known is not False:
            return known
        self._held.append(code)
        if not self.wanted(code.co_filename):
            self.codes[id(code)] = None
            return None
        wants = self.wants
        func = func_name(code)
        unit, line = self.real(code.co_filename), code.co_firstlineno
        site = self.ids.get("func", unit, func, line)
        if wants.func_points:
            self.board.discovered("func", site, _matcher("func", unit, func, line))
        lines = bool(wants.trace_branches or wants.line_points or wants.count_lines or wants.arcs)
        if wants.trace_lines:
            lines = lines or wants.line_funcs is None or _any_match(func, wants.line_funcs)
        returns = wants.returns or wants.return_points or wants.arcs
        entry_events = wants.func_events and (
            wants.func_funcs is None or _any_match(func, wants.func_funcs)
        )
        return_events = wants.return_events and (
            wants.return_funcs is None or _any_match(func, wants.return_funcs)
        )
        found = self.codes[id(code)] = Need(site, lines, returns, entry_events, return_events)
        return found

    def real(self, filename: str) -> str:
        path = self._real.get(filename)
        if path is None:
            path = self._real[filename] = os.path.realpath(filename)
        return path

    def _line_site(self, filename: str, line: int) -> int | None:
        """The site a line event belongs to: its statement, or a branch arc for a marker."""
        key = (filename, line)
        if key in self._lines:
            return self._lines[key]
        site = None
        filename = self.real(filename)
        info = self.info_for(filename)
        if info is not None:
            if line >= MARKER_BASE:
                arc = next((a for a, w in info.arcs.items() if w == line), None)
                if arc is not None:
                    func = info.funcs.get(arc[0], "<module>")
                    site = self.ids.get("branch", filename, func, arc[0], arc[1])
            else:
                stmt = info.statement_of(line)
                if stmt is not None:
                    site = self.ids.get("line", filename, info.funcs.get(stmt, "<module>"), stmt)
        self._lines[key] = site
        return site

    def has_line_probes(self, code: CodeType) -> bool:
        """Whether a line of ``code`` has a callback probe now."""
        lines = {line for _, _, line in code.co_lines() if line}
        sites = (self._line_site(code.co_filename, line) for line in lines)
        return any(s is not None and self.board.active("line", s) for s in sites)

    def _traced(self, site: int) -> bool:
        """Whether line events of ``site`` go into the trace (--sites func:GLOB), once a site."""
        known = self._trace_sites.get(site)
        if known is None:
            funcs = self.wants.line_funcs
            known = self._trace_sites[site] = funcs is None or _any_match(
                self.ids.rows[site][2], funcs
            )
        return known

    def lines(self) -> tuple[dict[int, int], dict[tuple[str | None, int], int]]:
        """Line counts of attached code, per statement site and per (context, site): the
        count of a statement's busiest physical line."""
        for (context, filename, line), n in list(self.raw.items()):
            site = self._line_site(filename, line)
            if site is not None:
                self._physical[(context, site, line)] += n
        self.raw.clear()
        total: dict[tuple[int, int], int] = {}
        per_context: dict[tuple[str | None, int], int] = {}
        for (context, site, line), n in list(self._physical.items()):
            total[(site, line)] = total.get((site, line), 0) + n
            key = (context, site)
            per_context[key] = max(per_context.get(key, 0), n)
        counts: dict[int, int] = {}
        for (site, _), n in total.items():
            counts[site] = max(counts.get(site, 0), n)
        return counts, per_context

    def _arc(self, frame: FrameType, site: int | None) -> None:
        """Count the arc from the statement ``frame`` ran last to ``site`` (None: the frame
        returns), when that arc is a branch arc of the file."""
        if site is None:
            last = self.last.pop(frame, None)
            if last is None:
                return
            unit, func, src = self.ids.rows[last][1:4]
            dst = -frame.f_code.co_firstlineno
        else:
            last = self.last.get(frame)
            self.last[frame] = site
            if last is None or last == site:
                return
            unit, func, src = self.ids.rows[last][1:4]
            dst = self.ids.rows[site][3]
        info = self.info_for(unit)
        if info is None or (src, dst) not in info.arcs:
            return
        arc = self.ids.get("branch", unit, info.funcs.get(src, "<module>"), src, dst)
        context = self.context()
        if self.wants.gated and context is None:
            return
        self.arc_counts[arc] += 1
        if self.wants.contexts:
            self.context_counts[(context, arc)] += 1

    # -- what the back ends report --------------------------------------------------------

    def entered(self, code: CodeType, frame: FrameType) -> Need | None:
        """``code`` starts running in ``frame``."""
        need = self.need(code)
        wants = self.wants
        if need is None or (wants.gated and self.context() is None):
            return need
        site = need.site
        if wants.entries:
            self.entry_counts[site] += 1
            if wants.contexts:
                self.context_counts[(self.context(), site)] += 1
            if need.entry_events:
                self.event(site)
        if wants.calls:
            caller = frame.f_back
            while caller is not None and self.need(caller.f_code) is None:
                if self.is_probe(caller.f_code.co_filename):
                    caller = None  # the program's own calls begin below probe's frames
                    break
                caller = caller.f_back
            if caller is not None:
                ccode = caller.f_code
                unit = self.real(ccode.co_filename)
                edge = self.ids.get("call", unit, func_name(ccode), caller.f_lineno, site)
                self.call_counts[edge] += 1
                if wants.call_events:
                    self.event(edge, site)
        if wants.func_points and self.board.active("func", site):
            self._fire("func", site, frame, code.co_firstlineno)
        return need

    def line(self, code: CodeType, line: int, frame: FrameType) -> bool:
        """Record a line event; False when nothing wants this line's events at present."""
        site = self._line_site(code.co_filename, line)
        if site is None:
            return False
        wants = self.wants
        if wants.gated and self.context() is None:
            return True  # outside every recorded call tree: its line may run inside one later
        if line >= MARKER_BASE:
            if wants.trace_branches:
                self.event(site, self.ids.rows[site][4])
                return True
            return False
        wanted = False
        if wants.count_lines:
            # By physical line: a statement over several lines counts as its busiest line,
            # as in the bytecode counts of `probe run` (see lines()).
            self._physical[(self.context(), site, line)] += 1
            wanted = wants.every_line
        if wants.arcs:
            self._arc(frame, site)
        if wants.trace_lines and self._traced(site):
            self.event(site)
            wanted = True
        if wants.line_points and self.board.active("line", site):
            self._fire("line", site, frame, line)
            wanted = True
        return wanted

    def returned(self, code: CodeType, value: object, frame: FrameType) -> None:
        """``code`` returns ``value`` from ``frame`` (not by an exception)."""
        need = self.need(code)
        if need is None:
            return
        wants = self.wants
        if wants.arcs:
            self._arc(frame, None)
        if wants.gated and self.context() is None:
            return
        unit, func = self.ids.rows[need.site][1:3]
        known = len(self.ids.rows)
        site = self.ids.get("return", unit, func, code.co_firstlineno)
        if wants.return_points and site == known:  # a return site seen for the first time
            self.board.discovered(
                "return", site, _matcher("return", unit, func, code.co_firstlineno)
            )
        self.return_counts[site] += 1
        if need.return_events:
            number = value if type(value) is int and -(2**63) <= value < 2**63 else None
            if type(value) is bool:
                number = int(value)
            try:
                detail = repr(value)[:_DETAIL_CHARS]
            except Exception:  # noqa: BLE001 - a broken __repr__ of the program's object
                detail = f"<{type(value).__name__}>"
            self.event(site, number, detail)
        if wants.return_points and self.board.active("return", site):
            self._fire("return", site, frame, code.co_firstlineno, value)

    def unwound(self, frame: FrameType, exc: BaseException | None = None) -> None:
        """An exception leaves ``frame``: its last statement is forgotten, and no return is
        counted; where return events are wanted, one says the call ended (value None,
        detail "raised ValueError"), so that every call's end is in the events."""
        if self.last:
            self.last.pop(frame, None)
        wants = self.wants
        if not wants.return_events or (wants.gated and self.context() is None):
            return
        code = frame.f_code
        need = self.need(code)
        if need is None or not need.return_events:
            return
        unit, func = self.ids.rows[need.site][1:3]
        site = self.ids.get("return", unit, func, code.co_firstlineno)
        self.event(site, None, f"raised {type(exc).__name__}" if exc is not None else "raised")

    def _fire(
        self, event: str, site: int, frame: FrameType, line: int, value: object = None
    ) -> None:
        kind, unit, func, _, _ = self.ids.rows[site]
        what = SiteEvent(
            site, kind, func, line=line, unit=unit, value=value, frame=frame, probes=self.board
        )
        self.board.fire(event, site, what)

    # -- live probes ----------------------------------------------------------------------

    def _resolve(self, probe: Probe) -> list[int]:
        pattern = probe.site
        assert pattern is not None
        if pattern.unit is None:
            raise UsageError(f"a Python {probe.event} probe needs the file its site is in")
        unit = os.path.realpath(pattern.unit)
        info = self.info_for(unit)
        if info is None:
            return []
        if probe.event == "line":
            return [
                self.ids.get("line", unit, info.funcs.get(stmt, "<module>"), stmt)
                for stmt in sorted(info.statements)
                if site_matches(pattern, "line", unit, info.funcs.get(stmt, "<module>"), stmt)
            ]
        return [
            sid
            for sid, (kind, u, func, line, _) in enumerate(self.ids.rows)
            if kind == probe.event and u == unit and site_matches(pattern, kind, u, func, line)
        ]

    def _switch(self, event: str, site_ids: object, on: bool) -> None:
        if on:
            self.hooks.switched_on(event)


def _no_context() -> None:
    return None


def func_name(code: CodeType) -> str:
    """A code object's function name as sites give it (qualified; ``<module>``)."""
    if code.co_name == "<module>":
        return "<module>"
    return getattr(code, "co_qualname", code.co_name)


def _matcher(kind: str, unit: str, func: str, line: int) -> Callable[[Site], bool]:
    return lambda pattern: site_matches(pattern, kind, unit, func, line)


def _any_match(func: str, patterns: tuple[str, ...]) -> bool:
    import fnmatch

    return any(fnmatch.fnmatchcase(func, p) for p in patterns)
