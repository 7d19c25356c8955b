"""Hot paths: where the time goes, by call stack, beside how often code ran.

Sampled stacks (a ``stack`` sample probe: py-spy for Python, the Wasm rewriter's shadow stack
read by a sampler thread) give time; exact counts in the same run give executions: function
entries, and lines (Python) or instructions (Wasm) run in each function. Wasm runs also count
Ball-Larus paths (``path`` probes): which acyclic path through a function ran how often.

The result model, ``HotPaths``, is built once from either source (the run's tables in memory,
or the database); report formats write it: text, collapsed stacks, speedscope, HTML.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from probe.probes import Kind, Probe, Sampling

from . import Analysis, Tables, rows
from .rows import Site

if TYPE_CHECKING:
    from probe.storage import Database

Frame = tuple[str, str, int | None]  # (func, unit, line)
_PY_KINDS = ("func", "line")
_WASM_KINDS = ("func", "block")
_PATHS = 10  # paths a text report lists


@dataclass
class FunctionHeat:
    """One function: samples where it was running (``self``) and on the stack (``total``),
    and its exact counts: entries, and lines or instructions run in it."""

    func: str
    unit: str
    self_samples: int = 0
    total_samples: int = 0
    calls: int | None = None
    executed: int | None = None


@dataclass
class PathCount:
    """A Ball-Larus path of a Wasm function: its number, count and blocks' offsets."""

    func: str
    path: int
    count: int
    blocks: list[int]


@dataclass
class Thread:
    """One thread's samples in order: (stack index into HotPaths.stacks, weight)."""

    process: int
    thread: str
    samples: list[tuple[int, int]] = field(default_factory=list)


@dataclass
class HotPaths:
    engine: str
    rate: int
    stacks: list[tuple[Frame, ...]]  # each distinct stack, root first
    weights: list[int]  # samples per stack
    functions: list[FunctionHeat]  # most self samples first, then most executed
    threads: list[Thread]
    paths: list[PathCount]
    cwd: str = ""
    brief: bool = False
    executed_unit: str = "lines"  # what FunctionHeat.executed counts

    @property
    def samples(self) -> int:
        return sum(self.weights)

    def relative(self, unit: str) -> str:
        """A file or module as reports show it: relative to the run's directory, if below."""
        top = self.cwd.rstrip("/") + "/"
        return unit[len(top) :] if self.cwd and unit.startswith(top) else unit

    def label(self, frame: Frame) -> str:
        """A frame as py-spy and flame graph tools write it: ``func (file:line)``."""
        func, unit, line = frame
        where = self.relative(unit)
        return f"{func} ({where}:{line})" if line is not None else f"{func} ({where})"

    def top_stacks(self, n: int) -> list[tuple[tuple[Frame, ...], int]]:
        ranked = sorted(zip(self.stacks, self.weights, strict=True), key=lambda s: -s[1])
        return ranked[:n]


class HotPathsAnalysis(Analysis):
    name = "hotpaths"
    description = "sampled call stacks (time) beside exact counts; Wasm: Ball-Larus paths"

    def probes(self, events: frozenset[str]) -> Iterable[Probe]:
        o = self.options
        sampling = Sampling(
            rate=int(o.get("rate") or 100),
            idle=bool(o.get("idle")),
            gil=bool(o.get("gil")),
            subprocesses=bool(o.get("subprocesses")),
            native=bool(o.get("native")),
        )
        yield Probe("stack", Kind.SAMPLE, sampling=sampling)
        if o.get("counts") is False:
            return  # samples alone (what the benchmark weighs apart)
        yield Probe("func", Kind.COUNT)
        if "block" in events:
            yield Probe("block", Kind.COUNT)
            if "path" in events and not o.get("no_paths"):
                yield Probe("path", Kind.COUNT)
        else:
            yield Probe("line", Kind.COUNT)

    def summary(self, run: dict[str, Any], tables: Tables) -> str | None:
        from probe.reports import render

        kinds = _WASM_KINDS if run.get("engine") == "wasm" else _PY_KINDS
        model = build(
            run,
            rows.from_tables(tables, kinds),
            _samples_from_tables(tables),
            _paths_from_tables(tables),
            self.rate(),
            brief=True,
        )
        return render(self, model, "text")

    def report(self, db: Database, run_id: str, fmt: str = "text") -> Any:
        from probe.reports import render

        from .trace import TIMELINES, Timeline

        if fmt in TIMELINES:  # the samples over time, per thread (a Timeline without events)
            return render(self, Timeline.read(db, run_id, events=False), fmt)
        run = db.run(run_id)
        kinds = _WASM_KINDS if run["engine"] == "wasm" else _PY_KINDS
        rate = int((run.get("options") or {}).get("rate") or 100)
        model = build(
            run,
            rows.from_db(db, run_id, kinds),
            samples_from_db(db, run_id),
            _paths_from_db(db, run_id),
            rate,
        )
        return render(self, model, fmt)

    def rate(self) -> int:
        return int(self.options.get("rate") or 100)


# Samples as rows of (process, thread, time, frames, weight), in time order per thread.
SampleRows = list[tuple[int, str, float, tuple[Frame, ...], int]]


def _samples_from_tables(tables: Tables) -> SampleRows:
    samples, stacks = tables.get("samples"), tables.get("stacks")
    if not samples or not stacks:
        return []
    by_id = {
        sid: tuple((f["func"], f["unit"], f["line"]) for f in frames)
        for sid, frames in zip(stacks["stack_id"], stacks["frames"], strict=True)
    }
    return [
        (p, t, time, by_id[sid], w)
        for p, t, time, sid, w in zip(
            samples["process"],
            samples["thread"],
            samples["time"],
            samples["stack_id"],
            samples["weight"],
            strict=True,
        )
    ]


def samples_from_db(db: Database, run_id: str) -> SampleRows:
    """The run's samples with their stacks, per process and thread in time order."""
    found = db.execute(
        "SELECT s.process, s.thread, s.time, k.frames, s.weight FROM samples s "
        "JOIN stacks k USING (run_id, stack_id) WHERE s.run_id = ? "
        "ORDER BY s.process, s.thread, s.time",
        [run_id],
    ).fetchall()
    return [
        (p, t, time, tuple((f["func"], f["unit"], f["line"]) for f in frames), w)
        for p, t, time, frames, w in found
    ]


PathRows = list[tuple[int, int, int, list[int]]]  # (func site id, path, count, blocks)


def _paths_from_tables(tables: Tables) -> PathRows:
    paths = tables.get("paths")
    if not paths:
        return []
    return list(zip(paths["site_id"], paths["path"], paths["count"], paths["blocks"], strict=True))


def _paths_from_db(db: Database, run_id: str) -> PathRows:
    return db.execute(
        "SELECT site_id, path, count, blocks FROM paths WHERE run_id = ? ORDER BY count DESC",
        [run_id],
    ).fetchall()


def build(
    run: dict[str, Any],
    sites: Sequence[Site],
    samples: SampleRows,
    paths: PathRows,
    rate: int,
    brief: bool = False,
) -> HotPaths:
    """The model from a run's sites with counts, its samples and its paths."""
    wasm = run.get("engine") == "wasm"
    stack_ids: dict[tuple[Frame, ...], int] = {}
    weights: list[int] = []
    threads: dict[tuple[int, str], Thread] = {}
    heat: dict[tuple[str, str], FunctionHeat] = {}

    def fn(func: str, unit: str) -> FunctionHeat:
        key = (func, unit)
        if key not in heat:
            heat[key] = FunctionHeat(func, unit)
        return heat[key]

    for process, thread, _, frames, weight in samples:
        sid = stack_ids.get(frames)
        if sid is None:
            sid = stack_ids[frames] = len(weights)
            weights.append(0)
        weights[sid] += weight
        t = threads.get((process, thread))
        if t is None:
            t = threads[(process, thread)] = Thread(process, thread)
        t.samples.append((sid, weight))
    for frames, sid in stack_ids.items():
        if not frames:
            continue
        fn(frames[-1][0], frames[-1][1]).self_samples += weights[sid]
        for key in {(f[0], f[1]) for f in frames}:
            fn(*key).total_samples += weights[sid]
    names: dict[int, str] = {}
    executed: Counter[tuple[str, str]] = Counter()
    for s in sites:
        if s.kind == "func":
            names[s.site_id] = s.func
            f = fn(s.func, s.unit)
            f.calls = (f.calls or 0) + (s.count or 0)
        elif s.kind == "line":
            executed[(s.func, s.unit)] += s.count or 0
        elif s.kind == "block":
            executed[(s.func, s.unit)] += (s.count or 0) * (s.size or 0)
    for key, n in executed.items():
        if n or key in heat:
            fn(*key).executed = n
    functions = sorted(
        (f for f in heat.values() if f.total_samples or f.calls or f.executed),
        key=lambda f: (-f.self_samples, -f.total_samples, -(f.executed or 0), f.func),
    )
    ranked = sorted(paths, key=lambda p: -p[2])
    return HotPaths(
        engine=run.get("engine") or "",
        rate=rate,
        stacks=list(stack_ids),
        weights=weights,
        functions=functions[:10] if brief else functions,
        threads=list(threads.values()),
        paths=[
            PathCount(names.get(site, f"site {site}"), path, count, list(blocks))
            for site, path, count, blocks in (ranked[:_PATHS] if brief else ranked)
        ],
        cwd=run.get("cwd") or "",
        brief=brief,
        executed_unit="instructions" if wasm else "lines",
    )
