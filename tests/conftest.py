"""Shared helpers: run probe and coverage.py as real subprocesses on real programs."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

# A suite started in the background by a non-interactive shell (`bash .ci/run &`) inherits
# SIGINT ignored, and passes that on to every program it starts, which then can't be
# stopped by Ctrl-C at all (as python or wasmtime can't): the tests that send SIGINT would
# hang. A handler of ours is reset to the default in the processes started from here.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)

HERE = Path(__file__).parent
PROGRAMS = HERE / "programs"
REPO = HERE.parent
SAMPLES = REPO / "samples"


def _interpreters() -> list[str]:
    """The interpreters to test on: PROBE_TEST_PYTHONS (the venvs .ci/run builds, one per
    Python version), else this one alone. Never the machine's interpreters as they happen to
    be: packages installed there by hand once hid a dependency missing from pyproject."""
    listed = os.environ.get("PROBE_TEST_PYTHONS", "").split()
    for python in listed:
        found = subprocess.run(
            [python, "-c", "import probe, duckdb, pyarrow, coverage"],
            capture_output=True,
            text=True,
        )
        if found.returncode != 0:
            last = (found.stderr.strip().splitlines() or ["no output"])[-1]
            raise pytest.UsageError(f"PROBE_TEST_PYTHONS: {python} can't import probe: {last}")
    return listed or [sys.executable]


INTERPRETERS = _interpreters()

# The tools the test dependencies install (wasm-tools, ruff) live beside this interpreter, in
# its venv: found there whether or not the venv was activated (.ci/run does not activate it).
os.environ["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), os.environ["PATH"]])


def version_of(python: str) -> str:
    out = subprocess.run(
        [python, "-c", "import sys; print(sys.version_info[:2])"], capture_output=True, text=True
    )
    return out.stdout.strip()


def run_probe(
    python: str,
    *args: str,
    cwd: Path,
    env: dict | None = None,
    input: str | None = None,
    timeout: float = 120,
) -> subprocess.CompletedProcess:
    full_env = {k: v for k, v in os.environ.items() if k != "PROBE_DB"}
    full_env.update(env or {})
    return subprocess.run(
        [python, "-m", "probe", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        env=full_env,
        input=input,
        timeout=timeout,
    )


def coveragepy_json(
    python: str, args: list[str], cwd: Path, branch: bool, flags: tuple[str, ...] = ()
) -> dict:
    data = cwd / ".coverage-ref"
    run = [python, "-m", "coverage", "run", f"--data-file={data}", *flags]
    if branch:
        run.append("--branch")
    subprocess.run([*run, *args], cwd=cwd, capture_output=True, text=True, timeout=120)
    out = cwd / "ref.json"
    subprocess.run(
        [python, "-m", "coverage", "json", f"--data-file={data}", "-o", str(out)],
        cwd=cwd,
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.read_text())


def probe_rows(python: str, sql: str, cwd: Path, env: dict | None = None) -> list[dict]:
    """The rows of ``sql`` as `probe query -f json` gives them (waiting for the ingest)."""
    out = run_probe(python, "query", "-f", "json", sql, cwd=cwd, env=env)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def query(db: Path, sql: str) -> list[tuple]:
    """Rows of ``sql`` read straight from a probe database with duckdb (as a user's tool would)."""
    import duckdb

    con = duckdb.connect(str(db), read_only=True)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


@pytest.fixture
def plugin(tmp_path: Path) -> dict[str, str]:
    """docs/writing-analyses.md's first Python block as module slowcalls, with an entry point:
    a plugin, installed as pip would (the environment to run probe with)."""
    page = (REPO / "docs" / "writing-analyses.md").read_text()
    code = re.search(r"```python\n(.*?)```", page, re.S).group(1)
    site = tmp_path / "site"
    (site / "slowcalls-0.1.dist-info").mkdir(parents=True)
    (site / "slowcalls.py").write_text(code)
    (site / "slowcalls-0.1.dist-info" / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: slowcalls\nVersion: 0.1\n"
    )
    (site / "slowcalls-0.1.dist-info" / "entry_points.txt").write_text(
        "[probe.analyses]\nslowcalls = slowcalls:SlowCalls\n"
    )
    return {"PYTHONPATH": str(site), "PROBE_CACHE": str(tmp_path / "cache")}


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    """A copy of the test programs to run in, so runs never touch the repository."""
    dest = tmp_path / "work"
    shutil.copytree(PROGRAMS, dest, ignore=shutil.ignore_patterns("__pycache__", ".probe*"))
    return dest


_SPEC_REPORTS: list[str] = []


@pytest.fixture
def spec_reports() -> list[str]:
    """Reports that the end of the test run prints (what passed, failed, was skipped and why)."""
    return _SPEC_REPORTS


def pytest_terminal_summary(terminalreporter) -> None:  # pytest hook
    for text in _SPEC_REPORTS:
        terminalreporter.write_line(text)
