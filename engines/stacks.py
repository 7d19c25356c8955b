"""Sampled call stacks, as both engines' samplers hand them over: the ``samples`` and
``stacks`` tables of the SQL contract.

A stack is a tuple of frames, root first, each (func, unit, line). Each distinct stack is
stored once; consecutive samples of one thread with the same stack (and flags) are one row
of ``samples`` with their number as its weight, so a thread that spends a second in one place
at 1000 Hz costs one row, not a thousand.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from probe.engines import Recorder

Frame = tuple[str, str, int | None]  # (func, unit, line)


class StackLog:
    """Samples of call stacks, in the order a sampler took them."""

    def __init__(self) -> None:
        self._ids: dict[tuple[Frame, ...], int] = {}
        self._stacks: list[tuple[Frame, ...]] = []
        self._rows: list[list[Any]] = []  # [time, process, thread, stack_id, weight, idle, gil]
        self._last: dict[tuple[int, str], int] = {}  # (process, thread) -> its latest row

    def add(
        self,
        time: float,
        process: int,
        thread: str,
        frames: Sequence[Frame],
        weight: int = 1,
        idle: bool | None = None,
        gil: bool | None = None,
    ) -> None:
        stack = tuple(frames)
        sid = self._ids.get(stack)
        if sid is None:
            sid = self._ids[stack] = len(self._stacks)
            self._stacks.append(stack)
        key = (process, thread)
        last = self._last.get(key)
        if last is not None:
            row = self._rows[last]
            if row[3] == sid and row[5] == idle and row[6] == gil:
                row[4] += weight
                return
        self._last[key] = len(self._rows)
        self._rows.append([time, process, thread, sid, weight, idle, gil])

    def __len__(self) -> int:
        return sum(row[4] for row in self._rows)

    def write(self, recorder: Recorder) -> None:
        """The samples and stacks tables to a run (nothing when nothing was sampled)."""
        for table, columns in self.tables().items():
            recorder.write(table, columns)

    def tables(self) -> dict[str, dict[str, list]]:
        """The samples and stacks tables, as columns (empty when nothing was sampled)."""
        if not self._rows:
            return {}
        names = ("time", "process", "thread", "stack_id", "weight", "idle", "gil")
        samples = {name: [row[i] for row in self._rows] for i, name in enumerate(names)}
        stacks = {
            "stack_id": list(range(len(self._stacks))),
            "depth": [len(s) for s in self._stacks],
            "frames": [
                [{"func": f, "unit": u, "line": line} for f, u, line in s] for s in self._stacks
            ],
        }
        return {"samples": samples, "stacks": stacks}
