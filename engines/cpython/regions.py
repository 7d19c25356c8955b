"""Line counts from one increment per straight run of code, not one per line (3.12+).

A *region* is a run of instructions that control enters only at its top and leaves, but for
exceptions, only at its bottom: it ends at a label (a jump target, an exception handler) and
after a jump, a return, a raise or a yield. Each *point* in a region (a place where the
interpreter reports a line event, see rewrite.py) runs as often as the region's top, so one
increment there counts them all: a loop body of five plain lines costs one increment, not
five.

An exception that leaves a region in the middle is the exception: the points after the
instruction that raised did not run. sys.monitoring's RAISE event names that instruction,
in each frame the exception passes through (not only the one that raised it), so the
rewriter keeps, for every instruction, the points after it in its region, and the RAISE
callback counts them as missed. Frames still running when the counts are read (other
threads, a program that calls os._exit) are read the same way at their current instruction.

3.11 has no RAISE event: there every point is a region of its own, an increment each.
"""

from __future__ import annotations

import dis
import sys
from collections import Counter
from dataclasses import dataclass, field
from types import CodeType

from bytecode import Instr, Label

from .compat import MONITORING

SHARED = MONITORING  # points share their region's increment where exceptions can be seen

_NB_INPLACE_ADD = 13
_ENDS = {
    "RETURN_VALUE",
    "RETURN_CONST",
    "RAISE_VARARGS",
    "RERAISE",
    "YIELD_VALUE",
    "RESUME",  # a resumption after a yield comes in here
}


class Point:
    """A line event's place in the instruction list, before it becomes a share of a region."""

    __slots__ = ("line",)

    def __init__(self, line: int) -> None:
        self.line = line


class Start:
    """A code object's start (after RESUME 0): counted in ``slot``, and a region's top."""

    __slots__ = ("line", "slot")

    def __init__(self, slot: int, line: int | None) -> None:
        self.slot = slot
        self.line = line


@dataclass
class FileCounts:
    """One file's counters: what its code objects increment, and what they mean."""

    slots: list[int] = field(default_factory=list)  # the increments land here (a constant)
    points: list[tuple[int, int]] = field(default_factory=list)  # (line, region's slot)
    missed: list[int] = field(default_factory=list)  # per point: exceptions left before it

    def new_slot(self) -> int:
        self.slots.append(0)
        return len(self.slots) - 1

    def lines(self, live: Counter[int]) -> dict[int, int]:
        """Line -> count; ``live``: points not reached yet by frames still running."""
        counts: dict[int, int] = {}
        slots, missed = self.slots, self.missed
        for point, (line, slot) in enumerate(self.points):
            n = slots[slot] - missed[point] - live[point]
            if n > 0:
                counts[line] = counts.get(line, 0) + n
        return counts


def place(items: list[object], file: FileCounts) -> tuple[list[object], list[list[int]]]:
    """Replace Point and Start markers by increments, one a region where SHARED; also each
    real instruction's points after it in its region (in instruction order), the points a
    RAISE there leaves unrun."""
    out: list[object] = []
    after: list[list[int]] = []
    region: list[list[int]] | None = None  # the after-lists of the open region's instructions
    slot = -1  # the open region's counter

    def increment(slot: int, line: int | None) -> None:
        for ins in _increment(file.slots, slot, line):
            out.append(ins)
            after.append([])  # an increment does not raise

    for item in items:
        if isinstance(item, Start):
            increment(item.slot, item.line)
            region, slot = ([], item.slot) if SHARED else (None, -1)
            continue
        if isinstance(item, Point):
            if region is None:
                slot = file.new_slot()
                increment(slot, item.line)
                region = []
            file.points.append((item.line, slot))
            file.missed.append(0)
            point = len(file.points) - 1
            for later in region:
                later.append(point)
            if not SHARED:
                region = None
            continue
        if isinstance(item, Label):
            region = None
        out.append(item)
        if isinstance(item, Instr):
            mine: list[int] = []
            after.append(mine)
            if region is not None:
                region.append(mine)
            if isinstance(item.arg, Label) or item.name in _ENDS:
                region = None
    return out, after


class Missed:
    """Points an exception (or the end of the run) caught in mid-region: for each rewritten
    code object, by instruction offset, the points after that instruction in its region."""

    def __init__(self) -> None:
        # id(code) -> (code, its file's counts, offset -> points); the code is kept so that
        # its id is not reused (probed code objects hold a list: they can't be hashed).
        self._codes: dict[int, tuple[CodeType, FileCounts, dict[int, tuple[int, ...]]]] = {}
        self._tool: int | None = None

    def register(self, code: CodeType, file: FileCounts, after: list[list[int]]) -> None:
        """``after``: what place() gave for ``code``, one list per instruction in order."""
        # An instruction is named by any code unit of it: RAISE gives the last of its inline
        # caches (the interpreter is past them), f_lasti its first; EXTENDED_ARGs before
        # it stand for it too.
        table: dict[int, tuple[int, ...]] = {}
        instructions = list(dis.get_instructions(code))
        ends = [i.offset for i in instructions[1:]] + [len(code.co_code)]
        begin = None  # where the instruction begins, with its EXTENDED_ARGs
        k = 0
        for ins, end in zip(instructions, ends, strict=True):
            if begin is None:
                begin = ins.offset
            if ins.opname == "EXTENDED_ARG":
                continue
            points = after[k]
            k += 1
            if points:
                table.update(dict.fromkeys(range(begin, end, 2), tuple(points)))
            begin = None
        if k != len(after):
            raise AssertionError(f"{code.co_qualname}: {k} instructions, {len(after)} placed")
        if table:
            self._codes[id(code)] = (code, file, table)

    def start(self) -> None:
        if not SHARED:
            return
        from .sysmon import claim_tool

        raise_ = sys.monitoring.events.RAISE
        self._tool = claim_tool("probe-counts", {raise_: self._raised}, raise_)

    def stop(self) -> None:
        if self._tool is not None:
            from .sysmon import release_tool

            release_tool(self._tool, (sys.monitoring.events.RAISE,))
            self._tool = None

    def _raised(self, code: CodeType, offset: int, exc: BaseException) -> None:
        entry = self._codes.get(id(code))
        if entry is not None:
            points = entry[2].get(offset)
            if points:
                missed = entry[1].missed
                for point in points:
                    missed[point] += 1

    def live(self) -> dict[int, Counter[int]]:
        """id(file) -> points that frames running now have not reached in their region."""
        found: dict[int, Counter[int]] = {}
        for frame in sys._current_frames().values():
            while frame is not None:
                entry = self._codes.get(id(frame.f_code))
                if entry is not None and entry[0] is frame.f_code:
                    points = entry[2].get(frame.f_lasti)
                    if points:
                        found.setdefault(id(entry[1]), Counter()).update(points)
                frame = frame.f_back
        return found


def _increment(slots: list[int], i: int, line: int | None) -> list[Instr]:
    """``slots[i] += 1``: ten instructions the interpreter specialises (list, int), no call."""
    first = Instr("LOAD_CONST", slots, lineno=line)
    index = Instr("LOAD_CONST", i, lineno=line)
    return [
        first,
        index,
        Instr("COPY", 2, lineno=line),
        Instr("COPY", 2, lineno=line),
        Instr("BINARY_SUBSCR", lineno=line),
        Instr("LOAD_CONST", 1, lineno=line),
        Instr("BINARY_OP", _NB_INPLACE_ADD, lineno=line),
        Instr("SWAP", 3, lineno=line),
        Instr("SWAP", 2, lineno=line),
        Instr("STORE_SUBSCR", lineno=line),
    ]
