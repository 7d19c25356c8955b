"""What each analysis costs, alone and composed; switched-off probes; events into DuckDB.

    python benchmarks/analyses.py [--reps 3] [--wasm-scale 0.1] [--python PATH ...]
                                  [--parts wasm,points,events,python]

Wasm: each analysis's probes on the C kernels, run by the engine in this process exactly as
`probe run` does (rewrite from the cache, run, read back, journal to a scratch database), timed
from the start of the run to its closed journal, and divided by the plain module's run on the
same engine in the same round. The kernels run at a fraction of their ~2 s size (--wasm-scale)
(default 0.1: ~0.15 s plain) so that `trace`, an event per basic block, stays near a hundred
million events per run.

Python: `probe run -a NAME` as a subprocess against plain `python`, on three of the benchmark
programs at their small (QUICK) size, interleaved round by round.

Switched-off callback points: every Wasm block with a guarded host call that never fires,
against the same module with flags only (full size, ~2 s); every Python line with a dispatch
that finds no probe.

Events into DuckDB: `trace` on a kernel, split into the run (events written inline into the
ring, flushed to the journal as Arrow batches) and the ingest (one INSERT per run).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))

from python_coverage import QUICK, _has, _version, timed  # noqa: E402
from ratios import compile_probe, settle, table  # noqa: E402
from wasm_overhead import KERNELS, SCALES, quiet_stdout  # noqa: E402

from probe.analyses import Analysis  # noqa: E402

WASM_ANALYSES = ["coverage", "hotness", "branches", "calls", "memory", "trace"]
PY_ANALYSES = ["coverage", "hotness", "branches", "calls", "trace"]
# Three of the five coverage benchmark programs, at their small (QUICK) size: Python-level
# counting and tracing pay a callback per line, so the full size would take an hour per round.
PY_PROGRAMS = ["sieve.py", "interp.py", "textproc.py"]


class _Points(Analysis):
    """A stand-in analysis: callback points on every site of one class, none switched on."""

    name = "points"

    def __init__(self, event: str) -> None:
        super().__init__()
        self.event = event

    def probes(self, events):
        from probe.probes import Kind, Probe

        yield Probe(self.event, Kind.CALLBACK)


def _engine_run(target, analyses, db: str) -> float:
    from probe import recording

    t0 = time.perf_counter()
    with quiet_stdout():
        _, outcome = recording.run(target, analyses, db=db, summary=None)
    elapsed = time.perf_counter() - t0
    assert outcome.status == "ok", outcome
    settle(db)  # the detached ingest must not share the machine with the next measurement
    return elapsed


def wasm_analyses(reps: int, scale: float, work: Path) -> None:
    from probe.engines import Target
    from probe.engines.wasm import binary, runner
    from probe.engines.wasm.options import Options
    from probe.engines.wasm.rewrite import Plan, instrument

    engine = runner.make_engine(Options())
    import wasmtime

    plain = wasmtime.Module(engine, instrument(binary.parse(KERNELS.read_bytes()), Plan()).module)
    sizes = {k: str(max(1, round(n * scale))) for k, n in SCALES.items()}
    configs = [*WASM_ANALYSES, "all"]
    times = {k: {c: [] for c in ["plain", *configs]} for k in sizes}
    db = str(work / "wasm.duckdb")
    for rep in range(reps + 1):  # round 0 fills the rewrite and compile caches: not counted
        for k, n in sizes.items():
            opts = Options(args=[k, n])
            with quiet_stdout():
                t0 = time.perf_counter()
                runner.run(engine, plain, "kernels.wasm", opts)
                dt = time.perf_counter() - t0
            if rep:
                times[k]["plain"].append(dt)
            for c in configs:
                chosen = WASM_ANALYSES if c == "all" else [c]
                dt = _engine_run(Target(str(KERNELS), args=[k, n]), chosen, db)
                if rep:
                    times[k][c].append(dt)
    events = _events_per_run(db)
    _table("Wasm: analyses alone and composed (ratio to the plain module)", times, configs)
    print(
        f"\ntrace wrote {events:,.0f} events per kernel run on average (at --wasm-scale {scale})."
    )


def _ingest(db: str) -> float:
    from probe.storage import Database

    t0 = time.perf_counter()
    with Database(db):
        pass
    return time.perf_counter() - t0


def _events_per_run(db: str) -> float:
    from probe.storage import Database

    with Database(db) as d:
        row = d.execute(
            "SELECT avg(n) FROM (SELECT run_id, count(*) AS n FROM events GROUP BY 1)"
        ).fetchone()
    return float(row[0] or 0)


def _table(title: str, times: dict, configs: list[str]) -> None:
    print(f"\n### {title}\n")
    chosen = {prog: {c: row[c] for c in ["plain", *configs]} for prog, row in times.items()}
    print(table(chosen, base_digits=3))


def wasm_points(reps: int) -> None:
    """Guarded callback points on every block, all off, at full kernel size."""
    import wasmtime

    from probe.engines.wasm import binary, runner
    from probe.engines.wasm.options import Options
    from probe.engines.wasm.rewrite import Plan, instrument
    from probe.probes import Kind

    m = binary.parse(KERNELS.read_bytes())
    engine = runner.make_engine(Options())
    plans = {
        "plain": Plan(),
        "block flags": Plan(func=Kind.FLAG, block=Kind.FLAG),
        "block flags + switched-off points": Plan(
            func=Kind.FLAG, block=Kind.FLAG, callbacks=("block",)
        ),
    }
    built = {}
    for name, plan in plans.items():
        r = instrument(m, plan)
        built[name] = (wasmtime.Module(engine, r.module), r.deferred_start, plan, len(r.sites))
    times = {k: {c: [] for c in plans} for k in SCALES}
    host = {"hit": (["i32", "i64"], lambda site, value: None)}
    for _ in range(reps):
        for k, n in SCALES.items():
            opts = Options(args=[k, str(n)])
            for c, (module, start, plan, _) in built.items():
                funcs = host if plan.callbacks else None
                export = "probe:memory" if plan.any() else None
                with quiet_stdout():
                    t0 = time.perf_counter()
                    runner.run(
                        engine, module, "kernels.wasm", opts,
                        deferred_start=start, probe_export=export, host_funcs=funcs,
                    )  # fmt: skip
                    times[k][c].append(time.perf_counter() - t0)
    configs = [c for c in plans if c != "plain"]
    _table("Wasm: switched-off callback points on every block (full size)", times, configs)
    extra = [
        statistics.median(times[k][configs[1]]) / statistics.median(times[k][configs[0]])
        for k in SCALES
    ]
    print(
        "\nA switched-off point (load + branch) on every block: "
        f"**{statistics.median(extra):.2f}x** the flags-only module, median over the kernels."
    )


def events_rate(work: Path) -> None:
    from probe.engines import Target

    db = str(work / "events.duckdb")
    target = Target(str(KERNELS), args=["matmul", "20"])
    _engine_run(target, ["trace"], db)  # warm the caches
    _ingest(db)
    shutil.rmtree(work / "events.duckdb.spool", ignore_errors=True)
    os.remove(db)
    from probe import recording

    with quiet_stdout():
        t0 = time.perf_counter()
        recording.run(target, ["trace"], db=db, summary=None)
        run_s = time.perf_counter() - t0
    ingest_s = _ingest(db)  # races the detached ingest for the lock: either does the work
    n = _events_per_run(db)
    print("\n### Events from a Wasm loop into DuckDB (trace of every block, matmul 20)\n")
    print(
        f"{n:,.0f} events: run + journal {run_s:.2f} s (**{n / run_s / 1e6:.1f} M events/s**), "
        f"ingest into DuckDB {ingest_s:.2f} s (**{n / ingest_s / 1e6:.1f} M events/s**); "
        f"end to end **{n / (run_s + ingest_s) / 1e6:.1f} M events/s**."
    )


def python_analyses(python: str, reps: int, work: Path) -> None:
    major, minor = _version(python)
    compile_probe(python)
    scales = {p: QUICK[p] for p in PY_PROGRAMS}
    for prog in scales:
        shutil.copy(HERE / "programs" / prog, work / prog)
    db = str(work / "py.duckdb")
    configs = [*PY_ANALYSES, "all", "switched-off line points"]
    points = work / "points.py"
    points.write_text(
        "import sys\n"
        f"sys.path.insert(0, {str(HERE)!r})\n"
        "from analyses import _Points\n"
        "from probe import recording\n"
        "from probe.engines import Target\n"
        "_, o = recording.run(Target(sys.argv[1], args=sys.argv[2:]), [_Points('line')],\n"
        f"                 db={db!r}, summary=None)\n"
        "raise SystemExit(o.exit_code)\n"
    )
    times = {p: {c: [] for c in ["plain", *configs]} for p in scales}
    for _ in range(reps):
        for prog, n in scales.items():
            times[prog]["plain"].append(timed([python, prog, n], {}, work))
            for c in configs:
                if c == "switched-off line points":
                    cmd = [python, str(points), prog, n]
                else:
                    chosen = PY_ANALYSES if c == "all" else [c]
                    flags = [x for a in chosen for x in ("-a", a)]
                    cmd = [python, "-m", "probe", "run", "-q", "--db", db, *flags, prog, n]
                times[prog][c].append(timed(cmd, {}, work))
                settle(db)
    _table(f"Python {major}.{minor}: analyses alone and composed (ratio to python)", times, configs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--wasm-scale", type=float, default=0.1)
    parser.add_argument("--python", action="append", help="interpreter(s) for the Python part")
    parser.add_argument(
        "--parts",
        default="wasm,points,events,python",
        help="which parts, comma-separated: wasm, points, events, python",
    )
    args = parser.parse_args()
    print(f"# Analyses: cost alone and composed (median of {args.reps} rounds)")
    print(f"machine: {os.cpu_count()} cores, {time.strftime('%Y-%m-%d')}")
    with tempfile.TemporaryDirectory(prefix="probe-bench-") as tmp:
        work = Path(tmp)
        os.environ["PROBE_CACHE"] = str(work / "cache")
        parts = set(args.parts.split(","))
        if "wasm" in parts:
            wasm_analyses(args.reps, args.wasm_scale, work)
        if "points" in parts:
            wasm_points(args.reps)
        if "events" in parts:
            events_rate(work)
        if "python" in parts:
            for python in args.python or [sys.executable]:
                if _has(python, "probe"):
                    python_analyses(python, args.reps, work)


if __name__ == "__main__":
    main()
