"""Hardware and software counters from Linux perf, for a whole run.

`perf stat -x, -p PID` runs as a subprocess attached to probe's own process for the length
of the run (the program runs in this process, on either engine), and its CSV is read back
into the ``counters`` table. Events perf reports as ``<not supported>`` (hardware events in
most virtual machines) or ``<not counted>`` are recorded with that status and no value, never
as zero; multiplexed events keep perf's running time and share of the enabled time.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from typing import Any

from probe.errors import PerfError

# What stands in when hardware events are missing: always counted, in any VM.
SOFTWARE = ("task-clock", "page-faults", "context-switches")


@dataclass
class Reading:
    event: str
    value: float | None  # None unless status is 'ok'
    unit: str
    status: str  # 'ok', 'unsupported', 'not counted'
    time_enabled: int | None  # ns
    time_running: int | None  # ns


def parse_stat_csv(text: str) -> list[Reading]:
    """Readings from `perf stat -x,` output (comment and blank lines skipped)."""
    found = []
    for line in text.splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        fields = line.split(",")
        if len(fields) < 3:
            continue
        raw, unit, event = fields[0], fields[1], fields[2]
        running = _int(fields[3]) if len(fields) > 3 else None
        share = _float(fields[4]) if len(fields) > 4 else None
        enabled = round(running * 100 / share) if running and share else running
        if raw == "<not supported>":
            found.append(Reading(event, None, unit, "unsupported", None, None))
        elif raw == "<not counted>":
            found.append(Reading(event, None, unit, "not counted", enabled, running))
        else:
            found.append(Reading(event, _float(raw), unit, "ok", enabled, running))
    return found


def _int(text: str) -> int | None:
    try:
        return int(text)
    except ValueError:
        return None


def _float(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


class Stat:
    """`perf stat` attached to this process from start() to stop()."""

    def __init__(self, events: list[str]) -> None:
        if not events:
            raise PerfError("--counters needs at least one event")
        if shutil.which("perf") is None:
            raise PerfError("perf is not installed (apt-get install linux-perf)")
        # Hardware events may be missing (VMs): software ones come along, so a run always has
        # real numbers beside the unsupported ones.
        wanted = list(events)
        if any(e not in SOFTWARE for e in wanted):
            wanted += SOFTWARE
        self.events = list(dict.fromkeys(wanted))
        self._proc: subprocess.Popen | None = None
        self._out = ""

    def start(self) -> None:
        fd, self._out = tempfile.mkstemp(prefix="probe-perf-", suffix=".csv")
        os.close(fd)
        cmd = ["perf", "stat", "-x,", "-e", ",".join(self.events), "-p", str(os.getpid())]
        self._proc = subprocess.Popen(
            [*cmd, "-o", self._out],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
        # perf counts from when it holds its perf_event file descriptors: wait for those.
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                err = self._proc.stderr.read().decode(errors="replace") if self._proc.stderr else ""
                raise PerfError(f"perf stat failed: {_first_line(err)}")
            if _holds_perf_events(self._proc.pid):
                return
            time.sleep(0.002)

    def stop(self) -> list[Reading]:
        if self._proc is None:
            return []
        proc, self._proc = self._proc, None
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        try:
            with open(self._out, encoding="utf-8") as f:
                readings = parse_stat_csv(f.read())
        finally:
            os.unlink(self._out)
        note_unsupported([r.event for r in readings if r.status == "unsupported"])
        missing = [e for e in self.events if e not in {r.event for r in readings}]
        if missing:  # perf was killed, or failed, while the run went on
            print(
                f"probe: perf stat gave no reading of {', '.join(missing)} (was it killed?): "
                "recorded as not counted",
                file=sys.stderr,
            )
            readings += [Reading(e, None, "", "not counted", None, None) for e in missing]
        return readings


def open_region(events: list[str]) -> Any:
    """Counters for a region (start(), stop() -> readings): callgrind's exact instructions
    in a process under it, else a perf_event_open group with software events standing in
    for missing ones."""
    from . import callgrind

    if callgrind.inside() and events == ["instructions"]:
        return callgrind.Callgrind()
    from .region import Region

    return Region(events, fallback=True)


_announced: set[str] = set()


def note_unsupported(events: list[str]) -> None:
    """Say, once per process and event, that the machine lacks these counters."""
    new = [e for e in events if e not in _announced]
    if not new:
        return
    _announced.update(new)
    print(
        f"probe: counters {', '.join(new)} are not supported here (a virtual machine, "
        f"or perf_event_paranoid); recorded as unsupported. Software events work: "
        f"{', '.join(SOFTWARE)}",
        file=sys.stderr,
    )


def _holds_perf_events(pid: int) -> bool:
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return False
    for fd in fds:
        try:
            if "perf_event" in os.readlink(f"/proc/{pid}/fd/{fd}"):
                return True
        except OSError:
            continue
    return False


def _first_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[0] if lines else "unknown error"
