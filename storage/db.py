"""The DuckDB database: opening it safely, ingesting journals, the Arrow sink, queries.

Readers never wait for readers. A reader holds a shared lock on ``<db>.lock`` and
opens DuckDB read-only (many processes may); a writer (ingest, a statement that
writes) holds the exclusive lock, briefly. The runs that had ended when a reader came
are stored before it reads: by the background ingester if one is at work, else by the
reader itself when the exclusive lock is free at that moment. DuckDB's memory is
capped (``MEMORY_LIMIT``): journals are streamed in as Arrow batches, never whole.
A database held by some other program (the duckdb shell, say) is reported as
locked, in one line.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import time
from collections.abc import Iterator, Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from probe.errors import StorageError

from . import filed, spool
from .schema import FILED, TABLES, VIEWS, arrow_schema, ddl, filed_view_ddl, stored_as, view_ddl
from .spool import resolve_path

if TYPE_CHECKING:
    import duckdb
    import pyarrow as pa

LOCK_WAIT_S = 60.0
READER_INGEST_S = 0.2  # a reader stores runs for at most this long before it reads
# What runs combine and parts add to their run: sites matched by identity, their counts summed.
MERGED = ("sites", "counts", "context_counts")
MEMORY_LIMIT = "400MB"  # DuckDB spills to disk past it: a probe process stays under 500 MB


class Database:
    """An open probe database. Use as a context manager."""

    def __init__(
        self,
        path: str | None = None,
        must_exist: bool = True,
        files_only: bool = False,
        write: bool = False,
        budget_s: float | None = None,
        if_waiting: bool = False,
    ) -> None:
        """``files_only``: where there is no database, open an empty one in memory (a query
        over Parquet files, a corpus build's, needs no recorded run). ``write``: open it
        for writing (ingest runs, change rows); otherwise read-only, upgraded by a
        statement that writes. ``budget_s``: when opened for writing, ingest journals for
        about that long (see ingest), not all of them. ``if_waiting`` (with ``write``): open
        DuckDB only if journals still wait once the writer's lock is held; else ``con`` is
        None and nothing was opened."""
        self.path = resolve_path(path)
        missing = not os.path.exists(self.path) and not spool.pending(self.path)
        if missing and must_exist and not files_only:
            raise StorageError(f"no database at {self.path} (record a run with `probe run` first)")
        self.in_memory = missing and files_only
        self.writable = False
        self.ingested = 0  # runs this opening stored
        if self.in_memory:
            self._lock = _Lock(None, self.path)
            self.con = _connect(":memory:")
            self.writable = True
            self._set_up()
            return
        self._lock = _Lock.open(self.path)
        try:
            if write or not os.path.exists(self.path):
                self._open_for_writing(budget_s, if_waiting)
            else:
                self._open_for_reading()
        except BaseException:
            self._lock.close()
            raise

    def _open_for_writing(self, budget_s: float | None = None, if_waiting: bool = False) -> None:
        _import_before_the_lock()
        self._lock.take(exclusive=True)
        # Asked again under the lock: a reader may have stored the journals while this
        # waited for it, and DuckDB opened to write for nothing would still hold its own
        # file lock, which a user's duckdb opening the file at that moment fails on.
        if if_waiting and not spool.ready(self.path):
            self.con = None
            return
        self.con = _connect(self.path)
        self.writable = True
        self._set_up()
        self.ingested = self.ingest(budget_s)

    def _open_for_reading(self) -> None:
        # The runs that had ended when this reader came are stored before it reads (the run
        # its user just made, say): by the background ingester if one is at work (its slices
        # are short: wait them out), else by this reader when no one holds the database.
        # Runs that end meanwhile are not waited for, and readers never wait for readers.
        waiting = spool.ready(self.path)
        deadline = time.monotonic() + LOCK_WAIT_S / 6
        while waiting and time.monotonic() < deadline:
            if not spool.ingester_active(self.path):
                _import_before_the_lock()
                if self._lock.take(exclusive=True, wait=False):
                    self._ingest_now()
                    self._lock.release()
            else:
                self._lock.take(exclusive=False)  # waits out a slice of ingest
                self._lock.release()
            waiting &= spool.ready(self.path)
            if waiting:
                time.sleep(0.02)
        self._lock.take(exclusive=False)
        self.con = _connect(self.path, read_only=True)
        if not _up_to_date(self.con, self.path):  # written by an older probe: migrate it first
            self.con.close()
            self._open_for_writing()
            return
        self.con.execute(f"SET memory_limit = '{MEMORY_LIMIT}'")

    def _ingest_now(self) -> None:
        try:
            self.con = _connect(self.path)
        except StorageError as e:
            spool.warn(f"new runs were not stored yet: {e}")
            return
        try:
            self._set_up()
            self.ingest(budget_s=READER_INGEST_S)
        except StorageError as e:  # a full disk, say: the runs stored already still read
            spool.warn(f"new runs were not stored yet: {e}")
        finally:
            self.con.close()

    def _set_up(self) -> None:
        self.con.execute(f"SET memory_limit = '{MEMORY_LIMIT}'")
        if not self.in_memory and _up_to_date(self.con, self.path):
            return
        for table in FILED:  # written by a probe that kept these rows in the table itself
            kind = self.con.execute(
                "SELECT table_type FROM information_schema.tables WHERE table_name = ?", [table]
            ).fetchall()
            if kind and kind[0][0] == "BASE TABLE":
                self.con.execute(f"ALTER TABLE {table} RENAME TO {stored_as(table)}")
        for table in TABLES:
            self.con.execute(ddl(table))
            _add_missing_columns(self.con, table)
        for table in FILED:
            if self.in_memory:
                self.con.execute(
                    f"CREATE OR REPLACE VIEW {table} AS SELECT * FROM {stored_as(table)}"
                )
            else:
                self.con.execute(filed_view_ddl(table, filed.ready(self.path, table)))
        for view in VIEWS:
            self.con.execute(view_ddl(view))
        if not self.in_memory:
            self.con.execute(
                "CREATE OR REPLACE TABLE probe_schema AS SELECT ? AS stamp",
                [_schema_stamp(self.path)],
            )

    def __enter__(self) -> Database:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self.con is not None:
            self.con.close()
        self._lock.close()

    # -- the sink ---------------------------------------------------------------

    def append(
        self, table: str, data: pa.Table | pa.RecordBatch | pa.RecordBatchReader, run_id: str = ""
    ) -> None:
        """Append Arrow data to ``table`` (columns matched by name), in one statement.

        With ``run_id`` every row gets it: a constant in the query, not a column of
        millions of copies.
        """
        self.con.register("_probe_batch", data)
        extra = ", ? AS run_id" if run_id else ""
        try:
            self.con.execute(
                f"INSERT INTO {stored_as(table)} BY NAME SELECT *{extra} FROM _probe_batch",
                [run_id] if run_id else [],
            )
        finally:
            self.con.unregister("_probe_batch")

    def ingest(self, budget_s: float | None = None) -> int:
        """Move finished journals into the database, one transaction per run. A journal
        whose header can't be read (a power loss can leave it empty) is moved aside to
        ``<db>.spool.unreadable/`` with a warning: it never blocks the others.

        ``budget_s``: the newest first (the run its user just made), and none begun after
        that long: a reader's, and the background ingester's slices."""
        import duckdb

        done = 0
        t0 = time.monotonic()
        journals = spool.finished(self.path)
        if budget_s is not None:  # the newest first, parts still after their runs
            journals = sorted(reversed(journals), key=lambda j: bool(j[1] and j[1].get("part_of")))
        for folder, header, why in journals:
            if budget_s is not None and done and time.monotonic() - t0 > budget_s:
                break
            if header is None:
                spool.set_aside(folder, why)
                continue
            try:
                self._ingest_one(folder, header)
            except duckdb.Error as e:
                raise StorageError(f"run {folder.name} not stored: {_first_line(e)}") from None
            shutil.rmtree(folder, ignore_errors=True)
            done += 1
        return done

    def _ingest_one(self, folder: Path, header: dict[str, Any]) -> None:
        import pyarrow as pa

        run_id = header["run_id"]
        if self._stored(run_id):
            return  # ingested before, the journal outlived its commit
        spool.make_deferred(folder, header)
        chunks = spool.chunks(folder)
        if not header.get("closed"):
            header["status"] = "killed"
            header["message"] = "; ".join(
                filter(None, ["probe stopped before the run ended; events up to then are kept",
                              header.get("message")])
            )  # fmt: skip
            snapshot = spool.latest_snapshot(folder)
            if snapshot is not None:
                chunks += spool.chunks(snapshot[0])
                header["message"] += f"; counts as of {snapshot[1]:.1f} s into the run"
            elif not any(table == "counts" for table, _, _ in chunks):
                header["message"] += "; no counts (it ended before the first snapshot)"
        part_of = header.get("part_of")
        if part_of is not None:
            if not self._stored(part_of):  # the run it is a part of was lost: keep it alone
                header["parent"] = part_of
                header["message"] = "; ".join(
                    filter(None, [f"a process of run {part_of}, which was not stored",
                                  header.get("message")])
                )  # fmt: skip
                part_of = None
        row = {name: header.get(name) for name, _ in TABLES["runs"]}
        row["started_at"] = datetime.fromtimestamp(header["started_at"])
        row["options"] = json.dumps(header.get("options") or {})
        # Events carry their order in seq: let DuckDB write them in parallel, in any order.
        self.con.execute("SET preserve_insertion_order = false")
        self.con.execute("BEGIN TRANSACTION")
        files: list[Path] = []  # Parquet written for this run: removed if it is not stored
        try:
            if part_of is None:
                self.append("runs", pa.Table.from_pylist([row], schema=arrow_schema("runs")))
            for table, chunk, size in chunks:
                if part_of is not None and table not in MERGED:
                    continue  # a part adds its counts to its run's; its events are not kept
                if table in FILED and isinstance(chunk, pa.RecordBatchReader):
                    if size >= filed.FILE_FROM:
                        files += filed.write(chunk, self.path, table, run_id, len(files))
                        continue
                if isinstance(chunk, dict):
                    schema = arrow_schema(table)
                    chunk = pa.table(chunk, schema=pa.schema([schema.field(c) for c in chunk]))
                if isinstance(chunk, pa.Table) and not chunk.num_rows:
                    continue
                if table not in TABLES:  # an analysis's own table: made to fit its first rows
                    self.con.register("_probe_batch", chunk)
                    self.con.execute(
                        f"CREATE TABLE IF NOT EXISTS {table} AS "
                        "SELECT ''::VARCHAR AS run_id, * FROM _probe_batch LIMIT 0"
                    )
                    self.con.unregister("_probe_batch")
                self.append(table, chunk, run_id)
            if part_of is not None:  # a child process's counts, added to its run's
                self._merge_into(part_of, [run_id])
                for table in MERGED:
                    self.con.execute(f"DELETE FROM {table} WHERE run_id = ?", [run_id])
                if not header.get("closed"):  # killed (SIGKILL): a part takes no snapshots
                    lost = f"process {header.get('pid')} it started was killed: its counts are lost"
                    self.con.execute(
                        "UPDATE runs SET message = concat_ws('; ', message, ?) WHERE run_id = ?",
                        [lost, part_of],
                    )
            self.con.execute("COMMIT")
        except BaseException:
            self.con.execute("ROLLBACK")
            for path in files:
                path.unlink(missing_ok=True)
            raise
        finally:
            self.con.execute("RESET preserve_insertion_order")

    # -- reading ----------------------------------------------------------------

    def sql(self, query: str) -> duckdb.DuckDBPyRelation | None:
        """A DuckDB relation for ``query`` (lazy: it runs when read); None for statements."""
        import duckdb

        try:
            return self.con.sql(query)
        except duckdb.Error as e:
            raise StorageError(_first_line(e)) from None

    def execute(self, query: str, params: list[Any] | None = None) -> Result:
        """Run ``query`` now; the result has ``columns``, ``fetchall()`` and ``fetchone()``."""
        import duckdb

        try:
            cur = self.con.execute(query, params or [])
        except duckdb.Error as e:
            if self.writable or "read-only mode" not in str(e):
                raise StorageError(_first_line(e)) from None
            self._reopen_for_writing()  # the statement writes: take the writer's lock
            return self.execute(query, params)
        return Result(cur)

    def _reopen_for_writing(self) -> None:
        self.con.close()
        self._open_for_writing()

    def arrow(self, query: str, params: list[Any] | None = None) -> pa.Table:
        """The rows of ``query`` as one Arrow table."""
        import duckdb

        try:
            rel = self.con.sql(query, params=params or None)
            # duckdb 2 returns a reader from arrow(); to_arrow_table() is the table in both.
            return rel.to_arrow_table() if hasattr(rel, "to_arrow_table") else rel.arrow()
        except duckdb.Error as e:
            raise StorageError(_first_line(e)) from None

    def batches(
        self, query: str, params: list[Any] | None = None, rows: int = 1 << 20
    ) -> Iterator[pa.RecordBatch]:
        """The rows of ``query`` as Arrow batches of about ``rows``, read as they are taken:
        a run's 10^8 events in bounded memory (the handle stays open meanwhile)."""
        import duckdb

        try:
            rel = self.con.sql(query, params=params or None)
            # duckdb 2 names it to_arrow_reader; 1.x fetch_record_batch
            read = getattr(rel, "to_arrow_reader", None) or rel.fetch_record_batch
            yield from read(rows)
        except duckdb.Error as e:
            raise StorageError(_first_line(e)) from None

    def detached(self, query: str, params: list[Any] | None = None) -> duckdb.DuckDBPyRelation:
        """The rows of ``query`` copied into a database of their own in memory, with
        DuckDB's types: a relation that outlives this handle (and its lock)."""
        import duckdb

        mem = duckdb.connect(":memory:")
        escaped = self.path.replace("'", "''")
        try:
            mem.execute(f"ATTACH '{escaped}' AS probe_file (READ_ONLY)")
            mem.execute("USE probe_file")
            mem.execute(f"CREATE TABLE memory.main.result AS {query}", params or [])
            mem.execute("USE memory")
            mem.execute("DETACH probe_file")
        except duckdb.Error as e:
            mem.close()
            raise StorageError(_first_line(e)) from None
        return mem.table("result")

    def table_names(self) -> set[str]:
        """Every table in the database: the contract's and the analyses' own."""
        return {
            row[0] for row in self.con.execute("SELECT table_name FROM duckdb_tables()").fetchall()
        }

    def run(self, run_id: str) -> dict[str, Any]:
        """A stored run's row of ``runs``, its options as a dict (as a run's header has them
        while it is recorded); StorageError if there is none."""
        cursor = self.con.execute("SELECT * FROM runs WHERE run_id = ?", [run_id])
        rows = cursor.fetchall()  # all: a result left open blocks this connection's next read
        if not rows:
            raise StorageError(f"no run {run_id!r} in {self.path} (probe runs lists them)")
        row = rows[0]
        run = dict(zip([d[0] for d in cursor.description], row, strict=True))
        run["options"] = json.loads(run["options"] or "{}")
        return run

    def run_for(self, analysis: str | None = None, run_id: str | None = None) -> str:
        """``run_id`` if the database has it, else the latest top-level run (with the
        analysis); StorageError if there is none."""
        if run_id is None:
            return self.latest_run(analysis)
        if not self._stored(run_id):
            raise StorageError(f"no run {run_id!r} in {self.path} (probe runs lists them)")
        return run_id

    def latest_run(self, analysis: str | None = None) -> str:
        """The latest top-level run (not one started inside another), with the analysis."""
        q = "SELECT run_id FROM runs WHERE parent IS NULL"
        params: list[Any] = []
        if analysis:
            q += " AND list_contains(analyses, ?)"
            params.append(analysis)
        rows = self.con.execute(
            q + " ORDER BY started_at DESC, run_id DESC LIMIT 1", params
        ).fetchall()
        row = rows[0] if rows else None
        if row is None:
            if analysis:
                raise StorageError(
                    f"no run with the {analysis} analysis in {self.path} "
                    f"(probe run -a {analysis} TARGET records one)"
                )
            raise StorageError(f"no run in {self.path}")
        return row[0]

    def erase(self, run_ids: Sequence[str]) -> list[str]:
        """Delete runs, with the runs started inside them, from every table that has a
        run_id (the analyses' own too) and their event files; the run ids deleted. Unknown
        ids are a StorageError before anything is deleted."""
        known = {r for (r,) in self.con.execute("SELECT run_id FROM runs").fetchall()}
        unknown = [r for r in run_ids if r not in known]
        if unknown:
            raise StorageError(f"no run {unknown[0]!r} in {self.path} (probe runs lists them)")
        doomed = set(run_ids)
        while True:  # and every run started inside one of them
            marks = ",".join("?" * len(doomed))
            inner = self.con.execute(
                f"SELECT run_id FROM runs WHERE parent IN ({marks})", list(doomed)
            ).fetchall()
            more = {r for (r,) in inner} - doomed
            if not more:
                break
            doomed |= more
        marks = ",".join("?" * len(doomed))
        self.con.execute("BEGIN TRANSACTION")
        try:
            for table in self._tables_with_run_id():
                self.con.execute(f'DELETE FROM "{table}" WHERE run_id IN ({marks})', list(doomed))
            self.con.execute("COMMIT")
        except BaseException:
            self.con.execute("ROLLBACK")
            raise
        for table in FILED:
            for run_id in doomed:
                for path in Path(filed.folder(self.path, table)).glob(f"{run_id}-*.parquet"):
                    path.unlink(missing_ok=True)
        return sorted(doomed)

    def combine(self, run_ids: Sequence[str], sources: Sequence[str] = ()) -> str:
        """One new run that is the union of runs: what coverage.py's combine does for its data
        files. ``sources``: other probe databases (several CI jobs' or test workers'), whose
        top-level runs are copied in first and, with no ``run_ids``, are the runs combined.
        Sites are matched by what they are (kind, file, function, line, arc), not by their
        ids (each run numbers its own); counts add up. Streams (events, steps) and
        counters are not combined. Returns the new run's id."""
        copied: list[str] = []
        added: list[str] = []  # copied in now: taken out again if the combining fails
        try:
            for source in sources:
                theirs, new_here = self._copy_runs(source)
                copied += theirs
                added += new_here
            return self._combined(list(dict.fromkeys(run_ids or copied)))
        except BaseException:
            if added:
                self.erase(added)
            raise

    def _stored(self, run_id: str) -> bool:
        # fetchall: a result left unfinished keeps the connection from its next relation
        return bool(self.con.execute("SELECT 1 FROM runs WHERE run_id = ?", [run_id]).fetchall())

    def _tables_with_run_id(self) -> list[str]:
        """Every table with a run_id column: the contract's and the analyses' own."""
        return [
            name
            for (name,) in self.con.execute(
                "SELECT DISTINCT table_name FROM duckdb_columns() WHERE column_name = 'run_id' "
                "AND table_name IN (SELECT table_name FROM duckdb_tables())"
            ).fetchall()
        ]

    def _combined(self, chosen: list[str]) -> str:
        from .spool import new_run_id

        if len(chosen) < 2:
            raise StorageError("combine needs two runs or more (--run ID, or other databases)")
        for run_id in chosen:
            self.run_for(None, run_id)  # a StorageError naming an unknown id
        marks = ",".join("?" * len(chosen))
        rows = self.con.execute(
            f"SELECT run_id, engine, options, cwd, analyses FROM runs WHERE run_id IN ({marks})",
            chosen,
        ).fetchall()
        engines = {engine for _, engine, _, _, _ in rows}
        if len(engines) > 1:
            raise StorageError(f"can't combine runs of different engines: {sorted(engines)}")
        branches = {bool(json.loads(opts or "{}").get("branch")) for _, _, opts, _, _ in rows}
        if len(branches) > 1:
            raise StorageError("can't combine runs with branch coverage and runs without")
        analyses = sorted({a for *_, names in rows for a in names or []})
        new = new_run_id()
        self.con.execute("BEGIN TRANSACTION")
        try:
            self.con.execute(
                "INSERT INTO runs BY NAME SELECT ? AS run_id, now()::TIMESTAMP AS started_at, "
                "? AS engine, ? AS target, []::VARCHAR[] AS argv, 'ok' AS status, 0 AS exit_code, "
                "? AS message, ? AS cwd, ? AS options, ? AS analyses, "
                f"sum(wall_s) AS wall_s FROM runs WHERE run_id IN ({marks})",
                [new, rows[0][1], f"combined: {', '.join(chosen)}",
                 f"combined from {len(chosen)} runs", rows[0][3], rows[0][2], analyses,
                 *chosen],
            )  # fmt: skip
            self._merge_into(new, chosen)
            self.con.execute("COMMIT")
        except BaseException:
            self.con.execute("ROLLBACK")
            raise
        return new

    def _merge_into(self, target: str, others: list[str]) -> None:
        """Add the sites and counts of runs ``others`` to run ``target``, inside the caller's
        transaction. Sites are matched by what they are (kind, file, function, line, arc),
        not by their ids (each run numbers its own): the target's keep their ids (its events
        name them), sites new to it are numbered after them. Counts add up, ranges widen."""
        key = ("kind", "unit", "func", "line", '"offset"', "target", "size")
        same = " AND ".join(f"k.{c} IS NOT DISTINCT FROM m.{c}" for c in key)
        cols = ", ".join(key)
        runs = [target, *others]
        marks = ",".join("?" * len(runs))
        try:
            self.con.execute(
                f"CREATE TEMP TABLE _probe_keyed AS SELECT run_id, site_id, {cols} FROM sites "
                f"WHERE run_id IN ({marks})",
                runs,
            )
            self.con.execute(
                f"CREATE TEMP TABLE _probe_merged AS SELECT site_id, {cols} FROM _probe_keyed "
                "WHERE run_id = $1 UNION ALL "
                "SELECT (SELECT coalesce(max(site_id), -1) FROM _probe_keyed WHERE run_id = $1) "
                f'+ row_number() OVER (ORDER BY unit, kind, line, target, func, "offset"), {cols} '
                f"FROM (SELECT {cols} FROM _probe_keyed WHERE run_id <> $1 "
                f"EXCEPT SELECT {cols} FROM _probe_keyed WHERE run_id = $1)",
                [target],
            )
            self.con.execute(
                f"INSERT INTO sites BY NAME SELECT ? AS run_id, site_id, {cols} FROM _probe_merged "
                "WHERE site_id NOT IN (SELECT site_id FROM sites WHERE run_id = ?)",
                [target, target],
            )
            joined = f"JOIN _probe_keyed k USING (run_id, site_id) JOIN _probe_merged m ON {same}"
            for table, group, sums in (
                ("counts", "m.site_id",
                 "sum(c.count) AS count, min(c.low) AS low, max(c.high) AS high"),
                ("context_counts", "c.context, m.site_id", "sum(c.count) AS count"),
            ):  # fmt: skip
                self.con.execute(
                    f"CREATE TEMP TABLE _probe_summed AS SELECT {group}, {sums} FROM {table} c "
                    f"{joined} WHERE c.run_id IN ({marks}) GROUP BY {group}",
                    runs,
                )
                self.con.execute(f"DELETE FROM {table} WHERE run_id = ?", [target])
                self.con.execute(
                    f"INSERT INTO {table} BY NAME SELECT ? AS run_id, * FROM _probe_summed",
                    [target],
                )
                self.con.execute("DROP TABLE _probe_summed")
        finally:
            for temp in ("_probe_keyed", "_probe_merged", "_probe_summed"):
                self.con.execute(f"DROP TABLE IF EXISTS {temp}")

    def _copy_runs(self, source: str) -> tuple[list[str], list[str]]:
        """Copy another probe database's top-level runs in (their runs, sites, counts and
        context_counts rows), leaving out those already here: the ids of its runs, and of
        those copied. It is opened as probe opens a database to read, so the runs still in
        its journals are stored first and no ingester of its is at work meanwhile."""
        with Database(source) as other:
            theirs = [
                r
                for (r,) in other.execute(
                    "SELECT run_id FROM runs WHERE parent IS NULL ORDER BY started_at"
                ).fetchall()
            ]
            mine = {r for (r,) in self.con.execute("SELECT run_id FROM runs").fetchall()}
            new = [r for r in theirs if r not in mine]
            marks = ",".join("?" * len(new))
            for table in ("runs", *MERGED) if new else ():
                rows = other.arrow(f"SELECT * FROM {table} WHERE run_id IN ({marks})", new)
                self.con.register("_probe_in", rows)
                try:
                    self.con.execute(f"INSERT INTO {table} BY NAME SELECT * FROM _probe_in")
                finally:
                    self.con.unregister("_probe_in")
        return theirs, new

    def export_parquet(self, directory: str) -> list[str]:
        os.makedirs(directory, exist_ok=True)
        written = []
        # Rows carry their order (seq, step) where it matters: kept in order, DuckDB buffers
        # the whole table (8x slower, and past the memory cap).
        self.con.execute("SET preserve_insertion_order = false")
        for table in TABLES:
            out = os.path.join(directory, f"{table}.parquet")
            escaped = out.replace("'", "''")
            self.con.execute(f"COPY (SELECT * FROM {table}) TO '{escaped}' (FORMAT parquet)")
            written.append(out)
        return written


def _add_missing_columns(con: duckdb.DuckDBPyConnection, table: str) -> None:
    """Migrate a database written by an older probe: columns are only ever added."""
    name_in_db = stored_as(table)
    have = {row[1] for row in con.execute(f"PRAGMA table_info('{name_in_db}')").fetchall()}
    for name, kind in TABLES[table]:
        if name not in have:
            con.execute(f'ALTER TABLE {name_in_db} ADD COLUMN "{name}" {kind}')


class Result:
    """The rows of one executed statement."""

    def __init__(self, cursor: duckdb.DuckDBPyConnection) -> None:
        self._cur = cursor
        self.columns: list[str] = [d[0] for d in cursor.description or []]

    def fetchall(self) -> list[tuple]:
        return self._cur.fetchall() if self.columns else []

    def fetchone(self) -> tuple | None:
        # All of it: duckdb 2 refuses the connection's next relation while a result is left
        # unfetched.
        rows = self.fetchall()
        return rows[0] if rows else None


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__


def _import_before_the_lock() -> None:
    """What ingest imports (pyarrow, and pandas, which DuckDB loads to look at a registered
    object when it is installed): ~0.5 s, paid before the writer's lock is taken, so others
    wait for the ingest alone."""
    import pyarrow  # noqa: F401

    try:
        import pandas  # noqa: F401
    except ImportError:
        pass


def _schema_stamp(db_path: str) -> str:
    """A digest of this probe's DDL and of where the database is (its views name its files
    by absolute path): a database stamped with it needs no setting up."""
    import hashlib

    text = "\n".join(
        [
            *(ddl(t) for t in TABLES),
            *(view_ddl(v) for v in VIEWS),
            *(filed_view_ddl(t, filed.folder(db_path, t)) for t in FILED),
        ]
    )
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _up_to_date(con: duckdb.DuckDBPyConnection, db_path: str) -> bool:
    """Whether the database has every table, column and view of this probe's contract (as
    its stamp says: reading the catalog would cost more than the ingest that follows)."""
    import duckdb

    try:
        rows = con.execute("SELECT stamp FROM probe_schema").fetchall()
    except duckdb.Error:
        return False
    return bool(rows) and rows[0][0] == _schema_stamp(db_path)


class _Lock:
    """The database's lock file: shared while reading, exclusive while writing."""

    def __init__(self, f: Any, db_path: str) -> None:
        self.f = f
        self.db_path = db_path

    @classmethod
    def open(cls, db_path: str) -> _Lock:
        parent = os.path.dirname(os.path.abspath(db_path))
        try:
            os.makedirs(parent, exist_ok=True)
            f = open(f"{db_path}.lock", "a+b")  # held until close()
        except OSError as e:
            raise StorageError(f"can't open the database at {db_path}: {e.strerror}") from None
        return cls(f, db_path)

    def take(self, exclusive: bool, wait: bool = True) -> bool:
        """Take (or convert to) the lock; False if ``wait`` is off and another holds it."""
        mode = fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH
        deadline = time.monotonic() + LOCK_WAIT_S
        while True:
            try:
                fcntl.flock(self.f, mode | fcntl.LOCK_NB)
                return True
            except BlockingIOError:
                if not wait:
                    return False
                if time.monotonic() > deadline:
                    raise StorageError(
                        f"the database at {self.db_path} is busy: another probe process has "
                        f"written to it for {LOCK_WAIT_S:.0f} s"
                    ) from None
                time.sleep(0.005)

    def release(self) -> None:
        fcntl.flock(self.f, fcntl.LOCK_UN)

    def close(self) -> None:
        if self.f is not None:
            self.f.close()


def _connect(path: str, read_only: bool = False) -> duckdb.DuckDBPyConnection:
    import duckdb

    try:
        return duckdb.connect(path, read_only=read_only)
    except duckdb.IOException as e:
        msg = _first_line(e)
        if "lock" in msg.lower():
            raise StorageError(
                f"the database at {path} is locked by another process: {msg}"
            ) from None
        raise StorageError(f"can't open the database at {path}: {msg}") from None
    except duckdb.Error as e:
        raise StorageError(f"can't open the database at {path}: {_first_line(e)}") from None
