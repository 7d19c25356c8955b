"""Report formats: one module per format, each writing the result models that analyses
define (``probe.analyses``), never reading the database itself.

Every format module has ``render``, a ``functools.singledispatch`` function with one
implementation per result model it can write; what a format cannot write is refused in one
line that lists the formats that can. To add a format: a module here, and its name below.
To let a format write a new analysis's result: one ``@render.register`` in its module.

    text.py       aligned tables, the run's summary (result.brief) and the full report
    jsonreport.py JSON documents (coverage's is coverage.py's layout)
    jsonl.py      one JSON object per line (trace events)
    lcov.py       LCOV tracefiles: genhtml, CI services
    cobertura.py  Cobertura XML: CI services
    dot.py        Graphviz (call graphs)
    collapsed.py  collapsed stacks (py-spy's raw format): flamegraph.pl, inferno, speedscope
    speedscope.py speedscope's JSON profiles
    html.py       self-contained HTML pages (hot paths: a flame graph)
    ldb.py, semcoder.py, traced.py, codeexecutor.py
                  program states as the code-LLM research tools of those names write them
    query.py      the rows of `probe query` as a table, CSV or JSON
    coveragedata.py coverage.py's data file (bytes: a file to write with -o)
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import TYPE_CHECKING

from probe.errors import UsageError

if TYPE_CHECKING:
    from probe.analyses import Analysis

FORMATS = {
    "text": "text",
    "json": "jsonreport",
    "jsonl": "jsonl",
    "lcov": "lcov",
    "xml": "cobertura",
    "dot": "dot",
    "collapsed": "collapsed",
    "speedscope": "speedscope",
    "html": "html",
    "perfetto": "perfetto",
    "chrome-json": "chrome",
    "ldb": "ldb",
    "semcoder": "semcoder",
    "traced": "traced",
    "codeexecutor": "codeexecutor",
    "coverage-data": "coveragedata",
}


def render(analysis: Analysis, result: object, fmt: str) -> str | bytes | dict[str, bytes]:
    """``result`` (a model of ``analysis``) written in format ``fmt`` (bytes: a binary file;
    a dict: a folder's files by name)."""
    module = FORMATS.get(fmt)
    writer = _module(module).render if module else None
    if writer is None or type(result) not in writer.registry:
        raise UsageError(
            f"the {analysis.name} report of this run comes as "
            f"{', '.join(formats_for(type(result)))}, not {fmt!r}"
        )
    return writer(result)


def check(analysis: Analysis, model: type, fmt: str) -> None:
    """Refuse ``fmt`` for ``model`` before any work is done for it."""
    if fmt not in formats_for(model):
        raise UsageError(
            f"the {analysis.name} report comes as {', '.join(formats_for(model))}, not {fmt!r}"
        )


def formats_for(model: type) -> list[str]:
    """The formats that write results of type ``model``."""
    return [fmt for fmt, module in FORMATS.items() if model in _module(module).render.registry]


def _module(name: str) -> ModuleType:
    return importlib.import_module(f"probe.reports.{name}")
