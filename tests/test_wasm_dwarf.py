"""DWARF line tables of Wasm modules (engines/wasm/dwarf.py), read from modules clang builds
here, held row for row to LLVM's own reader (llvm-dwarfdump) and to wasm-tools addr2line."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
from conftest import SAMPLES

from probe.engines.wasm import binary, dwarf

TOOLS = ("clang", "wasm-ld", "llvm-dwarfdump")
missing = [t for t in TOOLS if shutil.which(t) is None]
pytestmark = pytest.mark.skipif(
    bool(missing),
    reason=f"needs {', '.join(missing)} (Debian: clang lld llvm wasi-libc; .ci/run installs them)",
)


def build(tmp_path: Path, source: Path, *flags: str) -> Path:
    out = tmp_path / (source.stem + "".join(flags).replace("-", "_") + ".wasm")
    done = subprocess.run(
        ["clang", "--target=wasm32-wasi", "-O0", *flags, str(source), "-o", str(out)],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0 and "wasi" in done.stderr:
        pytest.skip(f"clang can't build for wasm32-wasi here: {done.stderr.strip()[-200:]}")
    assert done.returncode == 0, done.stderr
    return out


def llvm_rows(module: Path) -> list[tuple[int, str, int, int]]:
    """(code address, file's base name, line, column) of every row but a sequence's end, as
    llvm-dwarfdump prints them, where the code is live (not a dropped function's tombstone)."""
    out = subprocess.run(
        ["llvm-dwarfdump", "--debug-line", str(module)], capture_output=True, text=True, check=True
    ).stdout
    rows = []
    for unit in out.split("debug_line[")[1:]:
        names = {
            int(m.group(1)): m.group(2)
            for m in re.finditer(r'file_names\[\s*(\d+)\]:\s*\n\s*name: "([^"]*)"', unit)
        }
        for text in unit.splitlines():
            if not re.match(r"0x[0-9a-f]{16} ", text):
                continue
            w = text.split()
            address, line, column, file = int(w[0], 16), int(w[1]), int(w[2]), int(w[3])
            if "end_sequence" not in w[6:] and 0 < address < 0xFFFFFFF0:
                rows.append((address, Path(names[file]).name, line, column))
    return sorted(rows)


def our_rows(table: dwarf.SourceLines) -> list[tuple[int, str, int, int]]:
    return sorted(
        (a - table.code_start, Path(table.files[f]).name, n, c)
        for a, f, n, c in zip(table.address, table.file, table.line, table.column, strict=True)
        if f != dwarf.NO_FILE
    )


@pytest.mark.parametrize("version", ["-gdwarf-4", "-gdwarf-5"])
def test_rows_equal_llvm_dwarfdumps(tmp_path: Path, version: str) -> None:
    """Every row of every unit: the program's own (DWARF 4 or 5, as asked) and wasi-libc's
    (as Debian built it), whose code the linker placed around it."""
    module = build(tmp_path, SAMPLES / "wasm" / "wc.c", version)
    table = dwarf.read(binary.parse(module.read_bytes()))
    assert table is not None
    expected = llvm_rows(module)
    assert len(expected) > 1000
    assert our_rows(table) == expected
    wc = str((SAMPLES / "wasm" / "wc.c").resolve())
    assert wc in table.files  # the compile unit's directory joined to its file name


def test_an_address_names_its_file_and_line_as_addr2line_does(tmp_path: Path) -> None:
    module = build(tmp_path, SAMPLES / "wasm" / "wc.c", "-g")
    parsed = binary.parse(module.read_bytes())
    table = dwarf.read(parsed)
    code = parsed.section(binary.SEC_CODE)
    wc_rows = [r for r in our_rows(table) if r[1] == "wc.c" and r[2]]
    picked = wc_rows[:: max(len(wc_rows) // 12, 1)]
    addresses = [f"{a:#x}" for a, _, _, _ in picked]
    out = subprocess.run(
        ["wasm-tools", "addr2line", "--code-section-relative", str(module), *addresses],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()
    assert len(out) == len(addresses), out
    for (address, _, _, _), said in zip(picked, out, strict=True):
        file, line, column = table.at(code.start + address)
        # addr2line prints "0xADDR: function /path/file.c:LINE:COLUMN"
        assert said.endswith(f"{file}:{line}:{column}"), (said, file, line, column)


def test_lines_of_a_range_are_every_line_with_code_in_it(tmp_path: Path) -> None:
    module = build(tmp_path, SAMPLES / "wasm" / "wc.c", "-g")
    parsed = binary.parse(module.read_bytes())
    table = dwarf.read(parsed)
    main = next(b for b in parsed.bodies if parsed.func_name(b.index) == "main")
    lines = table.lines(main.start, main.end)
    wc = str((SAMPLES / "wasm" / "wc.c").resolve())
    source = (SAMPLES / "wasm" / "wc.c").read_text().splitlines()
    body = [n for f, n in lines if f == wc]
    first = next(i for i, text in enumerate(source, 1) if text.startswith("int main"))
    assert min(body) == first and max(body) == len(source) - source[::-1].index("}")
    assert {f for f, _ in lines} == {wc}  # nothing of libc's is in main's body
    assert table.lines(main.start, main.start) == {}


def test_a_module_without_debug_info_has_no_source_lines() -> None:
    assert dwarf.read(binary.parse((SAMPLES / "wasm" / "fib.wasm").read_bytes())) is None
    # Built without -g, wc.wasm still carries the line tables Debian's wasi-libc was built
    # with: lines of libc's files only.
    table = dwarf.read(binary.parse((SAMPLES / "wasm" / "wc.wasm").read_bytes()))
    assert table is not None and len(table) > 0
    assert not any(Path(f).name == "wc.c" for f in table.files)
