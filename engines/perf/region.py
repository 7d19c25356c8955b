"""Counters around a region of code: perf_event_open(2), a group read, user space only.

For a function call, a Wasm export call, a test: open the events once (``Region(events)``),
then ``with region:`` (or start()/stop()) as often as needed; each stop returns one reading
per event. Events the machine lacks (hardware events in most VMs: the syscall fails with
ENOENT) are reported as unsupported, never as zero; the others are still counted.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import platform
import struct

from probe.errors import UsageError

from . import SOFTWARE, Reading, note_unsupported

_SYSCALL = {"x86_64": 298, "aarch64": 241}.get(platform.machine())
_HARDWARE, _SOFTWARE = 0, 1
EVENTS = {
    "cycles": (_HARDWARE, 0),
    "cpu-cycles": (_HARDWARE, 0),
    "instructions": (_HARDWARE, 1),
    "cache-references": (_HARDWARE, 2),
    "cache-misses": (_HARDWARE, 3),
    "branches": (_HARDWARE, 4),
    "branch-instructions": (_HARDWARE, 4),
    "branch-misses": (_HARDWARE, 5),
    "ref-cycles": (_HARDWARE, 9),
    "cpu-clock": (_SOFTWARE, 0),
    "task-clock": (_SOFTWARE, 1),
    "page-faults": (_SOFTWARE, 2),
    "context-switches": (_SOFTWARE, 3),
    "cpu-migrations": (_SOFTWARE, 4),
    "minor-faults": (_SOFTWARE, 5),
    "major-faults": (_SOFTWARE, 6),
}
# The kernel counts clocks in nanoseconds; perf stat reports them in msec, and so do regions,
# so that one column of the counters table has one unit per event.
_CLOCKS = ("task-clock", "cpu-clock")
_ENABLE, _DISABLE, _RESET, _GROUP = 0x2400, 0x2401, 0x2403, 1
# read_format: PERF_FORMAT_TOTAL_TIME_ENABLED | TOTAL_TIME_RUNNING | GROUP
_READ_FORMAT = 1 | 2 | 8
# flags: disabled (bit 0, the leader only), exclude_kernel (5), exclude_hv (6)
_USER_ONLY = (1 << 5) | (1 << 6)


def check_events(events: list[str]) -> None:
    """UsageError, in one line, for an event this module can't open."""
    unknown = [e for e in events if e not in EVENTS]
    if unknown:
        raise UsageError(f"unknown counter {unknown[0]!r} (known: {', '.join(EVENTS)})")


class Region:
    """A group of counters on this thread, switched on and off around a region.

    ``fallback``: where an event is missing, count the software events too (said once).
    """

    def __init__(self, events: list[str], fallback: bool = False) -> None:
        if _SYSCALL is None:
            raise OSError(f"perf_event_open is not wired up for {platform.machine()}")
        check_events(events)
        self.events = list(dict.fromkeys(events))
        self._libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
        self._libc.syscall.restype = ctypes.c_long
        self.fds: list[int] = []
        self.opened: list[str] = []  # events in the group, in read order
        self.missing: dict[str, str] = {}  # event -> why it could not be opened
        for event in self.events:
            fd = self._open(*EVENTS[event], leader=self.fds[0] if self.fds else -1)
            if fd < 0:
                self.missing[event] = os.strerror(-fd)
            else:
                self.fds.append(fd)
                self.opened.append(event)
        if self.missing and fallback:
            note_unsupported(list(self.missing))
            for event in SOFTWARE:
                if event not in self.events:
                    self.events.append(event)
                    fd = self._open(*EVENTS[event], leader=self.fds[0] if self.fds else -1)
                    if fd >= 0:
                        self.fds.append(fd)
                        self.opened.append(event)
        self._buf = ctypes.create_string_buffer(8 * (3 + len(self.fds)))

    def _open(self, kind: int, config: int, leader: int) -> int:
        flags = _USER_ONLY | (1 if leader == -1 else 0)
        attr = struct.pack("IIQQQQQII", kind, 64, config, 0, 0, _READ_FORMAT, flags, 0, 0)
        attr += b"\0" * (64 - len(attr))
        fd = self._libc.syscall(_SYSCALL, attr, 0, -1, leader, 0)
        return fd if fd >= 0 else -ctypes.get_errno()

    def start(self) -> None:
        if self.fds:
            fcntl_ioctl = self._libc.ioctl
            fcntl_ioctl(self.fds[0], _RESET, _GROUP)
            fcntl_ioctl(self.fds[0], _ENABLE, _GROUP)

    def stop(self) -> list[Reading]:
        readings = []
        if self.fds:
            self._libc.ioctl(self.fds[0], _DISABLE, _GROUP)
            n = os.readv(self.fds[0], [self._buf])
            values = struct.unpack_from(f"{n // 8}Q", self._buf.raw)
            _, enabled, running = values[:3]
            for event, value in zip(self.opened, values[3:], strict=False):
                scaled = value * enabled / running if running and running < enabled else value
                unit = ""
                if event in _CLOCKS:
                    scaled, unit = scaled / 1e6, "msec"
                readings.append(Reading(event, float(scaled), unit, "ok", enabled, running))
        for event in self.missing:
            readings.append(Reading(event, None, "", "unsupported", None, None))
        order = {e: i for i, e in enumerate(self.events)}
        return sorted(readings, key=lambda r: order[r.event])

    def close(self) -> None:
        for fd in self.fds:
            os.close(fd)
        self.fds = []

    def __enter__(self) -> Region:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.last = self.stop()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # noqa: BLE001 - at interpreter exit os may be gone
            pass
