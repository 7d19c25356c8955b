"""Storage: the SQL contract's tables in an embedded DuckDB database.

Runs write journals (spool.py); :class:`Database` ingests them as Arrow
batches and answers SQL; Parquet export writes every table for other tools
and other machines.
"""

from .db import Database, ingest_in_background, resolve_path
from .schema import TABLES
from .spool import Spool, StorageError

__all__ = ["TABLES", "Database", "Spool", "StorageError", "ingest_in_background", "resolve_path"]
