"""The probe rewriter: one pass over each function body, probe code spliced in as bytes.

Sites are addressed by (function index, byte offset in the ORIGINAL file),
the numbers `wasm-tools objdump` shows. Flag and count probes write into a
probe memory the rewriter appends to the module (multi-memory) and
exports; the host reads it after the run, zero-copy. No host call per
event.

Economy, exact all the same:

* Probes are placed per *segment*, a straight run of instructions that,
  once its first instruction runs, runs to its end: a segment ends at
  every branch, every block join, and, when instruction sites are wanted,
  after every instruction that can trap. Every site in a segment shares
  its slot in the probe memory.
* For flags, a loop's body shares the segment of the code before the loop:
  reaching ``loop`` means entering its body, so covering a tight loop costs
  nothing inside it.

The instructions between probes are copied as they are; only ``call``,
``return_call`` and ``ref.func`` are re-encoded, and only when imports were
added (which shifts every defined function's index).
"""

from __future__ import annotations

import bisect
from array import array
from dataclasses import dataclass, field

from probe.probes import Kind

from . import opcodes as op
from .binary import (
    ORDER,
    SEC_CODE,
    SEC_ELEMENT,
    SEC_EXPORT,
    SEC_FUNCTION,
    SEC_GLOBAL,
    SEC_IMPORT,
    SEC_MEMORY,
    SEC_START,
    SEC_TYPE,
    Module,
    NotSupported,
    WasmError,
    check_opcode,
    enc_name,
    enc_s,
    enc_u32,
    skip_leb,
    sleb,
    u32,
)

PROBE_MEMORY_EXPORT = "probe:memory"
START_EXPORT = "probe:start"  # the start function, exported: the host calls it (runner)
HIT_IMPORT = ("probe", "hit")  # (param i32 site, i64 operand): what callback points call
GUARDS_EXPORT = "probe:guards"  # one byte per site: 1 = its callback point calls the host
EVENTS_EXPORT = "probe:events"  # the event ring: EVENT_BYTES per event
CURSOR_EXPORT = "probe:cursor"  # i32 global: bytes of the ring in use
FLUSH_IMPORT = ("probe", "flush")  # () -> (): the ring is full, take its events
RANGES_EXPORT = "probe:ranges"  # per site: lowest and highest operand, two u64
EVENT_BYTES = 16  # i64 value, i32 site id, 4 bytes unused
EVENT_CAPACITY = 65536  # events per ring: one host call and one Arrow batch per 1 MiB
_RESERVED = (
    PROBE_MEMORY_EXPORT,
    START_EXPORT,
    GUARDS_EXPORT,
    EVENTS_EXPORT,
    CURSOR_EXPORT,
    RANGES_EXPORT,
)

# How a value of each type becomes an event's i64: integers sign-extended, floats as bits.
_TO_I64 = {0x7F: b"\xac", 0x7E: b"", 0x7D: b"\xbc\xad", 0x7C: b"\xbd"}
# Stores: the type of the value stored (it sits above the address on the stack).
_STORED = {0x36: 0x7F, 0x37: 0x7E, 0x38: 0x7D, 0x39: 0x7C, 0x3A: 0x7F, 0x3B: 0x7F}
_STORED.update({0x3C: 0x7E, 0x3D: 0x7E, 0x3E: 0x7E})
# SIMD memory instructions: bytes accessed; stores and lane loads also hold a v128 above.
_SIMD_BYTES = {0: 16, 1: 8, 2: 8, 3: 8, 4: 8, 5: 8, 6: 8, 7: 1, 8: 2, 9: 4, 10: 8, 11: 16}
_SIMD_BYTES.update({0x5C: 4, 0x5D: 8, 0x54: 1, 0x55: 2, 0x56: 4, 0x57: 8})
_SIMD_BYTES.update({0x58: 1, 0x59: 2, 0x5A: 4, 0x5B: 8})
_SIMD_STORES = {11, 0x58, 0x59, 0x5A, 0x5B}
_SIMD_V128_ABOVE = _SIMD_STORES | {0x54, 0x55, 0x56, 0x57}
_HELD = 0x100  # scratch local keys: valtype, or _HELD | valtype for a second one
_RANGE = 0x200  # ... or _RANGE | i64 for the address a range probe widens its range with

# Instructions that may trap or leave the function: what follows them may not run.
_TRAPS = set(op.ACCESS) | {
    0x00,
    0x10,
    0x11,
    0x12,
    0x13,
    0x0F,  # unreachable, calls, return
    0x6D,
    0x6E,
    0x6F,
    0x70,
    0x7F,
    0x80,
    0x81,
    0x82,  # integer div and rem
    0xA8,
    0xA9,
    0xAA,
    0xAB,
    0xAE,
    0xAF,
    0xB0,
    0xB1,  # float -> int truncations
    0x25,
    0x26,  # table.get, table.set
}
_MISC_TRAPS = {8, 10, 11, 12, 14, 17}  # memory.init/copy/fill, table.init/copy/fill


@dataclass
class Plan:
    """What to probe: the kind for each event class, Kind.FLAG or Kind.COUNT (0 for none)."""

    func: int = 0
    block: int = 0
    instr: int = 0
    branch: int = 0
    call: int = 0
    memory: int = 0  # loads and stores
    exit: int = 0
    # Event classes whose sites get a callback point: a guard byte per site, and when it is
    # set, a call to the host (import "probe" "hit" (param i32)): func, block, instr, call,
    # memory, exit. Each such site must also be probed above.
    callbacks: tuple[str, ...] = ()
    # Event classes whose sites write operand events into the event ring, in execution order:
    # func (one per numeric argument), exit (the returned value), branch (the arm taken, with
    # the condition or br_table index), call (an indirect call's callee; -1 for an import),
    # memory (the effective address), block and instr (value 0: the order is the trace).
    # Each such class must also be counted above.
    operand: tuple[str, ...] = ()
    operand_funcs: tuple[int, ...] | None = None  # operand events only in these functions
    # Event classes whose sites keep the lowest and highest operand, by inline compares, in a
    # memory of their own (16 bytes per site): memory (addresses). Not with operand on the
    # same class.
    ranges: tuple[str, ...] = ()

    def any(self) -> bool:
        return any(
            (self.func, self.block, self.instr, self.branch, self.call, self.memory, self.exit)
        )

    def key(self) -> str:
        return ",".join(f"{k}={v}" for k, v in sorted(vars(self).items()) if v)


@dataclass
class Sites:
    """Every site of the module, as columns; ``slot`` is the probe memory slot (-1: none)."""

    kind: list[str] = field(default_factory=list)
    func: array = field(default_factory=lambda: array("q"))
    offset: array = field(default_factory=lambda: array("q"))
    target: list[int | None] = field(default_factory=list)
    slot: array = field(default_factory=lambda: array("q"))
    size: array = field(default_factory=lambda: array("q"))  # instructions, for blocks
    valued: set[int] = field(default_factory=set)  # sites whose callback point passes an operand

    def add(self, kind: str, func: int, offset: int, slot: int, target: int | None = None) -> None:
        self.kind.append(kind)
        self.func.append(func)
        self.offset.append(offset)
        self.target.append(target)
        self.slot.append(slot)
        self.size.append(0)

    def __len__(self) -> int:
        return len(self.kind)


@dataclass
class Result:
    module: bytes
    sites: Sites
    slots: int  # number of probe slots
    counting: bool  # slots are i64 counters (else bytes)
    probe_memory: int  # index of the probe memory, -1 if none
    deferred_start: str | None  # export to call before anything else, if the start was moved
    calls_host: bool = False  # imports ("probe", "hit") for callback probes
    events: bool = False  # has an event ring and imports ("probe", "flush")
    ranges: bool = False  # has a range memory (probe:ranges)
    # Piecewise map from instrumented offsets back to the original: segment starts.
    new_starts: array = field(default_factory=lambda: array("q"))
    old_starts: array = field(default_factory=lambda: array("q"))
    # Function indices: probe's imports go after the module's own (``imported`` of them),
    # moving each defined function up by ``shift``; its appended functions come after all
    # ``funcs`` of the original.
    imported: int = 0
    shift: int = 0
    funcs: int = 0

    def original_offset(self, offset: int) -> int:
        i = bisect.bisect_right(self.new_starts, offset) - 1
        if i < 0:
            return offset
        return self.old_starts[i] + (offset - self.new_starts[i])

    def original_func(self, index: int) -> int | None:
        """The original module's index of the rewritten module's function ``index``; None
        for a function of probe's own (an import or the event writer)."""
        if index < self.imported:
            return index
        if index < self.imported + self.shift:
            return None
        return index - self.shift if index - self.shift < self.funcs else None


def instrument(m: Module, plan: Plan) -> Result:
    """Rewrite ``m`` with the probes of ``plan``."""
    try:
        return _Rewriter(m, plan).run()
    except IndexError:
        # An immediate that runs past the end of the file: malformed, not a crash of probe.
        raise WasmError("unexpected end of the module inside a function body") from None


class _Frame:
    __slots__ = (
        "kind",
        "offset",
        "params",
        "results",
        "has_else",
        "else_slot",
        "body",
        "fixups",
        "unreachable",
    )

    def __init__(self, kind: int, offset: int, params: bytes, results: bytes, body: int) -> None:
        self.kind = kind  # BLOCK, LOOP, IF, or 0 for the function
        self.offset = offset
        self.params = params
        self.results = results
        self.has_else = False
        self.else_slot = -1
        self.body = body  # offset of the first instruction inside
        self.fixups: list[int] = []  # branch sites whose destination is this frame's end
        self.unreachable = (
            False  # past an unconditional branch in the current arm: stack-polymorphic
        )

    def label_types(self) -> bytes:
        """What a branch to this frame's label carries."""
        return self.params if self.kind == op.LOOP else self.results


class _Rewriter:
    def __init__(self, m: Module, plan: Plan) -> None:
        self.m = m
        self.plan = plan
        self.counting = Kind.COUNT in (
            plan.func,
            plan.block,
            plan.instr,
            plan.branch,
            plan.call,
            plan.memory,
            plan.exit,
        )
        self.sites = Sites()
        self.slots = 0
        self.mem = m.total_memories  # the probe memory's index
        self.new_types: list[tuple[bytes, bytes]] = []
        # Host functions are imported, so every defined function's index moves up by their number.
        added = 0
        self.hit = self.flush = self.ev = -1
        self.guard_mem = self.event_mem = -1
        nextmem = self.mem + 1
        if plan.callbacks:
            self.hit, added = m.imported_funcs + added, added + 1
            self.guard_mem, nextmem = nextmem, nextmem + 1
        has_code = m.section(SEC_CODE) is not None
        self.operand = set(plan.operand) if has_code else set()
        self.ranges = set(plan.ranges) - self.operand if has_code else set()
        self.range_mem = -1
        if self.operand:
            self.flush, added = m.imported_funcs + added, added + 1
            self.event_mem, nextmem = nextmem, nextmem + 1
            self.cursor, self.pending = m.total_globals, m.total_globals + 1
            self.flush_type = self._type_index(b"", b"")
            self.ev_type = self._type_index(b"\x7e\x7f", b"")
            self.ev = len(m.func_types) + added  # the event writer, appended
        if self.ranges:
            self.range_mem = nextmem
        self.shift = added
        self._operand_funcs = frozenset(plan.operand_funcs or ())
        self.marks_new = array("q")
        self.marks_old = array("q")
        self._code_marks = 0  # where the code section's marks begin
        # Sites finer than a block need segments that end where execution may stop.
        self.split_traps = bool(plan.instr or plan.memory or plan.call)
        self.flag = self.probe_bytes_flag if not self.counting else self.probe_bytes_count

        self._fast = self._fast_table()
        mem = b"" if self.mem == 0 else enc_u32(self.mem)
        flagged = 0x40 if self.mem else 0
        self._flag_head = b"\x41\x00\x41\x01\x3a" + bytes((flagged,)) + mem
        self._count_mem = bytes((3 | flagged,)) + mem
        self._count_head = b"\x41\x00\x41\x00\x29" + self._count_mem
        self._call_ev = b"\x10" + enc_u32(self.ev) if self.operand else b""

    def _fast_table(self) -> bytes:
        """Per opcode: 1 no immediate, 2 one LEB128, 3 a memarg, when it needs no attention."""
        table = bytearray(256)
        if self.plan.instr:
            return bytes(table)  # every instruction is a site
        for code, kind in op.SINGLE.items():
            if code in (
                op.BLOCK,
                op.LOOP,
                op.IF,
                op.ELSE,
                op.END,
                op.BR,
                op.BR_IF,
                op.BR_TABLE_OP,
                op.RETURN,
                op.UNREACHABLE,
                op.CALL,
                op.RETURN_CALL,
                op.CALL_INDIRECT,
                op.RETURN_CALL_INDIRECT,
            ):
                continue
            if self.split_traps and code in _TRAPS:
                continue
            if self.shift and code == op.REF_FUNC:
                continue  # its function index moves
            if kind == op.NONE:
                table[code] = 1
            elif kind in (op.U32, op.I32, op.I64):
                table[code] = 2
            elif kind == op.MEMARG and not self.plan.memory:
                table[code] = 3
        return bytes(table)

    # -- probe code -------------------------------------------------------------

    def probe_bytes_count(self, slot: int) -> bytes:
        # i32.const 0; i32.const 0; i64.load; i64.const 1; i64.add; i64.store
        at = enc_u32(slot * 8)
        return self._count_head + at + b"\x42\x01\x7c\x37" + self._count_mem + at

    def probe_bytes_flag(self, slot: int) -> bytes:
        # i32.const 0; i32.const 1; i32.store8 offset=slot
        return self._flag_head + enc_u32(slot)

    def new_slot(self) -> int:
        self.slots += 1
        return self.slots - 1

    def guarded_hit(self, site: int, value: bytes = b"\x42\x00") -> bytes:
        # if (guards[site]) probe.hit(site, value): switched off, a load and a branch
        return (
            b"\x41\x00\x2d"
            + _memarg(0, self.guard_mem, site)
            + b"\x04\x40\x41"
            + enc_s(site)
            + value
            + b"\x10"
            + enc_u32(self.hit)
            + b"\x0b"
        )

    def event(self, site: int, value: bytes = b"\x42\x00") -> bytes:
        """Code writing one event: ``value`` leaves the i64 to record on the stack."""
        return value + b"\x41" + enc_s(site) + self._call_ev

    def widen(self, site: int, value: bytes, v: bytes) -> bytes:
        """Code widening the site's [low, high] to take ``value`` (an i64, via local ``v``)."""
        low = _memarg(3, self.range_mem, site * 16)
        high = _memarg(3, self.range_mem, site * 16 + 8)
        return (
            value
            + b"\x21" + v  # local.set v
            + b"\x41\x00\x29" + low + b"\x20" + v + b"\x56\x04\x40"  # if low > v
            + b"\x41\x00\x20" + v + b"\x37" + low + b"\x0b"  # low = v
            + b"\x20" + v + b"\x41\x00\x29" + high + b"\x56\x04\x40"  # if v > high
            + b"\x41\x00\x20" + v + b"\x37" + high + b"\x0b"  # high = v
        )  # fmt: skip

    def _pending_out(self, callee: bytes) -> bytes:
        # if (pending) { event(pending - 1, callee); pending = 0 }: an indirect call's callee
        g = enc_u32(self.pending)
        return (
            b"\x23"
            + g
            + b"\x04\x40"
            + callee
            + b"\x23"
            + g
            + b"\x41\x01\x6b"
            + self._call_ev
            + b"\x41\x00\x24"
            + g
            + b"\x0b"
        )

    def _helpers(self) -> list[bytes]:
        """Bodies of the functions the rewriter appends: the event writer."""
        return [self._event_writer()] if self.operand else []

    def _event_writer(self) -> bytes:
        cur, lim = enc_u32(self.cursor), enc_s(EVENT_CAPACITY * EVENT_BYTES)
        body = (
            b"\x01\x01\x7f"  # (local $c i32)
            + b"\x23" + cur + b"\x22\x02\x20\x00\x37" + _memarg(3, self.event_mem, 0)
            + b"\x20\x02\x20\x01\x36" + _memarg(2, self.event_mem, 8)
            + b"\x20\x02\x41" + enc_s(EVENT_BYTES) + b"\x6a\x22\x02\x24" + cur
            + b"\x20\x02\x41" + lim + b"\x4f\x04\x40\x10" + enc_u32(self.flush)
            + b"\x41\x00\x24" + cur + b"\x0b\x0b"
        )  # fmt: skip
        return body

    # -- the module -------------------------------------------------------------

    def run(self) -> Result:
        m, b = self.m, self.m.data
        probing = self.plan.any()
        code_sec = m.section(SEC_CODE)
        code = self._code_payload(code_sec) if code_sec is not None and probing else None
        added: dict[int, bytes] = {}  # section id -> whole new section
        if probing:
            size = self.slots * (8 if self.counting else 1)
            memories = [max(1, -(-size // 65536))]
            exports = [(PROBE_MEMORY_EXPORT, 2, self.mem)]
            if self.guard_mem >= 0:
                memories.append(max(1, -(-len(self.sites) // 65536)))
                exports.append((GUARDS_EXPORT, 2, self.guard_mem))
            if self.operand:
                memories.append(-(-EVENT_CAPACITY * EVENT_BYTES // 65536))
                exports += [(EVENTS_EXPORT, 2, self.event_mem), (CURSOR_EXPORT, 3, self.cursor)]
            if self.ranges:
                memories.append(max(1, -(-len(self.sites) * 16 // 65536)))
                exports.append((RANGES_EXPORT, 2, self.range_mem))
            added[SEC_MEMORY] = _extend(
                b,
                m.section(SEC_MEMORY),
                SEC_MEMORY,
                b"".join(b"\x00" + enc_u32(n) for n in memories),
                count=len(memories),
            )
            taken = {name for name, _, _ in m.exports}
            clash = sorted(taken.intersection(_RESERVED))
            if clash:
                raise WasmError(f"the module already exports {clash[0]!r}")
            if m.start is not None:
                # Run the start function from the host, after it holds the probe memory.
                exports.append((START_EXPORT, 0, self._func(m.start)))
            added[SEC_EXPORT] = _extend(
                b,
                m.section(SEC_EXPORT),
                SEC_EXPORT,
                b"".join(enc_name(n) + bytes((k,)) + enc_u32(i) for n, k, i in exports),
                count=len(exports),
                rest=self._exports() if self.shift else None,
            )
            if self.shift:
                imports = b""
                if self.hit >= 0:
                    hit_type = self._type_index(b"\x7f\x7e", b"")
                    imports += enc_name(HIT_IMPORT[0]) + enc_name(HIT_IMPORT[1])
                    imports += b"\x00" + enc_u32(hit_type)
                if self.flush >= 0:
                    imports += enc_name(FLUSH_IMPORT[0]) + enc_name(FLUSH_IMPORT[1])
                    imports += b"\x00" + enc_u32(self.flush_type)
                added[SEC_IMPORT] = _extend(
                    b, m.section(SEC_IMPORT), SEC_IMPORT, imports, count=self.shift
                )
                sec = m.section(SEC_ELEMENT)
                if sec is not None:
                    added[SEC_ELEMENT] = self._elements(sec)
            sec = m.section(SEC_GLOBAL)
            new_globals = b"\x7f\x01\x41\x00\x0b" * 2 if self.operand else b""
            if new_globals or (sec is not None and self.shift):
                added[SEC_GLOBAL] = _extend(
                    b,
                    sec,
                    SEC_GLOBAL,
                    new_globals,
                    count=2 if new_globals else 0,
                    rest=self._globals(sec) if sec is not None and self.shift else None,
                )
            if self.ev >= 0:
                added[SEC_FUNCTION] = _extend(
                    b, m.section(SEC_FUNCTION), SEC_FUNCTION, enc_u32(self.ev_type)
                )
            if self.new_types:
                extra = b"".join(
                    b"\x60" + enc_u32(len(p)) + p + enc_u32(len(r)) + r for p, r in self.new_types
                )
                added[SEC_TYPE] = _extend(
                    b, m.section(SEC_TYPE), SEC_TYPE, extra, count=len(self.new_types)
                )
        present = {s.id for s in m.sections}
        missing = sorted((sid for sid in added if sid not in present), key=ORDER.get)
        out = bytearray(b[:8])
        for sec in m.sections:
            while missing and sec.id and ORDER[missing[0]] < ORDER[sec.id]:
                out += added[missing.pop(0)]
            if sec.id in added:
                out += added[sec.id]
            elif sec.id == 0 and sec.name == "name" and self.shift:
                out += self._names(sec)
            elif sec.id == SEC_START and probing:
                continue
            elif sec.id == SEC_CODE and code is not None:
                out += bytes((SEC_CODE,)) + enc_u32(len(code))
                base = len(out)
                for i in range(self._code_marks, len(self.marks_new)):
                    self.marks_new[i] += base
                out += code
            else:
                self._mark(len(out), sec.header)
                out += b[sec.header : sec.end]
        for sid in missing:
            out += added[sid]
        order = sorted(range(len(self.marks_new)), key=self.marks_new.__getitem__)
        return Result(
            module=bytes(out),
            sites=self.sites,
            slots=self.slots,
            counting=self.counting,
            probe_memory=self.mem if probing else -1,
            deferred_start=START_EXPORT if probing and m.start is not None else None,
            calls_host=self.hit >= 0,
            events=bool(self.operand),
            ranges=bool(self.ranges),
            new_starts=array("q", (self.marks_new[i] for i in order)),
            old_starts=array("q", (self.marks_old[i] for i in order)),
            imported=m.imported_funcs,
            shift=self.shift,
            funcs=len(m.func_types),
        )

    def _mark(self, new: int, old: int) -> None:
        self.marks_new.append(new)
        self.marks_old.append(old)

    def _code_payload(self, sec) -> bytes:  # Section
        """The new code section payload; marks are relative to it until run() adds its base."""
        self._code_marks = len(self.marks_new)
        helpers = self._helpers()
        out = bytearray(enc_u32(len(self.m.bodies) + len(helpers)))
        for body in self.m.bodies:
            first = len(self.marks_new)
            new = self._function(body)
            size = enc_u32(len(new))
            # The function's marks are relative to its body: move them past what precedes it.
            for i in range(first, len(self.marks_new)):
                self.marks_new[i] += len(out) + len(size)
            out += size
            out += new
        for helper in helpers:
            out += enc_u32(len(helper)) + helper
        return bytes(out)

    # -- one function -----------------------------------------------------------

    def _function(self, body) -> bytes:  # one tight loop on purpose
        b = self.m.data
        plan, sites, counting, split_traps = self.plan, self.sites, self.counting, self.split_traps
        fidx = body.index
        # The plan's fields as locals: this loop runs once per instruction.
        want_func, want_block, want_instr = plan.func, plan.block, plan.instr
        want_branch, want_call = plan.branch, plan.call
        want_memory, want_exit = plan.memory, plan.exit
        out = bytearray()
        run_start = body.start  # start of the original bytes not yet copied
        ftype = (
            self.m.types[self.m.func_types[fidx]]
            if self.m.func_types[fidx] < len(self.m.types)
            else (b"", b"")
        )
        stack = [_Frame(0, body.start, b"", ftype[1], body.code)]
        marks_from = len(self.marks_new)
        operand = self.operand
        if plan.operand_funcs is not None and fidx not in self._operand_funcs:
            operand = set()
        ev_branch, ev_call = "branch" in operand, "call" in operand
        range_memory = "memory" in self.ranges
        ev_memory = "memory" in operand or range_memory
        ev_block, ev_instr = "block" in operand, "instr" in operand
        pending_in = "call" in self.operand  # every function takes an indirect call's callee
        # Scratch locals for operand events, appended to the function's own: valtype -> index.
        # _HELD + valtype: a second one, for a value held while the first is in use.
        scratch: dict[int, int] = {}
        first_scratch = len(ftype[0]) + sum(n for n, _ in body.locals)

        def local(t: int) -> bytes:
            if t not in scratch:
                scratch[t] = first_scratch + len(scratch)
            return enc_u32(scratch[t])

        def cond_event(site: int) -> bytes:  # the condition saved by a tee before the branch
            return self.event(site, b"\x20" + local(0x7F) + b"\xad")

        single, misc, simd = op.SINGLE, op.MISC, op.SIMD
        new_segment, leader = True, True
        slot = -1
        arm = -1  # offset of the branch whose arm the next segment is, if any
        block, block_first, count = -1, 0, 0  # current block site, its first instruction's number
        dead = False  # the previous instruction never falls through
        p, end = body.code, body.end

        def splice(at_offset: int, code: bytes) -> None:
            nonlocal run_start
            if at_offset > run_start:
                self._mark(len(out), run_start)
                out.extend(b[run_start:at_offset])
            out.extend(code)
            run_start = at_offset

        mark_new, mark_old = self.marks_new.append, self.marks_old.append
        flag_head = None if counting else self._flag_head
        site_kind, site_func, site_offset = sites.kind, sites.func.append, sites.offset.append
        site_target, site_slot, site_size = (
            sites.target.append,
            sites.slot.append,
            sites.size.append,
        )
        callbacks = set(plan.callbacks)

        def call_host(kind: str, at_offset: int, operand=None, *args: object) -> None:
            """After sites.add(kind, ...): the site's callback point, before ``at_offset``.

            ``operand(*args)``, if given: code saving the operand, code pushing it as an i64,
            code restoring the stack (called only where there is a point: it takes locals)."""
            if kind in callbacks:
                before, value, after = b"", b"\x42\x00", b""
                if operand:
                    before, value, after = operand(*args)
                    sites.valued.add(len(sites) - 1)
                splice(at_offset, before + self.guarded_hit(len(sites) - 1, value) + after)

        fast = self._fast
        while p < end:
            opc = b[p]
            if not (dead or new_segment or leader):
                # Most instructions change nothing here: step over them quickly.
                f = fast[opc]
                if f == 1:
                    p += 1
                    count += 1
                    continue
                if f == 2:
                    p += 1
                    while b[p] & 0x80:
                        p += 1
                    p += 1
                    count += 1
                    continue
                if f == 3:
                    flags = b[p + 1]
                    p += 1
                    while b[p] & 0x80:
                        p += 1
                    p += 1
                    if flags & 0x40:
                        while b[p] & 0x80:
                            p += 1
                        p += 1
                    while b[p] & 0x80:
                        p += 1
                    p += 1
                    count += 1
                    continue
            ins = p
            if (
                want_branch
                and opc == op.END
                and len(stack) > 1
                and stack[-1].kind == op.IF
                and not stack[-1].has_else
            ):
                # An if without else: give its false arm a home for a probe.
                frame = stack[-1]
                frame.else_slot = self.new_slot()
                arm_site = len(sites)
                sites.add("branch", fidx, frame.offset, frame.else_slot, ins + 1)
                code = b"\x05" + self.flag(frame.else_slot)
                splice(ins, code + cond_event(arm_site) if ev_branch else code)
            if dead:
                dead = False
                if opc == op.END or opc == op.ELSE:
                    # Only the structure is left after an unconditional branch: no block here.
                    new_segment = leader = False
                    slot = -1
            if new_segment:
                # Inline new_slot() and splice(): this runs once per basic block.
                slot = self.slots
                self.slots = slot + 1
                if ins > run_start:
                    mark_new(len(out))
                    mark_old(run_start)
                    out += b[run_start:ins]
                out += flag_head + enc_u32(slot) if flag_head else self.flag(slot)
                run_start = ins
                new_segment = False
                if ins == body.code:
                    if pending_in:  # the call that led here comes before the entry
                        out += self._pending_out(b"\x42" + enc_s(fidx))
                    if want_func:
                        sites.add("func", fidx, body.start, slot, fidx)
                        first = ftype[0][:1]
                        if first and first[0] in _TO_I64:  # the first argument
                            call_host("func", ins, _first_argument, first[0])
                        else:
                            call_host("func", ins)
                        if "func" in operand:
                            out += self._arguments(ftype[0], len(sites) - 1)
                if arm >= 0:
                    if want_branch:
                        sites.add("branch", fidx, arm, slot, ins)
                        if ev_branch:
                            out += cond_event(len(sites) - 1)
                    arm = -1
            if leader:
                if want_block:
                    if block >= 0:
                        sites.size[block] = count - block_first
                    block, block_first = len(site_kind), count
                    site_kind.append("block")  # sites.add(), inlined
                    site_func(fidx)
                    site_offset(ins)
                    site_target(None)
                    site_slot(slot)
                    site_size(0)
                    call_host("block", ins)
                    if ev_block:
                        splice(ins, self.event(block))
                leader = False
            count += 1
            if want_instr and slot >= 0:
                sites.add("instr", fidx, ins, slot)
                call_host("instr", ins)
                if ev_instr:
                    splice(ins, self.event(len(sites) - 1))
            if (
                want_exit
                and slot >= 0
                and (
                    opc == op.RETURN
                    or opc == op.RETURN_CALL
                    or opc == op.RETURN_CALL_INDIRECT
                    or (opc == op.END and len(stack) == 1)
                )
            ):
                leaving = self.new_slot()
                splice(ins, self.flag(leaving))
                sites.add("return", fidx, ins, leaving)
                results = ftype[1]
                if (
                    "exit" in callbacks
                    and (opc == op.RETURN or opc == op.END)
                    and results
                    and results[-1] in _TO_I64
                ):
                    call_host("exit", ins, _held_result, results[-1], local)
                else:
                    call_host("exit", ins)
                if "exit" in operand and (opc == op.RETURN or opc == op.END) and results:
                    conv = _TO_I64.get(results[-1])
                    if conv is not None:  # the returned value (the last, if there are several)
                        tmp = local(results[-1])
                        value = b"\x22" + tmp + conv
                        splice(ins, self.event(len(sites) - 1, value) + b"\x20" + tmp)
            p += 1
            kind = single.get(opc)
            if kind is None:
                if opc == op.PREFIX_MISC:
                    sub, p = u32(b, p)
                    kind = misc.get(sub)
                    if kind is None:
                        raise WasmError(f"illegal opcode 0xfc {sub:#x}", ins)
                    if kind == op.U32X2:
                        p = _skip2(b, p)
                    elif kind == op.U32:
                        _, p = u32(b, p)
                    if split_traps and sub in _MISC_TRAPS:
                        new_segment = True
                    continue
                if opc == op.PREFIX_SIMD:
                    sub, p = u32(b, p)
                    kind = simd.get(sub)
                    if kind is None:
                        raise WasmError(f"illegal opcode 0xfd {sub:#x}", ins)
                    if kind == op.MEMARG or kind == op.MEMARG_LANE:
                        offset, p = _memarg_offset(b, p)
                        p += kind == op.MEMARG_LANE
                        if want_memory:
                            store = sub in _SIMD_STORES
                            sites.add("store" if store else "load", fidx, ins, slot)
                            sites.size[-1] = _SIMD_BYTES[sub]
                            above = 0x7B if sub in _SIMD_V128_ABOVE else None
                            call_host("memory", ins, _held_address, offset, above, local)
                            if ev_memory:
                                splice(
                                    ins,
                                    self._address(
                                        len(sites) - 1, offset, above, local, range_memory
                                    ),
                                )
                        if split_traps:
                            new_segment = True
                    elif kind == op.BYTES16:
                        p += 16
                    elif kind == op.LANE:
                        p += 1
                    continue
                check_opcode(opc, ins)
            if kind == op.NONE:
                if opc >= 0x45:
                    if split_traps and opc in _TRAPS:
                        new_segment = True
                    continue
                if opc == op.END:
                    frame = stack.pop()
                    for site in frame.fixups:  # branches out of this frame land after its end
                        sites.target[site] = p if stack else ins
                    if not stack:
                        if p != end:
                            raise WasmError("operators remaining after end of function", p)
                        break
                    if frame.kind == op.IF:
                        new_segment = leader = True
                    elif frame.kind == op.BLOCK:
                        new_segment = leader = True
                    continue
                if opc == op.ELSE:
                    frame = stack[-1]
                    frame.has_else = True
                    frame.unreachable = False
                    new_segment = leader = True
                    arm = frame.offset
                    continue
                # unreachable, nop, return, drop, select, ref.is_null
                if opc in (op.UNREACHABLE, op.RETURN):
                    new_segment = leader = dead = stack[-1].unreachable = True
                continue
            if kind == op.U32:
                idx, p = u32(b, p)
                if opc == op.BR_IF:
                    new_segment = leader = True
                    arm = ins
                    if want_branch and not stack[-1].unreachable:
                        # br_if L  =>  if (t*)->(t*) probe; br L+1 end  (the taken arm)
                        if idx >= len(stack):
                            raise WasmError(f"unknown label {idx}", ins)
                        taken = self.new_slot()
                        bt = self._blocktype_for(stack[-1 - idx].label_types())
                        tee = b"\x22" + local(0x7F) if ev_branch else b""
                        arm_event = cond_event(len(sites)) if ev_branch else b""
                        splice(
                            ins,
                            tee
                            + b"\x04"
                            + bt
                            + self.flag(taken)
                            + arm_event
                            + b"\x0c"
                            + enc_u32(idx + 1)
                            + b"\x0b",
                        )
                        run_start = p  # the original br_if is replaced
                        self._branch_site(sites, fidx, ins, taken, stack, idx)
                elif opc == op.BR:
                    new_segment = leader = dead = stack[-1].unreachable = True
                elif opc in (op.CALL, op.RETURN_CALL):
                    if want_call:
                        sites.add("call", fidx, ins, slot, idx)
                        call_host("call", ins)
                    if self.shift and idx >= self.m.imported_funcs:
                        splice(ins, bytes((opc,)) + enc_u32(idx + self.shift))
                        run_start = p
                    if split_traps or opc == op.RETURN_CALL:
                        new_segment = True
                    if opc == op.RETURN_CALL:
                        leader = dead = stack[-1].unreachable = True
                elif opc == op.REF_FUNC and self.shift and idx >= self.m.imported_funcs:
                    splice(ins, bytes((opc,)) + enc_u32(idx + self.shift))
                    run_start = p
                continue
            if kind == op.MEMARG:
                offset, p = _memarg_offset(b, p)
                if want_memory:
                    size, store = op.ACCESS[opc]
                    sites.add("store" if store else "load", fidx, ins, slot)
                    sites.size[-1] = size
                    held = _STORED.get(opc)
                    call_host("memory", ins, _held_address, offset, held, local)
                    if ev_memory:
                        code = self._address(len(sites) - 1, offset, held, local, range_memory)
                        splice(ins, code)
                if split_traps:
                    new_segment = True
                continue
            if kind == op.BLOCKTYPE:
                params, results, p = self._blocktype(b, p)
                stack.append(_Frame(opc, ins, params, results, p))
                if opc == op.IF:
                    new_segment = leader = True
                    arm = ins
                    if ev_branch:
                        splice(ins, b"\x22" + local(0x7F))
                elif opc == op.LOOP:
                    leader = True
                    if counting:
                        new_segment = True
                continue
            if kind == op.I32:
                p = skip_leb(b, p)
                continue
            if kind == op.I64:
                p = skip_leb(b, p)
                continue
            if kind == op.F32:
                p += 4
                continue
            if kind == op.F64:
                p += 8
                continue
            if kind == op.U32X2:
                p = _skip2(b, p)
                if opc in (op.CALL_INDIRECT, op.RETURN_CALL_INDIRECT):
                    if want_call:
                        sites.add("call", fidx, ins, slot)
                        call_host("call", ins, _held_index, local)
                        if ev_call and not stack[-1].unreachable:
                            # The callee's entry records (this site, its index): see _pending_out.
                            mark = b"\x41" + enc_s(len(sites)) + b"\x24" + enc_u32(self.pending)
                            splice(ins, mark)
                            if opc == op.CALL_INDIRECT:  # an import as callee: recorded as -1
                                splice(p, self._pending_out(b"\x42\x7f"))
                    if split_traps or opc == op.RETURN_CALL_INDIRECT:
                        new_segment = True
                    if opc == op.RETURN_CALL_INDIRECT:
                        leader = dead = stack[-1].unreachable = True
                continue
            if kind == op.BR_TABLE:
                n, p = u32(b, p)
                labels = []
                for _ in range(n + 1):
                    label, p = u32(b, p)
                    labels.append(label)
                live = not stack[-1].unreachable
                new_segment = leader = dead = stack[-1].unreachable = True
                if want_branch and live:
                    index = local(0x7F) if ev_branch else None
                    splice(ins, self._br_table_arms(labels, stack, sites, fidx, ins, index))
                    run_start = p  # the original br_table is replaced
                continue
            if kind == op.SELECT_T:
                n, p = u32(b, p)
                p += n
                continue
            if kind == op.REFTYPE:
                p += 1
                continue
        else:
            raise WasmError("function body ends without end", end)
        if block >= 0:
            sites.size[block] = count - block_first
        if run_start < end:
            self._mark(len(out), run_start)
            out.extend(b[run_start:end])
        if scratch:
            # Declare the scratch locals: the body starts with the local declarations.
            groups, q = u32(b, body.start)
            decls = enc_u32(groups + len(scratch)) + b[q : body.code]
            decls += b"".join(b"\x01" + bytes((t & 0xFF,)) for t in scratch)
            grown = len(decls) - (body.code - body.start)
            out[: body.code - body.start] = decls
            for i in range(marks_from, len(self.marks_new)):
                if self.marks_new[i] > 0:
                    self.marks_new[i] += grown
        return bytes(out)

    def _arguments(self, params: bytes, site: int) -> bytes:
        """Events of a function's numeric arguments, at its entry."""
        return b"".join(
            self.event(site, b"\x20" + enc_u32(i) + _TO_I64[t])
            for i, t in enumerate(params)
            if t in _TO_I64
        )

    def _address(
        self,
        site: int,
        offset: int,
        above: int | None,
        local,  # the function's scratch local allocator
        keep_range: bool = False,
    ) -> bytes:
        """An access's effective address as an event (or into the site's range); ``above``:
        the type of a value over the address on the stack."""
        addr = local(0x7F)
        value = b"\x22" + addr + b"\xad" + (b"\x42" + enc_s(offset) + b"\x7c" if offset else b"")
        if keep_range:
            code = self.widen(site, value, local(_RANGE | 0x7E)) + b"\x20" + addr
        else:
            code = self.event(site, value) + b"\x20" + addr
        if above is None:
            return code
        held = local(_HELD | above)
        return b"\x21" + held + code + b"\x20" + held

    def _type_index(self, params: bytes, results: bytes) -> int:
        """The index of the function type params -> results, added if the module lacks it."""
        sig = (params, results)
        known = self.m.types + self.new_types
        if sig in known:
            return known.index(sig)
        self.new_types.append(sig)
        return len(known)

    def _blocktype_for(self, carried: bytes, extra_param: bytes = b"") -> bytes:
        """A block type taking ``carried + extra_param`` and giving ``carried``."""
        if not carried and not extra_param:
            return b"\x40"
        return enc_s(self._type_index(carried + extra_param, carried))

    # -- function indices move up by one when the host function is imported ------------

    def _func(self, idx: int) -> int:
        return idx + self.shift if idx >= self.m.imported_funcs else idx

    def _exports(self) -> bytes:
        out = bytearray()
        for name, kind, idx in self.m.exports:
            out += enc_name(name) + bytes((kind,)) + enc_u32(self._func(idx) if kind == 0 else idx)
        return bytes(out)

    def _const_expr(self, b: bytes, p: int, out: bytearray) -> int:
        """Copy a constant expression at ``p`` into ``out``, moving ref.func indices."""
        while True:
            opc = b[p]
            if opc == op.END:
                out.append(opc)
                return p + 1
            if opc == op.REF_FUNC:
                idx, p = u32(b, p + 1)
                out += bytes((opc,)) + enc_u32(self._func(idx))
                continue
            start = p
            if opc in (op.I32_CONST, op.I64_CONST, 0x23):
                p = skip_leb(b, p + 1)
            elif opc == 0x43:
                p += 5
            elif opc == 0x44:
                p += 9
            elif opc == 0xD0:
                if b[p + 1] not in (0x70, 0x6F):
                    raise NotSupported("function references (typed null reference)", p)
                p += 2
            elif opc == op.PREFIX_SIMD:
                p = skip_leb(b, p + 1) + 16  # v128.const
            else:
                p += 1  # extended constant arithmetic
            out += b[start:p]

    def _elements(self, sec) -> bytes:  # Section
        b = self.m.data
        n, p = u32(b, sec.start)
        out = bytearray(enc_u32(n))
        for _ in range(n):
            flags, p = u32(b, p)
            out += enc_u32(flags)
            if flags & 3 == 2:  # explicit table index
                start = p
                p = skip_leb(b, p)
                out += b[start:p]
            if not flags & 1:  # active: an offset expression
                p = self._const_expr(b, p, out)
            if flags & 3:  # elemkind or reftype
                kind = b[p]
                if kind not in ((0x00,) if not flags & 4 else (0x70, 0x6F)) or flags > 7:
                    raise NotSupported("function references (typed element segment)", p)
                out.append(kind)
                p += 1
            count, p = u32(b, p)
            out += enc_u32(count)
            for _ in range(count):
                if flags & 4:
                    p = self._const_expr(b, p, out)
                else:
                    idx, p = u32(b, p)
                    out += enc_u32(self._func(idx))
        return bytes((SEC_ELEMENT,)) + enc_u32(len(out)) + out

    def _globals(self, sec) -> bytes:  # Section
        """The global entries (without their count), ref.func indices moved."""
        b = self.m.data
        n, p = u32(b, sec.start)
        out = bytearray()
        for _ in range(n):
            out += b[p : p + 2]  # value type, mutability
            p = self._const_expr(b, p + 2, out)
        return bytes(out)

    def _names(self, sec) -> bytes:  # Section
        """The name section with function indices moved (function, local and label names)."""
        b = self.m.data
        n, p = u32(b, sec.start)
        out = bytearray(enc_name("name"))
        p += n
        while p < sec.end:
            sub = b[p]
            size, q = u32(b, p + 1)
            end = q + size
            if sub in (1, 2, 3):
                count, q = u32(b, q)
                body = bytearray(enc_u32(count))
                for _ in range(count):
                    idx, q2 = u32(b, q)
                    body += enc_u32(self._func(idx))
                    if sub == 1:
                        ln, q3 = u32(b, q2)
                        q = q3 + ln
                    else:  # an inner name map: skip it whole
                        inner, q3 = u32(b, q2)
                        for _ in range(inner):
                            _, q3 = u32(b, q3)
                            ln, q3 = u32(b, q3)
                            q3 += ln
                        q = q3
                    body += b[q2:q]
                out += bytes((sub,)) + enc_u32(len(body)) + body
            else:
                out += b[p:end]
            p = end
        return b"\x00" + enc_u32(len(out)) + out

    def _branch_site(
        self, sites: Sites, fidx: int, ins: int, slot: int, stack: list[_Frame], depth: int
    ) -> None:
        """An arm's site; its target is where the label leads (resolved at the frame's end)."""
        frame = stack[-1 - depth]
        if frame.kind == op.LOOP:
            sites.add("branch", fidx, ins, slot, frame.body)
        else:
            frame.fixups.append(len(sites))
            sites.add("branch", fidx, ins, slot, None)

    def _br_table_arms(
        self,
        labels: list[int],
        stack: list[_Frame],
        sites: Sites,
        fidx: int,
        ins: int,
        index: bytes | None = None,
    ) -> bytes:
        """br_table rewritten so that each distinct arm passes a probe on its way out.

        One block per arm around the br_table; arm j's probe sits after block j's end and
        branches on to the original label, now B-1-j blocks further out.
        """
        arms = list(dict.fromkeys(labels))
        if max(arms) >= len(stack):
            raise WasmError(f"unknown label {max(arms)}", ins)
        carried = stack[-1 - labels[-1]].label_types()
        bt = self._blocktype_for(carried, b"\x7f")
        out = bytearray(b"\x22" + index) if index is not None else bytearray()
        out += (b"\x02" + bt) * len(arms)
        out += b"\x0e" + enc_u32(len(labels) - 1)
        for label in labels:
            out += enc_u32(arms.index(label))
        for j, label in enumerate(arms):
            slot = self.new_slot()
            out += b"\x0b" + self.flag(slot)
            if index is not None:  # the br_table's index, saved by the tee above
                out += self.event(len(sites), b"\x20" + index + b"\xad")
            out += b"\x0c" + enc_u32(label + len(arms) - 1 - j)
            self._branch_site(sites, fidx, ins, slot, stack, label)
        return bytes(out)

    def _blocktype(self, b: bytes, p: int) -> tuple[bytes, bytes, int]:
        t = b[p]
        if t == 0x40:
            return b"", b"", p + 1
        if t in op.VALTYPES:
            return b"", bytes((t,)), p + 1
        idx, p = sleb(b, p, 33)
        if not 0 <= idx < len(self.m.types):
            raise WasmError(f"unknown block type {idx}", p)
        params, results = self.m.types[idx]
        return params, results, p


# A callback point's operand, as (code saving it, code pushing it as an i64, code restoring
# the stack): each takes the function's scratch local allocator where it needs a local.


def _first_argument(valtype: int) -> tuple[bytes, bytes, bytes]:
    return b"", b"\x20\x00" + _TO_I64[valtype], b""


def _held_result(valtype: int, local) -> tuple[bytes, bytes, bytes]:
    """The value a function returns (the last, if several)."""
    tmp = local(valtype)
    return b"\x22" + tmp, b"\x20" + tmp + _TO_I64[valtype], b""


def _held_index(local) -> tuple[bytes, bytes, bytes]:
    """A callback point's operand at call_indirect: the table index it goes through."""
    index = local(0x7F)
    return b"\x22" + index, b"\x20" + index + b"\xad", b""


def _held_address(
    offset: int,
    above: int | None,
    local,  # the function's scratch local allocator
) -> tuple[bytes, bytes, bytes]:
    """A callback point's operand at a load or store: save the address (and the value over
    it), push the effective address as an i64, put the value back."""
    addr = local(0x7F)
    value = b"\x20" + addr + b"\xad" + (b"\x42" + enc_s(offset) + b"\x7c" if offset else b"")
    if above is None:
        return b"\x22" + addr, value, b""
    held = local(_HELD | above)
    return b"\x21" + held + b"\x22" + addr, value, b"\x20" + held


def _skip2(b: bytes, p: int) -> int:
    return skip_leb(b, skip_leb(b, p))


def _memarg(align: int, mem: int, offset: int) -> bytes:
    if mem == 0:
        return bytes((align,)) + enc_u32(offset)
    return bytes((align | 0x40,)) + enc_u32(mem) + enc_u32(offset)


def _memarg_offset(b: bytes, p: int) -> tuple[int, int]:
    """A memarg's offset, and where the memarg ends."""
    flags = b[p]
    p = skip_leb(b, p)
    if flags & 0x40:
        p = skip_leb(b, p)
    return u32(b, p)


def _skip_memarg(b: bytes, p: int) -> int:
    flags = b[p]
    p = skip_leb(b, p)
    if flags & 0x40:
        p = skip_leb(b, p)
    return skip_leb(b, p)


def _extend(
    b: bytes,
    sec,
    sid: int,
    entry: bytes,
    count: int = 1,
    rest: bytes | None = None,
) -> bytes:
    """A vector section with ``count`` entries appended (to ``rest``, if its entries changed)."""
    if sec is None:
        n, old = 0, b""
    else:
        n, p = u32(b, sec.start)
        old = b[p : sec.end]
    rest = old if rest is None else rest
    payload = enc_u32(n + count) + rest + entry
    return bytes((sid,)) + enc_u32(len(payload)) + payload
