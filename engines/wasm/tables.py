"""What a Wasm run leaves: the ``sites`` of the module (names and offsets of the user's
file) and the ``counts`` read from the probe memory, with address ranges where kept.

Plain Python over ``array`` and ``memoryview``, not numpy: numpy's import (30-50 ms) is
most of what a short run would pay over plain wasmtime, and a module's sites are few
enough (10^5 for a 5 MB module: 40 ms here) that the loops cost less than the import."""

from __future__ import annotations

from array import array
from typing import Any

from probe.engines import Recorder

from .binary import Module
from .rewrite import Result

TYPE_CHECKING = False
if TYPE_CHECKING:
    from .lines import LineSites


def write_tables(
    recorder: Recorder,
    unit: str,
    module: Module,
    prepared: Result,
    memory: bytes | None,
    ranges: Any = None,  # numpy (sites, 2): lowest and highest operands, or None
    lines: LineSites | None = None,
) -> None:
    """Both tables, at the end of a run."""
    write_sites(recorder, unit, module, prepared, lines)
    recorder.write("counts", counts_columns(prepared, memory, ranges, lines))


def write_sites(
    recorder: Recorder,
    unit: str,
    module: Module,
    prepared: Result,
    lines: LineSites | None = None,
) -> None:
    """The module's sites: known before it runs, written then, so a killed run has them;
    then the source lines its code came from, where it says (``lines.py``)."""
    sites = prepared.sites
    n = len(sites)
    # Imported functions are sites too (kind 'import', never counted): call sites name them.
    imports = range(module.imported_funcs)
    names = {f: module.func_name(f) for f in set(sites.func)}
    names.update((i, module.func_name(i)) for i in imports)
    total = n + len(imports) + (len(lines) if lines is not None else 0)
    columns = {
        "site_id": array("q", range(total)),
        "kind": [*sites.kind, *(["import"] * len(imports))],
        "unit": [unit] * (n + len(imports)),
        "func": [*map(names.__getitem__, sites.func), *(names[i] for i in imports)],
        "offset": sites.offset + array("q", [-1]) * len(imports),
        "target": [*sites.target, *imports],
        "size": sites.size + array("q", bytes(8 * len(imports))),
    }
    if lines is not None:  # one chunk: the summary's tables join chunks column by column
        k = len(lines)
        columns["kind"] += ["line"] * k
        columns["unit"] += lines.unit
        columns["func"] += [module.func_name(f) for f in lines.func]
        columns["offset"] += array("q", lines.offset)
        columns["target"] += [None] * k
        columns["size"] += array("q", bytes(8 * k))
        # where in the source each of the module's sites is, where known (lines.py)
        places = [lines.places.get(i, (None, None)) for i in range(n)]
        columns["line"] = [p[1] for p in places] + [None] * len(imports) + lines.line
        columns["source"] = [p[0] for p in places] + [None] * len(imports) + lines.unit
    recorder.write("sites", columns)


def counts_columns(
    prepared: Result, memory: bytes | None, ranges: Any = None, lines: LineSites | None = None
) -> dict[str, Any]:
    """The counts table read from a copy of the probe memory (at the end, or mid-run); with
    ``lines``, the source lines' counts from their blocks'."""
    sites = prepared.sites
    if memory is not None and prepared.slots:
        width, code = (8, "q") if prepared.counting else (1, "B")
        values = memoryview(memory)[: prepared.slots * width].cast(code)
        counts = [values[s] if s >= 0 else 0 for s in sites.slot]
    else:
        counts = [0] * len(sites)
    hit = [i for i, c in enumerate(counts) if c]
    columns: dict[str, Any] = {
        "site_id": array("q", hit),
        "count": array("q", map(counts.__getitem__, hit)),
    }
    if ranges is not None:  # numpy (sites, 2) u64, from the host's view of the range memory
        seen = ranges[hit]
        kept = (seen[:, 0] <= seen[:, 1]).tolist()  # sites that keep no range: lowest > highest
        pairs = seen.view("i8").tolist()  # as i64, as the events' values are
        columns["low"] = [lo if k else None for (lo, _), k in zip(pairs, kept, strict=True)]
        columns["high"] = [hi if k else None for (_, hi), k in zip(pairs, kept, strict=True)]
    if lines is not None:
        ran = lines.counts(counts)
        more = [i for i, c in enumerate(ran) if c]
        columns["site_id"] += array("q", (i + lines.first_id for i in more))
        columns["count"] += array("q", map(ran.__getitem__, more))
        for name in ("low", "high"):
            if name in columns:
                columns[name] += [None] * len(more)
    return columns


def paths_columns(prepared: Result, memory: Any) -> dict[str, list]:
    """The paths table from the path counters (a numpy byte view or a copy): each path that
    ran, its number, count and blocks, under its function's func site."""
    import numpy as np

    from .paths import Profile

    sites = prepared.sites
    func_site = {
        int(f): i
        for i, (k, f) in enumerate(zip(sites.kind, sites.func, strict=True))
        if k == "func"
    }
    columns: dict[str, list] = {"site_id": [], "path": [], "count": [], "blocks": []}
    for entry in prepared.paths:
        profile = Profile(*entry)
        counts = np.frombuffer(memory, dtype="<i8", count=profile.paths, offset=profile.base)
        for number in np.nonzero(counts)[0].tolist():
            columns["site_id"].append(func_site.get(profile.func, -1))
            columns["path"].append(number)
            columns["count"].append(int(counts[number]))
            columns["blocks"].append(profile.decode(number))
    return columns
