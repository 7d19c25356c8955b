"""HTML: self-contained pages (no network at view time).

Python coverage: coverage.py's own HTML report (a folder: a sortable index, each source
annotated with missed lines and partial branches, per-test contexts where recorded), made by
coverage.py from probe's run written as its data file (coveragedata.py): the page a
coverage.py user knows, with no second copy of it here. Its title names the run.

Hot paths: one page: a flame graph of the sampled stacks (root at the top; a frame's width is its
share of the samples; click a frame to zoom into it, click the root to zoom out) and the
functions by self and total samples beside their exact counts.
"""

from __future__ import annotations

import html
import json
from functools import singledispatch

from probe.analyses.coverage import LineCoverage
from probe.analyses.hotpaths import HotPaths


@singledispatch
def render(result: object) -> str | dict[str, bytes]:
    raise NotImplementedError(type(result).__name__)


@render.register
def _(result: LineCoverage) -> dict[str, bytes]:
    """The report's files, by name in its folder: coverage.py's HTML."""
    import os

    from probe.reports.coveragedata import reporting

    with reporting(result) as (cov, tmp):
        out = os.path.join(tmp, "html")
        cov.html_report(
            directory=out,
            title=f"Coverage of run {result.run_id}" if result.run_id else None,
            skip_covered=result.skip_covered,
            skip_empty=result.skip_empty,
            precision=result.precision,
            show_contexts=bool(result.contexts),
        )
        files = {}
        for top, _, names in os.walk(out):
            for name in names:
                path = os.path.join(top, name)
                with open(path, "rb") as f:
                    files[os.path.relpath(path, out)] = f.read()
        return files


def _script_json(value: object) -> str:
    """JSON safe inside <script>: no '</' can end the element early."""
    return json.dumps(value).replace("</", "<\\/")


@render.register
def _(result: HotPaths) -> str:
    # The tree of stacks: node = [label, samples, children]; built here so the page's script
    # only draws.
    root: list = ["all", 0, {}]
    for frames, weight in zip(result.stacks, result.weights, strict=True):
        node = root
        node[1] += weight
        for frame in frames:
            label = result.label(frame)
            node = node[2].setdefault(label, [label, 0, {}])
            node[1] += weight

    def plain(node: list) -> list:
        kids = sorted(node[2].values(), key=lambda n: -n[1])
        return [node[0], node[1], [plain(k) for k in kids]]

    rows = "".join(
        "<tr><td>{}</td><td>{}</td><td>{:,}</td><td>{:,}</td><td>{}</td><td>{}</td></tr>".format(
            html.escape(f.func),
            html.escape(result.relative(f.unit)),
            f.self_samples,
            f.total_samples,
            "-" if f.calls is None else f"{f.calls:,}",
            "-" if f.executed is None else f"{f.executed:,}",
        )
        for f in result.functions[:50]
    )
    paths = "".join(
        f"<tr><td>{html.escape(p.func)}</td><td>{p.path}</td><td>{p.count:,}</td>"
        f"<td>{' '.join(f'{b:#x}' for b in p.blocks)}</td></tr>"
        for p in result.paths[:50]
    )
    paths_table = (
        "<h2>Hottest acyclic paths (Ball-Larus)</h2><table id='paths'><tr><th>function</th>"
        f"<th>path</th><th>count</th><th>blocks</th></tr>{paths}</table>"
        if paths
        else ""
    )
    return _PAGE.format(
        samples=f"{result.samples:,}",
        rate=result.rate,
        seconds=f"{result.samples / result.rate:,.2f}" if result.rate else "0",
        unit=html.escape(result.executed_unit),
        rows=rows,
        paths=paths_table,
        data=_script_json(plain(root)),
    )


_PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>probe hotpaths</title>
<style>
body {{ font: 13px system-ui, sans-serif; margin: 1em 2em; color: #222; }}
#flame {{ position: relative; width: 100%; overflow: hidden; border: 1px solid #ddd; }}
.f {{ position: absolute; height: 17px; box-sizing: border-box; border: 1px solid #fff;
      font: 11px monospace; line-height: 15px; padding: 0 3px; white-space: nowrap;
      overflow: hidden; text-overflow: ellipsis; cursor: pointer; }}
.f:hover {{ border-color: #000; }}
table {{ border-collapse: collapse; margin-top: 1em; }}
td, th {{ padding: 2px 8px; border-bottom: 1px solid #eee; text-align: right; }}
td:first-child, td:nth-child(2), th:first-child, th:nth-child(2) {{ text-align: left; }}
#info {{ height: 1.4em; font-family: monospace; }}
</style></head>
<body>
<h1>Hot paths</h1>
<p id="summary"><span id="samples">{samples}</span> samples at {rate} Hz ({seconds} s)</p>
<div id="info"></div>
<div id="flame"></div>
<h2>Functions</h2>
<table id="functions"><tr><th>function</th><th>file</th><th>self</th><th>total</th>
<th>calls</th><th>{unit}</th></tr>{rows}</table>
{paths}
<script type="application/json" id="data">{data}</script>
<script>
"use strict";
const tree = JSON.parse(document.getElementById("data").textContent);
const flame = document.getElementById("flame");
const info = document.getElementById("info");
const ROW = 18;

function color(label) {{
  let h = 0;
  for (const c of label) h = (h * 31 + c.charCodeAt(0)) >>> 0;
  return "hsl(" + (10 + h % 40) + ", 85%, " + (60 + h % 20) + "%)";
}}

function depth(node) {{
  return 1 + node[2].reduce((d, k) => Math.max(d, depth(k)), 0);
}}

function draw(top) {{
  flame.textContent = "";
  flame.style.height = (depth(top) * ROW) + "px";
  const total = top[1] || 1;
  const place = (node, level, left) => {{
    const width = node[1] / total;
    if (width < 0.001) return;
    const el = document.createElement("div");
    el.className = "f";
    el.style.left = (100 * left) + "%";
    el.style.width = (100 * width) + "%";
    el.style.top = (level * ROW) + "px";
    el.style.background = color(node[0]);
    el.textContent = node[0];
    const share = (100 * node[1] / (tree[1] || 1)).toFixed(1);
    el.title = node[0] + ": " + node[1] + " samples (" + share + "%)";
    el.dataset.samples = node[1];
    el.onmouseover = () => {{ info.textContent = el.title; }};
    el.onclick = () => draw(node === top ? tree : node);
    flame.appendChild(el);
    let at = left;
    for (const kid of node[2]) {{
      place(kid, level + 1, at);
      at += kid[1] / total;
    }}
  }};
  place(top, 0, 0);
}}

draw(tree);
</script>
</body></html>
"""
