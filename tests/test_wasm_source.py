"""Wasm coverage per source line (DWARF): C compiled to wasm32-wasi with clang -O0 -g, run
under probe, held line for line to the same C compiled natively with gcc --coverage and read
by gcov; its LCOV rendered by genhtml."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from xml.etree import ElementTree

import pytest
from conftest import SAMPLES, probe_rows, run_probe

TOOLS = ("clang", "wasm-ld", "gcc", "gcov", "genhtml")
missing = [t for t in TOOLS if shutil.which(t) is None]
pytestmark = pytest.mark.skipif(
    bool(missing),
    reason=f"needs {', '.join(missing)} (Debian: clang lld wasi-libc gcc lcov; .ci/run has them)",
)

# (program, its arguments) from samples/wasm
PROGRAMS = [
    ("wc.c", ["in.txt"]),
    ("calc.c", ["12"]),
    ("echo.c", ["a", "b"]),
    ("kernels.c", ["sort", "1"]),
]

# Where the two compilers' line tables differ, never because of what ran:
# * a function's closing brace: clang -O0 puts the epilogue there (the stack pointer, a
#   global in wasm32, restored), gcc no code at all in these functions;
# * kernels.c 12, `static uint32_t rng(void) {`: gcc counts a function's opening line when it
#   is entered; clang has no instruction on it where a function needs no stack frame;
# * kernels.c 142, `} else {`: clang puts the jump over the else arm on it, at the end of the
#   then arm (which never ran: a missed line); gcc has no code there.
DIFFERENT = {
    "wc.c": {"probe": {38}},
    "kernels.c": {"probe": {80, 170}, "gcov": {12}, "missed by probe": {142}},
}


def _build(work: Path, name: str) -> None:
    shutil.copy(SAMPLES / "wasm" / name, work)
    (work / "in.txt").write_text("hello world\nfoo bar baz\n")
    wasm = ["clang", "--target=wasm32-wasi", "-O0", "-g", name, "-o", "app.wasm"]
    done = subprocess.run(wasm, cwd=work, capture_output=True, text=True)
    if done.returncode != 0 and "wasi" in done.stderr:
        pytest.skip(f"clang can't build for wasm32-wasi here: {done.stderr.strip()[-200:]}")
    assert done.returncode == 0, done.stderr
    native = ["gcc", "--coverage", "-O0", name, "-o", "app"]
    subprocess.run(native, cwd=work, check=True, capture_output=True)


def _gcov_counts(work: Path, name: str, args: list[str]) -> dict[int, int]:
    """Each line with code, and how often gcov says it ran."""
    subprocess.run(["./app", *args], cwd=work, capture_output=True)
    data = f"app-{name[:-2]}.gcda"
    subprocess.run(["gcov", "-o", ".", data], cwd=work, check=True, capture_output=True)
    counts = {}
    for text in (work / f"{name}.gcov").read_text().splitlines():
        count, number, _ = text.split(":", 2)
        count, line = count.strip(), int(number)
        if line and count != "-":
            counts[line] = 0 if count[0] in "#=" else int(count.rstrip("*"))
    return counts


def _gcov(work: Path, name: str, args: list[str]) -> tuple[set[int], set[int]]:
    """Lines gcov says ran, and lines with code that did not."""
    counts = _gcov_counts(work, name, args)
    return {n for n, c in counts.items() if c}, {n for n, c in counts.items() if not c}


@pytest.mark.parametrize(("name", "args"), PROGRAMS, ids=[p for p, _ in PROGRAMS])
def test_lines_that_ran_are_gcovs(tmp_path: Path, name: str, args: list[str]) -> None:
    _build(tmp_path, name)
    gcov_ran, gcov_missed = _gcov(tmp_path, name, args)
    out = run_probe(
        sys.executable, "run", "-q", "-a", "coverage", "--dir", ".", "app.wasm", "--", *args,
        cwd=tmp_path,
    )  # fmt: skip
    report = run_probe(sys.executable, "report", "coverage", "-f", "json", cwd=tmp_path)
    assert report.returncode == 0, report.stderr + out.stderr
    files = json.loads(report.stdout)["files"]
    assert set(files) == {name}  # wasi-libc's files are not the user's
    ran, missed = set(files[name]["executed_lines"]), set(files[name]["missing_lines"])
    expected = DIFFERENT.get(name, {})
    assert ran - gcov_ran == expected.get("probe", set())
    assert gcov_ran - ran == expected.get("gcov", set())
    assert missed - gcov_missed == expected.get("missed by probe", set())
    assert gcov_missed - missed == set()


def test_summary_lcov_and_genhtml(tmp_path: Path) -> None:
    _build(tmp_path, "wc.c")
    out = run_probe(
        sys.executable, "run", "-a", "coverage", "--dir", ".", "app.wasm", "--", "in.txt",
        cwd=tmp_path,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("2 5 24 in.txt")
    # the summary: per source file, as coverage.py's; lines 12-13 are the fopen failure
    assert "wc.c" in out.stderr and "12-13" in out.stderr, out.stderr
    lcov = run_probe(sys.executable, "report", "coverage", "-f", "lcov", cwd=tmp_path).stdout
    records = lcov.splitlines()
    assert records[0] == f"SF:{tmp_path / 'wc.c'}"
    assert "FN:9,main" in records and "FNDA:1,main" in records
    assert "DA:12,0" in records and "DA:17,1" in records
    (tmp_path / "wc.lcov").write_text(lcov)
    html = tmp_path / "html"
    done = subprocess.run(
        ["genhtml", "-q", "-o", str(html), "wc.lcov"], cwd=tmp_path, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    page = next(html.rglob("wc.c.gcov.html")).read_text()
    assert "fopen" in page  # the source, annotated
    xml = run_probe(sys.executable, "report", "coverage", "-f", "xml", cwd=tmp_path).stdout
    root = ElementTree.fromstring(xml)
    lh = next(int(r[3:]) for r in records if r.startswith("LH:"))
    lf = next(int(r[3:]) for r in records if r.startswith("LF:"))
    assert (int(root.get("lines-covered")), int(root.get("lines-valid"))) == (lh, lf)
    (cls,) = root.iter("class")
    assert cls.get("filename") == "wc.c"
    hits = {int(e.get("number")): int(e.get("hits")) for e in cls.iter("line")}
    assert hits[12] == 0 and hits[17] == 1


def test_include_and_omit_choose_source_files(tmp_path: Path) -> None:
    _build(tmp_path, "wc.c")
    run = ["run", "-q", "-a", "coverage", "--dir", "."]
    args = ["app.wasm", "--", "in.txt"]
    assert run_probe(sys.executable, *run, "--omit", "*wc.c", *args, cwd=tmp_path).returncode == 0
    report = run_probe(sys.executable, "report", "coverage", "-f", "json", cwd=tmp_path)
    assert json.loads(report.stdout)["files"] == {}  # left out: per function, as without DWARF
    run_probe(sys.executable, *run, "--include", "*/wasm32-wasi/*", *args, cwd=tmp_path)
    report = run_probe(sys.executable, "report", "coverage", "-f", "json", cwd=tmp_path)
    files = json.loads(report.stdout)["files"]
    assert files and all("/usr/include/wasm32-wasi/" in f for f in files), files


@pytest.mark.parametrize(("name", "args"), PROGRAMS, ids=[p for p, _ in PROGRAMS])
def test_hotness_counts_each_line_as_gcov_does(tmp_path: Path, name: str, args: list[str]) -> None:
    """A line's count is its most often run block's: on these programs (loops, a line
    holding a loop's condition and step, short-circuits, recursion), gcov's count of every
    line both have."""
    _build(tmp_path, name)
    theirs = _gcov_counts(tmp_path, name, args)
    out = run_probe(
        sys.executable, "run", "-a", "hotness", "--dir", ".", "app.wasm", "--", *args,
        cwd=tmp_path,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert "Busiest source lines" in out.stderr
    got = probe_rows(
        sys.executable,
        "SELECT s.line, max(coalesce(c.count, 0)) AS n FROM sites s LEFT JOIN counts c "
        "USING (run_id, site_id) WHERE s.kind = 'line' GROUP BY s.line",
        tmp_path,
    )
    ours = {r["line"]: r["n"] for r in got}
    differ = {n: (ours[n], theirs[n]) for n in ours.keys() & theirs.keys() if ours[n] != theirs[n]}
    assert differ == {}
    assert len(ours.keys() & theirs.keys()) >= 8


TWO_FILES = {
    "main.c": (
        "#include <stdio.h>\n"
        "int sign(int x);\n"
        "int main(int argc, char **argv) {\n"
        '    printf("%d\\n", sign(argc));\n'
        "    return 0;\n"
        "}\n"
    ),
    "sign.c": (
        "int sign(int x) {\n    if (x < 0) {\n        return -1;\n    }\n    return x > 0;\n}\n"
    ),
}


def test_the_html_report_in_a_real_browser(tmp_path: Path) -> None:
    """The Wasm run's HTML in headless chromium: no console error, no network, the totals
    the database's, the index sorted by a click, missed lines marked in the source."""
    from browser import page

    for name, text in TWO_FILES.items():
        (tmp_path / name).write_text(text)
    build = ["clang", "--target=wasm32-wasi", "-O0", "-g", *TWO_FILES, "-o", "app.wasm"]
    subprocess.run(build, cwd=tmp_path, check=True, capture_output=True)
    run = ["run", "-q", "-a", "coverage", "app.wasm"]
    assert run_probe(sys.executable, *run, cwd=tmp_path).returncode == 0
    made = run_probe(sys.executable, "report", "coverage", "-f", "html", "-o", "out", cwd=tmp_path)
    assert made.returncode == 0, made.stderr
    (row,) = probe_rows(
        sys.executable,
        "SELECT count(*) AS lines, count(c.count) AS ran FROM sites s LEFT JOIN counts c "
        "USING (run_id, site_id) WHERE s.kind = 'line'",
        tmp_path,
    )
    with page(tmp_path / "out" / "index.html") as (tab, errors):
        said = tab.locator("body > p").first.inner_text()
        assert said.startswith(f"Lines: {row['ran']} of {row['lines']} run"), said
        first = tab.locator("#files tbody tr td.name")
        assert [first.nth(i).inner_text() for i in range(first.count())] == ["main.c", "sign.c"]
        tab.locator("#files th").nth(3).click()  # by cover, ascending: sign.c first
        assert tab.locator("#files tbody tr td.name").first.inner_text() == "sign.c"
        tab.locator("a", has_text="sign.c").click()
        missed = tab.locator("p.mis .n")
        assert [missed.nth(i).inner_text() for i in range(missed.count())] == ["3"]
        assert "sign" in tab.locator("#l1 .fn").inner_text()
        assert errors == []


def test_the_call_graph_page_in_a_real_browser(tmp_path: Path) -> None:
    """probe report calls --format html: the graph's functions and edges, and the table's,
    are the database's call edges; no console error, no network."""
    from browser import page

    _build(tmp_path, "calc.c")
    assert run_probe(sys.executable, "run", "-q", "-a", "calls", "app.wasm", "--", "12",
                     cwd=tmp_path).returncode == 0  # fmt: skip
    made = run_probe(sys.executable, "report", "calls", "-f", "html", "-o", "calls", cwd=tmp_path)
    assert made.returncode == 0, made.stderr
    sql = "SELECT caller, callee, sum(calls) AS calls FROM call_edges GROUP BY 1, 2"
    edges = probe_rows(sys.executable, sql, tmp_path)
    expected = {(e["caller"], e["callee"]): e["calls"] for e in edges}
    assert len(expected) >= 5
    with page(tmp_path / "calls" / "index.html") as (tab, errors):
        rows = tab.locator("#edges tbody tr")
        shown = {}
        for i in range(rows.count()):
            a, b, calls, _ = [c.inner_text() for c in rows.nth(i).locator("td").all()]
            shown[(a, b)] = int(calls)
        assert shown == expected
        names = {g.get_attribute("data-name") for g in tab.locator("g.func").all()}
        assert names == {n for edge in expected for n in edge}
        assert tab.locator("path.edge").count() == len(expected)
        assert errors == []


def test_line_tables_are_kept_in_the_cache(tmp_path: Path) -> None:
    """A module's line tables are kept with its rewrite (one entry), and a second run reports
    the same lines."""
    _build(tmp_path, "wc.c")
    env = {"PROBE_CACHE": str(tmp_path / "cache")}
    run = ["run", "-q", "-a", "coverage", "--dir", ".", "app.wasm", "--", "in.txt"]
    reports = []
    for _ in range(2):
        assert run_probe(sys.executable, *run, cwd=tmp_path, env=env).returncode == 0
        out = run_probe(sys.executable, "report", "coverage", "-f", "json", cwd=tmp_path)
        reports.append(json.loads(out.stdout)["files"])
        assert len(list((tmp_path / "cache" / "wasm").glob("*.lines"))) == 1
    assert reports[0] == reports[1] and reports[0]["wc.c"]["executed_lines"]


def test_branches_in_lcov_per_source_line(tmp_path: Path) -> None:
    """With --branch, each branch instruction's arms are BRDA records on its source line
    (`if (argc > 1 && !(f = fopen(...)))`: two branches; the file opened), and genhtml reads
    them."""
    _build(tmp_path, "wc.c")
    run = ["run", "-q", "-a", "coverage", "--branch", "--dir", ".", "app.wasm", "--", "in.txt"]
    assert run_probe(sys.executable, *run, cwd=tmp_path).returncode == 0
    lcov = run_probe(sys.executable, "report", "coverage", "-f", "lcov", cwd=tmp_path).stdout
    records = lcov.splitlines()
    line11 = [r for r in records if r.startswith("BRDA:11,")]
    assert line11 == ["BRDA:11,0,0,1", "BRDA:11,0,1,0", "BRDA:11,1,0,0", "BRDA:11,1,1,1"]
    arms = [r.split(",") for r in records if r.startswith("BRDA:")]
    brf = next(int(r[4:]) for r in records if r.startswith("BRF:"))
    brh = next(int(r[4:]) for r in records if r.startswith("BRH:"))
    assert brf == len(arms) and brh == sum(1 for a in arms if a[3] not in ("0", "-"))
    (tmp_path / "wc.lcov").write_text(lcov)
    done = subprocess.run(
        ["genhtml", "-q", "--branch-coverage", "-o", "html", "wc.lcov"],
        cwd=tmp_path, capture_output=True, text=True,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr


def test_branches_in_every_format_agree_with_lcov(tmp_path: Path) -> None:
    """With --branch, the arms LCOV has as BRDA records are in the text table (Branch,
    BrPart, the partial line in Missing), the JSON (per line and summed), the Cobertura XML
    (condition-coverage, as coverage.py writes it) and the HTML (the line marked partial, in
    a real browser): the same numbers in each."""
    import xml.etree.ElementTree as ET

    from browser import page

    _build(tmp_path, "wc.c")
    run = ["run", "-q", "-a", "coverage", "--branch", "--dir", ".", "app.wasm", "--", "in.txt"]
    assert run_probe(sys.executable, *run, cwd=tmp_path).returncode == 0

    def report(fmt: str, *more: str) -> str:
        done = run_probe(sys.executable, "report", "coverage", "-f", fmt, *more, cwd=tmp_path)
        assert done.returncode == 0, done.stderr
        return done.stdout

    records = report("lcov").splitlines()
    brf = next(int(r[4:]) for r in records if r.startswith("BRF:"))
    brh = next(int(r[4:]) for r in records if r.startswith("BRH:"))
    arms11 = [int(r.split(",")[3]) for r in records if r.startswith("BRDA:11,")]
    taken11 = sum(1 for c in arms11 if c)
    assert 0 < taken11 < len(arms11)  # line 11 is partly taken (the file opened)

    (f,) = json.loads(report("json"))["files"].values()
    assert f["summary"]["num_branches"] == brf and f["summary"]["covered_branches"] == brh
    assert [a["count"] for b in f["branches"]["11"] for a in b["arms"]] == arms11
    partial = f["summary"]["num_partial_branches"]
    assert partial >= 1

    head, _, row, *_ = report("text").splitlines()
    assert head.split()[:6] == ["Name", "Lines", "Miss", "Branch", "BrPart", "Cover"]
    assert row.split()[3:5] == [str(brf), str(partial)]
    assert f"11 ({taken11}/{len(arms11)} arms)" in row

    root = ET.fromstring(report("xml"))
    assert (root.get("branches-valid"), root.get("branches-covered")) == (str(brf), str(brh))
    (line11,) = [e for e in root.iter("line") if e.get("number") == "11"]
    pc = 100 * taken11 // len(arms11)
    assert line11.get("condition-coverage") == f"{pc}% ({taken11}/{len(arms11)})"

    report("html", "-o", "out")
    with page(tmp_path / "out" / "index.html") as (tab, errors):
        cells = tab.locator("#files tbody tr td")
        assert [cells.nth(i).inner_text() for i in (3, 4)] == [str(brf), str(partial)]
        tab.locator("a", has_text="wc.c").click()
        assert "par" in (tab.locator("#l11").get_attribute("class") or "")
        assert tab.locator("#l11 .arms").inner_text() == f"{taken11} of {len(arms11)} arms taken"
        assert tab.locator("p.par").count() == partial
        assert errors == []


def test_branches_and_trace_per_source_line(tmp_path: Path) -> None:
    """The branches and trace reports place each branch and event on its source line: the
    branches' arms are LCOV's (taken or not) line for line, with counts the program's own
    output confirms; the trace runs through wc.c's lines in the order the program does.
    libc's branches and events are left out, and the reports say how many."""
    _build(tmp_path, "wc.c")
    wc = str(tmp_path / "wc.c")
    args = ["--dir", ".", "app.wasm", "--", "in.txt"]  # prints "2 5 24": lines, words, bytes

    def report(*what: str) -> str:
        done = run_probe(sys.executable, "report", *what, cwd=tmp_path)
        assert done.returncode == 0, done.stderr
        return done.stdout

    run = ["run", "-q", "-a", "coverage", "--branch", *args]
    assert run_probe(sys.executable, *run, cwd=tmp_path).returncode == 0
    lcov: dict[int, list[bool]] = {}
    for record in report("coverage", "-f", "lcov").splitlines():
        if record.startswith("BRDA:"):
            line, _, _, taken = record[5:].split(",")
            lcov.setdefault(int(line), []).append(taken not in ("0", "-"))

    # branch probes alone (no block sites, so no line sites): still placed
    assert (
        run_probe(sys.executable, "run", "-q", "-a", "branches", *args, cwd=tmp_path).returncode
        == 0
    )
    branches = json.loads(report("branches", "-f", "json"))
    arms: dict[int, list[int]] = {}
    for branch in branches.values():
        assert {a["source"] for a in branch} == {wc}
        arms.setdefault(branch[0]["line"], []).extend(a["count"] for a in branch)
    assert {n: sorted(c > 0 for c in a) for n, a in arms.items()} == {
        n: sorted(t) for n, t in lcov.items()
    }
    assert sorted(arms[19]) == [2, 22]  # `if (c == '\n')`: 2 newlines of 24 bytes
    (left_out,) = probe_rows(
        sys.executable,
        "SELECT count(DISTINCT \"offset\") AS n FROM sites WHERE kind = 'branch' "
        "AND source IS NULL AND run_id = (SELECT max(run_id) FROM runs)",
        tmp_path,
    )
    text = report("branches")
    assert "wc.c:19" in text
    assert f"{left_out['n']} branches outside your source files left out" in text

    assert (
        run_probe(sys.executable, "run", "-q", "-a", "trace", *args, cwd=tmp_path).returncode == 0
    )
    events = json.loads(report("trace", "-f", "json"))
    assert {(e["source"], e["func"]) for e in events} == {(wc, "main")}
    lines = [e["line"] for e in events]
    gcov_ran, _ = _gcov(tmp_path, "wc.c", ["in.txt"])
    assert set(lines) <= gcov_ran | DIFFERENT["wc.c"]["probe"] and not {12, 13} & set(lines)
    assert lines.count(18) == 24  # `bytes++`: a block of its own, once per byte
    assert max(i for i, n in enumerate(lines) if n == 18) < lines.index(28)  # then printf
    (everything,) = probe_rows(
        sys.executable,
        "SELECT count(*) AS n FROM trace WHERE kind = 'block' "
        "AND run_id = (SELECT max(run_id) FROM runs)",
        tmp_path,
    )
    assert f"{everything['n'] - len(events):,} events outside your source files" in report("trace")
    timeline = json.loads(report("trace", "-f", "chrome-json"))
    names = {e["name"] for e in timeline["traceEvents"] if e.get("ph") == "i"}
    assert "block main wc.c:18" in names


def test_broken_line_tables_leave_the_run_per_function(tmp_path: Path) -> None:
    """A module whose .debug_line is garbage still runs, as wasmtime runs it: one warning,
    and reports per function and offset."""
    from probe.engines.wasm import binary

    _build(tmp_path, "wc.c")
    data = bytearray((tmp_path / "app.wasm").read_bytes())
    lines = next(s for s in binary.parse(bytes(data)).sections if s.name == ".debug_line")
    data[lines.start + 20 : lines.start + 400] = b"\xff" * 380
    (tmp_path / "app.wasm").write_bytes(data)
    run = ["run", "-a", "coverage", "--dir", ".", "app.wasm", "--", "in.txt"]
    out = run_probe(sys.executable, *run, cwd=tmp_path, env={"PROBE_CACHE": str(tmp_path / "c")})
    assert out.returncode == 0 and out.stdout.startswith("2 5 24 in.txt"), out.stderr
    warned = [line for line in out.stderr.splitlines() if "debug_line" in line]
    assert len(warned) == 1 and "reports stay per function" in warned[0], out.stderr
    report = run_probe(sys.executable, "report", "coverage", "-f", "json", cwd=tmp_path)
    found = json.loads(report.stdout)
    assert found["files"] == {} and "main" in found["functions"]
