"""SIGTERM in a process that records a part of a run: save the part, then end as SIGTERM would.

A Python signal handler alone can't be relied on for this. CPython runs it in the main thread
at the next bytecode, and a signal that comes just before the main thread blocks in a system
call (a ``Pool`` worker waiting for a task: ``sem_wait``, ``read``) runs no handler until that
call returns. For a worker that ``Pool.terminate()`` ends, it never returns: the worker waits
for ever, and ``terminate()`` joins it for ever (bpo-38227; why coverage.py's SIGTERM handler
is opt-in). Here the handler only makes CPython's C handler write the signal's number to a
wakeup fd; a thread of probe's reads it, saves the part and ends the process with SIGTERM's
default action, whatever the main thread is doing. Where the program has a wakeup fd of its
own (asyncio's), it is left alone and the main thread saves, when its handler runs.

CPython also drops the signals that reach a forked child before its interpreter is set up
again (``PyOS_AfterFork_Child`` clears the pending ones). So while a handler of probe's is
set, a fork blocks SIGTERM; the child unblocks it once it has a pipe and thread of its own (the
parent's pipe would wake the parent's thread).
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from collections.abc import Callable

# Handlers of probe's besides this module's: a fork holds SIGTERM while one is set, and the
# child takes this module's instead (the run's own handler raises into the program).
_held: set[Callable[..., object]] = set()
_blocked = False  # by the fork in progress: SIGTERM was not blocked before it
# What SIGTERM saves: True when it saved, or there was nothing of this process's to save
# (then the process ends); False when another thread of it saves, on its way out.
_save: Callable[[], bool] | None = None
_wakeup: tuple[int, int] | None = None  # this process's pipe (read end, write end)
_on_fork: list[Callable[[], None]] = []  # what makes a forked child's part, in order


def hold_across_forks(handler: Callable[..., object]) -> None:
    """While ``handler`` is SIGTERM's, forks hold SIGTERM until the child has its own watcher
    (a forked child then saves what ``save_on_sigterm`` names, in the child)."""
    _held.add(handler)


def on_fork(make_part: Callable[[], None]) -> None:
    """Run ``make_part`` in every forked child, while a SIGTERM held since the fork waits:
    one that came at once ends the child once its part can be saved, not while the part's
    journal is half made."""
    _on_fork.append(make_part)


def save_on_sigterm(save: Callable[[], bool] | None) -> None:
    """From now on SIGTERM in this process runs ``save`` and ends it with SIGTERM's default
    action (its parent sees -15). Main thread only."""
    global _save
    _save = save
    if signal.getsignal(signal.SIGTERM) is not _handler:
        signal.signal(signal.SIGTERM, _handler)
    if _wakeup is None:
        _watch()


def is_ours() -> bool:
    """Whether SIGTERM's handler is this module's (a forked child's is, if its parent's was
    probe's)."""
    return signal.getsignal(signal.SIGTERM) is _handler


def forget() -> None:
    """SIGTERM's default action again (nothing of this process's is recorded). Main thread."""
    global _save
    _save = None
    if signal.getsignal(signal.SIGTERM) is _handler:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)


def _handler(signum: int, frame: object) -> None:
    # The watcher saves where it hears the signal; where the program's wakeup fd took the
    # place of its pipe, this (late, or never: see above) turn of the main thread is all
    # there is. Never both: the main thread may hold a lock the saving needs.
    if not _watched():
        _end()


def _watched() -> bool:
    if _wakeup is None:
        return False
    now = signal.set_wakeup_fd(-1)  # asked in the only way there is: set, and set back
    signal.set_wakeup_fd(now, warn_on_full_buffer=False)
    return now == _wakeup[1]


def _watch() -> None:
    global _wakeup
    r, w = os.pipe()
    os.set_blocking(w, False)  # as set_wakeup_fd requires
    old = signal.set_wakeup_fd(w, warn_on_full_buffer=False)
    if _wakeup is not None and old == _wakeup[1]:  # a forked child's, inherited
        for fd in _wakeup:
            os.close(fd)
    elif old != -1:  # the program's own
        signal.set_wakeup_fd(old)
        os.close(r)
        os.close(w)
        _wakeup = None
        return
    _wakeup = (r, w)
    threading.Thread(target=_read, args=(r,), name="probe-sigterm", daemon=True).start()


def _read(r: int) -> None:
    while True:
        try:
            data = os.read(r, 64)
        except OSError:
            return
        if not data:
            return
        # Every signal with a Python handler is written here; SIGTERM is the one of ours.
        if signal.SIGTERM in data and signal.getsignal(signal.SIGTERM) is _handler:
            _end()


def _end() -> None:
    global _save
    save, _save = _save, None
    try:
        saved = save() if save is not None else True
    except Exception as e:  # noqa: BLE001 - it ends all the same, saying why
        print(f"probe: process {os.getpid()}: its part was not saved: {e}", file=sys.stderr)
        saved = True
    if saved:
        _die()


def _die() -> None:
    """End as SIGTERM's default action does."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
    else:  # only the main thread may set a handler through the signal module
        import ctypes

        libc = ctypes.CDLL(None)
        libc.signal.argtypes = (ctypes.c_int, ctypes.c_void_p)
        libc.signal(signal.SIGTERM, None)  # SIG_DFL
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM})
    os.kill(os.getpid(), signal.SIGTERM)
    time.sleep(1)  # the kernel ends every thread; this is never reached
    os.kill(os.getpid(), signal.SIGKILL)


def _probes(handler: object) -> bool:
    """Whether ``handler`` is one of probe's SIGTERM handlers."""
    return handler is _handler or handler in _held


def _before_fork() -> None:
    global _blocked
    if _probes(signal.getsignal(signal.SIGTERM)):
        # A SIGTERM the program blocked itself stays blocked.
        was = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})
        _blocked = signal.SIGTERM not in was


def _release() -> None:
    global _blocked
    if _blocked:
        _blocked = False
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM})


def _in_child() -> None:
    try:
        held = signal.getsignal(signal.SIGTERM)
        if _probes(held):
            # Until make_part names what to save, what the parent named, which finds nothing
            # of this process's (it checks the pid) and ends it.
            signal.signal(signal.SIGTERM, _handler)
            if _wakeup is not None or held in _held:
                _watch()
        for make_part in _on_fork:
            try:
                make_part()
            except Exception as e:  # noqa: BLE001 - the child runs on; the others still run
                print(f"probe: process {os.getpid()} is not measured: {e}", file=sys.stderr)
    finally:
        _release()


os.register_at_fork(before=_before_fork, after_in_parent=_release, after_in_child=_in_child)
