"""Line probes by rewriting code objects: flags on 3.11, counts on all.

3.11 has no sys.monitoring, and sys.settrace costs a Python call per line
for ever. Instead, where a new line starts (or a jump lands), the rewriter
inserts a store into a per-file Python list::

    NOP; LOAD_CONST 1; LOAD_CONST <list>; LOAD_CONST <index>; STORE_SUBSCR

which the interpreter specialises to STORE_SUBSCR_LIST_INT: a few
nanoseconds, no call. Flags go straight into the code units (units.py);
counts are placed with ``bytecode``. Counts mark where line events come (points) and let
flow.py place the increments: on 3.12+ a few, on the edges of each code
object's flow graph; on 3.11 one at every point. The inserted instructions
carry the line number of the instruction they precede, so tracebacks and
line numbers are unchanged.

A flag that has fired is then switched off where the interpreter runs it:
a background thread turns the probe's NOP into a JUMP_FORWARD over the
rest, in the code object's executable bytecode (``co_code_adaptive``:
compat.executable_bytecode). Only that first code unit changes, under the GIL,
so a frame stopped anywhere inside the probe still finds the rest intact. A
covered line then costs one jump. The thread is a Snapshots thread: it pauses
while the program forks.
"""

from __future__ import annotations

import dis
from types import CodeType

from probe.engines.snapshots import Snapshots
from probe.storage.spool import warn

from . import units
from .compat import executable_bytecode
from .tracer import func_name

TYPE_CHECKING = False
if TYPE_CHECKING:
    from .flow import FileCounts

_JUMP_FORWARD = dis.opmap["JUMP_FORWARD"]
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
        self._exits = None
        if count:  # flow.py brings `bytecode`, which flags don't need (units.py)
            from .flow import Exits

            self._exits = Exits()
        # Per file: (qualified name, first line) of each code object -> its slot of starts.
        self._starts: dict[str, dict[tuple[str, int], int]] = {}
        # Flags not yet switched off: (slots, index, code object, byte offset of the NOP, skip).
        self._armed: list[tuple[list[int], int, CodeType, int, int]] = []
        # paused around forks, as the snapshots are
        self._thread: Snapshots | None = None

    def instrument(self, code: CodeType) -> CodeType:
        if self._count:
            from .flow import FileCounts

            return self._counted(code, self._counts.setdefault(code.co_filename, FileCounts()))
        slots, index = self._files.setdefault(code.co_filename, ([], {}))
        armed: list[tuple[list[int], int, CodeType, int, int]] = []
        new = self._rewrite(code, slots, index, armed)
        slots.extend([0] * (len(index) - len(slots)))
        self._armed += armed  # after the slots exist: the disarming thread reads them
        if self._thread is None:
            self._thread = Snapshots(
                self._disarm, _PATCH_EVERY_S, "probe-disarm", "switching off fired line probes"
            )
            self._thread.start()
        return new

    def start(self) -> None:
        """Probes are placed as code is compiled; counts watch exceptions (flow.py)."""
        if self._count:
            self._exits.start()

    def stop(self) -> None:
        if self._exits is not None:
            self._exits.stop()
        if self._thread is not None:
            self._thread.stop()
            self._thread = None

    def _disarm(self) -> None:
        waiting = []
        for probe in self._armed:
            slots, i, code, offset, skip = probe
            if slots[i] and skip < 256:
                executable_bytecode(code)[offset : offset + 2] = (_JUMP_FORWARD, skip)
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
        from bytecode import Bytecode

        from .flow import MODES, count_points, place

        problem = None
        for mode in MODES:  # a shape the cheaper placements (or `bytecode`) get wrong: the next
            try:
                bc = Bytecode.from_code(code)
                placed, flow = place(count_points(list(bc), start), file, mode)
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

    def _rewrite(
        self, code: CodeType, slots: list[int], index: dict[int, int], armed: list
    ) -> CodeType:
        consts = tuple(
            self._rewrite(c, slots, index, armed) if isinstance(c, CodeType) else c
            for c in code.co_consts
        )
        if consts != code.co_consts:
            code = code.replace(co_consts=consts)
        new, placed = units.insert_flags(code, slots, index)
        armed += [(slots, slot, new, at, skip) for slot, at, skip in placed]
        return new
