"""Chrome's trace-event JSON (chrome://tracing, ui.perfetto.dev, speedscope open it): a run's
calls as B/E events on one thread, its other events as instants, streamed a batch at a time;
then its samples as each thread's stacks over time and its counters (C events). ``ts`` is in
microseconds: an event's ``seq`` (probe records order, not time), a sample's real time."""

from __future__ import annotations

import json
from collections.abc import Iterator
from functools import singledispatch
from typing import Any

from probe.analyses.trace import Timeline

_PHASE = {1: "B", 2: "E", 3: "i"}


@singledispatch
def render(result: object) -> Any:
    raise NotImplementedError(type(result).__name__)


@render.register
def _(result: Timeline) -> Iterator[bytes]:
    names = [json.dumps(n) for n in result.names()]
    head = {"name": "process_name", "ph": "M", "pid": 1, "args": {"name": result.target}}
    yield b'{"displayTimeUnit": "ns", "traceEvents": [\n' + json.dumps(head).encode()
    tids = result.event_tids()
    for seq, site, types, track in result.paired():
        rows = []
        for ts, sid, t, k in zip(
            seq.tolist(), site.tolist(), types.tolist(), track.tolist(), strict=True
        ):
            if t == 2:
                rows.append(f',\n{{"ph": "E", "ts": {ts}, "pid": 1, "tid": {tids[k]}}}')
            else:
                scope = ', "s": "t"' if t == 3 else ""
                rows.append(
                    f',\n{{"name": {names[sid]}, "ph": "{_PHASE[t]}", "ts": {ts}, "pid": 1, '
                    f'"tid": {tids[k]}{scope}}}'
                )
        yield "".join(rows).encode()
    for k, n in result.open.items():
        end = f',\n{{"ph": "E", "ts": {result.last + 1}, "pid": 1, "tid": {tids[k]}}}'
        yield (end * n).encode()
    yield "".join(f",\n{json.dumps(e)}" for e in _samples(result)).encode()
    yield b"\n]}\n"


def _samples(result: Timeline) -> Iterator[dict[str, Any]]:
    """The samples as each thread's stacks over time (B/E, in real time), its samples per
    100 ms and the run's perf counters (C)."""
    tids = {}
    for process, thread, tid, name in result.threads():
        tids[(process, thread)] = tid
        yield {"name": "thread_name", "ph": "M", "pid": process, "tid": tid,
               "args": {"name": name}}  # fmt: skip
    for process, thread, slices in result.flames():
        tid = tids[(process, thread)]
        for at, kind, name in slices:
            yield {"name": name, "ph": _PHASE[kind], "ts": at / 1000, "pid": process, "tid": tid}
    for process, thread, counts in result.activity():
        for at, n in counts:
            yield {"name": "samples per 100 ms", "ph": "C", "ts": at / 1000, "pid": process,
                   "args": {thread: n}}  # fmt: skip
    for event, value, unit in result.counters:
        for at, v in ((0.0, 0.0), (result.wall_s * 1e6, value)):
            yield {"name": event, "ph": "C", "ts": at, "pid": 1, "args": {unit or "value": v}}
