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

3.12+: sys.monitoring, a tool of its own (coverage's line probes use another one).
3.11: sys.settrace and threading.settrace; slower, the same results.

Events are buffered and handed to the recorder as one batch per EVENT_BATCH events.
"""

from __future__ import annotations

import sys
import threading
from collections import Counter
from collections.abc import Callable
from types import CodeType, FrameType
from typing import Any

from probe.engines import Recorder
from probe.errors import UsageError
from probe.probes import Kind, Probe, ProbeSet, Site, SiteEvent, Switchboard, site_matches

from .monitor import START_DISABLE_HIDES_LINE, claim_tool, release_tool
from .source import MARKER_BASE, SourceInfo

EVENT_BATCH = 65536
MONITORING = sys.version_info >= (3, 12)
_DETAIL_CHARS = 200  # a returned value's repr is cut here


class SiteIds:
    """Site ids of a Python run, given out as sites are first seen (during the run or after)."""

    def __init__(self) -> None:
        self.ids: dict[tuple, int] = {}
        self.rows: list[tuple] = []  # (kind, unit, func, line, target), by id

    def get(
        self, kind: str, unit: str, func: str, line: int | None, target: int | None = None
    ) -> int:
        key = (kind, unit, func, line, target)
        sid = self.ids.get(key)
        if sid is None:
            sid = self.ids[key] = len(self.rows)
            self.rows.append((kind, unit, func, line, target))
        return sid


def _qualname(code: CodeType) -> str:
    return getattr(code, "co_qualname", code.co_name)


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
        """``lines``: count line executions here (FLAG or COUNT) rather than in the bytecode;
        ``arcs``: count branch arcs from line transitions (code without markers);
        ``context``: the current context, per thread or task; ``gated``: record only where
        there is one; ``fine``: contexts change often (decorated calls), so line flags keep
        their events on for each context to see its lines (coarse contexts, tests, call
        context_changed() instead)."""
        self.wanted = wanted
        self.is_probe = getattr(wanted, "is_probe", lambda filename: False)
        self.info_for = info_for
        self.ids = ids
        self.recorder = recorder
        self.trace_lines = probes.kind_for("line") == Kind.OPERAND
        self.line_funcs = probes.funcs_for("line", Kind.OPERAND)
        self.trace_branches = probes.kind_for("branch") == Kind.OPERAND
        self.entries = probes.kind_for("func") is not None or probes.kind_for("call") is not None
        self.func_events = probes.kind_for("func") == Kind.OPERAND
        self.calls = probes.kind_for("call") is not None
        self.call_events = probes.kind_for("call") == Kind.OPERAND
        self.returns = probes.kind_for("return") is not None
        self.return_events = probes.kind_for("return") == Kind.OPERAND
        switchable = probes.switchable()
        self.line_points = "line" in switchable
        self.func_points = "func" in switchable
        self.return_points = "return" in switchable
        self.count_lines = lines
        self.arcs = arcs
        self._context = context
        self.gated = gated and context is not None
        # Flags may switch a line's events off once it ran, unless something needs every
        # execution: counts, arcs, or contexts that change often.
        self._every_line = lines == Kind.COUNT or arcs or (fine and context is not None)
        self.arc_counts: Counter[int] = Counter()  # branch arcs of attached code
        self.context_counts: Counter[tuple[str | None, int]] = Counter()
        self._physical: Counter[tuple[str | None, int, int]] = Counter()  # (context, stmt, line)
        # Only counting lines: events go to _raw by (context, file, line), sites found at the end.
        self._count_only = bool(lines) and not (
            arcs or self.trace_lines or self.trace_branches or self.line_points
        )
        self._raw: dict[tuple[str | None, str, int], int] = {}
        self._last: dict[FrameType, int] = {}  # arcs: the statement each frame ran last
        self.board = Switchboard(self._resolve, self._switch, lazy=True)
        self._initial = [p for p in probes.callback_probes() if p.callback is not None]
        # What each code object needs, decided once: (func site, wants lines, wants returns).
        # Keyed by id: 3.11's probed code objects hold a list, so they can't be hashed; the
        # code object is kept alongside so that its id is not reused.
        self._codes: dict[int, tuple[int, bool, bool] | None] = {}
        self._held: list[CodeType] = []
        self._lines: dict[tuple[str, int], int | None] = {}  # (file, line) -> site to trace
        self.entry_counts: Counter[int] = Counter()
        self.call_counts: Counter[int] = Counter()
        self.return_counts: Counter[int] = Counter()
        self._buffer: list[tuple[int, int | None, str | None, str | None]] = []
        self._seq = 0
        self._tool: int | None = None
        self._lock = threading.Lock()
        self._unwinding: set[FrameType] = set()  # 3.11: frames an exception is leaving
        # 3.11: line events are only for callback points (no trace of lines or branches), so
        # frames of code without probes can run with line events off.
        self._points_only = self.line_points and not (self.trace_lines or self.trace_branches)
        self._switches = 0
        self._probed_codes: dict[tuple[int, int], bool] = {}
        self._real: dict[str, str] = {}
        self._trace_sites: dict[int, bool] = {}

    @property
    def needed(self) -> bool:
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

    # -- starting and stopping --------------------------------------------------------

    def start(self) -> None:
        for probe in self._initial:
            self.board.insert(probe)
        if MONITORING:
            events = sys.monitoring.events
            self._tool = claim_tool(
                "probe-events",
                {
                    events.PY_START: self._on_start,
                    events.LINE: self._on_line_count if self._count_only else self._on_line,
                    events.PY_RETURN: self._on_return,
                    events.PY_UNWIND: self._on_unwind,
                },
            )
            if self.arcs:  # frames an exception leaves must be forgotten (a global event)
                sys.monitoring.set_events(self._tool, events.PY_START | events.PY_UNWIND)
        else:
            _chain.add(self)
        self._adopt(sys._getframe(1))

    def stop(self) -> None:
        if MONITORING:
            if self._tool is None:
                return
            events = sys.monitoring.events
            release_tool(
                self._tool, (events.PY_START, events.LINE, events.PY_RETURN, events.PY_UNWIND)
            )
            self._tool = None
        else:
            _chain.remove(self)
        self._last.clear()
        self.flush()

    def _adopt(self, frame: FrameType | None) -> None:
        """Probe the frames already running on this thread (the code that opened a
        session): their next lines are recorded, as those of code called from now on."""
        while frame is not None:
            code = frame.f_code
            need = self._code(code)
            if need is not None and (need[1] or need[2]):
                if MONITORING:
                    mon = sys.monitoring
                    events = (mon.events.LINE if need[1] else 0) | (
                        mon.events.PY_RETURN if need[2] else 0
                    )
                    mon.set_local_events(self._tool, code, events)
                else:
                    frame.f_trace = _both([f for f in (frame.f_trace, self._local) if f])
            frame = frame.f_back

    def context_changed(self) -> None:
        """A new context began (a test): lines switched off after their first run in the
        last one must report again."""
        if MONITORING and self._tool is not None:
            sys.monitoring.restart_events()

    # -- events -------------------------------------------------------------------------

    def event(self, site: int, value: int | None = None, detail: str | None = None) -> None:
        context = self._context() if self._context is not None else None
        self._buffer.append((site, value, detail, context))  # one append: whole, from any thread
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
            sites, values, details, contexts = (list(c) for c in zip(*taken, strict=True))
            batch = {
                "seq": list(range(self._seq, self._seq + n)),
                "site_id": sites,
                "value": values,
                "detail": details,
            }
            if self._context is not None:
                batch["context"] = contexts
            self.recorder.append("events", batch)
            self._seq += n

    # -- what a code object needs, once ---------------------------------------------------

    def _code(self, code: CodeType) -> tuple[int, bool, bool] | None:
        known = self._codes.get(id(code), False)
        if known is not False:
            return known
        self._held.append(code)
        if not self.wanted(code.co_filename):
            self._codes[id(code)] = None
            return None
        func = _qualname(code) if code.co_name != "<module>" else "<module>"
        unit, line = self.real(code.co_filename), code.co_firstlineno
        site = self.ids.get("func", unit, func, line)
        if self.func_points:
            self.board.discovered("func", site, _matcher("func", unit, func, line))
        lines = bool(self.trace_branches or self.line_points or self.count_lines or self.arcs)
        if self.trace_lines:
            lines = lines or self.line_funcs is None or _any_match(func, self.line_funcs)
        returns = self.returns or self.return_points or self.arcs
        found = self._codes[id(code)] = (site, lines, returns)
        return found

    def real(self, filename: str) -> str:
        path = self._real.get(filename)
        if path is None:
            import os

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

    def _traced(self, site: int) -> bool:
        """Whether line events of ``site`` go into the trace (--sites func:GLOB), once a site."""
        known = self._trace_sites.get(site)
        if known is None:
            funcs = self.line_funcs
            known = self._trace_sites[site] = funcs is None or _any_match(
                self.ids.rows[site][2], funcs
            )
        return known

    def lines(self) -> tuple[dict[int, int], dict[tuple[str | None, int], int]]:
        """Line counts of attached code, per statement site and per (context, site): the
        count of a statement's busiest physical line."""
        for (context, filename, line), n in list(self._raw.items()):
            site = self._line_site(filename, line)
            if site is not None:
                self._physical[(context, site, line)] += n
        self._raw.clear()
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
            last = self._last.pop(frame, None)
            if last is None:
                return
            unit, func, src = self.ids.rows[last][1:4]
            dst = -frame.f_code.co_firstlineno
        else:
            last = self._last.get(frame)
            self._last[frame] = site
            if last is None or last == site:
                return
            unit, func, src = self.ids.rows[last][1:4]
            dst = self.ids.rows[site][3]
        info = self.info_for(unit)
        if info is None or (src, dst) not in info.arcs:
            return
        arc = self.ids.get("branch", unit, info.funcs.get(src, "<module>"), src, dst)
        if self.gated and self._context() is None:
            return
        self.arc_counts[arc] += 1
        if self._context is not None:
            self.context_counts[(self._context(), arc)] += 1

    def _entered(self, code: CodeType, frame: FrameType) -> tuple[int, bool, bool] | None:
        need = self._code(code)
        if need is None or (self.gated and self._context() is None):
            return need
        site = need[0]
        if self.entries:
            self.entry_counts[site] += 1
            if self._context is not None:
                self.context_counts[(self._context(), site)] += 1
            if self.func_events:
                self.event(site)
        if self.calls:
            caller = frame.f_back
            while caller is not None and self._code(caller.f_code) is None:
                if self.is_probe(caller.f_code.co_filename):
                    caller = None  # the program's own calls begin below probe's frames
                    break
                caller = caller.f_back
            if caller is not None:
                ccode = caller.f_code
                cfunc = _qualname(ccode) if ccode.co_name != "<module>" else "<module>"
                unit = self.real(ccode.co_filename)
                edge = self.ids.get("call", unit, cfunc, caller.f_lineno, site)
                self.call_counts[edge] += 1
                if self.call_events:
                    self.event(edge, site)
        if self.func_points and self.board.active("func", site):
            self._fire("func", site, code, frame, code.co_firstlineno)
        return need

    def _line(self, code: CodeType, line: int, frame: FrameType) -> bool:
        """Record a line event; False when nothing wants this line's events at present."""
        site = self._line_site(code.co_filename, line)
        if site is None:
            return False
        if self.gated and self._context() is None:
            return True  # outside every recorded call tree: its line may run inside one later
        if line >= MARKER_BASE:
            if self.trace_branches:
                self.event(site, self.ids.rows[site][4])
                return True
            return False
        wanted = False
        if self.count_lines:
            # By physical line: a statement over several lines counts as its busiest line,
            # as in the bytecode counts of `probe run` (see lines()).
            self._physical[(self._context() if self._context else None, site, line)] += 1
            wanted = self._every_line
        if self.arcs:
            self._arc(frame, site)
        if self.trace_lines and self._traced(site):
            self.event(site)
            wanted = True
        if self.line_points and self.board.active("line", site):
            self._fire("line", site, code, frame, line)
            wanted = True
        return wanted

    def _returned(self, code: CodeType, value: object, frame: FrameType) -> None:
        need = self._code(code)
        if need is None:
            return
        if self.arcs:
            self._arc(frame, None)
        if self.gated and self._context() is None:
            return
        unit, func = self.ids.rows[need[0]][1:3]
        known = len(self.ids.rows)
        site = self.ids.get("return", unit, func, code.co_firstlineno)
        if self.return_points and site == known:  # a return site seen for the first time
            self.board.discovered(
                "return", site, _matcher("return", unit, func, code.co_firstlineno)
            )
        self.return_counts[site] += 1
        if self.return_events:
            number = value if type(value) is int and -(2**63) <= value < 2**63 else None
            if type(value) is bool:
                number = int(value)
            try:
                detail = repr(value)[:_DETAIL_CHARS]
            except Exception:  # noqa: BLE001 - a broken __repr__ of the program's object
                detail = f"<{type(value).__name__}>"
            self.event(site, number, detail)
        if self.return_points and self.board.active("return", site):
            self._fire("return", site, code, frame, code.co_firstlineno, value)

    def _fire(
        self,
        event: str,
        site: int,
        code: CodeType,
        frame: FrameType,
        line: int,
        value: object = None,
    ) -> None:
        kind, unit, func, _, _ = self.ids.rows[site]
        what = SiteEvent(
            site, kind, func, line=line, unit=unit, value=value, frame=frame, probes=self.board
        )
        self.board.fire(event, site, what)

    # -- sys.monitoring (3.12+) -----------------------------------------------------------

    def _on_start(self, code: CodeType, offset: int) -> object:
        need = self._entered(code, sys._getframe(1))
        if need is None:
            return sys.monitoring.DISABLE
        mon = sys.monitoring
        events = (mon.events.LINE if need[1] else 0) | (mon.events.PY_RETURN if need[2] else 0)
        if events and mon.get_local_events(self._tool, code) != events:
            mon.set_local_events(self._tool, code, events)
        if self.entries or self.func_points or (need[1] and START_DISABLE_HIDES_LINE):
            return None
        return mon.DISABLE  # nothing to do at the next call of this code

    def _on_line_count(self, code: CodeType, line: int) -> object:
        """The LINE callback when lines are only counted: as little as a count needs."""
        context = self._context() if self._context is not None else None
        if context is None and self.gated:
            return None  # outside every recorded call tree: its line may run inside one later
        key = (context, code.co_filename, line)
        raw = self._raw
        raw[key] = raw.get(key, 0) + 1
        return None if self._every_line else sys.monitoring.DISABLE

    def _on_line(self, code: CodeType, line: int) -> object:
        if self._line(code, line, sys._getframe(1)):
            return None
        # Nothing here wants this line now: stop its events until a probe is inserted
        # (restart_events, in _switch), so switched-off callback points cost nothing.
        return sys.monitoring.DISABLE

    def _on_return(self, code: CodeType, offset: int, value: object) -> object:
        self._returned(code, value, sys._getframe(1))
        return None

    def _on_unwind(self, code: CodeType, offset: int, exc: BaseException) -> object:
        if self._last:
            self._last.pop(sys._getframe(1), None)
        return None

    # -- sys.settrace (3.11) --------------------------------------------------------------

    def _on_call(self, frame: FrameType, event: str, arg: Any) -> Any:
        code = frame.f_code
        if event != "call":
            return None
        if code.co_flags & 0x2A0 and _resumed(frame):  # a generator or coroutine resumed
            need = self._code(code)
        else:
            need = self._entered(code, frame)
        if need is None or not (need[1] or need[2]):
            return None
        if self._points_only and not need[2] and not self._has_line_probes(code):
            frame.f_trace_lines = False  # switched-off points cost nothing here (see _switch)
        return self._local

    def _has_line_probes(self, code: CodeType) -> bool:
        """3.11: whether a line of ``code`` has a callback probe now (cached until a switch)."""
        key = (id(code), self._switches)
        known = self._probed_codes.get(key)
        if known is None:
            lines = {line for _, _, line in code.co_lines() if line}
            sites = (self._line_site(code.co_filename, line) for line in lines)
            known = any(s is not None and self.board.active("line", s) for s in sites)
            self._probed_codes[key] = known
        return known

    def _local(self, frame: FrameType, event: str, arg: Any) -> Any:
        if event == "line":
            self._unwinding.discard(frame)
            code = frame.f_code
            need = self._codes.get(id(code))
            if need and need[1]:
                if self._count_only:
                    context = self._context() if self._context is not None else None
                    if context is not None or not self.gated:
                        key = (context, code.co_filename, frame.f_lineno)
                        self._raw[key] = self._raw.get(key, 0) + 1
                else:
                    self._line(code, frame.f_lineno, frame)
        elif event == "return":
            if frame in self._unwinding:  # an exception leaving the frame: no return
                self._unwinding.discard(frame)
                self._last.pop(frame, None)
                return self._local
            code = frame.f_code
            if code.co_flags & 0x2A0 and _suspended(frame):
                return self._local  # a yield or await, not a return
            need = self._codes.get(id(code))
            if need and need[2]:
                self._returned(code, arg, frame)
        elif event == "exception":
            self._unwinding.add(frame)  # cleared if a line of this frame runs (handled)
        return self._local

    # -- live probes ----------------------------------------------------------------------

    def _resolve(self, probe: Probe) -> list[int]:
        pattern = probe.site
        assert pattern is not None
        if pattern.unit is None:
            raise UsageError(f"a Python {probe.event} probe needs the file its site is in")
        import os

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
        if MONITORING and on and self._tool is not None:
            sys.monitoring.restart_events()  # lines returned DISABLE before may now have probes
        if not MONITORING and on and event == "line":
            # 3.11: frames running with line events off get them back (their next line).
            self._switches += 1
            self._probed_codes.clear()
            for top in sys._current_frames().values():
                frame = top
                while frame is not None:
                    if frame.f_trace is not None:
                        frame.f_trace_lines = True
                    frame = frame.f_back


class _Chain:
    """3.11: the tracers of nested sessions share sys.settrace, each seeing every event."""

    def __init__(self) -> None:
        self.tracers: list[Tracer] = []

    def add(self, tracer: Tracer) -> None:
        self.tracers.append(tracer)
        self._install()

    def remove(self, tracer: Tracer) -> None:
        if tracer in self.tracers:
            self.tracers.remove(tracer)
        self._install()

    def _install(self) -> None:
        if not self.tracers:
            sys.settrace(None)
            threading.settrace(None)  # type: ignore[arg-type]
            return
        call = self.tracers[0]._on_call if len(self.tracers) == 1 else self._on_call
        threading.settrace(call)
        sys.settrace(call)

    def _on_call(self, frame: FrameType, event: str, arg: Any) -> Any:
        found = [f for t in list(self.tracers) if (f := t._on_call(frame, event, arg))]
        return _both(found)


def _both(functions: list[Callable[..., Any]]) -> Any:
    if len(functions) < 2:
        return functions[0] if functions else None

    def local(frame: FrameType, event: str, arg: Any) -> Any:
        for f in functions:
            f(frame, event, arg)
        return local

    return local


_chain = _Chain()


def _resumed(frame: FrameType) -> bool:
    """3.11: whether a generator or coroutine's 'call' resumes it (RESUME with oparg > 0)."""
    import dis

    code, i = frame.f_code.co_code, frame.f_lasti
    return 0 <= i < len(code) - 1 and code[i] == dis.opmap["RESUME"] and code[i + 1] != 0


def _suspended(frame: FrameType) -> bool:
    """Whether a generator or coroutine frame that just 'returned' only yielded."""
    import dis

    code = frame.f_code.co_code
    i = frame.f_lasti
    return 0 <= i < len(code) and dis.opname[code[i]] in ("YIELD_VALUE", "SEND")


def _matcher(kind: str, unit: str, func: str, line: int) -> Callable[[Site], bool]:
    return lambda pattern: site_matches(pattern, kind, unit, func, line)


def _any_match(func: str, patterns: tuple[str, ...]) -> bool:
    import fnmatch

    return any(fnmatch.fnmatchcase(func, p) for p in patterns)
