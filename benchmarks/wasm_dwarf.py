"""How fast probe reads a Wasm module's DWARF line tables (engines/wasm/dwarf.py).

    python benchmarks/wasm_dwarf.py [--functions 12000] [--module PATH]

Builds a C program of many small functions with clang -g -O0 for wasm32-wasi (about 10 MB
of module at the default size; Debian: clang lld wasi-libc libclang-rt-14-dev-wasm32), or
reads the module given, and prints the module's size, its .debug_line size, the rows, and
the time to parse the module and read its tables (median of 5), beside llvm-dwarfdump's
time to print the same tables where it is installed. Goal: a 10 MB module in 3 s.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from probe.engines.wasm import binary, dwarf

FUNCTION = """int f{i}(int n) {{
    int s = {i};
    for (int k = 0; k < n; k++) {{
        if (k % 3 == 0) s += k * {m};
        else if (k % 5 == 0) s -= k;
        else s ^= k << 1;
    }}
    switch (n & 3) {{
    case 0: s += 1; break;
    case 1: s += 2; break;
    default: s += 3;
    }}
    return s;
}}
"""


def build(functions: int, where: Path) -> Path:
    source = where / "big.c"
    calls = "".join(f"    t += f{i}(n);\n" for i in range(functions))
    source.write_text(
        "#include <stdio.h>\n#include <stdlib.h>\n"
        + "".join(FUNCTION.format(i=i, m=i % 7 + 1) for i in range(functions))
        + "int main(int argc, char **argv) {\n    int n = argc > 1 ? atoi(argv[1]) : 3;\n"
        + f'    long t = 0;\n{calls}    printf("%ld\\n", t);\n    return 0;\n}}\n'
    )
    module = where / "big.wasm"
    subprocess.run(
        ["clang", "--target=wasm32-wasi", "-g", "-O0", str(source), "-o", str(module)],
        check=True,
    )
    return module


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--functions", type=int, default=12000)
    parser.add_argument("--module", type=Path)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        module = args.module or build(args.functions, Path(tmp))
        data = module.read_bytes()
        times = []
        for _ in range(5):
            t0 = time.perf_counter()
            table = dwarf.read(binary.parse(data))
            times.append(time.perf_counter() - t0)
        if table is None:
            raise SystemExit(f"{module}: no .debug_line")
        parsed = binary.parse(data)
        line = next(s for s in parsed.sections if s.id == 0 and s.name == ".debug_line")
        took = statistics.median(times)
        lines_mb = (line.end - line.start) / 1e6
        print(f"module {len(data) / 1e6:.1f} MB, .debug_line {lines_mb:.2f} MB")
        print(f"rows {len(table):,}, files {len(table.files)}")
        print(f"probe: {took:.3f} s (median of 5), {len(table) / took / 1e6:.2f} M rows/s")
        if shutil.which("llvm-dwarfdump"):
            t0 = time.perf_counter()
            subprocess.run(
                ["llvm-dwarfdump", "--debug-line", str(module)],
                stdout=subprocess.DEVNULL,
                check=True,
            )
            theirs = time.perf_counter() - t0
            print(f"llvm-dwarfdump --debug-line (C++, printing): {theirs:.3f} s")


if __name__ == "__main__":
    main()
