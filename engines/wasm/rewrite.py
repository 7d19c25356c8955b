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
    WasmError,
    enc_name,
    enc_u32,
    extend_section,
)
from .body import fast_table, rewrite_function
from .emit import (
    EVENT_BYTES,
    EVENT_CAPACITY,
    FRAMES_AT,
    STACK_FRAMES,
    Emitter,
    code,
    i32,
)
from .relocate import Relocation

PROBE_MEMORY_EXPORT = "probe:memory"
START_EXPORT = "probe:start"  # the start function, exported: the host calls it (runner)
HIT_IMPORT = ("probe", "hit")  # (param i32 site, i64 operand): what callback points call
GUARDS_EXPORT = "probe:guards"  # one byte per site: 1 = its callback point calls the host
EVENTS_EXPORT = "probe:events"  # the event ring: EVENT_BYTES per event
CURSOR_EXPORT = "probe:cursor"  # i32 global: bytes of the ring in use
FLUSH_IMPORT = ("probe", "flush")  # () -> (): the ring is full, take its events
RANGES_EXPORT = "probe:ranges"  # per site: lowest and highest operand, two u64
STACK_EXPORT = "probe:stack"  # the shadow stack: depth (bytes) at 0, frames from FRAMES_AT
PATHS_EXPORT = "probe:paths"  # Ball-Larus path counters (i64) and br_table value tables (i32)
_RESERVED = (
    STACK_EXPORT,
    PATHS_EXPORT,
    PROBE_MEMORY_EXPORT,
    START_EXPORT,
    GUARDS_EXPORT,
    EVENTS_EXPORT,
    CURSOR_EXPORT,
    RANGES_EXPORT,
)


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
    # A shadow call stack in a memory of its own (probe:stack), for a sampler to read: each
    # function pushes its index at entry; after each call the caller sets the depth back to
    # its own, which pops the callee however it left (a trap: the host resets it).
    stack: bool = False
    # Ball-Larus path profiles (paths.py): a counter per acyclic path of each function, in a
    # memory of its own (probe:paths). Not with branch probes, which rewrite br_if too.
    paths: bool = False

    def any(self) -> bool:
        return (
            any((self.func, self.block, self.instr, self.branch, self.call, self.memory, self.exit))
            or self.stack
            or self.paths
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
    stack: bool = False  # keeps a shadow call stack (probe:stack)
    # Path profiles (probe:paths): per function [index, base, paths, nodes, edges] (see
    # paths.Profile); the br_table tables the host writes there first, [at, values]; the
    # functions not profiled, [index, why].
    paths: list = field(default_factory=list)
    path_tables: list = field(default_factory=list)
    unprofiled: list = field(default_factory=list)
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
        return Rewriter(m, plan).run()
    except IndexError:
        # An immediate that runs past the end of the file: malformed, not a crash of probe.
        raise WasmError("unexpected end of the module inside a function body") from None


class Rewriter:
    """One module's rewriting: its probe memories and imports, its sections; each function
    body by body.rewrite_function."""

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
            self.flush_type = self.type_index(b"", b"")
            self.ev_type = self.type_index(bytes((op.T_I64, op.T_I32)), b"")
            self.ev = len(m.func_types) + added  # the event writer, appended
        if self.ranges:
            self.range_mem, nextmem = nextmem, nextmem + 1
        self.stack_mem = nextmem if plan.stack and has_code else -1
        nextmem += self.stack_mem >= 0
        self.path_mem = nextmem if plan.paths and has_code else -1
        self.path_bytes = 0
        self.path_tables: list = []
        self.profiles: list = []
        self.unprofiled: list = []
        self.shift = added
        self.reloc = Relocation(m, added)
        self.operand_funcs = frozenset(plan.operand_funcs or ())
        self.marks_new = array("q")
        self.marks_old = array("q")
        self._code_marks = 0  # where the code section's marks begin
        # Sites finer than a block need segments that end where execution may stop.
        self.split_traps = bool(plan.instr or plan.memory or plan.call)
        self.emit = Emitter(
            mem=self.mem,
            counting=self.counting,
            guard_mem=self.guard_mem,
            hit=self.hit,
            event_mem=self.event_mem,
            cursor=self.cursor if self.operand else -1,
            pending=self.pending if self.operand else -1,
            flush=self.flush,
            writer=self.ev if self.operand else -1,
            range_mem=self.range_mem,
            stack_mem=self.stack_mem,
        )
        self.flag = self.emit.probe

        self.fast = fast_table(self)

    def new_slot(self) -> int:
        self.slots += 1
        return self.slots - 1

    def _helpers(self) -> list[bytes]:
        """Bodies of the functions the rewriter appends: the event writer."""
        return [self.emit.event_writer()] if self.operand else []

    # -- the module -------------------------------------------------------------

    def run(self) -> Result:
        m, b = self.m, self.m.data
        probing = self.plan.any()
        code_sec = m.section(SEC_CODE)
        bodies = self._code_payload(code_sec) if code_sec is not None and probing else None
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
            if self.stack_mem >= 0:
                memories.append(-(-(FRAMES_AT + 4 * STACK_FRAMES) // 65536))
                exports.append((STACK_EXPORT, 2, self.stack_mem))
            if self.path_mem >= 0:
                memories.append(max(1, -(-self.path_bytes // 65536)))
                exports.append((PATHS_EXPORT, 2, self.path_mem))
            added[SEC_MEMORY] = extend_section(
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
                exports.append((START_EXPORT, 0, self.reloc.func(m.start)))
            added[SEC_EXPORT] = extend_section(
                b,
                m.section(SEC_EXPORT),
                SEC_EXPORT,
                b"".join(enc_name(n) + bytes((k,)) + enc_u32(i) for n, k, i in exports),
                count=len(exports),
                rest=self.reloc.exports() if self.shift else None,
            )
            if self.shift:
                imports = b""
                if self.hit >= 0:
                    hit_type = self.type_index(bytes((op.T_I32, op.T_I64)), b"")
                    imports += enc_name(HIT_IMPORT[0]) + enc_name(HIT_IMPORT[1])
                    imports += b"\x00" + enc_u32(hit_type)
                if self.flush >= 0:
                    imports += enc_name(FLUSH_IMPORT[0]) + enc_name(FLUSH_IMPORT[1])
                    imports += b"\x00" + enc_u32(self.flush_type)
                added[SEC_IMPORT] = extend_section(
                    b, m.section(SEC_IMPORT), SEC_IMPORT, imports, count=self.shift
                )
                sec = m.section(SEC_ELEMENT)
                if sec is not None:
                    added[SEC_ELEMENT] = self.reloc.elements(sec)
            sec = m.section(SEC_GLOBAL)
            # two mutable i32 globals set to 0: the ring cursor and the pending indirect call
            new_globals = code(op.T_I32, 1, i32(0), op.END) * 2 if self.operand else b""
            if new_globals or (sec is not None and self.shift):
                added[SEC_GLOBAL] = extend_section(
                    b,
                    sec,
                    SEC_GLOBAL,
                    new_globals,
                    count=2 if new_globals else 0,
                    rest=self.reloc.globals(sec) if sec is not None and self.shift else None,
                )
            if self.ev >= 0:
                added[SEC_FUNCTION] = extend_section(
                    b, m.section(SEC_FUNCTION), SEC_FUNCTION, enc_u32(self.ev_type)
                )
            if self.new_types:
                extra = b"".join(
                    b"\x60" + enc_u32(len(p)) + p + enc_u32(len(r)) + r for p, r in self.new_types
                )
                added[SEC_TYPE] = extend_section(
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
                try:
                    out += self.reloc.names(sec)
                except (WasmError, IndexError):
                    pass  # malformed: engines ignore it (the spec says so); left out, not moved
            elif sec.id == SEC_START and probing:
                continue
            elif sec.id == SEC_CODE and bodies is not None:
                out += bytes((SEC_CODE,)) + enc_u32(len(bodies))
                base = len(out)
                for i in range(self._code_marks, len(self.marks_new)):
                    self.marks_new[i] += base
                out += bodies
            else:
                self.mark(len(out), sec.header)
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
            stack=self.stack_mem >= 0,
            paths=self.profiles,
            path_tables=self.path_tables,
            unprofiled=self.unprofiled,
            new_starts=array("q", (self.marks_new[i] for i in order)),
            old_starts=array("q", (self.marks_old[i] for i in order)),
            imported=m.imported_funcs,
            shift=self.shift,
            funcs=len(m.func_types),
        )

    def mark(self, new: int, old: int) -> None:
        self.marks_new.append(new)
        self.marks_old.append(old)

    def _code_payload(self, sec) -> bytes:  # Section
        """The new code section payload; marks are relative to it until run() adds its base."""
        self._code_marks = len(self.marks_new)
        helpers = self._helpers()
        out = bytearray(enc_u32(len(self.m.bodies) + len(helpers)))
        for body in self.m.bodies:
            first = len(self.marks_new)
            new = rewrite_function(self, body)
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

    def type_index(self, params: bytes, results: bytes) -> int:
        """The index of the function type params -> results, added if the module lacks it."""
        sig = (params, results)
        known = self.m.types + self.new_types
        if sig in known:
            return known.index(sig)
        self.new_types.append(sig)
        return len(known)
