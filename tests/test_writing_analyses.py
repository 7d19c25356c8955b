"""docs/writing-analyses.md: its analysis, taken from the page, installed as a plugin, run."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import pytest
from conftest import INTERPRETERS, PROGRAMS, REPO, run_probe, version_of


@pytest.mark.parametrize("python", INTERPRETERS, ids=version_of)
def test_the_pages_analysis_works_on_python(python: str, plugin, tmp_path: Path) -> None:
    shutil.copy(PROGRAMS / "calls.py", tmp_path)
    listed = run_probe(python, "analyses", cwd=tmp_path, env=plugin)
    assert "slowcalls" in listed.stdout
    out = run_probe(
        python,
        "run",
        "-q",
        "-a",
        "slowcalls",
        "-a",
        "coverage",
        "calls.py",
        cwd=tmp_path,
        env=plugin,
    )
    assert out.returncode == 0, out.stderr
    report = run_probe(python, "report", "slowcalls", cwd=tmp_path, env=plugin)
    assert report.returncode == 0, report.stderr
    rows = {line.split()[0]: line.split()[1:] for line in report.stdout.splitlines()[1:]}
    assert rows["fib"][0] == "465"  # every call of fib, timed
    assert "risky" in rows and rows["risky"][0] == "4"  # risky(3) raised: not a return
    calls = run_probe(
        python,
        "query",
        "-f",
        "csv",
        "SELECT count(*) FROM slow_calls WHERE func = 'main'",
        cwd=tmp_path,
        env=plugin,
    )
    assert calls.stdout.splitlines()[1] == "1"


def test_the_pages_analysis_works_on_wasm(plugin, tmp_path: Path) -> None:
    shutil.copy(REPO / "samples" / "wasm" / "calc.wasm", tmp_path)
    out = run_probe(
        sys.executable,
        "run",
        "-q",
        "-a",
        "slowcalls",
        "calc.wasm",
        "--",
        "8",
        cwd=tmp_path,
        env=plugin,
    )
    assert out.returncode == 0, out.stderr
    report = run_probe(sys.executable, "report", "slowcalls", cwd=tmp_path, env=plugin)
    rows = {line.split()[0]: line.split()[1:] for line in report.stdout.splitlines()[1:]}
    assert rows["fib"][0] == "987"  # clang turned half of fib(15)'s calls into a loop
    assert os.path.exists(tmp_path / ".probe" / "probe.duckdb")
