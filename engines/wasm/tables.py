"""What a Wasm run leaves: the ``sites`` of the module (names and offsets of the user's
file) and the ``counts`` read from the probe memory, with address ranges where kept."""

from __future__ import annotations

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
    import numpy as np

    sites = prepared.sites
    n = len(sites)
    funcs = np.frombuffer(sites.func, dtype=np.int64) if n else np.zeros(0, np.int64)
    # Imported functions are sites too (kind 'import', never counted): call sites name them.
    imports = range(module.imported_funcs)
    names = {int(f): module.func_name(int(f)) for f in np.unique(funcs)}
    names.update((i, module.func_name(i)) for i in imports)
    targets = list(sites.target) + list(imports)
    columns = {
        "site_id": np.arange(n + len(imports), dtype=np.int64),
        "kind": list(sites.kind) + ["import"] * len(imports),
        "unit": [unit] * (n + len(imports)),
        "func": [names[int(f)] for f in funcs] + [names[i] for i in imports],
        "offset": np.concatenate(
            [
                np.frombuffer(sites.offset, dtype=np.int64) if n else np.zeros(0, np.int64),
                np.full(len(imports), -1, np.int64),
            ]
        ),
        "target": targets,
        "size": np.concatenate(
            [
                np.frombuffer(sites.size, dtype=np.int64) if n else np.zeros(0, np.int64),
                np.zeros(len(imports), np.int64),
            ]
        ),
    }
    if lines:  # one chunk: the summary's tables join chunks column by column
        k = len(lines)
        columns["site_id"] = np.arange(n + len(imports) + k, dtype=np.int64)
        columns["kind"] += ["line"] * k
        columns["unit"] += lines.unit
        columns["func"] += [module.func_name(f) for f in lines.func]
        columns["offset"] = np.concatenate([columns["offset"], np.asarray(lines.offset, np.int64)])
        columns["target"] = targets + [None] * k
        columns["size"] = np.concatenate([columns["size"], np.zeros(k, np.int64)])
        at = lines.branches  # a branch's source line, where its function's lines are known
        columns["line"] = [at.get(i) for i in range(n)] + [None] * len(imports) + lines.line
    recorder.write("sites", columns)


def counts_columns(
    prepared: Result, memory: bytes | None, ranges: Any = None, lines: LineSites | None = None
) -> dict[str, Any]:
    """The counts table read from a copy of the probe memory (at the end, or mid-run); with
    ``lines``, the source lines' counts from their blocks'."""
    import numpy as np

    sites = prepared.sites
    n = len(sites)
    slots = np.frombuffer(sites.slot, dtype=np.int64) if n else np.zeros(0, np.int64)
    if memory is not None and prepared.slots:
        dtype = np.int64 if prepared.counting else np.uint8
        values = np.frombuffer(memory, dtype=dtype, count=prepared.slots).astype(np.int64)
        counts = np.where(slots >= 0, values[np.clip(slots, 0, None)], 0)
    else:
        counts = np.zeros(n, np.int64)
    hit = np.nonzero(counts)[0]
    columns = {"site_id": hit.astype(np.int64), "count": counts[hit]}
    if ranges is not None:
        seen = ranges[:n][hit]
        low = seen[:, 0].astype(np.int64)
        has = seen[:, 0] <= seen[:, 1]
        columns["low"] = np.where(has, low, 0)
        columns["high"] = np.where(has, seen[:, 1].astype(np.int64), 0)
        if not has.all():  # sites without a range keeper (not loads or stores)
            columns["low"] = [
                int(v) if h else None for v, h in zip(columns["low"], has, strict=True)
            ]
            columns["high"] = [
                int(v) if h else None for v, h in zip(columns["high"], has, strict=True)
            ]
    if lines:
        ran = lines.counts(counts)
        hit = np.nonzero(ran)[0]
        columns["site_id"] = np.concatenate([columns["site_id"], hit + lines.first_id])
        columns["count"] = np.concatenate([columns["count"], ran[hit]])
        for name in ("low", "high"):
            if name in columns:
                columns[name] = list(columns[name]) + [None] * len(hit)
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
