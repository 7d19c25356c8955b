"""HTML: self-contained pages (no network at view time).

Python coverage: coverage.py's own HTML report (a folder: a sortable index, each source
annotated with missed lines and partial branches, per-test contexts where recorded), made by
coverage.py from probe's run written as its data file (coveragedata.py): the page a
coverage.py user knows, with no second copy of it here. Its title names the run.

Wasm coverage: a folder of our own: a sortable index of the source files (DWARF) or of the
module's functions (without it), and each source file annotated: lines run, missed, partly
(a branch's arms), or with no code, each function where it starts; without DWARF, each
function's instructions as ``wasm-tools print`` writes them, marked run or missed by block.

Calls: a folder of one page: the call graph drawn in SVG (functions in layers from the callers
down, each with its entries; edges with their calls, indirect ones dashed) and its edges in a
table.

Hot paths: one page: a flame graph of the sampled stacks (root at the top; a frame's width is its
share of the samples; click a frame to zoom into it, click the root to zoom out) and the
functions by self and total samples beside their exact counts.
"""

from __future__ import annotations

import bisect
import html
import json
import os
import re
from functools import singledispatch

from probe.analyses.calls import CallGraph
from probe.analyses.coverage import (
    FileCoverage,
    FunctionCoverage,
    LineCoverage,
    WasmCoverage,
    display,
)
from probe.analyses.hotpaths import HotPaths


@singledispatch
def render(result: object) -> str | dict[str, bytes]:
    raise NotImplementedError(type(result).__name__)


@render.register
def _(result: LineCoverage) -> dict[str, bytes]:
    """The report's files, by name in its folder: coverage.py's HTML."""

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


_STYLE = """
body { font-family: sans-serif; margin: 1.5em; color: #222; }
table { border-collapse: collapse; }
th, td { padding: 0.2em 0.8em; text-align: right; }
th { cursor: pointer; border-bottom: 1px solid #888; user-select: none; }
td.name, th.name { text-align: left; }
pre { margin: 0; }
.src p { margin: 0; font-family: monospace; white-space: pre; }
.src .n { display: inline-block; width: 4em; color: #888; text-align: right; padding-right: 1em; }
.run { background: #dfd; } .mis { background: #fdd; } .par { background: #ffd; }
.arms { color: #a60; font-size: 90%; }
.fn { color: #555; font-size: 90%; }
.src .c { display: inline-block; width: 6em; color: #555; text-align: right; padding-right: 1em; }
"""

_SORT = """
document.querySelectorAll("th").forEach(function (th, col) {
  th.addEventListener("click", function () {
    var body = th.closest("table").querySelector("tbody");
    var rows = Array.prototype.slice.call(body.rows);
    var up = th.dataset.up !== "1";
    th.dataset.up = up ? "1" : "0";
    rows.sort(function (a, b) {
      var x = a.cells[col].dataset.v || a.cells[col].textContent;
      var y = b.cells[col].dataset.v || b.cells[col].textContent;
      var nx = parseFloat(x), ny = parseFloat(y);
      var c = (!isNaN(nx) && !isNaN(ny)) ? nx - ny : x.localeCompare(y);
      return up ? c : -c;
    });
    rows.forEach(function (r) { body.appendChild(r); });
  });
});
"""


def _page(title: str, body: str, script: str = "") -> bytes:
    tail = f"<script>{script}</script>" if script else ""
    return (
        f'<!DOCTYPE html>\n<html><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
        f"<style>{_STYLE}</style></head><body>{body}{tail}</body></html>\n"
    ).encode()


@render.register
def _(result: WasmCoverage) -> dict[str, bytes]:
    """The report's files, by name in its folder."""
    title = f"Coverage of {html.escape(result.relative(result.module))}"
    if not result.sources:
        return _functions_pages(result, title)
    files: dict[str, bytes] = {}
    rows = []
    hit = total = 0
    for number, path in enumerate(sorted(result.sources, key=result.relative)):
        f = result.sources[path]
        name = result.relative(path)
        page = f"file{number}.html"
        pc = result.percent([f])
        hit, total = hit + len(f.executed), total + f.statements
        arms = f"<td>{f.branches}</td><td>{len(f.partial_lines())}</td>" if result.branch else ""
        rows.append(
            f'<tr><td class="name"><a href="{page}">{html.escape(name)}</a></td>'
            f"<td>{f.statements}</td><td>{len(f.missing)}</td>{arms}"
            f'<td class="pc" data-v="{pc:.6f}">{display(pc)}%</td></tr>'
        )
        files[page] = _source_page(path, name, f)
    arms = "<th>Branch</th><th>BrPart</th>" if result.branch else ""
    body = (
        f"<h1>{title}</h1>"
        f'<p>Lines: {hit} of {total} run, <span id="total">{display(result.percent())}%</span></p>'
        '<table id="files"><thead><tr><th class="name">File</th><th>Lines</th><th>Miss</th>'
        f"{arms}<th>Cover</th></tr></thead><tbody>{''.join(rows)}</tbody></table>"
    )
    files["index.html"] = _page(title, body, _SORT)
    return files


def _source_page(path: str, name: str, f: FileCoverage) -> bytes:
    try:
        with open(path, encoding="utf-8", errors="replace") as src:
            text = src.read().splitlines()
    except OSError:
        text = []
    starts = {line: func for func, line in f.functions.items()}
    partial, arms = f.partial_lines(), f.arm_counts()
    out = []
    last = max(len(text), max(f.executed | f.missing, default=0))
    for n in range(1, last + 1):
        kind = "run" if n in f.executed else "mis" if n in f.missing else ""
        kind = "par" if n in partial else kind
        code = html.escape(text[n - 1]) if n <= len(text) else ""
        mark = f' <span class="fn">{html.escape(starts[n])}</span>' if n in starts else ""
        if n in partial:  # a branch on the line went one way only (its arms: in the JSON)
            mark += f' <span class="arms">{arms[n][1]} of {arms[n][0]} arms taken</span>'
        cls = f' class="{kind}"' if kind else ""
        out.append(f'<p id="l{n}"{cls}><span class="n">{n}</span>{code}{mark}</p>')
    missed = len(f.missing)
    partly = f", {len(partial)} partly" if arms else ""
    body = (
        f'<p><a href="index.html">index</a></p><h1>{html.escape(name)}</h1>'
        f"<p>{len(f.executed)} lines run, {missed} missed{partly}</p>"
        f'<div class="src">{"".join(out)}</div>'
    )
    return _page(name, body)


def _functions_pages(result: WasmCoverage, title: str) -> dict[str, bytes]:
    """Without DWARF: the module's functions, their blocks and instructions run, and a page
    per function of its instructions (``wasm-tools print``) marked run or missed."""
    listing, why = _listing(result.module)
    files: dict[str, bytes] = {}
    rows = []
    for k, f in enumerate(sorted(result.functions.values(), key=lambda f: f.offset)):
        ci, ti = f.instructions()
        pc = 100.0 * ci / ti if ti else 100.0
        name = html.escape(f.name)
        if f.offset in listing:
            files[f"func{k}.html"] = _function_page(f, listing[f.offset], title)
            name = f'<a href="func{k}.html">{name}</a>'
        rows.append(
            f'<tr><td class="name">{name}</td><td>{f.offset:#x}</td>'
            f"<td>{len(f.blocks)}</td><td>{len(f.blocks) - f.covered_blocks()}</td>"
            f'<td>{ti}</td><td>{ti - ci}</td><td data-v="{pc:.6f}">{display(pc)}%</td></tr>'
        )
    note = f" ({html.escape(why)}: no instruction listings)" if why else ""
    body = (
        f"<h1>{title}</h1><p>No DWARF line tables in the module (build with -g for source "
        f"lines): its functions{note}.</p>"
        '<table id="functions"><thead><tr><th class="name">Function</th><th>Offset</th>'
        "<th>Blocks</th><th>Miss</th><th>Instrs</th><th>Miss</th><th>Cover</th></tr></thead>"
        f"<tbody>{''.join(rows)}</tbody></table>"
    )
    files["index.html"] = _page(title, body, _SORT)
    return files


def _function_page(f: FunctionCoverage, lines: list[tuple[int, str]], title: str) -> bytes:
    """One function's instructions, each marked by its block's count (a block runs whole:
    from its first instruction to the next block's), or by its own where instructions were
    probed; the count shown where a block begins."""
    leaders = sorted(f.blocks)
    out = []
    for offset, text in lines:
        k = bisect.bisect_right(leaders, offset) - 1
        count = f.blocks[leaders[k]] if k >= 0 else None
        if f.instrs is not None and offset in f.instrs:
            count = f.instrs[offset]
        kind = "" if count is None else "run" if count else "mis"
        cls = f' class="{kind}"' if kind else ""
        shown = f"{count:,}" if offset in f.blocks else ""
        out.append(
            f'<p id="o{offset:x}"{cls}><span class="n">{offset:#x}</span>'
            f'<span class="c">{shown}</span>{html.escape(text)}</p>'
        )
    ci, ti = f.instructions()
    body = (
        f'<p><a href="index.html">{title}</a></p><h1>{html.escape(f.name)}</h1>'
        f"<p>{f.covered_blocks()} of {len(f.blocks)} blocks run, {ci} of {ti} instructions</p>"
        f'<div class="src">{"".join(out)}</div>'
    )
    return _page(f.name, body)


def _listing(module: str) -> tuple[dict[int, list[tuple[int, str]]], str | None]:
    """Each function's instructions as text, by the function's offset: ``wasm-tools print``
    with offsets (the same module offsets as the sites'), so that the text is the tool's
    people read Wasm with, not a second disassembler. ({}, why) where it can't be had."""
    import shutil
    import subprocess
    import sys

    tool = shutil.which("wasm-tools") or shutil.which(
        "wasm-tools", path=os.path.dirname(sys.executable)
    )
    if tool is None:
        return {}, "wasm-tools is not installed"
    try:
        done = subprocess.run(
            [tool, "print", "--print-offsets", module], capture_output=True, text=True
        )
    except OSError as e:
        return {}, f"wasm-tools: {e.strerror}"
    if done.returncode != 0:
        lines = done.stderr.strip().splitlines() or ["failed"]
        return {}, f"wasm-tools: {lines[0]}"
    functions: dict[int, list[tuple[int, str]]] = {}
    current: list[tuple[int, str]] | None = None
    for line in done.stdout.splitlines():
        m = _OFFSET.match(line)
        if m is None:
            continue
        offset, text = int(m[1], 16), m[2]
        if text.startswith("  (func "):  # a function's header, at its own offset
            current = functions[offset] = []
        elif text.startswith("  (") and not text.startswith("   "):
            current = None  # the next item of the module: the code is over
        elif current is not None and text.strip() != ")":
            current.append((offset, text[4:]))
    return functions, None


_OFFSET = re.compile(r"\(;@([0-9a-f]+) *;\)(.*)")


@render.register
def _(result: CallGraph) -> dict[str, bytes]:
    """A folder of one page: the graph (layered: a function one layer below the first caller
    that reaches it from the roots) and the table of edges, sortable."""
    esc = html.escape
    names = sorted({a for a, _, _, _ in result.edges} | {b for _, b, _, _ in result.edges})
    callers: dict[str, list[str]] = {}
    for a, b, _, _ in result.edges:
        callers.setdefault(a, []).append(b)
    roots = [n for n in names if n not in {b for a, b, _, _ in result.edges if a != b}]
    layer: dict[str, int] = {}
    queue = list(roots or names[:1])
    for r in queue:
        layer.setdefault(r, 0)
    while queue:  # breadth first: each function one below the first caller that reaches it
        name = queue.pop(0)
        for b in callers.get(name, []):
            if b not in layer:
                layer[b] = layer[name] + 1
                queue.append(b)
    for n in names:
        layer.setdefault(n, 0)  # in a cycle no root reaches
    rows: dict[int, list[str]] = {}
    for n in names:
        rows.setdefault(layer[n], []).append(n)
    box_w, box_h, gap_x, gap_y = 180, 40, 30, 70
    at: dict[str, tuple[int, int]] = {}
    for depth, row in rows.items():
        for k, n in enumerate(row):
            at[n] = (20 + k * (box_w + gap_x), 20 + depth * (box_h + gap_y))
    width = max((x for x, _ in at.values()), default=0) + box_w + 40
    height = max((y for _, y in at.values()), default=0) + box_h + 40
    svg = [
        f'<svg id="graph" xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}">'
        '<defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="6" '
        'markerHeight="6" orient="auto"><path d="M0,0 L10,5 L0,10 z"/></marker></defs>'
    ]
    for a, b, calls, indirect in result.edges:
        (x1, y1), (x2, y2) = at[a], at[b]
        dash = ' stroke-dasharray="5,4"' if indirect else ""
        if a == b:  # a function calling itself: a loop on its side
            x, y = x1 + box_w, y1 + box_h // 2
            path = f"M{x},{y - 8} C{x + 40},{y - 30} {x + 40},{y + 30} {x},{y + 8}"
            label = (x + 34, y + 4)
        else:
            sx, sy = x1 + box_w // 2, y1 + box_h
            tx, ty = x2 + box_w // 2, y2
            if y2 <= y1:  # up or across: leave from the side
                sy, ty = y1 + box_h // 2, y2 + box_h // 2
            path = f"M{sx},{sy} L{tx},{ty}"
            label = ((sx + tx) // 2 + 4, (sy + ty) // 2)
        svg.append(
            f'<path class="edge" d="{path}" fill="none" stroke="#555"{dash} '
            f'marker-end="url(#arrow)"><title>{esc(a)} \u2192 {esc(b)}: {calls:,}</title></path>'
            f'<text class="calls" x="{label[0]}" y="{label[1]}" font-size="11">{calls:,}</text>'
        )
    for n in names:
        x, y = at[n]
        entries = result.entries.get(n)
        sub = f"{entries:,} entries" if entries is not None else "not measured"
        svg.append(
            f'<g class="func" data-name="{esc(n)}"><rect x="{x}" y="{y}" width="{box_w}" '
            f'height="{box_h}" rx="5" fill="#eef" stroke="#447"/>'
            f'<text x="{x + 8}" y="{y + 16}" font-size="12">{esc(n[:26])}</text>'
            f'<text x="{x + 8}" y="{y + 32}" font-size="10" fill="#555">{sub}</text></g>'
        )
    svg.append("</svg>")
    table = "".join(
        f'<tr><td class="name">{esc(a)}</td><td class="name">{esc(b)}</td>'
        f"<td>{c}</td><td>{'yes' if i else ''}</td></tr>"
        for a, b, c, i in result.edges
    )
    more = f"<p>{result.unresolved:,} indirect calls not resolved.</p>" if result.unresolved else ""
    body = (
        "<h1>Call graph</h1>" + "".join(svg) + more
        + '<table id="edges"><thead><tr><th class="name">Caller</th><th class="name">Callee'
        "</th><th>Calls</th><th>Indirect</th></tr></thead>"
        f"<tbody>{table}</tbody></table>"
    )  # fmt: skip
    return {"index.html": _page("Call graph", body, _SORT)}
