"""Processes a run starts are parts of it: multiprocessing workers (fork and spawn), Python
subprocesses and os.fork() children are measured into the run, as coverage.py measures them
with its multiprocessing support and ``patch = subprocess`` (and where it can't: a Pool ended
by terminate(), a forked child that calls os._exit)."""

from __future__ import annotations

import json
import re
import subprocess
import time
from pathlib import Path

import pytest
from conftest import INTERPRETERS, run_probe, version_of

PROGRAM = """\
import multiprocessing as mp
import os
import subprocess
import sys


def square(x):
    if x < 0:
        return None  # no process runs this line
    return x * x


def in_fork():
    return "forked"


def main():
    with mp.get_context("fork").Pool(2) as pool:  # its end terminates the workers
        print(sorted(pool.map(square, range(4))), flush=True)
    p = mp.get_context("spawn").Process(target=square, args=(3,))
    p.start()
    p.join()
    subprocess.run([sys.executable, "child.py", "big"], check=True)
    pid = os.fork()
    if pid == 0:
        print(in_fork(), flush=True)
        os._exit(0)
    os.waitpid(pid, 0)


if __name__ == "__main__":
    main()
"""

CHILD = """\
import sys

if sys.argv[1] == "big":
    print("child: big")
else:
    print("child: small")
"""


def _write(where: Path) -> None:
    (where / "procs.py").write_text(PROGRAM)
    (where / "child.py").write_text(CHILD)


def _line(source: str, text: str) -> int:
    return next(i for i, line in enumerate(source.splitlines(), 1) if text in line)


def _report(python: str, cwd: Path) -> dict:
    out = run_probe(python, "report", "coverage", "--format", "json", cwd=cwd)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)["files"]


@pytest.mark.parametrize("python", INTERPRETERS, ids=version_of)
def test_workers_subprocesses_and_forks_are_measured_into_the_run(
    python: str, tmp_path: Path
) -> None:
    _write(tmp_path)
    plain = subprocess.run([python, "procs.py"], cwd=tmp_path, capture_output=True, text=True)
    got = run_probe(python, "run", "-a", "coverage", "--branch", "procs.py", cwd=tmp_path)
    assert got.returncode == plain.returncode == 0, got.stderr
    assert got.stdout == plain.stdout == "[0, 1, 4, 9]\nchild: big\nforked\n"
    # one summary, the run's: no worker prints one of its own
    assert got.stderr.count("probe: run ") == 1, got.stderr
    # two pool workers, the spawned process, the subprocess, the forked child
    assert "(ok, with 5 of its processes)" in got.stderr, got.stderr
    files = _report(python, tmp_path)
    procs, child = files["procs.py"], files["child.py"]
    # only the line no process ran is missing: square ran in the workers only, in_fork in
    # the forked child only, child.py in the subprocess only
    assert procs["missing_lines"] == [_line(PROGRAM, "no process runs")], procs
    assert child["missing_lines"] == [_line(CHILD, "child: small")], child
    guard = _line(PROGRAM, "if x < 0")
    assert procs["missing_branches"] == [[guard, guard + 1]], procs
    # the summary showed the same numbers as the report (the parts were added before it)
    assert re.search(r"procs\.py +24 +1 +6 +1 +93%", got.stderr), got.stderr


def test_counts_add_up_across_processes(tmp_path: Path) -> None:
    """Hotness: a line that the parent and a forked child both run counts twice; a worker's
    lines count what the workers ran, not what the parent had run before the fork."""
    python = INTERPRETERS[0]
    _write(tmp_path)
    got = run_probe(python, "run", "-q", "-a", "hotness", "procs.py", cwd=tmp_path)
    assert got.returncode == 0, got.stderr
    out = run_probe(
        python,
        "query",
        "--format",
        "json",
        "SELECT s.line, c.count FROM sites s JOIN counts c USING (run_id, site_id) "
        "WHERE s.kind = 'line' AND s.unit LIKE '%procs.py'",
        cwd=tmp_path,
    )
    counts = {r["line"]: r["count"] for r in json.loads(out.stdout)}
    assert counts[_line(PROGRAM, "if pid == 0")] == 2  # the parent and the child
    assert counts[_line(PROGRAM, "return x * x")] == 5  # four by the pool, one spawned
    assert counts[_line(PROGRAM, "p.start()")] == 1  # the parent's alone
    assert counts[_line(PROGRAM, "def main")] == 2  # the spawned process imports it too


def test_coverage_equals_coveragepys_with_its_process_support(tmp_path: Path) -> None:
    """Where coverage.py measures every process (a Pool closed and joined, a subprocess), its
    numbers and probe's are the same. (It misses a spawned process's import of the main
    module: it starts measuring after it.)"""
    python = INTERPRETERS[0]
    main = PROGRAM.split("def main():")[1].split("\n\n")[0]
    source = PROGRAM.replace(
        main,
        "\n    pool = mp.get_context('fork').Pool(2)\n"
        "    print(sorted(pool.map(square, range(4))), flush=True)\n"
        "    pool.close()\n    pool.join()\n"
        "    subprocess.run([sys.executable, 'child.py', 'big'], check=True)",
    )
    (tmp_path / "procs.py").write_text(source)
    (tmp_path / "child.py").write_text(CHILD)
    (tmp_path / ".coveragerc").write_text(
        "[run]\nbranch = true\nparallel = true\nconcurrency = multiprocessing\npatch = subprocess\n"
    )
    ran = subprocess.run(
        [python, "-m", "coverage", "run", "procs.py"], cwd=tmp_path, capture_output=True
    )
    assert ran.returncode == 0, ran.stderr
    for verb in (["combine", "-q"], ["json", "-q", "-o", "ref.json"]):
        subprocess.run([python, "-m", "coverage", *verb], cwd=tmp_path, check=True)
    ref = json.loads((tmp_path / "ref.json").read_text())["files"]
    got = run_probe(python, "run", "-q", "procs.py", cwd=tmp_path)  # branch from .coveragerc
    assert got.returncode == 0, got.stderr
    files = _report(python, tmp_path)
    assert set(files) == set(ref) == {"procs.py", "child.py"}
    for name, theirs in ref.items():
        for key in ("executed_lines", "missing_lines", "executed_branches", "missing_branches"):
            assert files[name][key] == theirs[key], (name, key)


def test_a_subprocess_that_outlives_the_run_is_added_when_it_ends(tmp_path: Path) -> None:
    python = INTERPRETERS[0]
    (tmp_path / "starter.py").write_text(
        "import subprocess, sys\n"
        "late = subprocess.Popen([sys.executable, 'late.py'], stdout=subprocess.PIPE)\n"
        "print(late.stdout.readline().decode().strip())\n"
    )  # it ends once late.py has started, and before late.py ends
    (tmp_path / "late.py").write_text(
        "import time\nprint('started', flush=True)\ntime.sleep(1.5)\ndone = True\n"
    )
    got = run_probe(python, "run", "starter.py", cwd=tmp_path)
    assert got.returncode == 0, got.stderr
    assert "1 more still running, added when it ends" in got.stderr, got.stderr
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        files = _report(python, tmp_path)
        if files.get("late.py", {}).get("missing_lines") == []:
            break
        time.sleep(0.5)
    assert files["late.py"]["missing_lines"] == [], files
    assert files["starter.py"]["missing_lines"] == []
    runs = run_probe(python, "query", "--format", "json", "SELECT run_id FROM runs", cwd=tmp_path)
    assert len(json.loads(runs.stdout)) == 1  # the part is in the run, not a run of its own


def test_a_run_inside_the_run_is_its_own(tmp_path: Path) -> None:
    """A program that runs probe itself (a test suite of a tool built on probe): that probe
    records its own run; it is not also a part of the outer one."""
    python = INTERPRETERS[0]
    (tmp_path / "inner.py").write_text("print('inner')\n")
    (tmp_path / "outer.py").write_text(
        "import subprocess, sys\n"
        "subprocess.run([sys.executable, '-m', 'probe', 'run', '-q', '--db', 'inner.duckdb',"
        " 'inner.py'], check=True)\n"
    )
    got = run_probe(python, "run", "outer.py", cwd=tmp_path)
    assert got.returncode == 0, got.stderr
    assert "with" not in got.stderr.split("probe: run ")[1], got.stderr
    files = _report(python, tmp_path)
    assert set(files) == {"outer.py"}
    inner = run_probe(python, "report", "--db", "inner.duckdb", "-f", "json", cwd=tmp_path)
    assert set(json.loads(inner.stdout)["files"]) == {"inner.py"}


def test_a_killed_subprocess_is_said_in_the_runs_message(tmp_path: Path) -> None:
    """SIGKILL leaves a part nothing to save (parts take no snapshots): the run says so."""
    python = INTERPRETERS[0]
    (tmp_path / "app.py").write_text(
        "import signal, subprocess, sys\n"
        "p = subprocess.Popen([sys.executable, 'hang.py'], stdout=subprocess.PIPE)\n"
        "p.stdout.readline()\n"
        "p.send_signal(signal.SIGKILL)\np.wait()\n"
    )
    (tmp_path / "hang.py").write_text("import time\nprint('up', flush=True)\ntime.sleep(60)\n")
    got = run_probe(python, "run", "-q", "app.py", cwd=tmp_path)
    assert got.returncode == 0, got.stderr
    out = run_probe(python, "query", "--format", "json", "SELECT message FROM runs", cwd=tmp_path)
    [run] = json.loads(out.stdout)
    assert re.fullmatch(r"process \d+ it started was killed: its counts are lost", run["message"])


TERMINATED = """\
import multiprocessing as mp
import subprocess
import sys
import time


def square(x):
    return x * x


def wait(ready):
    ready.set() or time.sleep(60)  # one line: it has run when the parent hears of it


if __name__ == "__main__":
    for _ in range(10):  # each ends its workers at once, many before they ever ran
        with mp.get_context("fork").Pool(8) as pool:
            pool.map(square, [1])
    ready = mp.get_context("fork").Event()
    p = mp.get_context("fork").Process(target=wait, args=(ready,))
    p.start()
    ready.wait()
    p.terminate()
    p.join()
    child = subprocess.Popen(
        [sys.executable, "-c", "import time; print('up', flush=True); time.sleep(60)"],
        stdout=subprocess.PIPE,
    )
    child.stdout.readline()
    child.terminate()
    print(p.exitcode, child.wait())
"""


@pytest.mark.parametrize("python", INTERPRETERS, ids=version_of)
def test_sigterm_ends_workers_and_children_at_once_with_their_parts(
    python: str, tmp_path: Path
) -> None:
    """SIGTERM (Pool.terminate(), Process.terminate(), Popen.terminate()) ends a measured
    process as it ends a plain one: at once, with status -15, whenever it comes. A handler in
    Python alone lost it now and then (a worker ended before it ever ran, or about to wait on
    its queue), and the program hung in terminate(): 5 runs in 5 of this one did."""
    (tmp_path / "terminated.py").write_text(TERMINATED)
    got = run_probe(python, "run", "terminated.py", cwd=tmp_path, timeout=90)
    assert got.returncode == 0, got.stderr
    assert got.stdout == "-15 -15\n"
    # 80 pool workers, the process, the subprocess: each saved its part before it ended
    assert "(ok, with 82 of its processes)" in got.stderr, got.stderr
    lines = _report(python, tmp_path)["terminated.py"]
    assert lines["missing_lines"] == [], lines
