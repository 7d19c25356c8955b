"""Line probes on Python 3.11 by rewriting code objects with ``bytecode``.

3.11 has no sys.monitoring, and sys.settrace costs a Python call per line
for ever. Instead, where a new line starts (or a jump lands), the rewriter
inserts a store into a per-file Python list::

    LOAD_CONST 1; LOAD_CONST <list>; LOAD_CONST <index>; STORE_SUBSCR

which the interpreter specialises to STORE_SUBSCR_LIST_INT: a few
nanoseconds, no call. Count probes insert ``list[index] += 1`` instead.
The inserted instructions carry the line number of the instruction they
precede, so tracebacks and line numbers are unchanged.
"""

from __future__ import annotations

from types import CodeType

from bytecode import Bytecode, Instr, Label

_NB_INPLACE_ADD = 13


class Rewriter:
    """Instruments code objects and reads back, per file, the lines that ran."""

    def __init__(self, count: bool = False) -> None:
        self._count = count
        self._files: dict[str, tuple[list[int], dict[int, int]]] = {}

    def instrument(self, code: CodeType) -> CodeType:
        slots, index = self._files.setdefault(code.co_filename, ([], {}))
        new = self._rewrite(code, slots, index)
        slots.extend([0] * (len(index) - len(slots)))
        return new

    def hits(self) -> dict[str, dict[int, int]]:
        """Lines that ran, per file, with their counts (1 for flags)."""
        return {
            filename: {line: slots[i] for line, i in index.items() if slots[i]}
            for filename, (slots, index) in self._files.items()
        }

    def _rewrite(self, code: CodeType, slots: list[int], index: dict[int, int]) -> CodeType:
        consts = tuple(
            self._rewrite(c, slots, index) if isinstance(c, CodeType) else c
            for c in code.co_consts
        )
        if consts != code.co_consts:
            code = code.replace(co_consts=consts)
        bc = Bytecode.from_code(code)
        out: list[object] = []
        resumed = False
        last_line: int | None = None
        landed = False
        for item in bc:
            if isinstance(item, Label):
                landed = True
            elif isinstance(item, Instr):
                line = item.lineno
                if resumed and line and line > 0 and (line != last_line or landed):
                    out.extend(self._probe(slots, index.setdefault(line, len(index)), line))
                if item.name == "RESUME":
                    resumed = True
                if line:
                    last_line = line
                landed = False
            out.append(item)
        bc[:] = out
        return bc.to_code()

    def _probe(self, slots: list[int], i: int, line: int) -> list[Instr]:
        if not self._count:
            return [
                Instr("LOAD_CONST", 1, lineno=line),
                Instr("LOAD_CONST", slots, lineno=line),
                Instr("LOAD_CONST", i, lineno=line),
                Instr("STORE_SUBSCR", lineno=line),
            ]
        return [
            Instr("LOAD_CONST", slots, lineno=line),
            Instr("LOAD_CONST", i, lineno=line),
            Instr("COPY", 2, lineno=line),
            Instr("COPY", 2, lineno=line),
            Instr("BINARY_SUBSCR", lineno=line),
            Instr("LOAD_CONST", 1, lineno=line),
            Instr("BINARY_OP", _NB_INPLACE_ADD, lineno=line),
            Instr("SWAP", 3, lineno=line),
            Instr("SWAP", 2, lineno=line),
            Instr("STORE_SUBSCR", lineno=line),
        ]
