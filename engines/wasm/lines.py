"""Source lines as sites: where a module carries DWARF line tables (``dwarf.py``), each line
of the user's source files that code was compiled from is a ``line`` site (unit: the source
file; func: the Wasm function; offset: its first instruction there), counted from the
blocks that hold its instructions: a line ran when any instruction attributed to it ran, as
gcov counts a line, and as often as the most often run of them.

Blocks are contiguous: each runs from its leader to the next block's (body.py), the last to
the end of the function, so a block's byte range is known from the offsets alone. Code the
rewriter leaves without a probe (unreachable) is a block of its own, never counted.

Every other site (a block, branch, call, ...) is placed on the source line of its own
instruction, where that is in the user's files, with or without line sites: the branches
and trace reports show these.

Which files are the user's: as ``--source``/``--include``/``--omit`` say (``Scope``); by
default every file that exists where the line table says, but system headers and libraries
(under /usr, or named relative to a build directory that isn't here, as wasi-libc's are).
"""

from __future__ import annotations

import os

from probe.errors import WasmError
from probe.probes import Scope
from probe.storage.spool import warn

from . import dwarf
from .binary import Module
from .rewrite import Result

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence

SYSTEM = ("/usr/", "/opt/", "/nix/")


class LineSites:
    """The line sites of a run, and how to count them from its block counts."""

    __slots__ = (
        "first_id", "unit", "func", "line", "offset", "pairs_line", "pairs_block", "places"
    )  # fmt: skip

    def __init__(self, first_id: int) -> None:
        self.first_id = first_id  # site ids go on after the module's own sites
        self.unit: list[str] = []
        self.func: list[int] = []  # function index (imports included)
        self.line: list[int] = []
        self.offset: list[int] = []
        # (line site, block site) for every block holding an instruction of the line
        self.pairs_line: list[int] = []
        self.pairs_block: list[int] = []
        # the module's site -> (file, line) of its instruction, in the user's files: where
        # reports place blocks, branches, calls and the trace's events
        self.places: dict[int, tuple[str, int]] = {}

    def __len__(self) -> int:
        return len(self.unit)

    def counts(self, block_counts: Sequence[int]) -> list[int]:
        """Each line site's count from the sites' counts (by site): its busiest block's."""
        found = [0] * len(self.unit)
        for line, block in zip(self.pairs_line, self.pairs_block, strict=True):
            c = block_counts[block]
            if c > found[line]:
                found[line] = c
        return found


def line_sites(module: Module, prepared: Result, scope: Scope) -> LineSites | None:
    """The line sites of the user's files, and where in them each of the module's sites is
    (None: no line tables). Lines are sites only where blocks are: their counts come from
    the blocks'."""
    if not any(s.id == 0 and s.name == ".debug_line" for s in module.sections):
        return None
    from . import cache

    table = cache.source_lines(module.data)
    if table is None:
        try:
            table = dwarf.read(module)
        except WasmError as e:  # wasmtime runs it all the same: so does probe, per function
            warn(f"warning: {e}; reports stay per function and offset")
            return None
        if table is None:
            return None
        cache.keep_source_lines(module.data, table)
    sites = prepared.sites
    wanted: dict[str, bool] = {}

    def users(path: str) -> bool:
        ok = wanted.get(path)
        if ok is None:
            ok = wanted[path] = _users(path, scope)
        return ok

    found = LineSites(len(sites) + module.imported_funcs)
    at, places = table.at, found.places
    for i, offset in enumerate(sites.offset):
        where = at(offset)
        if where is not None and users(where[0]):
            places[i] = where[:2]
    blocks: dict[int, list[tuple[int, int]]] = {}  # function -> [(offset, site)]
    for i, kind in enumerate(sites.kind):
        if kind == "block":
            blocks.setdefault(sites.func[i], []).append((sites.offset[i], i))
    ends = {b.index: b.end for b in module.bodies} if blocks else {}
    ids: dict[tuple[str, int, int], int] = {}
    for fidx, starts in blocks.items():
        starts.sort()
        for k, (start, site) in enumerate(starts):
            end = starts[k + 1][0] if k + 1 < len(starts) else ends.get(fidx, start)
            for (unit, line), first in table.lines(start, end).items():
                if not users(unit):
                    continue
                key = (unit, line, fidx)
                lid = ids.get(key)
                if lid is None:
                    lid = ids[key] = len(found.unit)
                    found.unit.append(unit)
                    found.func.append(fidx)
                    found.line.append(line)
                    found.offset.append(first)
                found.pairs_line.append(lid)
                found.pairs_block.append(site)
    return found if found.unit or places else None


def _users(path: str, scope: Scope) -> bool:
    if not scope.matches(path):  # --source, --include, --omit
        return False
    if scope.narrowed():
        return True  # what the user named, wherever it is
    return os.path.isabs(path) and not path.startswith(SYSTEM) and os.path.exists(path)
