"""How long `probe report coverage --format html` takes for a project of many source files.

    python benchmarks/html_report.py [--files 500] [--rounds 3]

Issue 15, item 5: HTML for a project of 500 files in 5 s. Two projects of ``--files`` files,
each file ten small functions with a loop and a branch, a main that calls some of them:

- C, built with clang -g -O0 for wasm32-wasi (Debian: clang lld wasi-libc
  libclang-rt-14-dev-wasm32): probe's own HTML of source lines, from the module's DWARF;
- Python: probe's HTML is coverage.py's reporter fed probe's data, so beside it the time of
  `coverage html` on coverage.py's own run of the same program.

Both with branches. Prints the median of the rounds, in seconds, per report.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

C_FUNCTION = """int f{i}_{j}(int n) {{
    int s = {j};
    for (int k = 0; k < n; k++) {{
        if (k % 3 == 0)
            s += k;
        else
            s -= 1;
    }}
    return s;
}}
"""
PY_FUNCTION = """def f{i}_{j}(n):
    s = {j}
    for k in range(n):
        if k % 3 == 0:
            s += k
        else:
            s -= 1
    return s


"""


def c_project(work: Path, files: int) -> Path:
    src = work / "c"
    src.mkdir()
    for i in range(files):
        (src / f"m{i:03d}.c").write_text("".join(C_FUNCTION.format(i=i, j=j) for j in range(10)))
    calls = "".join(f"    t += f{i}_{j}(argc + {j});\n" for i in range(files) for j in (0, 5))
    decls = "".join(f"int f{i}_{j}(int);\n" for i in range(files) for j in (0, 5))
    main = f"#include <stdio.h>\n{decls}int main(int argc, char **argv) {{\n    int t = 0;\n"
    (src / "main.c").write_text(main + calls + '    printf("%d\\n", t);\n    return 0;\n}\n')
    cc = ["clang", "--target=wasm32-wasi", "-g", "-O0"]
    sources = sorted(str(p) for p in src.glob("*.c"))
    half = len(sources) // 2  # two compilers at once: the machine's two cores
    procs = [
        subprocess.Popen([*cc, "-c", *part], cwd=src) for part in (sources[:half], sources[half:])
    ]
    if any(p.wait() for p in procs):
        sys.exit("clang failed")
    subprocess.run(
        [*cc, *sorted(str(p) for p in src.glob("*.o")), "-o", "app.wasm"], cwd=src, check=True
    )
    return src / "app.wasm"


def py_project(work: Path, files: int) -> Path:
    src = work / "py"
    (src / "pkg").mkdir(parents=True)
    (src / "pkg" / "__init__.py").write_text("")
    for i in range(files):
        text = "".join(PY_FUNCTION.format(i=i, j=j) for j in range(10))
        (src / "pkg" / f"m{i:03d}.py").write_text(text)
    (src / "main.py").write_text(
        "import importlib\n"
        f"for i in range({files}):\n"
        "    m = importlib.import_module(f'pkg.m{i:03d}')\n"
        "    m.__dict__[f'f{i}_0'](5)\n"
        "    m.__dict__[f'f{i}_5'](7)\n"
    )
    return src / "main.py"


def timed(cmd: list[str], cwd: Path, env: dict[str, str]) -> float:
    t0 = time.perf_counter()
    subprocess.run(cmd, cwd=cwd, env=env, check=True, capture_output=True)
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--files", type=int, default=500)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    probe = [sys.executable, "-m", "probe"]
    report = [*probe, "report", "coverage", "--format", "html", "-o", "html"]
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        env = {**os.environ, "PROBE_CACHE": str(work / "cache")}
        env_c = {**env, "PROBE_DB": str(work / "c.duckdb")}  # a database each: a report
        env_py = {**env, "PROBE_DB": str(work / "py.duckdb")}  # shows the latest run
        run = [*probe, "run", "-q", "--branch", "-a", "coverage"]
        cases: dict[str, tuple[list[str], Path, dict[str, str]]] = {}
        if shutil.which("clang"):
            module = c_project(work, args.files)
            timed([*run, str(module)], module.parent, env_c)
            cases["C to Wasm, probe html"] = (report, module.parent, env_c)
        else:
            print("no clang: the C project is left out")
        program = py_project(work, args.files)
        timed([*run, "main.py"], program.parent, env_py)
        timed([sys.executable, "-m", "coverage", "run", "--branch", "main.py"], program.parent, env)
        cases["Python, probe html"] = (report, program.parent, env_py)
        coverage = [sys.executable, "-m", "coverage", "html", "-d", "chtml"]
        cases["Python, coverage html"] = (coverage, program.parent, env)
        # The runs stored before any report is timed (a report waits for its run's ingest).
        for e in (env_c, env_py):
            timed([*probe, "runs"], work, e)
        times: dict[str, list[float]] = {name: [] for name in cases}
        for _ in range(args.rounds):
            for name, (cmd, cwd, e) in cases.items():
                out = cwd / ("chtml" if cmd is coverage else "html")
                shutil.rmtree(out, ignore_errors=True)  # coverage.py skips pages it finds unchanged
                times[name].append(timed(cmd, cwd, e))
        pages = len(list((work / "py" / "html").glob("*.html")))
    print(f"{args.files} source files ({pages} pages in Python's report), "
          f"median of {args.rounds} rounds, Python {sys.version.split()[0]}\n")  # fmt: skip
    print("| report | seconds |\n|---|---:|")
    for name, values in times.items():
        print(f"| {name} | {statistics.median(values):.2f} |")


if __name__ == "__main__":
    main()
