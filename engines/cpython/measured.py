"""What both ways of recording Python share: ``probe run`` compiling the program itself
(``_Run``, in __init__.py) and code that is loaded already (``Attached``, attach.py).

Both measure the files in scope, give out site ids, read the files' static facts once, run a
Tracer for what line probes in the bytecode can't do, and at the end write the same tables.
"""

from __future__ import annotations

from probe.engines import Outcome, Recorder
from probe.probes import ProbeSet, Scope

from .scope import Wanted
from .source import SourceInfo
from .tables import SiteIds, analyze_file, source_infos, write_tables
from .tracer import Tracer


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

    def info_for(self, path: str) -> SourceInfo | None:
        """Static facts about the file at real path ``path``, computed once."""
        if path not in self._infos:
            self._infos[path] = self.analyze(path)
        return self._infos[path]

    def analyze(self, path: str) -> SourceInfo | None:
        return analyze_file(path)

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
        tracer = self.tracer
        infos = source_infos(hits, self.scope, self.wanted, self.info_for) if lines else {}
        counted = {**tracer.entry_counts, **tracer.call_counts, **tracer.return_counts, **counts}
        write_tables(
            self.recorder,
            infos,
            hits,
            self.branch,
            self.ids,
            counted,
            witnessed=witnessed,
            per_context=per_context,
        )
        self.recorder.close(outcome)
