"""Operand events: the values each probe sees, their order, the ring's flushes, crashes."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest
from conftest import INTERPRETERS, PROGRAMS, query, run_probe, version_of

SAMPLES = Path(__file__).resolve().parents[1] / "samples" / "wasm"


def probe_run(cwd: Path, *args: str, python: str = sys.executable):
    out = run_probe(python, "run", "-q", "--db", "p.duckdb", *args, cwd=cwd)
    # Reading through probe ingests the journal the run left.
    run_probe(python, "runs", "--db", "p.duckdb", cwd=cwd)
    return out


@pytest.fixture
def wdir(tmp_path: Path, monkeypatch) -> Path:
    monkeypatch.setenv("PROBE_CACHE", str(tmp_path / "cache"))
    shutil.copy(PROGRAMS / "operands.wat", tmp_path)
    shutil.copy(SAMPLES / "calc.wasm", tmp_path)
    return tmp_path


def test_wasm_operands_are_the_values_the_program_used(wdir: Path) -> None:
    classes = ["--sites", "branch", "--sites", "store", "--sites", "call", "--sites", "func"]
    args = ["-a", "trace", *classes, "--sites", "return", "operands.wat", "--invoke", "run", "5"]
    out = probe_run(wdir, *args)
    assert out.returncode == 0 and out.stdout.strip() == "8"
    rows = query(wdir / "p.duckdb", "SELECT kind, func, target, value FROM trace ORDER BY seq")
    stores = [v for k, _, _, v in rows if k == "store"]
    assert stores == [100, 104, 108, 112, 116]  # effective address: i * 4 + offset 100
    callees = [v for k, _, _, v in rows if k == "call"]
    assert callees == [0, 1, 0, 1, 0]  # double, negate: the function each call reached
    branch = [(t, v) for k, _, t, v in rows if k == "branch"]
    assert [v for _, v in branch] == [0] * 5 + [1]  # br_if's condition, not taken then taken
    assert len({t for t, _ in branch}) == 2  # two arms, told apart by where they lead
    args_of = [(f, v) for k, f, _, v in rows if k == "func"]
    assert args_of[0] == ("run", 5) and ("negate", 3) in args_of
    returned = [(f, v) for k, f, _, v in rows if k == "return"]
    assert returned[-1] == ("run", 8) and ("negate", -1) in returned
    # Each call event comes right before the entry of the function it reached.
    kinds = [k for k, _, _, _ in rows]
    assert all(kinds[i + 1] == "func" for i, k in enumerate(kinds) if k == "call")


def test_ring_flushes_keep_every_event_in_order(wdir: Path) -> None:
    # calc.wasm: every block entry of a full run, well over one ring (65536 events).
    assert (
        probe_run(wdir, "-a", "trace", "-a", "hotness", "calc.wasm", "--", "64", "25").returncode
        == 0
    )
    db = wdir / "p.duckdb"
    n, low, high, distinct = query(
        db, "SELECT count(*), min(seq), max(seq), count(DISTINCT seq) FROM events"
    )[0]
    assert n > 65536 * 2 and (low, high, distinct) == (0, n - 1, n)
    wrong = query(
        db,
        "SELECT count(*) FROM (SELECT site_id, count(*) AS n FROM trace WHERE kind = 'block' "
        "GROUP BY 1) e FULL JOIN (SELECT c.site_id, c.count FROM counts c JOIN sites s "
        "USING (run_id, site_id) WHERE s.kind = 'block') h USING (site_id) "
        "WHERE e.n IS DISTINCT FROM h.count",
    )[0][0]
    assert wrong == 0


def test_a_trap_keeps_the_events_before_it(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("PROBE_CACHE", str(tmp_path / "cache"))
    (tmp_path / "trap.wat").write_text(
        """(module (memory 1)
          (func (export "go") (param $n i32) (local $i i32)
            loop $l
              local.get $i i32.const 1 i32.add local.tee $i
              local.get $n i32.eq if unreachable end
              br $l
            end))"""
    )
    out = probe_run(
        tmp_path, "-a", "trace", "--sites", "branch", "trap.wat", "--invoke", "go", "70000"
    )
    assert out.returncode == 134
    status, n = query(
        tmp_path / "p.duckdb",
        "SELECT status, (SELECT count(*) FROM events) FROM runs",
    )[0]
    assert status == "trap"
    assert n == 70000  # one `if` arm event per round, the trapping round's included


@pytest.mark.parametrize("python", INTERPRETERS, ids=version_of)
def test_python_events_lines_branches_returns(python: str, tmp_path: Path) -> None:
    shutil.copy(PROGRAMS / "calls.py", tmp_path)
    args = ["-a", "trace", "--sites", "line", "--sites", "return", "--sites", "branch"]
    out = probe_run(tmp_path, *args, "calls.py", python=python)
    assert out.returncode == 0, out.stderr
    db = tmp_path / "p.duckdb"
    returns = query(
        db,
        "SELECT func, value, detail FROM trace WHERE kind = 'return' AND func = 'risky' "
        "ORDER BY seq",
    )
    # risky(3) raises: its call ends with no value, and says why (a timeline's slice ends)
    assert returns == [
        ("risky", 0, "0"),
        ("risky", -1, "-1"),
        ("risky", -2, "-2"),
        ("risky", None, "raised ValueError"),
        ("risky", -4, "-4"),
    ]
    fib = query(db, "SELECT value FROM trace WHERE kind = 'return' AND func = 'fib' ORDER BY seq")
    assert fib[-1] == (144,)
    # The branch arc events of `if n < 2` in fib: to the return (line 6) or on (line 7).
    arcs = dict(
        query(
            db,
            "SELECT target, count(*) FROM trace WHERE kind = 'branch' AND func = 'fib' GROUP BY 1",
        )
    )
    assert arcs == {6: 233, 7: 232}
    first = query(db, "SELECT line FROM trace WHERE kind = 'line' ORDER BY seq LIMIT 1")
    assert first == [(4,)]  # def fib: the docstring is no statement, as in coverage.py


@pytest.mark.parametrize("python", INTERPRETERS, ids=version_of)
def test_trace_sites_limit_it_to_functions(python: str, tmp_path: Path) -> None:
    shutil.copy(PROGRAMS / "calls.py", tmp_path)
    out = probe_run(tmp_path, "-a", "trace", "--sites", "func:fib", "calls.py", python=python)
    assert out.returncode == 0, out.stderr
    funcs = query(tmp_path / "p.duckdb", "SELECT DISTINCT func FROM trace")
    assert funcs == [("fib",)]
    report = run_probe(python, "report", "trace", "--db", "p.duckdb", "-f", "jsonl", cwd=tmp_path)
    first = json.loads(report.stdout.splitlines()[0])
    assert first["func"] == "fib" and first["kind"] == "line"


def test_bad_sites_are_one_line_errors(tmp_path: Path) -> None:
    out = run_probe(
        sys.executable, "run", "-a", "trace", "--sites", "nonsense", "x.py", cwd=tmp_path
    )
    assert out.returncode == 2
    assert (
        out.stderr.startswith("probe: error: --sites 'nonsense'") and "Traceback" not in out.stderr
    )


def test_a_killed_run_keeps_every_whole_batch(tmp_path: Path, monkeypatch) -> None:
    import os
    import signal
    import subprocess
    import time

    monkeypatch.setenv("PROBE_CACHE", str(tmp_path / "cache"))
    (tmp_path / "spin.wat").write_text(
        """(module (func (export "go") (local $i i32)
            loop $l
              local.get $i i32.const 1 i32.add local.tee $i
              i32.const 0 i32.ne br_if $l
            end))"""
    )
    cmd = [sys.executable, "-m", "probe", "run", "-q", "--db", "p.duckdb", "-a", "trace"]
    proc = subprocess.Popen(
        [*cmd, "--sites", "branch", "spin.wat", "--invoke", "go"],
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    spool = tmp_path / "p.duckdb.spool"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        streams = list(spool.glob("*/*.arrows")) if spool.exists() else []
        # seq, site_id and value: 24 bytes an event in the stream
        if streams and streams[0].stat().st_size > 10 * 65536 * 24:
            break
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    run_probe(sys.executable, "runs", "--db", "p.duckdb", cwd=tmp_path)
    status, n, top = query(
        tmp_path / "p.duckdb",
        "SELECT status, (SELECT count(*) FROM events), (SELECT max(seq) FROM events) FROM runs",
    )[0]
    assert status == "killed"
    assert n >= 10 * 65536 and n % 65536 == 0 and top == n - 1  # whole batches, in order


@pytest.mark.parametrize("python", INTERPRETERS, ids=version_of)
def test_python_events_from_several_threads_are_all_kept(python: str, tmp_path: Path) -> None:
    shutil.copy(PROGRAMS / "threads.py", tmp_path)
    out = probe_run(tmp_path, "-a", "trace", "-a", "hotness", "threads.py", python=python)
    assert out.returncode == 0, out.stderr
    db = tmp_path / "p.duckdb"
    differ = query(
        db,
        "SELECT count(*) FROM (SELECT site_id, count(*) AS n FROM trace WHERE kind = 'line' "
        "GROUP BY 1) t FULL JOIN (SELECT site_id, c.count AS n FROM counts c JOIN sites s "
        "USING (run_id, site_id) WHERE s.kind = 'line') h USING (site_id) "
        "WHERE t.n IS DISTINCT FROM h.n",
    )
    assert differ == [(0,)]
    (loop,) = query(db, "SELECT count(*) FROM trace WHERE func = 'worker' AND line = 10")[0]
    assert loop == 1000 + 2000 + 3000 + 10  # `if i % 7 == 0` once per round, on every thread
