"""Rewriting one function body: the rewriter's inner loop.

One pass over the body's bytes. Instructions that need no attention are skipped by a table
lookup per opcode (``fast_table``) and copied in runs; at each segment start, branch, call,
access or exit that the plan probes, probe code (emit.py) is spliced in, and offsets are
marked so that the rewritten module's offsets map back to the original's. ``rewrite_function``
is one long function on purpose: its closures share the loop's locals, and a method call per
instruction would cost a third of the rewriter's speed (benchmarks/wasm_overhead.py measures
MB/s on a large module).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from probe.errors import WasmError

from . import opcodes as op
from .binary import Body, check_opcode, enc_s, enc_u32, skip_leb, sleb, u32
from .emit import (
    DEPTH,
    NO_VALUE,
    TO_I64,
    TOP,
    code,
    entry_events,
    first_argument,
    held_address,
    held_index,
    held_result,
    i64,
)

if TYPE_CHECKING:
    from .rewrite import Rewriter, Sites

# Stores: the type of the value stored (it sits above the address on the stack).
_STORED = {0x36: 0x7F, 0x37: 0x7E, 0x38: 0x7D, 0x39: 0x7C, 0x3A: 0x7F, 0x3B: 0x7F}
_STORED.update({0x3C: 0x7E, 0x3D: 0x7E, 0x3E: 0x7E})
# SIMD memory instructions: bytes accessed; stores and lane loads also hold a v128 above.
_SIMD_BYTES = {0: 16, 1: 8, 2: 8, 3: 8, 4: 8, 5: 8, 6: 8, 7: 1, 8: 2, 9: 4, 10: 8, 11: 16}
_SIMD_BYTES.update({0x5C: 4, 0x5D: 8, 0x54: 1, 0x55: 2, 0x56: 4, 0x57: 8})
_SIMD_BYTES.update({0x58: 1, 0x59: 2, 0x5A: 4, 0x5B: 8})
_SIMD_STORES = {11, 0x58, 0x59, 0x5A, 0x5B}
_SIMD_V128_ABOVE = _SIMD_STORES | {0x54, 0x55, 0x56, 0x57}

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


# Instructions the loop splices at every branch site it rewrites: bytes made once and joined
# by +, since code() (a join over its parts) there cost 3% of the rewriter's speed.
_IF, _ELSE, _BR, _END = (bytes((o,)) for o in (op.IF, op.ELSE, op.BR, op.END))


class Frame:
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


def fast_table(rw: Rewriter) -> bytes:
    """Per opcode: 1 no immediate, 2 one LEB128, 3 a memarg, when it needs no attention."""
    table = bytearray(256)
    if rw.plan.instr:
        return bytes(table)  # every instruction is a site
    for opcode, kind in op.SINGLE.items():
        if opcode in (
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
        if rw.split_traps and opcode in _TRAPS:
            continue
        if rw.shift and opcode == op.REF_FUNC:
            continue  # its function index moves
        if kind == op.NONE:
            table[opcode] = 1
        elif kind in (op.U32, op.I32, op.I64):
            table[opcode] = 2
        elif kind == op.MEMARG and not rw.plan.memory:
            table[opcode] = 3
    return bytes(table)


# -- probe code -------------------------------------------------------------


def rewrite_function(rw: Rewriter, body: Body) -> bytes:  # one tight loop on purpose
    b = rw.m.data
    plan, sites, counting, split_traps = rw.plan, rw.sites, rw.counting, rw.split_traps
    fidx = body.index
    # The plan's fields as locals: this loop runs once per instruction.
    want_func, want_block, want_instr = plan.func, plan.block, plan.instr
    want_branch, want_call = plan.branch, plan.call
    want_memory, want_exit = plan.memory, plan.exit
    out = bytearray()
    run_start = body.start  # start of the original bytes not yet copied
    ftype = (
        rw.m.types[rw.m.func_types[fidx]] if rw.m.func_types[fidx] < len(rw.m.types) else (b"", b"")
    )
    stack = [Frame(0, body.start, b"", ftype[1], body.code)]
    marks_from = len(rw.marks_new)
    operand = rw.operand
    if plan.operand_funcs is not None and fidx not in rw.operand_funcs:
        operand = set()
    ev_branch, ev_call = "branch" in operand, "call" in operand
    range_memory = "memory" in rw.ranges
    ev_memory = "memory" in operand or range_memory
    ev_block, ev_instr = "block" in operand, "instr" in operand
    pending_in = "call" in rw.operand  # every function takes an indirect call's callee
    # Scratch locals for operand events, appended to the function's own: valtype -> index.
    # HELD + valtype: a second one, for a value held while the first is in use.
    scratch: dict[int, int] = {}
    first_scratch = len(ftype[0]) + sum(n for n, _ in body.locals)

    def local(t: int) -> bytes:
        if t not in scratch:
            scratch[t] = first_scratch + len(scratch)
        return enc_u32(scratch[t])

    def cond_event(site: int) -> bytes:  # the condition saved by a tee before the branch
        return rw.emit.event(site, code(op.LOCAL_GET, local(op.T_I32), op.I64_EXTEND_I32_U))

    single, misc, simd = op.SINGLE, op.MISC, op.SIMD
    new_segment, leader = True, True
    slot = -1
    arm = -1  # offset of the branch whose arm the next segment is, if any
    block, block_first, count = -1, 0, 0  # current block site, its first instruction's number
    dead = False  # the previous instruction never falls through
    p, end = body.code, body.end

    def splice(at_offset: int, spliced: bytes) -> None:
        nonlocal run_start
        if at_offset > run_start:
            rw.mark(len(out), run_start)
            out.extend(b[run_start:at_offset])
        out.extend(spliced)
        run_start = at_offset

    mark_new, mark_old = rw.marks_new.append, rw.marks_old.append
    flag_head = None if counting else rw.emit.flag_head
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
            before, value, after = b"", NO_VALUE, b""
            if operand:
                before, value, after = operand(*args)
                sites.valued.add(len(sites) - 1)
            splice(at_offset, before + rw.emit.guarded_hit(len(sites) - 1, value) + after)

    shadow = rw.stack_mem >= 0
    if shadow:
        depth, top = local(DEPTH), local(TOP)
        splice(body.code, rw.emit.stack_push(fidx, depth, top))
        pop_self, back_here = rw.emit.stack_set(depth), rw.emit.stack_set(top)
    path_code = None  # Ball-Larus: what goes in before which instruction
    if rw.path_mem >= 0:
        from . import paths

        planned = paths.plan(rw, body, local)
        if isinstance(planned, str):
            rw.unprofiled.append([fidx, planned])
        else:
            path_code, profile = planned
            rw.profiles.append([profile.func, profile.base, profile.paths, profile.nodes,
                                profile.edges])  # fmt: skip

    fast = rw.fast
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
            frame.else_slot = rw.new_slot()
            arm_site = len(sites)
            sites.add("branch", fidx, frame.offset, frame.else_slot, ins + 1)
            else_arm = _ELSE + rw.flag(frame.else_slot)
            splice(ins, else_arm + cond_event(arm_site) if ev_branch else else_arm)
        if dead:
            dead = False
            if opc == op.END or opc == op.ELSE:
                # Only the structure is left after an unconditional branch: no block here.
                new_segment = leader = False
                slot = -1
        if new_segment:
            # Inline new_slot() and splice(): this runs once per basic block.
            slot = rw.slots
            rw.slots = slot + 1
            if ins > run_start:
                mark_new(len(out))
                mark_old(run_start)
                out += b[run_start:ins]
            out += flag_head + enc_u32(slot) if flag_head else rw.flag(slot)
            run_start = ins
            new_segment = False
            if ins == body.code:
                if pending_in:  # the call that led here comes before the entry
                    out += rw.emit.pending_out(i64(fidx))
                if want_func:
                    sites.add("func", fidx, body.start, slot, fidx)
                    first = ftype[0][:1]
                    if first and first[0] in TO_I64:  # the first argument
                        call_host("func", ins, first_argument, first[0])
                    else:
                        call_host("func", ins)
                    if "func" in operand:
                        out += rw.emit.arguments(ftype[0], len(sites) - 1)
                        sites.size[-1] = entry_events(ftype[0])  # a timeline's grouping
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
                    splice(ins, rw.emit.event(block))
            leader = False
        count += 1
        if want_instr and slot >= 0:
            sites.add("instr", fidx, ins, slot)
            call_host("instr", ins)
            if ev_instr:
                splice(ins, rw.emit.event(len(sites) - 1))
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
            leaving = rw.new_slot()
            splice(ins, rw.flag(leaving))
            sites.add("return", fidx, ins, leaving)
            results = ftype[1]
            if (
                "exit" in callbacks
                and (opc == op.RETURN or opc == op.END)
                and results
                and results[-1] in TO_I64
            ):
                call_host("exit", ins, held_result, results[-1], local)
            else:
                call_host("exit", ins)
            if "exit" in operand and (opc == op.RETURN or opc == op.END):
                conv = TO_I64.get(results[-1]) if results else None
                if conv is not None:  # the returned value (the last, if there are several)
                    tmp = local(results[-1])
                    value = code(op.LOCAL_TEE, tmp, conv)
                    splice(ins, rw.emit.event(len(sites) - 1, value) + code(op.LOCAL_GET, tmp))
                else:  # nothing numeric returned: an event of 0, so that every exit is one
                    splice(ins, rw.emit.event(len(sites) - 1, code(op.I64_CONST, b"\x00")))
        if path_code is not None and ins in path_code:
            # after this instruction's other probes: an if's new else arm must follow them
            splice(ins, path_code[ins])
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
                        call_host("memory", ins, held_address, offset, above, local)
                        if ev_memory:
                            splice(
                                ins,
                                rw.emit.address(len(sites) - 1, offset, above, local, range_memory),
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
                    taken = rw.new_slot()
                    bt = blocktype_for(rw, stack[-1 - idx].label_types())
                    tee = code(op.LOCAL_TEE, local(op.T_I32)) if ev_branch else b""
                    arm_event = cond_event(len(sites)) if ev_branch else b""
                    # if (t*)->(t*) probe; br L+1 end: the taken arm passes its probe
                    splice(
                        ins,
                        tee + _IF + bt + rw.flag(taken) + arm_event + _BR + enc_u32(idx + 1) + _END,
                    )
                    run_start = p  # the original br_if is replaced
                    branch_site(rw, sites, fidx, ins, taken, stack, idx)
            elif opc == op.BR:
                new_segment = leader = dead = stack[-1].unreachable = True
            elif opc in (op.CALL, op.RETURN_CALL):
                if want_call:
                    sites.add("call", fidx, ins, slot, idx)
                    call_host("call", ins)
                if shadow and opc == op.RETURN_CALL:
                    splice(ins, pop_self)  # the callee takes this frame's place
                if rw.shift and idx >= rw.m.imported_funcs:
                    splice(ins, bytes((opc,)) + enc_u32(idx + rw.shift))
                    run_start = p
                if shadow and opc == op.CALL:
                    splice(p, back_here)
                if split_traps or opc == op.RETURN_CALL:
                    new_segment = True
                if opc == op.RETURN_CALL:
                    leader = dead = stack[-1].unreachable = True
            elif opc == op.REF_FUNC and rw.shift and idx >= rw.m.imported_funcs:
                splice(ins, bytes((opc,)) + enc_u32(idx + rw.shift))
                run_start = p
            continue
        if kind == op.MEMARG:
            offset, p = _memarg_offset(b, p)
            if want_memory:
                size, store = op.ACCESS[opc]
                sites.add("store" if store else "load", fidx, ins, slot)
                sites.size[-1] = size
                held = _STORED.get(opc)
                call_host("memory", ins, held_address, offset, held, local)
                if ev_memory:
                    splice(ins, rw.emit.address(len(sites) - 1, offset, held, local, range_memory))
            if split_traps:
                new_segment = True
            continue
        if kind == op.BLOCKTYPE:
            params, results, p = blocktype(rw, b, p)
            stack.append(Frame(opc, ins, params, results, p))
            if opc == op.IF:
                new_segment = leader = True
                arm = ins
                if ev_branch:
                    splice(ins, code(op.LOCAL_TEE, local(op.T_I32)))
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
                    call_host("call", ins, held_index, local)
                    if ev_call and not stack[-1].unreachable:
                        # The callee's entry records (this site, its index): see _pending_out.
                        splice(ins, rw.emit.pending_in(len(sites) - 1))
                        if opc == op.CALL_INDIRECT:  # an import as callee: recorded as -1
                            splice(p, rw.emit.pending_out(i64(-1)))
                if shadow:
                    if opc == op.CALL_INDIRECT:
                        splice(p, back_here)
                    else:
                        splice(ins, pop_self)
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
                splice(ins, br_table_arms(rw, labels, stack, sites, fidx, ins, index))
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
        rw.mark(len(out), run_start)
        out.extend(b[run_start:end])
    if scratch:
        # Declare the scratch locals: the body starts with the local declarations.
        groups, q = u32(b, body.start)
        decls = enc_u32(groups + len(scratch)) + b[q : body.code]
        decls += b"".join(code(enc_u32(1), t & 0xFF) for t in scratch)  # one local each
        grown = len(decls) - (body.code - body.start)
        out[: body.code - body.start] = decls
        for i in range(marks_from, len(rw.marks_new)):
            if rw.marks_new[i] > 0:
                rw.marks_new[i] += grown
    return bytes(out)


def blocktype_for(rw: Rewriter, carried: bytes, extra_param: bytes = b"") -> bytes:
    """A block type taking ``carried + extra_param`` and giving ``carried``."""
    if not carried and not extra_param:
        return bytes((op.EMPTY,))
    return enc_s(rw.type_index(carried + extra_param, carried))


def branch_site(
    rw: Rewriter, sites: Sites, fidx: int, ins: int, slot: int, stack: list[Frame], depth: int
) -> None:
    """An arm's site; its target is where the label leads (resolved at the frame's end)."""
    frame = stack[-1 - depth]
    if frame.kind == op.LOOP:
        sites.add("branch", fidx, ins, slot, frame.body)
    else:
        frame.fixups.append(len(sites))
        sites.add("branch", fidx, ins, slot, None)


def br_table_arms(
    rw: Rewriter,
    labels: list[int],
    stack: list[Frame],
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
    bt = blocktype_for(rw, carried, bytes((op.T_I32,)))
    out = bytearray(code(op.LOCAL_TEE, index)) if index is not None else bytearray()
    out += code(op.BLOCK, bt) * len(arms)
    out += code(op.BR_TABLE_OP, enc_u32(len(labels) - 1))
    for label in labels:
        out += enc_u32(arms.index(label))
    for j, label in enumerate(arms):
        slot = rw.new_slot()
        out += code(op.END, rw.flag(slot))
        if index is not None:  # the br_table's index, saved by the tee above
            out += rw.emit.event(len(sites), code(op.LOCAL_GET, index, op.I64_EXTEND_I32_U))
        out += code(op.BR, enc_u32(label + len(arms) - 1 - j))
        branch_site(rw, sites, fidx, ins, slot, stack, label)
    return bytes(out)


def blocktype(rw: Rewriter, b: bytes, p: int) -> tuple[bytes, bytes, int]:
    t = b[p]
    if t == 0x40:
        return b"", b"", p + 1
    if t in op.VALTYPES:
        return b"", bytes((t,)), p + 1
    idx, p = sleb(b, p, 33)
    if not 0 <= idx < len(rw.m.types):
        raise WasmError(f"unknown block type {idx}", p)
    params, results = rw.m.types[idx]
    return params, results, p


def _skip2(b: bytes, p: int) -> int:
    return skip_leb(b, skip_leb(b, p))


def _memarg_offset(b: bytes, p: int) -> tuple[int, int]:
    """A memarg's offset, and where the memarg ends."""
    flags = b[p]
    p = skip_leb(b, p)
    if flags & 0x40:
        p = skip_leb(b, p)
    return u32(b, p)
