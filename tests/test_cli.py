"""The command line: help, reports in every format, and one-line errors for bad input."""

from __future__ import annotations

import json
import re
import sys
import xml.etree.ElementTree as ET

import pytest
from conftest import run_probe


@pytest.mark.parametrize(
    ("command", "words"),
    [
        ("", ["run", "report", "erase", "combine", "config", "trace", "query", "dataset"]),
        (
            "run",
            ["--branch", "--analysis", "-m MODULE", "--fail-under", "--db", "{perf,callgrind}"],
        ),
        ("report", ["--format", "--show-missing", "--run", "-o PATH"]),
        ("query", ["SQL", "{table,csv,json}"]),
        ("runs", ["List the recorded runs", "--db"]),
        ("export", ["DIRECTORY", "{parquet}"]),
        ("analyses", ["built in and installed"]),
        ("dataset", ["build", "score"]),
    ],
)
def test_help(command: str, words: list[str], tmp_path) -> None:
    """Each command's help names what it takes; the choices of an option are shown."""
    got = run_probe(sys.executable, *command.split(), "--help", cwd=tmp_path)
    assert got.returncode == 0 and got.stdout.startswith(f"Usage: probe {command}".rstrip())
    for word in words:
        assert word in got.stdout, word


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
    (workdir / "empty").mkdir()
    _one_line_error(
        run_probe(sys.executable, "run", "empty", cwd=workdir), "can't find '__main__' module"
    )
    _one_line_error(
        run_probe(sys.executable, "run", "--brnach", "helper.py", cwd=workdir),
        "no such option: --brnach (did you mean --branch?)",
    )
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
    assert "BRDA:2,0,jump to line 3,0" in record and "BRDA:2,0,jump to line 4,1" in record
    # FN's first line is coverage.py's choice (7.17 names the def line, 7.18 the body's)
    assert "BRDA:8,0,jump to line 9,-" in record and re.search(r"^FN:[12],4,greet$", record, re.M)
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


def test_the_program_s_words_are_its_own(workdir) -> None:
    """After -m MODULE (or the script) every word is the program's, as python takes it: -q
    here is the module's, and probe still prints its summary."""
    (workdir / "echo").mkdir()
    (workdir / "echo" / "__main__.py").write_text("import sys\nprint(sys.argv[1:])\n")
    for target in (["-m", "echo"], ["echo"]):
        got = run_probe(sys.executable, "run", *target, "-q", "--branch", cwd=workdir)
        assert got.returncode == 0, got.stderr
        assert got.stdout == "['-q', '--branch']\n" and "TOTAL" in got.stderr


def test_list_options_take_commas_version_and_stdin(workdir) -> None:
    got = run_probe(sys.executable, "run", "-a", "coverage,hotness", "helper.py", cwd=workdir)
    assert got.returncode == 0, got.stderr
    sql = "SELECT array_to_string(analyses, '+') AS a FROM runs"
    ran = run_probe(sys.executable, "query", "-f", "csv", sql, cwd=workdir)
    assert ran.stdout.split() == ["a", "coverage+hotness"], ran.stdout
    version = run_probe(sys.executable, "--version", cwd=workdir)
    assert version.returncode == 0 and version.stdout.startswith("probe 0.1.0 (Python 3.")
    rows = run_probe(
        sys.executable, "query", "-f", "csv", "-", cwd=workdir, input="SELECT 6 * 7 AS n"
    )
    assert rows.stdout.split() == ["n", "42"], rows.stderr


def test_a_filter_that_matches_nothing_is_said(workdir) -> None:
    got = run_probe(sys.executable, "run", "--source", "nosuch", "helper.py", cwd=workdir)
    assert got.returncode == 0
    assert f"probe: warning: --source {workdir / 'nosuch'}: no such directory" in got.stderr
    got = run_probe(sys.executable, "run", "--include", "*/zzz*", "helper.py", cwd=workdir)
    assert "probe: warning: --include */zzz*: no file that ran matches it" in got.stderr
    got = run_probe(sys.executable, "run", "--include", "*/help*", "helper.py", cwd=workdir)
    assert "warning" not in got.stderr and "helper.py" in got.stderr


def test_erase_leaves_no_row_of_a_run_behind(workdir) -> None:
    for args in (["-a", "coverage,calls", "--branch", "helper.py"], ["-a", "trace", "app.py"]):
        assert run_probe(sys.executable, "run", "-q", *args, cwd=workdir).returncode == 0
    first = run_probe(
        sys.executable, "query", "-f", "csv", "SELECT run_id FROM runs ORDER BY started_at",
        cwd=workdir,
    ).stdout.split()[1]  # fmt: skip
    _one_line_error(run_probe(sys.executable, "erase", "--run", "nosuch", cwd=workdir), "nosuch")
    gone = run_probe(sys.executable, "erase", "--run", first, cwd=workdir)
    assert gone.returncode == 0 and gone.stderr == "probe: erased 1 run\n"
    tables = "SELECT table_name FROM duckdb_columns() WHERE column_name = 'run_id' AND table_name "
    tables += "IN (SELECT table_name FROM duckdb_tables())"
    names = run_probe(sys.executable, "query", "-f", "csv", tables, cwd=workdir).stdout.split()[1:]
    assert {"runs", "sites", "counts", "events_rows"} <= set(names)
    left = " UNION ALL ".join(f"SELECT run_id FROM {t}" for t in names)
    rows = run_probe(
        sys.executable, "query", "-f", "csv", f"SELECT DISTINCT run_id FROM ({left})", cwd=workdir
    ).stdout.split()[1:]
    assert len(rows) == 1 and first not in rows
    assert run_probe(sys.executable, "erase", cwd=workdir).stderr == "probe: erased 1 run\n"
    empty = run_probe(sys.executable, "query", "-f", "csv", left, cwd=workdir).stdout.split()
    assert empty == ["run_id"]
