"""JSON lines: one object per event (trace) or step (states), in execution order."""

from __future__ import annotations

import json
from functools import singledispatch

from probe.analyses.states import StateTrace, Step
from probe.analyses.trace import TraceEvents

from .jsonreport import records


@singledispatch
def render(result: object) -> str:
    raise NotImplementedError(type(result).__name__)


@render.register
def _(result: TraceEvents) -> str:
    return "\n".join(json.dumps(r) for r in records(result))


@render.register
def _(result: StateTrace) -> str:
    """A line per step: everything recorded, values with their type, repr, size, JSON and
    element deltas."""
    return "\n".join(json.dumps(step_record(s), ensure_ascii=False) for s in result.steps)


def step_record(step: Step) -> dict:
    return {
        "step": step.step,
        "call": step.call,
        "depth": step.depth,
        "event": step.event,
        "file": step.unit,
        "func": step.func,
        "line": step.line,
        "values": [
            {k: v for k, v in vars(value).items() if v is not None} for value in step.values
        ],
    }
