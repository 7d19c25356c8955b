"""JSON lines: one object per event, in execution order (trace)."""

from __future__ import annotations

import json
from functools import singledispatch

from probe.analyses.trace import TraceEvents

from .jsonreport import records


@singledispatch
def render(result: object) -> str:
    raise NotImplementedError(type(result).__name__)


@render.register
def _(result: TraceEvents) -> str:
    return "\n".join(json.dumps(r) for r in records(result))
