"""Chrome's trace-event JSON (chrome://tracing, ui.perfetto.dev, speedscope open it): a run's
calls as B/E events on one thread, its other events as instants, streamed a batch at a time.
``ts`` is in microseconds: an event's ``seq`` (probe records order, not time)."""

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
    for seq, site, types in result.paired():
        rows = []
        for ts, sid, t in zip(seq.tolist(), site.tolist(), types.tolist(), strict=True):
            if t == 2:
                rows.append(f',\n{{"ph": "E", "ts": {ts}, "pid": 1, "tid": 1}}')
            else:
                scope = ', "s": "t"' if t == 3 else ""
                rows.append(
                    f',\n{{"name": {names[sid]}, "ph": "{_PHASE[t]}", "ts": {ts}, "pid": 1, '
                    f'"tid": 1{scope}}}'
                )
        yield "".join(rows).encode()
    end = f',\n{{"ph": "E", "ts": {result.last + 1}, "pid": 1, "tid": 1}}'
    yield (end * result.open + "\n]}\n").encode()
