"""The tables of the SQL contract, defined once for DuckDB and for Arrow.

Users write queries against these names (see docs/architecture.md); add
tables and columns freely, but never rename one without a migration.
"""

from __future__ import annotations

from array import array

TYPE_CHECKING = False  # typing's, without importing typing on a run's path (architecture)
if TYPE_CHECKING:
    from typing import Any

    import pyarrow as pa

TABLES: dict[str, tuple[tuple[str, str], ...]] = {
    "runs": (
        ("run_id", "VARCHAR"),
        ("target", "VARCHAR"),
        ("engine", "VARCHAR"),  # 'wasm' | 'cpython'
        ("analyses", "VARCHAR[]"),
        ("argv", "VARCHAR[]"),
        ("started_at", "TIMESTAMP"),
        ("wall_s", "DOUBLE"),
        ("status", "VARCHAR"),  # 'ok' | 'error' | 'trap' | 'timeout' | 'killed' | 'truncated'
        ("exit_code", "INTEGER"),
        ("message", "VARCHAR"),
        ("cwd", "VARCHAR"),  # where the run started; reports show paths relative to it
        ("options", "VARCHAR"),  # the analyses' options, as JSON
        # The run this one was started inside (a Wasm module that a Python program under
        # probe loaded); NULL for a top-level run, which is what commands default to.
        ("parent", "VARCHAR"),
    ),
    "sites": (
        ("run_id", "VARCHAR"),
        ("site_id", "BIGINT"),
        ("kind", "VARCHAR"),  # 'file', 'line', 'branch', 'excluded', 'block', 'instr', 'func', ...
        ("unit", "VARCHAR"),  # source file (Python) or module (Wasm)
        ("func", "VARCHAR"),
        ("line", "INTEGER"),
        ("offset", "BIGINT"),  # Wasm: byte offset in the original module
        ("target", "BIGINT"),  # branch destination; Python arcs: negative = exit of code at -line
        ("size", "BIGINT"),  # Wasm blocks: instructions in the block
        # Wasm with DWARF: the source file the site's instruction came from (its line in
        # line), where that is one of the user's files; NULL for Python (unit is the file)
        ("source", "VARCHAR"),
    ),
    "counts": (
        ("run_id", "VARCHAR"),
        ("site_id", "BIGINT"),
        ("count", "BIGINT"),  # flag probes store 1: "ran at least once"
        ("low", "BIGINT"),  # range probes: the lowest operand seen (Wasm: address)
        ("high", "BIGINT"),  # range probes: the highest
    ),
    "counters": (
        ("run_id", "VARCHAR"),
        ("region", "VARCHAR"),  # 'run' for the whole run
        ("event", "VARCHAR"),  # perf's name: task-clock, instructions, ...
        ("value", "DOUBLE"),  # NULL unless status is 'ok'
        ("unit", "VARCHAR"),  # 'msec' for task-clock, '' for plain counts
        ("status", "VARCHAR"),  # 'ok' | 'unsupported' | 'not counted'
        ("time_enabled", "BIGINT"),  # ns; enabled > running: multiplexed, value is scaled
        ("time_running", "BIGINT"),
        ("calls", "BIGINT"),  # region counters: how many entries of the region are summed
        ("input", "VARCHAR"),  # probe.measure: the input (repr) the function ran on
        ("sample", "INTEGER"),  # probe.measure: which repetition (warm-up runs are not kept)
    ),
    "events": (
        ("run_id", "VARCHAR"),
        ("seq", "BIGINT"),
        ("site_id", "BIGINT"),
        ("value", "BIGINT"),  # the operand: Wasm values as i64 (floats as bits); Python ints
        ("detail", "VARCHAR"),  # Python: the value's repr where it has one (return values)
        ("context", "VARCHAR"),  # the test id or decorated function it happened in, if any
        ("thread", "BIGINT"),  # Python: the OS thread id it happened in (Wasm: NULL, one thread)
    ),
    # Sessions, decorated calls and tests: how often each site ran in each context.
    "context_counts": (
        ("run_id", "VARCHAR"),
        ("context", "VARCHAR"),  # a test id (pytest --probe), a decorated function's name
        ("site_id", "BIGINT"),
        ("count", "BIGINT"),
    ),
    # States (the `states` analysis, Python): a step per line run, call, return, yield or
    # exception of code in scope, in execution order ...
    "steps": (
        ("run_id", "VARCHAR"),
        ("step", "BIGINT"),  # execution order, from 0
        ("call_id", "BIGINT"),  # which call of a function (a generator's resumptions: one)
        ("depth", "INTEGER"),  # calls of code in scope below the outermost (0)
        ("event", "VARCHAR"),  # 'call' | 'line' | 'return' | 'yield' | 'exception'
        ("site_id", "BIGINT"),  # the function's func site
        ("line", "INTEGER"),  # the line that ran (call: the def line)
    ),
    # ... and a row per variable a step changed: after a line ran, what it made new,
    # modified or deleted; a call's arguments; a return or yield's value; an exception.
    "variables": (
        ("run_id", "VARCHAR"),
        ("step", "BIGINT"),
        ("name", "VARCHAR"),  # NULL for a returned or yielded value and an exception
        ("scope", "VARCHAR"),  # 'local' | 'global'
        ("change", "VARCHAR"),  # 'arg' 'new' 'modified' 'deleted' 'return' 'yield' 'exception'
        ("type", "VARCHAR"),  # the value's type name
        ("repr", "VARCHAR"),  # repr, cut at 1000 characters (an exception: 'Type: message')
        # the whole repr's length (more than repr's: it was cut); NULL: a container of more
        # than 200 elements, shown by its first ones
        ("size", "BIGINT"),
        ("length", "BIGINT"),  # len() of a str, bytes or container
        ("str", "VARCHAR"),  # str() where it differs from repr (strings: unquoted)
        ("json", "VARCHAR"),  # the value as JSON, where it is made of JSON's types
        ("delta", "VARCHAR"),  # lists, dicts, sets: the elements changed, as JSON
    ),
    # Hot paths: the call stacks a sampler saw (py-spy for Python, a shadow stack the Wasm
    # rewriter keeps for Wasm). One row per run of identical samples of a thread, in order.
    "samples": (
        ("run_id", "VARCHAR"),
        ("time", "DOUBLE"),  # seconds into the run of the first sample of the row
        ("process", "BIGINT"),  # pid (several with --subprocesses)
        ("thread", "VARCHAR"),  # thread id, and its name where the sampler knows it
        ("stack_id", "BIGINT"),
        ("weight", "BIGINT"),  # samples (at the run's rate: weight / rate seconds)
        ("idle", "BOOLEAN"),  # the thread was idle; NULL where the sampler can't tell
        ("gil", "BOOLEAN"),  # the thread held the GIL; NULL where the sampler can't tell
    ),
    # Each distinct stack once: frames root first, each (func, unit, line): join sites on
    # (run_id, unit, func) for functions, (run_id, unit, line) for Python lines.
    "stacks": (
        ("run_id", "VARCHAR"),
        ("stack_id", "BIGINT"),
        ("depth", "INTEGER"),
        ("frames", "STRUCT(func VARCHAR, unit VARCHAR, line INTEGER)[]"),
    ),
    # Ball-Larus path profiles (Wasm): how often each acyclic path through a function ran,
    # its number, and the original offsets of its blocks in order.
    "paths": (
        ("run_id", "VARCHAR"),
        ("site_id", "BIGINT"),  # the function's func site
        ("path", "BIGINT"),  # the path's Ball-Larus number, 0 .. paths in the function - 1
        ("count", "BIGINT"),
        ("blocks", "BIGINT[]"),  # offsets of the path's blocks, in order
    ),
}

# Views over the tables: the analyses' results, part of the contract like the tables.
VIEWS: dict[str, str] = {
    # calls: one row per call site and callee, with how often that edge was taken. Direct
    # calls (target = the callee's number) are counted; indirect ones (target NULL) have an
    # operand event per call whose value is the callee's number (-1: an import). A function's
    # number is its func (or import) site's target: Wasm, its index; Python, its site id.
    "call_edges": """
WITH counted AS (
    SELECT c.run_id, c.unit, c.func AS caller, c.line, c."offset", c.target AS callee_id,
           n.count AS calls, false AS indirect
    FROM sites c JOIN counts n USING (run_id, site_id)
    WHERE c.kind = 'call' AND c.target IS NOT NULL
), resolved AS (
    SELECT c.run_id, c.unit, c.func, c.line, c."offset", e.value, count(*), true
    FROM events e JOIN sites c USING (run_id, site_id)
    WHERE c.kind = 'call' AND c.target IS NULL
    GROUP BY ALL
), edges AS (SELECT * FROM counted UNION ALL SELECT * FROM resolved)
SELECT x.run_id, x.unit, x.caller, x.line, x."offset", x.callee_id,
       coalesce(f.func, CASE WHEN x.callee_id < 0 THEN '<import>'
                             ELSE 'func[' || x.callee_id || ']' END) AS callee,
       x.calls, x.indirect
FROM edges x
LEFT JOIN sites f ON f.run_id = x.run_id AND f.kind IN ('func', 'import')
                 AND f.target = x.callee_id
""",
    # memory: every load and store site with its count, bytes moved and address range (from
    # the range probe's low/high, else from operand events of the site).
    "memory_sites": """
SELECT s.run_id, s.unit, s.func, s."offset", s.kind, s.size,
       coalesce(c.count, 0) AS count, coalesce(c.count, 0) * s.size AS bytes,
       coalesce(c.low, e.low) AS lowest, coalesce(c.high, e.high) + s.size - 1 AS highest
FROM sites s
LEFT JOIN counts c USING (run_id, site_id)
LEFT JOIN (SELECT run_id, site_id, min(value) AS low, max(value) AS high
           FROM events GROUP BY ALL) e USING (run_id, site_id)
WHERE s.kind IN ('load', 'store')
""",
    # states: the steps with their functions; order by step, join variables on step.
    "states": """
SELECT t.run_id, t.step, t.call_id, t.depth, t.event, s.unit, s.func, t.line
FROM steps t JOIN sites s USING (run_id, site_id)
""",
    # trace: events with their sites; order by seq.
    "trace": """
SELECT e.run_id, e.seq, e.site_id, s.kind, s.unit, s.func, s.line, s."offset", s.target,
       e.value, e.detail, e.thread, s.source
FROM events e JOIN sites s USING (run_id, site_id)
""",
}

_ARROW_TYPES = {
    "VARCHAR": "string",
    "BIGINT": "int64",
    "INTEGER": "int32",
    "DOUBLE": "float64",
    "TIMESTAMP": "timestamp",
    "VARCHAR[]": "list_string",
    "BOOLEAN": "bool",
    "BIGINT[]": "list_int64",
    "STRUCT(func VARCHAR, unit VARCHAR, line INTEGER)[]": "frames",
}


# Tables whose long streams are kept as Parquet files beside the database rather than in it:
# DuckDB stores rows at ~10 M/s on two cores, Parquet is written at ~30 M/s and smaller.
# The contract's name is a view over the table's own rows (in DuckDB, under this name) and
# the files; a query can't tell which is which.
FILED: dict[str, str] = {"events": "events_rows"}


def stored_as(table: str) -> str:
    """The name the table's rows have in DuckDB."""
    return FILED.get(table, table)


def view_ddl(name: str) -> str:
    return f"CREATE OR REPLACE VIEW {name} AS {VIEWS[name].strip()}"


def filed_view_ddl(table: str, files: str) -> str:
    """The view of a FILED table: its rows in DuckDB and its Parquet files in ``files``
    (an empty file with every column is always there, so the glob never comes up empty)."""
    cols = ", ".join(f'"{name}"' for name, _ in TABLES[table])
    glob = f"{files}/*.parquet".replace("'", "''")
    return (
        f"CREATE OR REPLACE VIEW {table} AS SELECT {cols} FROM {stored_as(table)} "
        f"UNION ALL SELECT {cols} FROM read_parquet('{glob}', union_by_name = true)"
    )


def ddl(table: str) -> str:
    cols = ", ".join(f'"{name}" {kind}' for name, kind in TABLES[table])
    return f"CREATE TABLE IF NOT EXISTS {stored_as(table)} ({cols})"


def arrow_schema(table: str) -> pa.Schema:
    import pyarrow as pa

    types = {
        "string": pa.string(),
        "int64": pa.int64(),
        "int32": pa.int32(),
        "float64": pa.float64(),
        "timestamp": pa.timestamp("us"),
        "list_string": pa.list_(pa.string()),
        "bool": pa.bool_(),
        "list_int64": pa.list_(pa.int64()),
        "frames": pa.list_(
            pa.struct([("func", pa.string()), ("unit", pa.string()), ("line", pa.int32())])
        ),
    }
    return pa.schema([(name, types[_ARROW_TYPES[kind]]) for name, kind in TABLES[table]])


def arrow_array(values: Any, type: pa.DataType) -> pa.Array:
    """``values`` (a numpy array, an ``array.array`` or a list) as an Arrow array of ``type``.

    Built from buffers where it can be: ``pa.array`` imports pandas on first use when pandas
    is installed (pyarrow asks whether the values are a pandas object), ~0.2 s that a run
    writing its sites would pay before the program starts. Fixed-width numbers and strings
    are built by hand; other types (lists, structs) go through ``pa.array``."""
    import numpy as np
    import pyarrow as pa

    n = len(values)
    if pa.types.is_integer(type) or pa.types.is_floating(type):
        dtype = np.dtype(type.to_pandas_dtype())
        if isinstance(values, np.ndarray) and values.dtype.kind in "iuf":
            data, valid = np.ascontiguousarray(values, dtype=dtype), None
        elif isinstance(values, array) and values.typecode in "qlid":
            data, valid = np.frombuffer(values, values.typecode).astype(dtype, copy=False), None
        else:
            valid = np.fromiter((v is not None for v in values), bool, n)
            data = np.fromiter((0 if v is None else v for v in values), dtype, n)
            valid = None if valid.all() else valid
        bitmap = None if valid is None else pa.py_buffer(np.packbits(valid, bitorder="little"))
        nulls = 0 if valid is None else int(n - valid.sum())
        return pa.Array.from_buffers(type, n, [bitmap, pa.py_buffer(data)], null_count=nulls)
    if pa.types.is_string(type) and not isinstance(values, np.ndarray):
        encoded = [b"" if v is None else str(v).encode() for v in values]
        offsets = np.zeros(n + 1, np.int32)
        np.cumsum([len(e) for e in encoded], out=offsets[1:])
        valid = np.fromiter((v is not None for v in values), bool, n)
        bitmap = None if valid.all() else pa.py_buffer(np.packbits(valid, bitorder="little"))
        return pa.StringArray.from_buffers(
            n, pa.py_buffer(offsets), pa.py_buffer(b"".join(encoded)), bitmap,
            int(n - valid.sum()),
        )  # fmt: skip
    return pa.array(values, type=type)
