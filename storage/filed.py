"""Long event streams kept as Parquet files beside the database (``<db>.files/<table>/``).

DuckDB stores rows at about 10 M/s on two cores; pyarrow writes Parquet at about 30 M/s and
smaller (0.1 bytes an event against 1.3), and DuckDB reads it as fast as its own tables. So a
journal's stream of more than ``FILE_FROM`` bytes is written as Parquet (a file per encoder
thread), which the table's view (schema.filed_view_ddl) reads beside the rows kept in DuckDB.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from .schema import TABLES, arrow_schema

if TYPE_CHECKING:
    import pyarrow as pa

FILE_FROM = 8 << 20  # a stream file larger than this (~350,000 events) becomes Parquet
ROW_GROUP = 1 << 20


def folder(db_path: str, table: str) -> str:
    return f"{os.path.abspath(db_path)}.files/{table}"


def ready(db_path: str, table: str) -> str:
    """The table's folder, made, with its empty file of every column (the view's glob
    must match a file, and its columns must all exist). The file is named by the columns:
    a table given a column since (events' thread) gets a new one, so that a database an
    older probe filed into reads on (its files lack the column: NULL there)."""
    import zlib

    where = Path(folder(db_path, table))
    columns = ",".join(f"{name} {kind}" for name, kind in TABLES[table])
    empty = where / f"_columns-{zlib.crc32(columns.encode()):08x}.parquet"
    if not empty.exists():
        import pyarrow.parquet as pq

        where.mkdir(parents=True, exist_ok=True)
        tmp = empty.with_name(empty.name + ".tmp")
        pq.write_table(arrow_schema(table).empty_table(), tmp)
        os.replace(tmp, empty)
        for old in where.glob("_columns*.parquet"):  # an older probe's: fewer columns
            if old != empty:
                old.unlink(missing_ok=True)
    return str(where)


WRITERS = 2  # pyarrow encodes a file on one core: one file per core, row groups dealt out


def write(
    reader: pa.RecordBatchReader, db_path: str, table: str, run_id: str, part: int
) -> list[Path]:
    """The stream's batches, with their run_id, as Parquet files in the table's folder
    (``<run_id>-<part>-<k>.parquet``, one per encoder thread), each written whole and then
    renamed into place; returns the files (none left behind if it fails). Memory: a row
    group per writer at a time."""
    import queue
    import threading

    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    fields = list(reader.schema)
    unknown = {f.name for f in fields} - {name for name, _ in TABLES[table]}
    if unknown:
        raise ValueError(f"table {table} has no columns {sorted(unknown)}")
    # run_id is one value: a dictionary column of it costs nothing to build or store.
    schema = pa.schema([pa.field("run_id", pa.dictionary(pa.int32(), pa.string())), *fields])
    ints = {f.name for f in fields if pa.types.is_integer(f.type)}
    where = Path(folder(db_path, table))
    paths = [where / f"{run_id}-{part}-{k}.parquet" for k in range(WRITERS)]
    queues: list[queue.Queue] = [queue.Queue(maxsize=1) for _ in paths]
    failed: list[BaseException] = []

    def encode(path: Path, todo: queue.Queue) -> None:
        tmp = path.with_name(path.name + ".tmp")
        try:
            with pq.ParquetWriter(
                tmp,
                schema,
                compression="zstd",
                use_dictionary=["run_id", *({"site_id"} & ints)],
                column_encoding={n: "DELTA_BINARY_PACKED" for n in {"seq", "value"} & ints},
                write_statistics=["run_id", *({"seq"} & ints)],
            ) as w:
                while (data := todo.get()) is not None:
                    run = pa.DictionaryArray.from_arrays(
                        pa.array(np.zeros(data.num_rows, np.int32)), pa.array([run_id])
                    )
                    w.write_table(pa.table([run, *data.columns], schema=schema), ROW_GROUP)
            os.replace(tmp, path)
        except BaseException as e:  # noqa: BLE001 - handed to the caller's thread
            failed.append(e)
            while todo.get() is not None:
                pass

    threads = [
        threading.Thread(target=encode, args=(p, q), daemon=True)
        for p, q in zip(paths, queues, strict=True)
    ]
    for t in threads:
        t.start()
    pending: list[pa.RecordBatch] = []
    held = turn = 0
    try:
        for batch in reader:
            pending.append(batch)
            held += batch.num_rows
            if held >= ROW_GROUP:
                queues[turn % WRITERS].put(pa.Table.from_batches(pending))
                pending, held, turn = [], 0, turn + 1
        if pending:
            queues[turn % WRITERS].put(pa.Table.from_batches(pending))
    finally:
        for q in queues:
            q.put(None)
        for t in threads:
            t.join()
    if failed:
        for p in paths:
            p.unlink(missing_ok=True)
        raise failed[0]
    return paths
