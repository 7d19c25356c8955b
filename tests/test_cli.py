"""The command line: help, reports in every format, and one-line errors for bad input."""

from __future__ import annotations

import json
import sys
import xml.etree.ElementTree as ET

import pytest
from conftest import run_probe


@pytest.mark.parametrize("command", ["", "run", "report", "query", "runs", "export", "analyses"])
def test_help(command: str, tmp_path) -> None:
    args = [command, "--help"] if command else ["--help"]
    got = run_probe(sys.executable, *args, cwd=tmp_path)
    assert got.returncode == 0
    assert "Usage" in got.stdout and len(got.stdout) > 200


def _one_line_error(got, *words: str) -> None:
    assert got.returncode == 2, got.stderr
    assert "Traceback" not in got.stderr
    assert got.stderr.startswith("probe: error:") and got.stderr.count("\n") == 1, got.stderr
    for w in words:
        assert w in got.stderr


def test_bad_input_is_one_line(workdir) -> None:
    _one_line_error(run_probe(sys.executable, "run", "nope.py", cwd=workdir), "nope.py")
    (workdir / "broken.py").write_text("x = 1\nif x\n    pass\n")
    _one_line_error(run_probe(sys.executable, "run", "broken.py", cwd=workdir), "broken.py:2")
    _one_line_error(
        run_probe(sys.executable, "run", "-a", "nosuch", "helper.py", cwd=workdir),
        "nosuch",
        "coverage",
    )
    _one_line_error(run_probe(sys.executable, "run", "-m", "no.such.mod", cwd=workdir), "no.such")
    _one_line_error(run_probe(sys.executable, "run", cwd=workdir), "nothing to run")
    _one_line_error(run_probe(sys.executable, "run", "shapes", cwd=workdir), "directory")
    (workdir / "nul.py").write_bytes(b"x = 1\0\n")
    _one_line_error(run_probe(sys.executable, "run", "nul.py", cwd=workdir), "nul.py")
    # None of those bad runs left a run behind.
    _one_line_error(run_probe(sys.executable, "runs", cwd=workdir), "no database")


def test_bad_report_requests(workdir) -> None:
    run_probe(sys.executable, "run", "-q", "helper.py", cwd=workdir)
    _one_line_error(run_probe(sys.executable, "report", "--format", "pdf", cwd=workdir), "pdf")
    _one_line_error(run_probe(sys.executable, "report", "nosuch", cwd=workdir), "nosuch")
    for analysis in ("coverage", "calls", "hotness"):
        _one_line_error(
            run_probe(sys.executable, "report", analysis, "--run", "bogus", cwd=workdir), "bogus"
        )
    _one_line_error(run_probe(sys.executable, "export", "--format", "csv", "out", cwd=workdir))


def test_reports_in_every_format(workdir, tmp_path) -> None:
    assert (
        run_probe(sys.executable, "run", "-q", "--branch", "app.py", "you", cwd=workdir).returncode
        == 0
    )
    text = run_probe(sys.executable, "report", cwd=workdir).stdout
    assert text.splitlines()[0].split() == ["Name", "Stmts", "Miss", "Branch", "BrPart", "Cover"]
    text = run_probe(sys.executable, "report", "--show-missing", cwd=workdir).stdout
    assert text.splitlines()[0].split()[-2:] == ["Cover", "Missing"]
    assert "helper.py" in text and "TOTAL" in text

    doc = json.loads(run_probe(sys.executable, "report", "-f", "json", cwd=workdir).stdout)
    helper = doc["files"]["helper.py"]
    assert helper["executed_lines"] == [1, 2, 4, 7] and helper["missing_lines"] == [3, 8, 9, 10]
    assert helper["executed_branches"] == [[2, 4]]
    assert helper["missing_branches"] == [[2, 3], [8, 9], [8, 10]]

    lcov = run_probe(sys.executable, "report", "-f", "lcov", cwd=workdir).stdout
    record = lcov.split("SF:helper.py\n")[1].split("end_of_record")[0]
    assert "DA:3,0" in record and "DA:2,1" in record
    assert "BRDA:2,0,0,0" in record and "BRDA:2,0,1,1" in record and "BRDA:8,0,0,-" in record
    assert "LF:8" in record and "LH:4" in record and "BRF:4" in record and "BRH:1" in record

    out = tmp_path / "cov.xml"
    assert (
        run_probe(sys.executable, "report", "-f", "xml", "-o", str(out), cwd=workdir).returncode
        == 0
    )
    root = ET.parse(out).getroot()
    assert (
        root.tag == "coverage" and int(root.get("lines-valid")) == doc["totals"]["num_statements"]
    )
    cls = root.find(".//class[@filename='helper.py']")
    line2 = cls.find("lines/line[@number='2']")
    assert line2.get("branch") == "true" and line2.get("condition-coverage") == "50% (1/2)"


def test_summary_at_exit_goes_to_stderr(workdir) -> None:
    got = run_probe(sys.executable, "run", "helper.py", cwd=workdir)
    assert got.stdout == ""
    assert "helper.py" in got.stderr and "TOTAL" in got.stderr


def test_analyses_lists_the_builtin_ones(tmp_path) -> None:
    got = run_probe(sys.executable, "analyses", cwd=tmp_path)
    names = [line.split()[0] for line in got.stdout.splitlines()]
    assert got.returncode == 0 and {"coverage", "hotness", "branches"} <= set(names)
