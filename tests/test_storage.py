"""The DuckDB database: the SQL contract, accumulation, the Arrow sink, export, locking."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import probe_rows, run_probe

from probe.errors import StorageError
from probe.storage import TABLES, Database

CONTRACT = {
    "runs": [
        "run_id",
        "target",
        "engine",
        "analyses",
        "argv",
        "started_at",
        "wall_s",
        "status",
        "exit_code",
        "message",
    ],
    "sites": ["run_id", "site_id", "kind", "unit", "func", "line", "offset", "target"],
    "counts": ["run_id", "site_id", "count"],
    "events": ["run_id", "seq", "site_id", "value"],
}


def test_tables_keep_the_sql_contract(tmp_path) -> None:
    with Database(str(tmp_path / "p.duckdb"), must_exist=False) as db:
        for table, columns in CONTRACT.items():
            have = [r[0] for r in db.execute(f"DESCRIBE {table}").fetchall()]
            assert have[: len(columns)] == columns or set(columns) <= set(have)
    assert set(CONTRACT) <= set(TABLES)


def test_sink_appends_whole_arrow_batches(tmp_path) -> None:
    with Database(str(tmp_path / "p.duckdb"), must_exist=False) as db:
        n = 100_000
        batch = pa.record_batch(
            {
                "run_id": ["r"] * n,
                "seq": list(range(n)),
                "site_id": [i % 7 for i in range(n)],
                "value": [1] * n,
            }
        )
        db.append("events", batch)
        db.append("events", batch)
        assert db.execute("SELECT count(*), sum(seq) FROM events").fetchone() == (
            2 * n,
            n * (n - 1),
        )


def test_runs_accumulate_with_their_own_ids(workdir) -> None:
    for args in (["helper.py"], ["app.py"], ["control.py"]):
        assert run_probe(sys.executable, "run", "-q", *args, cwd=workdir).returncode == 0
    out = run_probe(
        sys.executable,
        "query",
        "--format",
        "json",
        "SELECT run_id, target, engine, status FROM runs",
        cwd=workdir,
    )
    runs = json.loads(out.stdout)
    assert len(runs) == 3 and len({r["run_id"] for r in runs}) == 3
    assert {r["engine"] for r in runs} == {"cpython"}
    per_run = run_probe(
        sys.executable,
        "query",
        "--format",
        "csv",
        "SELECT count(DISTINCT run_id) FROM sites",
        cwd=workdir,
    )
    assert per_run.stdout.splitlines()[1] == "3"


def test_query_formats_and_bad_sql(workdir) -> None:
    run_probe(sys.executable, "run", "-q", "helper.py", cwd=workdir)
    sql = "SELECT unit, count(*) AS n FROM sites JOIN counts USING (run_id, site_id) GROUP BY unit"
    table = run_probe(sys.executable, "query", sql, cwd=workdir)
    assert table.returncode == 0 and "helper.py" in table.stdout and "(1 row)" in table.stdout
    csv = run_probe(sys.executable, "query", "--format", "csv", sql, cwd=workdir)
    assert csv.stdout.splitlines()[0] == "unit,n"
    bad = run_probe(sys.executable, "query", "SELEC nonsense", cwd=workdir)
    assert bad.returncode == 2
    assert bad.stderr.count("\n") == 1 and bad.stderr.startswith("probe: error:")
    missing = run_probe(sys.executable, "query", "SELECT * FROM nope", cwd=workdir)
    assert (
        missing.returncode == 2 and "nope" in missing.stderr and "Traceback" not in missing.stderr
    )


def test_export_parquet_writes_every_table(workdir, tmp_path) -> None:
    run_probe(sys.executable, "run", "-q", "--branch", "control.py", cwd=workdir)
    out = tmp_path / "export"
    done = run_probe(sys.executable, "export", "--format", "parquet", str(out), cwd=workdir)
    assert done.returncode == 0, done.stderr
    for table in CONTRACT:
        assert (out / f"{table}.parquet").exists()
    sites = pq.read_table(out / "sites.parquet")
    kinds = set(sites.column("kind").to_pylist())
    assert {"line", "branch"} <= kinds
    con = duckdb.connect(str(workdir / ".probe" / "probe.duckdb"), read_only=True)
    assert con.execute("SELECT count(*) FROM sites").fetchone()[0] == sites.num_rows


def test_db_option_and_environment(workdir, tmp_path) -> None:
    elsewhere = tmp_path / "elsewhere" / "x.duckdb"
    run_probe(sys.executable, "run", "-q", "--db", str(elsewhere), "helper.py", cwd=workdir)
    via_env = run_probe(sys.executable, "runs", cwd=workdir, env={"PROBE_DB": str(elsewhere)})
    assert "helper.py" in via_env.stdout
    assert not (workdir / ".probe").exists()


def test_unwritable_database_is_one_line(workdir) -> None:
    got = run_probe(sys.executable, "run", "--db", "/dev/null/x.duckdb", "helper.py", cwd=workdir)
    assert got.returncode == 2
    assert got.stderr.startswith("probe: error:") and got.stderr.count("\n") == 1
    no_db = run_probe(sys.executable, "runs", "--db", str(workdir / "none.duckdb"), cwd=workdir)
    assert no_db.returncode == 2 and "no database" in no_db.stderr


def test_database_locked_by_another_program(workdir) -> None:
    assert run_probe(sys.executable, "run", "-q", "helper.py", cwd=workdir).returncode == 0
    assert run_probe(sys.executable, "runs", cwd=workdir).returncode == 0  # ingested now
    path = workdir / ".probe" / "probe.duckdb"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            f"import duckdb, time; c = duckdb.connect({str(path)!r}); print('held', flush=True); "
            "time.sleep(60)",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline() == "held\n"
        blocked = run_probe(sys.executable, "runs", cwd=workdir)
        assert blocked.returncode == 2
        assert "locked by another process" in blocked.stderr
        assert blocked.stderr.count("\n") == 1
        # A run needs no database lock: its journal waits for the next reader.
        assert run_probe(sys.executable, "run", "-q", "app.py", cwd=workdir).returncode == 0
    finally:
        holder.kill()
        holder.wait()
    time.sleep(0.2)
    after = run_probe(
        sys.executable, "query", "--format", "csv", "SELECT count(*) FROM runs", cwd=workdir
    )
    assert after.stdout.splitlines()[1] == "2"  # nothing lost


def test_missing_database_is_a_storage_error(tmp_path) -> None:
    with pytest.raises(StorageError, match="no database"):
        Database(str(tmp_path / "absent.duckdb"))


def test_a_database_an_older_probe_filed_events_into_reads_on(tmp_path) -> None:
    """events gained a column (thread) since an older probe filed a run's events as Parquet:
    its files and its empty file of every column lack it, and its DuckDB table did too. New
    runs go in beside it and every row reads, the older ones' thread NULL."""
    import shutil

    from conftest import SAMPLES

    from probe.storage.filed import folder

    shutil.copy(SAMPLES / "wasm" / "fib.wat", tmp_path)
    env = {"PROBE_CACHE": str(tmp_path / "cache")}
    run = ["run", "-q", "-a", "trace", "--sites", "func", "--sites", "return"]
    done = run_probe(sys.executable, *run, "--invoke", "fib", "fib.wat", "26", cwd=tmp_path,
                     env=env)  # fmt: skip
    assert done.returncode == 0, done.stderr
    first = run_probe(sys.executable, "query", "-f", "csv", "SELECT count(*) FROM events",
                      cwd=tmp_path)  # fmt: skip
    events = int(first.stdout.split()[1])
    db = tmp_path / ".probe" / "probe.duckdb"
    files = sorted(p for p in (tmp_path / folder(str(db), "events")).glob("*.parquet"))
    assert any(not p.name.startswith("_columns") for p in files)  # the run was filed
    for path in files:  # as the older probe wrote them: no thread column
        old = pq.read_table(path)
        old = old.drop_columns(["thread"]) if "thread" in old.column_names else old
        path.unlink()
        pq.write_table(old, path.with_name("_columns.parquet") if path.name.startswith(
            "_columns") else path)  # fmt: skip
    con = duckdb.connect(str(db))
    con.execute("DROP VIEW IF EXISTS trace")
    con.execute("DROP VIEW IF EXISTS events")
    con.execute("ALTER TABLE events_rows DROP COLUMN thread")
    con.execute("UPDATE probe_schema SET stamp = 'an older probe'")  # as its probe left it
    con.close()
    (tmp_path / "app.py").write_text("def f():\n    return 1\n\nf()\n")
    assert run_probe(sys.executable, *run, "app.py", cwd=tmp_path).returncode == 0
    sql = "SELECT count(*) AS n, count(thread) AS threaded FROM events"
    (row,) = probe_rows(sys.executable, sql, tmp_path)
    assert row["n"] > events and row["threaded"] == row["n"] - events
