"""Whole-run counters from `perf stat`, attached to the run: the counters table."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import PROGRAMS, SAMPLES, query, run_probe

from probe.engines.perf import parse_stat_csv


def _perf_stat_works() -> bool:
    if shutil.which("perf") is None:
        return False
    out = subprocess.run(["perf", "stat", "-e", "task-clock", "true"], capture_output=True)
    return out.returncode == 0


needs_perf = pytest.mark.skipif(
    not _perf_stat_works(), reason="perf is not installed, or perf_event_paranoid forbids it"
)


def hardware_counters() -> bool:
    if shutil.which("perf") is None:
        return False
    out = subprocess.run(
        ["perf", "stat", "-x,", "-e", "instructions", "true"], capture_output=True, text=True
    )
    return out.returncode == 0 and "<not supported>" not in out.stderr


def test_perf_csv_lines_become_readings() -> None:
    # The shapes `perf stat -x,` prints: counted, unsupported, not counted, multiplexed.
    text = (
        "# started on Thu Nov 26 07:00:55 2026\n\n"
        "211.96,msec,task-clock,211962087,100.00,0.553,CPUs utilized\n"
        "<not supported>,,instructions,0,100.00,,\n"
        "<not counted>,,branch-misses,0,0.00,,\n"
        "123456,,cycles,50000000,50.00,,\n"
    )
    got = {r.event: r for r in parse_stat_csv(text)}
    assert got["task-clock"].value == 211.96 and got["task-clock"].unit == "msec"
    assert got["task-clock"].time_enabled == got["task-clock"].time_running == 211962087
    assert got["instructions"].status == "unsupported" and got["instructions"].value is None
    assert got["branch-misses"].status == "not counted" and got["branch-misses"].value is None
    assert got["cycles"].time_running == 50000000 and got["cycles"].time_enabled == 100000000


@needs_perf
@pytest.mark.parametrize("target", ["python", "wasm"])
def test_counters_of_a_run(target: str, tmp_path: Path) -> None:
    if target == "python":
        shutil.copy(PROGRAMS / "calls.py", tmp_path)
        args = ["calls.py"]
    else:
        shutil.copy(SAMPLES / "wasm" / "calc.wasm", tmp_path)
        args = ["calc.wasm", "--", "8"]
    out = run_probe(
        sys.executable, "run", "--counters", "instructions,task-clock", *args, cwd=tmp_path
    )
    assert out.returncode == 0, out.stderr
    assert "counters: " in out.stderr
    run_probe(sys.executable, "runs", cwd=tmp_path)
    db = tmp_path / ".probe" / "probe.duckdb"
    rows = {e: (v, s) for e, v, s in query(db, "SELECT event, value, status FROM counters")}
    assert rows["task-clock"][1] == "ok" and rows["task-clock"][0] > 0
    assert rows["page-faults"][1] == "ok"  # software events come along with hardware ones
    if hardware_counters():
        assert rows["instructions"][1] == "ok" and rows["instructions"][0] > 0
    else:
        assert rows["instructions"] == (None, "unsupported")  # never recorded as zero
        assert out.stderr.count("not supported here") == 1


@needs_perf
def test_an_unknown_event_is_a_one_line_error(tmp_path: Path) -> None:
    shutil.copy(PROGRAMS / "calls.py", tmp_path)
    out = run_probe(sys.executable, "run", "--counters", "no-such-event", "calls.py", cwd=tmp_path)
    assert out.returncode == 2
    assert out.stderr.startswith("probe: error: perf stat failed") and "Traceback" not in out.stderr


def test_region_counters_count_the_region_only() -> None:
    from probe.engines.perf.region import Region

    region = Region(["instructions", "task-clock", "page-faults"])
    if "task-clock" in region.missing:
        pytest.skip(f"perf_event_open refused here: {region.missing['task-clock']}")
    try:
        with region:
            sum(range(10))
        small = {r.event: r for r in region.last}
        with region:
            sum(range(3_000_000))
        big = {r.event: r for r in region.last}
    finally:
        region.close()
    assert small["task-clock"].status == "ok" and big["task-clock"].status == "ok"
    assert big["task-clock"].value > 20 * small["task-clock"].value  # reset between regions
    assert big["task-clock"].unit == "msec" and big["task-clock"].time_running > 0
    if hardware_counters():
        assert big["instructions"].value > small["instructions"].value
    else:
        assert big["instructions"].status == "unsupported" and big["instructions"].value is None


def test_region_refuses_unknown_events() -> None:
    from probe.engines.perf.region import Region

    with pytest.raises(ValueError, match="unknown counter 'no-such'"):
        Region(["task-clock", "no-such"])


@pytest.mark.skipif(
    not hardware_counters(), reason="hardware counters are not available here (a VM, or paranoid)"
)
def test_instructions_of_a_region_grow_with_its_work() -> None:
    from probe.engines.perf.region import Region

    region = Region(["instructions"])
    try:
        with region:
            sum(range(1000))
        small = region.last[0]
        with region:
            sum(range(1_000_000))
        big = region.last[0]
    finally:
        region.close()
    assert small.status == big.status == "ok"
    assert big.value > 100 * small.value > 0


@needs_perf
def test_task_clock_has_one_unit_in_runs_and_regions(tmp_path: Path) -> None:
    # A decorated function's region and the whole run, counted in the same run: the region
    # lies inside the run, so its task-clock can't exceed the run's, whatever the unit.
    (tmp_path / "spin.py").write_text(
        "import probe\n\n"
        "@probe.trace(counters=['task-clock'])\n"
        "def spin():\n"
        "    return sum(i * i for i in range(300_000))\n\n"
        "spin()\n"
    )
    out = run_probe(
        sys.executable, "run", "-q", "--counters", "task-clock", "spin.py", cwd=tmp_path
    )
    assert out.returncode == 0, out.stderr
    run_probe(sys.executable, "runs", cwd=tmp_path)  # ingested now, not by the detached process
    db = tmp_path / ".probe" / "probe.duckdb"
    rows = dict(
        (region, (value, unit))
        for region, value, unit in query(
            db, "SELECT region, value, unit FROM counters WHERE event = 'task-clock'"
        )
    )
    assert set(rows) == {"run", "__main__.spin"}
    assert rows["run"][1] == rows["__main__.spin"][1] == "msec"
    assert 0 < rows["__main__.spin"][0] <= rows["run"][0] < 60_000
