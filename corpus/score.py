"""EvalPerf's differential performance score (Liu et al., 2024), from the efficiency labels of
corpus builds: each build one solution per task, the same inputs.

A solution's cost on a task is the sum of its efficiency values over the task's inputs
(every input must have one: it ran to its end untraced). The reference solutions of a task
are clustered by cost: sorted, a cluster runs on while each cost is within ``tolerance``
(10%) of the one before.
A candidate matches the fastest cluster whose slowest member it is no slower than (with the
same tolerance). With the clusters ordered from slowest to fastest, matching cluster ``i`` of
``k`` gives DPS = the percentage of reference solutions in clusters 1..i, and DPS_norm =
100 i / k; slower than every reference: 0.
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from probe.errors import UsageError


@dataclass
class Score:
    task_id: str
    cost: float | None
    dps: float | None
    dps_norm: float | None
    references: int
    clusters: int


def costs(build: str) -> tuple[dict[str, float | None], str | None]:
    """Per task of a build: its cost (None when an input did not run ok or has no label),
    and the efficiency label's kind."""
    parts = sorted(Path(build).glob("jsonl/part-*.jsonl"))
    if not parts:
        raise UsageError(f"{build} is not a corpus build (no jsonl/part-*.jsonl)")
    per_task: dict[str, dict[int, float | None]] = defaultdict(dict)
    kinds = set()
    for part in parts:
        with open(part, encoding="utf-8") as f:
            for line in f:
                row = json.loads(line)
                value = row.get("efficiency_value")
                per_task[row["task_id"]][row["input"]] = value
                if row.get("efficiency"):
                    kinds.add(row["efficiency"])
    if len(kinds) > 1:
        raise UsageError(f"{build} mixes efficiency labels: {', '.join(sorted(kinds))}")
    found = {
        task: (None if None in values.values() else float(sum(values.values())))
        for task, values in per_task.items()
    }
    return found, next(iter(kinds), None)


def clusters(values: list[float], tolerance: float) -> list[list[float]]:
    """Costs grouped, fastest first."""
    groups: list[list[float]] = []
    for v in sorted(values):
        if groups and v <= groups[-1][-1] * (1 + tolerance):
            groups[-1].append(v)
        else:
            groups.append([v])
    return groups


def score(candidate: str, references: list[str], tolerance: float = 0.10) -> list[Score]:
    if not references:
        raise UsageError("give reference builds: --reference DIR (repeat for several)")
    mine, kind = costs(candidate)
    theirs = []
    for ref in references:
        found, other = costs(ref)
        if kind and other and other != kind:
            raise UsageError(f"{ref} is labelled by {other}, {candidate} by {kind}")
        theirs.append(found)
    out = []
    for task in sorted(mine):
        refs = [c for r in theirs if (c := r.get(task)) is not None]
        cost = mine[task]
        if not refs or cost is None:
            out.append(Score(task, cost, None, None, len(refs), 0))
            continue
        groups = clusters(refs, tolerance)  # fastest first
        k = len(groups)
        dps = norm = 0.0
        for i, group in enumerate(groups):
            if cost <= group[-1] * (1 + tolerance):
                slower_or_same = sum(len(g) for g in groups[i:])
                dps = 100.0 * slower_or_same / len(refs)
                norm = 100.0 * (k - i) / k
                break
        out.append(Score(task, cost, dps, norm, len(refs), k))
    return out
