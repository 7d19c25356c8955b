"""How fast a run's events export as a timeline (Perfetto protobuf, Chrome JSON), and in how
much memory.

    python benchmarks/timeline_export.py [--n 27]

Records the calls and returns of samples/wasm/fib.wat's recursive fib(N) (2 x fib's calls
events: 1.3 M at 27, 5.4 M at 30), then times `probe report trace --format perfetto` and
`--format chrome-json` to files, each in a process of its own, and prints events/s and the
process's peak memory (the export streams batches of a million: it should not grow with
the run). Goal (issue 15): Perfetto at 5 M events/s or more.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).parent


def probe(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "probe", *args], cwd=cwd, capture_output=True, text=True
    )


def timed_export(fmt: str, out: str, cwd: Path) -> tuple[float, int]:
    """Seconds and peak RSS (kB) of one `probe report trace --format FMT -o OUT`."""
    t0 = time.perf_counter()
    child = subprocess.Popen(
        [sys.executable, "-m", "probe", "report", "trace", "-f", fmt, "-o", out],
        cwd=cwd,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    _, status, usage = os.wait4(child.pid, 0)
    took = time.perf_counter() - t0
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"export failed: {child.stderr.read().decode() if child.stderr else ''}")
    return took, usage.ru_maxrss


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=27)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        shutil.copy(HERE.parent / "samples" / "wasm" / "fib.wat", work)
        ran = probe(
            "run", "-q", "-a", "trace", "--sites", "func", "--sites", "return", "--invoke",
            "fib", "fib.wat", str(args.n), cwd=work,
        )  # fmt: skip
        if ran.returncode != 0:
            raise SystemExit(ran.stderr)
        counted = probe("query", "-f", "csv", "SELECT count(*) FROM events", cwd=work)
        events = int(counted.stdout.split()[1])
        print(f"fib({args.n}): {events:,} events (calls and returns)")
        for fmt, out in (("perfetto", "run.pftrace"), ("chrome-json", "run.json")):
            took, peak = timed_export(fmt, out, work)
            size = (work / out).stat().st_size
            print(
                f"{fmt:12} {took:6.2f} s  {events / took / 1e6:5.2f} M events/s  "
                f"{size / 1e6:7.1f} MB  peak RSS {peak / 1024:5.0f} MB (the whole process)"
            )


if __name__ == "__main__":
    main()
