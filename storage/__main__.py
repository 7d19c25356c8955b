"""``python -m probe.storage ingest --db PATH``: ingest pending run journals.

Started detached by ``probe run`` so the run itself returns without
waiting for DuckDB.
"""

import sys

from probe.errors import StorageError

from .db import Database


def main(argv: list[str]) -> int:
    if len(argv) != 3 or argv[0] != "ingest" or argv[1] != "--db":
        print("usage: python -m probe.storage ingest --db PATH", file=sys.stderr)
        return 2
    try:
        with Database(argv[2], must_exist=False):
            pass  # opening ingests
    except StorageError as e:
        print(f"probe: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
