"""What both ways of recording Python share: ``probe run`` compiling the program itself
(``_Run``, in __init__.py) and code that is loaded already (``Attached``, attach.py).

Both measure the files in scope, give out site ids, read the files' static facts once, run a
Tracer for what line probes in the bytecode can't do, and at the end write the same tables.
"""

from __future__ import annotations

from types import CodeType

from probe.engines import Outcome, Recorder
from probe.probes import ProbeSet, Scope

from .scope import Wanted
from .source import SourceInfo
from .tables import SiteIds, analyze_file, source_infos, write_tables
from .tracer import Tracer, func_name

TYPE_CHECKING = False  # typing's, without importing typing on a run's path (architecture)
if TYPE_CHECKING:
    from typing import Any

    from .states import StateRecorder


class Measured:
    def __init__(
        self, probes: ProbeSet, scope: Scope, recorder: Recorder, **tracer_options: object
    ) -> None:
        """``tracer_options``: see Tracer."""
        self.scope = scope
        self.recorder = recorder
        self.branch = probes.kind_for("branch") is not None
        self.wanted = Wanted(scope)
        self.ids = SiteIds()
        self._infos: dict[str, SourceInfo | None] = {}
        self.tracer = Tracer(
            probes, self.wanted, self.info_for, self.ids, recorder, **tracer_options
        )
        self.states: StateRecorder | None = None
        if probes.kind_for("state") is not None:
            from .states import StateRecorder  # not at import: few runs record states

            gated = tracer_options.get("gated") and tracer_options.get("context")
            self.states = StateRecorder(
                self.state_site,
                recorder.append,
                max_steps=probes.limit_for("state"),
                gate=tracer_options["context"] if gated else None,  # type: ignore[arg-type]
            )

    def forked(self, recorder: Recorder) -> None:
        """In a forked child: record what the child runs to ``recorder``, its part of the run
        (what ran before the fork is the parent's)."""
        self.recorder = recorder
        self.ids.forked()
        self.tracer.forked(recorder)

    def state_site(self, code: CodeType) -> int | None:
        """The func site of code whose states are recorded (None: not in scope)."""
        if not self.wanted(code.co_filename):
            return None
        unit = self.tracer.real(code.co_filename)
        return self.ids.get("func", unit, func_name(code), code.co_firstlineno)

    def info_for(self, path: str) -> SourceInfo | None:
        """Static facts about the file at real path ``path``, computed once."""
        if path not in self._infos:
            self._infos[path] = self.analyze(path)
        return self._infos[path]

    def analyze(self, path: str) -> SourceInfo | None:
        return analyze_file(path, self.scope)

    def write(
        self,
        outcome: Outcome,
        hits: dict[str, dict[int, int]],
        counts: dict[int, int],
        *,
        lines: bool,
        witnessed: bool = True,
        per_context: dict[tuple[str | None, int], int] | None = None,
    ) -> None:
        """Write the tables and close the run: ``hits``, line counts per file (``lines``:
        line probes were placed, so every file in scope is reported, run or not);
        ``counts``, counts of sites beyond the tracer's own (branch arcs); see write_tables."""
        if self.states is not None:
            self.states.stop()
            if self.states.capped:
                cap = f"step cap of {self.states.max_steps:,} reached: states recorded until then"
                message = f"{outcome.message}; {cap}" if outcome.message else cap
                outcome = Outcome(outcome.status, outcome.exit_code, message)
        self._tables(self.recorder, hits, counts, lines, witnessed, per_context)
        self.recorder.close(outcome)

    def snapshot(
        self, hits: dict[str, dict[int, int]], counts: dict[int, int] | None = None, *, lines: bool
    ) -> None:
        """The tables as they stand, to the run's snapshot (kept if the run is killed);
        ``counts``: see write."""
        kept = _Kept()
        self._tables(kept, hits, counts or {}, lines, True, None)
        self.recorder.snapshot(kept.tables)

    def _tables(
        self,
        recorder: Any,
        hits: dict[str, dict[int, int]],
        counts: dict[int, int],
        lines: bool,
        witnessed: bool,
        per_context: dict[tuple[str | None, int], int] | None,
    ) -> None:
        tracer = self.tracer
        infos = source_infos(hits, self.scope, self.wanted, self.info_for) if lines else {}
        counted = {**tracer.entry_counts, **tracer.call_counts, **tracer.return_counts, **counts}
        write_tables(
            recorder,
            infos,
            hits,
            self.branch,
            self.ids,
            counted,
            witnessed=witnessed,
            per_context=per_context,
        )


class _Kept:
    """A recorder that keeps what it is given: a snapshot's tables."""

    def __init__(self) -> None:
        self.tables: dict[str, dict[str, Any]] = {}

    def write(self, table: str, columns: dict[str, Any]) -> None:
        self.tables[table] = columns
