"""The tables of the SQL contract, defined once for DuckDB and for Arrow.

Users write queries against these names (see docs/architecture.md); add
tables and columns freely, but never rename one without a migration.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
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
        ("status", "VARCHAR"),  # 'ok' | 'error' | 'trap' | 'timeout' | 'killed'
        ("exit_code", "INTEGER"),
        ("message", "VARCHAR"),
        ("cwd", "VARCHAR"),  # where the run started; reports show paths relative to it
        ("options", "VARCHAR"),  # the analyses' options, as JSON
    ),
    "sites": (
        ("run_id", "VARCHAR"),
        ("site_id", "BIGINT"),
        ("kind", "VARCHAR"),  # 'line', 'branch', 'excluded', 'block', 'instr', 'func', 'call', ...
        ("unit", "VARCHAR"),  # source file (Python) or module (Wasm)
        ("func", "VARCHAR"),
        ("line", "INTEGER"),
        ("offset", "BIGINT"),  # Wasm: byte offset in the original module
        ("target", "BIGINT"),  # branch destination; Python arcs: negative = exit of code at -line
        ("size", "BIGINT"),  # Wasm blocks: instructions in the block
    ),
    "counts": (
        ("run_id", "VARCHAR"),
        ("site_id", "BIGINT"),
        ("count", "BIGINT"),  # flag probes store 1: "ran at least once"
        ("low", "BIGINT"),  # range probes: the lowest operand seen (Wasm: address)
        ("high", "BIGINT"),  # range probes: the highest
    ),
    "events": (
        ("run_id", "VARCHAR"),
        ("seq", "BIGINT"),
        ("site_id", "BIGINT"),
        ("value", "BIGINT"),  # the operand: Wasm values as i64 (floats as bits); Python ints
        ("detail", "VARCHAR"),  # Python: the value's repr where it has one (return values)
    ),
}

_ARROW_TYPES = {
    "VARCHAR": "string",
    "BIGINT": "int64",
    "INTEGER": "int32",
    "DOUBLE": "float64",
    "TIMESTAMP": "timestamp",
    "VARCHAR[]": "list_string",
}


def ddl(table: str) -> str:
    cols = ", ".join(f'"{name}" {kind}' for name, kind in TABLES[table])
    return f"CREATE TABLE IF NOT EXISTS {table} ({cols})"


def arrow_schema(table: str) -> pa.Schema:
    import pyarrow as pa

    types = {
        "string": pa.string(),
        "int64": pa.int64(),
        "int32": pa.int32(),
        "float64": pa.float64(),
        "timestamp": pa.timestamp("us"),
        "list_string": pa.list_(pa.string()),
    }
    return pa.schema([(name, types[_ARROW_TYPES[kind]]) for name, kind in TABLES[table]])
