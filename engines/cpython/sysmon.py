"""Events from sys.monitoring (PEP 669, Python 3.12+): a tool id of probe's own, callbacks
that hand each event to the Tracer, and events switched off (DISABLE) wherever nothing wants
them any more, so that code already measured runs at full speed."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable
from types import CodeType, FrameType

from probe.errors import UsageError

from .compat import START_DISABLE_HIDES_LINE

TYPE_CHECKING = False  # typing's, without importing typing on a run's path (architecture)
if TYPE_CHECKING:
    from .tracer import Need, Tracer


def claim_tool(
    name: str, callbacks: dict[int, Callable[..., object]], events: int | None = None
) -> int:
    """A free sys.monitoring tool id, named ``name``, with ``callbacks`` (event -> function)
    registered and ``events`` switched on (PY_START if not given)."""
    mon = sys.monitoring
    for tool in (mon.COVERAGE_ID, mon.PROFILER_ID, 3, 4, 5):
        if mon.get_tool(tool) is None:
            mon.use_tool_id(tool, name)
            break
    else:
        raise UsageError(
            "every sys.monitoring tool id is taken (by other tools, or sessions nested deeper "
            "than the five ids allow)"
        )
    for event, fn in callbacks.items():
        mon.register_callback(tool, event, fn)
    mon.set_events(tool, mon.events.PY_START if events is None else events)
    return tool


def release_tool(tool: int, events: Iterable[int]) -> None:
    """Switch ``tool`` off, unregister its callbacks for ``events``, and free its id."""
    mon = sys.monitoring
    mon.set_events(tool, 0)
    for event in events:
        mon.register_callback(tool, event, None)
    mon.free_tool_id(tool)


class Hooks:
    """The Tracer's events through a sys.monitoring tool of its own (coverage's line probes
    under ``probe run`` use another one: monitor.py)."""

    def __init__(self, tracer: Tracer) -> None:
        self.tracer = tracer
        self.tool: int | None = None

    def start(self, frame: FrameType | None) -> None:
        events = sys.monitoring.events
        count_only = self.tracer.wants.count_only
        self.tool = claim_tool(
            "probe-events",
            {
                events.PY_START: self._on_start,
                events.LINE: self._line_counter() if count_only else self._on_line,
                events.PY_RETURN: self._on_return,
                events.PY_UNWIND: self._on_unwind,
            },
        )
        # Frames an exception leaves: forgotten (arcs), or their calls' ends said (return
        # events). PY_UNWIND is a global event only.
        if self.tracer.wants.arcs or self.tracer.wants.return_events:
            sys.monitoring.set_events(self.tool, events.PY_START | events.PY_UNWIND)
        while frame is not None:  # frames already running: their next lines are recorded
            need = self.tracer.need(frame.f_code)
            if need is not None and (need.lines or need.returns):
                sys.monitoring.set_local_events(self.tool, frame.f_code, _local_events(need))
            frame = frame.f_back

    def stop(self) -> None:
        if self.tool is None:
            return
        events = sys.monitoring.events
        release_tool(self.tool, (events.PY_START, events.LINE, events.PY_RETURN, events.PY_UNWIND))
        self.tool = None

    def context_changed(self) -> None:
        if self.tool is not None:
            sys.monitoring.restart_events()

    def switched_on(self, event: str) -> None:
        if self.tool is not None:
            sys.monitoring.restart_events()  # lines returned DISABLE before may now have probes

    # -- callbacks ----------------------------------------------------------------------

    def _on_start(self, code: CodeType, offset: int) -> object:
        tracer = self.tracer
        need = tracer.entered(code, sys._getframe(1))
        if need is None:
            return sys.monitoring.DISABLE
        events = _local_events(need)
        if events and sys.monitoring.get_local_events(self.tool, code) != events:
            sys.monitoring.set_local_events(self.tool, code, events)
        wants = tracer.wants
        if wants.entries or wants.func_points or (need.lines and START_DISABLE_HIDES_LINE):
            return None
        return sys.monitoring.DISABLE  # nothing to do at the next call of this code

    def _line_counter(self) -> Callable[[CodeType, int], object]:
        """The LINE callback when lines are only counted: as little as a count needs. A
        closure over locals, not a method: this runs on every line of a session's code
        (settrace.Hooks._local does the same for 3.11)."""
        raw, context = self.tracer.raw, self.tracer.context
        gated = self.tracer.wants.gated
        after = None if self.tracer.wants.every_line else sys.monitoring.DISABLE

        def on_line(code: CodeType, line: int) -> object:
            now = context()
            if now is None and gated:
                return None  # outside every recorded call tree: the line may run inside one
            key = (now, code.co_filename, line)
            raw[key] = raw.get(key, 0) + 1
            return after

        return on_line

    def _on_line(self, code: CodeType, line: int) -> object:
        if self.tracer.line(code, line, sys._getframe(1)):
            return None
        # Nothing here wants this line now: stop its events until a probe is inserted
        # (switched_on), so switched-off callback points cost nothing.
        return sys.monitoring.DISABLE

    def _on_return(self, code: CodeType, offset: int, value: object) -> object:
        self.tracer.returned(code, value, sys._getframe(1))
        return None

    def _on_unwind(self, code: CodeType, offset: int, exc: BaseException) -> object:
        self.tracer.unwound(sys._getframe(1), exc)
        return None


def _local_events(need: Need) -> int:
    events = sys.monitoring.events
    return (events.LINE if need.lines else 0) | (events.PY_RETURN if need.returns else 0)
