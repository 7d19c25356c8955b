"""Recorded runs: a program run by ``probe run``, or a session inside a running program.

Data flows one way: analyses say which probes they need; the engine places
them and runs the target; what the probes saw goes to the run's journal
(and stays in memory for the summary); the journal is ingested into DuckDB
by a detached process, or by whichever probe command opens the database
first. A session (``probe.session``) records this process's own code from
start() to stop() and ingests its journal at stop(), so that its results
can be queried at once, in the same process.
"""

from __future__ import annotations

import atexit
import os
import sys
import threading
import time
from collections.abc import Callable, Sequence

from probe import analyses as registry
from probe.analyses import Tables
from probe.engines import Outcome, Target, engine_for
from probe.errors import PerfError, StorageError, UsageError
from probe.probes import ProbeSet, Scope
from probe.storage import TABLES, Spool, ingest_in_background, resolve_path
from probe.storage.spool import DEFAULT_MAX_EVENTS, part_id
from probe.storage.spool import parts_of as spool_parts

TYPE_CHECKING = False  # typing's, without importing typing on a run's path (architecture)
if TYPE_CHECKING:
    from typing import Any, TextIO

    import duckdb
    import pyarrow as pa

    from probe.analyses.states import StateTrace
    from probe.storage.db import Database


class RunRecorder:
    """One run's recorder, the engines' ``Recorder``: writes its tables to the run's journal,
    keeps them for the end-of-run summary, and closes the run with what the program reported
    (its ``recording``) and the counters of the whole run."""

    def __init__(
        self,
        spool: Spool,
        analyses: Sequence[registry.Analysis] = (),
        stat: Any = None,
        recording: Recording | None = None,
        summarized: bool = False,
    ) -> None:
        self.spool = spool
        self.summarized = summarized  # a summary reads the tables at the end of the run
        self.analyses = analyses
        self.stat = stat  # what counts the whole run, if asked for: perf stat or callgrind
        self.recording = recording  # what the program reported while recorded
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

    def append(self, table: str, columns: dict[str, Any]) -> bool:
        before = self.spool.events
        taken = self.spool.append(table, columns)
        self.streamed[table] = self.streamed.get(table, 0) + self.spool.events - before
        return taken

    def snapshot(self, tables: dict[str, dict[str, Any]]) -> None:
        self.spool.snapshot(tables)

    def defer(self, maker: str, args: dict[str, Any]) -> bool:
        if self.summarized:
            return False
        return self.spool.defer(maker, args)

    def part(self) -> RunRecorder:
        run = self.spool.run
        return new_run(
            self.spool.db_path,
            run.get("target"),
            run["engine"],
            run.get("analyses") or [],
            sys.argv,
            run.get("options") or {},
            part_of=run.get("part_of") or self.spool.run_id,  # a part's part is the run's too
            max_events=self.spool.max_events,
        )

    def readings(self, rows: Sequence[tuple[str, Any, dict[str, Any]]]) -> None:
        """Counter readings into the counters table: (region, Reading, other columns)."""
        if not rows:
            return
        columns: dict[str, list] = {name: [] for name, _ in TABLES["counters"][1:]}
        for region, r, extra in rows:
            values = {"region": region, **vars(r), "calls": 1, "input": None, "sample": None}
            values.update(extra)
            for name, column in columns.items():
                column.append(values[name])
        self.write("counters", columns)

    def close(self, outcome: Outcome) -> None:
        if not self.spool.owned:
            return  # a forked child's: the run and its counters belong to the parent
        if self.recording is not None:
            self.recording.save(self)
        if self.stat is not None:
            self.readings([("run", r, {}) for r in self.stat.stop()])
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
    counters_backend: str = "perf",
    max_events: int | None = DEFAULT_MAX_EVENTS,
) -> tuple[str, Outcome]:
    """Run ``target`` with the probes ``analyses`` need; return the run id and how it ended.

    ``analyses`` are names (built in or installed) or Analysis objects of your own.
    ``max_events``: the journal takes at most this many streamed rows (events, steps);
    past it the program runs on unrecorded and the run ends 'truncated'.
    ``counters``: perf events counted over the whole run (the ``counters`` table);
    ``counters_backend`` 'callgrind': instructions counted by callgrind, in a process that
    runs under it (``probe run --counters-backend callgrind`` starts one).

    Raises UsageError, StorageError or UnknownAnalysis before the target
    starts when the request can't be carried out.
    """
    options = dict(options or {})
    chosen = chosen_analyses(list(analyses) or ["coverage"], options)
    names = [a.name for a in chosen]
    engine = engine_for(target)
    probes = ProbeSet.of(p for a in chosen for p in a.probes(engine.events))
    if not len(probes):
        raise UsageError(
            f"the analyses {', '.join(names)} need no probes the {engine.name} engine has"
        )
    db_path = resolve_path(db)
    recording = Recording(db_path, names, options)
    recorder = new_run(
        db_path,
        os.path.abspath(target.path) if target.path else target.module,
        engine.name,
        names,
        target.argv,
        options,
        analyses=chosen,
        stat=_stat(counters, counters_backend),
        recording=recording,
        max_events=max_events,
        summarized=summary is not None,
    )
    recording.run_id = recorder.spool.run_id
    recording.enter()
    scope = scope or Scope()
    unexport = lambda: None  # noqa: E731
    if engine.name == "cpython":  # the Python processes it starts are parts of the run
        from probe import subprocesses

        unexport, why = subprocesses.export(db_path, recording.run_id, probes, scope)
        if why:
            recorder.spool.note(why)
    try:
        outcome = engine.run(target, probes, scope, recorder)
    except UsageError:
        recorder.spool.discard()  # the target never started: there is no run to keep
        raise
    except Exception as e:
        # probe failed, not the program: the run says so (left open, it would read 'killed')
        if not recorder.spool.run.get("closed"):
            recorder.spool.close("error", 1, f"internal error: {type(e).__name__}: {e}")
        if recorder.spool.owned:
            ingest_in_background(db_path)
        raise
    except BaseException:
        if recorder.spool.owned:
            ingest_in_background(db_path)  # keep what the journal holds, whatever happened
        raise
    finally:
        unexport()
        recording.leave()
    if not recorder.spool.owned:
        return recorder.spool.run_id, outcome  # a forked child ends here, silently
    if summary is not None or any(a.options.get("fail_under") for a in chosen):
        _add_parts(recorder, db_path)
    ingest_in_background(db_path)
    if summary is not None:
        _summarize(recorder, chosen, outcome, db_path, summary)
    return recorder.spool.run_id, _judged(recorder, chosen, outcome, summary is not None)


def _add_parts(recorder: RunRecorder, db_path: str) -> None:
    """Where processes the run started (forked children, Python subprocesses) recorded
    parts of it, the summary reads the run as stored, with their counts added: the run is
    ingested now (duckdb's import, ~0.3 s, is paid by runs with parts only)."""
    run_id = recorder.spool.run_id
    parts = spool_parts(db_path, run_id)
    if not parts:
        return
    from probe.storage.db import MERGED

    try:
        with database(db_path, write=True) as db:
            stored = {
                table: db.arrow(
                    f"SELECT * EXCLUDE (run_id) FROM {table} WHERE run_id = ?", [run_id]
                ).to_pydict()
                for table in MERGED
            }
    except StorageError as e:  # locked by another program, say: the journals stay
        print(f"probe: the summary is this process's alone: {e}", file=sys.stderr)
        return
    recorder.tables.update(stored)
    left = len(spool_parts(db_path, run_id))
    recorder.spool.run["parts"] = len(parts) - left
    if left:
        recorder.spool.run["parts_running"] = left


def _judged(
    recorder: RunRecorder, chosen: Sequence[registry.Analysis], outcome: Outcome, summed: bool
) -> Outcome:
    """The outcome, with exit status 2 where a program that succeeded falls short of what
    an analysis was asked (coverage's fail_under), said on stderr even with no summary."""
    failures = []
    for analysis in chosen:
        if not summed and analysis.options.get("fail_under"):
            analysis.summary(dict(recorder.spool.run), recorder.tables)  # finds the total
        failure = analysis.failure()
        if failure:
            failures.append(failure)
            print(f"probe: {failure}", file=sys.stderr)
    if failures and outcome.exit_code == 0:
        return Outcome(outcome.status, 2, "; ".join(failures))
    return outcome


def _summarize(
    recorder: RunRecorder,
    chosen: Sequence[registry.Analysis],
    outcome: Outcome,
    db_path: str,
    summary: TextIO,
) -> None:
    """The analyses' summaries, the counters and where the run went; nothing if the program
    closed the stream (python exits 0 then too, and so does probe)."""
    try:
        run = dict(recorder.spool.run, streamed=recorder.streamed)
        for analysis in chosen:
            text = analysis.summary(run, recorder.tables)
            if text:
                print(text, file=summary)
        counted = recorder.tables.get("counters")
        if counted:
            shown = [
                f"{e} {v:,.2f} {u}".rstrip() if st == "ok" else f"{e} {st}"
                for r, e, v, u, st in zip(
                    counted["region"],
                    counted["event"],
                    counted["value"],
                    counted["unit"],
                    counted["status"],
                    strict=True,
                )
                if r == "run"
            ]
            if shown:
                print(f"counters: {', '.join(shown)}", file=summary)
        run = recorder.spool.run
        parts = f", with {run['parts']} of its processes" if run.get("parts") else ""
        if run.get("parts_running"):
            n = run["parts_running"]
            parts += f"; {n} more still running, added when {'it ends' if n == 1 else 'they end'}"
        print(
            f"probe: run {recorder.spool.run_id} ({run['status']}{parts}) saved to {db_path}",
            file=summary,
        )
        summary.flush()
    except (OSError, ValueError):
        pass  # a closed or broken stream: the run is saved all the same


def trace_call(
    path: str,
    call: str,
    *,
    max_steps: int = 100_000,
    timeout: float | None = None,
    level: str = "block",
) -> StateTrace:
    """The states of one call: ``path`` run as a module (unrecorded), then ``call``, a Python
    expression, evaluated in it with the states of everything in that file it runs recorded.
    Nothing is stored. The call may raise, loop (``timeout``, seconds) or run past
    ``max_steps``: the result's ``outcome`` says so."""
    from probe.engines.cpython import call as calls

    code = calls.compile_call(call)
    module, real = calls.load(path)
    traced = calls.trace(module, real, code, max_steps=max_steps, timeout=timeout)
    return states_of(traced, level)


def states_of(traced: Any, level: str = "block") -> StateTrace:
    """The result model of a traced call (``engines.cpython.call.Traced``): what it
    recorded, how it ended, what it printed."""
    from probe.analyses.states import StateTrace

    result = StateTrace.from_tables(traced.tables, outcome=traced.outcome, level=level)
    result.output = traced.output
    result.message = traced.exception
    return result


def new_run(
    db_path: str,
    target: str | None,
    engine: str,
    names: Sequence[str],
    argv: Sequence[str],
    options: dict[str, Any],
    *,
    analyses: Sequence[registry.Analysis] = (),
    stat: Any = None,
    recording: Recording | None = None,
    parent: str | None = None,
    part_of: str | None = None,
    max_events: int | None = DEFAULT_MAX_EVENTS,
    summarized: bool = False,
) -> RunRecorder:
    """A run's journal, opened, with its counters (``stat``) started: the recorder to hand to
    an engine. A run whose counters can't start is not kept. ``parent``: the run this one
    is started inside. ``part_of``: the run this one is a part of (what a process that run
    started records, added to it at ingest). ``summarized``: a summary will read its tables
    when it ends."""
    header = {
        **({"run_id": part_id(part_of), "part_of": part_of} if part_of else {}),
        "parent": parent,
        "target": target,
        "engine": engine,
        "analyses": list(names),
        "argv": list(argv),
        "started_at": time.time(),
        "cwd": os.getcwd(),
        "options": options,
    }
    spool = Spool(db_path, header, max_events)
    recorder = RunRecorder(spool, analyses, stat, recording, summarized)
    if stat is not None:
        try:
            stat.start()
        except PerfError as e:
            recorder.spool.discard()
            raise UsageError(str(e)) from None
    return recorder


def chosen_analyses(
    analyses: Sequence[str | registry.Analysis], options: dict[str, Any]
) -> list[registry.Analysis]:
    """Analysis objects for names (built in or installed) and objects alike, once each."""
    return [
        a if isinstance(a, registry.Analysis) else registry.load(a)(**options)
        for a in dict.fromkeys(analyses)
    ]


def current() -> Recording | None:
    """What records this process now: the innermost Recording, or None.

    This is the one way to ask. ``probe run`` records the program it runs, a ``Session``
    records code of its own process; while either does, decorated calls, ``probe.measure``
    and ``probe.wasm.load`` report to it."""
    from probe import tracing

    return tracing.state.recording


class Recording:
    """What records a program, and what the program reports to while it runs: under ``probe
    run`` (one is made for the run) or in a ``Session``. It has its own run (``run_id``,
    in ``db_path``) and gathers counter regions (decorated calls, tests, Wasm export calls),
    ``probe.measure``'s samples and the Wasm modules the program loads (runs of their own,
    children of this one). All of it is saved when its run closes (``save``).

    ``current()`` returns the innermost one; ``enter``/``leave`` make it current."""

    def __init__(self, db_path: str, names: Sequence[Any], options: dict[str, Any]) -> None:
        self.db_path = db_path
        self.options = options
        self.run_id: str | None = None  # its own run, once it has one
        self._names = list(names)
        self.run_ids: list[str] = []  # the runs of the Wasm modules loaded, after its own
        self._modules: list[Any] = []
        self._regions: dict[tuple[str, str], list] = {}
        self._samples: list[tuple[str, Any, dict[str, Any]]] = []
        self._lock = threading.Lock()

    def enter(self) -> None:
        """Become what decorated calls, probe.measure and probe.wasm.load report to."""
        from probe import tracing

        tracing.state.stack.append(self)
        tracing.state.recording = self

    def leave(self) -> None:
        from probe import tracing

        stack = tracing.state.stack
        if self in stack:
            stack.remove(self)
        tracing.state.recording = stack[-1] if stack else None

    def context_changed(self) -> None:
        """A coarse context (a test) begins."""

    def add_region(self, region: str, readings: list[Any]) -> None:
        """Add one entry's counter readings to the region's sums (any thread)."""
        with self._lock:
            for r in readings:
                key = (region, r.event)
                known = self._regions.get(key)
                if known is None:
                    self._regions[key] = [_copy(r), 1]
                    continue
                total, _ = known
                known[1] += 1
                if r.value is not None and total.value is not None:
                    total.value += r.value
                    total.time_enabled = (total.time_enabled or 0) + (r.time_enabled or 0)
                    total.time_running = (total.time_running or 0) + (r.time_running or 0)

    def add_readings(self, rows: Sequence[tuple[str, Any, dict[str, Any]]]) -> None:
        """Counter samples (probe.measure), kept as they are."""
        with self._lock:
            self._samples.extend(rows)

    def fresh_analyses(self) -> list[registry.Analysis]:
        """The run's analyses anew, for another run (a Wasm module)."""
        return chosen_analyses(self._names, self.options)

    def add_run(self, run_id: str, module: Any) -> None:
        """A Wasm module loaded: closed, and its run saved, when this run closes."""
        self.run_ids.append(run_id)
        self._modules.append(module)

    def save(self, recorder: RunRecorder) -> None:
        for module in self._modules:
            try:
                module.close()
            except Exception as e:  # noqa: BLE001 - one module must not lose the run
                print(f"probe: {module.path}: its run was not saved: {e}", file=sys.stderr)
        with self._lock:
            rows = [
                (region, reading, {"calls": calls})
                for (region, _), (reading, calls) in self._regions.items()
            ]
            rows += self._samples
            self._regions, self._samples = {}, []
        recorder.readings(rows)


class Session(Recording):
    """Recording inside this process: ``with probe.session(...) as s:`` or start()/stop().

    With analyses of its own, a session records all of the program's code (not the standard
    library's or installed packages', unless ``source``/``include`` say so) on every thread.
    Without, it records what the ``@probe.trace`` functions ask for, in their call trees
    only. Sessions nest: each is a run of its own, and the outer one sees what the inner one
    saw. Wasm modules loaded while it records (``probe.wasm.load``) are runs of the session
    too. After stop(), ``query`` and ``table`` answer from the database.
    """

    def __init__(
        self,
        analysis: str | registry.Analysis | Sequence[str | registry.Analysis] | None = None,
        *,
        db: str | None = None,
        counters: Sequence[str] = (),
        source: Sequence[str] = (),
        include: Sequence[str] = (),
        omit: Sequence[str] = (),
        exclude: Sequence[str] | None = None,
        partial: Sequence[str] | None = None,
        name: str | None = None,
        options: dict[str, Any] | None = None,
    ) -> None:
        if isinstance(analysis, str | registry.Analysis):
            analysis = [analysis]
        super().__init__(resolve_path(db), analysis or [], dict(options or {}))
        self._asked = list(analysis) if analysis else None
        # exclude, partial: regexes of lines not measured, of branch lines not held to every
        # arc (None: coverage.py's defaults)
        extra = {"exclude": exclude, "partial": partial}
        self.scope = Scope(
            source=tuple(source), include=tuple(include), omit=tuple(omit),
            **{k: tuple(v) for k, v in extra.items() if v is not None},
        )  # fmt: skip
        self.counters = list(counters)
        self.name = name or "session"
        self.analyses: list[registry.Analysis] = []
        self._attached: Any = None
        self._unexport: Callable[[], None] = lambda: None

    # -- recording ------------------------------------------------------------------------

    def start(self) -> Session:
        from probe import tracing
        from probe.engines.cpython import CPythonEngine
        from probe.engines.cpython.attach import Attached

        if self._attached is not None:
            raise UsageError("this session is recording already")
        gated = self._asked is None
        names = self._asked or list(tracing.requested) or ["coverage"]
        self._names = names
        self.analyses = chosen_analyses(names, self.options)
        probes = ProbeSet.of(p for a in self.analyses for p in a.probes(CPythonEngine.events))
        outer = current()  # what records already: this run is started inside it
        recorder = new_run(
            self.db_path,
            self.name,
            "cpython",
            [a.name for a in self.analyses],
            list(sys.argv),
            self.options,
            analyses=self.analyses,
            stat=_stat(self.counters),
            recording=self,
            parent=outer.run_id if outer is not None else None,
        )
        try:
            attached = Attached(
                probes,
                self.scope,
                recorder,
                context=tracing.current_context,
                gated=gated,
                fine=gated or tracing.decorated > 0,
            )
            attached.start()
        except BaseException:
            if recorder.stat is not None:
                recorder.stat.stop()
            recorder.spool.discard()
            raise
        self._attached = attached
        self.run_id = recorder.spool.run_id
        self.run_ids = [self.run_id]
        if not gated:  # the Python processes it starts (tests', xdist's workers) are parts
            from probe import subprocesses

            self._unexport, why = subprocesses.export(self.db_path, self.run_id, probes, self.scope)
            if why:
                recorder.spool.note(why)
        if not _open_sessions:
            atexit.register(_stop_at_exit)
        _open_sessions.append(self)
        self.enter()
        return self

    def stop(self, outcome: Outcome | None = None) -> None:
        """Stop recording and save everything; the results are in the database on return."""
        attached = self._attached
        if attached is None:
            return
        self._attached = None
        self._unexport()
        if self in _open_sessions:
            _open_sessions.remove(self)
        self.leave()
        attached.stop(outcome or Outcome("ok", 0))  # closes the run: see Recording.save
        # The results are queryable on return: opening for writing ingests them.
        from probe.engines.perf import callgrind

        if callgrind.inside():
            ingest_in_background(self.db_path, wait=True)
        else:
            with database(self.db_path, write=True):
                pass

    def __enter__(self) -> Session:
        return self.start()

    def __exit__(self, kind: type | None, exc: BaseException | None, tb: object) -> None:
        if exc is None:
            self.stop()
        elif isinstance(exc, SystemExit):  # the program ends here, as it meant to
            code = exc.code
            status = code if isinstance(code, int) else (0 if code is None else 1)
            self.stop(Outcome("ok", status, None if code is None else f"exit({code!r})"))
        elif isinstance(exc, KeyboardInterrupt):
            self.stop(Outcome("killed", 130, "KeyboardInterrupt"))
        else:
            self.stop(Outcome("error", 1, f"{type(exc).__name__}: {exc}"))

    def context_changed(self) -> None:
        """A coarse context (a test) begins: lines report again in it."""
        if self._attached is not None:
            self._attached.context_changed()

    @property
    def recording(self) -> bool:
        return self._attached is not None

    # -- results --------------------------------------------------------------------------

    def query(self, sql: str, params: Sequence[Any] | None = None) -> duckdb.DuckDBPyRelation:
        """A DuckDB relation over the database (every run in it: filter by ``run_id``).

        The rows are read at once and the database let go before this returns (other
        processes never wait for a session); the relation is over those rows, in memory."""
        self._stopped()
        with database(self.db_path) as db:
            return db.detached(sql, list(params) if params else None)

    def table(self, name: str) -> pa.Table:
        """The session's rows of a table or view of the SQL contract, as an Arrow table."""
        from probe.storage.schema import TABLES, VIEWS

        self._stopped()
        with database(self.db_path) as db:
            known = set(TABLES) | set(VIEWS) | db.table_names()
            if name not in known:
                raise StorageError(f"no table or view {name!r} (tables: {', '.join(TABLES)})")
            return db.arrow(
                f'SELECT * FROM "{name}" WHERE run_id IN (SELECT unnest(?::VARCHAR[]))',
                [self.run_ids],
            )

    def close(self) -> None:
        """Nothing to let go of: each query opens the database and closes it before it
        returns. Kept for code written when sessions held it."""

    def _stopped(self) -> None:
        if self.run_id is None:
            raise UsageError("this session has not recorded yet: start() it first")
        if self._attached is not None:
            raise UsageError("this session is still recording: stop() it before querying")


def session(
    analysis: str | registry.Analysis | Sequence[str | registry.Analysis] | None = None,
    **kwargs: Any,
) -> Session:
    """A recording session (see :class:`Session`); use as a context manager or start() it."""
    return Session(analysis, **kwargs)


_open_sessions: list[Session] = []  # started and not yet stopped


def _stop_at_exit() -> None:
    """Sessions the program never stopped are saved as it exits, innermost first."""
    for s in reversed(list(_open_sessions)):
        s.stop(Outcome("ok", 0, "stopped at exit"))


def database(path: str, write: bool = False) -> Database:
    """The database at ``path``, opened for one use (a context manager)."""
    from probe.storage.db import Database

    return Database(path, must_exist=False, write=write)


def _stat(counters: Sequence[str], backend: str = "perf") -> Any:
    """What counts the whole run: perf stat, or callgrind (None: nothing, and nothing of
    theirs imported: a run without counters starts sooner)."""
    if backend not in ("perf", "callgrind"):
        raise UsageError(f"no counters backend {backend!r} (perf or callgrind)")
    if backend == "perf" and not counters:
        return None
    from probe.engines.perf import Stat, callgrind

    try:
        if backend == "callgrind":
            callgrind.check(list(counters))
            return callgrind.Callgrind()
        return Stat(list(counters)) if counters else None
    except PerfError as e:
        raise UsageError(str(e)) from None


def _copy(reading: Any) -> Any:
    import dataclasses

    return dataclasses.replace(reading)
