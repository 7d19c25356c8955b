"""The package as users get it: a wheel in a fresh venv, its analyses registered, its own files
never measured as the user's, its code ruff-clean."""

from __future__ import annotations

import ast
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import INTERPRETERS, REPO, SAMPLES, query, run_probe, version_of


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """probe's wheel, built once from a copy of the repository (a build writes into its
    tree: not into the repository); pure Python, so one wheel serves every interpreter."""
    tmp = tmp_path_factory.mktemp("wheel")
    source = tmp / "source"
    shutil.copytree(
        REPO, source, ignore=shutil.ignore_patterns(".git", ".probe", "build", "*.egg-info")
    )
    wheels = tmp / "wheels"
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(wheels), str(source)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert built.returncode == 0, built.stderr
    [made] = wheels.glob("*.whl")
    return made


@pytest.mark.parametrize("python", INTERPRETERS, ids=version_of)
def test_a_wheel_installed_in_a_fresh_venv_runs_python_and_wasm(
    python: str, wheel: Path, tmp_path: Path
) -> None:
    # The package list in pyproject is kept by hand: a subpackage or data file it forgets is
    # missing from the wheel, which an editable install never shows; and a dependency
    # declared for some Python versions only fails on the others (bytecode once did).
    venv = tmp_path / "venv"
    subprocess.run([python, "-m", "venv", str(venv)], check=True, timeout=120)
    python = str(venv / "bin" / "python")
    installed = subprocess.run(
        [python, "-m", "pip", "install", "-q", "--disable-pip-version-check", str(wheel)],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert installed.returncode == 0, installed.stderr
    work = tmp_path / "work"
    work.mkdir()
    shutil.copy(SAMPLES / "python" / "wordfreq.py", work)
    shutil.copy(SAMPLES / "python" / "lighthouse.txt", work)
    shutil.copy(SAMPLES / "wasm" / "calc.wasm", work)
    env = {"PROBE_CACHE": str(tmp_path / "cache")}
    for args in (
        ["run", "-a", "hotness", "--branch", "wordfreq.py", "lighthouse.txt"],
        ["run", "-a", "calls", "-a", "trace", "calc.wasm", "--", "8"],
        ["report", "calls"],
        ["analyses"],
    ):
        done = run_probe(python, *args, cwd=work, env=env)
        assert done.returncode == 0, f"probe {' '.join(args)}: {done.stderr}"
        assert "Traceback" not in done.stderr
    assert "trace" in done.stdout and "memory" in done.stdout
    db = work / ".probe" / "probe.duckdb"
    assert query(db, "SELECT engine, status FROM runs ORDER BY started_at") == [
        ("cpython", "ok"),
        ("wasm", "ok"),
    ]
    # installed as users install it (no editable finder loading pathlib first)
    assert heavy_at_start(python, work) == []


def _analysis_classes() -> dict[str, str]:
    """Every Analysis subclass defined in analyses/, as entry-point values."""
    found = {}
    for path in sorted((REPO / "analyses").glob("*.py")):
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, ast.ClassDef) and any(
                isinstance(b, ast.Name) and b.id == "Analysis" for b in node.bases
            ):
                names = [
                    s.value.value
                    for s in node.body
                    if isinstance(s, ast.Assign)
                    and [t.id for t in s.targets if isinstance(t, ast.Name)] == ["name"]
                ]
                found[names[0]] = f"probe.analyses.{path.stem}:{node.name}"
    return found


# What a run must not import before the program starts (issue 14: `probe run` may cost 0.04 s
# over python): each of these cost it milliseconds once. `probe report` and the rest may.
HEAVY = (
    "typer", "click", "rich", "importlib.metadata", "importlib.abc", "dataclasses",
    "inspect", "subprocess", "shutil", "sysconfig", "difflib", "textwrap", "duckdb",
    "pyarrow", "numpy", "wasmtime", "coverage", "probe.engines.wasm.options",
    "probe.engines.cpython.states", "typing", "pathlib", "bytecode",
)  # fmt: skip

SHOW_MODULES = """
import json, sys
print(json.dumps(sorted(sys.modules)))
"""


def heavy_at_start(python: str, cwd: Path, *flags: str) -> list[str]:
    """HEAVY modules loaded when a run's program starts, but what the interpreter loads
    before any program (an editable install's finder brings pathlib). Not `bytecode`, and
    what it brings, on 3.11 either: line flags go into the code units (units.py)."""
    (cwd / "show.py").write_text(SHOW_MODULES)
    got = run_probe(python, "run", "-q", *flags, "show.py", cwd=cwd)
    assert got.returncode == 0, got.stderr
    loaded = set(json.loads(got.stdout))
    out = subprocess.run([python, "-c", SHOW_MODULES], capture_output=True, text=True, check=True)
    return sorted(set(HEAVY) & loaded - set(json.loads(out.stdout)))


@pytest.mark.parametrize("python", INTERPRETERS, ids=version_of)
@pytest.mark.parametrize("branch", [False, True], ids=["line", "branch"])
def test_a_run_imports_only_what_it_needs(python: str, branch: bool, tmp_path: Path) -> None:
    assert heavy_at_start(python, tmp_path, *(["--branch"] if branch else [])) == []


def test_every_built_in_analysis_is_named_and_loads() -> None:
    """Each Analysis subclass in analyses/ is in BUILT_IN (found without reading entry
    points), and load() gives that class."""
    from probe.analyses import BUILT_IN, load

    assert BUILT_IN == _analysis_classes()
    for name, where in BUILT_IN.items():
        cls = load(name)
        assert f"{cls.__module__}:{cls.__name__}" == where and cls.name == name


_IMPORTS_PROBE_LATER = """
import sys
import probe

with probe.session("coverage", db="s.duckdb") as s:
    import probe.cli.main  # a part of probe that no probe code had imported yet
    from probe.reports import query
    print(query.render(["a"], [(1,)], "csv").split()[0])
units = [u for (u,) in s.query("SELECT DISTINCT unit FROM sites").fetchall()]
print(sorted(units))
"""


def test_probes_own_files_are_never_measured_as_the_users(tmp_path: Path) -> None:
    (tmp_path / "app.py").write_text(_IMPORTS_PROBE_LATER)
    env = {k: v for k, v in os.environ.items() if k != "PROBE_DB"}
    done = subprocess.run(
        [sys.executable, "app.py"], cwd=tmp_path, capture_output=True, text=True, env=env
    )
    assert done.returncode == 0, done.stderr
    units = eval(done.stdout.splitlines()[-1])  # a list of paths, printed by the program
    assert units == [str(tmp_path / "app.py")], units


def test_the_code_is_ruff_clean() -> None:
    for args in (["check", "."], ["format", "--check", "."]):  # ruff: a test dependency
        done = subprocess.run(["ruff", *args], cwd=REPO, capture_output=True, text=True)
        assert done.returncode == 0, done.stdout + done.stderr


_WASM_RUN_THEN_SHOW = """
import json, runpy, sys
sys.argv = ["probe", "run", "-a", "coverage", "echo.wasm"]
try:
    runpy.run_module("probe", run_name="__main__")
except SystemExit:
    pass
print(json.dumps(sorted(sys.modules)), file=sys.stderr)
"""


@pytest.mark.parametrize("python", INTERPRETERS, ids=version_of)
def test_a_small_wasm_run_imports_no_numpy_pyarrow_duckdb_or_metadata(
    python: str, tmp_path: Path
) -> None:
    """A short Wasm run costs what it imports (issue 15, item 6): its sites and counts are
    journaled as JSON without numpy or pyarrow (~50 ms), its summary read without duckdb
    (which would bring pandas), and its compiled code named by the wasmtime version without
    importlib.metadata. What it journaled is all in the database afterwards."""
    shutil.copy(SAMPLES / "wasm" / "echo.wasm", tmp_path)
    env = {**os.environ, "PROBE_CACHE": str(tmp_path / "cache"), "PROBE_DB": str(tmp_path / "db")}
    done = subprocess.run(
        [python, "-c", _WASM_RUN_THEN_SHOW], cwd=tmp_path, capture_output=True, text=True, env=env
    )
    assert "TOTAL" in done.stderr  # the summary, from the run's own tables
    loaded = set(json.loads(done.stderr.strip().splitlines()[-1]))
    assert not {"numpy", "pyarrow", "pandas", "duckdb", "importlib.metadata"} & loaded
    sql = "SELECT count(*) FILTER (kind = 'block'), count(*) FILTER (count > 0) FROM sites "
    sql += "LEFT JOIN counts USING (run_id, site_id)"
    shown = subprocess.run(
        [python, "-m", "probe", "query", "-f", "csv", sql], capture_output=True, text=True, env=env
    )
    blocks, ran = map(int, shown.stdout.split()[-1].split(","))
    assert blocks > 1000 and 0 < ran < blocks, shown.stdout + shown.stderr
