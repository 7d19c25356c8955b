"""Timelines: a run's calls and events as a Perfetto trace (parsed back with the perfetto
package's own protos) and as Chrome's trace-event JSON, for Python and Wasm runs."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from conftest import INTERPRETERS, SAMPLES, probe_rows, run_probe, version_of

PROGRAM = """\
def fib(n):
    return n if n < 2 else fib(n - 1) + fib(n - 2)


def boom(x):
    if x:
        raise ValueError(x)
    return 0


def gen():
    yield 1
    yield 2


try:
    boom(1)
except ValueError:
    pass
print(fib(8), sum(gen()))
"""


def _perfetto(path: Path) -> tuple[list[tuple[int, int, str | None]], dict[int, str]]:
    """(timestamp, type, name) of each TrackEvent, and the interned names."""
    from perfetto.protos.perfetto.trace import perfetto_trace_pb2 as pb

    trace = pb.Trace()
    trace.ParseFromString(path.read_bytes())
    names: dict[int, str] = {}
    events = []
    for packet in trace.packet:
        if packet.HasField("interned_data"):
            names.update({e.iid: e.name for e in packet.interned_data.event_names})
        if packet.HasField("track_event") and packet.trusted_packet_sequence_id == 1:
            event = packet.track_event
            name = names.get(event.name_iid) if event.HasField("name_iid") else None
            # (an end may carry a name too, its return site's: Perfetto reads none there)
            events.append((packet.timestamp, event.type, name))
    return events, names


def _tracks(path: Path) -> dict[str, list]:
    """The samples' and counters' tracks by name (a thread's name, a counter's): their
    events as (timestamp, type, name or value)."""
    from perfetto.protos.perfetto.trace import perfetto_trace_pb2 as pb

    trace = pb.Trace()
    trace.ParseFromString(path.read_bytes())
    named: dict[int, str] = {}
    by_uuid: dict[int, list] = {}
    for packet in trace.packet:
        if packet.HasField("track_descriptor"):
            d = packet.track_descriptor
            named[d.uuid] = d.thread.thread_name if d.HasField("thread") else d.name
        elif packet.HasField("track_event") and packet.trusted_packet_sequence_id == 2:
            e = packet.track_event
            what = e.name if e.type != 4 else e.counter_value or e.double_counter_value
            by_uuid.setdefault(e.track_uuid, []).append((packet.timestamp, e.type, what))
    return {named[u]: events for u, events in by_uuid.items()}


def _slices_pair(types: list[int]) -> None:
    depth = 0
    for t in types:
        depth += 1 if t == 1 else -1 if t == 2 else 0
        assert depth >= 0  # no end before its beginning
    assert depth == 0


def _trace_calls(python: str, cwd: Path, program: str) -> None:
    """``program`` run as app.py with its calls and returns traced."""
    (cwd / "app.py").write_text(program)
    run = ["run", "-q", "-a", "trace", "--sites", "func", "--sites", "return", "app.py"]
    ran = run_probe(python, *run, cwd=cwd)
    assert ran.returncode == 0, ran.stderr


def _calls(python: str, cwd: Path) -> list[str]:
    """The functions of the run's call events, in order, as the database has them."""
    sql = "SELECT func FROM trace WHERE kind = 'func' ORDER BY seq"
    return [r["func"] for r in probe_rows(python, sql, cwd)]


@pytest.mark.parametrize("python", INTERPRETERS, ids=version_of)
def test_a_python_run_as_a_perfetto_trace(python: str, tmp_path: Path) -> None:
    _trace_calls(python, tmp_path, PROGRAM)
    made = run_probe(python, "report", "trace", "-f", "perfetto", "-o", "run.pftrace", cwd=tmp_path)
    assert made.returncode == 0, made.stderr
    events, _ = _perfetto(tmp_path / "run.pftrace")
    begins = [name for _, t, name in events if t == 1]
    assert begins == _calls(python, tmp_path)  # a slice per call, in order, named
    assert begins.count("fib") == 67 and "boom" in begins and "gen" in begins
    _slices_pair([t for _, t, _ in events])  # boom's raise ends its slice too
    times = [ts for ts, _, _ in events]
    assert times == sorted(times)


def test_a_wasm_run_as_perfetto_and_chrome_json(tmp_path: Path) -> None:
    shutil.copy(SAMPLES / "wasm" / "fib.wat", tmp_path)
    python = INTERPRETERS[0]
    ran = run_probe(
        python, "run", "-q", "-a", "trace", "--sites", "func", "--sites", "return", "--invoke",
        "fib", "fib.wat", "10",
        cwd=tmp_path,
        env={"PROBE_CACHE": str(tmp_path / "cache")},
    )  # fmt: skip
    assert ran.returncode == 0, ran.stderr
    calls = _calls(python, tmp_path)
    assert len(calls) == 177  # fib(10)'s calls
    run_probe(python, "report", "trace", "-f", "perfetto", "-o", "run.pftrace", cwd=tmp_path)
    events, _ = _perfetto(tmp_path / "run.pftrace")
    assert [name for _, t, name in events if t == 1] == calls
    _slices_pair([t for _, t, _ in events])
    made = run_probe(python, "report", "trace", "-f", "chrome-json", cwd=tmp_path)
    assert made.returncode == 0, made.stderr
    trace = json.loads(made.stdout)["traceEvents"]
    assert [e["name"] for e in trace if e["ph"] == "B"] == calls
    _slices_pair([{"B": 1, "E": 2}.get(e["ph"], 3) for e in trace])
    assert all(e["pid"] == 1 and e["tid"] == 1 for e in trace if e["ph"] in "BE")


def test_a_default_trace_has_lines_as_instants_and_calls_as_slices(tmp_path: Path) -> None:
    """`-a trace` with no --sites: the reports show lines, the timeline its calls too."""
    (tmp_path / "app.py").write_text(PROGRAM)
    python = INTERPRETERS[0]
    assert run_probe(python, "run", "-q", "-a", "trace", "app.py", cwd=tmp_path).returncode == 0
    run_probe(python, "report", "trace", "-f", "perfetto", "-o", "run.pftrace", cwd=tmp_path)
    events, _ = _perfetto(tmp_path / "run.pftrace")
    rows = probe_rows(python, "SELECT kind, count(*) AS n FROM trace GROUP BY 1", tmp_path)
    kinds = {r["kind"]: r["n"] for r in rows}
    assert sum(1 for _, t, _ in events if t == 3) == kinds["line"]
    assert [name for _, t, name in events if t == 1] == _calls(python, tmp_path)
    _slices_pair([t for _, t, _ in events])
    assert events[0][2] == "<module>" and events[1][2].startswith("line <module>:")
    shown = json.loads(run_probe(python, "report", "trace", "-f", "json", cwd=tmp_path).stdout)
    assert {e["kind"] for e in shown} == {"line"} and len(shown) == kinds["line"]
    assert run_probe(python, "run", "-q", "app.py", cwd=tmp_path).returncode == 0
    other = run_probe(python, "report", "coverage", "-f", "perfetto", cwd=tmp_path)
    assert other.returncode == 2 and "not 'perfetto'" in other.stderr, other.stderr
    assert len(other.stderr.strip().splitlines()) == 1


CALLS_WAT = """\
(module
  (func $nothing)
  (func $two (param i32 i64) (result i32) (i32.wrap_i64 (local.get 1)))
  (func $main (export "main") (result i32)
    (call $nothing)
    (drop (call $two (i32.const 1) (i64.const 2)))
    (call $two (i32.const 3) (i64.const 4))))
"""


def test_wasm_calls_of_any_signature_are_one_slice_each(tmp_path: Path) -> None:
    """An entry records an event per numeric argument (and one where there is none), an exit
    its value (0 where there is none): the timeline makes each call one slice."""
    (tmp_path / "calls.wat").write_text(CALLS_WAT)
    python = INTERPRETERS[0]
    ran = run_probe(
        python, "run", "-q", "-a", "trace", "--sites", "func", "--sites", "return", "--invoke",
        "main", "calls.wat",
        cwd=tmp_path,
        env={"PROBE_CACHE": str(tmp_path / "cache")},
    )  # fmt: skip
    assert ran.returncode == 0 and ran.stdout.strip() == "4", ran.stderr
    kinds = run_probe(python, "query", "-f", "csv", "SELECT kind FROM trace ORDER BY seq",
                      cwd=tmp_path).stdout.split()[1:]  # fmt: skip
    # main (no argument: one event), nothing (one), its exit, two's two arguments, its exit...
    assert kinds.count("return") == 4 and kinds.count("func") == 1 + 1 + 2 + 2
    run_probe(python, "report", "trace", "-f", "perfetto", "-o", "run.pftrace", cwd=tmp_path)
    events, _ = _perfetto(tmp_path / "run.pftrace")
    assert [(t, name if t != 2 else None) for _, t, name in events] == [
        (1, "main"), (1, "nothing"), (2, None), (1, "two"), (2, None), (1, "two"), (2, None),
        (2, None),
    ]  # fmt: skip


THREADS = """\
import threading


def work(n):
    t = 0
    for i in range(n):
        t += i % 7
    return t


def helper():
    return work(4_000_000)


th = threading.Thread(target=helper, name="helper")
th.start()
for _ in range(4):
    work(1_000_000)
th.join()
"""


def test_samples_are_a_flame_chart_per_thread_and_counters_are_counter_tracks(
    tmp_path: Path,
) -> None:
    """A sampled run (hotpaths) as a timeline: a track per sampled thread, named as the
    database names it, its stacks as slices that begin and end in pairs, the inner frames
    inside the outer; a counter track per thread whose counts add up to its samples; the
    run's perf counters as counter tracks ending at their value. Chrome's JSON the same."""
    (tmp_path / "threads.py").write_text(THREADS)
    python = INTERPRETERS[0]
    ran = run_probe(
        python, "run", "-q", "-a", "hotpaths", "--counters", "task-clock", "threads.py",
        cwd=tmp_path,
    )  # fmt: skip
    assert ran.returncode == 0, ran.stderr
    sql = "SELECT thread, sum(weight) AS n FROM samples GROUP BY thread"
    rows = probe_rows(python, sql, tmp_path)
    samples = {r["thread"].partition(" ")[2]: r["n"] for r in rows}
    labels = {r["thread"].partition(" ")[2]: r["thread"] for r in rows}
    assert {"MainThread", "helper"} <= set(samples), samples
    made = run_probe(python, "report", "hotpaths", "-f", "perfetto", "-o", "s.pftrace",
                     cwd=tmp_path)  # fmt: skip
    assert made.returncode == 0, made.stderr
    tracks = _tracks(tmp_path / "s.pftrace")
    for thread, n in samples.items():
        slices = tracks[thread]
        _slices_pair([t for _, t, _ in slices])
        times = [ts for ts, _, _ in slices]
        assert times == sorted(times)
        assert "work" in {name for _, t, name in slices if t == 1}
        counts = [v for _, _, v in tracks[f"samples per 100 ms: {labels[thread]}"]]
        assert sum(counts) == n
    sql = "SELECT value FROM counters WHERE event = 'task-clock' AND status = 'ok'"
    counted = probe_rows(python, sql, tmp_path)
    if counted:  # perf counts task-clock wherever perf runs at all
        (row,) = counted
        assert [v for _, _, v in tracks["task-clock"]][-1] == pytest.approx(row["value"])
    chrome = run_probe(python, "report", "hotpaths", "-f", "chrome-json", cwd=tmp_path)
    assert chrome.returncode == 0, chrome.stderr
    trace = json.loads(chrome.stdout)["traceEvents"]
    for e in (e for e in trace if e.get("name") == "thread_name"):
        mine = [x for x in trace if x["ph"] in "BE" and x.get("tid") == e["tid"]]
        _slices_pair([{"B": 1, "E": 2}[x["ph"]] for x in mine])
        ours = [t for _, t, _ in tracks[e["args"]["name"]]]
        assert [{"B": 1, "E": 2}[x["ph"]] for x in mine] == ours


TWO_THREADS = """\
import threading


def fib(n):
    return n if n < 2 else fib(n - 1) + fib(n - 2)


def worker():
    for _ in range(50):
        fib(9)


threads = [threading.Thread(target=worker) for _ in range(2)]
for t in threads:
    t.start()
for _ in range(50):
    fib(8)
for t in threads:
    t.join()
"""


@pytest.mark.parametrize("python", INTERPRETERS, ids=version_of)
def test_calls_of_each_thread_are_slices_on_its_own_track(python: str, tmp_path: Path) -> None:
    """Three threads calling at once: their calls interleave in the events, and each
    thread's are slices on a track of its own that begin and end in pairs, as many as the
    database has calls on that thread; Chrome's JSON the same, by tid."""
    _trace_calls(python, tmp_path, TWO_THREADS)
    sql = "SELECT thread, count(*) AS calls FROM trace WHERE kind = 'func' GROUP BY thread"
    calls = {r["thread"]: r["calls"] for r in probe_rows(python, sql, tmp_path)}
    assert len(calls) == 3 and None not in calls, calls
    made = run_probe(python, "report", "trace", "-f", "perfetto", "-o", "t.pftrace", cwd=tmp_path)
    assert made.returncode == 0, made.stderr
    from perfetto.protos.perfetto.trace import perfetto_trace_pb2 as pb

    trace = pb.Trace()
    trace.ParseFromString((tmp_path / "t.pftrace").read_bytes())
    tid_of = {
        p.track_descriptor.uuid: p.track_descriptor.thread.tid
        for p in trace.packet
        if p.HasField("track_descriptor") and p.track_descriptor.HasField("thread")
    }
    per: dict[int, list[int]] = {}
    for p in trace.packet:
        if p.HasField("track_event"):
            per.setdefault(tid_of[p.track_event.track_uuid], []).append(p.track_event.type)
    assert {tid: t.count(1) for tid, t in per.items()} == calls
    for types in per.values():
        _slices_pair(types)
    chrome = run_probe(python, "report", "trace", "-f", "chrome-json", cwd=tmp_path)
    events = json.loads(chrome.stdout)["traceEvents"]
    for tid, n in calls.items():
        mine = [
            {"B": 1, "E": 2}[e["ph"]] for e in events if e.get("tid") == tid and e["ph"] in "BE"
        ]
        assert mine.count(1) == n
        _slices_pair(mine)
