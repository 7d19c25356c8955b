"""probe's line and branch coverage equals coverage.py's on real programs, on every Python here."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest
from conftest import INTERPRETERS, coveragepy_json, run_probe, version_of

PROGRAMS = [
    ["control.py"],
    ["control.py", "x"],
    ["errors.py"],
    ["functional.py"],
    ["threads.py"],
    ["app.py", "you"],
    ["-m", "shapes", "circle"],
    ["crash.py"],
    ["edge.py"],
    ["exclusions.py"],
    ["oneliners.py"],
    # pytest compiles the test module (its assertion rewriter); probe is kept out of it here
    ["-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:probe", "check_branchy.py"],
]


# Programs about what is a statement and what is excluded: their branch runs check their lines.
BRANCH_ONLY = {"exclusions.py", "oneliners.py", "-m"}


def _files(doc: dict) -> dict:
    keep = (
        "executed_lines",
        "missing_lines",
        "excluded_lines",
        "executed_branches",
        "missing_branches",
    )
    return {name: {k: f.get(k) for k in keep} for name, f in doc["files"].items()}


@pytest.mark.parametrize("python", INTERPRETERS, ids=version_of)
@pytest.mark.parametrize(
    ("args", "branch"),
    [(a, b) for a in PROGRAMS for b in (False, True) if b or a[0] not in BRANCH_ONLY],
    ids=lambda v: " ".join(v) if isinstance(v, list) else ("branch" if v else "line"),
)
def test_same_as_coveragepy(python: str, branch: bool, args: list[str], workdir) -> None:
    expected = coveragepy_json(python, args, workdir, branch)
    flags = ["--branch"] if branch else []
    ran = run_probe(python, "run", "-q", *flags, *args, cwd=workdir)
    assert "Traceback (most recent call last)" not in ran.stderr or args == ["crash.py"]
    rep = run_probe(python, "report", "--format", "json", cwd=workdir)
    assert rep.returncode == 0, rep.stderr
    got = json.loads(rep.stdout)
    assert _files(got) == _files(expected)
    assert got["totals"]["percent_covered"] == pytest.approx(expected["totals"]["percent_covered"])
    assert got["meta"]["branch_coverage"] is branch


@pytest.mark.parametrize("python", INTERPRETERS, ids=version_of)
def test_source_reports_files_that_never_ran(python: str, workdir) -> None:
    """With --source, every file below it is reported, run or not, with coverage.py's numbers."""
    expected = coveragepy_json(python, ["app.py"], workdir, True, flags=("--source=.",))
    run_probe(python, "run", "-q", "--branch", "--source", ".", "app.py", cwd=workdir)
    got = json.loads(run_probe(python, "report", "--format", "json", cwd=workdir).stdout)
    assert set(got["files"]) == set(expected["files"])
    assert _files(got) == _files(expected)


@pytest.mark.parametrize("args", [["exclusions.py"], ["app.py", "you"]], ids=" ".join)
def test_lcov_and_xml_are_coveragepys(args: list[str], workdir) -> None:
    """LCOV (with FN records, and arcs excused by `# pragma: no branch`) and Cobertura XML
    of a branch run: what coverage.py's own lcov and xml commands write, but for the time."""
    coveragepy_json(sys.executable, args, workdir, branch=True)
    data = f"--data-file={workdir / '.coverage-ref'}"
    for command, out in (("lcov", "ref.lcov"), ("xml", "ref.xml")):
        subprocess.run(
            [sys.executable, "-m", "coverage", command, data, "-o", out], cwd=workdir, check=True
        )
    assert run_probe(sys.executable, "run", "-q", "--branch", *args, cwd=workdir).returncode == 0
    lcov = run_probe(sys.executable, "report", "-f", "lcov", cwd=workdir)
    assert lcov.returncode == 0 and "FN:" in lcov.stdout
    assert lcov.stdout == (workdir / "ref.lcov").read_text()
    xml = run_probe(sys.executable, "report", "-f", "xml", cwd=workdir).stdout

    def timeless(text: str) -> str:
        return re.sub(r' timestamp="\d+"', "", text)

    assert timeless(xml) == timeless((workdir / "ref.xml").read_text())
