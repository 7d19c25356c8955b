"""A run's sites joined to their counts, in one shape from either place a run can be read:

* the tables a run still holds in memory when it ends (``from_tables``): what the summary
  reads, so that ``probe run`` never imports duckdb or pyarrow;
* the database (``from_db``): what reports read, any time later.

Analyses build their result from these rows, once, whichever the source.

Site is a collections.namedtuple, not a typing.NamedTuple: that would import typing and
compile every field's annotation when the class is built (~3 ms at each run's start).
"""

from __future__ import annotations

from collections import namedtuple
from collections.abc import Collection, Sequence

TYPE_CHECKING = False  # typing's, without importing typing on a run's path (architecture)
if TYPE_CHECKING:
    from typing import Any

    from probe.storage import Database

# Tables as columns, the way a run hands them over: {table: {column: values}}. Values are
# lists (Python runs) or numpy arrays (Wasm runs: millions of sites).
Tables = dict[str, dict[str, Sequence]]


_FIELDS = "site_id kind unit func line offset target size source count low high"


class Site(namedtuple("Site", _FIELDS)):
    """A site and what its probe saw: site_id (int), kind, unit, func (str), line, offset,
    target, size (int or None), source (Wasm: its source file, where known). ``count`` is
    None where the site never ran (no row in ``counts``); ``low``/``high`` are the range
    probes' operands."""

    __slots__ = ()


def from_tables(tables: Tables, kinds: Collection[str]) -> list[Site]:
    """The sites of ``kinds`` in a run's in-memory tables, in site order."""
    sites, counts = tables.get("sites", {}), tables.get("counts", {})
    kind = list(sites.get("kind", ()))
    n = len(kind)
    ids = _ints(sites.get("site_id", ()))
    hit = dict(zip(_ints(counts.get("site_id", ())), _ints(counts.get("count", ())), strict=True))
    low = _by_site(counts, "low")
    high = _by_site(counts, "high")
    unit, func = _column(sites, "unit", n), _column(sites, "func", n)
    line, offset = _column(sites, "line", n), _column(sites, "offset", n)
    target, size = _column(sites, "target", n), _column(sites, "size", n)
    source = _column(sites, "source", n)
    return [
        Site(
            sid,
            kind[i],
            unit[i],
            func[i],
            line[i],
            offset[i],
            target[i],
            size[i],
            source[i],
            hit.get(sid),
            low.get(sid),
            high.get(sid),
        )  # fmt: skip
        for i, sid in enumerate(ids)
        if kind[i] in kinds
    ]


def from_db(db: Database, run_id: str, kinds: Collection[str]) -> list[Site]:
    """The sites of ``kinds`` of a stored run, in site order."""
    wanted = sorted(kinds)
    rows = db.execute(
        'SELECT s.site_id, s.kind, s.unit, s.func, s.line, s."offset", s.target, s.size, s.source, '
        "c.count, c.low, c.high FROM sites s LEFT JOIN counts c USING (run_id, site_id) "
        f"WHERE s.run_id = ? AND s.kind IN ({', '.join('?' * len(wanted))}) ORDER BY s.site_id",
        [run_id, *wanted],
    ).fetchall()
    return [Site(*row) for row in rows]


def _ints(values: Sequence[Any]) -> list[int]:
    tolist = getattr(values, "tolist", None)  # numpy: one conversion, not one per value
    return [int(v) for v in (tolist() if tolist else values)]


def _column(table: dict[str, Sequence[Any]], name: str, n: int) -> list[Any]:
    values = table.get(name)
    if values is None:
        return [None] * n
    tolist = getattr(values, "tolist", None)
    return tolist() if tolist else list(values)


def _by_site(counts: dict[str, Sequence[Any]], name: str) -> dict[int, Any]:
    if name not in counts:
        return {}
    return dict(zip(_ints(counts["site_id"]), _column(counts, name, 0), strict=True))
