"""The engine-neutral probe model.

A *site* is a place in a program where something can happen (a line, a
branch arc, a Wasm block). A *probe* says what to record there and how
much: a flag (did it ever fire), a count, the operand values, or a Python
callback. Analyses say which probes they need; engines decide how to
realise each probe kind cheaply on their target. A :class:`ProbeSet` is
the union of what the analyses of one run need: two analyses that ask for
the same sites share one probe, and the stronger kind wins (a count also
answers a flag).
"""

from __future__ import annotations

import enum
import fnmatch
import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field


class Kind(enum.IntEnum):
    """What a probe records, ordered from cheapest to most flexible."""

    FLAG = 1  # first execution only; count is stored as 1
    COUNT = 2  # every execution, exact count
    OPERAND = 3  # every execution, with values, as ordered events
    CALLBACK = 4  # arbitrary Python at every execution


# Event classes a probe can attach to. Engines list which they support.
EVENTS = ("line", "branch", "block", "instr", "func", "call", "return", "load", "store")


@dataclass(frozen=True)
class Site:
    """Where a probe fires; the columns of the ``sites`` table."""

    kind: str
    unit: str  # source file (Python) or module (Wasm)
    func: str | None = None
    line: int | None = None
    offset: int | None = None  # Wasm: byte offset in the original module
    target: int | None = None  # branch destination where it applies


@dataclass(frozen=True)
class Probe:
    """A probe of ``kind`` on every site of class ``event``, or on one ``site``.

    A probe with no site is a *global* probe: it covers every site of its
    event class in the run's scope. A probe with a site is a *local* probe.
    """

    event: str
    kind: Kind = Kind.FLAG
    site: Site | None = None
    # CALLBACK probes: called with a SiteEvent each time the probe fires.
    callback: Callable[[SiteEvent], None] | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        if self.event not in EVENTS:
            raise ValueError(f"unknown probe event {self.event!r} (known: {', '.join(EVENTS)})")
        if (self.kind == Kind.CALLBACK) != (self.callback is not None):
            raise ValueError("a callback probe needs a callback, and only it takes one")


@dataclass(frozen=True)
class SiteEvent:
    """What a callback probe sees when it fires."""

    site_id: int
    kind: str
    func: str
    offset: int | None = None
    line: int | None = None


@dataclass
class ProbeSet:
    """The deduplicated union of the probes the analyses of one run need."""

    _probes: dict[tuple[str, Site | None], Kind] = field(default_factory=dict)
    # Callbacks per (event, site), in the order they were added: the order they fire in.
    _callbacks: dict[tuple[str, Site | None], list[Callable[[SiteEvent], None]]] = field(
        default_factory=dict
    )

    @classmethod
    def of(cls, probes: Iterable[Probe]) -> ProbeSet:
        merged = cls()
        for p in probes:
            merged.add(p)
        return merged

    def add(self, probe: Probe) -> None:
        key = (probe.event, probe.site)
        if probe.callback is not None:
            self._callbacks.setdefault(key, []).append(probe.callback)
            self._probes.setdefault(key, Kind.FLAG)  # the site is placed like any other
            return
        self._probes[key] = max(self._probes.get(key, probe.kind), probe.kind)

    def callbacks(self, event: str) -> list[Callable[[SiteEvent], None]]:
        """The callbacks of the global callback probes on ``event``, in firing order."""
        return list(self._callbacks.get((event, None), ()))

    def kind_for(self, event: str) -> Kind | None:
        """The kind of the global probe on ``event``, or None if there is none."""
        return self._probes.get((event, None))

    def events(self) -> set[str]:
        return {event for event, _ in self._probes}

    def __iter__(self) -> Iterator[Probe]:
        for (event, site), kind in self._probes.items():
            yield Probe(event, kind, site)
        for (event, site), fns in self._callbacks.items():
            for fn in fns:
                yield Probe(event, Kind.CALLBACK, site, fn)

    def __len__(self) -> int:
        return len(self._probes)


@dataclass(frozen=True)
class Scope:
    """Which units (source files, modules) a run measures.

    ``source`` directories limit measurement to files below them (and make
    reports list their files that never ran); ``include`` and ``omit`` are
    glob patterns matched against the absolute path and the path relative
    to the working directory, as coverage.py matches them.
    """

    source: tuple[str, ...] = ()
    include: tuple[str, ...] = ()
    omit: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "source", tuple(os.path.abspath(s) for s in self.source))

    def narrowed(self) -> bool:
        """True when the user said what to measure (so no default exclusions apply)."""
        return bool(self.source or self.include)

    def matches(self, path: str) -> bool:
        path = os.path.abspath(path)
        if self.source and not any(_below(path, d) for d in self.source):
            return False
        if self.include and not _globbed(path, self.include):
            return False
        return not (self.omit and _globbed(path, self.omit))


def _below(path: str, directory: str) -> bool:
    return path == directory or path.startswith(directory.rstrip(os.sep) + os.sep)


def _globbed(path: str, patterns: tuple[str, ...]) -> bool:
    rel = os.path.relpath(path)
    return any(fnmatch.fnmatch(path, p) or fnmatch.fnmatch(rel, p) for p in patterns)
