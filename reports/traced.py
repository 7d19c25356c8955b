"""TRACED's text (Ding et al., ICSE 2024, ARiSE-Lab/TRACED_ICSE_24): the source, each
non-blank line with its whitespace collapsed and ``# L{n}`` appended, then the trace: ``L{n}``
for each line run, followed by the variables that line made new or modified
(``new var: name = value``, ``modified var: name = value``). A list, dict or set is printed
whole the first time (cut at 250 characters, ``<N truncated>`` saying how many were cut),
and afterwards by the elements that changed (``modified var: a[1] = 1``). No loop
compression. The two parts are separated by a blank line.

``labels(result)``: TRACED's pre-training labels, per variable occurrence in the trace (the
variable's type: basic_type, array, pointer; the value's type: int, float, double, char,
bool, void; the value quantized to one of 17 labels), per source line (executed or not) and
per branch line (the arms taken: true, false, both, not reached). A corpus build stores them
as columns.
"""

from __future__ import annotations

import ast
import json
import math
from functools import singledispatch
from typing import Any

from probe.analyses.states import StateTrace, Step, Value, source_lines

_WHOLE_CHARS = 250
_CONTAINERS = ("list", "dict", "set", "tuple", "bytearray", "deque")

QUANTIZED = (
    "UNKNOWN",
    "KNOWN",
    "NULL",
    "NOT_NULL",
    "ALPHA",
    "NOT_ALPHA",
    "ZERO",
    "POSITIVE-VS",
    "POSITIVE-REG",
    "POSITIVE-VL",
    "NEGATIVE-VS",
    "NEGATIVE-REG",
    "NEGATIVE-VL",
    "NAN",
    "TRUE",
    "FALSE",
    "NOT_REACHED",
)


@singledispatch
def render(result: object) -> str:
    raise NotImplementedError(type(result).__name__)


@render.register
def _(result: StateTrace) -> str:
    if not result.steps:
        return ""
    source = []
    for n, line in enumerate(source_lines(result.steps[0].unit), 1):
        if line.strip():
            source.append(" ".join(line.split()) + f" # L{n}")
    return "\n".join(source) + "\n\n" + " ".join(_trace(result.steps))


def _trace(steps: list[Step]) -> list[str]:
    out = []
    printed: set[tuple[int, str]] = set()  # (call, name) of containers printed whole
    for step in steps:
        if step.event != "line":
            continue
        out.append(f"L{step.line}")
        for v in step.values:
            if v.name is None or v.change not in ("new", "modified"):
                continue
            key = (step.call, v.name)
            if v.change == "modified" and key in printed and v.delta:
                elements = json.loads(v.delta)
                if all(e["op"] in ("set", "append") and "key" in e for e in elements):
                    out.extend(
                        f"modified var: {v.name}[{e['key']!r}] = {e['value']}" for e in elements
                    )
                    continue
            if v.type in _CONTAINERS:
                printed.add(key)
            out.append(f"{v.change} var: {v.name} = {whole(v)}")
    return out


def whole(v: Value) -> str:
    text = v.repr or ""
    if v.size is None and v.cut:  # too big to render whole: how much was cut is unknown
        return text[:_WHOLE_CHARS] + "<more truncated>"
    size = max(v.size or 0, len(text))
    if size > _WHOLE_CHARS:
        return text[:_WHOLE_CHARS] + f"<{size - _WHOLE_CHARS} truncated>"
    return text


# -- labels -----------------------------------------------------------------------------------


def labels(result: StateTrace) -> dict[str, Any]:
    """TRACED's labels of a run: ``values`` (per variable occurrence in the trace: line,
    name, var_type, value_type, quantized), ``coverage`` (per non-blank source line: 1 if
    it ran), ``branches`` (per branch line: true, false, both or not_reached)."""
    values = []
    for step in result.steps:
        if step.event != "line":
            continue
        for v in step.values:
            if v.name is not None and v.change in ("new", "modified"):
                var, kind = types_of(v)
                values.append(
                    {
                        "line": step.line,
                        "name": v.name,
                        "var_type": var,
                        "value_type": kind,
                        "quantized": quantize(v),
                    }
                )
    unit = result.steps[0].unit if result.steps else ""
    lines = source_lines(unit)
    # A function's def line ran when it was called (TRACED: the signature line of C).
    ran = {s.line for s in result.steps if s.event in ("line", "call") and s.unit == unit}
    coverage = {n: int(n in ran) for n, text in enumerate(lines, 1) if text.strip()}
    return {"values": values, "coverage": coverage, "branches": _branches(result, lines)}


def types_of(v: Value) -> tuple[str, str]:
    kind = v.type or ""
    if kind in _CONTAINERS or kind == "str" and (v.length or 0) != 1:
        element = _element_type(v)
        return "array", element
    if kind in ("int", "float", "bool", "NoneType", "str"):
        return "basic_type", {"NoneType": "void", "str": "char"}.get(kind, kind)
    return "pointer", "void"


def _element_type(v: Value) -> str:
    if v.type == "str":
        return "char"
    try:
        items = json.loads(v.json) if v.json else None
    except ValueError:
        items = None
    if isinstance(items, dict):
        items = list(items.values())
    if isinstance(items, list) and items:
        first = items[0]
        for py, name in ((bool, "bool"), (int, "int"), (float, "float"), (str, "char")):
            if isinstance(first, py):
                return name
    return "void"


def quantize(v: Value) -> str:
    """One of TRACED's 17 labels for a value."""
    kind, text = v.type, v.repr or ""
    if kind == "NoneType":
        return "NULL"
    if kind == "bool":
        return "TRUE" if text == "True" else "FALSE"
    if kind == "int":
        try:
            n = int(text)
        except ValueError:
            return "UNKNOWN"
        if n == 0:
            return "ZERO"
        sign = "POSITIVE" if n > 0 else "NEGATIVE"
        return f"{sign}-{'REG' if abs(n) < 10_000 else 'VL'}"
    if kind == "float":
        try:
            x = float(text)
        except ValueError:
            return "UNKNOWN"
        if math.isnan(x):
            return "NAN"
        if x == 0:
            return "ZERO"
        sign = "POSITIVE" if x > 0 else "NEGATIVE"
        size = abs(x)
        return f"{sign}-{'VS' if size <= 1 else 'REG' if size < 1e4 else 'VL'}"
    if kind == "str" and (v.length or 0) == 1:
        return "ALPHA" if (v.str or text.strip("'\""))[:1].isalpha() else "NOT_ALPHA"
    if kind in _CONTAINERS or kind == "str":
        return "NULL" if v.length == 0 else "NOT_NULL"
    return "NOT_NULL" if kind else "UNKNOWN"


def _branches(result: StateTrace, lines: list[str]) -> dict[int, str]:
    """Per if/while line: which arms the run took."""
    try:
        tree = ast.parse("\n".join(lines))
    except SyntaxError:
        return {}
    arms: dict[int, tuple[int, int]] = {}  # test line -> (first body line, last body line)
    for node in ast.walk(tree):
        if isinstance(node, ast.If | ast.While):
            arms[node.lineno] = (node.body[0].lineno, node.body[-1].end_lineno or 0)
    taken: dict[int, set[str]] = {n: set() for n in arms}
    last: dict[int, int] = {}  # call -> the line it ran last
    for step in result.steps:
        if step.event != "line":
            continue
        before = last.get(step.call)
        last[step.call] = step.line
        if before in arms:
            low, high = arms[before]
            taken[before].add("true" if low <= step.line <= high else "false")
    names = {frozenset(): "not_reached", frozenset({"true"}): "true"}
    names |= {frozenset({"false"}): "false", frozenset({"true", "false"}): "both"}
    return {n: names[frozenset(t)] for n, t in sorted(taken.items())}
