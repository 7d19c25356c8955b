"""The ``probe`` command: typer commands that call the library and print what it returns."""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable
from typing import Annotated, Any

import typer

from probe.errors import UsageError
from probe.storage.spool import DEFAULT_MAX_EVENTS

app = typer.Typer(
    name="probe",
    help="Dynamic instrumentation and profiling for Python and WebAssembly, queried with SQL.",
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)

DbOption = Annotated[
    str | None,
    typer.Option("--db", envvar="PROBE_DB", help="Database file [default: .probe/probe.duckdb]."),
]


def _one_line_errors(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Bad input (a ProbeError) becomes one line on stderr and exit status 2, never a
    traceback; anything else is probe's own bug, and main() says so."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from probe.errors import ProbeError

        try:
            return fn(*args, **kwargs)
        except ProbeError as e:
            print(f"probe: error: {e.args[0] if e.args else e}", file=sys.stderr)
            raise typer.Exit(2) from None
        except BrokenPipeError:
            sys.stderr.close()
            raise typer.Exit(1) from None

    return wrapper


def _split(values: list[str] | None) -> tuple[str, ...]:
    return tuple(p for v in values or [] for p in v.split(",") if p)


# The report settings, on `probe run` (its summary) and `probe report`: as coverage.py's.
ShowMissing = Annotated[
    bool | None, typer.Option("--show-missing", help="List the missed lines and arcs.")
]
SkipCovered = Annotated[
    bool | None, typer.Option("--skip-covered", help="Leave out files that are fully covered.")
]
SkipEmpty = Annotated[
    bool | None, typer.Option("--skip-empty", help="Leave out files with no statements.")
]
Sort = Annotated[
    str | None,
    typer.Option(
        help="Order files by name, stmts, miss, branch, brpart or cover; -COLUMN: descending."
    ),
]
Precision = Annotated[
    int | None, typer.Option(help="Digits after the decimal point of percentages.", min=0)
]
FailUnder = Annotated[
    float | None,
    typer.Option(help="Exit 2 when the total coverage is below this percent.", min=0, max=100),
]


def _report_options(
    show_missing: bool | None,
    skip_covered: bool | None,
    skip_empty: bool | None,
    sort: str | None,
    precision: int | None,
    fail_under: float | None,
) -> dict[str, object]:
    return {
        "show_missing": show_missing,
        "skip_covered": skip_covered,
        "skip_empty": skip_empty,
        "sort": sort,
        "precision": precision,
        "fail_under": fail_under,
    }


@app.command(
    context_settings={"allow_interspersed_args": False, "ignore_unknown_options": True},
)
@_one_line_errors
def run(
    target: Annotated[
        list[str] | None,
        typer.Argument(help="The program and its arguments: app.py ARGS (or ARGS with -m)."),
    ] = None,
    analysis: Annotated[
        list[str] | None,
        typer.Option("--analysis", "-a", help="Analyses to run: a,b or repeated."),
    ] = None,
    module: Annotated[
        str | None, typer.Option("-m", help="Run a library module as a script, like python -m.")
    ] = None,
    branch: Annotated[
        bool | None, typer.Option("--branch", help="Measure branch coverage too.")
    ] = None,
    source: Annotated[
        list[str] | None, typer.Option(help="Measure only code below these directories.")
    ] = None,
    include: Annotated[
        list[str] | None, typer.Option(help="Measure only files matching these globs.")
    ] = None,
    omit: Annotated[
        list[str] | None, typer.Option(help="Don't measure files matching these globs.")
    ] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Print no summary.")] = False,
    show_missing: ShowMissing = None,
    skip_covered: SkipCovered = None,
    skip_empty: SkipEmpty = None,
    sort: Sort = None,
    precision: Precision = None,
    fail_under: FailUnder = None,
    instr: Annotated[
        bool, typer.Option("--instr", help="Wasm: cover every instruction, exactly.")
    ] = False,
    sites: Annotated[
        list[str] | None,
        typer.Option("--sites", help="trace: func:GLOB or an event class: a,b or repeated."),
    ] = None,
    counters: Annotated[
        str | None,
        typer.Option(help="perf events counted over the run: instructions,task-clock,..."),
    ] = None,
    counters_backend: Annotated[
        str,
        typer.Option(
            help="perf (counters of the CPU, where it has them) or callgrind (exact "
            "instructions under valgrind, 20-50x slower).",
        ),
    ] = "perf",
    env: Annotated[
        list[str] | None, typer.Option("--env", help="Wasm: set K=V in the guest's environment.")
    ] = None,
    dirs: Annotated[
        list[str] | None,
        typer.Option("--dir", help="Wasm: preopen HOST directory, as GUEST if HOST::GUEST."),
    ] = None,
    invoke: Annotated[
        str | None, typer.Option(help="Wasm: call this export with ARGS instead of _start.")
    ] = None,
    fuel: Annotated[int | None, typer.Option(help="Wasm: stop after this much fuel.")] = None,
    timeout: Annotated[
        float | None, typer.Option(help="Wasm: stop after this many seconds.")
    ] = None,
    max_steps: Annotated[
        int | None, typer.Option(help="states: record at most this many steps [1,000,000].")
    ] = None,
    max_events: Annotated[
        int,
        typer.Option(
            help="Keep at most this many events (and steps); past it the program runs on "
            "unrecorded and the run ends 'truncated'.",
            min=0,
        ),
    ] = DEFAULT_MAX_EVENTS,
    rate: Annotated[
        int, typer.Option(help="hotpaths: stack samples per second.", min=1, max=10_000)
    ] = 100,
    idle: Annotated[
        bool, typer.Option("--idle", help="hotpaths (Python): sample idle threads too.")
    ] = False,
    gil: Annotated[
        bool, typer.Option("--gil", help="hotpaths (Python): only threads holding the GIL.")
    ] = False,
    subprocesses: Annotated[
        bool, typer.Option("--subprocesses", help="hotpaths (Python): sample child processes.")
    ] = False,
    native: Annotated[
        bool, typer.Option("--native", help="hotpaths (Python): native frames of extensions.")
    ] = False,
    db: DbOption = None,
) -> None:
    """Run a program with probes and record what they see.

    probe run app.py ARGS, probe run -m pkg ARGS, probe run app.wasm -- ARGS
    """
    from probe import config, recording
    from probe.engines import target_from_command
    from probe.probes import Scope

    if not module and target and target[0].startswith("-") and target[0] != "-":
        raise UsageError(_no_such_option(target[0]))  # before the program: probe's own

    if counters_backend == "callgrind":  # this very command, inside valgrind
        from probe.engines.perf import callgrind

        callgrind.relaunch(sys.argv[1:], list(_split([counters])) if counters else [])
    tgt = target_from_command(
        target or [],
        module,
        env=env or (),
        dirs=dirs or (),
        invoke=invoke,
        fuel=fuel,
        timeout=timeout,
    )
    settings = config.load().with_options(
        {
            "branch": branch,
            "source": _split(source),
            "include": _split(include),
            "omit": _split(omit),
            **_report_options(show_missing, skip_covered, skip_empty, sort, precision, fail_under),
        }
    )
    scope = Scope(
        source=settings["source"],
        include=settings["include"],
        omit=settings["omit"],
        exclude=settings.exclusions(),
        partial=settings["partial_branches"],
    )
    _, outcome = recording.run(
        tgt,
        _split(analysis) or ["coverage"],
        db=db,
        scope=scope,
        options={
            "branch": settings["branch"],
            **settings.report_options(),
            "instr": instr,
            **({"sites": list(_split(sites))} if sites else {}),
            **({"max_steps": max_steps} if max_steps else {}),
            **({"rate": rate} if rate != 100 else {}),
            **{k: True for k, on in (("idle", idle), ("gil", gil)) if on},
            **{k: True for k, on in (("subprocesses", subprocesses), ("native", native)) if on},
        },
        summary=None if quiet else sys.stderr,
        counters=_split([counters]) if counters else (),
        counters_backend=counters_backend,
        max_events=max_events,
    )
    raise typer.Exit(outcome.exit_code)


@app.command()
@_one_line_errors
def report(
    analysis: Annotated[str, typer.Argument(help="Which analysis to report.")] = "coverage",
    fmt: Annotated[
        str,
        typer.Option(
            "--format",
            "-f",
            help="text, json, jsonl, lcov, xml, coverage-data, dot, collapsed, speedscope, "
            "html, ldb, semcoder, traced or codeexecutor: as the analysis writes them.",
        ),
    ] = "text",
    level: Annotated[
        str | None, typer.Option(help="states as ldb: block, line or function [block].")
    ] = None,
    run_id: Annotated[
        str | None,
        typer.Option("--run", help="Run id [default: the latest run with the analysis]."),
    ] = None,
    output: Annotated[
        str | None, typer.Option("-o", help="Write to this file, not stdout.")
    ] = None,
    show_missing: ShowMissing = None,
    skip_covered: SkipCovered = None,
    skip_empty: SkipEmpty = None,
    sort: Sort = None,
    precision: Precision = None,
    fail_under: FailUnder = None,
    db: DbOption = None,
) -> None:
    """Report a recorded run (coverage: with the project's report settings, as coverage.py's
    report; below --fail-under, exit status 2)."""
    from probe import config
    from probe.analyses import load
    from probe.storage import Database

    settings = config.load().with_options(
        _report_options(show_missing, skip_covered, skip_empty, sort, precision, fail_under)
    )
    with Database(db) as database:
        chosen = database.run_for(analysis, run_id)
        options = {"level": level} if level else {}
        reporter = load(analysis)(**options, **settings.report_options())
        text = reporter.report(database, chosen, fmt)
        run = database.run(chosen)
    _emit(text, output)
    # which run this is, beside the report (its stdout stays the format's own)
    print(f"probe: {analysis} of run {chosen} ({run['target']}, {run['status']})", file=sys.stderr)
    failure = reporter.failure()
    if failure:
        print(f"probe: {failure}", file=sys.stderr)
        raise typer.Exit(2)


@app.command()
@_one_line_errors
def erase(
    run_ids: Annotated[
        list[str] | None,
        typer.Option("--run", help="Erase this run (and the runs inside it): a,b or repeated."),
    ] = None,
    db: DbOption = None,
) -> None:
    """Erase recorded runs, every run by default: their rows in every table and their event
    files (what `DELETE FROM runs` would leave behind)."""
    from probe.storage import Database

    with Database(db, write=True) as database:
        everything = [r for (r,) in database.execute("SELECT run_id FROM runs").fetchall()]
        gone = database.erase(list(_split(run_ids)) or everything)
    print(f"probe: erased {len(gone)} run{'s' if len(gone) != 1 else ''}", file=sys.stderr)


@app.command()
@_one_line_errors
def combine(
    databases: Annotated[
        list[str] | None,
        typer.Argument(help="Other probe databases (CI jobs', test workers'): runs to combine."),
    ] = None,
    run_ids: Annotated[
        list[str] | None,
        typer.Option("--run", help="Runs of this database to combine: a,b or repeated."),
    ] = None,
    db: DbOption = None,
) -> None:
    """Combine runs into one, as coverage.py's combine: the union of their sites, their
    counts added; `probe report` then shows it (the latest run)."""
    from probe.storage import Database

    with Database(db, must_exist=False, write=True) as database:
        new = database.combine(list(_split(run_ids)), databases or [])
    print(f"probe: combined into run {new}", file=sys.stderr)


@app.command("config")
@_one_line_errors
def config_command() -> None:
    """The settings in force here, and where each comes from: probe.toml, [tool.probe] in
    pyproject.toml, coverage.py's configuration (.coveragerc, setup.cfg, tox.ini,
    [tool.coverage] in pyproject.toml), or the default."""
    from probe import config

    _emit(config.describe(config.load()), None)


@app.command("trace")
@_one_line_errors
def trace_command(
    path: Annotated[str, typer.Argument(help="The Python file: run as a module, unrecorded.")],
    call: Annotated[
        str, typer.Option("--call", help="The call to trace, a Python expression: 'f([1, 2])'.")
    ],
    fmt: Annotated[
        str,
        typer.Option("--format", "-f", help="ldb, semcoder, traced, codeexecutor, jsonl or text."),
    ] = "ldb",
    level: Annotated[str, typer.Option(help="ldb: block, line or function.")] = "block",
    max_steps: Annotated[int, typer.Option(help="Record at most this many steps.")] = 100_000,
    timeout: Annotated[
        float | None, typer.Option(help="Stop the call after this many seconds.")
    ] = 10.0,
    output: Annotated[
        str | None, typer.Option("-o", help="Write to this file, not stdout.")
    ] = None,
) -> None:
    """Trace the states of one call, in a format code LLMs are trained on.

    Runs PATH as a module, then evaluates --call with the states of everything in PATH it
    runs recorded, and prints them. Exits 0 whether or not the call raised: the trace says.
    """
    from probe import recording
    from probe.analyses.states import States
    from probe.reports import check, render

    analysis = States(level=level, max_steps=max_steps)
    from probe.analyses.states import StateTrace

    check(analysis, StateTrace, fmt)
    result = recording.trace_call(path, call, max_steps=max_steps, timeout=timeout, level=level)
    _emit(render(analysis, result, fmt), output)


@app.command()
@_one_line_errors
def query(
    sql: Annotated[
        str,
        typer.Argument(
            help="SQL over runs, sites, counts, events and the analyses' views (-: stdin)."
        ),
    ],
    fmt: Annotated[str, typer.Option("--format", "-f", help="table, csv or json.")] = "table",
    db: DbOption = None,
) -> None:
    """Run SQL against the recorded data (views: call_edges, memory_sites, trace, ...), or
    over files (read_parquet('traces/**/*.parquet')) where nothing is recorded yet."""
    _show(sys.stdin.read() if sql == "-" else sql, fmt, db, files_only=True)


@app.command()
@_one_line_errors
def runs(db: DbOption = None) -> None:
    """List the recorded runs."""
    _show(
        "SELECT run_id, started_at::TIMESTAMP(0) AS started, engine, status, exit_code, "
        "round(wall_s, 3) AS wall_s, analyses, target FROM runs ORDER BY started_at, run_id",
        "table",
        db,
    )


def _show(sql: str, fmt: str, db: str | None, files_only: bool = False) -> None:
    from probe.reports.query import render
    from probe.storage import Database

    with Database(db, files_only=files_only) as database:
        result = database.execute(sql)
        if not result.columns:
            return
        text = render(result.columns, result.fetchall(), fmt)
    _emit(text, None)


@app.command()
@_one_line_errors
def export(
    directory: Annotated[str, typer.Argument(help="Directory to write the files into.")],
    fmt: Annotated[str, typer.Option("--format", "-f", help="parquet.")] = "parquet",
    db: DbOption = None,
) -> None:
    """Export every table, one file per table."""
    from probe.storage import Database

    if fmt != "parquet":
        raise UsageError(f"unknown export format {fmt!r} (use parquet)")
    with Database(db) as database:
        for path in database.export_parquet(directory):
            print(path)


dataset = typer.Typer(
    help="Execution traces of whole data sets, as training data (HumanEval, MBPP, JSONL).",
    no_args_is_help=True,
)
app.add_typer(dataset, name="dataset")


@dataset.command("build")
@_one_line_errors
def dataset_build(
    sources: Annotated[
        list[str], typer.Argument(help="Data sets: HumanEval, MBPP or plain JSONL (.gz).")
    ],
    out: Annotated[str, typer.Option("--out", help="Directory the records go into.")],
    fmt: Annotated[
        str,
        typer.Option("--format", "-f", help="ldb, semcoder, traced, codeexecutor, jsonl."),
    ] = "ldb,semcoder,traced",
    workers: Annotated[int, typer.Option(help="Worker processes [the CPUs].")] = 0,
    timeout: Annotated[float, typer.Option(help="Seconds per (program, input).")] = 10.0,
    memory: Annotated[int, typer.Option(help="MiB of memory per (program, input).")] = 1024,
    max_steps: Annotated[int, typer.Option(help="Steps recorded per input.")] = 10_000,
    level: Annotated[str, typer.Option(help="ldb: block, line or function.")] = "block",
    efficiency: Annotated[
        str | None,
        typer.Option(help="perf, time or none [perf where the CPU counts, else time]."),
    ] = None,
    resume: Annotated[bool, typer.Option(help="Go on with a build in --out.")] = False,
    ray: Annotated[
        str | None, typer.Option(help="Run on a Ray cluster: auto or its address.")
    ] = None,
) -> None:
    """Trace every (program, input) of data sets, each isolated, into Parquet and JSONL."""
    from probe.corpus.build import Options, build

    options = Options(
        formats=_split([fmt]),
        workers=workers or os.cpu_count() or 1,
        timeout=timeout,
        memory=memory or None,
        max_steps=max_steps,
        level=level,
        efficiency=efficiency,
        resume=resume,
        ray=ray,
    )
    summary = build(sources, out, options)
    print(summary.text(), file=sys.stderr)


@dataset.command("score")
@_one_line_errors
def dataset_score(
    candidate: Annotated[str, typer.Argument(help="A build of the solutions to score.")],
    reference: Annotated[
        list[str], typer.Option("--reference", help="A build of reference solutions; repeat.")
    ],
    fmt: Annotated[str, typer.Option("--format", "-f", help="table, csv or json.")] = "table",
) -> None:
    """EvalPerf's DPS and DPS_norm of a build's solutions against reference builds."""
    from probe.corpus.score import score
    from probe.reports.query import render

    scores = score(candidate, reference)
    rows = [(s.task_id, s.cost, s.dps, s.dps_norm, s.references, s.clusters) for s in scores]
    scored = [s for s in scores if s.dps is not None]
    if scored:
        mean = sum(s.dps for s in scored) / len(scored)  # type: ignore[misc]
        norm = sum(s.dps_norm for s in scored) / len(scored)  # type: ignore[misc]
        rows.append(("mean", None, round(mean, 2), round(norm, 2), None, None))
    columns = ["task_id", "cost", "dps", "dps_norm", "references", "clusters"]
    _emit(render(columns, rows, fmt), None)


@app.command("analyses")
@_one_line_errors
def list_analyses() -> None:
    """List the analyses: built in and installed."""
    from probe.analyses import available

    for name, cls in sorted(available().items()):
        print(f"{name:12} {cls.description}")


def _emit(text: str | bytes | dict[str, bytes], output: str | None) -> None:
    """A report to stdout or -o: text either way; a binary file (coverage.py's data) and a
    folder of files (coverage's HTML) only to -o."""
    if isinstance(text, str):
        text = text if text.endswith("\n") else text + "\n"
        if not output:
            sys.stdout.write(text)
            return
    elif not output:
        folder = isinstance(text, dict)
        what = "folder of files: give -o DIR" if folder else "binary file: give -o PATH"
        raise UsageError(f"this format is a {what}")
    if isinstance(text, dict):
        files = {os.path.join(output, name): data for name, data in text.items()}
    else:
        files = {output: text.encode() if isinstance(text, str) else text}
    try:
        for path, data in files.items():
            if isinstance(text, dict):
                os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "wb") as f:
                f.write(data)
    except OSError as e:
        raise UsageError(f"can't write {e.filename or output}: {e.strerror}") from None
    if isinstance(text, dict):
        print(f"probe: wrote {os.path.join(output, 'index.html')}", file=sys.stderr)


def _version(value: bool) -> None:
    if value:
        from importlib.metadata import version

        print(f"probe {version('dynprobe')} (Python {sys.version.split()[0]})")
        raise typer.Exit()


@app.callback()
def _options(
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Print the version."),
    ] = False,
) -> None:
    """Dynamic instrumentation and profiling for Python and WebAssembly, queried with SQL."""


@functools.cache
def _command() -> Any:
    """The click command typer builds from ``app`` (~15 ms): built once a process."""
    return typer.main.get_command(app)


def _run_options() -> dict[str, bool]:
    """`probe run`'s option names, each with whether it takes a value."""
    import click

    command = _command()
    assert isinstance(command, click.Group)
    return {
        name: not p.is_flag
        for p in command.commands["run"].params
        if isinstance(p, click.Option)
        for name in (*p.opts, *p.secondary_opts)
    }


def _no_such_option(word: str) -> str:
    import difflib

    name = word.split("=", 1)[0]
    near = difflib.get_close_matches(name, list(_run_options()), n=1)
    return f"no such option: {name}" + (f" (did you mean {near[0]}?)" if near else "")


def _program_apart(args: list[str]) -> list[str]:
    """`probe run -m pytest -q tests`: everything after -m MODULE is the program's, as python
    takes it (click would read -q as probe's own: it parses options until the first
    argument, and the module is an option's value). After a script, click stops itself."""
    if not args or args[0] != "run":
        return args
    takes_value = _run_options()
    i = 1
    while i < len(args):
        word = args[i]
        if word == "--" or not word.startswith("-"):
            return args
        if word == "-m":
            return [*args[: i + 2], "--", *args[i + 2 :]]
        if word.startswith("-m") and not word.startswith("--"):  # -mpkg
            return [*args[: i + 1], "--", *args[i + 1 :]]
        i += 2 if takes_value.get(word) else 1
    return args


def main() -> None:
    sys.argv[1:] = _program_apart(sys.argv[1:])
    # the command typer's app() would build again: called straight (pretty tracebacks are
    # off, the one thing app() adds)
    if os.environ.get("PROBE_DEBUG"):
        _command()(prog_name="probe")
        return
    try:
        _command()(prog_name="probe")
    except SystemExit:
        raise
    except KeyboardInterrupt:
        sys.exit(130)
    except Exception as e:  # noqa: BLE001 - a bug in probe: one line, PROBE_DEBUG=1 for the rest
        print(
            f"probe: internal error: {type(e).__name__}: {e} (PROBE_DEBUG=1 shows where)",
            file=sys.stderr,
        )
        sys.exit(3)
