"""Instruction counts as an efficiency metric, measured the way EvalPerf and COFFE do.

``probe.measure(fn, inputs)`` calls ``fn`` on each input: first ``warmup`` times
unmeasured (imports, caches, specialisation settle), then ``repeat`` times,
each call a counter region (perf_event_open, user space, this thread). Every
sample goes into the ``counters`` table with its function, input and
repetition, and the spread is reported beside the median, so a difference
between two implementations can be told from noise. Where instructions
are unsupported (virtual machines) the software events stand in, said once.
"""

from __future__ import annotations

import statistics
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from probe.errors import UsageError

_INPUT_CHARS = 200


@dataclass
class Measurement:
    """One event's samples for one (function, input)."""

    function: str
    input: str
    event: str
    unit: str
    status: str  # 'ok', or 'unsupported' (no samples)
    samples: list[float]

    @property
    def median(self) -> float | None:
        return statistics.median(self.samples) if self.samples else None

    @property
    def spread(self) -> float | None:
        """(max - min) / median: 0.01 means the samples lie within 1% of each other."""
        m = self.median
        return (max(self.samples) - min(self.samples)) / m if self.samples and m else None

    @property
    def stdev(self) -> float | None:
        return statistics.stdev(self.samples) if len(self.samples) > 1 else None

    def __str__(self) -> str:
        if self.median is None:
            return f"{self.function}({self.input}) {self.event}: {self.status}"
        spread = f"{self.spread:.1%}" if self.spread is not None else "n/a"
        return (
            f"{self.function}({self.input}) {self.event}: median {self.median:,.0f} {self.unit}"
            f" (min {min(self.samples):,.0f}, max {max(self.samples):,.0f},"
            f" spread {spread}, n={len(self.samples)})"
        ).replace("  ", " ")


def measure(
    fn: Callable[..., Any],
    inputs: Iterable[Any],
    *,
    repeat: int = 5,
    warmup: int = 1,
    counters: Sequence[str] = ("instructions",),
    name: str | None = None,
    db: str | None = None,
) -> list[Measurement]:
    """Measure ``fn`` on each input (a tuple: positional arguments; a dict: keywords;
    anything else: the one argument); store every sample; return the measurements.

    The samples go into the recording session's run if one records, else into a run of
    their own in ``db`` (default: $PROBE_DB or .probe/probe.duckdb).
    """
    from probe.engines.perf import open_region
    from probe.engines.perf.region import check_events

    if repeat < 1 or warmup < 0:
        raise UsageError("measure: repeat must be at least 1 and warmup at least 0")
    check_events(list(counters))
    label = name or f"{fn.__module__}.{getattr(fn, '__qualname__', repr(fn))}"
    group = open_region(list(counters))
    rows: list[tuple[str, Any, dict[str, Any]]] = []
    found: dict[tuple[str, str], Measurement] = {}
    try:
        for item in inputs:
            args, kwargs = _arguments(item)
            text = repr(item)[:_INPUT_CHARS]
            for _ in range(warmup):
                fn(*args, **kwargs)
            for i in range(repeat):
                group.start()
                try:
                    fn(*args, **kwargs)
                finally:
                    readings = group.stop()
                for r in readings:
                    rows.append((label, r, {"input": text, "sample": i}))
                    m = found.setdefault(
                        (text, r.event), Measurement(label, text, r.event, r.unit, r.status, [])
                    )
                    if r.value is not None:
                        m.samples.append(r.value)
    finally:
        group.close()
        _store(rows, label, db)  # what was measured is kept, even if fn raised
    return list(found.values())


def _arguments(item: Any) -> tuple[tuple, dict]:
    if isinstance(item, tuple):
        return item, {}
    if isinstance(item, dict):
        return (), item
    return (item,), {}


def _store(rows: list[tuple[str, Any, dict[str, Any]]], label: str, db: str | None) -> None:
    from probe.engines import Outcome
    from probe.recording import current, database, new_run
    from probe.storage import resolve_path

    if not rows:
        return
    recording = current()
    if recording is not None:
        recording.add_readings(rows)
        return
    path = resolve_path(db)
    recorder = new_run(path, label, "cpython", ["measure"], sys.argv, {})
    recorder.readings(rows)
    recorder.close(Outcome("ok", 0))
    database(path).ingest()
