"""The branches analysis: exact taken counts of every arm, on both engines."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest
from conftest import INTERPRETERS, run_probe, version_of

SAMPLES = Path(__file__).resolve().parents[1] / "samples" / "wasm"

LOOP = """\
for i in range(10):
    if i % 3 == 0:
        a = 1
    else:
        b = 2
"""


@pytest.mark.parametrize("python", INTERPRETERS, ids=version_of)
def test_python_arcs_are_counted(python: str, tmp_path: Path) -> None:
    (tmp_path / "loop.py").write_text(LOOP)
    assert run_probe(python, "run", "-q", "-a", "branches", "loop.py", cwd=tmp_path).returncode == 0
    got = json.loads(run_probe(python, "report", "branches", "-f", "json", cwd=tmp_path).stdout)
    arms = {(k.rsplit(":", 1)[1], a["target"]): a["count"] for k, v in got.items() for a in v}
    assert arms == {("1", 2): 10, ("1", -1): 1, ("2", 3): 4, ("2", 5): 6}


def test_wasm_arms_are_counted(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("PROBE_CACHE", str(tmp_path / "cache"))
    shutil.copy(SAMPLES / "switch.wat", tmp_path / "switch.wat")
    for x in ("0", "2", "2", "7", "40"):
        run_probe(
            sys.executable,
            "run",
            "-q",
            "-a",
            "branches",
            "--db",
            "b.duckdb",
            "switch.wat",
            "--invoke",
            "classify",
            x,
            cwd=tmp_path,
        )
    out = run_probe(
        sys.executable,
        "query",
        "--db",
        "b.duckdb",
        "--format",
        "json",
        'SELECT s."offset", s.target, sum(c.count) AS n FROM sites s JOIN counts c '
        "USING (run_id, site_id) WHERE s.kind = 'branch' GROUP BY ALL ORDER BY 1, 2",
        cwd=tmp_path,
    )
    rows = json.loads(out.stdout)
    table = [r["n"] for r in rows if r["offset"] == rows[0]["offset"]]
    assert sorted(table) == [1, 2, 2]  # br_table: index 0 once, 2 twice, default (7, 40) twice
    text = run_probe(sys.executable, "report", "branches", "--db", "b.duckdb", cwd=tmp_path)
    assert "branches:" in text.stdout and "classify" in text.stdout
