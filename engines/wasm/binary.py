"""The Wasm binary format: LEB128, sections, the module's index spaces, function bodies.

Parsing keeps offsets, not objects: a section is a byte range of the
original file and a function body is (start, end) in it. Nothing is
re-encoded unless the rewriter changes it, so an untouched module encodes
back to the same bytes, and a module of tens of megabytes costs a few
Python objects per function, not per instruction.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from probe.errors import NotSupported, WasmError

from .opcodes import UNSUPPORTED, VALTYPES

MAGIC = b"\0asm"
VERSION = b"\x01\0\0\0"

SEC_CUSTOM, SEC_TYPE, SEC_IMPORT, SEC_FUNCTION, SEC_TABLE, SEC_MEMORY = 0, 1, 2, 3, 4, 5
SEC_GLOBAL, SEC_EXPORT, SEC_START, SEC_ELEMENT, SEC_CODE, SEC_DATA = 6, 7, 8, 9, 10, 11
SEC_DATACOUNT, SEC_TAG = 12, 13

# Where each known section may stand, by the spec's order (data count before code).
ORDER = {1: 1, 2: 2, 3: 3, 4: 4, 5: 5, 6: 7, 7: 8, 8: 9, 9: 10, 12: 11, 10: 12, 11: 13}


# -- LEB128 -------------------------------------------------------------------


def u32(b: bytes, p: int) -> tuple[int, int]:
    """Read an unsigned LEB128 at ``p``; return (value, next offset)."""
    try:
        x = b[p]
        if x < 0x80:
            return x, p + 1
        start, result, shift = p, 0, 0
        for i in range(5):
            x = b[p]
            p += 1
            if i == 4 and x & 0xF0:
                raise WasmError(
                    "integer representation too long" if x & 0x80 else "integer too large", start
                )
            result |= (x & 0x7F) << shift
            if x < 0x80:
                return result, p
            shift += 7
        raise WasmError("integer representation too long", start)
    except IndexError:
        raise WasmError("unexpected end", p) from None


def sleb(b: bytes, p: int, bits: int) -> tuple[int, int]:
    """Read a signed LEB128 of at most ``bits`` bits."""
    result = shift = 0
    start = p
    try:
        while True:
            x = b[p]
            p += 1
            result |= (x & 0x7F) << shift
            shift += 7
            if x < 0x80:
                break
            if shift >= bits + 7:
                raise WasmError("integer representation too long", start)
    except IndexError:
        raise WasmError("unexpected end", p) from None
    if x & 0x40:
        result -= 1 << shift
    return result, p


def skip_leb(b: bytes, p: int) -> int:
    try:
        while b[p] & 0x80:
            p += 1
    except IndexError:
        raise WasmError("unexpected end", p) from None
    return p + 1


def enc_u32(n: int) -> bytes:
    if n < 0x80:
        return _SMALL[n]
    if n < 0x4000:
        return bytes((n & 0x7F | 0x80, n >> 7))
    if n < 0x200000:
        return bytes((n & 0x7F | 0x80, (n >> 7) & 0x7F | 0x80, n >> 14))
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        if n:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


_SMALL = [bytes((i,)) for i in range(0x80)]


def enc_s(n: int) -> bytes:
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        if (n == 0 and not byte & 0x40) or (n == -1 and byte & 0x40):
            out.append(byte)
            return bytes(out)
        out.append(byte | 0x80)


def enc_name(s: str) -> bytes:
    raw = s.encode()
    return enc_u32(len(raw)) + raw


# -- the module ---------------------------------------------------------------


@dataclass
class Section:
    id: int
    start: int  # first payload byte
    end: int  # one past the last payload byte
    header: int  # offset of the section id byte
    name: str | None = None  # custom sections


@dataclass
class Body:
    """One function body: ``code`` is where its instructions start, ``end`` one past its end."""

    index: int  # function index (imports included)
    start: int  # first byte after the body's size
    code: int
    end: int
    locals: list[tuple[int, int]]  # (count, valtype)


@dataclass
class Module:
    data: bytes
    sections: list[Section] = field(default_factory=list)
    types: list[tuple[bytes, bytes]] = field(default_factory=list)  # (params, results)
    imports: list[tuple[str, str, int, object]] = field(default_factory=list)
    func_types: list[int] = field(default_factory=list)  # every function, imports first
    imported_funcs: int = 0
    imported_memories: int = 0
    memories: int = 0  # defined memories
    imported_globals: int = 0
    globals: int = 0  # defined globals
    exports: list[tuple[str, int, int]] = field(default_factory=list)
    start: int | None = None
    bodies: list[Body] = field(default_factory=list)
    names: dict[int, str] = field(default_factory=dict)  # function index -> name section name

    @property
    def total_memories(self) -> int:
        return self.imported_memories + self.memories

    @property
    def total_globals(self) -> int:
        return self.imported_globals + self.globals

    def section(self, sid: int) -> Section | None:
        return next((s for s in self.sections if s.id == sid), None)

    def func_name(self, index: int) -> str:
        name = self.names.get(index)
        if name:
            return name
        for ename, kind, idx in self.exports:
            if kind == 0 and idx == index:
                return ename
        return f"func[{index}]"


def parse(data: bytes) -> Module:
    """Parse the module structure (not the instructions) of a binary module."""
    if len(data) < 8 or data[:4] != MAGIC:
        raise WasmError("not a WebAssembly module (bad magic number)", 0)
    if data[4:8] != VERSION:
        if data[4:8] == b"\x0d\0\x01\0":
            raise NotSupported("component model (this is a component, not a core module)", 4)
        raise WasmError("unknown binary version", 4)
    m = Module(data)
    p, last = 8, 0
    while p < len(data):
        header = p
        sid = data[p]
        size, p = u32(data, p + 1)
        end = p + size
        if end > len(data):
            raise WasmError("section size mismatch: section runs past the end", header)
        sec = Section(sid, p, end, header)
        if sid == SEC_CUSTOM:
            n, q = u32(data, p)
            sec.name = data[q : q + n].decode("utf-8", "replace")
        elif sid == SEC_TAG:
            raise NotSupported("exception handling (tag section)", header)
        elif sid not in ORDER:
            raise WasmError(f"malformed section id {sid}", header)
        elif ORDER[sid] <= last:
            raise WasmError("unexpected section (out of order or duplicate)", header)
        else:
            last = ORDER[sid]
        m.sections.append(sec)
        p = end
    for sec in m.sections:
        _PARSERS.get(sec.id, _skip)(m, sec)
    funcs = m.section(SEC_FUNCTION)
    code = m.section(SEC_CODE)
    defined = len(m.func_types) - m.imported_funcs
    if len(m.bodies) != defined:
        raise WasmError(
            "function and code section have inconsistent lengths",
            (code or funcs).header if (code or funcs) else 8,
        )
    names = next((s for s in m.sections if s.id == 0 and s.name == "name"), None)
    if names is not None:
        try:
            m.names = _function_names(data, names)
        except (WasmError, UnicodeDecodeError, IndexError):
            m.names = {}  # a broken name section is not an error (the spec says so)
    return m


def _name(b: bytes, p: int) -> tuple[str, int]:
    n, p = u32(b, p)
    try:
        return b[p : p + n].decode("utf-8"), p + n
    except UnicodeDecodeError:
        raise WasmError("malformed UTF-8 encoding", p) from None


def _skip(m: Module, sec: Section) -> None:
    pass


def _valtype(b: bytes, p: int) -> int:
    t = b[p]
    if t not in VALTYPES:
        if t in (0x63, 0x64, 0x6E, 0x6D, 0x6B, 0x6A, 0x6C, 0x71, 0x72, 0x73, 0x69, 0x65):
            raise NotSupported("GC / function references (reference type)", p)
        raise WasmError(f"malformed value type {t:#x}", p)
    return t


def _types(m: Module, sec: Section) -> None:
    b = m.data
    n, p = u32(b, sec.start)
    for _ in range(n):
        form = b[p]
        if form in (0x5E, 0x5F, 0x4E, 0x50, 0x4F):
            raise NotSupported("GC (type definitions)", p)
        if form != 0x60:
            raise WasmError(f"malformed function type form {form:#x}", p)
        np, p = u32(b, p + 1)
        params = bytes(_valtype(b, p + i) for i in range(np))
        p += np
        nr, p = u32(b, p)
        results = bytes(_valtype(b, p + i) for i in range(nr))
        p += nr
        m.types.append((params, results))
    _done(sec, p)


def _limits(b: bytes, p: int) -> int:
    flags = b[p]
    if flags in (2, 3):
        raise NotSupported("threads (shared memory)", p)
    if flags & 0x04:
        raise NotSupported("memory64", p)
    if flags > 1:
        raise WasmError(f"malformed limits flags {flags:#x}", p)
    _, p = u32(b, p + 1)
    if flags & 1:
        _, p = u32(b, p)
    return p


def _imports(m: Module, sec: Section) -> None:
    b = m.data
    n, p = u32(b, sec.start)
    for _ in range(n):
        mod, p = _name(b, p)
        name, p = _name(b, p)
        kind = b[p]
        p += 1
        desc: object
        if kind == 0:
            desc, p = u32(b, p)
            m.func_types.append(desc)
            m.imported_funcs += 1
        elif kind == 1:
            _valtype(b, p)
            p = _limits(b, p + 1)
            desc = None
        elif kind == 2:
            p = _limits(b, p)
            m.imported_memories += 1
            desc = None
        elif kind == 3:
            _valtype(b, p)
            p += 2
            desc = None
            m.imported_globals += 1
        elif kind == 4:
            raise NotSupported("exception handling (tag import)", p - 1)
        elif kind in (0x7E, 0x7F):
            raise NotSupported("compact imports", p - 1)
        else:
            raise WasmError(f"malformed import kind {kind}", p - 1)
        m.imports.append((mod, name, kind, desc))
    _done(sec, p)


def _functions(m: Module, sec: Section) -> None:
    n, p = u32(m.data, sec.start)
    for _ in range(n):
        t, p = u32(m.data, p)
        m.func_types.append(t)
    _done(sec, p)


def _memories(m: Module, sec: Section) -> None:
    n, p = u32(m.data, sec.start)
    for _ in range(n):
        p = _limits(m.data, p)
    m.memories = n
    _done(sec, p)


def _globals(m: Module, sec: Section) -> None:
    m.globals, _ = u32(m.data, sec.start)  # their initializers are copied, not read


def _tables(m: Module, sec: Section) -> None:
    b = m.data
    n, p = u32(b, sec.start)
    for _ in range(n):
        if b[p] == 0x40:
            raise NotSupported("function references (table initializer)", p)
        _valtype(b, p)
        p = _limits(b, p + 1)
    _done(sec, p)


def _exports(m: Module, sec: Section) -> None:
    b = m.data
    n, p = u32(b, sec.start)
    for _ in range(n):
        name, p = _name(b, p)
        kind = b[p]
        if kind == 4:
            raise NotSupported("exception handling (tag export)", p)
        idx, p = u32(b, p + 1)
        m.exports.append((name, kind, idx))
    _done(sec, p)


def _start(m: Module, sec: Section) -> None:
    m.start, p = u32(m.data, sec.start)
    _done(sec, p)


def _code(m: Module, sec: Section) -> None:
    b = m.data
    n, p = u32(b, sec.start)
    first = m.imported_funcs
    for i in range(n):
        size, p = u32(b, p)
        start, end = p, p + size
        if end > sec.end:
            raise WasmError("function body runs past the code section", p)
        groups, q = u32(b, p)
        decls = []
        for _ in range(groups):
            count, q = u32(b, q)
            decls.append((count, _valtype(b, q)))
            q += 1
        m.bodies.append(Body(first + i, start, q, end, decls))
        p = end
    _done(sec, p)


def _done(sec: Section, p: int) -> None:
    if p != sec.end:
        raise WasmError("section size mismatch", sec.header)


_PARSERS = {
    SEC_TYPE: _types,
    SEC_IMPORT: _imports,
    SEC_FUNCTION: _functions,
    SEC_TABLE: _tables,
    SEC_MEMORY: _memories,
    SEC_GLOBAL: _globals,
    SEC_EXPORT: _exports,
    SEC_START: _start,
    SEC_CODE: _code,
}


def _function_names(b: bytes, sec: Section) -> dict[int, str]:
    n, p = u32(b, sec.start)
    p += n
    names: dict[int, str] = {}
    while p < sec.end:
        sub = b[p]
        size, p = u32(b, p + 1)
        end = p + size
        if sub == 1:
            count, q = u32(b, p)
            for _ in range(count):
                idx, q = u32(b, q)
                ln, q = u32(b, q)
                names[idx] = b[q : q + ln].decode("utf-8")
                q += ln
        p = end
    if any(n.startswith(("_ZN", "__ZN")) for n in names.values()):  # Rust, C++
        from .demangle import demangle_all

        names = demangle_all(names)
    return names


def check_opcode(op: int, offset: int) -> None:
    feature = UNSUPPORTED.get(op)
    if feature:
        raise NotSupported(feature, offset)
    raise WasmError(f"illegal opcode {op:#x}", offset)


def extend_section(
    b: bytes,
    sec: Section | None,
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
