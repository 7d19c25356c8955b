"""What a cached `probe run` of a small Wasm module costs over plain wasmtime-py, in wall time.

    python benchmarks/wasm_startup.py [--rounds 15]

Issue 15, item 6: a cached Wasm run within 0.1 s of plain wasmtime-py. Per module, each
round runs, interleaved, as separate processes:

- plain: wasmtime-py as a user writes it (tests/plain_wasmtime.py), compiling the module;
- plain, precompiled: wasmtime-py loading a module it serialized before (its best case);
- probe coverage: `probe run -a coverage` from its cache, printing its summary;
- probe coverage -q: the same without the summary.

probe hands each run to a background ingester; the benchmark waits for it between runs, so
that one run's ingest doesn't slow the next. Prints medians and probe's difference to each
plain one, in milliseconds.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import wasmtime

from probe.storage.spool import ingester_active

HERE = Path(__file__).parent
SAMPLES = HERE.parent / "samples" / "wasm"
PLAIN = HERE.parent / "tests" / "plain_wasmtime.py"
EMPTY = '(module (memory (export "memory") 1) (func (export "_start")))'
PRECOMPILED = """import sys, wasmtime
engine = wasmtime.Engine()
store = wasmtime.Store(engine)
wasi = wasmtime.WasiConfig()
wasi.argv = ["m", *sys.argv[2:]]
wasi.inherit_stdin(); wasi.inherit_stdout(); wasi.inherit_stderr()
store.set_wasi(wasi)
linker = wasmtime.Linker(engine)
linker.define_wasi()
module = wasmtime.Module.deserialize_file(engine, sys.argv[1])
try:
    linker.instantiate(store, module).exports(store)["_start"](store)
except wasmtime.ExitTrap as e:
    sys.exit(e.code)
"""


def settle(db: str) -> None:
    """Wait for the background ingest of the runs so far."""
    while ingester_active(db):
        time.sleep(0.01)


def timed(cmd: list[str], env: dict[str, str], db: str) -> float:
    settle(db)  # the last run's ingest, done before this one starts
    t0 = time.perf_counter()
    quiet = subprocess.DEVNULL  # the summary too (stderr): its time is in, not its terminal's
    subprocess.run(cmd, env=env, stdin=quiet, stdout=quiet, stderr=quiet, check=True)
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=15)
    args = ap.parse_args()
    probe = [sys.executable, "-m", "probe", "run"]
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        (work / "empty.wasm").write_bytes(wasmtime.wat2wasm(EMPTY))
        modules = {"empty": work / "empty.wasm"}
        modules |= {name: SAMPLES / f"{name}.wasm" for name in ("echo", "wc", "calc")}
        argv = {"empty": [], "echo": ["x"], "wc": [], "calc": ["20"]}  # wc reads stdin: none
        (work / "precompiled.py").write_text(PRECOMPILED)
        db = str(work / "p.duckdb")
        env = {**os.environ, "PROBE_DB": db, "PROBE_CACHE": str(work / "cache")}
        env.pop("PYTHONDONTWRITEBYTECODE", None)  # as installed: compiled once, not each run
        configs = {}
        for name, path in modules.items():
            serialized = work / f"{name}.cwasm"
            engine = wasmtime.Engine()
            serialized.write_bytes(wasmtime.Module.from_file(engine, str(path)).serialize())
            configs[name] = {
                "plain": [sys.executable, str(PLAIN), str(path), "--", *argv[name]],
                "plain, precompiled": [
                    sys.executable,
                    str(work / "precompiled.py"),
                    str(serialized),
                    *argv[name],
                ],
                "probe coverage": [*probe, "-a", "coverage", str(path), *argv[name]],
                "probe coverage -q": [*probe, "-q", "-a", "coverage", str(path), *argv[name]],
            }
            for cmd in configs[name].values():  # warm: the OS's file cache, probe's cache
                timed(cmd, env, db)
        times = {m: {c: [] for c in cs} for m, cs in configs.items()}
        for _ in range(args.rounds):
            for m, cs in configs.items():
                for c, cmd in cs.items():
                    times[m][c].append(timed(cmd, env, db))
        settle(db)
    print(f"Python {sys.version.split()[0]}, medians of {args.rounds} interleaved rounds (ms)\n")
    print(
        "| module | plain | plain, precompiled | probe coverage | over plain "
        "| probe coverage -q | over plain |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|")
    for m, by in times.items():
        med = {c: statistics.median(v) * 1000 for c, v in by.items()}
        print(
            f"| {m} | {med['plain']:.0f} | {med['plain, precompiled']:.0f} "
            f"| {med['probe coverage']:.0f} | {med['probe coverage'] - med['plain']:+.0f} "
            f"| {med['probe coverage -q']:.0f} | {med['probe coverage -q'] - med['plain']:+.0f} |"
        )


if __name__ == "__main__":
    main()
