"""speedscope's JSON file format (https://www.speedscope.app/file-format-schema.json): one
``sampled`` profile per thread, its samples in order, weighted in seconds."""

from __future__ import annotations

import json
from functools import singledispatch

from probe.analyses.hotpaths import HotPaths

SCHEMA = "https://www.speedscope.app/file-format-schema.json"


@singledispatch
def render(result: object) -> str:
    raise NotImplementedError(type(result).__name__)


@render.register
def _(result: HotPaths) -> str:
    frames: dict[tuple, int] = {}
    shared = []

    def index(frame: tuple) -> int:
        if frame not in frames:
            frames[frame] = len(shared)
            func, unit, line = frame
            entry = {"name": func, "file": result.relative(unit)}
            if line is not None:
                entry["line"] = line
            shared.append(entry)
        return frames[frame]

    stacks = [[index(f) for f in frames_] for frames_ in result.stacks]
    profiles = []
    for t in result.threads:
        samples = [stacks[sid] for sid, _ in t.samples]
        weights = [w / result.rate for _, w in t.samples]
        profiles.append(
            {
                "type": "sampled",
                "name": f"process {t.process} thread {t.thread}",
                "unit": "seconds",
                "startValue": 0,
                "endValue": sum(weights),
                "samples": samples,
                "weights": weights,
            }
        )
    doc = {
        "$schema": SCHEMA,
        "shared": {"frames": shared},
        "profiles": profiles,
        "name": "probe hotpaths",
        "activeProfileIndex": 0,
        "exporter": "probe",
    }
    return json.dumps(doc)
