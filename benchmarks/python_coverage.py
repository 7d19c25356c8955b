"""Coverage overhead on CPU-bound Python programs: probe vs coverage.py vs SlipCover.

    python benchmarks/python_coverage.py [--reps 3] [--python PATH ...] [--quick]
    python benchmarks/python_coverage.py --instructions [--python PATH ...]

Every configuration of one program runs in the same round, round after
round, so that a noisy neighbour slows all of them alike; each figure is
the median of its rounds, and every overhead is a ratio to the plain run of
the same program in the same rounds. The fixed cost (an empty script) is
measured the same way and printed in seconds.

probe's journal is ingested into DuckDB by a detached process after `probe
run` returns; the script waits for that ingest outside the timed region
(so it does not steal the other core from the next measurement) and also
reports, for the empty script, the time until the run is in the database.

--instructions counts what each configuration executes instead, under valgrind's callgrind
(one round at the --quick inputs, the main process only: the detached ingest runs natively
and is not counted). A count does not vary with the neighbours, so it settles what the
timings leave to noise; it is not time (a cache miss costs more than an add).
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

from ratios import compile_probe, settle, table

HERE = Path(__file__).parent
PROGRAMS = {  # program -> scale that runs it for 2-4 s uninstrumented here, 3.11 to 3.13
    "sieve.py": "48",
    "nbody.py": "5",
    "interp.py": "28",
    "sorts.py": "7",
    "textproc.py": "550",
}
QUICK = {"sieve.py": "4", "nbody.py": "1", "interp.py": "2", "sorts.py": "1", "textproc.py": "40"}


def _version(python: str) -> tuple[int, int]:
    out = subprocess.run(
        [python, "-c", "import sys; print(*sys.version_info[:2])"], capture_output=True, text=True
    )
    major, minor = out.stdout.split()
    return int(major), int(minor)


def _has(python: str, module: str) -> bool:
    return subprocess.run([python, "-c", f"import {module}"], capture_output=True).returncode == 0


def configurations(python: str, work: Path) -> dict[str, tuple[list[str], dict[str, str]]]:
    """name -> (command prefix before the program, extra environment)."""
    db = str(work / "bench.duckdb")
    data = f"--data-file={work / '.coverage'}"
    configs: dict[str, tuple[list[str], dict[str, str]]] = {
        "plain": ([python], {}),
        "probe line": ([python, "-m", "probe", "run", "-q", "--db", db], {}),
        "probe branch": ([python, "-m", "probe", "run", "-q", "--branch", "--db", db], {}),
    }
    if _version(python) >= (3, 12):
        # sys.monitoring alone, with nothing recorded: what the mechanism itself costs.
        configs["bare sys.monitoring"] = ([python, str(HERE / "bare_monitor.py")], {})
    if _has(python, "coverage"):
        cores = ["sysmon", "ctrace"] if _version(python) >= (3, 12) else ["ctrace"]
        for core in cores:
            env = {"COVERAGE_CORE": core}
            configs[f"coverage.py {core} line"] = ([python, "-m", "coverage", "run", data], env)
            configs[f"coverage.py {core} branch"] = (
                [python, "-m", "coverage", "run", "--branch", data],
                env,
            )
    if _has(python, "slipcover"):
        configs["slipcover line"] = ([python, "-m", "slipcover", "--silent"], {})
        configs["slipcover branch"] = ([python, "-m", "slipcover", "--silent", "--branch"], {})
    return configs


def timed(cmd: list[str], env: dict[str, str], cwd: Path) -> float:
    full_env = {**os.environ, **env}
    t0 = time.perf_counter()
    proc = subprocess.run(
        cmd, cwd=cwd, env=full_env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    elapsed = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"benchmark command failed: {' '.join(cmd)}\n{proc.stderr}")
    return elapsed


def instructions(cmd: list[str], env: dict[str, str], cwd: Path) -> float:
    """Instructions the command's own process executes, as callgrind counts them."""
    full = ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", *cmd]
    proc = subprocess.run(
        full, cwd=cwd, env={**os.environ, **env}, stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    if proc.returncode != 0:
        raise SystemExit(f"benchmark command failed: {' '.join(cmd)}\n{proc.stderr}")
    for line in proc.stderr.splitlines():
        if "Collected :" in line:
            return float(line.split()[-1])
    raise SystemExit(f"callgrind printed no count for {' '.join(cmd)}:\n{proc.stderr}")


def bench_python(python: str, reps: int, scales: dict[str, str], count: bool = False) -> None:
    major, minor = _version(python)
    print(f"\n## Python {major}.{minor} ({python})\n")
    compile_probe(python)
    measure = instructions if count else timed
    with tempfile.TemporaryDirectory(prefix="probe-bench-") as tmp:
        work = Path(tmp)
        for name in PROGRAMS:
            shutil.copy(HERE / "programs" / name, work / name)
        (work / "empty.py").write_text("")
        configs = configurations(python, work)
        if count and (major, minor) >= (3, 12):  # the peers to beat; ctrace would take hours
            configs = {n: c for n, c in configs.items() if "ctrace" not in n}
        times: dict[str, dict[str, list[float]]] = {p: {c: [] for c in configs} for p in scales}
        for _ in range(reps):
            for prog, scale in scales.items():
                for cname, (prefix, env) in configs.items():
                    times[prog][cname].append(measure([*prefix, prog, scale], env, work))
                    settle(str(work / "bench.duckdb"))
        if count:
            for by_config in times.values():  # in 10^9 instructions
                for c in by_config:
                    by_config[c] = [n / 1e9 for n in by_config[c]]
        print(table(times, unit="10⁹ instr." if count else "s"))
        if count:
            plain, probe = (
                instructions([*configs[name][0], "empty.py"], {}, work) / 1e6
                for name in ("plain", "probe line")
            )
            settle(str(work / "bench.duckdb"))
            print(
                f"\nFixed cost, empty script: python {plain:.0f} M instructions, "
                f"`probe run` {probe:.0f} M (**+{probe - plain:.0f} M**)."
            )
            return

        # Fixed cost: an empty script, many times, interleaved.
        plain_t, probe_t, stored_t = [], [], []
        for _ in range(max(10, reps * 4)):
            plain_t.append(timed([python, "empty.py"], {}, work))
            t0 = time.perf_counter()
            probe_t.append(timed([*configs["probe line"][0], "empty.py"], {}, work))
            settle(str(work / "bench.duckdb"))
            stored_t.append(time.perf_counter() - t0)
        p, q, s = (statistics.median(x) for x in (plain_t, probe_t, stored_t))
        print(
            f"\nFixed cost, empty script: python {p:.3f} s, `probe run` {q:.3f} s "
            f"(**+{q - p:.3f} s**); until the run is in DuckDB {s:.3f} s (+{s - p:.3f} s)."
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=3, help="rounds per configuration")
    parser.add_argument("--python", action="append", help="interpreter(s) to measure")
    parser.add_argument("--quick", action="store_true", help="small inputs: a smoke run")
    parser.add_argument(
        "--instructions", action="store_true", help="count instructions (callgrind), not time"
    )
    args = parser.parse_args()
    if args.instructions:
        args.reps, args.quick = 1, True
    pythons = args.python or [sys.executable] + [
        str(p)
        for v in ("3.12", "3.13")
        for p in sorted(Path("/root/.pyenv/versions").glob(f"{v}.*/bin/python3"))[:1]
    ]
    pythons = [p for p in pythons if _has(p, "probe")]
    what = "instructions" if args.instructions else f"time, median of {args.reps} rounds"
    print(f"# Coverage overhead (ratio to the plain run; {what})")
    print(f"machine: {os.cpu_count()} cores, {time.strftime('%Y-%m-%d')}")
    for python in pythons:
        bench_python(python, args.reps, QUICK if args.quick else PROGRAMS, args.instructions)


if __name__ == "__main__":
    main()
