"""The probe code the rewriter splices into function bodies, and the functions it appends.

Each piece is spelled with opcodes.py's names through ``code()``; the pieces that go in at
every probe (a flag's store, a count's increment) are assembled once per module, so that the
rewriter's loop only appends an offset to them.
"""

from __future__ import annotations

from collections.abc import Callable

from . import opcodes as op
from .binary import enc_s, enc_u32

EVENT_BYTES = 16  # i64 value, i32 site id, 4 bytes unused
EVENT_CAPACITY = 65536  # events per ring: one host call and one Arrow batch per 1 MiB

# How a value of each type becomes an event's i64: integers sign-extended, floats as bits.
TO_I64 = {
    op.T_I32: bytes((op.I64_EXTEND_I32_S,)),
    op.T_I64: b"",
    op.T_F32: bytes((op.I32_REINTERPRET_F32, op.I64_EXTEND_I32_U)),
    op.T_F64: bytes((op.I64_REINTERPRET_F64,)),
}
# Scratch local keys (see Local): a value type; HELD | type, a second one for a value held
# while the first is in use; RANGE | i64, the address a range probe widens its range with.
HELD = 0x100
RANGE = 0x200
DEPTH, TOP = 0x37F, 0x47F  # i32: the shadow stack's depth at entry, and just above this frame

# The shadow stack (a memory of its own): the depth in bytes at 0, the frames (function
# indices, u32) from FRAMES_AT. 2^18 frames: more than wasmtime's 512 KiB stack can hold.
FRAMES_AT = 16
STACK_FRAMES = 1 << 18

# A function's scratch local allocator: the index (LEB128) of the scratch local for a key.
Local = Callable[[int], bytes]


def code(*parts: int | bytes) -> bytes:
    """Instructions: opcodes (ints, by their opcodes.py names) and immediates (bytes)."""
    return b"".join(bytes((p,)) if isinstance(p, int) else p for p in parts)


def i32(value: int) -> bytes:
    return code(op.I32_CONST, enc_s(value))


def i64(value: int) -> bytes:
    return code(op.I64_CONST, enc_s(value))


def memarg(align: int, mem: int, offset: int) -> bytes:
    """A memory access's immediate: alignment, the memory (when not 0), the offset."""
    if mem == 0:
        return bytes((align,)) + enc_u32(offset)
    return bytes((align | 0x40,)) + enc_u32(mem) + enc_u32(offset)


NO_VALUE = i64(0)  # what an event or callback records where there is no operand


class Emitter:
    """Probe code for one module: where its probe memories, globals and functions are."""

    def __init__(
        self,
        *,
        mem: int,  # the probe memory: a byte (flags) or an i64 (counts) per slot
        counting: bool,
        guard_mem: int = -1,  # a guard byte per site with a callback point
        hit: int = -1,  # the imported probe.hit
        event_mem: int = -1,  # the event ring
        cursor: int = -1,  # global: bytes of the ring in use
        pending: int = -1,  # global: an indirect call's site + 1, until the callee starts
        flush: int = -1,  # the imported probe.flush
        writer: int = -1,  # the appended event writer
        range_mem: int = -1,  # lowest and highest operand per site
        stack_mem: int = -1,  # the shadow stack
    ) -> None:
        self.stack_mem = stack_mem
        self.guard_mem, self.hit = guard_mem, hit
        self.event_mem, self.cursor, self.pending = event_mem, cursor, pending
        self.flush_func, self.range_mem = flush, range_mem
        self._write = code(op.CALL, enc_u32(writer)) if writer >= 0 else b""
        at = 0x40 if mem else 0
        probe_mem = enc_u32(mem) if mem else b""
        # flag: i32.const 0; i32.const 1; i32.store8 offset=slot (the slot appended)
        self.flag_head = code(i32(0), i32(1), op.I32_STORE8, bytes((at,)), probe_mem)
        # count: i32.const 0; i32.const 0; i64.load offset; i64.const 1; i64.add; i64.store offset
        self._count_mem = bytes((3 | at,)) + probe_mem
        self._count_head = code(i32(0), i32(0), op.I64_LOAD, self._count_mem)
        self._count_add = code(i64(1), op.I64_ADD, op.I64_STORE, self._count_mem)
        self.probe = self.count if counting else self.flag

    def flag(self, slot: int) -> bytes:
        return self.flag_head + enc_u32(slot)

    def count(self, slot: int) -> bytes:
        at = enc_u32(slot * 8)
        return self._count_head + at + self._count_add + at

    def stack_push(self, func: int, depth: bytes, top: bytes) -> bytes:
        """At a function's entry: frames[depth] = func; depth += 4, keeping both in locals
        (``depth``, ``top``) for stack_set."""
        sp, frame = memarg(2, self.stack_mem, 0), memarg(2, self.stack_mem, FRAMES_AT)
        return code(
            i32(0), op.I32_LOAD, sp, op.LOCAL_TEE, depth, i32(func), op.I32_STORE, frame,
            i32(0), op.LOCAL_GET, depth, i32(4), op.I32_ADD, op.LOCAL_TEE, top, op.I32_STORE, sp,
        )  # fmt: skip

    def stack_set(self, local: bytes) -> bytes:
        """The shadow stack's depth set from ``local``: after a call returns (however the
        callee left: return, a branch out, its end), and before a tail call."""
        return code(i32(0), op.LOCAL_GET, local, op.I32_STORE, memarg(2, self.stack_mem, 0))

    def guarded_hit(self, site: int, value: bytes = NO_VALUE) -> bytes:
        """if (guards[site]) probe.hit(site, value): switched off, a load and a branch."""
        return code(
            i32(0), op.I32_LOAD8_U, memarg(0, self.guard_mem, site),
            op.IF, op.EMPTY, i32(site), value, op.CALL, enc_u32(self.hit), op.END,
        )  # fmt: skip

    def event(self, site: int, value: bytes = NO_VALUE) -> bytes:
        """One event: ``value`` leaves the i64 to record on the stack."""
        return value + i32(site) + self._write

    def widen(self, site: int, value: bytes, v: bytes) -> bytes:
        """Widen the site's [low, high] to take ``value`` (an i64, kept in local ``v``)."""
        low = memarg(3, self.range_mem, site * 16)
        high = memarg(3, self.range_mem, site * 16 + 8)
        return code(
            value, op.LOCAL_SET, v,
            i32(0), op.I64_LOAD, low, op.LOCAL_GET, v, op.I64_GT_U,  # if low > v
            op.IF, op.EMPTY, i32(0), op.LOCAL_GET, v, op.I64_STORE, low, op.END,  # low = v
            op.LOCAL_GET, v, i32(0), op.I64_LOAD, high, op.I64_GT_U,  # if v > high
            op.IF, op.EMPTY, i32(0), op.LOCAL_GET, v, op.I64_STORE, high, op.END,  # high = v
        )  # fmt: skip

    def pending_out(self, callee: bytes) -> bytes:
        """if (pending) { event(pending - 1, callee); pending = 0 }: an indirect call's
        callee, recorded where the callee starts."""
        g = enc_u32(self.pending)
        return code(
            op.GLOBAL_GET, g, op.IF, op.EMPTY,
            callee, op.GLOBAL_GET, g, i32(1), op.I32_SUB, self._write,
            i32(0), op.GLOBAL_SET, g,
            op.END,
        )  # fmt: skip

    def pending_in(self, site: int) -> bytes:
        """Before an indirect call: its site, for the callee to record (pending_out)."""
        return code(i32(site + 1), op.GLOBAL_SET, enc_u32(self.pending))

    def event_writer(self) -> bytes:
        """The appended function (param i64 value, i32 site): one event into the ring, and
        the ring to the host (probe.flush) when it is full."""
        cur = enc_u32(self.cursor)
        value, site, c = b"\x00", b"\x01", b"\x02"  # its parameters, and (local $c i32)
        return code(
            b"\x01\x01", op.T_I32,  # one group of locals: one i32
            op.GLOBAL_GET, cur, op.LOCAL_TEE, c,
            op.LOCAL_GET, value, op.I64_STORE, memarg(3, self.event_mem, 0),
            op.LOCAL_GET, c, op.LOCAL_GET, site, op.I32_STORE, memarg(2, self.event_mem, 8),
            op.LOCAL_GET, c, i32(EVENT_BYTES), op.I32_ADD, op.LOCAL_TEE, c,
            op.GLOBAL_SET, cur,
            op.LOCAL_GET, c, i32(EVENT_CAPACITY * EVENT_BYTES), op.I32_GE_U,
            op.IF, op.EMPTY, op.CALL, enc_u32(self.flush_func), i32(0), op.GLOBAL_SET, cur,
            op.END,
            op.END,
        )  # fmt: skip

    def arguments(self, params: bytes, site: int) -> bytes:
        """Events of a function's numeric arguments, at its entry; one of value 0 where it
        has none, so that every entry is in the events (``entry_events`` of them)."""
        events = b"".join(
            self.event(site, code(op.LOCAL_GET, enc_u32(i), TO_I64[t]))
            for i, t in enumerate(params)
            if t in TO_I64
        )
        return events or self.event(site, code(op.I64_CONST, b"\x00"))

    def address(
        self,
        site: int,
        offset: int,
        above: int | None,
        local: Local,
        keep_range: bool = False,
    ) -> bytes:
        """An access's effective address as an event (or into the site's range); ``above``:
        the type of a value over the address on the stack."""
        addr = local(op.T_I32)
        value = code(op.LOCAL_TEE, addr, op.I64_EXTEND_I32_U, _plus(offset))
        if keep_range:
            found = self.widen(site, value, local(RANGE | op.T_I64))
        else:
            found = self.event(site, value)
        found += code(op.LOCAL_GET, addr)
        if above is None:
            return found
        held = local(HELD | above)
        return code(op.LOCAL_SET, held, found, op.LOCAL_GET, held)


def _plus(offset: int) -> bytes:
    return code(i64(offset), op.I64_ADD) if offset else b""


# A callback point's operand, as (code saving it, code pushing it as an i64, code restoring
# the stack): each takes the function's scratch local allocator where it needs a local.


def first_argument(valtype: int) -> tuple[bytes, bytes, bytes]:
    return b"", code(op.LOCAL_GET, b"\x00", TO_I64[valtype]), b""


def held_result(valtype: int, local: Local) -> tuple[bytes, bytes, bytes]:
    """The value a function returns (the last, if several)."""
    tmp = local(valtype)
    return code(op.LOCAL_TEE, tmp), code(op.LOCAL_GET, tmp, TO_I64[valtype]), b""


def held_index(local: Local) -> tuple[bytes, bytes, bytes]:
    """A callback point's operand at call_indirect: the table index it goes through."""
    index = local(op.T_I32)
    return code(op.LOCAL_TEE, index), code(op.LOCAL_GET, index, op.I64_EXTEND_I32_U), b""


def held_address(offset: int, above: int | None, local: Local) -> tuple[bytes, bytes, bytes]:
    """A callback point's operand at a load or store: save the address (and the value over
    it), push the effective address as an i64, put the value back."""
    addr = local(op.T_I32)
    value = code(op.LOCAL_GET, addr, op.I64_EXTEND_I32_U, _plus(offset))
    if above is None:
        return code(op.LOCAL_TEE, addr), value, b""
    held = local(HELD | above)
    return code(op.LOCAL_SET, held, op.LOCAL_TEE, addr), value, code(op.LOCAL_GET, held)


def entry_events(params: bytes) -> int:
    """How many events a function's entry records (``arguments``): one per numeric
    argument, at least one."""
    return max(1, sum(1 for t in params if t in TO_I64))
