"""CodeExecutor's text (Liu et al., microsoft/CodeBERT CodeExecutor): the source lines
prefixed ``<0>``, ``<1>``, ... and the trace: ``<line> <k> <state> name : value <dictsep>
name : value </state>`` for each line run (``k`` the line's index; the state every variable
of the frame after it), and ``<output> text`` for what the program printed (once, at the end:
probe keeps the call's output whole, not per line). Tokens are separated by spaces; strings
inside containers are unquoted (``s : [ x , y , z ]``). The trace is cut at 763 tokens (the
source at 255), the lengths its model was trained with.
"""

from __future__ import annotations

import json
from functools import singledispatch

from probe.analyses.states import StateTrace, Value, source_lines, walk

SOURCE_TOKENS = 255
TRACE_TOKENS = 763


@singledispatch
def render(result: object) -> str:
    raise NotImplementedError(type(result).__name__)


@render.register
def _(result: StateTrace) -> str:
    if not result.steps:
        return ""
    lines = source_lines(result.steps[0].unit)
    source = " ".join(f"<{k}> {' '.join(text.split())}" for k, text in enumerate(lines))
    tokens: list[str] = []
    calls: dict[int, list] = {}
    for step in result.steps:
        calls.setdefault(step.call, []).append(step)
    after: dict[int, dict[str, Value]] = {}
    for steps in calls.values():
        for step, _, state in walk(steps):
            after[step.step] = state
    for step in result.steps:
        if step.event != "line":
            continue
        state = after.get(step.step, {})
        pairs = " <dictsep> ".join(
            f"{name} : {_tokens(v)}" for name, v in state.items() if not name.startswith("_")
        )
        tokens += ["<line>", f"<{step.line - 1}>", "<state>", *pairs.split(), "</state>"]
    if result.output:
        tokens += ["<output>", *result.output.split()]
    return _cut(source, SOURCE_TOKENS) + "\n" + " ".join(tokens[:TRACE_TOKENS])


def _cut(text: str, most: int) -> str:
    return " ".join(text.split()[:most])


def _tokens(v: Value) -> str:
    if v.json is not None:
        try:
            return _spaced(json.loads(v.json), top=True)
        except ValueError:
            pass
    return v.text


def _spaced(value: object, top: bool = False) -> str:
    if isinstance(value, list):
        return "[ " + " , ".join(_spaced(x) for x in value) + " ]" if value else "[ ]"
    if isinstance(value, dict):
        items = " , ".join(f"{k} : {_spaced(x)}" for k, x in value.items())
        return "{ " + items + " }" if value else "{ }"
    if isinstance(value, bool):
        return str(value)
    if value is None:
        return "None"
    return str(value)
