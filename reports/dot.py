"""Graphviz dot: the call graph, edges labelled with their calls, indirect ones dashed."""

from __future__ import annotations

from functools import singledispatch

from probe.analyses.calls import CallGraph


@singledispatch
def render(result: object) -> str:
    raise NotImplementedError(type(result).__name__)


@render.register
def _(result: CallGraph) -> str:
    out = ["digraph calls {"]
    for a, b, c, i in result.edges:
        style = ", style=dashed" if i else ""
        out.append(f'  "{_esc(a)}" -> "{_esc(b)}" [label="{c}"{style}];')
    return "\n".join([*out, "}"])


def _esc(name: str) -> str:
    return name.replace("\\", "\\\\").replace('"', '\\"')
