"""Line probes on Python 3.12+ through sys.monitoring (PEP 669).

Flags return DISABLE from the LINE callback, so a line costs one callback
on its first execution and nothing after (on 3.12 once settle.py has given
the code back its fast form). Branch arcs need no event of their own: each
arc has a marker line (see source.py), recorded like any line. Counts are
increments compiled into the bytecode (rewrite.py): a callback per
execution would cost ten times as much.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from types import CodeType

from .sysmon import claim_tool, release_tool


class Monitor:
    """Records which lines ran in wanted files (counts are compiled in: rewrite.py)."""

    def __init__(self, wanted: Callable[[str], bool]) -> None:
        self._wanted = wanted
        self.lines: dict[str, set[int]] = {}
        self._tool: int | None = None
        self._settler = None

    def start(self) -> None:
        events = sys.monitoring.events
        self._tool = claim_tool("probe", {events.PY_START: self._on_start})
        on_line = self._on_line
        if sys.version_info[:2] == (3, 12):
            from . import settle

            if settle.AVAILABLE:
                self._settler = settle.Settler(self._tool, self.lines)
                on_line = self._line_settled(self._settler.touched)
                self._settler.start()
        sys.monitoring.register_callback(self._tool, events.LINE, on_line)

    def stop(self) -> None:
        if self._tool is None:
            return
        if self._settler is not None:
            self._settler.stop()
            self._settler = None
        events = sys.monitoring.events
        release_tool(self._tool, (events.PY_START, events.LINE))
        self._tool = None

    def hits(self) -> dict[str, dict[int, int]]:
        """Lines that ran, per file, each with the count 1 (flags)."""
        return {f: dict.fromkeys(lines, 1) for f, lines in self.lines.items()}

    def _on_start(self, code: CodeType, offset: int) -> object:
        # Decide once per code object; DISABLE makes later calls free.
        filename = code.co_filename
        if self._wanted(filename):
            sys.monitoring.set_local_events(self._tool, code, sys.monitoring.events.LINE)
            self.lines.setdefault(filename, set())
        return sys.monitoring.DISABLE

    def _on_line(self, code: CodeType, line: int) -> object:
        self.lines[code.co_filename].add(line)
        return sys.monitoring.DISABLE

    def _line_settled(self, touched: dict[int, CodeType]) -> Callable[[CodeType, int], object]:
        """The LINE callback that also hands the code to the Settler (3.12)."""
        lines, disable = self.lines, sys.monitoring.DISABLE

        def on_line(code: CodeType, line: int) -> object:
            lines[code.co_filename].add(line)
            touched[id(code)] = code
            return disable

        return on_line
