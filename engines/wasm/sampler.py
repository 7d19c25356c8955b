"""Sampled Wasm stacks: a host thread reads the shadow stack the rewriter keeps.

Guest code runs without Python's GIL (wasmtime-py calls into wasmtime through ctypes), so
this thread runs beside it on another core: it reads the stack's depth and frames from the
memory's fixed address at the sampling rate. Nothing runs in the guest on its account but
the pushes and depth resets; a read may race a push (a frame not yet written): a sample is
as good as the instant it was taken, which is what sampling promises.
"""

from __future__ import annotations

import ctypes
import os
import threading
import time
from collections.abc import Callable

from probe.engines.stacks import StackLog

from .emit import FRAMES_AT, STACK_FRAMES


class ShadowSampler:
    """Samples the shadow stack at ``address`` ``rate`` times a second from start() to
    stop(); frames are named by ``name(function index)``, all in ``unit``."""

    def __init__(
        self, address: int, rate: int, name: Callable[[int], str], unit: str, since: float
    ) -> None:
        self._depth = ctypes.c_uint32.from_address(address)
        self._frames = (ctypes.c_uint32 * STACK_FRAMES).from_address(address + FRAMES_AT)
        self._period = 1.0 / rate
        self._name = name
        self._unit = unit
        self._since = since
        self.log = StackLog()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="probe-sampler", daemon=True)
        self._thread.start()

    def stop(self) -> StackLog:
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join()
        self._thread = None
        return self.log

    def _loop(self) -> None:
        names: dict[int, tuple[str, str, None]] = {}
        pid, period = os.getpid(), self._period
        depth_of, frames_of = self._depth, self._frames
        due = time.perf_counter()
        while not self._stop.is_set():
            due += period
            pause = due - time.perf_counter()
            if pause > 0:
                time.sleep(pause)
            else:
                due = time.perf_counter()  # behind (a busy machine): skip, don't burst
            depth = min(depth_of.value // 4, STACK_FRAMES)
            if depth == 0:
                continue  # not in guest code (starting, in the host, done)
            chain = []
            for index in frames_of[:depth]:
                frame = names.get(index)
                if frame is None:
                    frame = names[index] = (self._name(index), self._unit, None)
                chain.append(frame)
            self.log.add(time.time() - self._since, pid, "main", chain, 1, False, None)
