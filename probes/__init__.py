"""The engine-neutral probe model.

A *site* is a place in a program where something can happen (a line, a
branch arc, a Wasm block). A *probe* says what to record there and how
much: a flag (did it ever fire), a count, the operand values, or a Python
callback. Analyses say which probes they need; engines decide how to
realise each probe kind cheaply on their target. A :class:`ProbeSet` is
the union of what the analyses of one run need: two analyses that ask for
the same sites share one probe, and the stronger kind wins (a count also
answers a flag).

These types are plain classes, not dataclasses or NamedTuples: this module is imported before
every measured program, and ``import dataclasses`` (it brings ``inspect``) with the building of
each class cost `probe run` about 18 ms of its 40 (issue 14); a NamedTuple compiles each of
its fields' annotations (strings here) when the class is built, ~0.25 ms a field.
"""

from __future__ import annotations

import enum
import fnmatch
import os
from collections.abc import Callable, Iterable, Iterator

from probe.config import DEFAULT_EXCLUDE, DEFAULT_PARTIAL
from probe.errors import UsageError

TYPE_CHECKING = False  # typing's, without importing typing on a run's path (architecture)
if TYPE_CHECKING:
    from typing import Any


class Kind(enum.IntEnum):
    """What a probe records, ordered from cheapest to most flexible."""

    SAMPLE = 0  # looked at now and then by a sampler (stacks): costs nothing per execution
    FLAG = 1  # first execution only; count is stored as 1
    COUNT = 2  # every execution, exact count
    RANGE = 3  # a count, and the lowest and highest operand seen (Wasm memory addresses)
    OPERAND = 4  # every execution, with values, as ordered events
    CALLBACK = 5  # arbitrary Python at every execution


# Event classes a probe can attach to. Engines list which they support.
# ``state``: the variables of a frame after each line (Python), a step per line.
# ``stack``: the call stack (sampled: the ``samples``/``stacks`` tables); ``path``: acyclic
# paths through a function's control-flow graph (Ball-Larus numbering, counted: ``paths``).
EVENTS = (
    "line",
    "branch",
    "block",
    "instr",
    "func",
    "call",
    "return",
    "load",
    "store",
    "state",
    "stack",
    "path",
)


class _Value:
    """An immutable value, equal to another of its class with equal fields (its
    ``__slots__``) and hashed by them: what a frozen dataclass is, without its cost."""

    __slots__ = ()

    def _set(self, *values: object) -> None:
        for name, value in zip(self.__slots__, values, strict=True):
            object.__setattr__(self, name, value)

    def _key(self) -> tuple[object, ...]:
        return tuple(getattr(self, name) for name in self.__slots__)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"a {type(self).__name__} can't be changed (its {name})")

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        return self._key() == other._key()  # type: ignore[attr-defined]

    def __hash__(self) -> int:
        return hash(self._key())

    def __repr__(self) -> str:
        fields = ", ".join(f"{name}={getattr(self, name)!r}" for name in self.__slots__)
        return f"{type(self).__name__}({fields})"

    def __reduce__(self) -> tuple[type, tuple[object, ...]]:  # pickle and copy: by __init__
        return type(self), tuple(getattr(self, name) for name in self.__slots__)


class Sampling(_Value):
    """How a sample probe (``Probe("stack", Kind.SAMPLE)``) samples: ``rate`` per second;
    Python (py-spy) also: ``idle`` threads too, only threads holding the ``gil``, child
    processes (``subprocesses``), ``native`` frames of extensions."""

    __slots__ = ("rate", "idle", "gil", "subprocesses", "native")
    rate: int
    idle: bool
    gil: bool
    subprocesses: bool
    native: bool

    def __init__(
        self,
        rate: int = 100,
        idle: bool = False,
        gil: bool = False,
        subprocesses: bool = False,
        native: bool = False,
    ) -> None:
        self._set(rate, idle, gil, subprocesses, native)

    def merged(self, other: Sampling) -> Sampling:
        """What serves both: the higher rate, every option either asks for."""
        return Sampling(
            max(self.rate, other.rate),
            self.idle or other.idle,
            self.gil or other.gil,
            self.subprocesses or other.subprocesses,
            self.native or other.native,
        )


class Site(_Value):
    """Where a probe fires; the columns of the ``sites`` table: ``unit`` is the source file
    (Python) or module (Wasm), None in a pattern (any); ``offset`` the byte offset in the
    original Wasm module; ``target`` the branch destination where it applies."""

    __slots__ = ("kind", "unit", "func", "line", "offset", "target")
    kind: str
    unit: str | None
    func: str | None
    line: int | None
    offset: int | None
    target: int | None

    def __init__(
        self,
        kind: str,
        unit: str | None,
        func: str | None = None,
        line: int | None = None,
        offset: int | None = None,
        target: int | None = None,
    ) -> None:
        self._set(kind, unit, func, line, offset, target)


class Probe(_Value):
    """A probe of ``kind`` on every site of class ``event``, or on one ``site``.

    A probe with no site is a *global* probe: it covers every site of its
    event class in the run's scope. A probe with a site is a *local* probe.

    ``callback`` (CALLBACK probes): called with a SiteEvent each time the probe fires; a
    callback probe without one places switched-off callback points on every site of its
    event class, so that probes can be inserted there while the program runs. ``limit``
    (operand probes): record at most this many events of the class in a run (the smallest
    limit asked wins; the run says when it was reached). ``sampling`` (sample probes): how
    to sample (the default Sampling when None). Those three are not compared: a probe is
    its event, kind and site. Immutable.
    """

    __slots__ = ("event", "kind", "site", "callback", "limit", "sampling")
    event: str
    kind: Kind
    site: Site | None
    callback: Callable[[SiteEvent], None] | None
    limit: int | None
    sampling: Sampling | None

    def __init__(
        self,
        event: str,
        kind: Kind = Kind.FLAG,
        site: Site | None = None,
        callback: Callable[[SiteEvent], None] | None = None,
        limit: int | None = None,
        sampling: Sampling | None = None,
    ) -> None:
        if event not in EVENTS:
            raise UsageError(f"unknown probe event {event!r} (known: {', '.join(EVENTS)})")
        if callback is not None and kind != Kind.CALLBACK:
            raise UsageError("only a callback probe takes a callback")
        self._set(event, kind, site, callback, limit, sampling)

    def _key(self) -> tuple[object, ...]:
        return self.event, self.kind, self.site


class SiteEvent(_Value):
    """What a callback probe sees when it fires.

    ``value`` is the operand captured at the site where the engine has one (Python: a
    return value); ``frame`` the running Python frame (``f_locals``, ``f_code``) in the
    CPython engine, None in Wasm; ``probes`` the run's live probes, to insert or remove
    probes from inside a callback.
    """

    __slots__ = ("site_id", "kind", "func", "offset", "line", "unit", "value", "frame", "probes")
    site_id: int
    kind: str
    func: str
    offset: int | None
    line: int | None
    unit: str | None
    value: object
    frame: Any
    probes: Switchboard | None

    def __init__(
        self,
        site_id: int,
        kind: str,
        func: str,
        offset: int | None = None,
        line: int | None = None,
        unit: str | None = None,
        value: object = None,
        frame: Any = None,
        probes: Switchboard | None = None,
    ) -> None:
        self._set(site_id, kind, func, offset, line, unit, value, frame, probes)


class Switchboard:
    """The callback probes of a running program; insert and remove them while it runs.

    Guarantees, on both engines:

    * Probes at one site fire in the order they were inserted (a global probe counts as
      inserted at every site of its class when it was inserted).
    * A probe inserted while probes fire takes effect at the next execution of its site.
    * A removal takes effect at once: a removed probe does not fire again, not even later
      in the same round of firing.

    An engine supplies ``resolve`` (a local probe's site -> the run's site ids it matches;
    None fields of the site match anything) and ``switch`` (turn sites' callback points on
    or off; a global probe's class is switched as a whole with ``site_id`` None). An engine
    that learns its sites as the program runs (``lazy``) reports each new one through
    ``discovered``, and local probes inserted earlier take it up.
    """

    def __init__(
        self,
        resolve: Callable[[Probe], Iterable[int]],
        switch: Callable[[str, Iterable[int] | None, bool], None],
        lazy: bool = False,
    ) -> None:
        self._resolve = resolve
        self._switch = switch
        self._lazy = lazy
        self._seq = 0
        self._alive: dict[int, tuple[Probe, list[int] | None]] = {}
        self._local: dict[int, list[tuple[int, Callable[[SiteEvent], None]]]] = {}
        self._global: dict[str, list[tuple[int, Callable[[SiteEvent], None]]]] = {}

    def insert(self, probe: Probe) -> None:
        if probe.callback is None:
            raise UsageError("only callback probes can be inserted while the program runs")
        self._seq += 1
        entry = (self._seq, probe.callback)
        if probe.site is None:
            self._global.setdefault(probe.event, []).append(entry)
            self._alive[self._seq] = (probe, None)
            self._switch(probe.event, None, True)
            return
        sites = list(self._resolve(probe))
        if not sites and not self._lazy:
            raise LookupError(f"no {probe.event} site matches {probe.site}")
        self._alive[self._seq] = (probe, sites)
        fresh = []
        for site in sites:
            at = self._local.setdefault(site, [])
            if not at:
                fresh.append(site)
            at.append(entry)
        if fresh:
            self._switch(probe.event, fresh, True)

    def remove(self, probe: Probe) -> None:
        """Remove every inserted probe equal to ``probe`` with the same callback."""
        gone = [
            seq
            for seq, (p, _) in self._alive.items()
            if p == probe and p.callback is probe.callback
        ]
        if not gone:
            raise LookupError(f"no such probe: {probe}")
        for seq in gone:
            p, sites = self._alive.pop(seq)
            if sites is None:
                left = [e for e in self._global[p.event] if e[0] != seq]
                self._global[p.event] = left
                if not left:
                    self._switch(p.event, None, False)
                continue
            off = []
            for site in sites:
                left = [e for e in self._local[site] if e[0] != seq]
                self._local[site] = left
                if not left:
                    off.append(site)
            if off:
                self._switch(p.event, off, False)

    def discovered(self, event: str, site_id: int, matches: Callable[[Site], bool]) -> None:
        """A site the engine just met: local probes of ``event`` whose site ``matches`` it
        start firing there, in their order."""
        at = self._local.setdefault(site_id, [])
        fresh = not at
        for seq, (probe, sites) in self._alive.items():
            if sites is None or probe.event != event or site_id in sites:
                continue
            if probe.site is not None and matches(probe.site):
                sites.append(site_id)
                at.append((seq, probe.callback))  # type: ignore[arg-type]
        at.sort(key=lambda entry: entry[0])
        if fresh and at:
            self._switch(event, [site_id], True)

    def active(self, event: str, site_id: int) -> bool:
        return bool(self._global.get(event) or self._local.get(site_id))

    def fire(self, event: str, site_id: int, what: SiteEvent) -> None:
        """Call the callbacks at ``site_id`` in their order; new ones wait for the next time."""
        glob, local = self._global.get(event), self._local.get(site_id)
        if glob and local:
            order = sorted(glob + local)
        else:
            order = tuple(glob or local or ())
        alive = self._alive
        for seq, fn in order:
            if seq in alive:  # removed by an earlier callback of this round: skip it
                fn(what)


class ProbeSet:
    """The deduplicated union of the probes the analyses of one run need.

    Engines place probes per event class: a local flag, count or operand probe makes its
    class probed (operand events are then limited to the local probes' sites where the engine
    can tell them apart early; rows of other sites are recorded too, and analyses select).
    Callback probes keep their identity and order: they are what a Switchboard starts with.
    """

    def __init__(
        self,
        probes: dict[tuple[str, Site | None], Kind] | None = None,
        callbacks: list[Probe] | None = None,
        limits: dict[str, int] | None = None,
        sampling: dict[str, Sampling] | None = None,
    ) -> None:
        self._probes = probes if probes is not None else {}
        self._callbacks = callbacks if callbacks is not None else []
        self._limits = limits if limits is not None else {}
        self._sampling = sampling if sampling is not None else {}

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ProbeSet):
            return NotImplemented
        return (self._probes, self._callbacks, self._limits, self._sampling) == (
            other._probes,
            other._callbacks,
            other._limits,
            other._sampling,
        )

    __hash__ = None  # type: ignore[assignment]  # mutable

    def __repr__(self) -> str:
        return f"ProbeSet.of({list(self)!r})"

    @classmethod
    def of(cls, probes: Iterable[Probe]) -> ProbeSet:
        merged = cls()
        for p in probes:
            merged.add(p)
        return merged

    def add(self, probe: Probe) -> None:
        if probe.kind == Kind.CALLBACK:
            self._callbacks.append(probe)
            return
        if probe.limit is not None:
            self._limits[probe.event] = min(self._limits.get(probe.event, probe.limit), probe.limit)
        if probe.kind == Kind.SAMPLE:
            asked = probe.sampling or Sampling()
            known = self._sampling.get(probe.event)
            self._sampling[probe.event] = asked if known is None else known.merged(asked)
        key = (probe.event, probe.site)
        self._probes[key] = max(self._probes.get(key, probe.kind), probe.kind)

    def kind_for(self, event: str) -> Kind | None:
        """The strongest flag, count or operand probe on ``event``, global or local."""
        kinds = [k for (e, _), k in self._probes.items() if e == event]
        return max(kinds) if kinds else None

    def sampling_for(self, event: str) -> Sampling | None:
        """How sample probes on ``event`` sample (None: there are none)."""
        return self._sampling.get(event)

    def limit_for(self, event: str) -> int | None:
        """The most events of class ``event`` a run records (None: no limit)."""
        return self._limits.get(event)

    def funcs_for(self, event: str, kind: Kind) -> tuple[str, ...] | None:
        """Function name globs where sites of ``event`` need ``kind`` (or stronger), from the
        local probes' sites; None when some probe wants it in every function."""
        found = []
        for (e, site), k in self._probes.items():
            if e == event and k >= kind:
                if site is None or site.func is None:
                    return None
                found.append(site.func)
        return tuple(found)

    def without(self, event: str) -> ProbeSet:
        """These probes but the flag, count and operand probes on ``event`` (an engine that
        serves them another way hands the rest on)."""
        return ProbeSet(
            {(e, site): k for (e, site), k in self._probes.items() if e != event},
            list(self._callbacks),
            dict(self._limits),
            dict(self._sampling),
        )

    def callback_probes(self) -> list[Probe]:
        """Callback probes (and callback-less callback points), in the order they were added."""
        return list(self._callbacks)

    def switchable(self) -> set[str]:
        """Event classes that get callback points."""
        return {p.event for p in self._callbacks}

    def events(self) -> set[str]:
        return {event for event, _ in self._probes} | self.switchable()

    def __iter__(self) -> Iterator[Probe]:
        for (event, site), kind in self._probes.items():
            yield Probe(event, kind, site)
        yield from self._callbacks

    def __len__(self) -> int:
        return len(self._probes) + len(self._callbacks)


def site_matches(
    pattern: Site,
    kind: str,
    unit: str | None,
    func: str | None,
    line: int | None = None,
    offset: int | None = None,
    target: int | None = None,
) -> bool:
    """Whether a site has ``pattern``'s fields; None fields match anything, ``func`` is a glob."""
    if pattern.kind != kind:
        return False
    if pattern.unit is not None and unit is not None and os.path.realpath(pattern.unit) != unit:
        return False
    if pattern.func is not None and not fnmatch.fnmatchcase(func or "", pattern.func):
        return False
    return all(
        want is None or want == have
        for want, have in ((pattern.line, line), (pattern.offset, offset), (pattern.target, target))
    )


class Scope(_Value):
    """Which units (source files, modules) a run measures, and which of their lines.

    ``source`` directories limit measurement to files below them (and make
    reports list their files that never ran); ``include`` and ``omit`` are
    glob patterns matched against the absolute path and the path relative
    to the working directory, as coverage.py matches them. ``exclude``: regexes of lines
    that are not measured (their statements, and a clause or function they begin);
    ``partial``: of branch lines not held to every arc; coverage.py's by default.
    Immutable.
    """

    __slots__ = ("source", "include", "omit", "exclude", "partial")
    source: tuple[str, ...]
    include: tuple[str, ...]
    omit: tuple[str, ...]
    exclude: tuple[str, ...]
    partial: tuple[str, ...]

    def __init__(
        self,
        source: Iterable[str] = (),
        include: Iterable[str] = (),
        omit: Iterable[str] = (),
        exclude: Iterable[str] = DEFAULT_EXCLUDE,
        partial: Iterable[str] = DEFAULT_PARTIAL,
    ) -> None:
        source = tuple(os.path.abspath(s) for s in source)
        self._set(source, tuple(include), tuple(omit), tuple(exclude), tuple(partial))

    def fields(self) -> dict[str, tuple[str, ...]]:
        """Its settings by name: ``Scope(**scope.fields())`` is the same scope."""
        return {name: getattr(self, name) for name in self.__slots__}

    def narrowed(self) -> bool:
        """True when the user said what to measure (so no default exclusions apply)."""
        return bool(self.source or self.include)

    def unmatched(self, ran: Iterable[str]) -> list[str]:
        """What to warn of once a run ends: a source that is not a directory, an include
        pattern that matched no file that ran (so nothing of it was measured)."""
        ran = [os.path.abspath(p) for p in ran]
        out = [f"--source {s}: no such directory, nothing measured below it"
               for s in self.source if not os.path.isdir(s)]  # fmt: skip
        for pattern in self.include:
            if not any(_globbed(p, (pattern,)) for p in ran):
                out.append(f"--include {pattern}: no file that ran matches it")
        return out

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
