"""Events from sys.settrace (Python 3.11): a global trace function that decides per frame, and
a local one for the frames of code in scope. Slower than sys.monitoring, the same results.

settrace has one slot per thread, so the tracers of nested sessions share it (``_Chain``);
it reports a generator's resumption as a call and its suspension as a return, which are
told apart here by the instruction the frame stands at.
"""

from __future__ import annotations

import dis
import sys
import threading
from collections.abc import Callable
from types import CodeType, FrameType

from .compat import SUSPENDABLE

TYPE_CHECKING = False  # typing's, without importing typing on a run's path (architecture)
if TYPE_CHECKING:
    from typing import Any

    from .tracer import Tracer

_RESUME = dis.opmap["RESUME"]
_SUSPENDING = {dis.opmap["YIELD_VALUE"], dis.opmap["SEND"]}


class Hooks:
    """The Tracer's events through sys.settrace and threading.settrace."""

    def __init__(self, tracer: Tracer) -> None:
        self.tracer = tracer
        # What _local reads on every line, bound once (an attribute hop or a method call
        # per line costs 5% of a counting session's speed here), as sysmon.py binds its own.
        self._codes, self._raw, self._context = tracer.codes, tracer.raw, tracer.context
        self._count_only, self._gated = tracer.wants.count_only, tracer.wants.gated
        self._unwinding: dict[FrameType, BaseException] = {}  # frames an exception leaves
        self._switches = 0  # callback probes switched on so far
        self._probed: dict[tuple[int, int], bool] = {}  # (code id, switches) -> line probes?

    def start(self, frame: FrameType | None) -> None:
        _chain.add(self)
        while frame is not None:  # frames already running: their next lines are recorded
            need = self.tracer.need(frame.f_code)
            if need is not None and (need.lines or need.returns):
                frame.f_trace = _both([f for f in (frame.f_trace, self._local) if f])
            frame = frame.f_back

    def stop(self) -> None:
        _chain.remove(self)

    def context_changed(self) -> None:
        """Nothing to do: settrace never switches a line's events off."""

    def switched_on(self, event: str) -> None:
        if event != "line":
            return
        # Frames running with line events off get them back (their next line).
        self._switches += 1
        self._probed.clear()
        for top in sys._current_frames().values():
            frame = top
            while frame is not None:
                if frame.f_trace is not None:
                    frame.f_trace_lines = True
                frame = frame.f_back

    # -- trace functions ----------------------------------------------------------------

    def on_call(self, frame: FrameType, event: str, arg: Any) -> Any:
        if event != "call":
            return None
        tracer, code = self.tracer, frame.f_code
        if code.co_flags & SUSPENDABLE and _resumed(frame):  # not a call: a resumption
            need = tracer.need(code)
        else:
            need = tracer.entered(code, frame)
        if need is None or not (need.lines or need.returns):
            return None
        if tracer.wants.points_only and not need.returns and not self._has_line_probes(code):
            frame.f_trace_lines = False  # switched-off points cost nothing here
        return self._local

    def _has_line_probes(self, code: CodeType) -> bool:
        """Whether a line of ``code`` has a callback probe now (known until a switch)."""
        key = (id(code), self._switches)
        known = self._probed.get(key)
        if known is None:
            known = self._probed[key] = self.tracer.has_line_probes(code)
        return known

    def _local(self, frame: FrameType, event: str, arg: Any) -> Any:
        if event == "line":
            self._unwinding.pop(frame, None)
            code = frame.f_code
            need = self._codes.get(id(code))
            if need and need.lines:
                if self._count_only:
                    context = self._context()
                    if context is not None or not self._gated:
                        key = (context, code.co_filename, frame.f_lineno)
                        self._raw[key] = self._raw.get(key, 0) + 1
                else:
                    self.tracer.line(code, frame.f_lineno, frame)
            return self._local
        tracer = self.tracer
        if event == "return":
            if frame in self._unwinding:  # an exception leaving the frame: no return
                tracer.unwound(frame, self._unwinding.pop(frame))
                return self._local
            code = frame.f_code
            if code.co_flags & SUSPENDABLE and _suspended(frame):
                return self._local  # a yield or await, not a return
            need = tracer.codes.get(id(code))
            if need and need.returns:
                tracer.returned(code, arg, frame)
        elif event == "exception":
            self._unwinding[frame] = arg[1]  # cleared if a line of this frame runs (handled)
        return self._local


class _Chain:
    """The Hooks of nested sessions share sys.settrace, each seeing every event."""

    def __init__(self) -> None:
        self.hooks: list[Hooks] = []

    def add(self, hooks: Hooks) -> None:
        self.hooks.append(hooks)
        self._install()

    def remove(self, hooks: Hooks) -> None:
        if hooks in self.hooks:
            self.hooks.remove(hooks)
        self._install()

    def _install(self) -> None:
        if not self.hooks:
            sys.settrace(None)
            threading.settrace(None)  # type: ignore[arg-type]
            return
        call = self.hooks[0].on_call if len(self.hooks) == 1 else self._on_call
        threading.settrace(call)
        sys.settrace(call)

    def _on_call(self, frame: FrameType, event: str, arg: Any) -> Any:
        found = [f for h in list(self.hooks) if (f := h.on_call(frame, event, arg))]
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
    """Whether a generator or coroutine's 'call' resumes it (RESUME with oparg > 0)."""
    code, i = frame.f_code.co_code, frame.f_lasti
    return 0 <= i < len(code) - 1 and code[i] == _RESUME and code[i + 1] != 0


def _suspended(frame: FrameType) -> bool:
    """Whether a generator or coroutine frame that just 'returned' only yielded."""
    code, i = frame.f_code.co_code, frame.f_lasti
    return 0 <= i < len(code) and code[i] in _SUSPENDING
