"""What counting costs: a perf_event_open region per call, and perf stat around a whole run.

    python benchmarks/counters.py [--calls 100000]

Region: start() + stop() of a group (task-clock, page-faults, context-switches, and
instructions where the machine has it) around an empty region, per call, against the same
loop without counters. Whole run: `probe run --counters task-clock` against `probe run` on a
~0.3 s program, interleaved, 5 rounds, medians.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from probe.engines.perf.region import Region

HERE = Path(__file__).parent


def region_cost(calls: int) -> None:
    region = Region(["instructions", "task-clock", "page-faults", "context-switches"])
    rounds_with, rounds_without = [], []
    for _ in range(5):
        t0 = time.perf_counter()
        for _ in range(calls):
            pass
        rounds_without.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        for _ in range(calls):
            region.start()
            region.stop()
        rounds_with.append(time.perf_counter() - t0)
    region.close()
    per_call = (statistics.median(rounds_with) - statistics.median(rounds_without)) / calls
    counted = ", ".join(region.opened) or "none"
    print(f"perf_event_open region: **{per_call * 1e6:.1f} µs per call** (group of: {counted})")


def whole_run_cost() -> None:
    program = [str(HERE / "programs" / "sieve.py"), "4"]
    with tempfile.TemporaryDirectory() as tmp:
        base = [sys.executable, "-m", "probe", "run", "-q", "--db", f"{tmp}/c.duckdb"]
        times: dict[str, list[float]] = {"probe run": [], "probe run --counters": []}
        for _ in range(5):
            for name, extra in (
                ("probe run", []),
                ("probe run --counters", ["--counters", "task-clock"]),
            ):
                t0 = time.perf_counter()
                subprocess.run([*base, *extra, *program], check=True, capture_output=True)
                times[name].append(time.perf_counter() - t0)
                subprocess.run([*base[:3], "runs", "--db", f"{tmp}/c.duckdb"], capture_output=True)
    a, b = (statistics.median(t) for t in times.values())
    print(f"perf stat around a run: {a:.3f} s -> {b:.3f} s (**+{b - a:.3f} s**, sieve.py 4)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=100_000)
    args = parser.parse_args()
    region_cost(args.calls)
    whole_run_cost()


if __name__ == "__main__":
    main()
