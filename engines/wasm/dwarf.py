"""Source lines of a Wasm module's code, from its DWARF line tables (``.debug_line``).

clang (``-g``) and rustc write DWARF 4 or 5 into custom sections. In Wasm, an address is a
byte offset into the Code section's contents (the first byte after the section's size), so
a site's offset in the file maps to ``offset - code_start``. A line table is a program for a
state machine whose rows say "from this address on, file F, line L, column C"; each row holds
until the next row of its sequence, and a sequence's last row (end_sequence) closes it.

Our own reader, not pyelftools: only the line program and the compile unit's directory are
needed, and a pure-Python decoder of the rows in one pass, into flat arrays, is what keeps a
10 MB module's tables within a few seconds (see benchmarks).
"""

from __future__ import annotations

import bisect
import os
import struct
from array import array

from .binary import SEC_CODE, Module, WasmError, sleb
from .binary import u32 as _uleb  # DWARF's ULEB128s in a wasm32 module fit in 32 bits

NO_FILE = 0xFFFFFFFF  # a gap: no source line from here to the next row

# DW_FORM_* sizes where fixed (DWARF32, 4-byte addresses, as wasm32 is): form -> bytes.
_FIXED = {
    0x01: 4, 0x05: 2, 0x06: 4, 0x07: 8, 0x0B: 1, 0x0C: 1, 0x0E: 4, 0x10: 4, 0x11: 1, 0x12: 2,
    0x13: 4, 0x14: 8, 0x17: 4, 0x19: 0, 0x1C: 4, 0x1D: 4, 0x1E: 16, 0x1F: 4, 0x20: 8, 0x21: 0,
    0x24: 8, 0x25: 1, 0x26: 2, 0x27: 3, 0x28: 4, 0x29: 1, 0x2A: 2, 0x2B: 3, 0x2C: 4,
}  # fmt: skip
_ULEB_FORMS = {0x0F, 0x15, 0x1A, 0x1B, 0x22, 0x23}  # udata, ref_udata, strx, addrx, *listx
_STRX = {0x1A: 0, 0x25: 1, 0x26: 2, 0x27: 3, 0x28: 4}  # form -> fixed size (0: uleb)

DW_AT_stmt_list, DW_AT_comp_dir, DW_AT_str_offsets_base = 0x10, 0x1B, 0x72
DW_LNCT_path, DW_LNCT_directory_index = 1, 2


class SourceLines:
    """The rows of every line table of a module: ``at(offset)`` is the (file, line, column)
    of the instruction at that code offset (None: no source line), ``lines(start, end)``
    every (file, line) of the instructions in a range."""

    __slots__ = ("files", "address", "file", "line", "column", "code_start")

    def __init__(self, code_start: int) -> None:
        self.code_start = code_start  # file offset of the Code section's contents
        self.files: list[str] = []  # paths, by the index the rows use
        self.address = array("I")  # file offsets, ascending; each row holds until the next
        self.file = array("I")  # NO_FILE: a gap
        self.line = array("I")
        self.column = array("I")

    def __len__(self) -> int:
        return len(self.address)

    def at(self, offset: int) -> tuple[str, int, int] | None:
        i = bisect.bisect_right(self.address, offset) - 1
        if i < 0 or self.file[i] == NO_FILE or not self.line[i]:
            return None
        return self.files[self.file[i]], self.line[i], self.column[i]

    def lines(self, start: int, end: int) -> dict[tuple[str, int], int]:
        """(file, line) of every row that holds somewhere in [start, end) of the file, with
        the offset where it first does."""
        i = max(bisect.bisect_right(self.address, start) - 1, 0)
        j = bisect.bisect_left(self.address, end)
        found: dict[tuple[str, int], int] = {}
        address, last = self.address, len(self.address) - 1
        for k in range(i, j):
            f, n = self.file[k], self.line[k]
            at = max(address[k], start)
            # a row holds until the next; one at the same address as the next holds nowhere
            if f != NO_FILE and n and k < last and address[k + 1] > at:
                found.setdefault((self.files[f], n), at)
        return found

    def sorted(self) -> SourceLines:
        """Sequences come in any order: the rows by address, a sequence's end before a row
        that starts the next at the same address."""
        order = sorted(
            range(len(self.address)),
            key=lambda k: (self.address[k], self.file[k] != NO_FILE),
        )
        for name in ("address", "file", "line", "column"):
            old = getattr(self, name)
            setattr(self, name, array(old.typecode, (old[k] for k in order)))
        return self


def read(module: Module) -> SourceLines | None:
    """The module's line tables (None: no ``.debug_line``, or no code)."""
    sections = {s.name: module.data[s.start : s.end] for s in module.sections if s.id == 0}
    code = module.section(SEC_CODE)
    debug_line = sections.get(".debug_line")
    if debug_line is None or code is None:
        return None
    # A custom section's contents start after its name.
    payload = {name: _after_name(raw) for name, raw in sections.items() if name}
    table = SourceLines(code.start)
    comp_dirs = _comp_dirs(payload)
    reader = _LineReader(payload, table, comp_dirs)
    try:
        reader.read_all(payload[".debug_line"])
    except (IndexError, struct.error, UnicodeDecodeError) as e:
        raise WasmError(f"malformed .debug_line: {e}", code.header) from None
    return table.sorted()


def _after_name(raw: bytes) -> bytes:
    n, p = _uleb(raw, 0)
    return raw[p + n :]


def _sleb(b: bytes, p: int) -> tuple[int, int]:
    return sleb(b, p, 64)


def _cstr(b: bytes, p: int) -> tuple[str, int]:
    end = b.index(0, p)
    return b[p:end].decode("utf-8", "replace"), end + 1


def _str_at(section: bytes | None, offset: int) -> str:
    if section is None:
        return ""
    return _cstr(section, offset)[0]


def _comp_dirs(payload: dict[str, bytes]) -> dict[int, str]:
    """Each compile unit's directory, by the offset of its line table (DWARF 4 names the
    files of that directory by directory index 0, which its line table does not hold)."""
    info, abbrev = payload.get(".debug_info"), payload.get(".debug_abbrev")
    found: dict[int, str] = {}
    if info is None or abbrev is None:
        return found
    p = 0
    try:
        while p + 11 <= len(info):
            length = struct.unpack_from("<I", info, p)[0]
            if length >= 0xFFFFFFF0:
                break  # DWARF64: not written for wasm32
            end = p + 4 + length
            version = struct.unpack_from("<H", info, p + 4)[0]
            if version >= 5:
                abbrev_at, q = struct.unpack_from("<I", info, p + 8)[0], p + 12
            else:
                abbrev_at, q = struct.unpack_from("<I", info, p + 6)[0], p + 11
            attrs = _first_die(info, q, abbrev, abbrev_at)
            stmt = attrs.get(DW_AT_stmt_list)
            comp = attrs.get(DW_AT_comp_dir)
            if stmt is not None and comp is not None:
                found[stmt[1]] = _string(comp, attrs, info, payload)
            p = end
    except (IndexError, struct.error, KeyError, ValueError, WasmError):
        pass  # a unit we can't read leaves its files relative, as written
    return found


def _first_die(info: bytes, p: int, abbrev: bytes, at: int) -> dict[int, tuple[int, int]]:
    """The compile unit DIE's attributes: attribute -> (form, raw value)."""
    code, p = _uleb(info, p)
    q = at
    while True:  # find the abbreviation's declaration
        number, q = _uleb(abbrev, q)
        if number == 0:
            raise KeyError(code)
        _tag, q = _uleb(abbrev, q)
        q += 1  # has children
        specs = []
        while True:
            name, q = _uleb(abbrev, q)
            form, q = _uleb(abbrev, q)
            if form == 0x21:
                _, q = _sleb(abbrev, q)
            if name == 0 and form == 0:
                break
            specs.append((name, form))
        if number == code:
            break
    attrs: dict[int, tuple[int, int]] = {}
    for name, form in specs:
        while form == 0x16:  # indirect
            form, p = _uleb(info, p)
        if form == 0x08:
            end = info.index(0, p)
            attrs[name] = (form, p)
            p = end + 1
        elif form in _FIXED:
            size = _FIXED[form]
            attrs[name] = (form, int.from_bytes(info[p : p + size], "little"))
            p += size
        elif form in _ULEB_FORMS:
            value, p = _uleb(info, p)
            attrs[name] = (form, value)
        elif form == 0x0D:
            value, p = _sleb(info, p)
            attrs[name] = (form, value)
        elif form in (0x09, 0x18):  # block, exprloc
            n, p = _uleb(info, p)
            p += n
        elif form in (0x0A, 0x03, 0x04):  # block1, block2, block4
            size = {0x0A: 1, 0x03: 2, 0x04: 4}[form]
            p += size + int.from_bytes(info[p : p + size], "little")
        else:
            raise ValueError(f"unknown form {form:#x}")
    return attrs


def _string(
    attr: tuple[int, int], attrs: dict[int, tuple[int, int]], info: bytes,
    payload: dict[str, bytes],
) -> str:  # fmt: skip
    form, value = attr
    if form == 0x08:
        return _cstr(info, value)[0]
    if form == 0x0E:
        return _str_at(payload.get(".debug_str"), value)
    if form == 0x1F:
        return _str_at(payload.get(".debug_line_str"), value)
    if form in _STRX:
        base = attrs.get(DW_AT_str_offsets_base, (0, 8))[1]
        offsets = payload[".debug_str_offsets"]
        at = struct.unpack_from("<I", offsets, base + 4 * value)[0]
        return _str_at(payload.get(".debug_str"), at)
    raise ValueError(f"not a string form {form:#x}")


class _LineReader:
    def __init__(self, payload: dict[str, bytes], table: SourceLines, comp_dirs: dict[int, str]):
        self.payload = payload
        self.table = table
        self.comp_dirs = comp_dirs
        self.file_ids: dict[str, int] = {}

    def read_all(self, data: bytes) -> None:
        p = 0
        while p < len(data):
            p = self.unit(data, p)

    def _file_id(self, path: str) -> int:
        fid = self.file_ids.get(path)
        if fid is None:
            fid = self.file_ids[path] = len(self.table.files)
            self.table.files.append(path)
        return fid

    def unit(self, b: bytes, start: int) -> int:
        length = struct.unpack_from("<I", b, start)[0]
        if length >= 0xFFFFFFF0:  # DWARF64, which no wasm32 toolchain writes, or garbage
            raise struct.error(f"unit at {start:#x}: length {length:#x} is not DWARF32's")
        p = start + 4
        end = p + length
        if end > len(b):
            raise struct.error(f"unit at {start:#x} runs past the section's end")
        version = struct.unpack_from("<H", b, p)[0]
        p += 2
        if version >= 5:
            p += 2  # address_size, segment_selector_size
        header_length = struct.unpack_from("<I", b, p)[0]
        p += 4
        program = p + header_length
        min_inst = b[p]
        p += 1
        if version >= 4:
            p += 1  # maximum_operations_per_instruction: 1 outside VLIW
        default_stmt = b[p]
        line_base = struct.unpack_from("<b", b, p + 1)[0]
        line_range, opcode_base = b[p + 2], b[p + 3]
        lengths = b[p + 4 : p + 4 + opcode_base - 1]
        p += 4 + opcode_base - 1
        comp_dir = self.comp_dirs.get(start, "")
        if version >= 5:
            files = self._v5_files(b, p, comp_dir)
        else:
            files = self._v4_files(b, p, comp_dir)
        self._program(b, program, end, files, min_inst, line_base, line_range, opcode_base,
                      lengths, default_stmt)  # fmt: skip
        return end

    def _v4_files(self, b: bytes, p: int, comp_dir: str) -> dict[int, int]:
        dirs = [comp_dir]
        while b[p]:
            d, p = _cstr(b, p)
            dirs.append(os.path.join(comp_dir, d))
        p += 1
        files: dict[int, int] = {}
        index = 1
        while b[p]:
            name, p = _cstr(b, p)
            d, p = _uleb(b, p)
            _, p = _uleb(b, p)  # modification time
            _, p = _uleb(b, p)  # length
            files[index] = self._file_id(_join(dirs[d] if d < len(dirs) else "", name))
            index += 1
        return files

    def _v5_files(self, b: bytes, p: int, comp_dir: str) -> dict[int, int]:
        dirs, p = self._entries(b, p)
        directories = [e.get(DW_LNCT_path, "") for e in dirs]
        if directories and not os.path.isabs(directories[0]) and comp_dir:
            directories[0] = os.path.join(comp_dir, directories[0])
        names, _ = self._entries(b, p)
        files: dict[int, int] = {}
        for index, e in enumerate(names):
            d = e.get(DW_LNCT_directory_index, 0)
            where = directories[d] if isinstance(d, int) and d < len(directories) else ""
            path = _join(where, e[DW_LNCT_path])
            if not os.path.isabs(path) and directories:
                path = _join(directories[0], path)
            files[index] = self._file_id(path)
        return files

    def _entries(self, b: bytes, p: int) -> tuple[list[dict[int, object]], int]:
        count = b[p]
        p += 1
        formats = []
        for _ in range(count):
            kind, p = _uleb(b, p)
            form, p = _uleb(b, p)
            formats.append((kind, form))
        n, p = _uleb(b, p)
        entries = []
        for _ in range(n):
            entry: dict[int, object] = {}
            for kind, form in formats:
                if form == 0x08:
                    value, p = _cstr(b, p)
                elif form == 0x1F:
                    value = _str_at(self.payload.get(".debug_line_str"), _u32(b, p))
                    p += 4
                elif form == 0x0E:
                    value = _str_at(self.payload.get(".debug_str"), _u32(b, p))
                    p += 4
                elif form in (0x0F,):
                    value, p = _uleb(b, p)
                elif form in _FIXED:
                    size = _FIXED[form]
                    value = int.from_bytes(b[p : p + size], "little")
                    p += size
                elif form == 0x09:
                    size, p = _uleb(b, p)
                    value, p = b[p : p + size], p + size
                else:
                    raise struct.error(f"unknown form {form:#x} in a line table header")
                entry[kind] = value
            entries.append(entry)
        return entries, p

    def _program(
        self, b: bytes, p: int, end: int, files: dict[int, int], min_inst: int,
        line_base: int, line_range: int, opcode_base: int, lengths: bytes, default_stmt: int,
    ) -> None:  # fmt: skip
        # The hot loop of the reader: locals only, rows appended to flat arrays, each row's
        # four appends written out where it is made (a helper's call a row costs ~20%).
        t = self.table
        out_addr, out_file, out_line, out_col = t.address, t.file, t.line, t.column
        base = t.code_start
        limit = t.code_start + 0xFFFFFFF0  # tombstones of code the linker dropped
        address, file, line, column = 0, 1, 1, 0
        dead = False
        while p < end:
            op = b[p]
            p += 1
            if op >= opcode_base:
                adjusted = op - opcode_base
                address += (adjusted // line_range) * min_inst
                line += line_base + adjusted % line_range
                if not dead:
                    out_addr.append(base + address)
                    out_file.append(files.get(file, NO_FILE))
                    out_line.append(line)
                    out_col.append(column)
            elif op == 0:
                size, p = _uleb(b, p)
                sub = b[p]
                if sub == 1:  # end_sequence: the range closes here
                    if not dead:
                        out_addr.append(base + address)
                        out_file.append(NO_FILE)
                        out_line.append(0)
                        out_col.append(0)
                    address, file, line, column, dead = 0, 1, 1, 0, False
                elif sub == 2:  # set_address
                    address = int.from_bytes(b[p + 1 : p + size], "little")
                    dead = address == 0 or base + address >= limit or address >= 0xFFFFFFF0
                    # lld writes 0 (DWARF 4) or -1/-2 (5) where it dropped a function's code
                p += size
            elif op == 1:  # copy
                if not dead:
                    out_addr.append(base + address)
                    out_file.append(files.get(file, NO_FILE))
                    out_line.append(line)
                    out_col.append(column)
            elif op == 2:
                n, p = _uleb(b, p)
                address += n * min_inst
            elif op == 3:
                n, p = _sleb(b, p)
                line += n
            elif op == 4:
                file, p = _uleb(b, p)
            elif op == 5:
                column, p = _uleb(b, p)
            elif op == 8:
                address += ((255 - opcode_base) // line_range) * min_inst
            elif op == 9:
                address += b[p] | b[p + 1] << 8
                p += 2
            else:  # negate_stmt, basic_block, prologue/epilogue, isa: nothing a line needs
                for _ in range(lengths[op - 1]):
                    _, p = _uleb(b, p)


def _u32(b: bytes, p: int) -> int:
    return b[p] | b[p + 1] << 8 | b[p + 2] << 16 | b[p + 3] << 24


def _join(directory: object, name: object) -> str:
    return os.path.normpath(os.path.join(str(directory), str(name))) if directory else str(name)
