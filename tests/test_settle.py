"""Python 3.12: code that sys.monitoring instrumented gets its fast form back
(engines/cpython/settle.py), and every line that runs afterwards is still recorded."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from conftest import INTERPRETERS, run_probe, version_of

ON_312 = [p for p in INTERPRETERS if version_of(p) == "(3, 12)"]
pytestmark = pytest.mark.skipif(not ON_312, reason="settling is for Python 3.12 only")

# Phase 1 runs part of work() in loops (a comprehension's one-line loop among them), then
# waits for the settling thread; phase 2 runs work()'s other lines, each beside pairs of
# instructions 3.12 joins (LOAD_FAST LOAD_FAST, STORE_FAST LOAD_FAST, ...). At the end the
# program reports what its own bytecode looks like now.
PROGRAM = """\
import dis, sys, time


def work(n, other):
    total = 0
    for i in range(n):
        a = i
        b = a
        total = total + a * b
    squares = [k * k for k in range(n) if k % 3]
    if other:
        c = n
        d = c
        total = total + c + d
        e = [d for d in range(c)]
        total += len(e)
    return total + len(squares)


work(2000, False)
time.sleep(0.5)
ops = [i.opname for i in dis.get_instructions(work, adaptive=True)]
print(ops.count("LOAD_FAST__LOAD_FAST"), ops.count("INSTRUMENTED_LINE"))
work(5, True)
"""


def test_settled_code_is_fast_and_still_records_new_lines(tmp_path: Path) -> None:
    python = ON_312[0]
    (tmp_path / "app.py").write_text(PROGRAM)
    bare = subprocess.run([python, "app.py"], cwd=tmp_path, capture_output=True, text=True)
    supers_plain, _ = map(int, bare.stdout.split())
    assert supers_plain > 0  # 3.12 joins pairs when the code object is made

    out = run_probe(python, "run", "-q", "app.py", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    supers, pending = map(int, out.stdout.split())
    # instrumented (which undoes every pair), then given back where phase 1 ran
    assert 0 < supers <= supers_plain
    assert pending > 0  # phase 2's lines are still line points

    report = run_probe(python, "report", "coverage", "-f", "json", cwd=tmp_path)
    assert report.returncode == 0, report.stderr
    (app,) = json.loads(report.stdout)["files"].values()
    assert app["missing_lines"] == []  # phase 2's lines, recorded after the settling


# A tracer (as a debugger's sys.settrace, or coverage.py's C tracer) switched on after work()
# was settled: its line points are its own, and settling must leave them be.
TRACED = """\
import sys, time


def work(n):
    total = 0
    for i in range(n):
        a = i
        b = a
        total = total + a * b
    if n < 5:
        total += 1
    return total


seen = []


def tracer(frame, event, arg):
    if event == "line" and frame.f_code is work.__code__:
        seen.append(frame.f_lineno)
    return tracer


work(2000)
time.sleep(0.3)
sys.settrace(tracer)
work(3)  # `total += 1` runs first now: probe's line, and work() to settle again
time.sleep(0.3)
seen.clear()
work(3)
sys.settrace(None)
print(sorted(set(seen)))
"""


def test_a_tracer_switched_on_later_keeps_every_line_event(tmp_path: Path) -> None:
    python = ON_312[0]
    (tmp_path / "app.py").write_text(TRACED)
    bare = subprocess.run([python, "app.py"], cwd=tmp_path, capture_output=True, text=True)
    assert bare.returncode == 0, bare.stderr
    out = run_probe(python, "run", "-q", "app.py", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert out.stdout == bare.stdout
    assert json.loads(out.stdout) == [5, 6, 7, 8, 9, 10, 11, 12]
