"""`probe run` behaves like `python` for the program, and keeps what it saw however it ends."""

from __future__ import annotations

import ast
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import INTERPRETERS, run_probe, version_of


def _python(python: str, *args: str, cwd, input: str | None = None):
    return subprocess.run([python, *args], cwd=cwd, capture_output=True, text=True, input=input)


def _runs(python: str, cwd) -> list[dict]:
    out = run_probe(
        python,
        "query",
        "--format",
        "json",
        "SELECT * FROM runs ORDER BY started_at, run_id",
        cwd=cwd,
    )
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def _executed(python: str, cwd, unit_suffix: str) -> set[int]:
    out = run_probe(
        python,
        "query",
        "--format",
        "json",
        "SELECT s.line FROM sites s JOIN counts c USING (run_id, site_id) "
        "WHERE s.kind = 'line' AND s.unit LIKE '%' || "
        f"'{unit_suffix}' AND s.run_id = (SELECT max(run_id) FROM runs)",
        cwd=cwd,
    )
    assert out.returncode == 0, out.stderr
    return {r["line"] for r in json.loads(out.stdout)}


@pytest.mark.parametrize("python", INTERPRETERS, ids=version_of)
def test_streams_argv_and_main_match_python(python: str, workdir) -> None:
    want = _python(python, "io_echo.py", "a", "--flag", cwd=workdir, input="hello\n")
    got = run_probe(python, "run", "-q", "io_echo.py", "a", "--flag", cwd=workdir, input="hello\n")
    assert got.returncode == want.returncode == 0
    assert got.stdout == want.stdout
    assert got.stderr == want.stderr


@pytest.mark.parametrize("python", INTERPRETERS, ids=version_of)
def test_module_mode_matches_python_m(python: str, workdir) -> None:
    want = _python(python, "-m", "shapes", "circle", cwd=workdir)
    got = run_probe(python, "run", "-q", "-m", "shapes", "circle", cwd=workdir)
    assert (got.returncode, got.stdout) == (want.returncode, want.stdout) == (3, want.stdout)
    [run] = _runs(python, workdir)
    assert run["status"] == "ok" and run["exit_code"] == 3
    assert run["argv"] == ["-m", "shapes", "circle"]


def test_exit_code_passes_through(workdir) -> None:
    got = run_probe(sys.executable, "run", "-q", "crash.py", "exit", "7", cwd=workdir)
    assert got.returncode == 7
    assert got.stdout == "before\n"
    [run] = _runs(sys.executable, workdir)
    assert (run["status"], run["exit_code"]) == ("ok", 7)


@pytest.mark.parametrize("python", INTERPRETERS, ids=version_of)
def test_uncaught_exception_is_printed_as_python_prints_it(python: str, workdir) -> None:
    want = _python(python, "crash.py", cwd=workdir)
    got = run_probe(python, "run", "-q", "--branch", "crash.py", cwd=workdir)
    assert got.returncode == want.returncode == 1
    assert got.stderr == want.stderr  # same traceback: no probe frames, no marker lines
    [run] = _runs(python, workdir)
    assert run["status"] == "error"
    assert run["message"] == "ZeroDivisionError: division by zero"
    assert {4, 5, 8, 14} <= _executed(python, workdir, "crash.py")
    assert 15 not in _executed(python, workdir, "crash.py")


@pytest.mark.parametrize("python", INTERPRETERS, ids=version_of)
def test_os_exit_keeps_events(python: str, workdir) -> None:
    got = run_probe(python, "run", "-q", "crash.py", "hard", "5", cwd=workdir)
    assert got.returncode == 5
    [run] = _runs(python, workdir)
    assert (run["status"], run["exit_code"]) == ("ok", 5)
    assert {1, 8, 11, 12, 13} <= _executed(python, workdir, "crash.py")


def _start_forever(workdir) -> subprocess.Popen:
    # As from a terminal: a shell that starts a job in the background sets SIGINT to ignored,
    # and python (so probe) then never sees Ctrl-C; a user at a terminal does not have that.
    proc = subprocess.Popen(
        [sys.executable, "-m", "probe", "run", "-q", "forever.py"],
        cwd=workdir,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    assert proc.stdout.readline() == "started\n"
    time.sleep(0.3)
    return proc


@pytest.mark.parametrize(("sig", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_interrupt_and_terminate_keep_events(sig: int, code: int, workdir) -> None:
    proc = _start_forever(workdir)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == code
    if sig == signal.SIGINT:
        assert "KeyboardInterrupt" in err
    [run] = _runs(sys.executable, workdir)
    assert run["status"] == "killed"
    assert {1, 2, 4, 5, 6, 7, 8} <= _executed(sys.executable, workdir, "forever.py")


def test_killed_probe_leaves_a_killed_run(workdir) -> None:
    proc = _start_forever(workdir)
    proc.kill()
    proc.wait(timeout=30)
    [run] = _runs(sys.executable, workdir)
    assert run["status"] == "killed"
    assert "stopped before the run ended" in run["message"]


def test_probe_own_code_and_stdlib_are_not_measured(workdir) -> None:
    run_probe(sys.executable, "run", "-q", "app.py", cwd=workdir)
    out = run_probe(
        sys.executable, "query", "--format", "json", "SELECT DISTINCT unit FROM sites", cwd=workdir
    )
    units = {u["unit"].rsplit("/work/", 1)[-1] for u in json.loads(out.stdout)}
    assert units == {"app.py", "helper.py", "shapes/__init__.py", "shapes/geometry.py"}


def test_include_omit_and_source(workdir) -> None:
    def units(*flags: str) -> set[str]:
        run_probe(sys.executable, "run", "-q", *flags, "app.py", cwd=workdir)
        out = run_probe(sys.executable, "report", "--format", "json", cwd=workdir)
        return set(json.loads(out.stdout)["files"])

    assert units("--omit", "*/shapes/*") == {"app.py", "helper.py"}
    assert units("--include", "*help*") == {"helper.py"}
    assert units("--source", "shapes") == {
        "shapes/__init__.py",
        "shapes/__main__.py",
        "shapes/geometry.py",
    }


def test_an_internal_error_is_recorded_as_an_error_not_a_kill(workdir) -> None:
    # probe failing inside a run (here: a dependency it can't import, as on a machine where
    # pyproject once left `bytecode` out) is probe's error: exit 3, said as such, and the run
    # is recorded as 'error' with the cause, not as 'killed' by a writer that vanished.
    script = (
        "import sys; sys.modules['bytecode'] = None; from probe.cli import main; "
        "sys.argv = ['probe', 'run', '-a', 'hotness', 'app.py']; main()"
    )
    got = _python(sys.executable, "-c", script, cwd=workdir)
    assert got.returncode == 3, got.stderr
    assert got.stderr.startswith("probe: internal error: ModuleNotFoundError")
    [run] = _runs(sys.executable, workdir)
    assert run["status"] == "error", run
    assert run["message"].startswith("internal error: ModuleNotFoundError"), run


@pytest.mark.parametrize("python", INTERPRETERS, ids=version_of)
def test_a_program_that_forks_meets_no_thread_of_probes(python: str, tmp_path: Path) -> None:
    """probe's snapshot thread is stopped before a fork: 3.12+ warns of a fork with threads,
    and under probe a program must say what it says under python (here: nothing)."""
    # A forked multiprocessing.Process, then os.fork: python runs no thread of its own here
    # (a Pool's threads may still be ending at a later fork, and python warns of those).
    (tmp_path / "forks.py").write_text(
        "import multiprocessing as mp, os\n\n"
        "def sq(x):\n    print(x * x, flush=True)\n\n"
        "if __name__ == '__main__':\n"
        "    p = mp.get_context('fork').Process(target=sq, args=(7,))\n"
        "    p.start()\n    p.join()\n"
        "    pid = os.fork()\n    if pid == 0:\n        os._exit(0)\n    os.waitpid(pid, 0)\n"
        "    print(p.exitcode)\n"
    )
    plain = subprocess.run([python, "forks.py"], cwd=tmp_path, capture_output=True, text=True)
    got = run_probe(python, "run", "-q", "forks.py", cwd=tmp_path)
    said = [out.stderr for out in (plain, got)]
    assert (got.returncode, got.stdout) == (plain.returncode, plain.stdout) == (0, "49\n0\n")
    assert said[1] == said[0] == ""


@pytest.mark.parametrize("python", INTERPRETERS, ids=version_of)
def test_probes_threads_are_named_so_that_samples_leave_them_out(
    python: str, tmp_path: Path
) -> None:
    """Every thread probe runs in the program's process is named probe-*: the sampler
    (engines/cpython/sampler.py) leaves those out of the program's samples."""
    (tmp_path / "threads.py").write_text(
        "import threading, time\n"
        "for i in range(3):\n    time.sleep(0.1)\n"  # lines run: 3.12 settles them
        "print(sorted(t.name for t in threading.enumerate() if t is not threading.main_thread()))\n"
    )
    out = run_probe(python, "run", "-q", "threads.py", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    names = ast.literal_eval(out.stdout)
    assert names and all(n.startswith("probe-") for n in names), names
