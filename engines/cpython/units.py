"""Probes inserted into a 3.11 code object's code units directly (line flags).

``bytecode`` (which counts use) turns every instruction into an object, builds a flow graph
and assembles it all back: 1 ms per code object, 25 ms per module of a few hundred lines,
seconds for a program that imports hundreds (coverage.py's tracer pays nothing there), and
its import alone is a quarter of probe's fixed cost on 3.11. A flag probe needs far less:
copy the code units, insert the probe's units before each instruction that starts a line
or that a jump lands on, and move what points into the code by what was inserted before
it: the relative jumps, the exception table and the location table. A probe's net stack
effect is nil, so exception handlers' depths stay, and the stack needs three more slots.

The formats are CPython 3.11's (Objects/locations.md, Objects/exception_handling_notes.txt);
3.12 and later take line flags from sys.monitoring and never come here.
"""

from __future__ import annotations

import dis
from types import CodeType

_EXTENDED_ARG = dis.opmap["EXTENDED_ARG"]
_RESUME = dis.opmap["RESUME"]
_NOP = dis.opmap["NOP"]
_LOAD_CONST = dis.opmap["LOAD_CONST"]
_STORE_SUBSCR = dis.opmap["STORE_SUBSCR"]
_CACHES = dis._inline_cache_entries  # code units of inline cache after each opcode
_JUMPS = frozenset(dis.hasjrel)  # 3.11: every jump is relative
_BACKWARD = frozenset(op for op in dis.hasjrel if "BACKWARD" in dis.opname[op])


class _Instr:
    __slots__ = ("at", "op", "arg", "ext", "target", "line", "positions")

    def __init__(self, at: int, op: int, arg: int, ext: int) -> None:
        self.at = at  # offset in code units of its first unit (an EXTENDED_ARG, if any)
        self.op = op
        self.arg = arg
        self.ext = ext  # EXTENDED_ARG units before it
        self.target: int | None = None  # a jump's target, as an old offset (units)
        self.line: int | None = None
        self.positions: list[tuple] = []  # its units' (line, end line, col, end col)

    @property
    def size(self) -> int:
        return self.ext + 1 + _CACHES[self.op]


def insert_flags(
    code: CodeType, slots: list[int], index: dict[int, int]
) -> tuple[CodeType, list[tuple[int, int, int]]]:
    """``code`` (not the code objects it holds) with a flag probe, ``slots[index[line]] =
    1``, where each line starts after RESUME and at every jump target with a line: as
    ``NOP; LOAD_CONST 1; LOAD_CONST slots; LOAD_CONST i; STORE_SUBSCR``. ``index`` gains
    the new lines. And each probe: (slot, byte offset of its NOP, code units after the NOP),
    for the thread that turns a fired probe's NOP into a jump over the rest."""
    instrs = _decode(code)
    landing = {i.target for i in instrs if i.target is not None}
    handlers = _exception_table(code.co_exceptiontable)
    landing.update(target for _, _, target, _ in handlers)
    consts = list(code.co_consts)
    # The probe's constants: ints (1 and slot numbers; exactly int: 1 is not True) and
    # the slots list (by identity), each added once where the code doesn't have it.
    found = {c: k for k, c in reversed(list(enumerate(consts))) if type(c) is int}
    slots_at = next((k for k, c in enumerate(consts) if c is slots), None)

    def const(value: int) -> int:
        k = found.get(value)
        if k is None:
            consts.append(value)
            k = found[value] = len(consts) - 1
        return k

    if slots_at is None:
        consts.append(slots)
        slots_at = len(consts) - 1

    probes: dict[int, list[tuple[int, int]]] = {}  # old offset -> the probe's (op, arg)s
    resumed, last = False, None
    for i in instrs:
        line = i.line
        if resumed and line and line > 0 and (line != last or i.at in landing):
            slot = index.setdefault(line, len(index))
            probes[i.at] = [(_NOP, 0), (_LOAD_CONST, const(1)), (_LOAD_CONST, slots_at),
                            (_LOAD_CONST, const(slot)), (_STORE_SUBSCR, 0)]  # fmt: skip
        if i.op == _RESUME:
            resumed = True
        if line:
            last = line
    if not probes:
        return code, []
    where = _layout(instrs, probes)
    units = bytearray()
    positions: list[tuple] = []
    for i in instrs:
        probe = probes.get(i.at)
        if probe:
            before = i.positions[0]
            for op, arg in probe:
                _emit(units, op, arg, _ext_for(arg))
            positions += [before] * (len(units) // 2 - len(positions))
        arg = i.arg if i.target is None else _distance(i, where)
        _emit(units, i.op, arg, i.ext)
        # (a jump that needs more EXTENDED_ARGs now: they are at its position too)
        positions += [i.positions[0]] * (i.size - len(i.positions)) + i.positions
    table = bytearray()
    for start, end, target, depth_lasti in handlers:
        for value, first in ((where[start][0], True), (where[end][0] - where[start][0], False),
                             (where[target][0], False), (depth_lasti, False)):  # fmt: skip
            _exception_varint(table, value, 128 if first else 0)
    new = code.replace(
        co_code=bytes(units),
        co_consts=tuple(consts),
        co_linetable=_locations(positions, code.co_firstlineno),
        co_exceptiontable=bytes(table),
        co_stacksize=code.co_stacksize + 3,
    )
    placed = [
        (consts[probe[3][1]], 2 * where[at][0], where[at][1] - where[at][0] - 1)
        for at, probe in probes.items()
    ]
    return new, placed


def _decode(code: CodeType) -> list[_Instr]:
    raw = code.co_code
    positions = list(code.co_positions())
    instrs: list[_Instr] = []
    at = ext = arg = 0
    start = 0
    while at < len(raw) // 2:
        op, value = raw[2 * at], raw[2 * at + 1]
        arg = arg << 8 | value
        if op == _EXTENDED_ARG:
            ext += 1
            at += 1
            continue
        i = _Instr(start, op, arg, ext)
        size = i.size
        i.positions = positions[start : start + size]
        i.line = positions[at][0]
        if op in _JUMPS:
            after = at + 1  # 3.11's jumps have no caches
            i.target = after - arg if op in _BACKWARD else after + arg
        instrs.append(i)
        at = start = start + size
        ext = arg = 0
    return instrs


def _layout(instrs: list[_Instr], probes: dict[int, list[tuple[int, int]]]) -> dict:
    """Old offset -> (new offset of the probe before it, or of it; new offset of it), with
    jumps given the EXTENDED_ARGs their new distances need (more where they grew: a fixed
    point, as sizes only grow). A jump to an instruction with a probe lands on the probe."""
    probe_size = {at: sum(1 + _ext_for(arg) for _, arg in p) + _CACHES[_STORE_SUBSCR]
                  for at, p in probes.items()}  # fmt: skip
    end = instrs[-1].at + instrs[-1].size if instrs else 0
    while True:
        where: dict[int, tuple[int, int]] = {}
        new = 0
        for i in instrs:
            first = new
            new += probe_size.get(i.at, 0)
            where[i.at] = (first, new)
            new += i.size
        where[end] = (new, new)
        grew = False
        for i in instrs:
            if i.target is None:
                continue
            need = _ext_for(_distance(i, where))
            if need > i.ext:
                i.ext, grew = need, True
        if not grew:
            return where


def _distance(i: _Instr, where: dict[int, tuple[int, int]]) -> int:
    """A jump's argument in the new layout: code units from the one after its opcode."""
    after = where[i.at][1] + i.ext + 1
    target = where[i.target][0]
    return after - target if i.op in _BACKWARD else target - after


def _ext_for(arg: int) -> int:
    """EXTENDED_ARG units an argument needs."""
    return 0 if arg < 1 << 8 else 1 if arg < 1 << 16 else 2 if arg < 1 << 24 else 3


def _emit(units: bytearray, op: int, arg: int, ext: int) -> None:
    for shift in range(8 * ext, 0, -8):
        units += bytes((_EXTENDED_ARG, arg >> shift & 0xFF))
    units += bytes((op, arg & 0xFF))
    units += bytes(2 * _CACHES[op])


def _exception_table(table: bytes) -> list[tuple[int, int, int, int]]:
    """(start, end, target, depth << 1 | lasti) per entry, offsets in code units."""
    entries = []
    it = iter(table)
    for b in it:
        values = []
        for k in range(4):
            if k:
                b = next(it)
            value = b & 63
            while b & 64:
                b = next(it)
                value = value << 6 | b & 63
            values.append(value)
        start, length, target, depth_lasti = values
        entries.append((start, start + length, target, depth_lasti))
    return entries


def _exception_varint(out: bytearray, value: int, start_bit: int) -> None:
    """6-bit groups, most significant first, 64 on all but the last; 128 on an entry's first."""
    groups = [value & 63]
    value >>= 6
    while value:
        groups.append(value & 63)
        value >>= 6
    for k, g in enumerate(reversed(groups)):
        more = 64 if k < len(groups) - 1 else 0
        out.append(g | more | (start_bit if k == 0 else 0))


def _locations(positions: list[tuple], first_line: int) -> bytes:
    """The location table of code units at ``positions`` (line, end line, col, end col):
    runs of one position, eight units at most an entry, in the long form (or the no-column
    and no-location forms)."""
    out = bytearray()
    line = first_line
    k = 0
    while k < len(positions):
        here = positions[k]
        n = 1
        while n < 8 and k + n < len(positions) and positions[k + n] == here:
            n += 1
        start, end, col, end_col = here
        if start is None:
            out.append(0x80 | 15 << 3 | n - 1)
        elif col is None or end_col is None or end is None:
            out.append(0x80 | 13 << 3 | n - 1)
            _svarint(out, start - line)
            line = start
        else:
            out.append(0x80 | 14 << 3 | n - 1)
            _svarint(out, start - line)
            _varint(out, end - start)
            _varint(out, col + 1)
            _varint(out, end_col + 1)
            line = start
        k += n
    return bytes(out)


def _varint(out: bytearray, value: int) -> None:
    """6-bit groups, least significant first, 64 on all but the last."""
    while value >= 64:
        out.append(64 | value & 63)
        value >>= 6
    out.append(value)


def _svarint(out: bytearray, value: int) -> None:
    _varint(out, -value << 1 | 1 if value < 0 else value << 1)
