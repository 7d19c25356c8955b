"""Snapshots of what a run knows only at its end (counts), taken while it runs, so that a
run killed with SIGKILL is stored with all but the last interval. Both engines use it: the
CPython engine copies its counters, the Wasm engine its probe memory.

Its thread is also how the CPython engine does other periodic work in the program's process
(switching fired 3.11 probes off: cpython/rewrite.py; settling 3.12 bytecode:
cpython/settle.py), so that all of it pauses while the program forks."""

from __future__ import annotations

import os
import sys
import threading
import time
import weakref
from collections.abc import Callable

from probe.storage.spool import warn

SNAPSHOT_EVERY_S = 2.0

# Snapshot threads are stopped before a fork: a program that forks (multiprocessing, os.fork)
# must not find a thread of probe's there (on 3.12+ os.fork warns of threads, and a thread
# mid-copy could hold a lock the child needs). 3.12 counts threads before the fork hooks of
# the parent run, so they start again there; 3.13 counts them after, so a run that forked
# takes no more snapshots (a SIGKILL then keeps the counts of the last one, as it says).
_running: weakref.WeakSet[Snapshots] = weakref.WeakSet()
_paused: list[Snapshots] = []
_RESTART = sys.version_info < (3, 13)


def _before_fork() -> None:
    for snapshots in list(_running):
        snapshots.stop()
        _paused.append(snapshots)


def _after_fork_in_parent() -> None:
    while _paused:
        paused = _paused.pop()
        if _RESTART:
            paused.start()


def _after_fork_in_child() -> None:
    _paused.clear()  # the child's run is its parent's: it takes no snapshots


os.register_at_fork(
    before=_before_fork,
    after_in_parent=_after_fork_in_parent,
    after_in_child=_after_fork_in_child,
)


class Snapshots:
    """Calls ``take`` every few seconds from a thread of its own while the program runs, so
    that SIGKILL loses at most that interval of counts. The interval grows to keep a
    snapshot's cost under 5% of the run: ``take`` holds the GIL while it copies."""

    def __init__(
        self,
        take: Callable[[], None],
        every: float = SNAPSHOT_EVERY_S,
        thread: str = "probe-snapshots",
        what: str = "snapshots of the run's counts",
    ) -> None:
        self._take = take
        self._every = every
        # What else runs on it says so (engines/cpython/settle.py). Thread names begin
        # "probe-": the sampler leaves probe's own threads out by that (cpython/sampler.py).
        self._thread_name = thread
        self._what = what
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=self._thread_name, daemon=True)
        self._thread.start()
        _running.add(self)

    def stop(self) -> None:
        _running.discard(self)
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join()
        self._thread = None

    def _loop(self) -> None:
        every = self._every
        while not self._stop.wait(every):
            t0 = time.perf_counter()
            try:
                self._take()
            except RuntimeError:
                continue  # the program changed a dict while it was copied: next time
            except Exception as e:  # noqa: BLE001 - snapshots are a safety net, never a failure
                warn(f"{self._what} stopped: {type(e).__name__}: {e}")
                return
            every = max(self._every, 20 * (time.perf_counter() - t0))
