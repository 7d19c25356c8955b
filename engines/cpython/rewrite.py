"""Line probes by rewriting code objects with ``bytecode``: flags on 3.11, counts on all.

3.11 has no sys.monitoring, and sys.settrace costs a Python call per line
for ever. Instead, where a new line starts (or a jump lands), the rewriter
inserts a store into a per-file Python list::

    NOP; LOAD_CONST 1; LOAD_CONST <list>; LOAD_CONST <index>; STORE_SUBSCR

which the interpreter specialises to STORE_SUBSCR_LIST_INT: a few
nanoseconds, no call. Counts mark where line events come (points) and let
flow.py place the increments: on 3.12+ a few, on the edges of each code
object's flow graph; on 3.11 one at every point. The inserted instructions
carry the line number of the instruction they precede, so tracebacks and
line numbers are unchanged.

A flag that has fired is then switched off where the interpreter runs it:
a background thread turns the probe's NOP into a JUMP_FORWARD over the
rest, in the code object's executable bytecode (``co_code_adaptive``, which
starts ``CodeType.__basicsize__`` bytes into the object on 3.11). Only that
first code unit changes, under the GIL, so a frame stopped anywhere inside
the probe still finds the rest intact. A covered line then costs one jump.
"""

from __future__ import annotations

import ctypes
import dis
import re
import threading
from types import CodeType

from bytecode import Bytecode, Instr, Label

from probe.storage.spool import warn

from .compat import BACK_JUMP_IS_LINE_EVENT, CODE_ADAPTIVE_OFFSET
from .flow import MODES, Exits, FileCounts, Point, Start, place
from .tracer import func_name

_NOP = dis.opmap["NOP"]
_JUMP_FORWARD = dis.opmap["JUMP_FORWARD"]
# A probe in code units: NOP; LOAD_CONST 1; LOAD_CONST <slots>; LOAD_CONST <index>;
# STORE_SUBSCR, each LOAD_CONST with the EXTENDED_ARGs a big const index needs.
_PROBE_START = bytes((_NOP, 0))
_LOAD = b"((?:" + re.escape(bytes((dis.opmap["EXTENDED_ARG"],))) + b".)*"
_LOAD += re.escape(bytes((dis.opmap["LOAD_CONST"],))) + b".)"
_PROBE = re.compile(
    re.escape(_PROBE_START) + _LOAD * 3 + re.escape(bytes((dis.opmap["STORE_SUBSCR"],))) + b".",
    re.DOTALL,
)
_STORE_CACHES = dis._inline_cache_entries[dis.opmap["STORE_SUBSCR"]]
_PATCH_EVERY_S = 0.05


class Rewriter:
    """Instruments code objects and reads back, per file, the lines that ran."""

    def __init__(self, count: bool = False, entries: bool = False) -> None:
        """``count``: count lines, not flag them; ``entries`` (with ``count``): count each
        code object's starts too, as sys.monitoring's PY_START would (a callback a call)."""
        self._count = count
        self._entries = entries and count
        self._files: dict[str, tuple[list[int], dict[int, int]]] = {}  # flags
        self._counts: dict[str, FileCounts] = {}  # counts
        self._exits = Exits()
        # Per file: (qualified name, first line) of each code object -> its slot of starts.
        self._starts: dict[str, dict[tuple[str, int], int]] = {}
        # Flags not yet switched off: (slots, index, code object, byte offset of the NOP, skip).
        self._armed: list[tuple[list[int], int, CodeType, int, int]] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def instrument(self, code: CodeType) -> CodeType:
        if self._count:
            return self._counted(code, self._counts.setdefault(code.co_filename, FileCounts()))
        slots, index = self._files.setdefault(code.co_filename, ([], {}))
        new = self._rewrite(code, slots, index)
        slots.extend([0] * (len(index) - len(slots)))
        self._arm(new, slots)
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._disarm_loop, name="probe-disarm", daemon=True
            )
            self._thread.start()
        return new

    def start(self) -> None:
        """Probes are placed as code is compiled; counts watch exceptions (flow.py)."""
        if self._count:
            self._exits.start()

    def stop(self) -> None:
        self._exits.stop()
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def _arm(self, code: CodeType, slots: list[int]) -> None:
        """Find every probe in ``code`` (and nested code) by its NOP and record where it is.

        Read from the raw code units, not ``dis``: dis makes an object per instruction,
        a quarter of the time an import-heavy program spent being rewritten."""
        for const in code.co_consts:
            if isinstance(const, CodeType):
                self._arm(const, slots)
        raw, consts = code.co_code, code.co_consts
        at = raw.find(_PROBE_START)
        while at >= 0:
            m = _PROBE.match(raw, at) if at % 2 == 0 else None  # code units are 2 bytes
            if m and consts[_arg(m[2])] is slots and consts[_arg(m[1])] == 1:
                after = m.end() + 2 * _STORE_CACHES  # the skip goes over the store's cache
                self._armed.append((slots, consts[_arg(m[3])], code, at, (after - at - 2) // 2))
            at = raw.find(_PROBE_START, at + 1)

    def _disarm_loop(self) -> None:
        while not self._stop.wait(_PATCH_EVERY_S):
            self._disarm()

    def _disarm(self) -> None:
        waiting = []
        base = CODE_ADAPTIVE_OFFSET
        for probe in self._armed:
            slots, i, code, offset, skip = probe
            if slots[i] and skip < 256:
                ctypes.memmove(id(code) + base + offset, bytes((_JUMP_FORWARD, skip)), 2)
            else:
                waiting.append(probe)
        self._armed = waiting

    def hits(self) -> dict[str, dict[int, int]]:
        """Lines that ran, per file, with their counts (1 for flags)."""
        if self._count:
            live = self._exits.live()
            return {filename: file.lines(live) for filename, file in self._counts.items()}
        found = {}
        for filename, (slots, index) in list(self._files.items()):
            # From the snapshot thread, ``index`` may hold lines of code being instrumented
            # now, their slots not made yet: that code hasn't run.
            n = len(slots)
            found[filename] = {
                line: slots[i] for line, i in list(index.items()) if i < n and slots[i]
            }
        return found

    def starts(self) -> dict[str, dict[tuple[str, int], int]]:
        """Code objects that started, per file: (qualified name, first line) -> starts."""
        found: dict[str, dict[tuple[str, int], int]] = {}
        for filename, where in self._starts.items():
            slots = self._counts[filename].slots
            found[filename] = {key: slots[i] for key, i in where.items() if slots[i]}
        return found

    def _counted(self, code: CodeType, file: FileCounts) -> CodeType:
        """``code`` and the code objects it holds, counting their lines (and starts)."""
        consts = tuple(
            self._counted(c, file) if isinstance(c, CodeType) else c for c in code.co_consts
        )
        if consts != code.co_consts:
            code = code.replace(co_consts=consts)
        start = None
        if self._entries:
            start = file.new_slot()
            where = self._starts.setdefault(code.co_filename, {})
            where[(func_name(code), code.co_firstlineno)] = start
        problem = None
        for mode in MODES:  # a shape the cheaper placements (or `bytecode`) get wrong: the next
            try:
                bc = Bytecode.from_code(code)
                placed, flow = place(self._count_points(list(bc), start), file, mode)
                bc[:] = placed
                new = bc.to_code()
                self._exits.register(new, flow)
            except Exception as e:  # noqa: BLE001 - the program runs on, this code uncounted
                problem = e
                continue
            file.flows.append(flow)
            return new
        warn(
            f"{code.co_filename}:{code.co_firstlineno}: {func_name(code)}: its lines are not "
            f"counted (the bytecode could not be rewritten: {type(problem).__name__}: {problem})"
        )
        return code

    def _rewrite(self, code: CodeType, slots: list[int], index: dict[int, int]) -> CodeType:
        consts = tuple(
            self._rewrite(c, slots, index) if isinstance(c, CodeType) else c for c in code.co_consts
        )
        if consts != code.co_consts:
            code = code.replace(co_consts=consts)
        bc = Bytecode.from_code(code, conserve_exception_block_stackdepth=True)
        out: list[object] = []
        resumed = False
        last_line: int | None = None
        landed = False
        for item in bc:
            if isinstance(item, Label):
                landed = True
            elif isinstance(item, Instr):
                line = item.lineno
                if resumed and line and line > 0 and (line != last_line or landed):
                    out.extend(self._probe(slots, index.setdefault(line, len(index)), line))
                if item.name == "RESUME":
                    resumed = True
                if line:
                    last_line = line
                landed = False
            out.append(item)
        bc[:] = out
        # A probe pushes three values and stores them: the stack never goes deeper than the
        # code's own plus three, and exception handlers' depths don't change (kept as they
        # were read). Saying so skips `bytecode`'s flow graph, a third of the rewrite's time.
        return bc.to_code(stacksize=code.co_stacksize + 3, compute_exception_stack_depths=False)

    def _count_points(self, items: list[object], start: int | None) -> list[object]:
        """Count points where the interpreter reports a line event, and only there.

        A line event comes at a function's first line, when execution moves to another line,
        and (sys.settrace on 3.11) when a jump goes back. So a jump target gets two entries:
        jumps that make a line event come in before the probe; the others, and falling
        through from its own line, come in after it.

        ``start``: the slot counting the code's starts, right after its RESUME 0 (before
        any label: a jump back to the first line is no start). Points and starts (and
        resumptions) are markers, made increments by flow.place.
        """
        pos = {id(item): k for k, item in enumerate(items) if isinstance(item, Label)}
        line_at: dict[int, int | None] = {}  # label -> line of the instruction it marks
        pending: list[Label] = []
        for item in items:
            if isinstance(item, Label):
                pending.append(item)
            elif isinstance(item, Instr):
                for label in pending:
                    line_at[id(label)] = item.lineno
                pending = []
        quiet: dict[int, Label] = {}  # label -> its entry after the probe
        counted: set[int] = set()  # labels some jump enters through the probe
        for k, item in enumerate(items):
            if isinstance(item, Instr) and isinstance(item.arg, Label):
                label = item.arg
                back = pos[id(label)] < k and BACK_JUMP_IS_LINE_EVENT
                if back or item.lineno != line_at.get(id(label)):
                    counted.add(id(label))
                else:
                    item.arg = quiet.setdefault(id(label), Label())
            elif not isinstance(item, Instr | Label):
                counted.update(id(t) for t in _labels_of(item))  # exception handlers
        out: list[object] = []
        labels: list[Label] = []
        resumed = first = False
        before: Instr | None = None  # the instruction before, in the code's order
        for item in items:
            if isinstance(item, Label):
                labels.append(item)
                continue
            if not isinstance(item, Instr):
                out.append(item)
                continue
            line = item.lineno
            if resumed and line and line > 0:
                falls_in = before is None or _falls_through(before)
                moved = first or before is None or before.lineno != line
                jumped_in = any(id(lb) in counted for lb in labels)
                if (falls_in and moved) or jumped_in:
                    after = [quiet[id(lb)] for lb in labels if id(lb) in quiet]
                    if falls_in and not moved:
                        skip = Label()
                        out.append(Instr("JUMP_FORWARD", skip, lineno=line))
                        after.append(skip)
                    out.extend(labels)
                    out.append(Point(line))
                    out.extend(after)
                else:
                    out.extend(labels)
                    out.extend(quiet[id(lb)] for lb in labels if id(lb) in quiet)
                labels = []
                first = False
            else:
                out.extend(labels)
                out.extend(quiet[id(lb)] for lb in labels if id(lb) in quiet)
                labels = []
            out.append(item)
            if item.name == "RESUME":
                resumed = True
                first = item.arg == 0  # a function's start, not a resumption after a yield
                out.append(Start(first, start if first else None))
            before = item
        out.extend(labels)
        return out

    def _probe(self, slots: list[int], i: int, line: int) -> list[Instr]:
        return [
            Instr("NOP", lineno=line),
            Instr("LOAD_CONST", 1, lineno=line),
            Instr("LOAD_CONST", slots, lineno=line),
            Instr("LOAD_CONST", i, lineno=line),
            Instr("STORE_SUBSCR", lineno=line),
        ]


def _arg(units: bytes) -> int:
    """The argument of an instruction and its EXTENDED_ARG prefixes (code units)."""
    value = 0
    for k in range(1, len(units), 2):
        value = value << 8 | units[k]
    return value


def _labels_of(item: object) -> list[Label]:
    """Labels a pseudo-instruction (an exception table entry) refers to."""
    target = getattr(item, "target", None)
    return [target] if isinstance(target, Label) else []


def _falls_through(item: object) -> bool:
    """Whether execution can run on from ``item`` to what follows it."""
    if not isinstance(item, Instr):
        return True
    return item.name not in (
        "JUMP_FORWARD",
        "JUMP_BACKWARD",
        "JUMP_BACKWARD_NO_INTERRUPT",
        "RETURN_VALUE",
        "RAISE_VARARGS",
        "RERAISE",
    )
