"""SemCoder's text (Ding et al., ARiSE-Lab/SemCoder): the traced function's source with its
run written beside the lines, as comments.

* ``# [INPUT] {arguments as JSON} [/INPUT]`` on the ``def`` line;
  ``[STATE-k] {variables changed, as JSON} [/STATE-k]`` on the line that changed them, once
  per execution of that line, ``k`` counting groups of changes over the whole run from 0;
  ``[OUTPUT] value [/OUTPUT]`` on the line that returned; ``[EXCEPTION] Type: message
  [/EXCEPTION]`` on the line that raised.
* Values are what SemCoder reads back from pysnooper's reprs: a repr cut to 100 characters
  (48, ``...``, 49) and then parsed as JSON, lists with their quotes swapped, strings
  unquoted, anything else kept as the repr's text.
* Concise: a line with more than 3 states keeps the first two, `` ... ``, and the last.
"""

from __future__ import annotations

import json
from functools import singledispatch

from probe.analyses.states import StateTrace, Value, source_lines

_REPR_CHARS = 100  # pysnooper's max_variable_length


@singledispatch
def render(result: object) -> str:
    raise NotImplementedError(type(result).__name__)


@render.register
def _(result: StateTrace) -> str:
    root = result.root()
    if not root:
        return ""
    times: dict[int, int] = {}  # executions of each line so far, from 0
    states: dict[int, list[tuple[int, int, str, object]]] = {}  # line -> (time, order, name, v)
    inputs: dict[str, object] = {}
    output: list[object] = []
    raised: tuple[int, str] | None = None
    first, current, order, changed = root[0].line, root[0].line, 0, False
    for step in root:
        # pysnooper prints a line for each event (call, line, return, exception) and
        # SemCoder counts each as an execution of its line.
        if changed:
            order += 1
            changed = False
        current = step.line
        times[current] = times.get(current, -1) + 1
        if step.event == "call":
            inputs.update((v.name, value_of(v)) for v in step.values if v.name)
            continue
        if step.event == "return":
            value = step.value()
            if value is not None:
                output.append(value_of(value))
            continue
        if step.event == "exception":
            value = step.value()
            if value is not None and raised is None:
                raised = (step.line, value.repr or "")
            continue
        for v in step.values:
            if v.name is not None and v.change in ("new", "modified") and v.scope == "local":
                states.setdefault(current, []).append((times[current], order, v.name, value_of(v)))
                changed = True
    if output:
        states.setdefault(current, []).append((0, order, "[OUTPUT]", output[-1]))
    out = []
    for n, text in enumerate(source_lines(root[0].unit), 1):
        if n == first:
            text += " # [INPUT] " + _text(inputs) + " [/INPUT]"
        groups: list[tuple[int, dict[str, object]]] = []
        for time, k, name, value in states.get(n, []):
            if len(groups) > time:
                groups[time][1][name] = value
            else:
                groups.append((k, {name: value}))
        if groups:
            text += " # "
            for k, group in groups:
                shown = ""
                if "[OUTPUT]" in group:
                    value = group.pop("[OUTPUT]")
                    shown = "[OUTPUT] " + _text(value, output=True) + " [/OUTPUT]"
                if group:
                    shown = f"[STATE-{k}] " + json.dumps(group) + f" [/STATE-{k}]" + shown
                text += shown
        if raised is not None and raised[0] == n:
            text += (" " if groups else " # ") + f"[EXCEPTION] {raised[1]} [/EXCEPTION]"
        out.append(_concise(text))
    while out and not out[-1].strip():
        out.pop()
    return "\n".join(out)


def value_of(v: Value) -> object:
    """A value as SemCoder reads it back from pysnooper's repr."""
    text = (v.repr or "").replace("\r", "").replace("\n", "")
    size = max(v.size or 0, len(text))
    if size > _REPR_CHARS:
        left = (_REPR_CHARS - 3) // 2
        text = text[:left] + "..." + text[-(_REPR_CHARS - 3 - left) :]
    if text.startswith("[") and text.endswith("]"):
        text = text.replace("'", '"')
    try:
        return json.loads(text)
    except ValueError:
        pass
    known = {"None": None, "''": "", "[]": [], "{}": {}, "True": True, "False": False}
    if text in known:
        return known[text]
    if text.startswith("'"):
        return text[1:-1]
    return text


def _text(value: object, output: bool = False) -> str:
    if isinstance(value, bool) or value is None:
        return str(value)
    if isinstance(value, str):
        if not output:
            return value
        quoted = any(value.startswith(a) and value.endswith(b) for a, b in ('""', "''", "()", "{}"))
        return value if quoted else f'"{value}"'
    return json.dumps(value)


def _concise(line: str) -> str:
    if line.count("[STATE") <= 3:
        return line
    third = line.find("[STATE", line.find("[STATE", line.find("[STATE") + 1) + 1)
    last = line.rfind("[STATE")
    return line[:third] + " ... " + line[last:]
