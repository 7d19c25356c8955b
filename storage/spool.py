"""The run journal: what a run writes while the target runs, before DuckDB sees it.

A run never opens the database. It writes its header, then each table
chunk, to its own folder beside the database (``<db>.spool/<run_id>/``),
every file written whole and renamed into place, so a crash leaves only
complete files. Whoever opens the database next ingests finished journals
in one transaction each; a journal whose writer died is ingested as far as
it got and its run marked 'killed'. This keeps importing duckdb and
pyarrow (~0.3 s) off the run's path, and a run needs no database lock.

What a run only knows at its end (counts) it also writes as snapshots while it runs
(``snapshot-N/``, each complete before it is renamed into place): a run killed with
SIGKILL is ingested with its latest snapshot. A journal belongs to the process that
opened it: after a fork the child writes nothing to it. The journal is bounded: past
``max_events`` streamed rows, or when the disk is nearly full, it stops taking events and
the run ends 'truncated'; a write that fails (the disk full, the folder deleted) never
raises into the program: the run says what was lost.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import sys
import time
from collections.abc import Iterator

from probe.errors import StorageError, UsageError

from .schema import TABLES

TYPE_CHECKING = False  # typing's, without importing typing on a run's path (architecture)
if TYPE_CHECKING:
    from pathlib import Path
    from typing import Any

DEFAULT_PATH = os.path.join(".probe", "probe.duckdb")
# Streamed rows a run keeps unless told otherwise: 24 bytes each in the journal, so at most
# 12 GB; and it stops before the disk's free space falls below FREE_FLOOR.
DEFAULT_MAX_EVENTS = 500_000_000
FREE_FLOOR = 1 << 30


# Chunks this small are journaled as JSON, whatever holds them (lists, numpy, array): a
# short run then imports neither pyarrow nor numpy (~50 ms) to save a few thousand rows.
JSON_ROWS = 20_000
LATER = ".later"  # a journal's note of tables to make at ingest (Spool.defer)


def resolve_path(path: str | None = None) -> str:
    """--db if given, else $PROBE_DB, else .probe/probe.duckdb in the working directory;
    absolute, so that a program that changes directory still writes where the run began."""
    return os.path.abspath(path or os.environ.get("PROBE_DB") or DEFAULT_PATH)


def spool_root(db_path: str | os.PathLike[str]) -> str:
    return f"{os.fspath(db_path)}.spool"


def new_run_id() -> str:
    # Sortable by start time (to the millisecond), unique by the random tail.
    now = time.time()
    stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(now))
    return f"{stamp}.{int(now * 1000) % 1000:03d}-{os.urandom(2).hex()}"


def _rmtree(path: str | os.PathLike[str], ignore_errors: bool) -> None:
    import shutil  # not at import: shutil brings bz2 and lzma, and a run needs it at most once

    shutil.rmtree(path, ignore_errors=ignore_errors)


def _write_whole(path: str | os.PathLike[str], data: str, sync: bool = False) -> None:
    """``sync``: on disk before it replaces the old file (a power loss leaves one or the
    other, never an empty file)."""
    tmp = f"{os.fspath(path)}.tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(data)
        if sync:
            f.flush()
            os.fsync(f.fileno())
    os.replace(tmp, path)


class _Lost(Exception):
    """A journal write that failed; the Spool stops writing and says why at the end."""


class Spool:
    """Writes one run's journal."""

    def __init__(
        self,
        db_path: str | os.PathLike[str],
        run: dict[str, Any],
        max_events: int | None = DEFAULT_MAX_EVENTS,
    ) -> None:
        self.run = dict(run)
        self.run.setdefault("run_id", new_run_id())
        self.run_id: str = self.run["run_id"]
        self.max_events = max_events
        self.pid = os.getpid()  # the journal's owner: a forked child writes nothing
        self.events = 0  # rows streamed by append()
        self.truncated: str | None = None  # why append() stopped taking rows
        self.lost: str | None = None  # what a failed write lost
        self._notes: list[str] = []  # said in the run's message at close
        self._t0 = time.perf_counter()
        self._seq = 0
        self._snapshots = 0
        self._streams: dict[str, Any] = {}  # table -> (file, Arrow stream writer)
        self.db_path = os.path.abspath(db_path)
        self.dir = os.path.join(spool_root(self.db_path), self.run_id)
        try:
            os.makedirs(self.dir)
            self._write_header(status="running", pid=os.getpid())
        except OSError as e:
            where = e.filename or self.dir
            raise StorageError(
                f"can't write the database at {db_path}: {where}: {e.strerror}"
            ) from None

    @property
    def owned(self) -> bool:
        """Whether this process opened the journal (not a child forked since)."""
        return os.getpid() == self.pid

    def note(self, text: str) -> None:
        """Say ``text`` in the run's message when it closes."""
        self._notes.append(text)

    def write(self, table: str, columns: dict[str, Any]) -> None:
        """Journal a chunk of ``table``: plain lists and small chunks as JSON, big arrays
        (numpy, ``array``) as Arrow IPC.

        A table outside the contract (an analysis's own) is kept as Arrow with the types
        Arrow infers, and created in the database at ingest.
        """
        if not self.owned:
            return
        self._guarded(self._write_chunk, self.dir, table, columns)

    def snapshot(self, tables: dict[str, dict[str, Any]]) -> None:
        """The tables as they stand, for ingest if the run dies before close(): each
        snapshot is written whole, then replaces the one before."""
        if not self.owned or self.lost:
            return
        self._snapshots += 1
        name = f"snapshot-{self._snapshots:06d}"
        final = os.path.join(self.dir, name)
        tmp = f"{final}.tmp"

        def write() -> None:
            os.mkdir(tmp)
            for table, columns in tables.items():
                self._write_chunk(tmp, table, columns)
            _write_whole(os.path.join(tmp, "snapshot.json"), json.dumps({"at_s": self._elapsed()}))
            os.replace(tmp, final)
            self._drop_snapshots(but=name)

        self._guarded(write)

    def defer(self, maker: str, args: dict[str, Any]) -> bool:
        """Journal tables to be made at ingest: ``maker`` ('module:function' in probe) is
        called with ``args`` then (see ``made``). For what an engine would otherwise wait
        for at the end of the run: another process's output. False if it can't be taken."""
        if not self.owned or self.lost:
            return False
        self._seq += 1
        path = os.path.join(self.dir, f"{self._seq:06d}-{maker.rpartition(':')[2]}{LATER}")
        try:
            _write_whole(path, json.dumps({"maker": maker, "args": args}))
        except OSError:
            return False  # made now, then, or lost as a failed write says
        return True

    def _write_chunk(self, folder: str, table: str, columns: dict[str, Any]) -> None:
        if table not in TABLES:
            self._write_own(folder, table, columns)
            return
        known = {name for name, _ in TABLES[table]}
        unknown = set(columns) - known
        if unknown:
            raise UsageError(f"table {table} has no columns {sorted(unknown)}")
        self._seq += 1
        rows = max((len(v) for v in columns.values()), default=0)
        if rows <= JSON_ROWS or all(isinstance(v, list) for v in columns.values()):
            plain = {name: v if isinstance(v, list) else v.tolist() for name, v in columns.items()}
            _write_whole(os.path.join(folder, f"{self._seq:06d}-{table}.json"), json.dumps(plain))
            return
        import pyarrow as pa

        from .schema import arrow_array, arrow_schema

        schema = arrow_schema(table)
        arrays = [arrow_array(v, schema.field(name).type) for name, v in columns.items()]
        self._write_arrow(
            os.path.join(folder, f"{self._seq:06d}-{table}.arrow"),
            pa.Table.from_arrays(arrays, names=list(columns)),
        )

    def _write_own(self, folder: str, table: str, columns: dict[str, Any]) -> None:
        import re

        import pyarrow as pa

        from .schema import VIEWS

        if not re.fullmatch(r"[a-z][a-z0-9_]*", table) or table in VIEWS or "run_id" in columns:
            raise UsageError(
                f"an analysis's table needs a lower-case name of its own, without run_id: {table!r}"
            )
        self._seq += 1
        self._write_arrow(os.path.join(folder, f"{self._seq:06d}-{table}.arrow"), pa.table(columns))

    def _write_arrow(self, path: str, data: Any) -> None:
        """A chunk as one Arrow IPC file, written whole and renamed into place."""
        import pyarrow as pa

        tmp = f"{path}.tmp"
        with pa.OSFile(tmp, "wb") as sink, pa.ipc.new_stream(sink, data.schema) as w:
            w.write_table(data)
        os.replace(tmp, path)

    def append(self, table: str, columns: dict[str, Any]) -> bool:
        """Append a batch to ``table``'s stream: one growing Arrow IPC stream file per table.

        For high-rate tables (events). The file is not renamed into place: each batch is
        flushed whole, and a reader keeps every batch before a torn one at the end.
        False once the journal takes no more rows (``truncated`` or ``lost`` say why):
        the engine may stop producing them.
        """
        if not self.owned:
            return False
        if self.truncated or self.lost:
            return False
        rows = len(next(iter(columns.values()), ()))
        if self.max_events is not None and self.events + rows > self.max_events:
            room = self.max_events - self.events
            columns = {name: values[:room] for name, values in columns.items()}
            self.truncated = f"event cap of {self.max_events:,} reached (--max-events)"
            rows = room
        elif self.events // 1_000_000 != (self.events + rows) // 1_000_000 or not self.events:
            free = _free_bytes(self.dir)  # once a million rows: a statvfs costs a syscall
            if free is not None and free < FREE_FLOOR + 64 * rows:
                self.truncated = f"stopped with {free / 2**30:.1f} GiB free on the disk"
                return False
        if rows:
            self._guarded(self._append, table, columns)
            self.events += rows
        return not (self.truncated or self.lost)

    def _append(self, table: str, columns: dict[str, Any]) -> None:
        import pyarrow as pa

        from .schema import arrow_array, arrow_schema

        stream = self._streams.get(table)
        if stream is None:
            schema = arrow_schema(table)
            fields = pa.schema([schema.field(name) for name in columns])
            self._seq += 1
            sink = pa.OSFile(os.path.join(self.dir, f"{self._seq:06d}-{table}.arrows"), "wb")
            stream = self._streams[table] = (sink, pa.ipc.new_stream(sink, fields), fields)
        sink, writer, fields = stream
        batch = pa.record_batch(
            [arrow_array(v, fields.field(n).type) for n, v in columns.items()], schema=fields
        )
        writer.write_batch(batch)
        sink.flush()

    def close(self, status: str, exit_code: int | None, message: str | None) -> None:
        """Close the journal with how the run ended. Never raises for a journal that can't
        be written: the program's exit code matters more; it says so on stderr."""
        if not self.owned:
            return
        for sink, writer, _ in self._streams.values():
            try:
                writer.close()
                sink.close()
            except OSError as e:
                self.lost = self.lost or f"events lost: {e}"
        self._streams.clear()
        notes = [n for n in (message, self.truncated, self.lost, *self._notes) if n]
        if self.truncated and status == "ok":
            status = "truncated"
        if self.lost and status == "ok":
            status = "error"
        try:
            self._write_header(
                status=status,
                exit_code=exit_code,
                message="; ".join(notes) or None,
                wall_s=self._elapsed(),
                closed=True,
            )
        except OSError as e:
            warn(f"the run's journal could not be closed ({e.strerror}): {self.dir}")
            return
        self._drop_snapshots()

    def _drop_snapshots(self, but: str | None = None) -> None:
        try:
            names = os.listdir(self.dir)
        except OSError:
            return  # the folder went: nothing of it to drop
        for name in names:
            if name.startswith("snapshot-") and name != but:
                _rmtree(os.path.join(self.dir, name), ignore_errors=True)

    def discard(self) -> None:
        """Forget a run that never started."""
        if self.owned:
            _rmtree(self.dir, ignore_errors=True)

    def _elapsed(self) -> float:
        return time.perf_counter() - self._t0

    def _write_header(self, **fields: Any) -> None:
        self.run.update(fields)
        _write_whole(os.path.join(self.dir, "run.json"), json.dumps(self.run), sync=True)

    def _guarded(self, write: Any, *args: Any) -> None:
        """Run a journal write; a failure stops the journal (and is said at close), rather
        than raise into the program. A deleted folder is made again: what was in it is
        lost, what comes after is kept."""
        if self.lost:
            return
        try:
            write(*args)
        except OSError as e:
            if e.errno == errno.ENOENT and not os.path.exists(self.dir):
                self._streams.clear()  # their files went with the folder
                try:
                    os.makedirs(self.dir, exist_ok=True)
                    self._write_header()
                    write(*args)
                    self._notes.append(
                        "its journal was deleted while it ran: what was written before is lost"
                    )
                    warn(f"the run's journal was deleted while it ran; kept from now: {self.dir}")
                    return
                except OSError as again:
                    e = again
            self.lost = f"the journal stopped at a failed write: {e.strerror or e}"
            warn(f"{self.lost} ({self.dir}); the program goes on")


def warn(text: str) -> None:
    """A one-line warning on stderr, if the program left it open."""
    try:
        print(f"probe: {text}", file=sys.__stderr__ or sys.stderr, flush=True)
    except (OSError, ValueError, AttributeError):
        pass


def _free_bytes(folder: str) -> int | None:
    try:
        st = os.statvfs(folder)
    except OSError:
        return None
    return st.f_bavail * st.f_frsize


def ingest_in_background(db_path: str, wait: bool = False) -> None:
    """Start a detached process that ingests pending journals, so the run can return now;
    ``wait``: return when it is done (a process under valgrind ingests this way, since the
    child runs natively, not 20-50x slower).

    Spawned with posix_spawn rather than subprocess: every run pays this at its end, and
    importing subprocess costs more than the spawn. As subprocess's close_fds would, the
    child gets none of the descriptors this process inherited (a caller's pipes)."""
    argv = [sys.executable, "-m", "probe.storage", "ingest", "--db", db_path]
    try:
        log = os.open(
            os.path.join(spool_root(db_path), "ingest.log"),
            os.O_WRONLY | os.O_APPEND | os.O_CREAT,
            0o644,
        )
    except OSError:
        return  # the journal stays; the next reader ingests it
    actions = [
        (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
        (os.POSIX_SPAWN_OPEN, 1, os.devnull, os.O_WRONLY, 0),
        (os.POSIX_SPAWN_DUP2, log, 2),
        *((os.POSIX_SPAWN_CLOSE, fd) for fd in _inherited() if fd != log),
    ]
    try:
        pid = os.posix_spawn(sys.executable, argv, os.environ, file_actions=actions, setsid=True)
    except OSError:
        return
    finally:
        os.close(log)
    if wait:
        os.waitpid(pid, 0)


def _inherited() -> list[int]:
    """This process's inheritable descriptors above stderr."""
    try:
        fds = [int(name) for name in os.listdir("/proc/self/fd")]
    except OSError:
        return []
    found = []
    for fd in fds:
        try:
            if fd > 2 and os.get_inheritable(fd):
                found.append(fd)
        except OSError:  # the listing's own descriptor, gone already
            continue
    return found


def pending(db_path: str | os.PathLike[str]) -> list[Path]:
    from pathlib import Path  # not at import: a run writes its journal with os.path alone

    root = Path(spool_root(db_path))
    if not root.is_dir():
        return []
    return sorted(p for p in root.iterdir() if p.is_dir())


@contextlib.contextmanager
def ingester_lock(db_path: str | os.PathLike[str]) -> Iterator[None]:
    """Held by the background ingester while it works (others queue behind it)."""
    import fcntl

    root = spool_root(db_path)
    os.makedirs(root, exist_ok=True)
    with open(os.path.join(root, "ingester.lock"), "a+b") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        yield


def ingester_active(db_path: str | os.PathLike[str]) -> bool:
    """Whether a background ingester is at work on this database."""
    import fcntl

    try:
        with open(os.path.join(spool_root(db_path), "ingester.lock"), "a+b") as f:
            try:
                fcntl.flock(f, fcntl.LOCK_SH | fcntl.LOCK_NB)
            except BlockingIOError:
                return True
            return False
    except OSError:
        return False


def finished(db_path: str | os.PathLike[str]) -> list[tuple[Path, dict[str, Any] | None, str]]:
    """The journals that wait to be ingested, oldest first, parts last: (folder, header, '')
    of runs whose writers have ended, (folder, None, why) of headers that can't be read (to
    be set aside). A journal still being created, or still written, is not among them, nor
    a part (a child process's, see ``part_of``) of a run that is."""
    found: list[tuple[Path, dict[str, Any] | None, str]] = []
    folders = pending(db_path)
    for folder in folders:
        try:
            header = read_header(folder)
        except FileNotFoundError:
            if _abandoned(folder):
                _rmtree(folder, ignore_errors=True)
            continue
        except (OSError, ValueError, KeyError) as e:
            found.append((folder, None, f"{type(e).__name__}: {e}"))
            continue
        if not writer_alive(header):
            found.append((folder, header, ""))
    done = {folder.name for folder, _, _ in found}
    waiting = {folder.name for folder in folders} - done
    return sorted(
        (j for j in found if not (j[1] and j[1].get("part_of") in waiting)),
        key=lambda j: bool(j[1] and j[1].get("part_of")),
    )


def _abandoned(folder: Path) -> bool:
    """A part's journal with no header whose process is gone: it died making the folder
    (SIGKILL), before anything was in it. Left, it would be a part still running for ever."""
    run, plus, rest = folder.name.rpartition("+")
    pid = rest.partition("-")[0]
    if not plus or not pid.isdigit():
        return False  # a run's own journal, being made
    return not writer_alive({"pid": int(pid)})


def part_id(run_id: str) -> str:
    """The run id of a part of run ``run_id``: a process it started (a forked child, a
    Python subprocess), journaled on its own and merged into the run at ingest."""
    return f"{run_id}+{os.getpid()}-{os.urandom(2).hex()}"


def parts_of(db_path: str | os.PathLike[str], run_id: str) -> list[Path]:
    """The journals of the parts of ``run_id`` not yet ingested, finished or not."""
    return [p for p in pending(db_path) if p.name.startswith(run_id + "+")]


def ready(db_path: str | os.PathLike[str]) -> set[str]:
    """The folder names of the journals that wait to be ingested (see finished)."""
    return {folder.name for folder, _, _ in finished(db_path)}


def read_header(folder: Path) -> dict[str, Any]:
    with open(folder / "run.json", encoding="utf-8") as f:
        header = json.load(f)
    if not isinstance(header, dict) or "run_id" not in header:
        raise ValueError("not a run header")
    return header


def set_aside(folder: Path, why: str) -> None:
    """Move an unreadable journal out of the way (``<db>.spool.unreadable/``), with a warning."""
    aside = folder.parent.with_name(folder.parent.name + ".unreadable")
    try:
        aside.mkdir(exist_ok=True)
        os.replace(folder, aside / folder.name)
    except OSError as e:
        warn(f"unreadable run journal {folder} ({why}) could not be moved aside: {e.strerror}")
        return
    warn(f"unreadable run journal moved aside to {aside / folder.name}: {why}")


def chunks(folder: Path) -> list[tuple[str, Any, int]]:
    """The journal's table chunks in the order they were written, with their sizes in bytes.

    Each is a column dict (JSON), an Arrow table (.arrow) or an Arrow RecordBatchReader
    over a stream (.arrows) that stops before a torn last batch.
    """
    out: list[tuple[str, Any, int]] = []
    for path in sorted(folder.iterdir()):
        if path.name in ("run.json", "snapshot.json") or path.is_dir():
            continue
        if path.suffix not in (".json", ".arrow", ".arrows"):
            continue
        table = path.stem.split("-", 1)[1]
        size = path.stat().st_size
        if path.suffix == ".json":
            with open(path, encoding="utf-8") as f:
                out.append((table, json.load(f), size))
        elif path.suffix == ".arrow":
            import pyarrow as pa

            with pa.OSFile(str(path), "rb") as source:
                out.append((table, pa.ipc.open_stream(source).read_all(), size))
        else:
            reader = _whole_batches(path)
            if reader is not None:
                out.append((table, reader, size))
    return out


def make_deferred(folder: Path, header: dict[str, Any]) -> None:
    """Make the tables the run left to be made at ingest (``Spool.defer``) and journal them
    like any other (so an ingest that fails finds them again), with what went wrong making
    them in the run's message: each maker returns (tables, None or what went wrong)."""
    import importlib

    for path in sorted(folder.glob(f"*{LATER}")):
        seq, _, what = path.stem.partition("-")
        try:
            with open(path, encoding="utf-8") as f:
                later = json.load(f)
            module, _, name = later["maker"].partition(":")
            if module.split(".")[0] != "probe":
                raise ValueError(f"not a maker of probe's: {later['maker']}")
            tables, note = getattr(importlib.import_module(module), name)(later["args"])
        except Exception as e:  # noqa: BLE001 - the rest of the run is still stored
            tables, note = {}, f"internal error making {what}: {type(e).__name__}: {e}"
            warn(note)
        for table, columns in tables.items():
            _write_whole(folder / f"{seq}-{table}.json", json.dumps(columns))
        if note:
            header["message"] = "; ".join(filter(None, [header.get("message"), note]))
            _write_whole(folder / "run.json", json.dumps(header), sync=True)
        path.unlink()


def latest_snapshot(folder: Path) -> tuple[Path, float] | None:
    """The run's latest complete snapshot and how far into the run it was taken."""
    for snap in sorted(folder.glob("snapshot-*"), reverse=True):
        if snap.suffix == ".tmp":
            continue
        try:
            with open(snap / "snapshot.json", encoding="utf-8") as f:
                return snap, float(json.load(f)["at_s"])
        except (OSError, ValueError, KeyError):
            continue
    return None


def _whole_batches(path: Path) -> Any:
    """A reader of a stream file's batches, up to the first that a crash cut short."""
    import pyarrow as pa

    try:
        # Read, not mapped: a mapped journal's pages count in the ingester's memory (RSS),
        # and a 10^9-event journal is 24 GB. Batches are read one at a time and let go.
        source = pa.OSFile(str(path), "rb")
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
