"""Faults, kills and hostile conditions: every event recorded up to the end is kept, the
program's exit code is never lost, and no command is blocked by another's leftovers.

Each case is a real `probe` process on a real program, killed, signalled or starved as a
user's would be; the database is read back with probe's own commands.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from conftest import INTERPRETERS, REPO, probe_rows, query, run_probe, version_of

# The programs benchmarks/reliability.py kills too: one copy of each.
FAULTS = REPO / "benchmarks" / "faults"
SPIN_WAT = (FAULTS / "spin.wat").read_text()
WORK_PY = (FAULTS / "work.py").read_text()


def probe(*args: str, cwd: Path, **kw) -> subprocess.CompletedProcess:
    return run_probe(sys.executable, *args, cwd=cwd, **kw)


def start(*args: str, cwd: Path) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if k != "PROBE_DB"}
    env["PROBE_CACHE"] = str(cwd / "cache")
    return subprocess.Popen(
        [sys.executable, "-m", "probe", *args],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_for(check, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.05)


def journal(cwd: Path) -> list[Path]:
    root = cwd / ".probe" / "probe.duckdb.spool"
    return [p for p in root.iterdir() if p.is_dir()] if root.is_dir() else []


def snapshot_taken(cwd: Path) -> bool:
    return any(list(j.glob("snapshot-*/snapshot.json")) for j in journal(cwd))


def runs(cwd: Path) -> list[dict]:
    out = probe("query", "SELECT * FROM runs ORDER BY started_at", "-f", "json", cwd=cwd)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def test_sigkill_of_a_python_run_keeps_its_counts_as_of_the_last_snapshot(tmp_path: Path):
    (tmp_path / "work.py").write_text(WORK_PY)
    proc = start("run", "-a", "hotness", "work.py", cwd=tmp_path)
    wait_for(lambda: (tmp_path / "ready").exists())
    wait_for(lambda: snapshot_taken(tmp_path), timeout=20)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    (run,) = runs(tmp_path)
    assert run["status"] == "killed"
    assert "counts as of" in run["message"]
    rows = probe(
        "query",
        "SELECT line, count FROM counts JOIN sites USING (run_id, site_id) "
        "WHERE kind = 'line' ORDER BY line",
        "-f",
        "json",
        cwd=tmp_path,
    )
    counts = {r["line"]: r["count"] for r in json.loads(rows.stdout)}
    assert counts[7] == 16_000  # total += i, every time it ran before the kill
    assert counts[5] == 16  # total = 0


def test_sigkill_of_a_wasm_run_keeps_sites_and_snapshot_counts(tmp_path: Path):
    (tmp_path / "spin.wat").write_text(SPIN_WAT)
    proc = start("run", "-a", "hotness", "spin.wat", cwd=tmp_path)
    wait_for(lambda: snapshot_taken(tmp_path), timeout=30)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    (run,) = runs(tmp_path)
    assert run["status"] == "killed"
    db = tmp_path / ".probe" / "probe.duckdb"
    (sites,) = query(db, "SELECT count(*) FROM sites WHERE kind = 'block'")[0]
    assert sites >= 1
    (most,) = query(db, "SELECT max(count) FROM counts")[0]
    assert most > 1000  # the loop ran for seconds before the snapshot


@pytest.mark.parametrize("sig, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_signal_stops_wasm_code_at_once_and_keeps_everything(tmp_path: Path, sig, code):
    (tmp_path / "spin.wat").write_text(SPIN_WAT)
    proc = start("run", "-a", "hotness", "spin.wat", cwd=tmp_path)
    wait_for(
        lambda: any(
            (j / "run.json").exists() and len(list(j.iterdir())) > 1 for j in journal(tmp_path)
        )
    )
    time.sleep(0.5)
    sent = time.monotonic()
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=10)
    assert time.monotonic() - sent < 2
    assert proc.returncode == code, err
    assert "Traceback" not in err
    assert f"stopped by {sig.name}" in err
    (run,) = runs(tmp_path)
    assert (run["status"], run["exit_code"]) == ("killed", code)
    (most,) = query(tmp_path / ".probe" / "probe.duckdb", "SELECT max(count) FROM counts")[0]
    assert most > 1000


def test_max_events_truncates_the_journal_and_keeps_the_exit_code(tmp_path: Path):
    (tmp_path / "loop.wat").write_text(
        """
(module
  (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
  (memory (export "memory") 1)
  (func (export "_start")
    (local $i i32)
    (loop $again
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $again (i32.lt_u (local.get $i) (i32.const 200000))))
    (call $exit (i32.const 7))))
"""
    )
    out = probe("run", "-q", "-a", "trace", "--max-events", "5000", "loop.wat", cwd=tmp_path)
    assert out.returncode == 7, out.stderr
    (run,) = runs(tmp_path)
    assert run["status"] == "truncated"
    assert "event cap of 5,000" in run["message"]
    db = tmp_path / ".probe" / "probe.duckdb"
    assert query(db, "SELECT count(*), max(seq) FROM events")[0] == (5000, 4999)


def test_a_zero_byte_run_header_is_moved_aside_and_blocks_nothing(tmp_path: Path):
    (tmp_path / "app.py").write_text("print('hi')\n")
    assert probe("run", "-q", "app.py", cwd=tmp_path).returncode == 0
    assert probe("runs", cwd=tmp_path).returncode == 0  # stored
    broken = tmp_path / ".probe" / "probe.duckdb.spool" / "20260101-000000.000-dead"
    broken.mkdir(parents=True)
    (broken / "run.json").write_bytes(b"")
    out = probe("runs", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "unreadable run journal moved aside" in out.stderr
    assert (tmp_path / ".probe" / "probe.duckdb.spool.unreadable" / broken.name).is_dir()
    assert not broken.exists()
    assert probe("runs", cwd=tmp_path).stderr == ""  # said once, then out of the way


def test_readers_never_wait_for_a_reader(tmp_path: Path):
    (tmp_path / "app.py").write_text("print('hi')\n")
    assert probe("run", "-q", "app.py", cwd=tmp_path).returncode == 0
    assert probe("runs", cwd=tmp_path).returncode == 0  # ingested
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time\n"
            "from probe.storage import Database\n"
            "with Database(sys.argv[1]) as db:\n"
            "    db.execute('SELECT count(*) FROM runs').fetchall()\n"
            "    print('holding', flush=True)\n"
            "    time.sleep(30)\n",
            str(tmp_path / ".probe" / "probe.duckdb"),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "holding"
        t0 = time.monotonic()
        out = probe("query", "SELECT count(*) AS n FROM runs", "-f", "csv", cwd=tmp_path)
        assert out.returncode == 0, out.stderr
        assert out.stdout.split() == ["n", "1"]
        assert time.monotonic() - t0 < 10  # no lock wait (the old exclusive lock: 60 s, busy)
    finally:
        holder.kill()
        holder.wait()


def test_a_session_lets_go_of_the_database_after_each_query(tmp_path: Path):
    (tmp_path / "s.py").write_text(
        textwrap.dedent(
            """
            import subprocess, sys
            import probe

            def f(x):
                return x + 1

            s = probe.session("coverage", db="s.duckdb")
            with s:
                f(1)
            print(s.query("SELECT count(*) FROM runs").fetchall())
            # the session is still open: another process writes to the database
            done = subprocess.run(
                [sys.executable, "-m", "probe", "query", "--db", "s.duckdb",
                 "DELETE FROM runs WHERE status = 'nothing'"],
                capture_output=True, text=True, timeout=30)
            print(done.returncode, done.stderr.strip())
            """
        )
    )
    out = subprocess.run(
        [sys.executable, "s.py"], cwd=tmp_path, capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == ["[(1,)]", "0 "]


def test_a_forked_child_records_nothing_and_never_closes_the_parents_run(tmp_path: Path):
    (tmp_path / "forks.py").write_text(
        textwrap.dedent(
            """
            import os, sys

            def child():
                return 7

            pid = os.fork()
            if pid == 0:
                child()
                sys.exit(3)
            pid2 = os.fork()
            if pid2 == 0:
                os._exit(4)
            codes = [os.waitstatus_to_exitcode(os.waitpid(p, 0)[1]) for p in (pid, pid2)]
            print("children", codes)
            """
        )
    )
    out = probe("run", "forks.py", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "children [3, 4]"
    assert out.stderr.count("probe: run ") == 1, out.stderr
    assert "Traceback" not in out.stderr
    (run,) = runs(tmp_path)
    assert (run["status"], run["exit_code"]) == ("ok", 0)


def test_a_multiprocessing_pool_under_probe_ends_cleanly(tmp_path: Path):
    (tmp_path / "pool.py").write_text(
        textwrap.dedent(
            """
            import multiprocessing as mp

            def square(x):
                return x * x

            if __name__ == "__main__":
                with mp.Pool(2) as pool:  # its __exit__ terminates the workers (SIGTERM)
                    print(sum(pool.map(square, range(100))))
            """
        )
    )
    for _ in range(3):  # the old failures came one run in two
        out = probe("run", "pool.py", cwd=tmp_path, timeout=60)
        assert out.returncode == 0, out.stderr
        assert out.stdout.strip() == "328350"
        assert "Traceback" not in out.stderr and "_Terminated" not in out.stderr
        assert out.stderr.count("probe: run ") == 1, out.stderr
    assert [r["status"] for r in runs(tmp_path)] == ["ok"] * 3


def test_a_relative_db_holds_when_the_program_changes_directory(tmp_path: Path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "move.py").write_text("import os\nos.chdir('sub')\nx = 1\n")
    out = probe("run", "--db", "rel/p.duckdb", "move.py", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert (tmp_path / "rel" / "p.duckdb.spool").exists() or (tmp_path / "rel").is_dir()
    assert not (tmp_path / "sub" / "rel").exists()
    listed = probe("runs", "--db", "rel/p.duckdb", cwd=tmp_path)
    assert listed.returncode == 0 and " ok " in listed.stdout, listed.stderr


def test_deleting_the_journal_mid_run_keeps_the_exit_code_and_what_follows(tmp_path: Path):
    (tmp_path / "rm.py").write_text(
        "import shutil, sys\nshutil.rmtree('.probe')\nx = 1\nsys.exit(5)\n"
    )
    out = probe("run", "rm.py", cwd=tmp_path)
    assert out.returncode == 5, out.stderr
    assert "Traceback" not in out.stderr
    assert "journal was deleted" in out.stderr
    (run,) = runs(tmp_path)
    assert run["exit_code"] == 5
    assert "journal was deleted" in run["message"]


def test_a_program_that_closes_stderr_exits_as_under_python(tmp_path: Path):
    (tmp_path / "quiet.py").write_text("import sys\nsys.stderr.close()\nprint('out')\n")
    plain = subprocess.run([sys.executable, "quiet.py"], cwd=tmp_path, capture_output=True)
    out = probe("run", "quiet.py", cwd=tmp_path)
    assert (out.returncode, out.stdout) == (plain.returncode, "out\n") == (0, "out\n")
    assert runs(tmp_path)[0]["status"] == "ok"


def test_a_trap_at_instantiation_is_a_trap_of_the_run(tmp_path: Path):
    (tmp_path / "seg.wat").write_text(
        '(module (memory 1) (data (i32.const 70000) "x") (func (export "_start")))'
    )
    out = probe("run", "seg.wat", cwd=tmp_path)
    assert out.returncode == 134, out.stderr
    assert "Traceback" not in out.stderr and "internal error" not in out.stderr
    assert "out of bounds" in out.stderr
    (run,) = runs(tmp_path)
    assert run["status"] == "trap" and run["message"].startswith("instantiation:")


def test_a_source_that_is_not_utf8_names_its_line(tmp_path: Path):
    (tmp_path / "bad.py").write_bytes(b"x = 1\ny = 'caf\xe9'\n")
    out = probe("run", "bad.py", cwd=tmp_path)
    assert out.returncode == 2
    assert out.stderr.strip().endswith("bad.py:2: not utf-8 (byte 0xe9) and no encoding declared")
    assert "None" not in out.stderr


def test_a_lost_perf_helper_is_said_and_recorded_as_not_counted(tmp_path: Path):
    if subprocess.run(["perf", "--version"], capture_output=True).returncode != 0:
        pytest.skip("perf is not installed here")
    (tmp_path / "kill_perf.py").write_text(
        textwrap.dedent(
            """
            import os, signal, subprocess
            mine = subprocess.run(["pgrep", "-f", f"perf stat .* -p {os.getpid()}"],
                                  capture_output=True, text=True).stdout.split()
            for pid in mine:
                os.kill(int(pid), signal.SIGKILL)
            print(len(mine))
            """
        )
    )
    out = probe("run", "--counters", "task-clock", "kill_perf.py", cwd=tmp_path)
    if out.returncode == 2 and "perf" in out.stderr:
        pytest.skip(f"perf stat can't count here: {out.stderr.strip()}")
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "1"
    assert "perf stat gave no reading of task-clock (was it killed?)" in out.stderr
    db = tmp_path / ".probe" / "probe.duckdb"
    probe("runs", cwd=tmp_path)
    assert query(db, "SELECT event, status FROM counters") == [("task-clock", "not counted")]


def test_a_full_disk_keeps_the_exit_code_and_older_runs_readable(tmp_path: Path):
    """A small tmpfs as the disk (root can mount one; elsewhere this is skipped)."""
    disk = tmp_path / "disk"
    disk.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(disk)], capture_output=True
    )
    if mounted.returncode != 0:
        pytest.skip(f"can't mount a small tmpfs here: {mounted.stderr.decode().strip()}")
    try:
        db = disk / "p.duckdb"
        (tmp_path / "app.py").write_text("print('hi')\n")
        first = probe("run", "-q", "--db", str(db), "app.py", cwd=tmp_path)
        assert first.returncode == 0, first.stderr
        assert probe("runs", "--db", str(db), cwd=tmp_path).returncode == 0
        st = os.statvfs(disk)  # fill the disk but for 64 KiB: the journal starts, then fails
        (disk / "filler").write_bytes(b"\0" * (st.f_bavail * st.f_frsize - (64 << 10)))
        bounded = "(br_if $again (i64.lt_u (local.get $i) (i64.const 100000)))"
        (tmp_path / "loop.wat").write_text(SPIN_WAT.replace("(br $again)", bounded))
        out = probe("run", "-a", "trace", "--db", str(db), "loop.wat", cwd=tmp_path)
        assert out.returncode == 0, out.stderr  # the program's own exit code
        assert "Traceback" not in out.stderr and "internal error" not in out.stderr
        listed = probe("runs", "--db", str(db), cwd=tmp_path)
        assert listed.returncode == 0, listed.stderr  # the older run still reads
        assert "app.py" in listed.stdout
    finally:
        subprocess.run(["umount", "-l", str(disk)], capture_output=True)


def test_an_ingester_that_finds_its_runs_stored_leaves_the_database_closed(tmp_path: Path):
    """The run's background ingester waits for the writer's lock; a reader that came first
    stores the run meanwhile. Opened to write for nothing, the database would hold DuckDB's
    own file lock, and a user's duckdb opening it at that moment fails ("Conflicting lock").
    Here the test holds the lock, and takes the journal away as that reader would have."""
    import fcntl

    from probe.storage import spool

    (tmp_path / "app.py").write_text("print('hi')\n")
    db = tmp_path / "p.duckdb"
    with open(f"{db}.lock", "a+b") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        assert probe("run", "-q", "--db", str(db), "app.py", cwd=tmp_path).returncode == 0
        wait_for(lambda: spool.ingester_active(db))
        time.sleep(0.5)  # it has seen the journal, and waits for the lock
        (folder,) = spool.pending(db)
        aside = tmp_path / folder.name
        folder.rename(aside)
    wait_for(lambda: not spool.ingester_active(db))
    assert not db.exists()  # never opened (opening makes the file)
    aside.rename(folder)  # what the reader would have stored: stored now, by a reader
    assert probe("runs", "--db", str(db), cwd=tmp_path).returncode == 0
    assert query(db, "SELECT count(*) FROM runs") == [(1,)]


def test_a_part_that_died_making_its_journal_is_not_waited_for(tmp_path: Path):
    """A process killed between making its part's folder and writing its header leaves an
    empty folder: without a header nothing says it ended, but its pid (in the name) is gone."""
    (tmp_path / "app.py").write_text("print('hi')\n")
    assert probe("run", "-q", "app.py", cwd=tmp_path).returncode == 0
    (run,) = runs(tmp_path)
    gone = subprocess.Popen(["true"])
    gone.wait()
    spooled = tmp_path / ".probe" / "probe.duckdb.spool"
    empty = spooled / f"{run['run_id']}+{gone.pid}-beef"
    empty.mkdir()
    being_made = spooled / "20261206-031808.837-fcc7"  # a run's own: no pid to judge it by
    being_made.mkdir()
    out = probe("runs", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert not empty.exists()
    assert being_made.is_dir()
    assert len(runs(tmp_path)) == 1


_IMPORTS_FOR_3_S = """
import importlib, os, sys, time
os.makedirs("mods")
sys.path.insert(0, "mods")
body = "".join(
    f"def f{j}(x):\\n    if x:\\n        return x + {j}\\n    return -x\\n\\n" for j in range(60)
)
t0, i = time.monotonic(), 0
while time.monotonic() - t0 < 3:
    with open(f"mods/m{i}.py", "w") as f:
        f.write(body)
    importlib.import_module(f"m{i}").f0(1)
    i += 1
    if sys.version_info >= (3, 12):  # a few hundred modules, not thousands, where imports
        time.sleep(0.005)  # are fast; 3.11's rewriter keeps the loop in it most of the time
print(i)
"""


@pytest.mark.parametrize("python", INTERPRETERS, ids=version_of)
def test_snapshots_taken_while_code_is_being_instrumented_go_on(python: str, tmp_path: Path):
    """A snapshot (every 2 s) may come while a module is being instrumented: 3.11's
    rewriter had given its lines slots in the index but not yet made the slots, and the
    snapshot thread died on an IndexError, so a later SIGKILL lost every count after it."""
    (tmp_path / "imports.py").write_text(_IMPORTS_FOR_3_S)
    done = run_probe(python, "run", "-a", "coverage", "imports.py", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "snapshots of the run's counts stopped" not in done.stderr, done.stderr
    modules = int(done.stdout.split()[0])
    sql = "SELECT count(DISTINCT unit) AS n FROM sites WHERE unit LIKE '%/mods/m%'"
    assert probe_rows(python, sql, tmp_path) == [{"n": modules}]
