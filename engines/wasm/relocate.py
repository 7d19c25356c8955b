"""Function indices moved: probe's host functions are imported, and imports come before
every function a module defines, so each defined function's index moves up by the number
imported (``shift``). Every place outside code that names a function is rewritten here:
exports, element segments, constant expressions (of globals and elements), the name
section. In code, ``call``, ``return_call`` and ``ref.func`` are re-encoded by the rewriter
with ``func``.
"""

from __future__ import annotations

from probe.errors import NotSupported

from . import opcodes as op
from .binary import SEC_ELEMENT, Module, Section, enc_name, enc_u32, skip_leb, u32


class Relocation:
    def __init__(self, m: Module, shift: int) -> None:
        self.m = m
        self.shift = shift

    def func(self, idx: int) -> int:
        """The new index of function ``idx``."""
        return idx + self.shift if idx >= self.m.imported_funcs else idx

    def exports(self) -> bytes:
        """The export entries (without their count), function indices moved."""
        out = bytearray()
        for name, kind, idx in self.m.exports:
            out += enc_name(name) + bytes((kind,)) + enc_u32(self.func(idx) if kind == 0 else idx)
        return bytes(out)

    def const_expr(self, b: bytes, p: int, out: bytearray) -> int:
        """Copy a constant expression at ``p`` into ``out``, moving ref.func indices."""
        while True:
            opc = b[p]
            if opc == op.END:
                out.append(opc)
                return p + 1
            if opc == op.REF_FUNC:
                idx, p = u32(b, p + 1)
                out += bytes((opc,)) + enc_u32(self.func(idx))
                continue
            start = p
            if opc in (op.I32_CONST, op.I64_CONST, op.GLOBAL_GET):
                p = skip_leb(b, p + 1)
            elif opc == op.F32_CONST:
                p += 5
            elif opc == op.F64_CONST:
                p += 9
            elif opc == op.REF_NULL:
                if b[p + 1] not in (op.T_FUNCREF, op.T_EXTERNREF):
                    raise NotSupported("function references (typed null reference)", p)
                p += 2
            elif opc == op.PREFIX_SIMD:
                p = skip_leb(b, p + 1) + 16  # v128.const
            else:
                p += 1  # extended constant arithmetic
            out += b[start:p]

    def elements(self, sec: Section) -> bytes:
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
                p = self.const_expr(b, p, out)
            if flags & 3:  # elemkind or reftype
                kind = b[p]
                if (
                    kind not in ((0x00,) if not flags & 4 else (op.T_FUNCREF, op.T_EXTERNREF))
                    or flags > 7
                ):
                    raise NotSupported("function references (typed element segment)", p)
                out.append(kind)
                p += 1
            count, p = u32(b, p)
            out += enc_u32(count)
            for _ in range(count):
                if flags & 4:
                    p = self.const_expr(b, p, out)
                else:
                    idx, p = u32(b, p)
                    out += enc_u32(self.func(idx))
        return bytes((SEC_ELEMENT,)) + enc_u32(len(out)) + out

    def globals(self, sec: Section) -> bytes:
        """The global entries (without their count), ref.func indices moved."""
        b = self.m.data
        n, p = u32(b, sec.start)
        out = bytearray()
        for _ in range(n):
            out += b[p : p + 2]  # value type, mutability
            p = self.const_expr(b, p + 2, out)
        return bytes(out)

    def names(self, sec: Section) -> bytes:
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
                    body += enc_u32(self.func(idx))
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
