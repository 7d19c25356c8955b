"""What @probe.trace costs per call: idle, recording, and recording with region counters.

    python benchmarks/tracing.py [--calls 200000] [--python PY ...]

For each interpreter, in one process: a tiny function (x + 1) and a small one (a 200-step
loop), plain and decorated, called --calls times; 5 interleaved rounds, medians, in ns per
call. Idle: no session records. Recording: a session without analyses of its own (so the
decorated call trees only, with the decorator's analysis, hotness). Counters: the same with
counters=["task-clock"], a perf_event_open region around every call.
"""

from __future__ import annotations

import argparse
import json
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


def _measure(calls: int, db: str) -> dict[str, float]:
    import probe

    def tiny(x):
        return x + 1

    def small(x):
        total = 0
        for i in range(200):
            total += i ^ x
        return total

    traced_tiny = probe.trace(analysis="hotness")(tiny)
    traced_small = probe.trace(analysis="hotness")(small)
    counted_tiny = probe.trace(analysis="hotness", counters=["task-clock"])(tiny)

    def loop(fn, n: int) -> float:
        t0 = time.perf_counter()
        for i in range(n):
            fn(i)
        return time.perf_counter() - t0

    few = max(calls // 20, 1000)  # the small function is ~50x slower
    cases = {
        "tiny plain": lambda: loop(tiny, calls) / calls,
        "tiny idle": lambda: loop(traced_tiny, calls) / calls,
        "small plain": lambda: loop(small, few) / few,
        "small idle": lambda: loop(traced_small, few) / few,
    }
    recording = {
        "tiny recording": lambda: loop(traced_tiny, few) / few,
        "small recording": lambda: loop(traced_small, few) / few,
        "tiny recording+counters": lambda: loop(counted_tiny, few) / few,
    }
    times: dict[str, list[float]] = {k: [] for k in [*cases, *recording]}
    for _ in range(5):
        for name, run in cases.items():
            times[name].append(run())
        with probe.session(db=db):
            for name, run in recording.items():
                times[name].append(run())
    return {k: statistics.median(v) * 1e9 for k, v in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=200_000)
    parser.add_argument("--python", nargs="*", default=INTERPRETERS)
    parser.add_argument("--one", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        with tempfile.TemporaryDirectory() as tmp:
            print(json.dumps(_measure(args.calls, f"{tmp}/t.duckdb")))
        return
    head = ["Python", "tiny plain", "idle", "recording", "+ counters", "small plain", "idle"]
    print("| " + " | ".join([*head, "recording"]) + " |")
    print("|---" * (len(head) + 1) + "|")
    for python in args.python:
        if not Path(python).exists():
            continue
        out = subprocess.run(
            [python, __file__, "--one", "--calls", str(args.calls)],
            capture_output=True,
            text=True,
            check=True,
        )
        ns = json.loads(out.stdout)
        version = subprocess.run(
            [python, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
            capture_output=True,
            text=True,
        ).stdout.strip()

        def cell(name: str, base: str, ns: dict[str, float] = ns) -> str:
            return f"{ns[name]:,.0f} ns (+{ns[name] - ns[base]:,.0f})"

        print(
            f"| {version} | {ns['tiny plain']:,.0f} ns | {cell('tiny idle', 'tiny plain')} | "
            f"{cell('tiny recording', 'tiny plain')} | "
            f"{cell('tiny recording+counters', 'tiny plain')} | "
            f"{ns['small plain']:,.0f} ns | {cell('small idle', 'small plain')} "
            f"({ns['small idle'] / ns['small plain']:.2f}x) | "
            f"{ns['small recording'] / ns['small plain']:.1f}x |"
        )


if __name__ == "__main__":
    main()
