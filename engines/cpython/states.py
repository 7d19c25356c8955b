"""Program states: after each line of code in scope, which variables are new, modified or
deleted, with their values; arguments at entry, return values, exceptions, call depth.

Why it is fast. A tracer that reprs every variable at every line (pysnooper) spends its time
formatting; one that diffs reprs spends it the same way. Here a line costs one callback that
compares each local with what the frame held at its last line: by identity for immutable
values (an int, a str, a tuple of such), and against a private copy for the built-in
containers, the only values that change in place. Nothing is formatted while the program
runs: a changed immutable value is kept by reference, a container by its copy, and both are
turned into text (type, bounded repr, JSON, element deltas) in batches, off the hot path.
Other objects (instances of the program's classes) can change behind any reference, so they
are compared by identity and their repr is taken at once.

The callbacks come from sys.monitoring (3.12+, a tool of their own: PY_START/RESUME/RETURN/
YIELD, RAISE, PY_UNWIND and LINE only in code in scope) or sys.settrace (3.11, sharing
settrace.py's chain with sessions).

Rows: ``steps`` (one per line run, call, return, yield or exception, in order) and
``variables`` (one per variable change: the step, the name, what changed, the value).
"""

from __future__ import annotations

import json
import re
import sys
import threading
import types
from collections.abc import Callable
from types import CodeType, FrameType
from typing import Any

from .compat import MONITORING, SUSPENDABLE

BATCH = 65536  # steps handed to the sink at a time
REPR_CHARS = 1000  # a value's repr is kept whole up to here; its full size is said
STR_CHARS = 1000
ELEMENTS = 10_000  # containers copied for comparison up to this many elements in all

_MISSING = object()
# What the bytecode says of a code object (globals touched, quiet lines), kept across
# recorders: a corpus build or a benchmark traces the same functions call after call.
_FACTS: dict[int, tuple[CodeType, tuple[str, ...], frozenset[int]]] = {}
_IMMUTABLE = frozenset(
    {int, float, bool, str, bytes, complex, type(None), range, type(...), frozenset}
)
_CONTAINERS = frozenset({list, dict, set, bytearray})
# Module-level names that are definitions, not data: left out of a module frame's state.
_DEFINITIONS = (types.ModuleType, types.FunctionType, type, types.BuiltinFunctionType)

EVENTS = ("call", "line", "return", "yield", "exception")
CHANGES = ("arg", "new", "modified", "deleted", "return", "yield", "exception")


class _Now:
    """A value turned into text when it changed: an object that may change behind any
    reference, or a container too big to copy."""

    __slots__ = ("kind", "text", "string", "size", "length")

    def __init__(self, value: object, partial: bool = False) -> None:
        self.kind = type(value).__name__
        if partial:
            self.text, self.size = _partial_repr(value), None
        else:
            self.text, self.size = _bounded_repr(value)
        self.string = _bounded_str(value, self.text)
        self.length = _length(value)


class _Huge:
    """A container past ELEMENTS: compared by length only (a change of an element in place
    is not seen), rendered at once."""

    __slots__ = ("length", "now")

    def __init__(self, value: Any) -> None:
        self.length = len(value)
        self.now = _Now(value, partial=True)

    def same(self, value: Any) -> bool:
        return len(value) == self.length


class Frame:
    """What the recorder knows of one running frame."""

    __slots__ = (
        "call",
        "depth",
        "site",
        "snap",
        "gsnap",
        "pending",
        "line",
        "quiet",
        "globs",
        "module",
    )

    def __init__(
        self,
        call: int,
        depth: int,
        site: int,
        globs: tuple[str, ...],
        module: bool,
        quiet: frozenset[int],
    ) -> None:
        self.call = call
        self.depth = depth
        self.site = site
        self.snap: dict[str, tuple[object, object]] = {}  # name -> (value, copy or None)
        self.gsnap: dict[str, tuple[object, object]] = {}  # the same, of globals touched
        self.pending: int | None = None  # the step whose line runs now
        self.line = 0  # and that line
        self.quiet = quiet  # lines that can't change a container in place (see _quiet_lines)
        self.globs = globs  # global names the code touches
        self.module = module


class StateRecorder:
    """Records states of the code for which ``site_of(code)`` gives a func site (None: out
    of scope), from start() to stop(), handing rows to ``sink(table, columns)``.

    ``gate``: record only frames that start while it returns something (a context).
    """

    def __init__(
        self,
        site_of: Callable[[CodeType], int | None],
        sink: Callable[[str, dict[str, list]], None],
        *,
        max_steps: int | None = None,
        gate: Callable[[], object] | None = None,
    ) -> None:
        self.site_of = site_of
        self.sink = sink
        self.max_steps = max_steps
        self.gate = gate
        self.capped = False
        self.on_cap: Callable[[], None] | None = None  # called once the cap is reached
        self.steps: list[tuple[int, int, int, int, int]] = []  # (call, depth, event, site, line)
        self.values: list[tuple] = []  # (step, name, scope, change, value, delta)
        self.frames: dict[FrameType, Frame] = {}
        self._codes: dict[int, tuple[int, tuple[str, ...], frozenset[int]] | None] = {}
        self._held: list[CodeType] = []
        self._flushed = 0  # steps handed to the sink so far
        self._next = 0  # the next step's number
        self._limit = BATCH if max_steps is None else min(BATCH, max_steps)  # see _slow
        self._calls = 0
        self._lock = threading.Lock()
        self._backend: Any = None

    # -- starting and stopping ------------------------------------------------------------

    def start(self) -> None:
        self._backend = _Monitoring(self) if MONITORING else _Settrace(self)
        self._backend.start()

    def stop(self) -> None:
        if self._backend is not None:
            self._backend.stop()
            self._backend = None
        for frame, known in list(self.frames.items()):
            if known.pending is not None:
                self._diff(known, frame)
                known.pending = None
        self.frames.clear()
        self.flush()

    @property
    def total(self) -> int:
        return self._next

    def _slow(self) -> None:
        """A step reached ``_limit``: the cap, or a batch to hand over."""
        if self.max_steps is not None and self._next >= self.max_steps:
            self._cap()
            return
        if len(self.steps) >= BATCH or len(self.values) >= BATCH:
            self.flush()
        limit = self._next + BATCH - len(self.steps)
        self._limit = limit if self.max_steps is None else min(limit, self.max_steps)

    def _cap(self) -> None:
        """The step cap is reached: record nothing more."""
        self.capped = True
        if self._backend is not None:
            self._backend.stop()
            self._backend = None
        if self.on_cap is not None:
            self.on_cap()

    # -- what a code object is, once --------------------------------------------------------

    def known(self, code: CodeType) -> tuple[int, tuple[str, ...], frozenset[int]] | None:
        found = self._codes.get(id(code), _MISSING)
        if found is not _MISSING:
            return found  # type: ignore[return-value]
        # By id, the code kept alive beside: 3.11's probed code objects hold a list.
        self._held.append(code)
        site = self.site_of(code)
        if site is None:
            self._codes[id(code)] = None
            return None
        facts = _FACTS.get(id(code))
        if facts is None or facts[0] is not code:
            touched = _globals_touched(code) if code.co_name != "<module>" else ()
            facts = _FACTS[id(code)] = (code, touched, _quiet_lines(code))
            if len(_FACTS) > 100_000:
                _FACTS.clear()
        found = self._codes[id(code)] = (site, facts[1], facts[2])
        return found

    # -- events ---------------------------------------------------------------------------

    def entered(self, code: CodeType, frame: FrameType) -> Frame | None:
        """A frame of ``code`` starts (not a resumption)."""
        known = self.known(code)
        if known is None or (self.gate is not None and self.gate() is None):
            return None
        caller = frame.f_back
        depth = 0
        while caller is not None:
            outer = self.frames.get(caller)
            if outer is not None:
                depth = outer.depth + 1
                break
            caller = caller.f_back
        self._calls += 1
        site, touched, quiet = known
        state = Frame(self._calls, depth, site, touched, code.co_name == "<module>", quiet)
        self.frames[frame] = state
        step = self._next
        self._next = step + 1
        self.steps.append((state.call, depth, 0, site, code.co_firstlineno))
        snap = state.snap
        if not state.module:
            values = self.values
            for name, value in frame.f_locals.items():
                snap[name] = kept = _keep(value)
                values.append((step, name, 0, 0, _stored(value, kept), None))
        if self._next >= self._limit:
            self._slow()
        return state

    def line(self, state: Frame, frame: FrameType, line: int) -> None:
        """A line of ``frame`` (whose ``state`` the caller has looked up) begins. This runs
        at every line: it does the least it can, and calls nothing it need not."""
        if state.pending is not None:
            self._diff(state, frame)
        n = self._next
        state.pending = n
        state.line = line
        self.steps.append((state.call, state.depth, 1, state.site, line))
        self._next = n = n + 1
        if n >= self._limit:
            self._slow()

    def left(self, frame: FrameType, event: int, value: object, line: int) -> None:
        """The frame returns (event 2) or yields (3) ``value``, or an exception leaves it
        (4, value None: recorded when it was raised)."""
        state = self.frames.get(frame)
        if state is None:
            return
        if state.pending is not None:
            self._diff(state, frame)
            state.pending = None
        if event == 4:
            del self.frames[frame]
            return
        step = self._next
        self._next = step + 1
        self.steps.append((state.call, state.depth, event, state.site, line))
        self.values.append((step, None, 0, event + 2, _stored(value, _keep(value)), None))
        if event == 2:
            del self.frames[frame]
        if self._next >= self._limit:
            self._slow()

    def raised(self, frame: FrameType, exc: BaseException, line: int) -> None:
        state = self.frames.get(frame)
        if state is None:
            return
        step = self._next
        self._next = step + 1
        self.steps.append((state.call, state.depth, 4, state.site, line))
        message = _Now(exc)
        message.text = f"{type(exc).__name__}: {_safe_str(exc)}"[:REPR_CHARS]
        self.values.append((step, None, 0, 6, message, None))
        if self._next >= self._limit:
            self._slow()

    def _diff(self, state: Frame, frame: FrameType) -> None:
        """The changes since ``state.pending``'s line began, as rows of that step."""
        step = state.pending
        snap = state.snap
        values = self.values
        module = state.module
        quiet = state.line in state.quiet  # no container can have changed in place
        local = frame.f_locals
        immutable = _IMMUTABLE
        for name, value in local.items():
            old = snap.get(name, _MISSING)
            if old is _MISSING:
                if module and (name.startswith("__") or isinstance(value, _DEFINITIONS)):
                    continue
                if type(value) in immutable:
                    snap[name] = (value, None)
                    values.append((step, name, 0, 1, value, None))
                    continue
                snap[name] = kept = _keep(value)
                values.append((step, name, 0, 1, _stored(value, kept), None))
                continue
            ref, copy = old
            kind = type(value)
            if ref is value:
                if copy is None or quiet or _same(copy, value):
                    continue
            elif copy is None and kind in immutable:
                if type(ref) is kind:
                    try:
                        if ref == value:
                            snap[name] = (value, None)
                            continue
                    except Exception:  # noqa: BLE001 - a comparison the program's types refuse
                        pass
                snap[name] = (value, None)
                values.append((step, name, 0, 2, value, None))
                continue
            snap[name] = kept = _keep(value)
            values.append((step, name, 0, 2, _stored(value, kept), _delta(copy, kept[1])))
        if len(snap) > len(local) or module:
            for name in [n for n in snap if n not in local]:
                del snap[name]
                values.append((step, name, 0, 3, None, None))
        if state.globs:
            self._diff_globals(state, frame, step)

    def _diff_globals(self, state: Frame, frame: FrameType, step: int | None) -> None:
        snap, values, space = state.gsnap, self.values, frame.f_globals
        for name in state.globs:
            value = space.get(name, _MISSING)
            old = snap.get(name, _MISSING)
            if value is _MISSING or isinstance(value, _DEFINITIONS):
                if old is not _MISSING:
                    del snap[name]
                    values.append((step, name, 1, 3, None, None))
                continue
            if old is not _MISSING:
                ref, copy = old
                if ref is value and (copy is None or _same(copy, value)):
                    continue
            snap[name] = kept = _keep(value)
            change = 1 if old is _MISSING else 2
            delta = None if old is _MISSING else _delta(old[1], kept[1])
            values.append((step, name, 1, change, _stored(value, kept), delta))

    # -- rows -------------------------------------------------------------------------------

    def flush(self) -> None:
        """Hand the rows so far to the sink, values turned into text."""
        with self._lock:
            steps, self.steps = self.steps, []
            values, self.values = self.values, []
            first = self._flushed
            self._flushed += len(steps)
        if steps:
            calls, depths, events, sites, lines = (list(c) for c in zip(*steps, strict=True))
            self.sink(
                "steps",
                {
                    "step": list(range(first, first + len(steps))),
                    "call_id": calls,
                    "depth": depths,
                    "event": [EVENTS[e] for e in events],
                    "site_id": sites,
                    "line": lines,
                },
            )
        if values:
            self.sink("variables", _value_columns(values))


# -- values -----------------------------------------------------------------------------------


def _keep(value: object) -> tuple[object, object]:
    """(value, copy): the copy is what a container held now (None: compare by identity)."""
    kind = type(value)
    if kind in _CONTAINERS or (kind is tuple and not _flat(value)):
        budget = [ELEMENTS]
        copied = _copy(value, budget, {})
        if budget[0] < 0:
            return value, _Huge(value)
        return value, copied
    return value, None


def _flat(value: tuple) -> bool:
    return all(type(v) in _IMMUTABLE for v in value)


def _copy(value: Any, budget: list[int], memo: dict[int, object]) -> Any:
    kind = type(value)
    if kind not in _CONTAINERS and kind is not tuple:
        return value
    found = memo.get(id(value))
    if found is not None:
        return found  # a cycle, or a container held twice: copied once
    budget[0] -= len(value)
    if budget[0] < 0:
        return value
    if kind is not dict and _IMMUTABLE.issuperset(map(type, value)):
        out = kind(value)  # flat: copied in C, not element by element
        memo[id(value)] = out
        return out
    if kind is dict and _IMMUTABLE.issuperset(map(type, value.values())):
        out = dict(value)
        memo[id(value)] = out
        return out
    if kind is list:
        out: Any = []
        memo[id(value)] = out
        out.extend(_copy(v, budget, memo) for v in value)
    elif kind is dict:
        out = {}
        memo[id(value)] = out
        for k, v in value.items():
            out[k] = _copy(v, budget, memo)
    elif kind is tuple:
        out = tuple(_copy(v, budget, memo) for v in value)
    elif kind is set:
        out = set(value)  # elements of a set are hashable: immutable or identity-hashed
    else:
        out = bytearray(value)
    memo[id(value)] = out
    return out


def _same(copy: object, value: object) -> bool:
    if type(copy) is _Huge:
        return copy.same(value)  # type: ignore[union-attr]
    try:
        return bool(copy == value)
    except Exception:  # noqa: BLE001 - an element whose __eq__ raises: say it changed
        return False


def _stored(value: object, kept: tuple[object, object]) -> object:
    """What a row keeps of a value until it is turned into text."""
    copy = kept[1]
    if copy is not None:
        return copy.now if type(copy) is _Huge else copy
    if type(value) in _IMMUTABLE:
        return value
    return _Now(value)  # an object of the program's: it may change behind this reference


def _delta(old: object, new: object) -> list[tuple[str, object, object]] | None:
    """Which elements changed, for a list, dict or set changed as a whole."""
    if old is None or new is None or type(old) is not type(new) or type(old) is _Huge:
        return None
    out: list[tuple[str, object, object]] = []
    if type(old) is list:
        common = min(len(old), len(new))  # type: ignore[arg-type]
        first, last = _changed_span(old, new, common)  # type: ignore[arg-type]
        for i in range(first, last):
            a, b = old[i], new[i]  # type: ignore[index]
            if a is not b and not _equal(a, b):
                out.append(("set", i, b))
        for i in range(common, len(new)):  # type: ignore[arg-type]
            out.append(("append", i, new[i]))  # type: ignore[index]
        for i in range(len(old) - 1, common - 1, -1):  # type: ignore[arg-type]
            out.append(("remove", i, None))
    elif type(old) is dict:
        for k, b in new.items():  # type: ignore[attr-defined]
            a = old.get(k, _MISSING)  # type: ignore[attr-defined]
            if a is _MISSING or (a is not b and not _equal(a, b)):
                out.append(("set", k, b))
        for k in old:  # type: ignore[attr-defined]
            if k not in new:  # type: ignore[operator]
                out.append(("remove", k, None))
    elif type(old) is set:
        out.extend(("add", None, v) for v in new - old)  # type: ignore[operator]
        out.extend(("remove", None, v) for v in old - new)  # type: ignore[operator]
    else:
        return None
    return out


def _changed_span(old: list, new: list, n: int) -> tuple[int, int]:
    """Where the first ``n`` elements of two lists differ: [first, last), found by comparing
    slices (in C) in halves, so one changed element in a long list costs log n compares."""
    try:
        if old[:n] == new[:n]:
            return 0, 0
        lo, hi = 0, n  # the first difference is in [lo, hi)
        while hi - lo > 8:
            mid = (lo + hi) // 2
            if old[lo:mid] == new[lo:mid]:
                lo = mid
            else:
                hi = mid
        first = lo
        lo, hi = first, n  # the last difference is in [lo, hi)
        while hi - lo > 8:
            mid = (lo + hi) // 2
            if old[mid:hi] == new[mid:hi]:
                hi = mid
            else:
                lo = mid
        return first, hi
    except Exception:  # noqa: BLE001 - an element whose __eq__ raises: look at each
        return 0, n


def _equal(a: object, b: object) -> bool:
    try:
        return type(a) is type(b) and bool(a == b)
    except Exception:  # noqa: BLE001 - a comparison the program's types refuse
        return False


def _bounded_repr(value: object) -> tuple[str, int | None]:
    """repr, cut at REPR_CHARS, and its whole length. Addresses (``<function f at 0x7f..>``)
    are left out: they differ from run to run, and a trace is data to compare."""
    kind = type(value)
    if kind in _SHOWN_IN_PART and len(value) > _ELEMENTS_SHOWN:  # type: ignore[arg-type]
        return _partial_repr(value), None
    try:
        text = repr(value)
    except Exception as e:  # noqa: BLE001 - the program's __repr__ raised: say so, go on
        text = f"<{type(value).__name__}: repr raised {type(e).__name__}>"
    if " at 0x" in text:
        text = _ADDRESS.sub("", text)
    return text[:REPR_CHARS], len(text)


# Containers of more elements than this are shown by their first ones: a repr of a million
# elements (or of a list of big bytearrays) would cost more than the program's step.
_ELEMENTS_SHOWN = 200
_SHOWN_IN_PART = frozenset({list, tuple, set, frozenset, dict, bytearray, bytes})


def _partial_repr(value: Any) -> str:
    kind = type(value)
    if kind in (bytes, bytearray):
        head = repr(bytes(value[:REPR_CHARS]))
        return (f"bytearray({head}...)" if kind is bytearray else head + "...")[:REPR_CHARS]
    if kind is not dict and kind not in (set, frozenset):
        head = value[:_ELEMENTS_SHOWN]
        if _IMMUTABLE.issuperset(map(type, head)):  # flat: one repr in C
            text = repr(head if kind is list else list(head))
            opening, closing = {list: "[]", tuple: "()"}[kind]
            return (opening + text[1:-1] + ", ..." + closing)[:REPR_CHARS]
    if kind is dict:
        items = []
        for k, v in value.items():
            items.append(f"{_bounded_repr(k)[0]}: {_bounded_repr(v)[0]}")
            if len(items) >= _ELEMENTS_SHOWN:
                break
        return ("{" + ", ".join(items) + ", ...}")[:REPR_CHARS]
    shown = []
    for v in value:
        shown.append(_bounded_repr(v)[0])
        if len(shown) >= _ELEMENTS_SHOWN or sum(map(len, shown)) > REPR_CHARS:
            break
    opening, closing = {list: "[]", tuple: "()"}.get(kind, "{}")
    return (opening + ", ".join(shown) + ", ..." + closing)[:REPR_CHARS]


_ADDRESS = re.compile(r" at 0x[0-9a-fA-F]+")


def _bounded_str(value: object, text: str) -> str | None:
    """str(value) where it differs from its repr (str values: unquoted)."""
    if type(value) in (int, float, bool, type(None), list, dict, tuple, set):
        return None  # str is repr for these (containers show their elements' reprs)
    if type(value) is str:
        return value[:STR_CHARS] if value != text else None
    try:
        out = str(value)
    except Exception:  # noqa: BLE001 - the program's __str__ raised
        return None
    if " at 0x" in out:
        out = _ADDRESS.sub("", out)
    return None if out == text[:STR_CHARS] or out == text else out[:STR_CHARS]


def _safe_str(value: object) -> str:
    try:
        return str(value)
    except Exception:  # noqa: BLE001 - the program's __str__ raised
        return f"<{type(value).__name__}>"


def _length(value: object) -> int | None:
    if type(value) in (str, bytes, list, tuple, dict, set, frozenset, bytearray):
        return len(value)  # type: ignore[arg-type]
    return None


def _json(value: object, size: int | None) -> str | None:
    """JSON of a value made only of what JSON holds as it is (tuples and sets are not)."""
    if size is None or size > REPR_CHARS or not _jsonable(value, 0):
        return None
    try:
        return json.dumps(value, ensure_ascii=False, allow_nan=False)
    except (ValueError, TypeError, RecursionError):
        return None


def _jsonable(value: object, depth: int) -> bool:
    kind = type(value)
    if kind in (int, str, bool, type(None)):
        return True
    if kind is float:
        return value == value and value not in (float("inf"), float("-inf"))
    if depth > 20:
        return False
    if kind is list:
        return all(_jsonable(v, depth + 1) for v in value)  # type: ignore[attr-defined]
    if kind is dict:
        return all(
            type(k) is str and _jsonable(v, depth + 1)
            for k, v in value.items()  # type: ignore[attr-defined]
        )
    return False


def _value_columns(rows: list[tuple]) -> dict[str, list]:
    cols: dict[str, list] = {
        c: []
        for c in (
            "step",
            "name",
            "scope",
            "change",
            "type",
            "repr",
            "size",
            "length",
            "str",
            "json",
            "delta",
        )
    }
    step, name, scope, change = cols["step"], cols["name"], cols["scope"], cols["change"]
    kind, text, size, length = cols["type"], cols["repr"], cols["size"], cols["length"]
    string, js, delta = cols["str"], cols["json"], cols["delta"]
    for s, n, sc, ch, value, d in rows:
        step.append(s)
        name.append(n)
        scope.append("global" if sc else "local")
        change.append(CHANGES[ch])
        if ch == 3:  # deleted: no value
            for col in (kind, text, size, length, string, js, delta):
                col.append(None)
            continue
        t = type(value)
        if t in _SIMPLE and (t is not int or -_BIG < value < _BIG):  # type: ignore[operator]
            # The common values, without the general path's calls: a tenth of the time.
            if t is str:
                r = repr(value)
                kind.append("str")
                text.append(r[:REPR_CHARS])
                size.append(len(r))
                length.append(len(value))
                string.append(value[:STR_CHARS] if value != r else None)
                js.append(_json_str(value) if len(r) <= REPR_CHARS else None)
            else:
                r = repr(value)
                kind.append(t.__name__)
                text.append(r)
                size.append(len(r))
                length.append(None)
                string.append(None)
                js.append(_SIMPLE[t](value, r))
        elif t is _Now:
            kind.append(value.kind)
            text.append(value.text)
            size.append(value.size)
            length.append(value.length)
            string.append(value.string)
            js.append(None)
        else:
            r, n_chars = _bounded_repr(value)
            kind.append(type(value).__name__)
            text.append(r)
            size.append(n_chars)
            length.append(_length(value))
            string.append(_bounded_str(value, r))
            js.append(_json(value, n_chars))
        delta.append(_delta_json(d) if d else None)
    return cols


_BIG = 10**15
_json_str = json.encoder.encode_basestring  # type: ignore[attr-defined]


def _float_json(value: float, text: str) -> str | None:
    return text if value == value and value not in (float("inf"), float("-inf")) else None


# Types whose JSON follows from their repr (str: from the string itself).
_SIMPLE: dict[type, Callable[[Any, str], str | None]] = {
    int: lambda v, r: r,
    bool: lambda v, r: "true" if v else "false",
    type(None): lambda v, r: "null",
    float: _float_json,
    str: lambda v, r: None,
}


def _delta_json(delta: list[tuple[str, object, object]]) -> str:
    out = []
    for op, key, value in delta[:1000]:
        item: dict[str, object] = {"op": op}
        if key is not None:
            item["key"] = key if type(key) in (int, str) else _bounded_repr(key)[0]
        if op != "remove" or key is None:
            item["value"] = _bounded_repr(value)[0]
        out.append(item)
    return json.dumps(out, ensure_ascii=False)


def _globals_touched(code: CodeType) -> tuple[str, ...]:
    """Global names the code reads or writes (data among them is part of its state)."""
    import dis

    names = []
    for ins in dis.get_instructions(code):
        if ins.opname in ("LOAD_GLOBAL", "STORE_GLOBAL", "DELETE_GLOBAL"):
            name = ins.argval
            if name not in names:
                names.append(name)
    return tuple(n for n in names if n not in _BUILTIN_NAMES)


_BUILTIN_NAMES = frozenset(dir(__import__("builtins")))


# -- back ends -------------------------------------------------------------------------------


class _Monitoring:
    """sys.monitoring (3.12+): a tool of its own; LINE only in code in scope."""

    def __init__(self, recorder: StateRecorder) -> None:
        self.r = recorder
        self.tool: int | None = None

    def start(self) -> None:
        from .sysmon import claim_tool

        mon = sys.monitoring
        ev = mon.events
        r = self.r
        getframe = sys._getframe
        frames = r.frames
        line_of = r.line
        frames_get = frames.get
        disable = mon.DISABLE
        local = ev.LINE | ev.PY_RETURN | ev.PY_YIELD | ev.PY_RESUME

        def on_start(code: CodeType, offset: int) -> object:
            if r.known(code) is None:
                return disable
            if mon.get_local_events(tool, code) != local:
                mon.set_local_events(tool, code, local)
            r.entered(code, getframe(1))
            return None

        def on_resume(code: CodeType, offset: int) -> object:
            frame = getframe(1)
            if frame not in frames and r.known(code) is not None:
                r.entered(code, frame)  # a generator started before recording began
            return None

        def on_line(code: CodeType, line: int) -> object:
            frame = getframe(1)
            state = frames_get(frame)
            if state is not None:
                line_of(state, frame, line)
            return None

        def on_return(code: CodeType, offset: int, value: object) -> object:
            frame = getframe(1)
            r.left(frame, 2, value, frame.f_lineno)
            return None

        def on_yield(code: CodeType, offset: int, value: object) -> object:
            frame = getframe(1)
            r.left(frame, 3, value, frame.f_lineno)
            return None

        def on_raise(code: CodeType, offset: int, exc: BaseException) -> object:
            frame = getframe(1)
            r.raised(frame, exc, frame.f_lineno)
            return None

        def on_unwind(code: CodeType, offset: int, exc: BaseException) -> object:
            r.left(getframe(1), 4, None, 0)
            return None

        tool = self.tool = claim_tool(
            "probe-states",
            {
                ev.PY_START: on_start,
                ev.PY_RESUME: on_resume,
                ev.LINE: on_line,
                ev.PY_RETURN: on_return,
                ev.PY_YIELD: on_yield,
                ev.RAISE: on_raise,
                ev.PY_UNWIND: on_unwind,
            },
        )
        # Exceptions can only be watched everywhere; they are rare, and skipped out of scope.
        mon.set_events(tool, ev.PY_START | ev.RAISE | ev.PY_UNWIND)
        # Events a tool switched off (DISABLE) stay off for the next tool given the same id:
        # a session's or an earlier trace's choices must not hide this one's code.
        mon.restart_events()
        # The frame that starts recording (probe's own) is not in scope; frames of code in
        # scope already running (a session opened inside a function) are adopted.
        frame: FrameType | None = getframe(1)
        adopted = []
        while frame is not None:
            if r.known(frame.f_code) is not None:
                adopted.append(frame)
            frame = frame.f_back
        for frame in reversed(adopted):
            mon.set_local_events(tool, frame.f_code, local)
            r.entered(frame.f_code, frame)

    def stop(self) -> None:
        if self.tool is None:
            return
        from .sysmon import release_tool

        ev = sys.monitoring.events
        tool, self.tool = self.tool, None
        release_tool(
            tool,
            (
                ev.PY_START,
                ev.PY_RESUME,
                ev.LINE,
                ev.PY_RETURN,
                ev.PY_YIELD,
                ev.RAISE,
                ev.PY_UNWIND,
            ),
        )


class _Settrace:
    """sys.settrace (3.11), in settrace.py's chain, beside sessions' tracers."""

    def __init__(self, recorder: StateRecorder) -> None:
        self.r = recorder
        self._unwinding: set[FrameType] = set()
        self.on = False

    def start(self) -> None:
        from .settrace import _chain

        r = self.r
        frame: FrameType | None = sys._getframe(1)
        adopted = []
        while frame is not None:
            if r.known(frame.f_code) is not None:
                adopted.append(frame)
            frame = frame.f_back
        for frame in reversed(adopted):
            r.entered(frame.f_code, frame)
            frame.f_trace = self._local
        self.on = True
        _chain.add(self)

    def stop(self) -> None:
        from .settrace import _chain

        if self.on:
            self.on = False
            _chain.remove(self)

    def on_call(self, frame: FrameType, event: str, arg: Any) -> Any:
        if event != "call" or not self.on:
            return None
        code = frame.f_code
        if self.r.known(code) is None:
            return None
        if frame not in self.r.frames:
            if self.r.entered(code, frame) is None:
                return None
        return self._local

    def _local(self, frame: FrameType, event: str, arg: Any) -> Any:
        if not self.on:
            return None
        r = self.r
        if event == "line":
            self._unwinding.discard(frame)
            state = r.frames.get(frame)
            if state is not None:
                r.line(state, frame, frame.f_lineno)
        elif event == "return":
            if frame in self._unwinding:
                self._unwinding.discard(frame)
                r.left(frame, 4, None, 0)
            elif frame.f_code.co_flags & SUSPENDABLE and _suspended(frame):
                r.left(frame, 3, arg, frame.f_lineno)
            else:
                r.left(frame, 2, arg, frame.f_lineno)
        elif event == "exception":
            self._unwinding.add(frame)
            r.raised(frame, arg[1], frame.f_lineno)
        return self._local


def _suspended(frame: FrameType) -> bool:
    from .settrace import _suspended as suspended

    return suspended(frame)


# Instructions that can change a container in place (or run code that may): a line without
# any is "quiet", and containers the frame holds are not compared after it. A container
# changed by an operator or property the program defines, on a line without these, is seen
# at the next line that has one.
_MUTATING = frozenset(
    name
    for name in __import__("dis").opmap
    if name.startswith(("CALL", "STORE_SUBSCR", "DELETE_SUBSCR", "STORE_SLICE", "STORE_ATTR"))
    or name in ("DELETE_ATTR", "FOR_ITER", "SEND", "YIELD_VALUE", "GET_AWAITABLE", "RAISE_VARARGS")
    or name.startswith(("BINARY_OP", "INPLACE_", "LIST_EXTEND", "SET_UPDATE", "DICT_UPDATE"))
    or name.startswith(("PRECALL", "BEFORE_WITH", "IMPORT_"))
)


def _quiet_lines(code: CodeType) -> frozenset[int]:
    """The lines of ``code`` none of whose instructions can change a container in place."""
    import dis

    busy: set[int] = set()
    lines: set[int] = set()
    line = None
    for ins in dis.get_instructions(code):
        if ins.positions is not None and ins.positions.lineno is not None:
            line = ins.positions.lineno
        if line is None:
            continue
        lines.add(line)
        if ins.opname in _MUTATING and not (ins.opname == "BINARY_OP" and "=" not in ins.argrepr):
            busy.add(line)
    return frozenset(lines - busy)
