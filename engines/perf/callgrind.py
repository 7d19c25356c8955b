"""Exact instruction counts from valgrind's callgrind, where hardware counters are missing.

``probe run --counters-backend callgrind`` runs probe again inside
``valgrind --tool=callgrind`` (20-50x slower). Inside, a point of the execution
is marked by asking callgrind for a dump there, through a client request (the
way valgrind.h asks, so the point is exact to the instruction); each dump holds
the instructions executed since the one before, and a region is the sum of the
dumps between its two points. The dumps are read after the region, so reading
them is never counted. The count covers the whole process in that interval:
the program, and probe's own work for it, as ``perf stat`` would count it,
less what marking two points costs (measured on empty regions).
"""

from __future__ import annotations

import ctypes
import mmap
import os
import platform
import shutil
import subprocess
import sys
import tempfile

from probe.errors import PerfError

from . import Reading

ENV = "PROBE_CALLGRIND_OUT"  # set inside valgrind: where callgrind writes its dumps


def inside() -> bool:
    """Whether this process runs under probe's callgrind."""
    return bool(os.environ.get(ENV))


def check(events: list[str]) -> None:
    """PerfError unless ``events`` are what callgrind counts."""
    if any(e != "instructions" for e in events):
        raise PerfError("callgrind counts instructions only: --counters instructions")


def relaunch(argv: list[str], events: list[str]) -> None:
    """Unless this process runs under probe's callgrind already: run ``python -m probe ARGV``
    under it, then exit with its status."""
    if inside():
        return
    check(events)
    if shutil.which("valgrind") is None:
        raise PerfError("--counters-backend callgrind needs valgrind (apt-get install valgrind)")
    if platform.machine() != "x86_64":
        raise PerfError("the callgrind backend counts on x86-64 only")
    folder = tempfile.mkdtemp(prefix="probe-callgrind-")
    out = os.path.join(folder, "callgrind.out")
    cmd = ["valgrind", "--tool=callgrind", "--quiet", f"--callgrind-out-file={out}"]
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        status = subprocess.call(
            [*cmd, sys.executable, "-m", "probe", *argv], env=dict(os.environ, **{ENV: out})
        )
    except KeyboardInterrupt:  # the run under valgrind had it too, and saved itself
        status = 130
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    sys.exit(status if status >= 0 else 128 - status)


# Valgrind's client request on x86-64, as valgrind.h spells it: rotations of rdi that undo
# themselves and `xchg rbx, rbx`, a no-op on a real CPU that valgrind recognises. The
# function takes a pointer to (request, arg1..arg5) and returns valgrind's answer (0 if none).
_CLIENT_REQUEST = bytes.fromhex(
    "53"  # push rbx
    "4889f8"  # mov rax, rdi: the argument block
    "31d2"  # xor edx, edx: the answer when not under valgrind
    "48c1c703"  # rol rdi, 3
    "48c1c70d"  # rol rdi, 13
    "48c1c73d"  # rol rdi, 61
    "48c1c733"  # rol rdi, 51
    "4887db"  # xchg rbx, rbx
    "4889d0"  # mov rax, rdx
    "5b"  # pop rbx
    "c3"  # ret
)
_DUMP_STATS = (ord("C") << 24) | (ord("T") << 16)  # CALLGRIND_DUMP_STATS
_request: tuple | None = None  # the function, and the page that holds its code
_points = 0  # dumps asked for so far; callgrind numbers its dump files the same way
_dumped: dict[int, int] = {}  # instructions in each dump read so far


def _client_request(code: int) -> int:
    global _request
    if _request is None:
        page = mmap.mmap(-1, mmap.PAGESIZE, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)
        page.write(_CLIENT_REQUEST)
        address = ctypes.addressof(ctypes.c_char.from_buffer(page))
        _request = (ctypes.CFUNCTYPE(ctypes.c_ulong, ctypes.c_void_p)(address), page)
    block = (ctypes.c_ulong * 6)(code, 0, 0, 0, 0, 0)
    return _request[0](ctypes.addressof(block))


def point() -> int:
    """Mark this point of the execution; its number."""
    global _points
    _client_request(_DUMP_STATS)
    _points += 1
    return _points


def between(first: int, last: int) -> int:
    """Instructions executed from point ``first`` to point ``last``."""
    total = 0
    for k in range(first + 1, last + 1):
        if k not in _dumped:
            path = f"{os.environ[ENV]}.{k}"
            with open(path, "rb") as f:
                _dumped[k] = parse_totals(f.read(16384).decode("utf-8", "replace"))
            os.unlink(path)
        total += _dumped[k]
    return total


class Callgrind:
    """Instructions executed by this process between start() and stop(), from callgrind.
    Regions may nest."""

    events = ["instructions"]

    def __init__(self) -> None:
        if not inside():
            raise PerfError("callgrind counts only in a process run under it")
        self._begin = 0
        self.offset = 0
        empty = []
        for _ in range(3):
            self.start()
            empty.append(int(self.stop()[0].value or 0))
        self.offset = min(empty)

    def start(self) -> None:
        self._begin = point()

    def stop(self) -> list[Reading]:
        end = point()
        value = max(between(self._begin, end) - self.offset, 0)
        return [Reading("instructions", float(value), "", "ok", None, None)]

    def close(self) -> None:
        pass


def parse_totals(text: str) -> int:
    """The instruction count (Ir) of a callgrind dump: its header's summary line."""
    for line in text.splitlines():
        if line.startswith(("summary:", "totals:")):
            return int(line.split()[1])
    raise PerfError("a callgrind dump without a summary")
