"""Line counts from few increments (3.12+): counters on some edges, the rest from flow.

A function's code falls into basic blocks: runs of instructions entered only at the top
and left, but for exceptions, only at the bottom. What enters a block leaves it, so the
counts of its edges obey conservation (Knuth 1973; Ball and Larus 1994): counters on the
edges outside a spanning tree of the flow graph give all the others. A loop then costs one
increment an iteration wherever its lines go, not one a line. Every line start (a *point*,
where the interpreter reports a line event: see rewrite.py) runs as often as its block.

Edges to and from the outside (one virtual block) close the graph: a function's start and a
generator's resumption come in from it, counted where they happen (after RESUME); so does
an exception handler, counted at its top. Returns and yields go out to it. An exception
leaves a block anywhere: sys.monitoring's RAISE and RERAISE events name the instruction,
in each frame the exception passes through (RAISE gives the last unit of the instruction's
inline caches: every unit of an instruction names it), so the graph knows how much left
where, and the points after that instruction in its block count as not run. Frames still
running when counts are read (other threads, a program calling os._exit) are read the same
way at their current instruction.

The counters go where they cost least: at the top of a block with one way in, at the end
of a block with one way out, after a conditional jump for the way that falls through, or,
for the way it jumps (a loop's exits, mostly), in a trampoline after all the code that
jumps back on. The exits of FOR_ITER and SEND take no counter and stay in the tree; a code
object whose graph can't be covered so (or whose handler is also a jump target) counts each
block with points at its top instead.

3.11 has no RAISE event: there each point counts itself, an increment each.
"""

from __future__ import annotations

import dis
import sys
from collections import Counter
from dataclasses import dataclass, field
from types import CodeType

from bytecode import Instr, Label

from .compat import BACK_JUMP_IS_LINE_EVENT, MONITORING

FLOW = MONITORING  # exceptions can be seen: blocks share counters
V = -1  # the outside: starts, resumptions and handlers come from it, exits go to it

_NB_ADD = 0
_JUMPS = {
    "JUMP",
    "JUMP_FORWARD",
    "JUMP_BACKWARD",
    "JUMP_BACKWARD_NO_INTERRUPT",
    "JUMP_NO_INTERRUPT",
}
_EXITS = {"RETURN_VALUE", "RETURN_CONST", "YIELD_VALUE"}  # out to V, an edge like any
_RAISES = {"RAISE_VARARGS", "RERAISE"}  # out by an exception: counted by events
_CONDITIONAL = {
    "POP_JUMP_IF_FALSE",
    "POP_JUMP_IF_TRUE",
    "POP_JUMP_IF_NONE",
    "POP_JUMP_IF_NOT_NONE",
}
_NOT_EXITS = {"YIELD_VALUE", "RESUME"}  # an exception here was thrown in, not raised


class Point:
    """A line event's place in the instruction list (a marker until place() is done)."""

    __slots__ = ("line",)

    def __init__(self, line: int) -> None:
        self.line = line


class Start:
    """What follows a RESUME: the code's start (``first``), or a generator's resumption.
    ``slot``: where starts are counted for the tracer's func counts (None: anywhere). Its
    increment takes the line of the instruction after it, not the RESUME's (at a start, the
    def line): line events must come where they came without it."""

    __slots__ = ("first", "slot")

    def __init__(self, first: bool, slot: int | None) -> None:
        self.first = first
        self.slot = slot


@dataclass
class _Block:
    items: list[object] = field(default_factory=list)
    instrs: list[int] = field(default_factory=list)  # indices of its real instructions
    points: list[tuple[int, int]] = field(default_factory=list)  # (point, next instruction)
    preds: int = 0
    entered: bool = False  # from V, counted where a Start marker stood
    fixed: bool = False  # FOR_ITER's or SEND's target: jumps may land past END_FOR, POP_TOP
    handler: bool = False  # from V, an exception handler: counted at the top
    first: Instr | None = None
    last: Instr | None = None


@dataclass
class _Edge:
    u: int
    v: int
    how: str  # 'fall', 'jump', 'exit', 'start' (a Start marker), 'handler', 'cond' (fallthrough)
    where: str | None = None  # where its counter goes (see _where); None: solved from the others
    slot: int | None = None  # its counter, once placed


@dataclass
class CodeFlow:
    """One code object's graph, counters and what left it early, to turn into line counts."""

    code: CodeType | None = None
    blocks: list[_Block] = field(default_factory=list)
    edges: list[_Edge] = field(default_factory=list)
    units: dict[int, int] = field(default_factory=dict)  # byte offset -> instruction index
    block_of: list[int] = field(default_factory=list)  # instruction index -> block
    exits: Counter[int] = field(default_factory=Counter)  # instruction index -> exceptions
    tops: dict[int, int] = field(default_factory=dict)  # block -> its own counter ('blocks')
    mode: str = "flow"  # 'flow'; 'blocks': a counter a block with points; 'points': a line
    index_of: dict[int, int] = field(default_factory=dict)  # id(instruction) -> its index
    order: list[int | None] = field(default_factory=list)  # placed instruction -> index
    iters: set[int] = field(default_factory=set)  # FOR_ITER and SEND: StopIteration ends them
    own: dict[int, int] = field(default_factory=dict)  # 'points': point -> its counter
    lines: dict[int, int] = field(default_factory=dict)  # point -> line


@dataclass
class FileCounts:
    """One file's counters (what the bytecode increments) and its code objects' flows."""

    slots: list[int] = field(default_factory=list)
    flows: list[CodeFlow] = field(default_factory=list)

    def new_slot(self) -> int:
        self.slots.append(0)
        return len(self.slots) - 1

    def lines(self, live: dict[int, Counter[int]]) -> dict[int, int]:
        """Line -> count; ``live``: id(flow) -> instructions frames are running now."""
        counts: dict[int, int] = {}
        for flow in self.flows:
            for point, n in _solve(flow, self.slots, live.get(id(flow))).items():
                if n > 0:
                    line = flow.lines[point]
                    counts[line] = counts.get(line, 0) + n
        return counts


MODES = ("flow", "blocks", "points") if FLOW else ("points",)  # the cheapest first


def place(
    items: list[object], file: FileCounts, mode: str = MODES[0]
) -> tuple[list[object], CodeFlow]:
    """Replace Point and Start markers by the increments the code needs; the flow to read
    them back by. ``mode``: 'flow' where it can (else 'blocks'), 'blocks', or 'points'."""
    flow = CodeFlow(mode=mode)
    if mode == "points":
        return _each_point(items, file, flow), flow
    blocks, starts = _blocks(items, flow)
    flow.blocks = blocks
    if mode == "blocks" or not _graph(flow, starts) or not _tree(flow):
        flow.mode = "blocks"
        for edge in flow.edges:
            edge.where = None
        flow.tops = {b: file.new_slot() for b, block in enumerate(blocks) if block.points}
    return _assemble(flow, starts, file), flow


def _each_point(items: list[object], file: FileCounts, flow: CodeFlow) -> list[object]:
    """3.11: an increment at every point, and at the start if asked."""
    out: list[object] = []
    for k, item in enumerate(items):
        if isinstance(item, Point):
            slot = file.new_slot()
            point = len(flow.lines)
            flow.lines[point] = item.line
            flow.own[point] = slot
            out.extend(_increment(file.slots, slot, item.line))
        elif isinstance(item, Start):
            if item.first and item.slot is not None:
                line = next((i.lineno for i in items[k:] if isinstance(i, Instr)), None)
                out.extend(_increment(file.slots, item.slot, line))
        else:
            out.append(item)
    return out


def _blocks(items: list[object], flow: CodeFlow) -> tuple[list[_Block], list[tuple[int, Start]]]:
    """Split ``items`` into blocks; also where Start markers stand (the block they enter)."""
    blocks = [_Block()]
    starts: list[tuple[int, Start]] = []
    count = 0  # real instructions so far
    ended = False  # the current block has ended (a terminator, or a Start marker)

    def new() -> _Block:
        blocks.append(_Block())
        return blocks[-1]

    block = blocks[0]
    for item in items:
        if isinstance(item, Label):
            if block.items or block.points or ended:
                block = new()
                ended = False
            block.items.append(item)
            continue
        if isinstance(item, Start):
            block = new() if (block.items or ended) else block
            ended = False
            starts.append((len(blocks) - 1, item))
            block.entered = True
            continue
        if not isinstance(item, Instr | Point):  # TryBegin, TryEnd, SetLineno: no code
            block.items.append(item)
            continue
        if ended:
            block = new()
            ended = False
        if isinstance(item, Point):
            point = len(flow.lines)
            flow.lines[point] = item.line
            block.points.append((point, count))
            block.items.append(item)
            continue
        block.items.append(item)
        if isinstance(item, Instr):
            flow.index_of[id(item)] = count
            if item.name in ("FOR_ITER", "SEND"):
                flow.iters.add(count)
            block.instrs.append(count)
            flow.block_of.append(len(blocks) - 1)
            block.first = block.first or item
            block.last = item
            count += 1
            if isinstance(item.arg, Label) or item.name in _EXITS | _RAISES | {"RESUME"}:
                ended = True
    return blocks, starts


def _graph(flow: CodeFlow, starts: list[tuple[int, Start]]) -> bool:
    """The edges between blocks; False where the graph can't be counted by flow."""
    blocks = flow.blocks
    block_at: dict[int, int] = {}  # id(label) -> block
    handlers: set[int] = set()
    for b, block in enumerate(blocks):
        for item in block.items:
            if isinstance(item, Label):
                block_at[id(item)] = b
            elif not isinstance(item, Instr | Point):
                target = getattr(item, "target", None)  # TryBegin: an exception handler
                if isinstance(target, Label):
                    handlers.add(id(target))
    edges = flow.edges
    for b, block in enumerate(blocks):
        last = block.last
        if last is not None and last.name == "RESUME":
            continue  # what follows is entered from V (a Start), not from here
        nxt = b + 1 if b + 1 < len(blocks) else None
        if last is None or not (isinstance(last.arg, Label) or last.name in _EXITS | _RAISES):
            if nxt is not None:
                edges.append(_Edge(b, nxt, "fall"))
            continue
        if last.name in _EXITS:
            edges.append(_Edge(b, V, "exit"))
            continue
        if last.name in _RAISES:
            continue
        target = block_at[id(last.arg)]
        if last.name in ("FOR_ITER", "SEND"):
            blocks[target].fixed = True
        if last.name in _JUMPS:
            edges.append(_Edge(b, target, "jump"))
            continue
        if nxt is not None and nxt != target:
            edges.append(_Edge(b, nxt, "cond" if last.name in _CONDITIONAL else "fall"))
        edges.append(_Edge(b, target, "jump" if nxt != target else "fall"))
    edges.extend(_Edge(V, b, "start") for b, _ in starts)
    for b, block in enumerate(blocks):
        if any(isinstance(i, Label) and id(i) in handlers for i in block.items):
            block.handler = True
            edges.append(_Edge(V, b, "handler"))
    for edge in edges:
        if edge.v != V:
            blocks[edge.v].preds += 1
    for block in blocks:
        if block.handler and block.preds > 1:
            return False  # a handler that is also jumped to: counted at the top it can't be
    return True


def _tree(flow: CodeFlow) -> bool:
    """Choose the counted edges: all from V, and those outside a spanning tree that holds
    every edge a counter can't go on, and the hottest it can (by loop depth)."""
    blocks, edges = flow.blocks, flow.edges
    depth = [0] * len(blocks)
    for edge in edges:  # a jump back spans a loop: the blocks between are inside it
        if edge.how == "jump" and edge.v != V and edge.v <= edge.u:
            for b in range(edge.v, edge.u + 1):
                depth[b] += 1
    out_degree = Counter(e.u for e in edges)
    where = {id(e): _where(e, blocks, out_degree) for e in edges}

    def weight(edge: _Edge) -> float:
        if where[id(edge)] is None:
            return float("inf")  # can't be counted: must be solved
        inner = min(depth[edge.u] if edge.u != V else 0, depth[edge.v] if edge.v != V else 0)
        if where[id(edge)] == "tramp":
            return 3.0 * 10**inner  # two jumps more than other counters: solve it if you can
        return float(10**inner)

    parent = list(range(len(blocks) + 1))  # union-find; V is the last node

    def find(n: int) -> int:
        while parent[n] != n:
            parent[n] = parent[parent[n]]
            n = parent[n]
        return n

    node = {V: len(blocks)}
    candidates = [e for e in edges if e.how not in ("start", "handler")]
    for edge in sorted(candidates, key=weight, reverse=True):
        a, b = find(node.get(edge.u, edge.u)), find(node.get(edge.v, edge.v))
        if a != b:
            parent[a] = b  # in the tree: solved
        elif where[id(edge)] is None:
            return False
        else:
            edge.where = where[id(edge)]  # counted
    for edge in edges:
        if edge.how in ("start", "handler"):
            edge.where = edge.how
    return True


def _where(edge: _Edge, blocks: list[_Block], out_degree: Counter[int]) -> str | None:
    """Where a counter for ``edge`` can go: 'top' of its target, 'end' of its source, 'after'
    its source's conditional jump; None: nowhere without a new jump. Nothing goes just
    before a YIELD_VALUE: a generator's throw() reads the SEND before it."""
    if edge.how in ("start", "handler"):
        return edge.how
    target = blocks[edge.v] if edge.v != V else None
    if target is not None and target.preds == 1 and not target.entered:
        first = target.first
        if first is None or first.name != "YIELD_VALUE":
            return "top"
    last = blocks[edge.u].last
    if out_degree[edge.u] == 1 and (last is None or last.name != "YIELD_VALUE"):
        return "end"
    if edge.how == "cond":
        return "after"
    if edge.how == "jump" and last is not None and last.name in _CONDITIONAL:
        return "tramp"  # the jump goes to a trampoline at the end, which jumps back on
    return None


def _assemble(flow: CodeFlow, starts: list[tuple[int, Start]], file: FileCounts) -> list[object]:
    """The items with the increments in place; each counted edge (or block) gets its slot."""
    blocks = flow.blocks
    top: dict[int, list[int]] = {}
    end: dict[int, list[int]] = {}
    after: dict[int, list[int]] = {}
    tramps: list[tuple[_Edge, int]] = []
    at_start: dict[int, int] = {}  # block -> slot counted where its Start marker stands
    for b, start in starts:
        slot = start.slot if start.first and start.slot is not None else file.new_slot()
        at_start[b] = slot
    for edge in flow.edges:
        if edge.where is None:
            continue
        if edge.where == "start":
            edge.slot = at_start[edge.v]
            continue
        edge.slot = file.new_slot()
        if edge.where in ("top", "handler"):
            top.setdefault(edge.v, []).append(edge.slot)
        elif edge.where == "end":
            end.setdefault(edge.u, []).append(edge.slot)
        elif edge.where == "after":
            after.setdefault(edge.u, []).append(edge.slot)
        else:
            tramps.append((edge, edge.slot))
    for b, slot in flow.tops.items():
        top.setdefault(b, []).append(slot)
    out: list[object] = []
    slots = file.slots
    for b, block in enumerate(blocks):
        if b in at_start:
            out.extend(_increment(slots, at_start[b], block.first and block.first.lineno))
        items = [i for i in block.items if not isinstance(i, Point)]
        lead = 0
        while lead < len(items) and isinstance(items[lead], Label):
            lead += 1
        if block.fixed:  # past where FOR_ITER's and SEND's fast paths land
            while lead < len(items) and (
                not isinstance(items[lead], Instr)
                or items[lead].name in ("END_FOR", "END_SEND", "POP_TOP")
            ):
                lead += 1
        line = next((i.lineno for i in items if isinstance(i, Instr)), None)
        body = items[:lead]
        for slot in top.get(b, ()):
            body.extend(_increment(slots, slot, line))
        rest = items[lead:]
        last = block.last
        closing = rest and last is not None and rest[-1] is last
        if b in end and last is not None and (last.name in _JUMPS or last.name in _EXITS):
            k = rest.index(last)
            for slot in end[b]:
                rest[k:k] = _increment(slots, slot, last.lineno)
        elif b in end:
            for slot in end[b]:
                rest.extend(_increment(slots, slot, line))
        body.extend(rest)
        for slot in after.get(b, ()):
            body.extend(_increment(slots, slot, last.lineno if closing and last else line))
        out.extend(body)
    for edge, slot in tramps:  # after all the code: conditional jumps only go forward
        jump, target = blocks[edge.u].last, blocks[edge.v]
        assert jump is not None and isinstance(jump.arg, Label)
        line = target.first.lineno if target.first is not None else jump.lineno
        here = Label()
        out.append(here)
        out.extend(_increment(slots, slot, line))
        out.append(Instr("JUMP_BACKWARD", jump.arg, lineno=line))
        jump.arg = here
    flow.order = [flow.index_of.get(id(i)) for i in out if isinstance(i, Instr)]
    return out


def _solve(flow: CodeFlow, slots: list[int], live: Counter[int] | None) -> dict[int, int]:
    """Point -> count, from the counters, the exceptions and the frames running now."""
    if flow.mode == "points":
        return {point: slots[slot] for point, slot in flow.own.items()}
    left = Counter(flow.exits)  # instruction -> frames that left (or stand) there
    if live:
        left.update(live)
    blocks = flow.blocks
    gone = Counter()  # block -> frames that left it early
    for i, n in left.items():
        gone[flow.block_of[i]] += n
    if flow.mode == "blocks":
        entries = {b: slots[s] for b, s in flow.tops.items()}
    else:
        entries = _conserve(flow, slots, gone)
    here: dict[int, list[tuple[int, int]]] = {}  # block -> (instruction, frames left there)
    for i in sorted(left):
        here.setdefault(flow.block_of[i], []).append((i, left[i]))
    counts: dict[int, int] = {}
    for b, block in enumerate(blocks):
        if not block.points:
            continue
        n = entries.get(b, 0)
        early = here.get(b, [])
        k = missed = 0
        for point, nxt in block.points:  # in order: who left before a point missed it
            while k < len(early) and early[k][0] < nxt:
                missed += early[k][1]
                k += 1
            counts[point] = n - missed
    return counts


def _conserve(flow: CodeFlow, slots: list[int], gone: Counter[int]) -> dict[int, int]:
    """Each block's entries: the counted edges' values, the rest by conservation (what
    comes in goes out, or leaves early), one unknown edge at a time (a tree: always one)."""
    edges = flow.edges
    known = [e.slot is not None for e in edges]
    value = [slots[e.slot] if e.slot is not None else 0 for e in edges]
    touching: dict[int, list[int]] = {}
    for k, e in enumerate(edges):
        touching.setdefault(e.u, []).append(k)
        touching.setdefault(e.v, []).append(k)
    unknown = Counter()
    for k, e in enumerate(edges):
        if not known[k]:
            unknown[e.u] += 1
            unknown[e.v] += 1
    ready = [n for n in touching if unknown[n] == 1]
    while ready:
        n = ready.pop()
        if unknown[n] != 1:
            continue
        inflow = outflow = 0
        missing = -1
        for k in touching[n]:
            e = edges[k]
            if not known[k]:
                missing = k
                continue
            if e.v == n and e.u != n:
                inflow += value[k]
            if e.u == n and e.v != n:
                outflow += value[k]
        if n != V:
            outflow += gone[n]
        else:
            inflow += sum(gone.values())  # what left early went out to V
        e = edges[missing]
        value[missing] = outflow - inflow if e.v == n else inflow - outflow
        known[missing] = True
        for m in (e.u, e.v):
            unknown[m] -= 1
            if unknown[m] == 1:
                ready.append(m)
    entries: Counter[int] = Counter()
    for k, e in enumerate(edges):
        if e.v != V:
            entries[e.v] += value[k]
    return entries


class Exits:
    """sys.monitoring's RAISE and RERAISE events, and frames running now, read as where
    each left its block; for every code object place() made."""

    def __init__(self) -> None:
        # id(code) -> its flow (which keeps the code, so that the id is not reused: probed
        # code objects hold a list and can't be hashed).
        self._flows: dict[int, CodeFlow] = {}
        self._tool: int | None = None

    def register(self, code: CodeType, flow: CodeFlow) -> None:
        if flow.mode == "points":
            return
        flow.code = code
        instructions = list(dis.get_instructions(code))
        ends = [i.offset for i in instructions[1:]] + [len(code.co_code)]
        begin = None  # an instruction begins at its EXTENDED_ARGs
        k = 0
        for ins, stop in zip(instructions, ends, strict=True):
            if begin is None:
                begin = ins.offset
            if ins.opname == "EXTENDED_ARG":
                continue
            if k >= len(flow.order):
                raise AssertionError(f"{code.co_qualname}: more instructions than placed")
            index = flow.order[k]  # None: an increment, which does not raise
            if index is not None and ins.opname not in _NOT_EXITS:
                flow.units.update(dict.fromkeys(range(begin, stop, 2), index))
            k += 1
            begin = None
        if k != len(flow.order):
            raise AssertionError(f"{code.co_qualname}: {k} instructions, {len(flow.order)} placed")
        self._flows[id(code)] = flow

    def start(self) -> None:
        if not FLOW:
            return
        from .sysmon import claim_tool

        events = sys.monitoring.events
        self._tool = claim_tool(
            "probe-counts",
            {events.RAISE: self._left, events.RERAISE: self._left},
            events.RAISE | events.RERAISE,
        )

    def stop(self) -> None:
        if self._tool is not None:
            from .sysmon import release_tool

            events = sys.monitoring.events
            release_tool(self._tool, (events.RAISE, events.RERAISE))
            self._tool = None

    def _left(self, code: CodeType, offset: int, exc: BaseException) -> None:
        flow = self._flows.get(id(code))
        if flow is not None:
            i = flow.units.get(offset)
            if i is not None and not (i in flow.iters and isinstance(exc, StopIteration)):
                flow.exits[i] += 1

    def live(self) -> dict[int, Counter[int]]:
        """id(flow) -> instructions where frames running now stand."""
        found: dict[int, Counter[int]] = {}
        for frame in sys._current_frames().values():
            while frame is not None:
                flow = self._flows.get(id(frame.f_code))
                if flow is not None and flow.code is frame.f_code:
                    i = flow.units.get(frame.f_lasti)
                    if i is not None:
                        found.setdefault(id(flow), Counter())[i] += 1
                frame = frame.f_back
        return found


def _increment(slots: list[int], i: int, line: int | None) -> list[Instr]:
    """``slots[i] = slots[i] + 1``: eight instructions the interpreter specialises (list,
    int), no call, no eval-breaker check between the read and the write."""
    return [
        Instr("LOAD_CONST", slots, lineno=line),
        Instr("LOAD_CONST", i, lineno=line),
        Instr("BINARY_SUBSCR", lineno=line),
        Instr("LOAD_CONST", 1, lineno=line),
        Instr("BINARY_OP", _NB_ADD, lineno=line),
        Instr("LOAD_CONST", slots, lineno=line),
        Instr("LOAD_CONST", i, lineno=line),
        Instr("STORE_SUBSCR", lineno=line),
    ]


def count_points(items: list[object], start: int | None) -> list[object]:
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
