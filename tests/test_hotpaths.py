"""Hot paths: py-spy's samples of real programs under probe run, beside exact counts, in the
SQL contract and in every report format (the HTML one opened in a real browser)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from browser import page
from conftest import INTERPRETERS, PROGRAMS, REPO, run_probe, version_of

from probe.storage import Database

PY = INTERPRETERS[0]
FRAME = r"[^;]+ \([^;]+:\d+\)"


def _run(tmp_path: Path, python: str = PY, *extra: str, env: dict | None = None):
    db = tmp_path / "p.db"
    out = run_probe(
        python, "run", "-a", "hotpaths", "--db", str(db), *extra, str(PROGRAMS / "hot.py"),
        cwd=tmp_path, env=env,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    return db, out


def _query(path: Path, sql: str) -> list[tuple]:
    """Rows from the database as probe reads it (what the run journaled is ingested first),
    which is closed again: the next probe command must not wait for it."""
    with Database(str(path)) as db:
        return db.execute(sql).fetchall()


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    tmp = tmp_path_factory.mktemp("hot")
    db, out = _run(tmp, PY, "--rate", "200")
    return db, out.stderr


@pytest.mark.parametrize("python", INTERPRETERS, ids=version_of)
def test_python_samples_name_the_hot_function(python: str, tmp_path: Path) -> None:
    # A rate prime to the program's rounds: at 100 Hz, 50 samples of rounds ~10 ms long could
    # fall in step with them and give fast() twice its share.
    db, out = _run(tmp_path, python, "--rate", "997")
    assert "samples at 997 Hz" in out.stderr
    top = _query(
        db,
        "SELECT k.frames[-1].func, sum(s.weight) FROM samples s JOIN stacks k "
        "USING (run_id, stack_id) GROUP BY 1 ORDER BY 2 DESC LIMIT 1",
    )[0]
    assert top[0] == "work", top
    # slow() does four times fast()'s work: its share of the samples says so, roughly
    by = dict(
        _query(
            db,
            "SELECT f.func, sum(s.weight) FROM samples s JOIN stacks k USING (run_id, stack_id), "
            "unnest(k.frames) AS u(f) WHERE f.func IN ('slow', 'fast') GROUP BY 1",
        )
    )
    assert by.get("slow", 0) > 2 * by.get("fast", 0) > 0, by
    # exact counts beside them: 60 rounds, one call each
    calls = dict(
        _query(
            db,
            "SELECT s.func, c.count FROM sites s JOIN counts c USING (run_id, site_id) "
            "WHERE s.kind = 'func'",
        )
    )
    assert calls["slow"] == calls["fast"] == 60 and calls["work"] == 120
    # frames join the sites of their functions
    joined = _query(
        db,
        "SELECT count(*) FROM stacks k, unnest(k.frames) AS u(f) JOIN sites s "
        "ON s.run_id = k.run_id AND s.unit = f.unit AND s.func = f.func AND s.kind = 'func'",
    )[0][0]
    assert joined > 0
    # no frame of probe's own (the CLI, the engine) in the program's stacks
    units = {u for (u,) in _query(db, "SELECT DISTINCT unnest(frames).unit FROM stacks")}
    assert units == {str(PROGRAMS / "hot.py")}, units


def test_the_issue_query_and_text_report(recorded: tuple[Path, str], tmp_path: Path) -> None:
    db, summary = recorded
    assert re.search(r"^work \(.*hot\.py\)\s+\d+", summary, re.M), summary
    out = run_probe(
        PY, "query", "--format", "json", "--db", str(db),
        "SELECT frames, sum(weight) FROM samples JOIN stacks USING (run_id, stack_id) "
        "GROUP BY 1 ORDER BY 2 DESC LIMIT 10",
        cwd=tmp_path,
    )  # fmt: skip
    assert out.returncode == 0 and "work" in out.stdout, out.stderr
    text = run_probe(PY, "report", "hotpaths", "--db", str(db), cwd=tmp_path)
    assert text.returncode == 0, text.stderr
    assert "hottest call paths" in text.stdout
    assert "<module> > main > slow > work" in text.stdout


def test_collapsed_is_pyspy_raw_format(recorded: tuple[Path, str], tmp_path: Path) -> None:
    db, _ = recorded
    out = run_probe(PY, "report", "hotpaths", "-f", "collapsed", "--db", str(db), cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines and all(re.fullmatch(rf"{FRAME}(;{FRAME})* \d+", ln) for ln in lines), lines[:3]
    assert lines[0].startswith("<module> (")  # root first
    total = _query(db, "SELECT sum(weight) FROM samples")[0][0]
    assert sum(int(ln.rsplit(" ", 1)[1]) for ln in lines) == total


def test_speedscope_json(recorded: tuple[Path, str], tmp_path: Path) -> None:
    db, _ = recorded
    target = tmp_path / "p.speedscope.json"
    out = run_probe(
        PY, "report", "hotpaths", "-f", "speedscope", "-o", str(target), "--db", str(db),
        cwd=tmp_path,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    doc = json.loads(target.read_text())
    assert doc["$schema"].startswith("https://www.speedscope.app/")
    frames = doc["shared"]["frames"]
    profile = doc["profiles"][0]
    assert profile["type"] == "sampled" and len(profile["samples"]) == len(profile["weights"])
    leaves = {frames[s[-1]]["name"] for s in profile["samples"] if s}
    assert "work" in leaves


def test_html_flame_graph_in_a_browser(recorded: tuple[Path, str], tmp_path: Path) -> None:
    db, _ = recorded
    target = tmp_path / "flame.html"
    out = run_probe(
        PY, "report", "hotpaths", "-f", "html", "-o", str(target), "--db", str(db), cwd=tmp_path
    )
    assert out.returncode == 0, out.stderr
    total = _query(db, "SELECT sum(weight) FROM samples")[0][0]
    with page(target) as (tab, errors):
        assert tab.locator("#samples").inner_text().replace(",", "") == str(total)
        assert tab.locator("#functions tr").nth(1).locator("td").first.inner_text() == "work"
        root = tab.locator(".f").first
        assert root.get_attribute("data-samples") == str(total)
        work = tab.locator(".f", has_text="work (")
        assert work.count() > 0
        work.first.click()  # zoom in: the frame becomes the whole width
        assert tab.locator(".f").first.inner_text().startswith("work (")
        assert errors == []


def test_without_pyspy_the_counts_stay(tmp_path: Path) -> None:
    missing = str(tmp_path / "no-py-spy")
    db, out = _run(tmp_path, PY, env={"PROBE_PY_SPY": missing})
    warnings = [ln for ln in out.stderr.splitlines() if "not found" in ln]
    assert warnings == [f"probe: {missing} not found: no sampled stacks (exact counts are kept)"]
    assert _query(db, "SELECT count(*) FROM samples")[0][0] == 0
    assert (
        _query(
            db,
            "SELECT c.count FROM sites s JOIN counts c USING (run_id, site_id) "
            "WHERE s.kind = 'func' AND s.func = 'slow'",
        )[0][0]
        == 60
    )


def test_a_sampler_that_cannot_attach_is_said_once(tmp_path: Path) -> None:
    """The program doesn't wait for py-spy to attach; a py-spy that fails (as with no ptrace
    in a container: here a stand-in that says what py-spy says there) is reported at the
    end, in one line with its reason, and the exact counts are kept."""
    fake = tmp_path / "py-spy"
    fake.write_text(
        "#!/bin/sh\necho 'Error: Failed to attach to process: Operation not permitted "
        "(os error 1)' >&2\nexit 1\n"
    )
    fake.chmod(0o755)
    db, out = _run(tmp_path, PY, env={"PROBE_PY_SPY": str(fake)})
    said = [ln for ln in out.stderr.splitlines() if "py-spy" in ln]
    assert said == [
        "probe: py-spy can't sample this process (Failed to attach to process: Operation "
        "not permitted (os error 1)): no sampled stacks (exact counts are kept)"
    ], out.stderr
    assert _query(db, "SELECT count(*) FROM samples")[0][0] == 0
    slow = "WHERE s.kind = 'func' AND s.func = 'slow'"
    counted = f"SELECT c.count FROM sites s JOIN counts c USING (run_id, site_id) {slow}"
    assert _query(db, counted)[0][0] == 60


def test_without_a_summary_samples_are_read_at_ingest(tmp_path: Path) -> None:
    """With no summary to print (-q), the run doesn't wait for py-spy to stop and write:
    the samples are read when the run is stored, and the next reader sees them."""
    db, out = _run(tmp_path, PY, "-q", "--rate", "997")
    assert out.stderr == ""
    top = _query(
        db,
        "SELECT k.frames[-1].func, sum(s.weight) FROM samples s JOIN stacks k "
        "USING (run_id, stack_id) GROUP BY 1 ORDER BY 2 DESC LIMIT 1",
    )
    assert top[0][0] == "work", top
    units = {u for (u,) in _query(db, "SELECT DISTINCT unnest(frames).unit FROM stacks")}
    assert units == {str(PROGRAMS / "hot.py")}, units
    assert _query(db, "SELECT status, message FROM runs") == [("ok", None)]
    assert list(Path(f"{db}.spool").glob("*/*")) == []  # nothing of the run left behind


def test_samples_lost_at_ingest_are_said_in_the_run(tmp_path: Path) -> None:
    """A py-spy that attached but wrote nothing when told to stop (a stand-in that says it
    samples, then exits on SIGINT): the run, stored, says so; its counts are kept."""
    fake = tmp_path / "py-spy"
    fake.write_text(
        "#!/bin/sh\ntrap 'echo Error: no luck >&2; exit 3' INT\n"
        "echo 'py-spy> Sampling process 100 times a second. Press Control-C to exit.'\n"
        "while :; do sleep 0.01; done\n"
    )
    fake.chmod(0o755)
    db, out = _run(tmp_path, PY, "-q", env={"PROBE_PY_SPY": str(fake)})
    assert _query(db, "SELECT status, message FROM runs") == [
        ("ok", "py-spy wrote no samples (no luck): exact counts are kept")
    ]
    assert _query(db, "SELECT count(*) FROM samples")[0][0] == 0
    slow = "WHERE s.kind = 'func' AND s.func = 'slow'"
    counted = f"SELECT c.count FROM sites s JOIN counts c USING (run_id, site_id) {slow}"
    assert _query(db, counted)[0][0] == 60


def test_yama_restricted_ptrace(tmp_path: Path) -> None:
    scope = Path("/proc/sys/kernel/yama/ptrace_scope")
    if not scope.exists() or scope.read_text().strip() != "1":
        pytest.skip("this machine has no Yama ptrace_scope 1 (the unrestricted case is above)")
    db, _ = _run(tmp_path)
    assert _query(db, "SELECT sum(weight) FROM samples")[0][0] > 0


def test_wasm_shadow_stack_pops_at_every_exit(tmp_path: Path) -> None:
    """h leaves by a branch to its function's label, g by a tail call to h: the stacks the
    sampler saw are exactly f > h > spin and f > k > spin (and their prefixes)."""
    db = tmp_path / "p.db"
    out = run_probe(
        PY, "run", "-a", "hotpaths", "--rate", "1000", "--db", str(db),
        str(PROGRAMS / "stacks.wat"), cwd=tmp_path,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    found = _query(
        db,
        "SELECT [f.func FOR f IN frames], sum(weight) FROM samples "
        "JOIN stacks USING (run_id, stack_id) GROUP BY 1",
    )
    stacks = {tuple(s): n for s, n in found}
    whole = {("_start", "f", "h", "spin"), ("_start", "f", "k", "spin")}
    prefixes = {w[:i] for w in whole for i in range(1, 5)}
    assert set(stacks) <= prefixes, stacks
    assert stacks[("_start", "f", "h", "spin")] > 50 and stacks[("_start", "f", "k", "spin")] > 50
    text = run_probe(PY, "report", "hotpaths", "--db", str(db), cwd=tmp_path).stdout
    assert re.search(r"^spin\s+\d+", text, re.M) and "_start > f > h > spin" in text


# Each block of a profiled function ran as often as the paths through it: a block count
# (hotness's probe, placed apart) against the sum of the path counts containing the block.
MISMATCHES = """
WITH b AS (SELECT s.func, s."offset" AS o, c.count FROM sites s
           JOIN counts c USING (run_id, site_id) WHERE s.kind = 'block'),
     p AS (SELECT f.func, unnest(p.blocks) AS o, p.count FROM paths p
           JOIN sites f USING (run_id, site_id)),
     ps AS (SELECT func, o, sum(count) AS n FROM p GROUP BY ALL)
SELECT DISTINCT b.func FROM b LEFT JOIN ps USING (func, o) WHERE coalesce(ps.n, 0) <> b.count
"""


def _paths_run(tmp_path: Path, *args: str) -> tuple[Path, str]:
    db = tmp_path / "p.db"
    out = run_probe(PY, "run", "-a", "hotpaths", "--db", str(db), *args, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    return db, out.stderr


def test_ball_larus_paths_of_a_known_program(tmp_path: Path) -> None:
    db, summary = _paths_run(tmp_path, str(PROGRAMS / "paths.wat"))
    assert "hottest acyclic paths" in summary
    paths = _query(
        db,
        "SELECT f.func, p.path, p.count, p.blocks FROM paths p JOIN sites f "
        "USING (run_id, site_id) ORDER BY f.func, p.path",
    )
    # f: the first iteration (from the entry), i = 1, 2 (i < 3: the if without else taken),
    # three odd and three even iterations, and the last (odd, leaving the loop)
    f = [(count, len(blocks)) for func, _, count, blocks in paths if func == "f"]
    assert sorted(f) == [(1, 5), (1, 5), (1, 5), (1, 6), (3, 4), (3, 4)], f
    # g: n = 22 (br_table back to the loop), 21 (forward, then br back), 20 (forward, br_if
    # back), 19 (forward, out of the function)
    g = [(count, blocks) for func, _, count, blocks in paths if func == "g"]
    assert [c for c, _ in g] == [1, 1, 1, 1] and len({tuple(b) for _, b in g}) == 4
    assert len({(func, number) for func, number, _, _ in paths}) == len(paths)
    assert _query(db, MISMATCHES) == []


@pytest.mark.parametrize(
    "args",
    [
        ["--invoke", "classify", str(REPO / "samples/wasm/switch.wat"), "12"],
        [str(REPO / "samples/wasm/kernels.wasm"), "--", "sort", "1"],
        [str(REPO / "samples/wasm/kernels.wasm"), "--", "compress", "1"],
    ],
    ids=["switch", "sort", "compress"],
)
def test_paths_agree_with_block_counts(tmp_path: Path, args: list[str]) -> None:
    db, stderr = _paths_run(tmp_path, *args)
    assert _query(db, "SELECT count(*) FROM paths")[0][0] > 0
    unprofiled = re.search(
        r"no path profile of \d+ functions with more than [\d,]+ paths: (.*)", stderr
    )
    skipped = set(unprofiled.group(1).split(", ")) if unprofiled else set()
    assert {func for (func,) in _query(db, MISMATCHES)} <= skipped


NESTED = """class A:
    def m(self):
        def inner():
            return 1
        return inner()

    class B:
        def n(self):
            return 2


def outer():
    def mid():
        def deep():
            return 3
        return deep()
    return mid()


A().m(); A.B().n(); outer()
"""


def test_functions_have_one_name_in_lines_and_calls(tmp_path: Path) -> None:
    """A nested function's lines and its entries name it alike (co_qualname), so that its
    lines run and its calls meet in one row of the report."""
    (tmp_path / "nest.py").write_text(NESTED)
    db, _ = _paths_run(tmp_path, str(tmp_path / "nest.py"))
    kinds = dict(
        _query(db, "SELECT func, list(DISTINCT kind ORDER BY kind) FROM sites GROUP BY func")
    )
    deep = "outer.<locals>.mid.<locals>.deep"
    assert kinds["A.m.<locals>.inner"] == kinds[deep] == kinds["A.B.n"] == ["func", "line"]
    report = run_probe(PY, "report", "hotpaths", "--db", str(db), cwd=tmp_path).stdout
    assert re.search(rf"^{re.escape(deep)} \(nest\.py\)(\s+\S+){{4}}\s+1\s+1$", report, re.M), (
        report
    )


@pytest.mark.parametrize("python", INTERPRETERS, ids=version_of)
def test_starts_counted_in_the_bytecode_equal_the_interpreters(python: str, tmp_path: Path) -> None:
    """hotpaths counts function starts by an increment after RESUME; the calls analysis
    counts them from the interpreter's start events (sys.monitoring or settrace)."""
    counts = {}
    for analyses in (["-a", "hotpaths"], ["-a", "hotness", "-a", "calls"]):
        db = tmp_path / f"{analyses[1]}.db"
        out = run_probe(
            python, "run", "-q", *analyses, "--db", str(db), str(PROGRAMS / "starts.py"),
            cwd=tmp_path,
        )  # fmt: skip
        assert out.returncode == 0, out.stderr
        counts[analyses[1]] = _query(
            db,
            "SELECT s.func, s.line, c.count FROM sites s JOIN counts c USING (run_id, site_id) "
            "WHERE s.kind = 'func' ORDER BY ALL",
        )
    assert counts["hotpaths"] == counts["hotness"]
    assert ("outer.<locals>.inner", 31, 50) in counts["hotpaths"]
    assert ("gen", 9, 11) in counts["hotpaths"]  # ten sums and the one left suspended


LEAVES = """\
import os, threading, time
def spin():
    while True:
        time.sleep(0.001)
        spun = 1
def leave():
    print("bye", flush=True)
    os._exit(0)
    never = 1
threading.Thread(target=spin, daemon=True).start()
time.sleep(0.05)
leave()
"""


@pytest.mark.parametrize("python", INTERPRETERS, ids=version_of)
def test_lines_after_where_frames_stopped_did_not_run(python: str, tmp_path: Path) -> None:
    """Lines in a straight run share one increment (3.12+): where a frame is still in the
    middle of one at the end (os._exit, a daemon thread), the lines after it did not run."""
    (tmp_path / "leaves.py").write_text(LEAVES)
    db = tmp_path / "l.db"
    out = run_probe(
        python, "run", "-q", "-a", "hotness", "--db", str(db), "leaves.py", cwd=tmp_path
    )
    assert out.returncode == 0 and out.stdout == "bye\n", out.stderr
    lines = dict(
        _query(db, "SELECT s.line, c.count FROM sites s JOIN counts c USING (run_id, site_id) "
                   "WHERE s.kind = 'line'")
    )  # fmt: skip
    assert lines[8] == 1 and 9 not in lines  # os._exit(0) ran, `never = 1` did not
    assert lines[4] - 1 <= lines.get(5, 0) <= lines[4]  # the thread stopped at a sleep, or after
