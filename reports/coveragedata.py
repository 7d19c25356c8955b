"""coverage.py's data file (SQLite): what ``coverage report``, ``coverage html``, ``coverage
xml``, ``coverage combine``, diff-cover and CI services read. Written through coverage.py's own
``CoverageData``, so its schema is always the one the installed coverage.py reads.

Lines are stored as coverage.py stores them: in a branch run as arcs, from which coverage.py
derives the lines that ran. probe knows the lines that ran and the arcs of branch lines, so
each line that ran is also given an arc from outside the file (-1, line): coverage.py takes
lines from it, and leaves it out of every branch count (no such arc is possible there but the
module's entry, which did run). Per-test contexts, where the run recorded them, are kept:
each test's lines under its node id, what ran outside every test under "".

``reporting`` loads that file into coverage.py with the run's report settings, for coverage.py's
own reporters: probe's HTML, LCOV and XML of a Python run are coverage.py's, byte for byte the
format its users' tools read.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from functools import singledispatch
from typing import Any

from probe.analyses.coverage import FileCoverage, LineCoverage
from probe.errors import UsageError


@singledispatch
def render(result: object) -> bytes:
    raise NotImplementedError(type(result).__name__)


@render.register
def _(result: LineCoverage) -> bytes:
    try:
        from coverage import CoverageData
    except ImportError:
        raise UsageError(
            "the coverage-data format is written by coverage.py: pip install coverage"
        ) from None
    fd, path = tempfile.mkstemp(prefix="probe-", suffix=".coverage")
    os.close(fd)
    try:
        data = CoverageData(basename=path)
        # each test's lines under its name, the rest under "" (as coverage.py's contexts);
        # a run without contexts: everything under ""
        contexts = result.contexts or {"": {p: _ran(f) for p, f in result.files.items()}}
        for context, files in sorted(contexts.items()):
            data.set_context(context)
            _add(data, result.branch, files)
        data.touch_files(list(result.files))  # empty files were measured too
        data.write()
        data.close()
        with open(path, "rb") as f:
            return f.read()
    finally:
        os.unlink(path)


def _ran(f: FileCoverage) -> tuple[set[int], set[tuple[int, int]]]:
    return f.executed, f.arcs_hit


def _add(data: object, branch: bool, files: dict) -> None:
    lines = {p: ran for p, (ran, _) in files.items() if ran}
    if branch:
        arcs = {p: {(-1, n) for n in files[p][0]} | files[p][1] for p in files}
        data.add_arcs({p: a for p, a in arcs.items() if a})  # type: ignore[attr-defined]
    else:
        data.add_lines(lines)  # type: ignore[attr-defined]


@contextlib.contextmanager
def reporting(result: LineCoverage) -> Iterator[tuple[Any, str]]:
    """coverage.py's ``Coverage`` loaded with ``result`` and its report settings, and a
    scratch folder for what its reporters write; inside the run's directory, so that names
    in the reports are relative to it. coverage.py's complaints (a source gone since the
    run) become a UsageError in its words."""
    if not result.files:
        raise UsageError("No data to report: the run measured no file")
    data = render(result)  # refuses in a line where coverage.py is missing
    import coverage
    from coverage.exceptions import CoverageException

    with tempfile.TemporaryDirectory(prefix="probe-coverage-") as tmp:
        with open(os.path.join(tmp, ".coverage"), "wb") as f:
            f.write(data)
        here = os.getcwd()
        os.chdir(result.cwd)
        try:
            cov = coverage.Coverage(data_file=os.path.join(tmp, ".coverage"), config_file=False)
            cov.set_option("report:exclude_lines", list(result.exclude))
            cov.set_option("report:partial_branches", list(result.partial))
            cov.load()
            yield cov, tmp
        except CoverageException as e:
            raise UsageError(f"coverage.py: {e}") from None
        finally:
            os.chdir(here)
