"""Hot paths: what sampling and exact counts cost, side by side with py-spy, pyinstrument and
cProfile, and whether probe's hottest functions are py-spy's.

    python benchmarks/hotpaths.py [--reps 3]

Python: each program (2-3 s plain) runs once per round under every tool, in turn; a ratio is
the median of its rounds over the median of the plain rounds (wall time of the whole
process: probe's start-up is in it). "probe sampling" samples alone at 100 Hz (py-spy, started
by probe); "probe hotpaths" adds the exact counts (lines and function entries) in the same run.
Agreement: of py-spy's own ten functions with the most self samples (py-spy record, raw
format, the same rate; those with 1% of the samples or more), how many are among probe's ten.

Wasm: the C kernels of benchmarks/wasm_overhead.py, timed in process as there: the shadow
stack alone with its sampler thread at 100 Hz, with hotness's counts, Ball-Larus path counters
alone, and everything `-a hotpaths` places.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

from python_coverage import timed
from ratios import Times, compile_probe, settle, table

HERE = Path(__file__).parent
PROGRAMS = {  # 2-3.5 s each plain on the project's machine: the goals are for programs of 2 s+
    "interp": ["interp.py", "20"],
    "nbody": ["nbody.py", "7"],
    "sorts": ["sorts.py", "8"],
    "sieve": ["sieve.py", "55"],
    "textproc": ["textproc.py", "600"],
    "mixed": ["mixed.py", "56"],  # more than ten functions with a share of the time
}
PY = sys.executable
BIN = Path(PY).parent
DRIVER = """
import sys
from probe import recording
from probe.engines import target_from_command
from probe.analyses.hotpaths import HotPathsAnalysis
counts = sys.argv[1] == "counts"
target = target_from_command(sys.argv[3:], None)
_, outcome = recording.run(target, [HotPathsAnalysis(counts=counts)], db=sys.argv[2], summary=None)
sys.exit(outcome.exit_code)
"""


def commands(prog: list[str], tmp: Path) -> dict[str, list[str]]:
    path = str(HERE / "programs" / prog[0])
    args = [path, *prog[1:]]
    db = str(tmp / "bench.db")
    return {
        "plain": [PY, *args],
        "probe sampling": [PY, "-c", DRIVER, "sample", db, *args],
        "probe hotpaths": [PY, "-c", DRIVER, "counts", db, *args],
        "py-spy": [
            str(BIN / "py-spy"),
            "record",
            "-r",
            "100",
            "--nonblocking",
            "-f",
            "raw",
            "-o",
            str(tmp / "pyspy.txt"),
            "--",
            PY,
            *args,
        ],  # fmt: skip
        "pyinstrument": [PY, "-m", "pyinstrument", "-o", os.devnull, *args],
        "cProfile": [PY, "-m", "cProfile", "-o", os.devnull, *args],
    }


def pyspy_top(raw: Path, n: int = 10) -> list[str]:
    """py-spy's own functions with the most self samples (its raw file: leaf last), those
    with at least 1% of them: below that, two runs of one program differ by chance."""
    self_samples: Counter[str] = Counter()
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        func, _, where = stack.rsplit(";", 1)[-1].partition(" (")
        if where:  # not a sample without Python frames
            self_samples[f"{func} {os.path.basename(where.split(':')[0])}"] += int(count)
    total = sum(self_samples.values())
    return [f for f, k in self_samples.most_common(n) if k >= total / 100]


def probe_top(db: str, n: int = 10) -> list[str]:
    """probe's functions with the most self samples in the latest run of ``db``."""
    from probe.storage import Database

    with Database(db) as d:
        rows = d.execute(
            "SELECT k.frames[-1].func, k.frames[-1].unit, sum(s.weight) AS w FROM samples s "
            "JOIN stacks k USING (run_id, stack_id) "
            "WHERE s.run_id = (SELECT run_id FROM runs ORDER BY started_at DESC LIMIT 1) "
            "GROUP BY 1, 2 ORDER BY w DESC LIMIT ?",
            [n],
        ).fetchall()
    return [f"{func} {os.path.basename(unit)}" for func, unit, _ in rows]


def python(reps: int) -> None:
    compile_probe(PY)
    times: Times = {}
    agreement: dict[str, str] = {}
    for name, prog in PROGRAMS.items():
        with tempfile.TemporaryDirectory() as tmp:
            cmds = commands(prog, Path(tmp))
            times[name] = {tool: [] for tool in cmds}
            for _ in range(reps):
                for tool, cmd in cmds.items():
                    times[name][tool].append(timed(cmd, {}, Path(tmp)))
                    settle(str(Path(tmp) / "bench.db"))
            theirs = pyspy_top(Path(tmp) / "pyspy.txt")
            ours = probe_top(str(Path(tmp) / "bench.db"))
            agreement[name] = f"{len(set(ours) & set(theirs))} of {len(theirs)}"
    print(table(times, extra=("top-10 agreement", agreement)))


def wasm(reps: int) -> None:
    import numpy as np
    import wasmtime
    from wasm_overhead import KERNELS, SCALES, quiet_stdout

    from probe.engines.wasm import binary, runner
    from probe.engines.wasm.host import path_memory, view
    from probe.engines.wasm.options import Options
    from probe.engines.wasm.rewrite import STACK_EXPORT, Plan, instrument
    from probe.engines.wasm.sampler import ShadowSampler
    from probe.probes import Kind

    configs = {
        "plain": Plan(),
        "shadow stack + sampler": Plan(stack=True),
        "hotpaths (stack + counts)": Plan(func=Kind.COUNT, block=Kind.COUNT, stack=True),
        "hotness alone (counts)": Plan(func=Kind.COUNT, block=Kind.COUNT),
        "Ball-Larus paths": Plan(paths=True),
        "hotpaths + paths (all of -a hotpaths)": Plan(
            func=Kind.COUNT, block=Kind.COUNT, stack=True, paths=True
        ),
    }
    m = binary.parse(KERNELS.read_bytes())
    engine = runner.make_engine(Options())
    built = {}
    for name, plan in configs.items():
        r = instrument(m, plan)
        export = "probe:memory" if plan.any() else None
        built[name] = (wasmtime.Module(engine, r.module), r.deferred_start, export, r)
    times: dict[str, dict[str, list[float]]] = {k: {c: [] for c in configs} for k in SCALES}
    samples = Counter()
    for _ in range(reps):
        for k, n in SCALES.items():
            for c, (module, start, export, prepared) in built.items():
                sampler, kept = [], []

                def attach(store, exports, r=prepared, sampler=sampler, kept=kept) -> None:
                    if r.paths:
                        path_memory(store, exports, r)
                    if r.stack:
                        memory = view(store, exports[STACK_EXPORT], np.uint32)
                        s = ShadowSampler(memory, 100, m.func_name, "kernels.wasm", time.time())
                        s.start()
                        sampler.append(s)
                        kept.append(store)  # the memory the sampler reads lives as long

                with quiet_stdout():
                    t0 = time.perf_counter()
                    ran = runner.run(
                        engine, module, "kernels.wasm", Options(args=[k, str(n)]),
                        deferred_start=start, probe_export=export, attach=attach,
                    )  # fmt: skip
                    times[k][c].append(time.perf_counter() - t0)
                for s in sampler:
                    samples[k] += len(s.stop())
                assert ran.outcome.status == "ok", ran.outcome
    counted = {k: f"{n:,}" for k, n in samples.items()}
    print("\n" + table(times, "kernel", ("samples", counted)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--only", choices=["python", "wasm"])
    args = parser.parse_args()
    if shutil.which("py-spy", path=str(BIN)) is None:
        sys.exit("py-spy is not installed beside this python: pip install -e '.[bench]'")
    if args.only != "wasm":
        python(args.reps)
    if args.only != "python":
        wasm(args.reps)


if __name__ == "__main__":
    main()
