"""Storage: the SQL contract's tables in an embedded DuckDB database.

Runs write journals (spool.py) without touching DuckDB; :class:`Database`
ingests them as Arrow batches and answers SQL; Parquet export writes every
table for other tools and other machines.
"""

from .schema import TABLES
from .spool import Spool, ingest_in_background, resolve_path


def __getattr__(name: str) -> object:
    # db.py is for readers; a run only journals, and should not pay for it.
    if name == "Database":
        from . import db

        return getattr(db, name)
    raise AttributeError(name)


__all__ = ["TABLES", "Database", "Spool", "StorageError", "ingest_in_background", "resolve_path"]
