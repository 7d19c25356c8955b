"""A project configured for coverage.py gets the same run and the same report from probe,
unchanged: its settings are read from where coverage.py reads them, probe's own tables
take precedence, the command line over all; the text report is coverage.py's, byte for byte,
under every report option."""

from __future__ import annotations

import re
import subprocess
import textwrap
from pathlib import Path

import pytest
from conftest import INTERPRETERS, run_probe

PY = INTERPRETERS[0]

MAIN = """\
import sys
from pkg import full, part

full.run()
part.pick(len(sys.argv) > 1)
for n in range(12):
    part.pick(n > 10)
"""
FULL = """\
def run():
    total = 0
    for i in range(3):
        total += i
    return total
"""
PART = """\
def pick(flag):
    if flag:
        return "yes"
    if flag is None:
        raise ValueError("never")
    return "no"


def unused():
    return 1
"""


def _project(where: Path) -> Path:
    (where / "pkg").mkdir()
    (where / "pkg" / "__init__.py").write_text("")
    (where / "pkg" / "full.py").write_text(FULL)
    (where / "pkg" / "part.py").write_text(PART)
    (where / "main.py").write_text(MAIN)
    return where


@pytest.fixture
def project(tmp_path: Path) -> Path:
    return _project(tmp_path)


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The project run once with branch coverage by probe and by coverage.py."""
    where = _project(tmp_path_factory.mktemp("recorded"))
    assert run_probe(PY, "run", "-q", "--branch", "main.py", cwd=where).returncode == 0
    assert _coverage(where, "run", "--branch", "main.py").returncode == 0
    return where


def _coverage(where: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [PY, "-m", "coverage", *args], cwd=where, capture_output=True, text=True, timeout=120
    )


CONFIGS = {
    "pyproject.toml": """\
        [tool.coverage.run]
        branch = true
        [tool.coverage.report]
        show_missing = true
        fail_under = 95
        """,
    ".coveragerc": """\
        [run]
        branch = True
        [report]
        show_missing = True
        fail_under = 95
        """,
    "setup.cfg": """\
        [metadata]
        name = demo
        [coverage:run]
        branch = 1
        [coverage:report]
        show_missing = yes
        fail_under = 95
        """,
    "tox.ini": """\
        [tox]
        envlist = py312
        [coverage:run]
        branch = on
        [coverage:report]
        show_missing = true
        fail_under = 95
        """,
}


@pytest.mark.parametrize("name", CONFIGS)
def test_coverage_settings_are_taken_where_coveragepy_finds_them(project: Path, name: str) -> None:
    (project / name).write_text(textwrap.dedent(CONFIGS[name]))
    ran = run_probe(PY, "run", "main.py", cwd=project)
    assert ran.returncode == 2, ran.stderr  # below fail_under: coverage.py's exit status
    assert "Branch" in ran.stderr and "Missing" in ran.stderr
    failure = [ln for ln in ran.stderr.splitlines() if "Coverage failure" in ln]
    assert _coverage(project, "run", "main.py").returncode == 0
    theirs = _coverage(project, "report")
    assert theirs.returncode == 2
    assert failure == [f"probe: {theirs.stdout.splitlines()[-1]}"]
    ours = run_probe(PY, "report", cwd=project)
    assert ours.returncode == 2
    assert ours.stdout == theirs.stdout.rsplit("\n", 2)[0] + "\n"  # less the failure line
    shown = run_probe(PY, "config", cwd=project).stdout
    origin = f"{name} [tool.coverage]" if name == "pyproject.toml" else name
    assert f"[{origin}]" in next(ln for ln in shown.splitlines() if ln.startswith("branch"))
    assert "[default]" in next(ln for ln in shown.splitlines() if ln.startswith("omit"))


@pytest.mark.parametrize(
    "options",
    [
        [],
        ["--show-missing"],
        ["--skip-covered"],
        ["--skip-empty", "--show-missing"],
        ["--sort=-cover"],
        ["--sort=miss", "--precision=1"],
        ["--sort=brpart", "--precision=3", "--skip-covered"],
        ["--sort=-name"],
    ],
    ids=lambda o: " ".join(o) or "default",
)
def test_the_text_report_is_coveragepys(recorded: Path, options: list[str]) -> None:
    theirs = _coverage(recorded, "report", *options)
    ours = run_probe(PY, "report", *options, cwd=recorded)
    assert theirs.returncode == ours.returncode == 0, ours.stderr
    assert ours.stdout == theirs.stdout
    assert ours.stderr.startswith("probe: coverage of run ")  # which run it shows


def test_precedence_command_line_then_probe_then_coverage(project: Path) -> None:
    (project / ".coveragerc").write_text("[run]\nbranch = true\nomit = */full.py\n")
    (project / "pyproject.toml").write_text('[tool.probe]\nbranch = false\nsort = "-cover"\n')
    shown = run_probe(PY, "config", cwd=project).stdout
    lines = {ln.split()[0]: ln for ln in shown.splitlines()}
    assert "false" in lines["branch"] and "[pyproject.toml [tool.probe]]" in lines["branch"]
    assert "*/full.py" in lines["omit"] and "[.coveragerc]" in lines["omit"]
    (project / "probe.toml").write_text("branch = true\n")
    lines = {ln.split()[0]: ln for ln in run_probe(PY, "config", cwd=project).stdout.splitlines()}
    assert "true" in lines["branch"] and "[probe.toml]" in lines["branch"]
    ran = run_probe(PY, "run", "--omit", "*/part.py", "main.py", cwd=project)
    assert ran.returncode == 0, ran.stderr
    assert "Branch" in ran.stderr and "part.py" not in ran.stderr and "full.py" in ran.stderr


def test_fail_under_on_a_quiet_run_and_a_passing_one(project: Path) -> None:
    quiet = run_probe(PY, "run", "-q", "--fail-under", "99.5", "main.py", cwd=project)
    assert quiet.returncode == 2
    assert quiet.stderr.splitlines() == [
        "probe: Coverage failure: total of 89.5 is less than fail-under=99.5"
    ]
    passing = run_probe(PY, "run", "-q", "--fail-under", "80", "main.py", cwd=project)
    assert (passing.returncode, passing.stderr) == (0, "")


@pytest.mark.parametrize(
    ("file", "text", "said"),
    [
        ("pyproject.toml", "[tool.probe]\nbrnach = true\n", "[tool.probe]: no setting brnach"),
        ("probe.toml", 'exclude_also = ["(unclosed"]\n', "exclude_also: bad regex '(unclosed'"),
        ("probe.toml", 'precision = "two"\n', "precision: not a int"),
        ("probe.toml", 'sort = "size"\n', "sort: not a str: size (one of name"),
        (".coveragerc", "[run\nbranch = 1\n", ".coveragerc: File contains no section headers"),
        ("pyproject.toml", "[tool.probe\n", "pyproject.toml: Expected ']'"),
    ],
    ids=["unknown", "regex", "int", "sort", "ini", "toml"],
)
def test_a_bad_setting_is_one_line(project: Path, file: str, text: str, said: str) -> None:
    (project / file).write_text(text)
    for command in (["run", "main.py"], ["config"]):
        out = run_probe(PY, *command, cwd=project)
        assert out.returncode == 2, out.stderr
        assert len(out.stderr.splitlines()) == 1 and said in out.stderr, out.stderr


def test_a_projects_exclusions_give_coveragepys_numbers(project: Path) -> None:
    """exclude_also (a regex of the project's, here one spanning two lines) and
    partial_branches from the project's configuration: the same JSON as coverage.py's."""
    import json

    (project / "pkg" / "part.py").write_text(
        PART.replace('raise ValueError("never")', 'raise ValueError("never")  # unreachable')
        + "\n\nif __name__ == '__main__':\n    unused()\n"
    )
    (project / "pyproject.toml").write_text(
        "[tool.coverage.run]\nbranch = true\n[tool.coverage.report]\n"
        "exclude_also = ['# unreachable', 'def unused\\(\\):\\n\\s+return']\n"
        "partial_branches = ['if flag:']\n"
    )
    assert run_probe(PY, "run", "-q", "main.py", cwd=project).returncode == 0
    ours = json.loads(run_probe(PY, "report", "-f", "json", cwd=project).stdout)
    assert _coverage(project, "run", "main.py").returncode == 0
    assert _coverage(project, "json", "-o", "c.json").returncode == 0
    theirs = json.loads((project / "c.json").read_text())
    keep = ("executed_lines", "missing_lines", "excluded_lines", "missing_branches")
    for name, f in theirs["files"].items():
        assert {k: ours["files"][name][k] for k in keep} == {k: f[k] for k in keep}, name
    assert ours["files"]["pkg/part.py"]["excluded_lines"] == [5, 9, 10]
    assert ours["totals"]["percent_covered"] == pytest.approx(theirs["totals"]["percent_covered"])


def test_coverage_reads_probes_data_file(project: Path) -> None:
    """`--format coverage-data` is coverage.py's own data file: coverage report gives probe's
    table, coverage json probe's numbers, and coverage combine merges two runs' files."""
    import json

    assert run_probe(PY, "run", "-q", "--branch", "main.py", cwd=project).returncode == 0
    made = run_probe(PY, "report", "-f", "coverage-data", "-o", ".coverage.one", cwd=project)
    assert made.returncode == 0, made.stderr
    theirs = _coverage(project, "report", "-m", "--data-file=.coverage.one")
    ours = run_probe(PY, "report", "--show-missing", cwd=project)
    assert theirs.returncode == 0 and theirs.stdout == ours.stdout
    assert _coverage(project, "json", "--data-file=.coverage.one", "-o", "c.json").returncode == 0
    mine = json.loads(run_probe(PY, "report", "-f", "json", cwd=project).stdout)
    keep = ("executed_lines", "missing_lines", "executed_branches", "missing_branches")
    for name, f in json.loads((project / "c.json").read_text())["files"].items():
        assert {k: f[k] for k in keep} == {k: mine["files"][name][k] for k in keep}, name
    # a second run that takes the other way: combined, line 3 and the arc 2->3 are covered
    assert run_probe(PY, "run", "-q", "--branch", "main.py", "x", cwd=project).returncode == 0
    run_probe(PY, "report", "-f", "coverage-data", "-o", ".coverage.two", cwd=project)
    assert _coverage(project, "combine", ".coverage.one", ".coverage.two").returncode == 0
    both = _coverage(project, "report", "-m", "--include=pkg/part.py")
    assert re.search(r"^pkg/part\.py\s+8\s+2\s+4\s+1\s+75%\s+5, 10$", both.stdout, re.M), both
    stdout = run_probe(PY, "report", "-f", "coverage-data", cwd=project)
    assert stdout.returncode == 2 and "give -o PATH" in stdout.stderr


def test_per_test_contexts_reach_coverages_data(tmp_path: Path) -> None:
    (tmp_path / "lib.py").write_text("def f(x):\n    if x:\n        return 1\n    return 2\n")
    (tmp_path / "test_lib.py").write_text(
        "from lib import f\n\ndef test_yes():\n    assert f(1) == 1\n\n"
        "def test_no():\n    assert f(0) == 2\n"
    )
    done = subprocess.run(
        [PY, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--probe", "coverage"],
        cwd=tmp_path, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert run_probe(PY, "report", "-f", "coverage-data", "-o", ".coverage", cwd=tmp_path)
    out = _coverage(tmp_path, "json", "--show-contexts", "-o", "c.json")
    assert out.returncode == 0, out.stderr
    import json

    contexts = json.loads((tmp_path / "c.json").read_text())["files"]["lib.py"]["contexts"]
    assert contexts["3"] == ["test_lib.py::test_yes"]
    assert contexts["4"] == ["test_lib.py::test_no"]


def test_the_html_report_in_a_real_browser(project: Path) -> None:
    """coverage.py's HTML pages of probe's run, in headless chromium: no console error, no
    network, the run named in the title, the totals the database's, missed lines marked,
    the index sorted by a click."""
    import json

    from browser import page

    assert run_probe(PY, "run", "-q", "--branch", "main.py", cwd=project).returncode == 0
    made = run_probe(PY, "report", "-f", "html", "-o", "htmlcov", cwd=project)
    assert made.returncode == 0, made.stderr
    totals = json.loads(run_probe(PY, "report", "-f", "json", cwd=project).stdout)["totals"]
    run_id = made.stderr.split("coverage of run ")[1].split()[0]
    with page(project / "htmlcov" / "index.html") as (tab, errors):
        assert tab.title() == f"Coverage of run {run_id}"
        assert tab.locator(".pc_cov").first.inner_text() == f"{totals['percent_covered_display']}%"
        rows = tab.locator("tbody tr")
        names = [rows.nth(i).locator("td").first.inner_text() for i in range(rows.count())]
        assert "pkg/part.py" in names and "main.py" in names
        tab.locator("th#coverage").click()  # sorted by total coverage, ascending
        first = tab.locator("tbody tr").first.locator("td").first.inner_text()
        assert first == "pkg/part.py", first
        tab.locator("a", has_text="pkg/part.py").first.click()
        missed = tab.locator("p.mis")
        assert [missed.nth(i).locator(".n").inner_text() for i in range(missed.count())] == [
            "5",
            "10",
        ]
        assert tab.locator("p.par").count() == 1  # `if flag is None:` took one way only
        assert errors == []


def test_combine_runs_of_two_jobs_as_coveragepy_combines(tmp_path: Path) -> None:
    """Two CI jobs' databases, each a run that took one way of a branch: combined, both
    ways are covered, and the table is coverage.py's for its own combined data."""
    (tmp_path / "app.py").write_text(
        "import sys\n\ndef f(x):\n    if x:\n        return 'yes'\n    return 'no'\n\n"
        "print(f(len(sys.argv) > 1))\n"
    )
    for job, args in (("one", ["x"]), ("two", [])):
        db = str(tmp_path / job / "p.duckdb")
        ran = run_probe(PY, "run", "-q", "--branch", "--db", db, "app.py", *args, cwd=tmp_path)
        assert ran.returncode == 0, ran.stderr
        assert _coverage(tmp_path, "run", "--branch", "-p", "app.py", *args).returncode == 0
    one, two = str(tmp_path / "one" / "p.duckdb"), str(tmp_path / "two" / "p.duckdb")
    made = run_probe(PY, "combine", one, two, cwd=tmp_path)
    assert made.returncode == 0 and made.stderr.startswith("probe: combined into run "), made
    assert _coverage(tmp_path, "combine").returncode == 0
    theirs = _coverage(tmp_path, "report", "-m")
    ours = run_probe(PY, "report", "--show-missing", cwd=tmp_path)
    assert ours.stdout == theirs.stdout and "100%" in ours.stdout, ours.stdout
    again = run_probe(PY, "combine", "--run", "nosuch,other", cwd=tmp_path)
    assert again.returncode == 2 and "no run 'nosuch'" in again.stderr
    mixed = tmp_path / "mixed.duckdb"
    run_probe(PY, "run", "-q", "--db", str(mixed), "app.py", cwd=tmp_path)
    third = str(tmp_path / "third.duckdb")
    refused = run_probe(PY, "combine", "--db", third, one, str(mixed), cwd=tmp_path)
    assert refused.returncode == 2 and "with branch coverage and runs without" in refused.stderr
    left = run_probe(
        PY, "query", "--db", third, "-f", "csv", "SELECT count(*) FROM sites", cwd=tmp_path
    )
    assert left.stdout.split()[1:] == ["0"]  # the runs copied in for it are gone again
