"""The run journal: what a run writes while the target runs, before DuckDB sees it.

A run never opens the database. It writes its header, then each table
chunk, to its own folder beside the database (``<db>.spool/<run_id>/``),
every file written whole and renamed into place, so a crash leaves only
complete files. Whoever opens the database next ingests finished journals
in one transaction each; a journal whose writer died is ingested as far as
it got and its run marked 'killed'. This keeps importing duckdb and
pyarrow (~0.3 s) off the run's path, and a run needs no database lock.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path
from typing import Any

from probe.errors import StorageError, UsageError

from .schema import TABLES

DEFAULT_PATH = os.path.join(".probe", "probe.duckdb")


def resolve_path(path: str | None = None) -> str:
    """--db if given, else $PROBE_DB, else .probe/probe.duckdb in the working directory."""
    return path or os.environ.get("PROBE_DB") or DEFAULT_PATH


def spool_root(db_path: str | os.PathLike[str]) -> Path:
    return Path(f"{os.fspath(db_path)}.spool")


def new_run_id() -> str:
    # Sortable by start time (to the millisecond), unique by the random tail.
    now = time.time()
    stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(now))
    return f"{stamp}.{int(now * 1000) % 1000:03d}-{os.urandom(2).hex()}"


def _write_whole(path: Path, data: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(data)
    os.replace(tmp, path)


class Spool:
    """Writes one run's journal."""

    def __init__(self, db_path: str | os.PathLike[str], run: dict[str, Any]) -> None:
        self.run = dict(run)
        self.run.setdefault("run_id", new_run_id())
        self.run_id: str = self.run["run_id"]
        self._t0 = time.perf_counter()
        self._seq = 0
        self._streams: dict[str, Any] = {}  # table -> (file, Arrow stream writer)
        self.dir = spool_root(db_path) / self.run_id
        try:
            self.dir.mkdir(parents=True)
            self._write_header(status="running", pid=os.getpid())
        except OSError as e:
            where = e.filename or self.dir
            raise StorageError(
                f"can't write the database at {db_path}: {where}: {e.strerror}"
            ) from None

    def write(self, table: str, columns: dict[str, Any]) -> None:
        """Journal a chunk of ``table``: plain lists as JSON, arrays (numpy) as Arrow IPC.

        A table outside the contract (an analysis's own) is kept as Arrow with the types
        Arrow infers, and created in the database at ingest.
        """
        if table not in TABLES:
            self._write_own(table, columns)
            return
        known = {name for name, _ in TABLES[table]}
        unknown = set(columns) - known
        if unknown:
            raise UsageError(f"table {table} has no columns {sorted(unknown)}")
        self._seq += 1
        if all(isinstance(v, list) for v in columns.values()):
            _write_whole(self.dir / f"{self._seq:06d}-{table}.json", json.dumps(columns))
            return
        import pyarrow as pa

        from .schema import arrow_schema

        schema = arrow_schema(table)
        self._write_arrow(
            table,
            pa.table(
                {name: pa.array(v, type=schema.field(name).type) for name, v in columns.items()}
            ),
        )

    def _write_own(self, table: str, columns: dict[str, Any]) -> None:
        import re

        import pyarrow as pa

        from .schema import VIEWS

        if not re.fullmatch(r"[a-z][a-z0-9_]*", table) or table in VIEWS or "run_id" in columns:
            raise UsageError(
                f"an analysis's table needs a lower-case name of its own, without run_id: {table!r}"
            )
        self._seq += 1
        self._write_arrow(table, pa.table(columns))

    def _write_arrow(self, table: str, data: Any) -> None:
        """A chunk as one Arrow IPC file, written whole and renamed into place."""
        import pyarrow as pa

        path = self.dir / f"{self._seq:06d}-{table}.arrow"
        tmp = path.with_name(path.name + ".tmp")
        with pa.OSFile(str(tmp), "wb") as sink, pa.ipc.new_stream(sink, data.schema) as w:
            w.write_table(data)
        os.replace(tmp, path)

    def append(self, table: str, columns: dict[str, Any]) -> None:
        """Append a batch to ``table``'s stream: one growing Arrow IPC stream file per table.

        For high-rate tables (events). The file is not renamed into place: each batch is
        flushed whole, and a reader keeps every batch before a torn one at the end.
        """
        import pyarrow as pa

        from .schema import arrow_schema

        stream = self._streams.get(table)
        if stream is None:
            schema = arrow_schema(table)
            fields = pa.schema([schema.field(name) for name in columns])
            self._seq += 1
            sink = pa.OSFile(str(self.dir / f"{self._seq:06d}-{table}.arrows"), "wb")
            stream = self._streams[table] = (sink, pa.ipc.new_stream(sink, fields), fields)
        sink, writer, fields = stream
        batch = pa.record_batch(
            [pa.array(v, type=fields.field(n).type) for n, v in columns.items()], schema=fields
        )
        writer.write_batch(batch)
        sink.flush()

    def close(self, status: str, exit_code: int | None, message: str | None) -> None:
        for sink, writer, _ in self._streams.values():
            writer.close()
            sink.close()
        self._streams.clear()
        self._write_header(
            status=status,
            exit_code=exit_code,
            message=message,
            wall_s=time.perf_counter() - self._t0,
            closed=True,
        )

    def discard(self) -> None:
        """Forget a run that never started."""
        shutil.rmtree(self.dir, ignore_errors=True)

    def _write_header(self, **fields: Any) -> None:
        self.run.update(fields)
        _write_whole(self.dir / "run.json", json.dumps(self.run))


def ingest_in_background(db_path: str) -> None:
    """Start a detached process that ingests pending journals, so the run can return now."""
    import subprocess
    import sys

    try:
        with open(spool_root(db_path) / "ingest.log", "ab") as err:
            subprocess.Popen(
                [sys.executable, "-m", "probe.storage", "ingest", "--db", db_path],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=err,
                start_new_session=True,
                close_fds=True,
            )
    except OSError:
        pass  # the journal stays; the next reader ingests it


def pending(db_path: str | os.PathLike[str]) -> list[Path]:
    root = spool_root(db_path)
    if not root.is_dir():
        return []
    return sorted(p for p in root.iterdir() if p.is_dir())


def read_header(folder: Path) -> dict[str, Any]:
    with open(folder / "run.json", encoding="utf-8") as f:
        return json.load(f)


def chunks(folder: Path) -> list[tuple[str, Any]]:
    """The journal's table chunks in the order they were written.

    Each is a column dict (JSON), an Arrow table (.arrow) or an Arrow RecordBatchReader
    over a stream (.arrows) that stops before a torn last batch.
    """
    out: list[tuple[str, Any]] = []
    for path in sorted(folder.iterdir()):
        if path.name == "run.json" or path.suffix not in (".json", ".arrow", ".arrows"):
            continue
        table = path.stem.split("-", 1)[1]
        if path.suffix == ".json":
            with open(path, encoding="utf-8") as f:
                out.append((table, json.load(f)))
        elif path.suffix == ".arrow":
            import pyarrow as pa

            with pa.OSFile(str(path), "rb") as source:
                out.append((table, pa.ipc.open_stream(source).read_all()))
        else:
            reader = _whole_batches(path)
            if reader is not None:
                out.append((table, reader))
    return out


def _whole_batches(path: Path) -> Any:
    """A reader of a stream file's batches, up to the first that a crash cut short."""
    import pyarrow as pa

    try:
        source = pa.memory_map(str(path))
        stream = pa.ipc.open_stream(source)
    except (pa.ArrowInvalid, OSError):
        return None  # not even a schema: the writer died at once

    def batches():
        while True:
            try:
                yield stream.read_next_batch()
            except StopIteration:
                return
            except (pa.ArrowInvalid, OSError):
                return  # a torn batch at the end

    return pa.RecordBatchReader.from_batches(stream.schema, batches())


def writer_alive(header: dict[str, Any]) -> bool:
    """Whether the process that writes this journal is still running."""
    if header.get("closed"):
        return False
    pid = header.get("pid")
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
