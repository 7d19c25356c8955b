"""Ball-Larus path profiles of Wasm functions ("Efficient path profiling", Ball and Larus, 1996).

Every acyclic path through a function's control-flow graph gets a number in [0, paths): the
sum of the values of its edges. A path register (a local) adds each edge's value as the edge
is taken, and a counter per path number is incremented where the path ends: at the
function's exit (return, its end, a branch to its label, a tail call, ``unreachable``) and at
each loop back edge, which also starts the next path from the loop's header (a back edge v→w
counts as v→EXIT, then ENTRY→w).

Wasm's structured control flow makes this a plan of insertions *before* instructions, each
leaving the operand stack as it found it, all at places the rewriter's loop stops at anyway
(branches, ``if``/``else``/``end``/``loop``, the instruction after a ``br_if``, the first of an
arm). Every edge is instrumented at its source, where the instruction that takes it is:

* falling through (into a join, an arm, a loop, past a ``br_if``): ``r += value``;
* ``br_if``: ``r += cond ? value : 0`` with ``select`` (a back or exit edge: inside an ``if``
  on the saved condition);
* ``br_table``: ``r += table[min(index, n)]`` from a table in the paths memory (the host
  fills it before the guest runs); back and exit targets by compares on the index;
* ``if`` without ``else``: its false edge gets an ``else`` arm of its own.

Nodes are numbered by their original offsets, which already order the acyclic graph: every
forward edge goes to a later offset. Functions with more than PATH_LIMIT paths are not
profiled (their counters would not fit); the run says which.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from . import opcodes as op
from .binary import WasmError, check_opcode, skip_leb, u32
from .emit import code, i32, memarg

if TYPE_CHECKING:
    from .binary import Body
    from .rewrite import Rewriter

PATH_LIMIT = 1 << 16  # paths of one function: 512 KiB of counters
PATH, COND = 0x57F, 0x67F  # scratch local keys (i32): the path register, a saved condition
EXIT = -1


class _Node:
    __slots__ = ("live", "offset", "out")

    def __init__(self, offset: int = -1) -> None:
        self.offset = offset
        self.out: list[_Edge] = []
        self.live = False  # some live edge enters it (or it is the entry)


@dataclass(eq=False)
class _Edge:
    src: _Node
    dst: _Node | None  # None: EXIT
    back: bool = False  # to a loop header: counted as src→EXIT, then ENTRY→dst
    value: int = 0


@dataclass
class _Frame:
    kind: int  # BLOCK, LOOP, IF, or 0 for the function
    join: _Node | None  # where a branch to its label goes (a loop: its header; 0: EXIT)
    header: _Node | None = None  # an if: the node that holds it
    header_live: bool = False
    has_else: bool = False


@dataclass
class Profile:
    """One function's paths: where its counters are (``base``, bytes into the paths memory)
    and its graph, to decode path numbers back to blocks: ``nodes`` (original offsets, the
    entry first) and per node its out-edges as [destination node or -1 for EXIT, value,
    1 for a back edge's ENTRY→header or src→EXIT half, else 0], by value."""

    func: int
    base: int
    paths: int
    nodes: list[int]
    edges: list[list[list[int]]]

    def decode(self, number: int) -> list[int]:
        """The original offsets of the blocks of path ``number``, in order."""
        v, left, blocks = 0, number, []
        while True:
            taken = max((e for e in self.edges[v] if e[1] <= left), key=lambda e: e[1])
            left -= taken[1]
            if not (v == 0 and taken[2]):  # a path that starts at a loop header
                blocks.append(self.nodes[v])
            if taken[0] == EXIT:
                return blocks
            v = taken[0]


def plan(
    rw: Rewriter, body: Body, local: Callable[[int], bytes]
) -> tuple[dict[int, bytes], Profile] | str:
    """What to insert before which original offsets of ``body`` to count its paths, and the
    profile's layout; or why the function is not profiled. ``local``: the function's scratch
    local for a key (the body rewriter's)."""
    from .body import _memarg_offset, _skip2, blocktype

    b = rw.m.data
    entry = _Node(body.code)
    entry.live = True
    nodes = [entry]
    requests: dict[int, list[tuple]] = {}

    def at(offset: int, *request: object) -> None:
        requests.setdefault(offset, []).append(request)

    def edge(src: _Node, dst: _Node | None, back: bool = False) -> _Edge:
        e = _Edge(src, dst, back)
        src.out.append(e)
        if dst is not None:
            dst.live = True
        return e

    def new_node(offset: int = -1) -> _Node:
        n = _Node(offset)
        nodes.append(n)
        return n

    stack = [_Frame(0, None)]
    cur: _Node | None = entry  # None: dead code (after a branch, until the structure ends)
    p, end = body.code, body.end
    single, misc, simd = op.SINGLE, op.MISC, op.SIMD

    def target(depth: int) -> tuple[_Node | None, bool]:
        if depth >= len(stack):
            raise WasmError(f"unknown label {depth}", p)
        frame = stack[-1 - depth]
        return frame.join, frame.kind == op.LOOP

    while p < end:
        ins, opc = p, b[p]
        p += 1
        kind = single.get(opc)
        if kind is None:
            if opc == op.PREFIX_MISC:
                sub, p = u32(b, p)
                k = misc.get(sub)
                if k == op.U32X2:
                    p = _skip2(b, p)
                elif k == op.U32:
                    p = skip_leb(b, p)
            elif opc == op.PREFIX_SIMD:
                sub, p = u32(b, p)
                k = simd.get(sub)
                if k in (op.MEMARG, op.MEMARG_LANE):
                    _, p = _memarg_offset(b, p)
                    p += k == op.MEMARG_LANE
                elif k == op.BYTES16:
                    p += 16
                elif k == op.LANE:
                    p += 1
            else:
                check_opcode(opc, ins)  # another proposal's: refused as the rewriter refuses it
            continue
        if kind == op.BLOCKTYPE:
            _, _, p = blocktype(rw, b, p)
            if opc == op.BLOCK:
                stack.append(_Frame(op.BLOCK, new_node()))
            elif opc == op.LOOP:
                header = new_node(p)
                stack.append(_Frame(op.LOOP, header))
                if cur is not None:
                    at(ins, "add", edge(cur, header))
                    cur = header
            else:  # if
                frame = _Frame(op.IF, new_node(), cur, cur is not None)
                stack.append(frame)
                if cur is not None:
                    arm = new_node(p)
                    at(p, "add", edge(cur, arm))
                    cur = arm
            continue
        if opc == op.ELSE:
            frame = stack[-1]
            frame.has_else = True
            if cur is not None:
                at(ins, "add", edge(cur, frame.join))
            cur = None
            if frame.header_live:
                arm = new_node(p)
                at(p, "add", edge(frame.header, arm))
                cur = arm
            continue
        if opc == op.END:
            frame = stack.pop()
            if not stack:  # the function's end
                if cur is not None:
                    at(ins, "count", edge(cur, None))
                if p != end:
                    raise WasmError("operators remaining after end of function", p)
                break
            if frame.kind == op.LOOP:
                continue  # past a loop's end is the same block as its body's last
            if cur is not None:
                at(ins, "add", edge(cur, frame.join))
            if frame.kind == op.IF and not frame.has_else and frame.header_live:
                at(ins, "else", edge(frame.header, frame.join))
            frame.join.offset = p
            cur = frame.join if frame.join.live else None
            continue
        if opc in (op.BR, op.BR_IF):
            depth, p = u32(b, p)
            dst, back = target(depth)
            if cur is None:
                continue
            taken = edge(cur, dst, back)
            how = "count" if dst is None else "back" if back else "add"
            if opc == op.BR:
                at(ins, how, taken)
                cur = None
            else:
                at(ins, "cond_" + how, taken)
                nxt = new_node(p)
                at(p, "add", edge(cur, nxt))
                cur = nxt
            continue
        if opc == op.BR_TABLE_OP:
            n, p = u32(b, p)
            labels = []
            for _ in range(n + 1):
                label, p = u32(b, p)
                labels.append(label)
            if cur is not None:
                arms: dict[int, _Edge] = {}
                for label in labels:
                    if label not in arms:
                        dst, back = target(label)
                        arms[label] = edge(cur, dst, back)
                at(ins, "table", [arms[label] for label in labels])
            cur = None
            continue
        if opc in (op.RETURN, op.UNREACHABLE, op.RETURN_CALL, op.RETURN_CALL_INDIRECT):
            if opc == op.RETURN_CALL:
                p = skip_leb(b, p)
            elif opc == op.RETURN_CALL_INDIRECT:
                p = _skip2(b, p)
            if cur is not None:
                at(ins, "count", edge(cur, None))
            cur = None
            continue
        # every other instruction: skip its immediates
        if kind == op.U32 or kind == op.I32 or kind == op.I64:
            p = skip_leb(b, p)
        elif kind == op.U32X2:
            p = _skip2(b, p)
        elif kind == op.MEMARG:
            _, p = _memarg_offset(b, p)
        elif kind == op.F32:
            p += 4
        elif kind == op.F64:
            p += 8
        elif kind == op.SELECT_T:
            count, p = u32(b, p)
            p += count
        elif kind == op.REFTYPE:
            p += 1

    # Number the paths: the nodes by offset are in topological order (EXIT last).
    live = sorted((n for n in nodes if n.live), key=lambda n: n.offset)
    index = {id(n): i for i, n in enumerate(live)}
    paths: dict[int, int] = {}
    headers = {id(e.dst): e.dst for n in live for e in n.out if e.back}
    outs: dict[int, list[list]] = {}  # node -> [(edge or None, dst index, dummy)]
    for n in live:
        outs[id(n)] = [[e, index[id(e.dst)] if e.dst is not None and not e.back else EXIT,
                        int(e.back)] for e in n.out]  # fmt: skip
    for h in sorted(headers.values(), key=lambda n: n.offset):
        outs[id(entry)].append([None, index[id(h)], 1])
    for n in reversed(live):
        total = 0
        for out in outs[id(n)]:
            value, total = total, total + (1 if out[1] == EXIT else paths[out[1]])
            out.append(value)
            if out[0] is not None:
                out[0].value = value
        paths[index[id(n)]] = total
        if total > PATH_LIMIT:
            return f"more than {PATH_LIMIT:,} paths"
    start_of = {out[1]: out[3] for out in outs[id(entry)] if out[0] is None}
    count = paths[0]
    base = rw.path_bytes
    rw.path_bytes += count * 8
    profile = Profile(
        body.index,
        base,
        count,
        [n.offset for n in live],
        [sorted([[o[1], o[3], o[2]] for o in outs[id(n)]], key=lambda o: o[1]) for n in live],
    )
    restart = {id(h): start_of[index[id(h)]] for h in headers.values()}
    return _code(rw, requests, base, restart, local(PATH), local(COND)), profile


def _code(
    rw: Rewriter,
    requests: dict[int, list[tuple]],
    base: int,
    restart: dict[int, int],
    r: bytes,
    c: bytes,
) -> dict[int, bytes]:
    """The bytes to insert before each offset, once every edge has its value (a back edge's:
    that of its first half, src→EXIT); ``r``, ``c``: the path register and a scratch i32."""
    mem = rw.path_mem

    def add(value: int) -> bytes:
        if not value:
            return b""
        return code(op.LOCAL_GET, r, i32(value), op.I32_ADD, op.LOCAL_SET, r)

    def count(value: int) -> bytes:
        where = memarg(3, mem, base + 8 * value)
        at = code(op.LOCAL_GET, r, i32(3), op.I32_SHL)
        return code(at, at, op.I64_LOAD, where, op.I64_CONST, 1, op.I64_ADD, op.I64_STORE, where)

    def back(e: _Edge) -> bytes:
        return count(e.value) + code(i32(restart[id(e.dst)]), op.LOCAL_SET, r)

    def guarded(body_: bytes) -> bytes:  # on the condition on the stack, which stays there
        return code(op.LOCAL_TEE, c, op.IF, op.EMPTY, body_, op.END, op.LOCAL_GET, c)

    def action(e: _Edge) -> bytes:
        return count(e.value) if e.dst is None else back(e) if e.back else b""

    def table(arms: list[_Edge]) -> bytes:
        out = bytearray(code(op.LOCAL_SET, c))
        n = len(arms) - 1
        if any(a.value for a in arms if a.dst is not None and not a.back):
            at = rw.path_bytes
            rw.path_bytes += 4 * len(arms)
            rw.path_tables.append([at, [a.value if a.dst is not None and not a.back else 0
                                        for a in arms]])  # fmt: skip
            index = code(op.LOCAL_GET, c, i32(n), op.LOCAL_GET, c, i32(n), op.I32_LT_U,
                         op.SELECT, i32(2), op.I32_SHL)  # fmt: skip
            out += code(op.LOCAL_GET, r, index, op.I32_LOAD, memarg(2, mem, at), op.I32_ADD,
                        op.LOCAL_SET, r)  # fmt: skip
        for i, arm in enumerate(arms):
            special = action(arm)
            if special:
                test = code(i32(n), op.I32_GE_U) if i == n else code(i32(i), op.I32_EQ)
                out += code(op.LOCAL_GET, c, test, op.IF, op.EMPTY, special, op.END)
        return bytes(out + code(op.LOCAL_GET, c))

    def one(kind: str, what) -> bytes:
        if kind == "add":
            return add(what.value)
        if kind == "count":
            return count(what.value)
        if kind == "back":
            return back(what)
        if kind == "cond_add":
            if not what.value:
                return b""
            return code(op.LOCAL_SET, c, op.LOCAL_GET, r, i32(what.value), op.I32_ADD,
                        op.LOCAL_GET, r, op.LOCAL_GET, c, op.SELECT, op.LOCAL_SET, r,
                        op.LOCAL_GET, c)  # fmt: skip
        if kind == "cond_count":
            return guarded(count(what.value))
        if kind == "cond_back":
            return guarded(back(what))
        if kind == "else":
            inc = add(what.value)
            return code(op.ELSE, inc) if inc else b""
        if kind == "table":
            return table(what)
        raise AssertionError(kind)

    return {
        offset: b"".join(one(kind, what) for kind, what in reqs)
        for offset, reqs in requests.items()
    }
