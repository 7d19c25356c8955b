"""Reliability figures, measured in one run: what killed runs keep, how long readers wait
while runs land, and what a big trace costs in disk, memory and time.

    python benchmarks/reliability.py [--trials 5] [--writers 8] [--seconds 20] [--events 1e8]

1. Kills: a Python run (16 x 1,000 loop iterations, then asleep) and a Wasm loop, each
   SIGKILLed after its first snapshot; a Wasm loop stopped by SIGINT and by SIGTERM. Rows
   kept against rows the program had made by then; seconds from the signal to the exit.
2. Readers: --writers processes record runs back to back for --seconds while one process
   opens the database and queries it in a loop: latency of each open+query (p50, p99, max),
   and whether every run the writers finished is in the database at the end.
3. A trace of --events events (kernels.wasm sort, capped by --max-events): the journal's
   size, the run's and the ingester's peak memory (RSS), the ingest rate, the database's
   bytes per event, and the peak memory of a Parquet export.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PY = sys.executable
# The programs tests/test_reliability.py kills too: one copy of each.
WORK_PY = (REPO / "benchmarks" / "faults" / "work.py").read_text()
SPIN_WAT = (REPO / "benchmarks" / "faults" / "spin.wat").read_text()


def probe_cmd(*args: str) -> list[str]:
    return [PY, "-m", "probe", *args]


def spawn(cwd: Path, *args: str) -> subprocess.Popen:
    return subprocess.Popen(
        probe_cmd(*args), cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )


def measured(cmd: list[str], cwd: Path) -> tuple[float, int, int]:
    """(seconds, peak RSS in MB, exit code) of one process, from wait4's own rusage."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    err = proc.stderr.read().decode() if proc.stderr else ""
    if proc.returncode not in (0,):
        print(f"  ({' '.join(cmd[2:5])} ... exited {proc.returncode}: {err.strip()[:200]})")
    return time.perf_counter() - t0, usage.ru_maxrss // 1024, proc.returncode


def wait_for(check, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise SystemExit("timed out waiting")
        time.sleep(0.02)


def snapshot_taken(cwd: Path) -> bool:
    root = cwd / ".probe" / "probe.duckdb.spool"
    return root.is_dir() and any(root.glob("*/snapshot-*/snapshot.json"))


def rows(cwd: Path, sql: str) -> list[dict]:
    out = subprocess.run(
        probe_cmd("query", sql, "-f", "json"), cwd=cwd, capture_output=True, text=True
    )
    if out.returncode != 0:
        raise SystemExit(f"probe query failed: {out.stderr.strip()}")
    return json.loads(out.stdout or "[]")


def kills(trials: int, base: Path) -> list[tuple[str, str, str]]:
    table = []
    line_counts = (
        "SELECT line, count FROM counts JOIN sites USING (run_id, site_id) WHERE kind = 'line'"
    )
    whole = base / "py-whole"  # the same program run to its end, without the sleep
    whole.mkdir()
    (whole / "work.py").write_text(WORK_PY.replace("time.sleep(120)", "pass"))
    subprocess.run(probe_cmd("run", "-q", "-a", "hotness", "work.py"), cwd=whole, check=True)
    last = max(r["line"] for r in rows(whole, line_counts))  # the sleep: not yet run
    made_by = {r["line"]: r["count"] for r in rows(whole, line_counts) if r["line"] != last}
    kept = 0
    for i in range(trials):
        d = base / f"py{i}"
        d.mkdir()
        (d / "work.py").write_text(WORK_PY)
        proc = spawn(d, "run", "-a", "hotness", "work.py")
        wait_for(lambda d=d: (d / "ready").exists())
        wait_for(lambda d=d: snapshot_taken(d))
        proc.kill()
        proc.wait()
        got = {r["line"]: r["count"] for r in rows(d, line_counts)}
        kept += sum(min(got.get(line, 0), n) for line, n in made_by.items())
    made = trials * sum(made_by.values())
    table.append(
        (
            "Python run, SIGKILL after its snapshot",
            f"{trials}",
            f"{kept:,} of {made:,} line executions kept ({made - kept} lost)",
        )
    )
    ok = 0
    for i in range(trials):
        d = base / f"wasm{i}"
        d.mkdir()
        (d / "spin.wat").write_text(SPIN_WAT)
        proc = spawn(d, "run", "-a", "hotness", "spin.wat")
        wait_for(lambda d=d: snapshot_taken(d))
        proc.kill()
        proc.wait()
        got = rows(
            d,
            "SELECT (SELECT count(*) FROM sites) AS sites, "
            "(SELECT max(count) FROM counts) AS most, "
            "(SELECT status FROM runs) AS status",
        )[0]
        ok += got["sites"] > 0 and (got["most"] or 0) > 0 and got["status"] == "killed"
    table.append(
        (
            "Wasm run, SIGKILL after its snapshot",
            f"{trials}",
            f"{ok} of {trials} kept sites and counts, status killed",
        )
    )
    for sig in (signal.SIGINT, signal.SIGTERM):
        waits, ok = [], 0
        for i in range(trials):
            d = base / f"{sig.name}{i}"
            d.mkdir()
            (d / "spin.wat").write_text(SPIN_WAT)
            proc = spawn(d, "run", "-a", "hotness", "spin.wat")
            wait_for(lambda d=d: any((d / ".probe" / "probe.duckdb.spool").glob("*/*-sites.*")))
            time.sleep(0.3)
            t0 = time.perf_counter()
            proc.send_signal(sig)
            proc.wait(timeout=30)
            waits.append(time.perf_counter() - t0)
            got = rows(d, "SELECT status, (SELECT max(count) FROM counts) AS most FROM runs")[0]
            ok += got["status"] == "killed" and (got["most"] or 0) > 0
        table.append(
            (
                f"Wasm infinite loop, {sig.name}",
                f"{trials}",
                f"{ok} of {trials} killed with counts; exit {max(waits):.2f} s at most "
                "after the signal",
            )
        )
    return table


def readers(writers: int, seconds: float, base: Path) -> list[tuple[str, str, str]]:
    d = base / "readers"
    d.mkdir()
    (d / "app.py").write_text("x = sum(range(1000))\n")
    subprocess.run(probe_cmd("run", "-q", "app.py"), cwd=d, check=True)
    subprocess.run(probe_cmd("runs"), cwd=d, check=True, capture_output=True)
    loop = (
        "import subprocess, sys, time\n"
        "end = time.monotonic() + float(sys.argv[1]); n = 0\n"
        "while time.monotonic() < end:\n"
        "    subprocess.run([sys.executable, '-m', 'probe', 'run', '-q', 'app.py'], check=True)\n"
        "    n += 1\n"
        "print(n)\n"
    )
    reader = (
        "import sys, time, json\n"
        "from probe.storage import Database\n"
        "from probe.storage.db import _import_before_the_lock\n"
        "_import_before_the_lock()  # a warm reader: its latency, not Python's imports\n"
        "end = time.monotonic() + float(sys.argv[1]); waits = []\n"
        "while time.monotonic() < end:\n"
        "    t0 = time.perf_counter()\n"
        "    with Database('.probe/probe.duckdb') as db:\n"
        "        db.execute('SELECT count(*) FROM runs').fetchall()\n"
        "    waits.append(time.perf_counter() - t0)\n"
        "    time.sleep(0.01)\n"
        "print(json.dumps(waits))\n"
    )
    procs = [
        subprocess.Popen([PY, "-c", loop, str(seconds)], cwd=d, stdout=subprocess.PIPE, text=True)
        for _ in range(writers)
    ]
    read = subprocess.run(
        [PY, "-c", reader, str(seconds)], cwd=d, capture_output=True, text=True, check=True
    )
    written = sum(int(p.communicate()[0]) for p in procs)
    waits = sorted(json.loads(read.stdout))
    stored = rows(d, "SELECT count(*) AS n FROM runs")[0]["n"] - 1
    p99 = waits[min(len(waits) - 1, int(0.99 * len(waits)))]
    return [
        (
            f"reads while {writers} writers record runs ({seconds:.0f} s)",
            f"{len(waits)} reads",
            f"p50 {statistics.median(waits) * 1000:.0f} ms, p99 {p99 * 1000:.0f} ms, "
            f"max {waits[-1] * 1000:.0f} ms",
        ),
        ("runs stored of runs finished", f"{written}", f"{stored} ({written - stored} lost)"),
    ]


def big_trace(events: int, base: Path) -> list[tuple[str, str, str]]:
    d = base / "trace"
    d.mkdir()
    shutil.copy(REPO / "samples" / "wasm" / "kernels.wasm", d)
    # The run, without its background ingest, so that ingest is measured on its own.
    record = (
        "import sys\n"
        "import probe.recording as r\n"
        "from probe.engines import target_from_command\n"
        "r.ingest_in_background = lambda db: None\n"
        "t = target_from_command(['kernels.wasm', '--', 'sort', '400'])\n"
        "r.run(t, ['trace'], summary=None, max_events=int(sys.argv[1]))\n"
    )
    run_s, run_mb, _ = measured([PY, "-c", record, str(events)], d)
    spool = d / ".probe" / "probe.duckdb.spool"
    journal = sum(f.stat().st_size for f in spool.rglob("*") if f.is_file())
    ingest_s, ingest_mb, _ = measured(
        [PY, "-m", "probe.storage", "ingest", "--db", str(d / ".probe" / "probe.duckdb")], d
    )
    stored = rows(d, "SELECT count(*) AS n FROM events")[0]["n"]
    files = d / ".probe" / "probe.duckdb.files"  # long event streams, kept as Parquet
    db_bytes = (d / ".probe" / "probe.duckdb").stat().st_size + sum(
        f.stat().st_size for f in files.rglob("*") if f.is_file()
    )
    export_s, export_mb, _ = measured(probe_cmd("export", str(d / "parquet")), d)
    return [
        (
            f"trace of {events:,} events: the run",
            f"{run_s:.1f} s",
            f"peak {run_mb} MB; journal {journal / 1e9:.2f} GB ({journal / events:.1f} B/event)",
        ),
        (
            "ingest into DuckDB",
            f"{ingest_s:.1f} s",
            f"{stored / ingest_s / 1e6:.1f} M events/s; peak {ingest_mb} MB; {stored:,} rows",
        ),
        (
            "the database (and its Parquet files)",
            f"{db_bytes / 1e6:.0f} MB",
            f"{db_bytes / max(stored, 1):.2f} B/event",
        ),
        ("export to Parquet", f"{export_s:.1f} s", f"peak {export_mb} MB"),
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=5)
    parser.add_argument("--writers", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--events", type=float, default=1e8)
    opts = parser.parse_args(argv)
    base = Path(tempfile.mkdtemp(prefix="probe-reliability-"))
    os.environ.pop("PROBE_DB", None)
    os.environ["PROBE_CACHE"] = str(base / "cache")
    try:
        table = kills(opts.trials, base)
        table += readers(opts.writers, opts.seconds, base)
        table += big_trace(int(opts.events), base)
    finally:
        shutil.rmtree(base, ignore_errors=True)
    print("| case | n / time | result |")
    print("|---|---|---|")
    for row in table:
        print("| " + " | ".join(row) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
