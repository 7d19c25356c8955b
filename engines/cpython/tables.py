"""What a Python run leaves: its sites (every statement, excluded line and branch arc of the
files in scope, and the functions, calls and returns seen), their counts, and counts per
context; and the static facts of the files they come from."""

from __future__ import annotations

import importlib.util
import os
import sys
import threading
from collections.abc import Callable, Iterable

from probe.engines import Recorder
from probe.probes import Scope

from .source import MARKER_BASE, SourceInfo, analyze


class SiteIds:
    """Site ids of a Python run, given out as sites are first seen (during the run or after)."""

    def __init__(self) -> None:
        self.ids: dict[tuple, int] = {}
        self.rows: list[tuple] = []  # (kind, unit, func, line, target), by id
        # A snapshot thread gives out ids too; a new id is taken under the lock, so two
        # threads never give one id to two sites (the lookup stays lock-free).
        self._lock = threading.Lock()

    def forked(self) -> None:
        """In a forked child: another thread of the parent may have held the lock."""
        self._lock = threading.Lock()

    def get(
        self, kind: str, unit: str, func: str, line: int | None, target: int | None = None
    ) -> int:
        key = (kind, unit, func, line, target)
        sid = self.ids.get(key)
        if sid is None:
            with self._lock:
                sid = self.ids.get(key)
                if sid is None:
                    self.rows.append((kind, unit, func, line, target))
                    sid = self.ids[key] = len(self.rows) - 1
        return sid


def source_infos(
    ran: Iterable[str],
    scope: Scope,
    wanted: Callable[[str], bool],
    info_for: Callable[[str], SourceInfo | None],
) -> dict[str, SourceInfo]:
    """Static facts of the files that ran (real paths) and of every Python file below the
    --source directories, so that files that never ran are reported too."""
    paths = list(ran)
    for top in scope.source:
        for dirpath, dirnames, filenames in os.walk(top):
            dirnames[:] = [d for d in dirnames if not d.startswith(".") and d != "__pycache__"]
            paths.extend(
                os.path.realpath(p)
                for f in filenames
                if f.endswith(".py") and wanted(p := os.path.join(dirpath, f))
            )
    found = {}
    for path in paths:
        info = info_for(path)
        if info is not None:
            found[path] = info
    return found


def analyze_file(path: str, scope: Scope) -> SourceInfo | None:
    try:
        with open(path, "rb") as f:
            source = importlib.util.decode_source(f.read())
        return analyze(source, path, scope)[0]
    except (OSError, SyntaxError, ValueError, UnicodeDecodeError) as e:
        print(f"probe: warning: couldn't parse {path}: {e}", file=sys.stderr)
        return None


def write_tables(
    recorder: Recorder,
    infos: dict[str, SourceInfo],
    hits: dict[str, dict[int, int]],
    branch: bool,
    ids: SiteIds,
    counted: dict[int, int],
    witnessed: bool = True,
    per_context: dict[tuple[str | None, int], int] | None = None,
) -> None:
    """The sites table (every site, with the ids events used) and the counts table.

    ``witnessed``: branch arcs were counted through their witness lines (markers compiled
    in); else their counts are in ``counted`` already. ``per_context``: counts per
    (context, site), the context_counts table.
    """
    counts = dict(counted)
    for path in sorted(infos):
        info, ran = infos[path], hits.get(path, {})
        per_stmt: dict[int, int] = {}
        for line, n in ran.items():
            stmt = info.statement_of(line)
            if stmt is not None:
                per_stmt[stmt] = max(per_stmt.get(stmt, 0), n)
        ids.get("file", path, "<module>", None)  # the file was measured, if it has no lines
        for line in sorted(info.statements):
            sid = ids.get("line", path, info.funcs.get(line, "<module>"), line)
            counts[sid] = per_stmt.get(line, 0)
        for line in sorted(info.excluded):
            ids.get("excluded", path, info.funcs.get(line, "<module>"), line)
        for line in sorted(info.no_branch):
            ids.get("no_branch", path, info.funcs.get(line, "<module>"), line)
        if branch:
            for (src, dst), witness in sorted(info.arcs.items()):
                sid = ids.get("branch", path, info.funcs.get(src, "<module>"), src, dst)
                if witnessed:
                    seen = ran if witness >= MARKER_BASE else per_stmt
                    counts[sid] = seen.get(witness, 0)
    sites: dict[str, list] = {c: [] for c in ("site_id", "kind", "unit", "func", "line", "target")}
    for sid, (kind, unit, func, line, target) in enumerate(ids.rows):
        if kind == "func":
            target = sid  # a function's number, what call sites name as their target
        for col, value in zip(sites, (sid, kind, unit, func, line, target), strict=True):
            sites[col].append(value)
    hit = sorted(sid for sid, n in counts.items() if n)
    recorder.write("sites", sites)
    recorder.write("counts", {"site_id": hit, "count": [counts[sid] for sid in hit]})
    if per_context:
        keys = sorted(per_context, key=lambda k: (k[0] or "", k[1]))
        recorder.write(
            "context_counts",
            {
                "context": [k[0] for k in keys],
                "site_id": [k[1] for k in keys],
                "count": [per_context[k] for k in keys],
            },
        )
