"""`probe run` on Wasm: the program behaves as under plain wasmtime; counts are exact and kept."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import probe_rows, run_probe

HERE = Path(__file__).parent
SAMPLES = HERE.parent / "samples" / "wasm"


@pytest.fixture
def wdir(tmp_path: Path, monkeypatch) -> Path:
    for name in ("kernels.wasm", "wc.wasm", "echo.wasm", "fib.wat", "notes.txt"):
        shutil.copy(SAMPLES / name, tmp_path / name)
    monkeypatch.setenv("PROBE_CACHE", str(tmp_path / "cache"))
    return tmp_path


def probe(*args: str, cwd: Path, input: str | None = None) -> subprocess.CompletedProcess:
    return run_probe(sys.executable, *args, cwd=cwd, input=input)


def plain(*args: str, cwd: Path, input: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(HERE / "plain_wasmtime.py"), *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        input=input,
    )


def query(sql: str, cwd: Path) -> list[dict]:
    out = probe("query", "--format", "json", sql, cwd=cwd)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def test_wasi_program_behaves_as_under_wasmtime(wdir: Path) -> None:
    want = plain(
        "echo.wasm",
        "--env",
        "GREETING=hi",
        "--env",
        "EXIT_CODE=3",
        "--",
        "a",
        "b c",
        cwd=wdir,
        input="some input\n",
    )
    got = probe(
        "run",
        "-q",
        "--env",
        "GREETING=hi",
        "--env",
        "EXIT_CODE=3",
        "echo.wasm",
        "--",
        "a",
        "b c",
        cwd=wdir,
        input="some input\n",
    )
    assert (got.returncode, got.stdout, got.stderr) == (want.returncode, want.stdout, want.stderr)
    assert got.returncode == 3 and "SOME INPUT" in got.stdout and "greeting: hi" in got.stdout
    [run] = query("SELECT status, exit_code, engine, argv FROM runs", wdir)
    assert run == {
        "status": "ok",
        "exit_code": 3,
        "engine": "wasm",
        "argv": ["echo.wasm", "a", "b c"],
    }


def test_preopened_directory(wdir: Path) -> None:
    want = plain("wc.wasm", "--dir", ".", "--", "notes.txt", cwd=wdir)
    got = probe("run", "-q", "--dir", ".", "wc.wasm", "--", "notes.txt", cwd=wdir)
    assert got.returncode == want.returncode == 0 and got.stdout == want.stdout
    assert got.stdout.startswith("9 147 770 notes.txt")
    missing = probe("run", "--dir", "nowhere", "wc.wasm", cwd=wdir)
    assert (
        missing.returncode == 2 and missing.stderr.count("\n") == 1 and "nowhere" in missing.stderr
    )


@pytest.mark.parametrize("kernel", ["matmul", "sort", "compress"])
def test_kernels_same_output(kernel: str, wdir: Path) -> None:
    want = plain("kernels.wasm", "--", kernel, "1", cwd=wdir)
    for analysis in ("coverage", "hotness"):
        got = probe("run", "-q", "-a", analysis, "kernels.wasm", "--", kernel, "1", cwd=wdir)
        assert got.stdout == want.stdout and got.returncode == 0


def test_hotness_counts_are_exact(wdir: Path) -> None:
    got = probe("run", "-q", "-a", "hotness", "fib.wat", "--invoke", "fib", "20", cwd=wdir)
    assert got.stdout == "6765\n"
    calls = query(
        "SELECT c.count FROM sites s JOIN counts c USING (run_id, site_id) "
        "WHERE s.kind = 'func' AND s.func = 'fib'",
        wdir,
    )
    assert calls == [{"count": 21891}]  # fib(20) makes 2 * fib(21) - 1 calls
    probe("run", "-q", "-a", "hotness", "--invoke", "fib_loop", "fib.wat", "30", cwd=wdir)
    blocks = query(
        'SELECT s."offset", c.count FROM sites s JOIN counts c USING (run_id, site_id) '
        "WHERE s.kind = 'block' AND s.func = 'fib_loop' AND run_id = "
        "(SELECT max(run_id) FROM runs) ORDER BY 1",
        wdir,
    )
    assert [b["count"] for b in blocks] == [1, 31, 30, 1]  # entry, loop test, body, exit
    report = probe("report", "hotness", cwd=wdir)
    assert "fib_loop" in report.stdout


@pytest.mark.parametrize("analysis", ["coverage", "calls", "trace"])
def test_trap_is_recorded_with_original_offsets_and_counts_kept(wdir: Path, analysis: str) -> None:
    got = probe("run", "-a", analysis, "--invoke", "div", "fib.wat", "1", "0", cwd=wdir)
    assert got.returncode == 134
    assert "integer divide by zero" in got.stderr
    # i32.div_s's offset and function in the original module, whatever the rewriter added
    # (calls and trace import host functions, which moves every defined function's index)
    assert "0x8a - div (func 2)" in got.stderr, got.stderr
    assert "Traceback" not in got.stderr
    [run] = query("SELECT status, message FROM runs", wdir)
    assert run["status"] == "trap" and "integer divide by zero" in run["message"]
    assert "0x8a - div (func 2)" in run["message"]
    if analysis != "coverage":
        return
    covered = query(
        "SELECT s.func FROM sites s JOIN counts c USING (run_id, site_id) WHERE s.kind = 'block'",
        wdir,
    )
    assert covered == [{"func": "div"}]


def test_instruction_coverage_is_exact_at_a_trap(wdir: Path) -> None:
    probe("run", "-q", "--instr", "--invoke", "div", "fib.wat", "1", "0", cwd=wdir)
    rows = query(
        'SELECT s."offset", c.count FROM sites s LEFT JOIN counts c '
        "USING (run_id, site_id) WHERE s.kind = 'instr' AND s.func = 'div' ORDER BY 1",
        wdir,
    )
    ran = [r["offset"] for r in rows if r["count"]]
    assert ran == [0x86, 0x88, 0x8A]  # local.get, local.get, i32.div_s; not the end after it


@pytest.mark.parametrize(
    ("args", "status", "message"),
    [
        (["--fuel", "1000", "--invoke", "fib", "fib.wat", "30"], "timeout", "fuel"),
        (["--timeout", "0.3", "--invoke", "fib", "fib.wat", "60"], "timeout", "timed out"),
    ],
)
def test_limits(args: list[str], status: str, message: str, wdir: Path) -> None:
    got = probe("run", "-q", *args, cwd=wdir)
    assert got.returncode == 134 and message in got.stderr
    [run] = query("SELECT status FROM runs", wdir)
    assert run["status"] == status
    assert query("SELECT count(*) AS n FROM counts", wdir)[0]["n"] > 0


def test_coverage_reports(wdir: Path) -> None:
    probe("run", "-q", "--invoke", "fib_loop", "fib.wat", "5", cwd=wdir)
    text = probe("report", cwd=wdir).stdout
    assert text.splitlines()[0].split() == [
        "Function",
        "Offset",
        "Blocks",
        "Miss",
        "Instrs",
        "Miss",
        "Cover",
    ]
    doc = json.loads(probe("report", "-f", "json", cwd=wdir).stdout)
    assert doc["functions"]["fib_loop"]["covered_blocks"] == doc["functions"]["fib_loop"]["blocks"]
    assert doc["functions"]["fib"]["covered_blocks"] == 0
    lcov = probe("report", "-f", "lcov", cwd=wdir).stdout
    assert "FN:" in lcov and "FNDA:1,fib_loop" in lcov and "FNDA:0,fib" in lcov
    assert lcov.rstrip().endswith("end_of_record")


def test_rewrite_and_compile_are_cached(wdir: Path) -> None:
    for _ in range(2):
        assert probe("run", "-q", "kernels.wasm", "--", "hash", "1", cwd=wdir).returncode == 0
    assert len(list((wdir / "cache" / "wasm").glob("*.rewrite"))) == 1
    assert len(list((wdir / "cache" / "wasm").glob("*.cwasm"))) == 1
    probe("run", "-q", "-a", "hotness", "kernels.wasm", "--", "hash", "1", cwd=wdir)
    assert len(list((wdir / "cache" / "wasm").glob("*.rewrite"))) == 2


def test_bad_wasm_input_is_one_line(wdir: Path) -> None:
    data = (wdir / "kernels.wasm").read_bytes()
    (wdir / "trunc.wasm").write_bytes(data[:1000])
    (wdir / "eh.wat").write_text('(module (tag $e) (func (export "_start") (throw $e)))')
    (wdir / "imp.wat").write_text('(module (import "env" "f" (func)) (func (export "_start")))')
    (wdir / "lib.wat").write_text('(module (func (export "f")))')
    (wdir / "bad.wat").write_text("(module (func (export")
    cases = [
        (["trunc.wasm"], "byte offset"),
        (["eh.wat"], "not supported: exception handling"),
        (["imp.wat"], "env"),
        (["lib.wat"], "--invoke"),
        (["bad.wat"], "bad.wat"),
        (["--invoke", "nope", "fib.wat"], "nope"),
        (["--invoke", "fib", "fib.wat", "x"], "not a valid i32"),
    ]
    for args, words in cases:
        got = probe("run", *args, cwd=wdir)
        assert got.returncode == 2, (args, got.stderr)
        assert got.stderr.startswith("probe: error:") and got.stderr.count("\n") == 1, got.stderr
        assert words in got.stderr and "Traceback" not in got.stderr


def test_one_query_answers_for_both_engines(wdir: Path) -> None:
    (wdir / "hello.py").write_text("print('hi')\n")
    probe("run", "-q", "hello.py", cwd=wdir)
    probe("run", "-q", "--invoke", "fib", "fib.wat", "3", cwd=wdir)
    rows = query(
        "SELECT r.engine, count(*) AS covered FROM runs r JOIN counts c USING (run_id) "
        "GROUP BY r.engine ORDER BY 1",
        wdir,
    )
    assert [r["engine"] for r in rows] == ["cpython", "wasm"]
    assert all(r["covered"] > 0 for r in rows)


def test_branch_arms_and_exits(wdir: Path) -> None:
    shutil.copy(SAMPLES / "switch.wat", wdir / "switch.wat")
    got = probe("run", "-q", "--branch", "--invoke", "classify", "switch.wat", "2", cwd=wdir)
    assert got.stdout == "102\n"
    arms = query(
        'SELECT s."offset", s.target, c.count FROM sites s LEFT JOIN counts c '
        "USING (run_id, site_id) WHERE s.kind = 'branch' AND s.func = 'classify' "
        "ORDER BY 1, 2",
        wdir,
    )
    # br_table: four arms, each with the offset its label leads to; only the arm for 2 ran.
    table = [a for a in arms if a["offset"] == arms[0]["offset"]]
    assert len(table) == 4 and len({a["target"] for a in table}) == 4
    assert sum(1 for a in table if a["count"]) == 1
    assert all(a["target"] is not None for a in arms)
    probe(
        "run",
        "-q",
        "-a",
        "coverage",
        "-a",
        "hotness",
        "--branch",
        "--invoke",
        "count_down",
        "switch.wat",
        "7",
        cwd=wdir,
    )
    counts = query(
        'SELECT s."offset", s.target, c.count FROM sites s JOIN counts c '
        "USING (run_id, site_id) WHERE s.kind = 'branch' AND s.func = 'count_down' "
        "AND run_id = (SELECT max(run_id) FROM runs) ORDER BY 1, 2",
        wdir,
    )
    assert sorted(c["count"] for c in counts) == [1, 7]  # br_if: taken once, not taken 7 times


def test_hotness_reports(wdir: Path) -> None:
    probe("run", "-q", "-a", "hotness", "--invoke", "fib", "fib.wat", "10", cwd=wdir)
    lcov = probe("report", "hotness", "-f", "lcov", cwd=wdir).stdout
    assert "FNDA:177,fib" in lcov and "end_of_record" in lcov
    doc = json.loads(probe("report", "hotness", "-f", "json", cwd=wdir).stdout)
    assert doc["fib"]["calls"] == 177 and doc["fib"]["instructions_executed"] > 0


def test_html_without_dwarf_lists_each_functions_instructions(wdir: Path) -> None:
    """A module without -g: the HTML index of functions links each to its instructions
    (wasm-tools print's text), every block's first instruction showing its count, the
    block's instructions marked run or missed as the database has the block; in chromium."""
    from browser import page

    run = probe("run", "-q", "-a", "coverage,hotness", "wc.wasm", cwd=wdir, input="a b\nc\n")
    assert run.returncode == 0, run.stderr
    made = probe("report", "coverage", "-f", "html", "-o", "out", cwd=wdir)
    assert made.returncode == 0, made.stderr
    rows = probe_rows(
        sys.executable,
        'SELECT func, "offset", coalesce(count, 0) AS count FROM sites '
        "LEFT JOIN counts USING (run_id, site_id) WHERE kind = 'block'",
        wdir,
    )
    blocks: dict[str, dict[int, int]] = {}
    for r in rows:
        blocks.setdefault(r["func"], {})[r["offset"]] = r["count"]
    name = "main"
    assert 0 < sum(1 for c in blocks[name].values() if c) < len(blocks[name])  # partly run
    with page(wdir / "out" / "index.html") as (tab, errors):
        links = tab.locator("#functions a")
        assert links.count() == len(blocks)  # every function with code has its page
        tab.locator("#functions a", has_text=name).first.click()
        shown = {}
        for p in tab.locator(".src p").all():
            count = p.locator(".c").inner_text()
            if count:
                shown[int(p.get_attribute("id")[1:], 16)] = (int(count.replace(",", "")),
                                                             p.get_attribute("class"))  # fmt: skip
        assert {o: c for o, (c, _) in shown.items()} == blocks[name]
        assert all(cls == ("run" if c else "mis") for c, cls in shown.values())
        assert "local.get" in tab.locator(".src").inner_text()
        assert errors == []
