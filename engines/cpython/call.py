"""One call traced: a file run as a module, then a call expression evaluated with the states of
the called function and everything it calls in that file recorded (``probe trace``, and each
(program, input) of a corpus build).

It runs in this process and keeps the tables in memory: no journal, no database, since a
corpus build makes thousands of these a minute. The module's own code runs unrecorded.
"""

from __future__ import annotations

import contextlib
import io
import os
import signal
import sys
import types
from dataclasses import dataclass

from probe.errors import UsageError

from .states import StateRecorder
from .tables import SiteIds
from .tracer import func_name

OUTPUT_CHARS = 10_000  # what the program prints is kept up to here


class _Stopped(BaseException):
    """Raised inside the program to end the call: its time or its steps are up."""

    def __init__(self, why: str) -> None:
        super().__init__(why)
        self.why = why


@dataclass
class Traced:
    """What one traced call left: the tables (as columns) and how it ended."""

    tables: dict[str, dict[str, list]]
    outcome: str  # 'ok' | 'exception' | 'step_cap' | 'timeout'
    result: str | None = None  # the returned value's repr
    exception: str | None = None  # 'Type: message'
    output: str = ""
    steps: int = 0


def load(path: str, source: str | None = None) -> tuple[types.ModuleType, str]:
    """Run the file at ``path`` (or ``source``, named ``path``) as a module; bad input is a
    UsageError. The module's name is the file's stem, so ``__main__`` blocks don't run."""
    real = os.path.realpath(path)
    if source is None:
        try:
            with open(real, "rb") as f:
                data = f.read()
        except OSError as e:
            raise UsageError(f"can't open file {path!r}: {e.strerror}") from None
        import importlib.util

        try:
            source = importlib.util.decode_source(data)
        except (SyntaxError, UnicodeDecodeError) as e:
            raise UsageError(f"{path}: cannot decode: {e}") from None
    try:
        code = compile(source, real, "exec", dont_inherit=True)
    except SyntaxError as e:
        raise UsageError(f"{path}:{e.lineno}: syntax error: {e.msg}") from None
    except ValueError as e:
        raise UsageError(f"{path}: cannot compile: {e}") from None
    name = os.path.splitext(os.path.basename(real))[0] or "program"
    module = types.ModuleType(name)
    module.__file__ = real
    sys.modules[name] = module  # dataclasses, pickling and typing look their module up
    exec(code, module.__dict__)
    return module, real


def compile_call(call: str) -> types.CodeType:
    try:
        return compile(call, "<call>", "eval", dont_inherit=True)
    except SyntaxError as e:
        raise UsageError(f"--call {call!r}: not a Python expression: {e.msg}") from None


def trace(
    module: types.ModuleType,
    real: str,
    call: types.CodeType,
    *,
    max_steps: int,
    timeout: float | None = None,
    capture: bool = True,
) -> Traced:
    """Evaluate ``call`` in ``module``'s namespace with the states of the code of file
    ``real`` recorded; the call may raise, loop or print: the trace says so."""
    ids = SiteIds()
    tables: dict[str, dict[str, list]] = {}

    def site_of(code: types.CodeType) -> int | None:
        if code.co_filename != real:
            return None
        return ids.get("func", real, func_name(code), code.co_firstlineno)

    def sink(table: str, columns: dict[str, list]) -> None:
        # The alarm (the timeout) is held off meanwhile: raised between two columns, it left
        # a table's columns of unequal lengths.
        held = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGALRM}) if timeout else None
        try:
            kept = tables.setdefault(table, {})
            for name, values in columns.items():
                kept.setdefault(name, []).extend(values)
        finally:
            if held is not None:
                signal.pthread_sigmask(signal.SIG_SETMASK, held)

    recorder = StateRecorder(site_of, sink, max_steps=max_steps)
    recorder.on_cap = _stop_at_cap
    out = _Output(OUTPUT_CHARS)
    outcome, result, exception = "ok", None, None
    old_alarm = None
    if timeout:
        old_alarm = signal.signal(signal.SIGALRM, _stop_at_alarm)
        signal.setitimer(signal.ITIMER_REAL, timeout)
    try:
        with contextlib.redirect_stdout(out) if capture else contextlib.nullcontext():
            recorder.start()
            try:
                value = eval(call, module.__dict__)
            finally:
                recorder.stop()
        result = _repr(value)
    except _Stopped as e:
        outcome = e.why
    except Exception as e:  # noqa: BLE001 - the program's exception: the trace shows it
        outcome, exception = "exception", f"{type(e).__name__}: {e}"
    finally:
        if timeout:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, old_alarm)
    if recorder.capped and outcome == "ok":
        outcome = "step_cap"
    sites = {"site_id": [], "kind": [], "unit": [], "func": [], "line": []}
    for sid, (kind, unit, func, line, _) in enumerate(ids.rows):
        for col, v in zip(sites, (sid, kind, unit, func, line), strict=True):
            sites[col].append(v)
    tables["sites"] = sites
    return Traced(tables, outcome, result, exception, out.getvalue(), steps=recorder.total)


class _Output(io.StringIO):
    """What the call prints: the first ``most`` characters kept, the rest counted; closing
    it (a program that closes stdout) keeps what it holds."""

    def __init__(self, most: int) -> None:
        super().__init__()
        self.most = most
        self.dropped = 0
        self.shut = False

    def write(self, text: str) -> int:
        if self.shut:
            raise ValueError("I/O operation on closed file.")
        room = self.most - self.tell()
        if room < len(text):
            self.dropped += len(text) - max(room, 0)
            text = text[: max(room, 0)]
        super().write(text)
        return len(text)

    def close(self) -> None:
        self.shut = True

    def getvalue(self) -> str:
        text = super().getvalue()
        return text + (f"... ({self.dropped:,} more characters)" if self.dropped else "")


def _stop_at_cap() -> None:
    raise _Stopped("step_cap")


def _stop_at_alarm(signum: int, frame: object) -> None:
    raise _Stopped("timeout")


def _repr(value: object) -> str:
    try:
        return repr(value)[:1000]
    except Exception as e:  # noqa: BLE001 - the program's __repr__ raised
        return f"<{type(value).__name__}: repr raised {type(e).__name__}>"
