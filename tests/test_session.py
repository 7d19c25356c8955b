"""Recording inside a program: probe.session, @probe.trace, probe.wasm.load, probe.measure.

The programs are real and run in their own interpreter (3.11, 3.12, 3.13), as a user's would.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import INTERPRETERS, PROGRAMS, REPO, SAMPLES, query, run_probe, version_of


def _perf_event_open_works() -> bool:
    from probe.engines.perf.region import Region

    try:
        region = Region(["task-clock"])
    except OSError:
        return False
    ok = not region.missing
    region.close()
    return ok


needs_perf_events = pytest.mark.skipif(
    not _perf_event_open_works(),
    reason="perf_event_open refuses software events here (perf_event_paranoid)",
)


def _python(python: str, code: str, cwd: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [python, "-c", code, *args], cwd=cwd, capture_output=True, text=True, timeout=300
    )


@pytest.fixture(scope="module", params=INTERPRETERS, ids=version_of)
def traced(request, tmp_path_factory) -> dict:
    """tests/programs/traced.py run once per interpreter: what its sessions recorded."""
    work = tmp_path_factory.mktemp("traced")
    shutil.copy(PROGRAMS / "traced.py", work)
    done = subprocess.run(
        [request.param, "traced.py", "out.json", "t.duckdb"],
        cwd=work,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    return json.loads((work / "out.json").read_text())


def test_idle_decorated_functions_just_run(traced: dict) -> None:
    assert traced["idle"] == [5, 24, [0, 3, 2], 9, 2]


def test_a_session_without_analyses_records_the_decorated_call_trees_only(traced: dict) -> None:
    gated = traced["gated"]
    assert gated["analyses"] == ["hotness", "calls"]  # what the decorators asked for
    # helper runs 24 times inside decorated calls: solve(5) on this thread and solve(4) on
    # three others, 4 steps of the generator, the coroutine, a method, a static method.
    assert gated["entries"] == {
        "Box.method": 1,
        "Box.static": 1,
        "fact": 5,  # recursive
        "helper": 24,
        "later": 1,
        "numbers": 1,
        "solve": 4,
    }
    assert gated["helper"] == {"20": 24, "21": 12, "22": 12}
    assert gated["untraced"] == {}  # untraced(6) ran outside every decorated call
    assert gated["contexts"] == {
        "__main__.solve": 17,
        "__main__.numbers": 4,
        "__main__.later": 1,
        "__main__.Box.method": 1,
        "__main__.Box.static": 1,
    }
    edges = {(a, b): n for a, b, n in gated["edges"]}
    assert edges[("solve", "helper")] == 17 and edges[("fact", "fact")] == 4
    assert edges[("numbers", "helper")] == 4


@needs_perf_events
def test_decorated_functions_are_counter_regions(traced: dict) -> None:
    # solve asked for task-clock: four outermost calls (one here, three on threads).
    assert traced["gated"]["counters"] == [["__main__.solve", "task-clock", 4, "ok", True]]


def test_sessions_nest_and_each_is_a_run(traced: dict) -> None:
    nested = traced["nested"]
    # outer: untraced(3) + untraced(2) inside the inner session + untraced(1) = 6 calls
    assert nested["outer"] == {"20": 6, "21": 2, "22": 4}
    assert nested["inner"] == {"20": 1, "21": 1, "22": 1}  # coverage: flags
    assert nested["runs"] == [True, True] and nested["inner_rows_only"]


def test_session_errors_are_one_line(traced: dict) -> None:
    assert traced["errors"] == [
        "UsageError: this session has not recorded yet: start() it first",
        "UsageError: this session is still recording: stop() it before querying",
        "StorageError: no table or view 'no_such_table' (tables: runs, sites, counts, "
        "counters, events, context_counts, steps, variables, samples, stacks, paths)",
    ]
    assert traced["start_stop"] == {"20": 1, "21": 1}
    assert traced["closed"] == "4"  # another process reads the database once it is let go


_SESSION_VS_RUN = """
import runpy, sys, probe
sys.argv = [sys.argv[1]]
with probe.session(["hotness", "branches"], db="session.duckdb", source=["."]):
    try:
        runpy.run_path(sys.argv[0], run_name="__main__")
    except SystemExit:
        pass
"""


@pytest.mark.parametrize("python", INTERPRETERS, ids=version_of)
@pytest.mark.parametrize(
    "program", ["control.py", "functional.py", "errors.py", "starts.py", "flows.py"]
)
def test_a_session_counts_what_probe_run_counts(python: str, program: str, workdir) -> None:
    """Session probes come from interpreter events, `probe run` compiles its own: same
    lines, same branch arcs; on 3.12+ the same counts too, though `probe run` counts a
    straight run of lines once and subtracts where exceptions left it (regions.py)."""
    done = run_probe(python, "run", "-q", "--db", "run.duckdb", "-a", "hotness", "-a", "branches",
                     program, cwd=workdir)  # fmt: skip
    assert done.returncode == 0, done.stderr
    done = _python(python, _SESSION_VS_RUN, workdir, program)
    assert done.returncode == 0, done.stderr
    sql = (
        "SELECT s.kind, s.line, s.target, c.count FROM counts c JOIN sites s "
        f"USING (run_id, site_id) WHERE s.kind IN ('line', 'branch') AND s.unit LIKE '%{program}'"
        " ORDER BY ALL"
    )
    run_probe(python, "runs", "--db", "run.duckdb", cwd=workdir)  # ingest
    ran, session = query(workdir / "run.duckdb", sql), query(workdir / "session.duckdb", sql)
    assert len(ran) > 40
    if program == "errors.py":
        # Arcs from events miss 43 -> 45 (`if flag:` false inside a with): the with's exit
        # is a line event of 42 between them. Lines, exceptions left mid-region, must agree.
        assert ("branch", 43, 45, 1) in ran and ("branch", 43, 45, 1) not in session
        ran.remove(("branch", 43, 45, 1))
    if program == "flows.py":
        # A line entered again by an exception handler: the end of `async for` (120), and
        # on 3.12 a throw() into `yield from` (18). probe counts the handler's line event;
        # sys.monitoring reports none there.
        extra = {120: 1} if version_of(python) != "(3, 12)" else {120: 1, 18: 1}
        for line, more in extra.items():
            k = next(i for i, r in enumerate(ran) if r[:3] == ("line", line, None))
            ran[k] = (*ran[k][:3], ran[k][3] - more)
    if version_of(python) == "(3, 11)":
        # 3.11's settrace reports resumed generators' lines differently from the bytecode
        # counts of `probe run`: the same lines and arcs ran, some counts differ.
        assert [r[:3] for r in session] == [r[:3] for r in ran]
    else:
        assert session == ran


_WASM = """
import sys, probe
fib_path = sys.argv[1]
plain = probe.wasm.load(fib_path)
assert plain.fib(10) == 55 and plain.exports() == ["fib", "fib_loop", "div"]
with probe.session(["hotness", "calls"], db="w.duckdb") as s:
    fib = probe.wasm.load(fib_path, counters=["task-clock"])
    assert fib.fib(15) == 610 and fib.fib_loop(15) == 610
    try:
        fib.div(1, 0)
    except probe.wasm.Trap as e:
        print("trap:", e)
    try:
        fib.nope
    except AttributeError as e:
        print("missing:", e)
wasm_run = s.run_ids[1]
print(s.query("SELECT status FROM runs WHERE run_id = ?", [wasm_run]).fetchall()[0][0])
print(s.query("SELECT sum(calls) FROM call_edges WHERE run_id = ?", [wasm_run]).fetchall()[0][0])
print(sorted(s.query("SELECT region, calls FROM counters WHERE event = 'task-clock'").fetchall()))
"""


def test_wasm_modules_load_and_record_inside_a_session(tmp_path: Path) -> None:
    done = _python(sys.executable, _WASM, tmp_path, str(SAMPLES / "wasm" / "fib.wat"))
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == "trap: div: wasm trap: integer divide by zero"
    assert lines[1].startswith("missing: fib.wat exports no function 'nope' (exports: fib,")
    assert lines[2] == "trap"  # the module's run remembers how it ended
    assert lines[3] == "1972"  # fib(15) makes 1,972 recursive calls, as `probe run` counts them
    fib = str(SAMPLES / "wasm" / "fib.wat")
    ref = run_probe(sys.executable, "run", "-q", "--db", "r.duckdb", "-a", "calls", fib,
                    "--invoke", "fib", "15", cwd=tmp_path)  # fmt: skip
    assert ref.returncode == 0, ref.stderr
    run_probe(sys.executable, "runs", "--db", "r.duckdb", cwd=tmp_path)
    assert query(tmp_path / "r.duckdb", "SELECT sum(calls) FROM call_edges") == [(1972,)]
    if _perf_event_open_works():
        assert lines[4] == str([("fib.wat:div", 1), ("fib.wat:fib", 1), ("fib.wat:fib_loop", 1)])


_MEASURE = """
import probe
def total(n):
    return sum(range(n))
found = probe.measure(total, [1000, (300000,)], repeat=4, warmup=2, counters=["task-clock"],
                      db="m.duckdb")
for m in found:
    print(m.input, m.event, m.status, len(m.samples), m.median > 0, m.spread is not None)
"""


@needs_perf_events
def test_measure_keeps_every_sample_per_function_and_input(tmp_path: Path) -> None:
    done = _python(sys.executable, _MEASURE, tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        "1000 task-clock ok 4 True True",
        "(300000,) task-clock ok 4 True True",
    ]
    rows = query(
        tmp_path / "m.duckdb",
        "SELECT region, input, count(*), min(sample), max(sample), median(value) FROM counters"
        " GROUP BY ALL ORDER BY 2",
    )
    assert [r[:5] for r in rows] == [
        ("__main__.total", "(300000,)", 4, 0, 3),  # the warm-up runs are not kept
        ("__main__.total", "1000", 4, 0, 3),
    ]
    assert rows[0][5] > 10 * rows[1][5]  # 300 times the work takes longer


_PROJECT_LIB = """
def classify(x):
    if x < 0:
        return "neg"
    if x == 0:
        return "zero"
    return "pos"


def busy(n):
    return sum(i * i for i in range(n))
"""

_PROJECT_TESTS = """
from lib import busy, classify


def test_neg():
    assert classify(-1) == "neg"


def test_pos():
    assert classify(5) == "pos"


def test_busy():
    assert busy(300000) > 0
"""


@pytest.mark.parametrize("python", INTERPRETERS, ids=version_of)
def test_pytest_plugin_records_which_tests_reach_which_line(python: str, tmp_path: Path) -> None:
    (tmp_path / "lib.py").write_text(_PROJECT_LIB)
    (tmp_path / "test_lib.py").write_text(_PROJECT_TESTS)
    counters = ["--probe-counters", "task-clock"] if _perf_event_open_works() else []
    done = subprocess.run(
        [python, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--probe", "coverage",
         "--probe-db", "t.duckdb", *counters],
        cwd=tmp_path, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert "probe: 3 tests recorded as run" in done.stdout
    rows = query(
        tmp_path / "t.duckdb",
        "SELECT s.line, list(DISTINCT c.context ORDER BY c.context) FROM context_counts c "
        "JOIN sites s USING (run_id, site_id) WHERE s.unit LIKE '%lib.py' AND s.kind = 'line' "
        "AND c.context IS NOT NULL AND s.unit NOT LIKE '%test_lib.py' GROUP BY 1 ORDER BY 1",
    )
    assert rows == [
        (3, ["test_lib.py::test_neg", "test_lib.py::test_pos"]),
        (4, ["test_lib.py::test_neg"]),
        (5, ["test_lib.py::test_pos"]),
        (7, ["test_lib.py::test_pos"]),
        (11, ["test_lib.py::test_busy"]),
    ]
    if counters:
        slowest = query(
            tmp_path / "t.duckdb",
            "SELECT region FROM counters WHERE event = 'task-clock' ORDER BY value DESC",
        )
        assert slowest[0] == ("test_lib.py::test_busy",) and len(slowest) == 3


def test_pytest_plugin_prints_the_coverage_table_and_fails_under(tmp_path: Path) -> None:
    """As pytest-cov: the table after the tests (the project's settings under the options),
    and a session that passes its tests but not --probe-fail-under fails."""
    (tmp_path / "lib.py").write_text(_PROJECT_LIB)
    (tmp_path / "test_lib.py").write_text(_PROJECT_TESTS)
    (tmp_path / ".coveragerc").write_text("[report]\nshow_missing = true\n")
    args = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--probe", "coverage"]
    done = subprocess.run(
        [*args, "--probe-branch", "--probe-fail-under", "95"],
        cwd=tmp_path, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 1, done.stdout + done.stderr
    assert "3 passed" in done.stdout and "coverage: platform linux, python 3." in done.stdout
    table = done.stdout.split("coverage: platform")[1]
    assert re.search(r"^lib\.py\s+8\s+1\s+4\s+1\s+83%\s+6$", table, re.M), table
    assert "FAIL Coverage failure: total of 89 is less than fail-under=95" in table
    done = subprocess.run(
        [*args, "--probe-fail-under", "80"],
        cwd=tmp_path, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert re.search(r"^lib\.py\s+8\s+1\s+88%\s+6$", done.stdout, re.M), done.stdout


def test_pytest_plugin_with_xdist_workers_reports_as_one_process(tmp_path: Path) -> None:
    """pytest -n 2: the workers' counts and per-test contexts are added to the session's run,
    so the table and the contexts are those of the same tests in one process; a Python
    subprocess a test starts is measured into it too."""
    (tmp_path / "lib.py").write_text(_PROJECT_LIB)
    (tmp_path / "test_lib.py").write_text(_PROJECT_TESTS)
    (tmp_path / "tool.py").write_text("import sys\nif len(sys.argv) > 1:\n    print('tool')\n")
    (tmp_path / "test_tool.py").write_text(
        "import subprocess, sys\n\n\ndef test_tool():\n"
        "    subprocess.run([sys.executable, 'tool.py', 'x'], check=True)\n"
    )
    python = INTERPRETERS[0]
    contexts = (
        "SELECT s.unit, s.line, list(DISTINCT c.context ORDER BY c.context) FROM context_counts c "
        "JOIN sites s USING (run_id, site_id) WHERE s.kind = 'line' AND c.context IS NOT NULL "
        "GROUP BY ALL ORDER BY ALL"
    )
    seen = []
    for workers in ([], ["-n", "2"]):
        db = f"t{len(workers)}.duckdb"
        done = subprocess.run(
            [python, "-m", "pytest", "-q", "-p", "no:cacheprovider", *workers, "--probe",
             "coverage", "--probe-branch", "--probe-show-missing", "--probe-db", db],
            cwd=tmp_path, capture_output=True, text=True, timeout=300,
        )  # fmt: skip
        assert done.returncode == 0, done.stdout + done.stderr
        assert "probe: 4 tests recorded as run" in done.stdout, done.stdout
        table = done.stdout.split("coverage: platform")[1].split("probe: ")[0]
        seen.append((table.split("\n", 1)[1], query(tmp_path / db, contexts)))
    assert seen[0] == seen[1]
    assert re.search(r"^tool\.py\s+3\s+0\s+2\s+1\s+80%\s+2->exit$", seen[0][0], re.M), seen
    assert len({c for r in seen[0][1] for c in r[2]}) == 4  # every test is a context


def test_pytest_plugin_bad_analysis_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "test_x.py").write_text("def test_x():\n    pass\n")
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--probe", "nope"],
        cwd=tmp_path, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 4  # pytest's usage error
    assert "--probe: " in done.stderr and "Traceback" not in done.stderr


_CALLGRIND = """
import probe
def total(n):
    return sum(range(n))
for m in probe.measure(total, [2000, 200000], repeat=2, warmup=1, counters=["instructions"]):
    print(m.input, m.status, int(m.median))
"""


@pytest.mark.skipif(shutil.which("valgrind") is None, reason="valgrind is not installed")
def test_callgrind_counts_exact_instructions(tmp_path: Path) -> None:
    (tmp_path / "m.py").write_text(_CALLGRIND)
    done = run_probe(sys.executable, "run", "--db", "c.duckdb", "--counters-backend",
                     "callgrind", "--counters", "instructions", "m.py", cwd=tmp_path,
                     timeout=600)  # fmt: skip
    assert done.returncode == 0, done.stderr
    small, big = (line.split() for line in done.stdout.splitlines())
    assert small[1] == big[1] == "ok"
    assert int(big[2]) > 50 * int(small[2]) > 0  # 100 times the loop
    run_probe(sys.executable, "runs", "--db", "c.duckdb", cwd=tmp_path)
    rows = query(
        tmp_path / "c.duckdb",
        "SELECT region, count(*), min(value) FROM counters WHERE event = 'instructions' "
        "GROUP BY 1 ORDER BY 1",
    )
    assert rows[0][0] == "__main__.total" and rows[0][1] == 4
    assert rows[1][0] == "run" and rows[1][2] > int(big[2])  # the whole run counts more


def test_callgrind_counts_instructions_only(tmp_path: Path) -> None:
    (tmp_path / "m.py").write_text("pass\n")
    done = run_probe(sys.executable, "run", "--counters-backend", "callgrind", "--counters",
                     "task-clock", "m.py", cwd=tmp_path, timeout=600)  # fmt: skip
    assert done.returncode == 2
    assert (
        done.stderr.strip()
        .splitlines()[-1]
        .endswith("callgrind counts instructions only: --counters instructions")
    )


_ENDINGS = """
import sys, probe
def work(n):
    return sum(range(n))
if sys.argv[1] == "never-stopped":
    probe.session("hotness", db="e.duckdb").start()
    work(10)
elif sys.argv[1] == "exit":
    with probe.session("hotness", db="e.duckdb"):
        work(10)
        sys.exit(3)
else:
    with probe.session("hotness", db="e.duckdb"):
        work(10)
        raise ValueError("bad input")
"""


@pytest.mark.parametrize("python", INTERPRETERS, ids=version_of)
def test_however_a_session_ends_its_run_is_saved(python: str, tmp_path: Path) -> None:
    (tmp_path / "endings.py").write_text(_ENDINGS)
    codes = [
        subprocess.run([python, "endings.py", how], cwd=tmp_path, capture_output=True).returncode
        for how in ("never-stopped", "exit", "raise")
    ]
    assert codes == [0, 3, 1]
    run_probe(python, "runs", "--db", "e.duckdb", cwd=tmp_path)
    rows = query(
        tmp_path / "e.duckdb",
        "SELECT status, exit_code, message, (SELECT count(*) FROM counts c JOIN sites s "
        "USING (run_id, site_id) WHERE c.run_id = r.run_id AND s.func = 'work') "
        "FROM runs r ORDER BY started_at",
    )
    assert rows == [
        ("ok", 0, "stopped at exit", 1),  # never stopped: saved as the program exits
        ("ok", 3, "exit(3)", 1),
        ("error", 1, "ValueError: bad input", 1),
    ]


_LOADS_WASM = """
import sys
import probe

calc = probe.wasm.load(sys.argv[1])
print(calc.fib(10))
"""


def test_a_run_started_inside_another_is_its_child(tmp_path: Path) -> None:
    # app.py under probe run loads a Wasm module: two runs, and the commands default to the
    # one the user started (its summary was the one printed), not the module's.
    (tmp_path / "app.py").write_text(_LOADS_WASM)
    fib = str(SAMPLES / "wasm" / "fib.wat")
    done = run_probe(sys.executable, "run", "-q", "app.py", fib, cwd=tmp_path)
    assert done.returncode == 0 and done.stdout.strip() == "55", done.stderr
    report = run_probe(sys.executable, "report", "coverage", "-f", "json", cwd=tmp_path)
    assert report.returncode == 0, report.stderr
    assert list(json.loads(report.stdout)["files"]) == ["app.py"]
    db = tmp_path / ".probe" / "probe.duckdb"
    runs = dict(query(db, "SELECT engine, parent FROM runs"))
    app_run = query(db, "SELECT run_id FROM runs WHERE engine = 'cpython'")[0][0]
    assert runs == {"cpython": None, "wasm": app_run}


_EACH_LINE = """
import sys
from probe.engines.cpython import rewrite
rewrite.MODES = ("points",)  # an increment at every line start: what flow counts must equal
from probe import recording
from probe.engines import target_from_command
recording.run(target_from_command(sys.argv[2:], None), ["hotness"], db=sys.argv[1], summary=None)
"""
_RICH = """
import io
from rich.console import Console
from rich.markdown import Markdown
from rich.table import Table
from rich.syntax import Syntax
c = Console(file=io.StringIO(), width=100)
t = Table("a", "b", "c")
for i in range(150):
    t.add_row(str(i), "x" * (i % 17), f"[bold]{i * i}[/]")
c.print(t)
c.print(Markdown(open("README.md").read()[:20000]))
c.print(Syntax(open("flow.py").read(), "python"))
"""


@pytest.mark.parametrize("python", INTERPRETERS, ids=version_of)
def test_flow_counts_are_an_increment_a_line(python: str, tmp_path: Path) -> None:
    """3.12+ counts from a few counters and flow conservation (flow.py) equal an increment
    at every line start, on a real package: rich and pygments rendering a table, Markdown and
    highlighted Python, copied here to be the program's own code (3,000+ lines run)."""
    if version_of(python) == "(3, 11)":
        pytest.skip("3.11 counts with an increment at every line start already")
    site = subprocess.run(
        [python, "-c", "import rich, pygments, os; print(os.path.dirname(rich.__path__[0]))"],
        capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    for package in ("rich", "pygments"):
        shutil.copytree(Path(site) / package, tmp_path / package)
    shutil.copy(REPO / "README.md", tmp_path)
    shutil.copy(REPO / "engines" / "cpython" / "flow.py", tmp_path)
    (tmp_path / "render.py").write_text(_RICH)
    same = {"PYTHONHASHSEED": "0"}  # str sets iterate alike: the two runs take the same paths
    done = run_probe(python, "run", "-q", "-a", "hotness", "--db", "flow.db", "render.py",
                     cwd=tmp_path, env=same, timeout=300)  # fmt: skip
    assert done.returncode == 0 and "not counted" not in done.stderr, done.stderr
    done = subprocess.run(
        [python, "-c", _EACH_LINE, "each.db", "render.py"],
        cwd=tmp_path, env={**os.environ, **same}, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    sql = (
        "SELECT s.unit, s.line, c.count FROM counts c JOIN sites s USING (run_id, site_id) "
        "WHERE s.kind = 'line' ORDER BY ALL"
    )
    for db in ("flow.db", "each.db"):
        run_probe(python, "runs", "--db", db, cwd=tmp_path)  # ingest
    flow, each = query(tmp_path / "flow.db", sql), query(tmp_path / "each.db", sql)
    assert len(each) > 3000
    assert [r for r in each if r not in flow] == []
    # `bytecode` can't rewrite one function of rich's repr.py with an increment at every line
    # start (its stack depth check fails); flow's placement it can: that one's lines are extra
    assert {r[0] for r in flow if r not in each} <= {str(tmp_path / "rich" / "repr.py")}
