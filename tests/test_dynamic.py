"""Live probes: the Switchboard's guarantees on both engines, on every interpreter.

Each case runs tests/dynamic.py in a fresh interpreter (the engines run the program in
process). calc.wasm calls fib(15) (987 calls), calls.py calls fib(12) (465 calls).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import INTERPRETERS, version_of

DRIVER = Path(__file__).parent / "dynamic.py"
CASES = [("wasm", sys.executable, 987)] + [("python", py, 465) for py in INTERPRETERS]


def fired(engine: str, python: str, scenario: str, tmp_path: Path) -> dict[str, list]:
    out = subprocess.run(
        [python, str(DRIVER), engine, scenario],
        capture_output=True,
        text=True,
        timeout=300,
        env={"PROBE_CACHE": str(tmp_path), "PATH": "/usr/bin:/bin"},
    )
    assert out.returncode == 0, out.stderr[-2000:]
    return json.loads(out.stdout.rsplit("RESULT ", 1)[1])


def ids(case: tuple) -> str:
    return case[0] if case[0] == "wasm" else f"python{version_of(case[1])}"


@pytest.fixture(params=CASES, ids=[ids(c) for c in CASES])
def case(request):
    return request.param


def test_probes_at_one_site_fire_in_insertion_order(case, tmp_path) -> None:
    engine, python, calls = case
    order = fired(engine, python, "order", tmp_path)["order"]
    assert order.count("l1") == calls
    # Global g1, local l1 (fib only), global g2: at every function entry, in that order.
    rounds, current = [], []
    for name in order:
        if name == "g1" and current:
            rounds.append(current)
            current = []
        current.append(name)
    rounds.append(current)
    assert {tuple(r) for r in rounds} == {("g1", "l1", "g2"), ("g1", "g2")}


def test_a_probe_inserted_while_probes_fire_starts_at_the_next_execution(case, tmp_path) -> None:
    engine, python, calls = case
    seen = fired(engine, python, "insert", tmp_path)
    assert len(seen["first"]) == calls
    assert len(seen["later"]) == calls - 1  # not in the round that inserted it


def test_a_removal_takes_effect_at_once(case, tmp_path) -> None:
    engine, python, calls = case
    seen = fired(engine, python, "remove", tmp_path)
    assert len(seen["killer"]) == calls
    assert "victim" not in seen  # removed in the first round, before its turn came


def test_a_probe_can_remove_itself_after_its_first_hit(case, tmp_path) -> None:
    engine, python, _ = case
    assert fired(engine, python, "once", tmp_path) == {"once": [1]}


def test_detailed_probes_inserted_into_a_function_once_it_is_hot(case, tmp_path) -> None:
    engine, python, calls = case
    seen = fired(engine, python, "hot", tmp_path)
    assert seen["outcome"] == ["ok"]
    assert len(seen["entries"]) == calls
    first = min(seen["inner"])  # fib's entry block (Wasm) or first statement (Python)
    # Inserted during the 10th call's entry probe: its body is the next execution.
    assert seen["inner"].count(first) == calls - 9
