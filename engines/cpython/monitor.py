"""Line probes on Python 3.12+ through sys.monitoring (PEP 669).

Flags return DISABLE from the LINE callback, so a line costs one callback
on its first execution and nothing after. Branch arcs need no event of
their own: each arc has a marker line (see source.py), recorded like any
line. Counts keep the LINE event enabled and pay a callback per execution.
"""

from __future__ import annotations

import sys
from collections import Counter
from collections.abc import Callable, Iterable
from types import CodeType

# 3.13.0: a PY_START callback returning DISABLE also silences later LINE events at the
# code's first instruction (a one-line lambda then counts once, however often it runs).
# Counts keep PY_START on in measured code there; flags only need the first event anyway.
START_DISABLE_HIDES_LINE = sys.version_info >= (3, 13)


def claim_tool(name: str, callbacks: dict[int, Callable[..., object]]) -> int:
    """A free sys.monitoring tool id, named ``name``, with ``callbacks`` (event -> function)
    registered and PY_START switched on."""
    mon = sys.monitoring
    for tool in (mon.COVERAGE_ID, mon.PROFILER_ID, 3, 4, 5):
        if mon.get_tool(tool) is None:
            mon.use_tool_id(tool, name)
            break
    else:
        from probe.errors import UsageError

        raise UsageError(
            "every sys.monitoring tool id is taken (by other tools, or sessions nested deeper "
            "than the five ids allow)"
        )
    for event, fn in callbacks.items():
        mon.register_callback(tool, event, fn)
    mon.set_events(tool, mon.events.PY_START)
    return tool


def release_tool(tool: int, events: Iterable[int]) -> None:
    """Switch ``tool`` off, unregister its callbacks for ``events``, and free its id."""
    mon = sys.monitoring
    mon.set_events(tool, 0)
    for event in events:
        mon.register_callback(tool, event, None)
    mon.free_tool_id(tool)


class Monitor:
    """Records which lines ran (flags) or how often (counts) in wanted files."""

    def __init__(self, wanted: Callable[[str], bool], count: bool = False) -> None:
        self._wanted = wanted
        self._count = count
        self.lines: dict[str, set[int]] = {}
        self.counts: dict[str, Counter[int]] = {}
        self._tool: int | None = None

    def start(self) -> None:
        events = sys.monitoring.events
        self._tool = claim_tool(
            "probe",
            {
                events.PY_START: self._on_start,
                events.LINE: self._on_count if self._count else self._on_line,
            },
        )

    def stop(self) -> None:
        if self._tool is None:
            return
        events = sys.monitoring.events
        release_tool(self._tool, (events.PY_START, events.LINE))
        self._tool = None

    def hits(self) -> dict[str, dict[int, int]]:
        """Lines that ran, per file, with their counts (1 for flags)."""
        if self._count:
            return {f: dict(c) for f, c in self.counts.items()}
        return {f: dict.fromkeys(lines, 1) for f, lines in self.lines.items()}

    def _on_start(self, code: CodeType, offset: int) -> object:
        # Decide once per code object; DISABLE makes later calls free.
        filename = code.co_filename
        if self._wanted(filename):
            sys.monitoring.set_local_events(self._tool, code, sys.monitoring.events.LINE)
            if self._count:
                self.counts.setdefault(filename, Counter())
                if START_DISABLE_HIDES_LINE:
                    return None
            else:
                self.lines.setdefault(filename, set())
        return sys.monitoring.DISABLE

    def _on_line(self, code: CodeType, line: int) -> object:
        self.lines[code.co_filename].add(line)
        return sys.monitoring.DISABLE

    def _on_count(self, code: CodeType, line: int) -> None:
        self.counts[code.co_filename][line] += 1
