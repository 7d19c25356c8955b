"""``python -m probe.storage ingest --db PATH``: ingest pending run journals.

Started detached by ``probe run`` so the run itself returns without
waiting for DuckDB. It takes the writer's lock in slices of a fraction of a
second, so readers never wait long behind a backlog of runs.
"""

import sys

from probe.errors import StorageError

from . import spool
from .db import Database, _import_before_the_lock

SLICE_S = 0.2


def main(argv: list[str]) -> int:
    if len(argv) != 3 or argv[0] != "ingest" or argv[1] != "--db":
        print("usage: python -m probe.storage ingest --db PATH", file=sys.stderr)
        return 2
    try:
        # One ingester works at a time; readers that see one at work leave ingest to it
        # (so it imports what it needs first, and holds the lock only to ingest).
        _import_before_the_lock()
        with spool.ingester_lock(argv[2]):
            _ingest_all(argv[2])
    except StorageError as e:
        print(f"probe: {e}", file=sys.stderr)
        return 1
    return 0


def _ingest_all(db_path: str) -> None:
    # A reader that came while this process started may have stored the runs already: then
    # the database is left alone (if_waiting), since opening it to write would lock out a
    # user's own duckdb reading it at that moment, for nothing.
    while spool.ready(db_path):
        with Database(
            db_path, must_exist=False, write=True, budget_s=SLICE_S, if_waiting=True
        ) as db:
            pass  # opening for writing ingests
        if not db.ingested:
            break


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
