"""Cobertura XML, as CI services read it: for Python, coverage.py's own ``xml`` report, written
by its reporter over the run's data."""

from __future__ import annotations

import os
from functools import singledispatch

from probe.analyses.coverage import LineCoverage


@singledispatch
def render(result: object) -> str:
    raise NotImplementedError(type(result).__name__)


@render.register
def _(result: LineCoverage) -> str:
    """coverage.py's own Cobertura XML (its ``xml`` command)."""
    from probe.reports.coveragedata import reporting

    with reporting(result) as (cov, tmp):
        path = os.path.join(tmp, "coverage.xml")
        cov.xml_report(outfile=path, skip_empty=result.skip_empty)
        with open(path, encoding="utf-8") as f:
            return f.read()
