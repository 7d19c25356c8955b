"""The ``probe`` command: parses arguments, calls the library, prints what it returns.

Parsed with argparse, not a framework: `probe run` stands in front of every program it
measures, and its whole start may cost 0.04 s (issue 14). typer and click took 0.1 s of
that to import and to build their commands; argparse is in the standard library and builds
every command's parser in a few milliseconds.
"""

from __future__ import annotations

import argparse
import functools
import os
import sys
from collections.abc import Callable, Iterator

from probe.errors import UsageError
from probe.storage.spool import DEFAULT_MAX_EVENTS

TYPE_CHECKING = False  # typing's, without importing typing on a run's path (architecture)
if TYPE_CHECKING:
    from typing import Any

Command = Callable[[argparse.Namespace], "int | None"]


class _Parser(argparse.ArgumentParser):
    """Bad words on the command line are a one-line error (exit 2) that names them, with the
    option meant where one is near, as every other bad input is."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(_near(self, message))


def _near(parser: argparse.ArgumentParser, message: str) -> str:
    prefix = "unrecognized arguments: "
    if message.startswith(prefix):
        word = message[len(prefix) :].split()[0]
        if word.startswith("-"):
            return _no_such_option(parser, word)
    return message


def _no_such_option(parser: argparse.ArgumentParser, word: str) -> str:
    import difflib

    name = word.split("=", 1)[0]
    near = difflib.get_close_matches(name, list(_takes_value(parser)), n=1)
    return f"no such option: {name}" + (f" (did you mean {near[0]}?)" if near else "")


def _takes_value(parser: argparse.ArgumentParser) -> dict[str, bool]:
    """The parser's option names, each with whether it takes a value."""
    return {
        name: action.nargs != 0
        for action in parser._actions  # argparse keeps no public list of them
        for name in action.option_strings
    }


def _split(values: list[str] | None) -> tuple[str, ...]:
    """One comma rule for every list option: a,b or repeated, or both."""
    return tuple(p for v in values or [] for p in v.split(",") if p)


def _number(kind: type, low: float | None = None, high: float | None = None) -> Callable:
    def parse(text: str) -> int | float:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a valid {kind.__name__}") from None
        if (low is not None and value < low) or (high is not None and value > high):
            bounds = f"{low} to {high}" if high is not None else f"at least {low}"
            raise argparse.ArgumentTypeError(f"{text} is not in the range {bounds}")
        return value

    parse.__name__ = kind.__name__  # argparse names the type in its messages
    return parse


_COMMANDS: dict[str, tuple[Command, Callable[[_Parser], None]]] = {}


def _command(
    name: str, arguments: Callable[[_Parser], None] = lambda parser: None
) -> Callable[[Command], Command]:
    """Registers ``fn`` as ``probe NAME``: its docstring is the help, ``arguments`` adds
    the options to its parser."""

    def register(fn: Command) -> Command:
        _COMMANDS[name] = (fn, arguments)
        return fn

    return register


def _db(parser: _Parser) -> None:
    parser.add_argument(
        "--db",
        default=os.environ.get("PROBE_DB"),
        help="Database file [default: $PROBE_DB, else .probe/probe.duckdb].",
    )


def _run_ids(parser: _Parser, what: str) -> None:
    parser.add_argument(
        "--run", dest="run_ids", metavar="ID", action="append", help=f"{what}: a,b or repeated."
    )


def _level(parser: _Parser) -> None:
    """How finely ldb traces are cut (probe trace, probe dataset build)."""
    parser.add_argument(
        "--level",
        choices=("block", "line", "function"),
        default="block",
        help="ldb: block, line or function [block].",
    )


def _table_format(parser: _Parser) -> None:
    """How rows are printed (probe query, probe dataset score)."""
    parser.add_argument(
        "-f",
        "--format",
        dest="fmt",
        choices=("table", "csv", "json"),
        default="table",
        help="table, csv or json [table].",
    )


def _report_settings(parser: _Parser) -> None:
    """The report settings, on `probe run` (its summary) and `probe report`: coverage.py's."""
    group = parser.add_argument_group("report settings (coverage.py's)")
    flag = {"action": "store_true", "default": None}
    group.add_argument("--show-missing", **flag, help="List the missed lines and arcs.")
    group.add_argument("--skip-covered", **flag, help="Leave out files that are fully covered.")
    group.add_argument("--skip-empty", **flag, help="Leave out files with no statements.")
    group.add_argument(
        "--sort",
        help="Order files by name, stmts, miss, branch, brpart or cover; -COLUMN: descending.",
    )
    group.add_argument(
        "--precision", type=_number(int, 0), help="Digits after the decimal point of percentages."
    )
    group.add_argument(
        "--fail-under",
        type=_number(float, 0, 100),
        help="Exit 2 when the total coverage is below this percent.",
    )


def _report_options(a: argparse.Namespace) -> dict[str, object]:
    names = ("show_missing", "skip_covered", "skip_empty", "sort", "precision", "fail_under")
    return {name: getattr(a, name) for name in names}


def _run_arguments(parser: _Parser) -> None:
    parser.usage = "probe run [OPTIONS] (PROGRAM | -m MODULE) [ARGS ...]"
    add = parser.add_argument
    add("-a", "--analysis", action="append", help="Analyses to run: a,b or repeated.")
    add("-m", dest="module", help="Run a library module as a script, like python -m.")
    add("--branch", action="store_true", default=None, help="Measure branch coverage too.")
    add("--source", action="append", help="Measure only code below these directories.")
    add("--include", action="append", help="Measure only files matching these globs.")
    add("--omit", action="append", help="Don't measure files matching these globs.")
    add("-q", "--quiet", action="store_true", help="Print no summary.")
    add("--instr", action="store_true", help="Wasm: cover every instruction, exactly.")
    add("--sites", action="append", help="trace: func:GLOB or an event class: a,b or repeated.")
    add("--counters", help="perf events counted over the run: instructions,task-clock,...")
    add(
        "--counters-backend",
        choices=("perf", "callgrind"),
        default="perf",
        help="perf (counters of the CPU, where it has them) or callgrind (exact instructions "
        "under valgrind, 20-50x slower) [perf].",
    )
    add("--env", action="append", help="Wasm: set K=V in the guest's environment.")
    add(
        "--dir",
        dest="dirs",
        action="append",
        help="Wasm: preopen HOST directory, as GUEST if HOST::GUEST.",
    )
    add("--invoke", help="Wasm: call this export with ARGS instead of _start.")
    add("--fuel", type=_number(int, 0), help="Wasm: stop after this much fuel.")
    add("--timeout", type=_number(float, 0), help="Wasm: stop after this many seconds.")
    add(
        "--max-steps",
        type=_number(int, 1),
        help="states: record at most this many steps [1,000,000].",
    )
    add(
        "--max-events",
        type=_number(int, 0),
        default=DEFAULT_MAX_EVENTS,
        help="Keep at most this many events (and steps); past it the program runs on "
        f"unrecorded and the run ends 'truncated' [{DEFAULT_MAX_EVENTS:,}].",
    )
    add(
        "--rate",
        type=_number(int, 1, 10_000),
        default=100,
        help="hotpaths: stack samples per second [100].",
    )
    add("--idle", action="store_true", help="hotpaths (Python): sample idle threads too.")
    add("--gil", action="store_true", help="hotpaths (Python): only threads holding the GIL.")
    add("--subprocesses", action="store_true", help="hotpaths (Python): sample child processes.")
    add("--native", action="store_true", help="hotpaths (Python): native frames of extensions.")
    _report_settings(parser)
    _db(parser)


def _program_apart(parser: _Parser, words: list[str]) -> tuple[list[str], list[str]]:
    """probe's own options, and the program with its words: everything from the script on,
    or after -m MODULE, is the program's, as python takes it (`probe run -m pytest -q`: -q
    is pytest's). An unknown option before the program is probe's mistake, said as one."""
    takes_value = _takes_value(parser)
    i = 0
    while i < len(words):
        word = words[i]
        if word == "--":
            return words[:i], words[i + 1 :]
        if word == "-" or not word.startswith("-"):
            return words[:i], words[i:]
        if word == "-m":
            return words[: i + 2], words[i + 2 :]
        if word.startswith("-m") and not word.startswith("--"):  # -mpkg
            return words[: i + 1], words[i + 1 :]
        name = word.split("=", 1)[0]
        if name not in takes_value and not takes_value.get(word[:2]):  # -acoverage
            raise UsageError(_no_such_option(parser, word))
        i += 2 if takes_value.get(name) and "=" not in word else 1
    return words, []


@_command("run", _run_arguments)
def run(a: argparse.Namespace) -> int:
    """Run a program with probes and record what they see.

    probe run app.py ARGS, probe run -m pkg ARGS, probe run app.wasm -- ARGS
    """
    from probe import config, recording
    from probe.engines import target_from_command
    from probe.probes import Scope

    if a.counters_backend == "callgrind":  # this very command, inside valgrind
        from probe.engines.perf import callgrind

        callgrind.relaunch(sys.argv[1:], list(_split([a.counters])) if a.counters else [])
    target = target_from_command(
        a.program,
        a.module,
        env=a.env or (),
        dirs=a.dirs or (),
        invoke=a.invoke,
        fuel=a.fuel,
        timeout=a.timeout,
    )
    settings = config.load().with_options(
        {
            "branch": a.branch,
            "source": _split(a.source),
            "include": _split(a.include),
            "omit": _split(a.omit),
            **_report_options(a),
        }
    )
    scope = Scope(
        source=settings["source"],
        include=settings["include"],
        omit=settings["omit"],
        exclude=settings.exclusions(),
        partial=settings["partial_branches"],
    )
    flags = ("idle", "gil", "subprocesses", "native")
    _, outcome = recording.run(
        target,
        _split(a.analysis) or ["coverage"],
        db=a.db,
        scope=scope,
        options={
            "branch": settings["branch"],
            **settings.report_options(),
            "instr": a.instr,
            **({"sites": list(_split(a.sites))} if a.sites else {}),
            **({"max_steps": a.max_steps} if a.max_steps else {}),
            **({"rate": a.rate} if a.rate != 100 else {}),
            **{flag: True for flag in flags if getattr(a, flag)},
        },
        summary=None if a.quiet else sys.stderr,
        counters=_split([a.counters]) if a.counters else (),
        counters_backend=a.counters_backend,
        max_events=a.max_events,
    )
    return outcome.exit_code


def _report_arguments(parser: _Parser) -> None:
    parser.add_argument(
        "analysis",
        nargs="?",
        default="coverage",
        metavar="ANALYSIS",
        help="Which analysis to report [coverage].",
    )
    parser.add_argument(
        "-f",
        "--format",
        dest="fmt",
        metavar="FORMAT",
        default="text",
        help="text, json, jsonl, lcov, xml, coverage-data, dot, collapsed, speedscope, html, "
        "perfetto, chrome-json, ldb, semcoder, traced or codeexecutor: as the analysis "
        "writes them [text].",
    )
    parser.add_argument(
        "--level",
        choices=("block", "line", "function"),
        help="states as ldb: block, line or function [block].",
    )
    parser.add_argument(
        "--run",
        dest="run_id",
        metavar="ID",
        help="Run id [default: the latest run with the analysis].",
    )
    parser.add_argument("-o", dest="output", metavar="PATH", help="Write to this file, not stdout.")
    _report_settings(parser)
    _db(parser)


@_command("report", _report_arguments)
def report(a: argparse.Namespace) -> int:
    """Report a recorded run (coverage: with the project's report settings, as coverage.py's
    report; below --fail-under, exit status 2)."""
    from probe import config
    from probe.analyses import load
    from probe.storage import Database

    settings = config.load().with_options(_report_options(a))
    with Database(a.db) as database:
        chosen = database.run_for(a.analysis, a.run_id)
        options = {"level": a.level} if a.level else {}
        reporter = load(a.analysis)(**options, **settings.report_options())
        text = reporter.report(database, chosen, a.fmt)
        run = database.run(chosen)
        _emit(text, a.output)  # in the block: a streamed format reads the database as it goes
    # which run this is, beside the report (its stdout stays the format's own)
    print(
        f"probe: {a.analysis} of run {chosen} ({run['target']}, {run['status']})", file=sys.stderr
    )
    failure = reporter.failure()
    if failure:
        print(f"probe: {failure}", file=sys.stderr)
        return 2
    return 0


def _erase_arguments(parser: _Parser) -> None:
    _run_ids(parser, "Erase this run (and the runs inside it)")
    _db(parser)


@_command("erase", _erase_arguments)
def erase(a: argparse.Namespace) -> None:
    """Erase recorded runs, every run by default: their rows in every table and their event
    files (what `DELETE FROM runs` would leave behind)."""
    from probe.storage import Database

    with Database(a.db, write=True) as database:
        everything = [r for (r,) in database.execute("SELECT run_id FROM runs").fetchall()]
        gone = database.erase(list(_split(a.run_ids)) or everything)
    print(f"probe: erased {len(gone)} run{'s' if len(gone) != 1 else ''}", file=sys.stderr)


def _combine_arguments(parser: _Parser) -> None:
    parser.add_argument(
        "databases",
        nargs="*",
        metavar="DATABASE",
        help="Other probe databases (CI jobs', test workers'): runs to combine.",
    )
    _run_ids(parser, "Runs of this database to combine")
    _db(parser)


@_command("combine", _combine_arguments)
def combine(a: argparse.Namespace) -> None:
    """Combine runs into one, as coverage.py's combine: the union of their sites, their
    counts added; `probe report` then shows it (the latest run)."""
    from probe.storage import Database

    with Database(a.db, must_exist=False, write=True) as database:
        new = database.combine(list(_split(a.run_ids)), a.databases)
    print(f"probe: combined into run {new}", file=sys.stderr)


@_command("config")
def config_command(a: argparse.Namespace) -> None:
    """The settings in force here, and where each comes from: probe.toml, [tool.probe] in
    pyproject.toml, coverage.py's configuration (.coveragerc, setup.cfg, tox.ini,
    [tool.coverage] in pyproject.toml), or the default."""
    from probe import config

    _emit(config.describe(config.load()), None)


def _trace_arguments(parser: _Parser) -> None:
    add = parser.add_argument
    add("path", metavar="PATH", help="The Python file: run as a module, unrecorded.")
    add("--call", required=True, help="The call to trace, a Python expression: 'f([1, 2])'.")
    add(
        "-f",
        "--format",
        dest="fmt",
        metavar="FORMAT",
        default="ldb",
        help="ldb, semcoder, traced, codeexecutor, jsonl or text [ldb].",
    )
    _level(parser)
    add(
        "--max-steps",
        type=_number(int, 1),
        default=100_000,
        help="Record at most this many steps [100,000].",
    )
    add(
        "--timeout",
        type=_number(float, 0),
        default=10.0,
        help="Stop the call after this many seconds [10].",
    )
    add("-o", dest="output", metavar="PATH", help="Write to this file, not stdout.")


@_command("trace", _trace_arguments)
def trace_command(a: argparse.Namespace) -> None:
    """Trace the states of one call, in a format code LLMs are trained on.

    Runs PATH as a module, then evaluates --call with the states of everything in PATH it
    runs recorded, and prints them. Exits 0 whether or not the call raised: the trace says.
    """
    from probe import recording
    from probe.analyses.states import States, StateTrace
    from probe.reports import check, render

    analysis = States(level=a.level, max_steps=a.max_steps)
    check(analysis, StateTrace, a.fmt)
    result = recording.trace_call(
        a.path, a.call, max_steps=a.max_steps, timeout=a.timeout, level=a.level
    )
    _emit(render(analysis, result, a.fmt), a.output)


def _query_arguments(parser: _Parser) -> None:
    parser.add_argument(
        "sql",
        metavar="SQL",
        help="SQL over runs, sites, counts, events and the analyses' views (-: stdin).",
    )
    _table_format(parser)
    _db(parser)


@_command("query", _query_arguments)
def query(a: argparse.Namespace) -> None:
    """Run SQL against the recorded data (views: call_edges, memory_sites, trace, ...), or
    over files (read_parquet('traces/**/*.parquet')) where nothing is recorded yet."""
    _show(sys.stdin.read() if a.sql == "-" else a.sql, a.fmt, a.db, files_only=True)


@_command("runs", _db)
def runs(a: argparse.Namespace) -> None:
    """List the recorded runs."""
    _show(
        "SELECT run_id, started_at::TIMESTAMP(0) AS started, engine, status, exit_code, "
        "round(wall_s, 3) AS wall_s, analyses, target FROM runs ORDER BY started_at, run_id",
        "table",
        a.db,
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


def _export_arguments(parser: _Parser) -> None:
    parser.add_argument("directory", metavar="DIRECTORY", help="Directory to write the files into.")
    parser.add_argument(
        "-f",
        "--format",
        dest="fmt",
        choices=("parquet",),
        default="parquet",
        help="parquet.",
    )
    _db(parser)


@_command("export", _export_arguments)
def export(a: argparse.Namespace) -> None:
    """Export every table, one file per table."""
    from probe.storage import Database

    with Database(a.db) as database:
        for path in database.export_parquet(a.directory):
            print(path)


def _build_arguments(parser: _Parser) -> None:
    add = parser.add_argument
    add(
        "sources",
        nargs="+",
        metavar="SOURCE",
        help="Data sets: HumanEval, MBPP or plain JSONL (.gz).",
    )
    add("--out", required=True, help="Directory the records go into.")
    add(
        "-f",
        "--format",
        dest="fmt",
        metavar="FORMAT",
        default="ldb,semcoder,traced",
        help="ldb, semcoder, traced, codeexecutor, jsonl: a,b [ldb,semcoder,traced].",
    )
    add("--workers", type=_number(int, 0), default=0, help="Worker processes [the CPUs].")
    add(
        "--timeout", type=_number(float, 0), default=10.0, help="Seconds per (program, input) [10]."
    )
    add(
        "--memory",
        type=_number(int, 0),
        default=1024,
        help="MiB of memory per (program, input) [1024].",
    )
    add(
        "--max-steps",
        type=_number(int, 1),
        default=10_000,
        help="Steps recorded per input [10,000].",
    )
    _level(parser)
    from probe.corpus.build import EFFICIENCY  # the one list; build says why one is refused

    add(
        "--efficiency",
        choices=EFFICIENCY,
        help="%(choices)s [perf where the CPU counts, else time].",
    )
    add("--resume", action="store_true", help="Go on with a build in --out.")
    add("--ray", help="Run on a Ray cluster: auto or its address.")


@_command("dataset build", _build_arguments)
def dataset_build(a: argparse.Namespace) -> None:
    """Trace every (program, input) of data sets, each isolated, into Parquet and JSONL."""
    from probe.corpus.build import Options, build

    options = Options(
        formats=_split([a.fmt]),
        workers=a.workers or os.cpu_count() or 1,
        timeout=a.timeout,
        memory=a.memory or None,
        max_steps=a.max_steps,
        level=a.level,
        efficiency=a.efficiency,
        resume=a.resume,
        ray=a.ray,
    )
    summary = build(a.sources, a.out, options)
    print(summary.text(), file=sys.stderr)


def _score_arguments(parser: _Parser) -> None:
    parser.add_argument("candidate", metavar="CANDIDATE", help="A build of the solutions to score.")
    parser.add_argument(
        "--reference",
        action="append",
        required=True,
        help="A build of reference solutions; repeat.",
    )
    _table_format(parser)


@_command("dataset score", _score_arguments)
def dataset_score(a: argparse.Namespace) -> None:
    """EvalPerf's DPS and DPS_norm of a build's solutions against reference builds."""
    from probe.corpus.score import score
    from probe.reports.query import render

    scores = score(a.candidate, a.reference)
    rows = [(s.task_id, s.cost, s.dps, s.dps_norm, s.references, s.clusters) for s in scores]
    scored = [s for s in scores if s.dps is not None]
    if scored:
        mean = sum(s.dps for s in scored) / len(scored)  # type: ignore[misc]
        norm = sum(s.dps_norm for s in scored) / len(scored)  # type: ignore[misc]
        rows.append(("mean", None, round(mean, 2), round(norm, 2), None, None))
    columns = ["task_id", "cost", "dps", "dps_norm", "references", "clusters"]
    _emit(render(columns, rows, a.fmt), None)


@_command("analyses")
def list_analyses(a: argparse.Namespace) -> None:
    """List the analyses: built in and installed."""
    from probe.analyses import available

    for name, cls in sorted(available().items()):
        print(f"{name:12} {cls.description}")


def _emit(text: str | bytes | dict[str, bytes] | Iterator[bytes], output: str | None) -> None:
    """A report to stdout or -o: text either way; a binary file (coverage.py's data) and a
    folder of files (coverage's HTML) only to -o; a stream of chunks (a timeline) either
    way, written as it comes."""
    if isinstance(text, Iterator):
        _stream(text, output)
        return
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


def _stream(chunks: Iterator[bytes], output: str | None) -> None:
    try:
        with open(output, "wb") if output else open(sys.stdout.fileno(), "wb", closefd=False) as f:
            for chunk in chunks:
                f.write(chunk)
    except OSError as e:
        raise UsageError(f"can't write {e.filename or output or 'stdout'}: {e.strerror}") from None


class _Version(argparse.Action):
    """--version, which reads probe's version only when asked for it."""

    def __init__(self, option_strings: list[str], dest: str, **kwargs: object) -> None:
        super().__init__(option_strings, dest, nargs=0, help="Print the version and exit.")

    def __call__(self, parser: argparse.ArgumentParser, *args: object) -> None:
        from importlib.metadata import version

        print(f"probe {version('dynprobe')} (Python {sys.version.split()[0]})")
        parser.exit()


class _Help(argparse.RawDescriptionHelpFormatter):
    """Help as typer wrote it before: "Usage:", the docstrings' own line breaks."""

    def __init__(self, prog: str, **options: Any) -> None:
        # argparse would ask shutil for the terminal's width, for every option it adds; shutil
        # brings bz2 and lzma (~3 ms of each run). os tells it as well.
        if options.get("width") is None:
            options["width"] = _columns() - 2
        super().__init__(prog, **options)

    def add_usage(self, usage, actions, groups, prefix=None):  # type: ignore[no-untyped-def]
        return super().add_usage(usage, actions, groups, "Usage: " if prefix is None else prefix)

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        import textwrap  # as argparse does: only help needs it

        first, _, rest = text.strip().partition("\n")
        return super()._fill_text(first + "\n" + textwrap.dedent(rest), width, indent)


@functools.cache
def _columns() -> int:
    try:
        return int(os.environ["COLUMNS"])
    except (KeyError, ValueError):
        pass
    try:
        return os.get_terminal_size(sys.__stdout__.fileno()).columns  # type: ignore[union-attr]
    except (AttributeError, OSError, ValueError):
        return 80


_GROUPS = {
    "dataset": "Execution traces of whole data sets, as training data (HumanEval, MBPP, JSONL)."
}


def _parsers(words: list[str]) -> tuple[_Parser, dict[str, _Parser]]:
    """The parser of ``probe``, and each command's by name ("run", "dataset build"). Where
    ``words`` name a command, only its parser is built (a run builds no other command's);
    otherwise every command's, without their options, for the list in the help."""
    named = {name for name in _COMMANDS if name.split()[0] in words}
    top = _Parser(
        prog="probe",
        description="Dynamic instrumentation and profiling for Python and WebAssembly, "
        "queried with SQL.",
        formatter_class=_Help,
        allow_abbrev=False,
    )
    top.add_argument("--version", action=_Version)
    top.set_defaults(command=None, parser=top)
    groups = {"": top.add_subparsers(metavar="COMMAND", title="commands")}
    parsers: dict[str, _Parser] = {}
    for name, (fn, arguments) in _COMMANDS.items():
        if named and name not in named:
            continue
        group, _, last = name.rpartition(" ")
        if group not in groups:
            holder = _subparser(groups[""], group, _GROUPS[group])
            holder.set_defaults(command=None, parser=holder)
            groups[group] = holder.add_subparsers(metavar="COMMAND", title="commands")
        parsers[name] = _subparser(groups[group], last, fn.__doc__ or "")
        parsers[name].set_defaults(command=fn)
        if named:
            arguments(parsers[name])
    return top, parsers


def _subparser(group: argparse._SubParsersAction, name: str, doc: str) -> _Parser:
    return group.add_parser(
        name,
        help=" ".join(doc.split("\n\n")[0].split()),
        description=doc,
        formatter_class=_Help,
        allow_abbrev=False,
    )


def _main(words: list[str]) -> int:
    top, parsers = _parsers(words[:1])
    program: list[str] = []
    if words[:1] == ["run"]:
        own, program = _program_apart(parsers["run"], words[1:])
        words = ["run", *own]
    a = top.parse_args(words)
    if a.command is None:  # `probe`, `probe dataset`: which commands there are
        a.parser.print_help()
        return 2
    a.program = program
    return a.command(a) or 0


def main(argv: list[str] | None = None) -> None:
    """``probe ARGS``: exits 2 on bad input (a one-line error), 3 on a bug of probe's."""
    from probe.errors import ProbeError

    words = sys.argv[1:] if argv is None else argv
    try:
        status = _main(words)
    except ProbeError as e:
        print(f"probe: error: {e.args[0] if e.args else e}", file=sys.stderr)
        status = 2
    except BrokenPipeError:
        sys.stderr.close()
        status = 1
    except KeyboardInterrupt:
        status = 130
    except Exception as e:
        if os.environ.get("PROBE_DEBUG"):
            raise
        # a bug in probe: one line, PROBE_DEBUG=1 for the rest
        print(
            f"probe: internal error: {type(e).__name__}: {e} (PROBE_DEBUG=1 shows where)",
            file=sys.stderr,
        )
        status = 3
    sys.exit(status)
