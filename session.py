"""One recorded run: choose the analyses, merge their probes, run the engine, keep the results.

Data flows one way: analyses say which probes they need; the engine places
them and runs the target; what the probes saw goes to the run's journal
(and stays in memory for the summary); the journal is ingested into DuckDB
by a detached process, or by whichever probe command opens the database
first.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Sequence
from typing import Any, TextIO

from probe import analyses as registry
from probe.analyses import Tables
from probe.engines import Outcome, Target, UsageError, engine_for
from probe.probes import ProbeSet, Scope
from probe.storage import Spool, ingest_in_background, resolve_path


class _Recorder:
    """Writes tables to the journal and keeps them for the end-of-run summary."""

    def __init__(
        self, spool: Spool, analyses: Sequence[registry.Analysis] = (), stat: Any = None
    ) -> None:
        self.spool = spool
        self.analyses = analyses
        self.stat = stat  # engines.perf.Stat counting the whole run, if asked for
        self.tables: Tables = {}
        self.streamed: dict[str, int] = {}  # rows of streamed tables (not kept)

    def write(self, table: str, columns: dict[str, list]) -> None:
        self.spool.write(table, columns)
        kept = self.tables.setdefault(table, {})
        for name, values in columns.items():
            if name not in kept:
                kept[name] = values  # as given: a Wasm run hands over numpy arrays of millions
            else:
                kept[name] = list(kept[name]) + list(values)

    def append(self, table: str, columns: dict[str, Any]) -> None:
        self.spool.append(table, columns)
        rows = len(next(iter(columns.values()), ()))
        self.streamed[table] = self.streamed.get(table, 0) + rows

    def close(self, outcome: Outcome) -> None:
        if self.stat is not None:
            readings = self.stat.stop()
            self.write(
                "counters",
                {
                    "region": ["run"] * len(readings),
                    "event": [r.event for r in readings],
                    "value": [r.value for r in readings],
                    "unit": [r.unit for r in readings],
                    "status": [r.status for r in readings],
                    "time_enabled": [r.time_enabled for r in readings],
                    "time_running": [r.time_running for r in readings],
                },
            )
        # The analyses' own tables go in before the run is closed, so ingest sees them all.
        for analysis in self.analyses:
            try:
                for table, columns in analysis.tables().items():
                    self.spool.write(table, columns)
            except Exception as e:  # noqa: BLE001 - a broken analysis must not lose the run
                print(f"probe: {analysis.name}: its tables were not saved: {e}", file=sys.stderr)
        self.spool.close(outcome.status, outcome.exit_code, outcome.message)


def run(
    target: Target,
    analyses: Sequence[str | registry.Analysis] = ("coverage",),
    *,
    db: str | None = None,
    scope: Scope | None = None,
    options: dict[str, Any] | None = None,
    summary: TextIO | None = sys.stderr,
    counters: Sequence[str] = (),
) -> tuple[str, Outcome]:
    """Run ``target`` with the probes ``analyses`` need; return the run id and how it ended.

    ``analyses`` are names (built in or installed) or Analysis objects of your own.
    ``counters``: perf events counted over the whole run (the ``counters`` table).

    Raises UsageError, StorageError or UnknownAnalysis before the target
    starts when the request can't be carried out.
    """
    options = dict(options or {})
    chosen = [
        a if isinstance(a, registry.Analysis) else registry.load(a)(**options)
        for a in (list(dict.fromkeys(analyses)) or ["coverage"])
    ]
    names = [a.name for a in chosen]
    engine = engine_for(target)
    probes = ProbeSet.of(p for a in chosen for p in a.probes(engine.events))
    if not len(probes):
        raise UsageError(
            f"the analyses {', '.join(names)} need no probes the {engine.name} engine has"
        )
    db_path = resolve_path(db)
    header = {
        "target": os.path.abspath(target.path) if target.path else target.module,
        "engine": engine.name,
        "analyses": names,
        "argv": target.argv,
        "started_at": time.time(),
        "cwd": os.getcwd(),
        "options": options,
    }
    stat = None
    if counters:
        from probe.engines.perf import PerfError, Stat

        try:
            stat = Stat(list(counters))
        except PerfError as e:
            raise UsageError(str(e)) from None
    recorder = _Recorder(Spool(db_path, header), chosen, stat)
    if stat is not None:
        try:
            stat.start()
        except PerfError as e:
            recorder.spool.discard()
            raise UsageError(str(e)) from None
    try:
        outcome = engine.run(target, probes, scope or Scope(), recorder)
    except UsageError:
        recorder.spool.discard()  # the target never started: there is no run to keep
        raise
    except BaseException:
        ingest_in_background(db_path)  # keep what the journal holds, whatever happened
        raise
    ingest_in_background(db_path)
    if summary is not None:
        run = dict(recorder.spool.run, streamed=recorder.streamed)
        for analysis in chosen:
            text = analysis.summary(run, recorder.tables)
            if text:
                print(text, file=summary)
        counted = recorder.tables.get("counters")
        if counted:
            shown = [
                f"{e} {v:,.2f} {u}".rstrip() if st == "ok" else f"{e} {st}"
                for e, v, u, st in zip(
                    counted["event"],
                    counted["value"],
                    counted["unit"],
                    counted["status"],
                    strict=True,
                )
            ]
            print(f"counters: {', '.join(shown)}", file=summary)
        print(
            f"probe: run {recorder.spool.run_id} ({outcome.status}) saved to {db_path}",
            file=summary,
        )
    return recorder.spool.run_id, outcome
