"""Code that sys.monitoring instrumented, given back its fast form (Python 3.12 only).

On 3.12 two costs stay after every LINE callback has returned DISABLE, 7-10 % on loops in
the benchmarks, the same for coverage.py's sysmon core:

* Instrumenting a code object turns its superinstructions (LOAD_FAST__LOAD_FAST and four
  more, which 3.12 forms once, when the code object is made) back into single
  instructions, and nothing forms them again.
* A line event fires only where the line differs from the instruction's before. A line
  point that is reached only from its own line (the loop head of a comprehension or of a
  one-line loop) never fires, so it never returns DISABLE, and the interpreter's line check
  runs there on every pass.

So a thread of probe's (a Snapshots thread: it pauses while the program forks), every 50
ms, takes each code object whose lines fired since its last pass, and in its executable
bytecode (co_code_adaptive, which rewrite.py patches on 3.11 too) puts back the instruction
under every line point whose line is recorded already, then forms the superinstructions
again wherever both halves are plain instructions. Each change is a one-byte write made
with the GIL held (compat.executable_bytecode), so the interpreter is between two
instructions whenever it sees one. Nothing is done while any other tool has events, checked
before each code object: a line point may then carry that tool's events too. That includes
sys.settrace and sys.setprofile in any thread (a debugger, cProfile, coverage.py's C
tracer), which 3.12 runs as tools 7 and 6: only the private
``sys.monitoring._all_events()`` shows those. Where it, or any opcode named here, is
missing, nothing is settled (``AVAILABLE``). If the interpreter instruments the code again
(events switched on), it treats what it finds as it treats a new code object's bytecode.

3.13 forms superinstructions in the compiler, and measures 1.02x without this.
"""

from __future__ import annotations

import dis
import sys
import weakref
from types import CodeType

from probe.engines.snapshots import Snapshots

from .compat import executable_bytecode

EVERY_S = 0.05

# Opcodes by name, superinstructions too (not in dis.opmap); an interpreter that lacks any
# of these is not the 3.12 this was written against, and nothing is settled there.
_OP = {name: number for number, name in enumerate(getattr(dis, "_all_opname", ()))}
_JOINED = (
    ("LOAD_CONST", "LOAD_FAST"),
    ("LOAD_FAST", "LOAD_CONST"),
    ("LOAD_FAST", "LOAD_FAST"),
    ("STORE_FAST", "LOAD_FAST"),
    ("STORE_FAST", "STORE_FAST"),
)  # the pairs 3.12's _PyCode_Quicken joins
AVAILABLE = (
    all(f"{a}__{b}" in _OP for a, b in _JOINED)
    and "INSTRUMENTED_LINE" in dis.opmap
    and hasattr(sys.monitoring, "_all_events")
)
# (first, second) -> the superinstruction
_PAIRS = {(_OP[a], _OP[b]): _OP[f"{a}__{b}"] for a, b in _JOINED} if AVAILABLE else {}
_SUPERS: dict[int, set[int]] = {}  # an instruction -> the superinstructions it begins
for (_first, _), _super in _PAIRS.items():
    _SUPERS.setdefault(_first, set()).add(_super)
_LINE = dis.opmap.get("INSTRUMENTED_LINE", -1)
_RESUME = dis.opmap["RESUME"]
_CACHES = dis._inline_cache_entries


class _Shape:
    """What a code object's bytecode says once and for all: its instructions' opcodes as
    made (co_code), each instruction that has a line, and the pairs quickening joins."""

    __slots__ = ("made", "lined", "pairs")

    def __init__(self, code: CodeType) -> None:
        made = self.made = code.co_code  # the base opcodes, whatever is instrumented
        units = len(made) // 2
        line_of: list[int | None] = [None] * units
        for start, end, line in code.co_lines():
            for k in range(start // 2, end // 2):
                line_of[k] = line
        starts = []
        i = 0
        while i < units:
            starts.append(i)
            i += 1 + _CACHES[made[2 * i]]
        self.lined = [
            (i, line_of[i]) for i in starts if line_of[i] is not None and made[2 * i] != _RESUME
        ]
        self.pairs = [
            (a, b, _PAIRS[(made[2 * a], made[2 * b])])
            for a, b in zip(starts, starts[1:], strict=False)
            if b == a + 1 and (made[2 * a], made[2 * b]) in _PAIRS
        ]


class Settler:
    """Settles the code objects ``touched`` (their lines fired) of the tool ``tool``, whose
    recorded lines per file are ``lines``."""

    def __init__(self, tool: int, lines: dict[str, set[int]]) -> None:
        self.tool = tool
        self.lines = lines
        self.touched: dict[int, CodeType] = {}  # id -> code object, filled by the callback
        # id -> (the code object, weakly: an id is reused once its object is gone; its shape)
        self._shapes: dict[int, tuple[weakref.ref[CodeType], _Shape]] = {}
        self._thread = Snapshots(
            self.settle_touched, EVERY_S, "probe-settle", "settling of 3.12 bytecode"
        )

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._thread.stop()

    def settle_touched(self) -> None:
        """Settle every code object touched since the last time, while probe's tool is
        alone; the others stay touched, to be settled once it is alone again."""
        while self.touched and self._alone():
            key, code = self.touched.popitem()
            known = self._shapes.get(key)
            if known is not None and known[0]() is code:
                shape = known[1]
            else:
                shape = _Shape(code)
                self._shapes[key] = (weakref.ref(code), shape)
            seen = self.lines.get(code.co_filename)
            if seen:
                settle(code, shape, seen)

    def _alone(self) -> bool:
        """Whether no tool but probe's has events, in any thread."""
        mon = sys.monitoring
        mine = 1 << self.tool
        if any(tools & ~mine for tools in mon._all_events().values()):  # 6 and 7 too
            return False
        return all(mon.get_tool(t) is None for t in range(6) if t != self.tool)


def settle(code: CodeType, shape: _Shape, seen: set[int]) -> None:
    """Put back the instructions under line points of lines ``seen``, and join the pairs
    whose halves are both plain."""
    made = shape.made
    live = executable_bytecode(code)
    for i, line in shape.lined:
        if live[2 * i] == _LINE and line in seen:
            live[2 * i] = made[2 * i]
    for a, b, joined in shape.pairs:
        first, second = live[2 * a], live[2 * b]
        if (first == made[2 * a] or first in _SUPERS.get(made[2 * a], ())) and (
            second == made[2 * b] or second in _SUPERS.get(made[2 * b], ())
        ):
            live[2 * a] = joined
