"""Trace: the ordered events of chosen sites, with their values.

With no ``--sites``: every basic-block entry (Wasm) or every line (Python), in
execution order, and every call and return, which a timeline shows as slices (the text and
JSON reports show the blocks or lines). ``--sites`` narrows or widens it; each value is one
of

* ``func:GLOB`` — only sites in functions whose names match (``func:main``);
* an event class — ``block``, ``line``, ``branch`` (the arm taken, with the
  condition), ``call``, ``func`` (arguments), ``return`` (return values),
  ``load``/``store`` (addresses), ``instr``.

The result reads the view ``trace`` (events joined to their sites; order by ``seq``).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NamedTuple

from probe.errors import UsageError
from probe.probes import EVENTS, Kind, Probe, Site

from . import Analysis, Tables

if TYPE_CHECKING:
    from probe.storage import Database

    from .hotpaths import SampleRows

_SHOWN = 50  # events the text report prints from the start
_MOST_IN_A_REPORT = 5_000_000  # a JSON report holds every event in memory


class Trace(Analysis):
    name = "trace"
    description = "ordered events of chosen sites with their values (--sites)"

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.classes: list[str] = []
        self.funcs: list[str] = []
        for spec in options.get("sites") or ():
            if spec.startswith("func:") and len(spec) > 5:
                self.funcs.append(spec[5:])
            elif spec in EVENTS:
                self.classes.append(spec)
            else:
                raise UsageError(f"--sites {spec!r}: give func:GLOB or one of {', '.join(EVENTS)}")

    def probes(self, events: frozenset[str]) -> Iterable[Probe]:
        default = "block" if "block" in events else "line"
        classes = [c for c in self.classes if c in events]
        if not classes:  # the timeline's slices too (see Timeline)
            classes = [default, *(c for c in ("func", "return") if c in events)]
        for event in classes:
            if not self.funcs:
                yield Probe(event, Kind.OPERAND)
            for pattern in self.funcs:
                yield Probe(event, Kind.OPERAND, Site(event, None, func=pattern))

    def summary(self, run: dict[str, Any], tables: Tables) -> str | None:
        from probe.reports import render

        # The events were streamed to the journal, not kept: a summary has their number.
        return render(self, TraceEvents([], run.get("streamed", {}).get("events", 0), True), "text")

    def report(self, db: Database, run_id: str, fmt: str = "text") -> Any:
        from probe.reports import check, render

        if fmt in TIMELINES:
            return render(self, self.timeline(db, run_id), fmt)
        check(self, TraceEvents, fmt)  # before reading what may be millions of events
        return render(self, self.result(db, run_id, every=fmt != "text"), fmt)

    def timeline(self, db: Database, run_id: str) -> Timeline:
        """Every event of the run in order, read as it is written out (any number)."""
        return Timeline.read(db, run_id)

    def result(self, db: Database, run_id: str, every: bool = True) -> TraceEvents:
        """The events this trace asked for (not other analyses' of the run): ``every`` one,
        or the first few, with how many there are."""
        run = db.run(run_id)
        asked = Trace(**run["options"])
        kinds = asked.classes or ["block" if run["engine"] == "wasm" else "line"]
        where = f"run_id = ? AND kind IN ({', '.join('?' * len(set(kinds)))})"
        params: list[Any] = [run_id, *sorted(set(kinds))]
        if asked.funcs:
            where += " AND (" + " OR ".join("func GLOB ?" for _ in asked.funcs) + ")"
            params += asked.funcs
        elsewhere = 0
        if run["engine"] == "wasm" and not asked.funcs and _has_source_lines(db, run_id):
            # the user's code, as coverage selects it: libc's events are left out, and said
            counted = f"SELECT count(*), count(source) FROM trace WHERE {where}"
            (every_one, total) = db.execute(counted, params).fetchone()
            elsewhere = every_one - total
            where += " AND source IS NOT NULL"
        else:
            (total,) = db.execute(f"SELECT count(*) FROM trace WHERE {where}", params).fetchone()
        if every and total > _MOST_IN_A_REPORT:
            raise UsageError(
                f"the trace has {total:,} events, too many for one report: query the trace "
                "view (probe query), or probe export --format parquet"
            )
        query = (
            'SELECT seq, kind, unit, func, line, "offset", target, value, detail, source '
            "FROM trace "
            f"WHERE {where} ORDER BY seq" + ("" if every else f" LIMIT {_SHOWN}")
        )
        events = [Event(*row) for row in db.execute(query, params).fetchall()]
        return TraceEvents(events, total, elsewhere=elsewhere)


def _has_source_lines(db: Database, run_id: str) -> bool:
    """Whether a Wasm run's sites are placed in the user's source files (DWARF)."""
    found = (
        "SELECT count(*) FROM (SELECT 1 FROM sites WHERE run_id = ? AND source IS NOT NULL LIMIT 1)"
    )
    return db.execute(found, [run_id]).fetchone()[0] > 0


class Event(NamedTuple):
    seq: int
    kind: str
    unit: str
    func: str
    line: int | None
    offset: int | None
    target: int | None
    value: int | None
    detail: str | None
    source: str | None = None  # Wasm with DWARF: the source file of the site (line: its line)


def _entries(seq: Any, site: Any, group: Any, carry: tuple[int, int]) -> tuple[Any, Any, Any]:
    """Keep the first event of each entry: an entry of a function whose group is k records
    k events of its site in a row (nothing runs between them), so in a run of one site's
    events every k-th begins a call. ``carry``: the run at the end of the last batch."""
    import numpy as np

    k = group[site]
    new_run = np.ones(len(site), bool)
    new_run[1:] = site[1:] != site[:-1]
    start = np.flatnonzero(new_run)
    lengths = np.diff(np.append(start, len(site)))
    position = np.arange(len(site)) - np.repeat(start, lengths)
    if site[0] == carry[0]:  # the first run goes on from the last batch's
        position[: lengths[0]] += carry[1]
    keep = position % k == 0
    last = len(site) - lengths[-1]
    carry = (int(site[-1]), int(position[last]) + int(lengths[-1]))
    return seq[keep], site[keep], carry


def _close(held: list[str], keep: int, at: int, out: list[tuple[int, int, str]]) -> None:
    """End the slices of the frames ``held`` above the first ``keep``, innermost first."""
    while len(held) > keep:
        out.append((at, 2, held.pop()))


# Formats that stream every event (reports/perfetto.py, reports/chrome.py).
TIMELINES = ("perfetto", "chrome-json")


class Timeline:
    """A run as a timeline. Its events: ``sites`` (site_id, kind, unit, func, line, offset,
    source, size), and ``events``, Arrow batches of (seq, site_id, thread) in order, read once, on
    the threads ``event_threads`` (0: Wasm's one). A ``func``
    event begins a slice (a call), a ``return`` ends it; any other event is an instant. A
    Wasm func site's size is the events one entry records (one per argument). probe
    records the order of events, not their times: an event's time is its ``seq``, one
    microsecond each.

    Its samples (hotpaths), in real time: ``samples`` (process, thread, seconds into the
    run, frames from the root, weight) at ``rate`` per second, as flame charts per thread
    (``flames``) and a counter of samples per 100 ms (``activity``). Its perf counters over
    the whole run, ``counters`` (event, value, unit), as counters from 0 at its start to
    their value at its end, ``wall_s`` in."""

    def __init__(
        self,
        run_id: str,
        target: str,
        sites: list[tuple],
        events: Iterable[Any],
        *,
        samples: SampleRows = (),
        rate: int = 100,
        counters: list[tuple[str, float, str]] = (),
        wall_s: float = 0.0,
        event_threads: list[int] | None = None,
    ) -> None:
        self.run_id = run_id
        self.target = target
        self.sites = sites
        self.events = events
        self.samples = samples
        self.rate = rate
        self.counters = counters
        self.wall_s = wall_s
        # the events' thread ids, ascending, a track each; [0]: Wasm's one thread (or none)
        self.event_threads = event_threads or [0]
        self.open: dict[int, int] = {}  # set by paired(): per track, calls open at the end
        self.last = 0

    @classmethod
    def read(cls, db: Database, run_id: str, events: bool = True) -> Timeline:
        """The run's timeline from the database: its events (``events``: else none), its
        samples and counters."""
        from .hotpaths import samples_from_db

        run = db.run(run_id)
        sites, batches, threads = [], iter(()), []
        if events:
            sites = db.execute(
                'SELECT site_id, kind, unit, func, line, "offset", source, size FROM sites '
                "WHERE run_id = ? ORDER BY site_id",
                [run_id],
            ).fetchall()
            thread = "coalesce(thread, 0)"  # 0: Wasm's one thread
            batches = db.batches(
                f"SELECT seq, site_id, {thread} FROM events WHERE run_id = ? ORDER BY seq",
                [run_id],
            )
            where = f"SELECT DISTINCT {thread} AS t FROM events WHERE run_id = ? ORDER BY t"
            threads = [t for (t,) in db.execute(where, [run_id]).fetchall()]
        counters = db.execute(
            "SELECT event, value, unit FROM counters WHERE run_id = ? AND region = 'run' "
            "AND status = 'ok' AND value IS NOT NULL ORDER BY event",
            [run_id],
        ).fetchall()
        return cls(
            run_id, run.get("target") or "", sites, batches,
            samples=samples_from_db(db, run_id),
            rate=int((run.get("options") or {}).get("rate") or 100),
            counters=counters, wall_s=run.get("wall_s") or 0.0, event_threads=threads,
        )  # fmt: skip

    def threads(self) -> list[tuple[int, str, int, str]]:
        """The sampled threads, in order: (process, thread as the samples name it, its id,
        its name), the id and name read from the label ("1234 MainThread"), else made up."""
        found = []
        for k, (process, label) in enumerate(dict.fromkeys((p, t) for p, t, *_ in self.samples)):
            tid, _, name = label.partition(" ")
            found.append(
                (process, label, int(tid), name or tid)
                if tid.isdigit()
                else (process, label, k + 1, label)
            )
        return found

    def flames(self) -> Iterator[tuple[int, str, list[tuple[int, int, str]]]]:
        """Per sampled thread: (process, thread, slices as (ns, 1 begin | 2 end, function)).
        A frame's slice lasts while consecutive samples hold it, a sample one interval (its
        weight: that many); a gap between samples (the thread idle, or not sampled) ends
        every slice at the last sample's end."""
        from itertools import groupby

        step = 1e9 / self.rate
        for (process, thread), rows in groupby(self.samples, key=lambda r: (r[0], r[1])):
            out: list[tuple[int, int, str]] = []
            held: list[str] = []
            until = 0

            for _, _, seconds, frames, weight in rows:
                at = round(seconds * 1e9)
                if held and at > until + step / 2:
                    _close(held, 0, until, out)
                stack = [f[0] for f in frames]
                common = 0
                while common < min(len(held), len(stack)) and held[common] == stack[common]:
                    common += 1
                _close(held, common, at, out)
                for name in stack[common:]:
                    out.append((at, 1, name))
                    held.append(name)
                until = at + round(weight * step)
            _close(held, 0, until, out)
            yield process, thread, out

    def activity(self, window_s: float = 0.1) -> Iterator[tuple[int, str, list[tuple[int, int]]]]:
        """Per sampled thread: (process, thread, (ns, samples in the window from there)),
        every window from the thread's first sample to its last."""
        step = 1.0 / self.rate
        per: dict[tuple[int, str], dict[int, int]] = {}
        for process, thread, seconds, _, weight in self.samples:
            windows = per.setdefault((process, thread), {})
            for i in range(weight):
                k = int((seconds + i * step) / window_s)
                windows[k] = windows.get(k, 0) + 1
        for (process, thread), windows in per.items():
            span = range(min(windows), max(windows) + 1)
            yield process, thread, [(round(k * window_s * 1e9), windows.get(k, 0)) for k in span]

    def event_tids(self) -> list[int]:
        """The thread id each events' track is shown with (Wasm's one thread: 1)."""
        return [tid or 1 for tid in self.event_threads]

    def names(self) -> list[str]:
        """Each site's name on the timeline, by site id: a function for slices, else the
        kind and where (``line f:12``, ``block f app.c:7``, ``block f+0x3a``)."""
        names = [""] * (max((s[0] for s in self.sites), default=-1) + 1)
        for sid, kind, _unit, func, line, offset, source, _size in self.sites:
            if kind in ("func", "return"):
                names[sid] = func or "?"
            elif source is not None:  # Wasm with DWARF
                names[sid] = f"{kind} {func} {os.path.basename(source)}:{line}"
            elif line is not None:
                names[sid] = f"{kind} {func}:{line}"
            else:
                names[sid] = f"{kind} {func}+{offset or 0:#x}"
        return names

    def paired(self) -> Iterator[tuple[Any, Any, Any, Any]]:
        """The events a batch at a time, as numpy (seq, site id, type: 1 begins a slice, 2
        ends one, 3 an instant, as Perfetto numbers them; track: the index of its thread in
        ``event_threads``). Calls pair per thread: a return with no call open on its thread
        (its call began before the events did) is left out, so every end has its beginning;
        ``open`` is then the calls still open at the end per track (a run killed, or
        trapped), and ``last`` the last seq."""
        import numpy as np

        n = max((s[0] for s in self.sites), default=-1) + 1
        kinds = np.full(n, 3, np.uint8)
        group = np.ones(n, np.int64)  # events an entry records (Wasm: one per argument)
        for sid, kind, *_, size in self.sites:
            kinds[sid] = 1 if kind == "func" else 2 if kind == "return" else 3
            if kind == "func" and size:
                group[sid] = size
        grouped = bool((group > 1).any())
        steps = np.where(kinds == 1, 1, np.where(kinds == 2, -1, 0)).astype(np.int64)
        tids = np.asarray(self.event_threads, np.int64)
        carry = (-1, 0)  # (site, events of its entry so far) across batches
        for batch in self.events:
            seq = batch.column(0).to_numpy(zero_copy_only=False).astype(np.uint64, copy=False)
            site = batch.column(1).to_numpy(zero_copy_only=False)
            if not len(seq):
                continue
            if grouped:  # Wasm: one thread
                seq, site, carry = _entries(seq, site, group, carry)
                track = np.zeros(len(seq), np.int64)
            else:
                thread = batch.column(2).to_numpy(zero_copy_only=False).astype(np.int64)
                track = np.searchsorted(tids, thread)
            types, step = kinds[site], steps[site]
            keep = np.ones(len(seq), bool)
            for t in np.unique(track).tolist() if len(tids) > 1 else [0]:
                mine = np.flatnonzero(track == t) if len(tids) > 1 else slice(None)
                dropped, self.open[t] = _balance(step[mine], self.open.get(t, 0))
                if dropped is not None:
                    keep[mine] = dropped
            if not keep.all():
                seq, site, types, track = seq[keep], site[keep], types[keep], track[keep]
            self.last = int(seq[-1]) if len(seq) else self.last
            yield seq, site, types, track


def _balance(step: Any, depth: int) -> tuple[Any, int]:
    """One thread's calls (+1) and returns (-1) after ``depth`` open: (None: all kept, or
    which to keep: not a return with no call open; the depth after)."""
    import numpy as np

    running = np.cumsum(step)
    running += depth
    if running.min() >= 0:
        return None, int(running[-1])
    keep = np.ones(len(step), bool)  # rare: ends outnumber beginnings somewhere
    for i, s in enumerate(step.tolist()):
        if s < 0 and depth == 0:
            keep[i] = False
        else:
            depth += s
    return keep, depth


@dataclass
class TraceEvents:
    """Events in execution order (all, or the first of ``total``)."""

    events: list[Event]
    total: int
    brief: bool = False  # a summary: only the number
    elsewhere: int = 0  # Wasm with DWARF: events outside the user's source files, left out
