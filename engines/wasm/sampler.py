"""Sampled Wasm stacks: a host thread reads the shadow stack the rewriter keeps.

Guest code runs without Python's GIL (wasmtime-py calls into wasmtime through ctypes), so
this thread runs beside it on another core: it reads the stack's depth and frames through a
view of the memory (its address is fixed) at the sampling rate. Nothing runs in the guest on
its account but the pushes and depth resets; a read may race a push (a frame not yet
written): a sample is as good as the instant it was taken, which is what sampling promises.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from typing import Any

from probe.engines.stacks import StackLog

from .emit import FRAMES_AT, STACK_FRAMES


class ShadowSampler:
    """Samples the shadow stack (``stack``: a numpy uint32 view of its memory) ``rate`` times
    a second from start() to stop(); frames are named by ``name(function index)``, all in
    ``unit``. The memory must outlive the sampler (its store kept alive until stop())."""

    def __init__(
        self, stack: Any, rate: int, name: Callable[[int], str], unit: str, since: float
    ) -> None:
        self._stack = stack
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
        stack, first = self._stack, FRAMES_AT // 4
        due = time.perf_counter()
        while not self._stop.is_set():
            due += period
            pause = due - time.perf_counter()
            if pause > 0:
                time.sleep(pause)
            else:
                due = time.perf_counter()  # behind (a busy machine): skip, don't burst
            depth = min(int(stack[0]) // 4, STACK_FRAMES)
            if depth == 0:
                continue  # not in guest code (starting, in the host, done)
            chain = []
            for index in stack[first : first + depth].tolist():
                frame = names.get(index)
                if frame is None:
                    frame = names[index] = (self._name(index), self._unit, None)
                chain.append(frame)
            self.log.add(time.time() - self._since, pid, "main", chain, 1, False, None)
