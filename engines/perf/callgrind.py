"""Exact instruction counts from valgrind's callgrind, where hardware counters are missing.

``probe run --counters-backend callgrind`` starts probe again inside
``valgrind --tool=callgrind`` (20-50x slower). Inside, a region is counted by
two dumps through ``callgrind_control``: the first zeroes callgrind's counts,
the second writes the instructions executed since (its ``totals:`` line).
The count covers the whole process in that interval: the program, and
probe's own work for it, as ``perf stat`` would count it, less what the two
dumps cost (measured once, on an empty region).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from . import PerfError, Reading

ENV = "PROBE_CALLGRIND_OUT"  # set inside valgrind: where callgrind writes its dumps


def inside() -> bool:
    """Whether this process runs under probe's callgrind."""
    return bool(os.environ.get(ENV))


def relaunch(argv: list[str]) -> None:
    """Replace this process with ``python -m probe ARGV`` under callgrind (does not return)."""
    if shutil.which("valgrind") is None or shutil.which("callgrind_control") is None:
        raise PerfError("--counters-backend callgrind needs valgrind (apt-get install valgrind)")
    out = Path(tempfile.mkdtemp(prefix="probe-callgrind-")) / "callgrind.out"
    env = dict(os.environ, **{ENV: str(out)})
    cmd = [
        "valgrind",
        "--tool=callgrind",
        "--quiet",
        f"--callgrind-out-file={out}",
        sys.executable,
        "-m",
        "probe",
        *argv,
    ]
    sys.stdout.flush()
    sys.stderr.flush()
    os.execvpe("valgrind", cmd, env)


class Callgrind:
    """Instructions executed by this process between start() and stop(), from callgrind."""

    events = ["instructions"]

    def __init__(self) -> None:
        if not inside():
            raise PerfError("callgrind counts only in a process run under it")
        self.out = Path(os.environ[ENV])
        self._pid = str(os.getpid())
        # What the dumps themselves cost between the two (waiting for callgrind_control,
        # finding the file), measured on an empty region and taken off every count.
        self.offset = 0
        self.start()
        self.offset = int(self.stop()[0].value or 0)

    def _dump(self, label: str) -> Path:
        before = set(self.out.parent.glob(self.out.name + ".*"))
        status = subprocess.call(
            ["callgrind_control", f"--dump={label}", self._pid],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        after = set(self.out.parent.glob(self.out.name + ".*")) - before
        if status != 0 or not after:
            raise PerfError(f"callgrind_control --dump failed (status {status})")
        return max(after, key=lambda p: p.stat().st_mtime_ns)

    def start(self) -> None:
        self._dump("probe-start").unlink()  # a dump zeroes the counts: they start here

    def stop(self) -> list[Reading]:
        dump = self._dump("probe-stop")
        try:
            total = parse_totals(dump.read_text())
        finally:
            dump.unlink()
        return [Reading("instructions", float(max(total - self.offset, 0)), "", "ok", None, None)]

    def close(self) -> None:
        pass


def parse_totals(text: str) -> int:
    """The instruction count (Ir) of a callgrind dump."""
    for line in text.splitlines():
        if line.startswith(("totals:", "summary:")):
            return int(line.split()[1])
    raise PerfError("a callgrind dump without totals")
