"""Collapsed stacks, as py-spy's ``raw`` format writes them: one stack a line, frames
``func (file:line)`` root first, ``;``-separated, a space and the number of samples. What
flamegraph.pl, inferno and speedscope read."""

from __future__ import annotations

from functools import singledispatch

from probe.analyses.hotpaths import HotPaths


@singledispatch
def render(result: object) -> str:
    raise NotImplementedError(type(result).__name__)


@render.register
def _(result: HotPaths) -> str:
    lines = [
        ";".join(result.label(f) for f in frames) + f" {weight}"
        for frames, weight in result.top_stacks(len(result.stacks))
        if frames
    ]
    return "\n".join(lines) + ("\n" if lines else "")
