"""Sampled Python stacks: py-spy, started by probe, sampling the process that runs the program.

py-spy reads the interpreter's memory from outside (ptrace and process_vm_readv), so the
program runs at full speed between samples and nothing is asked of it. Under Yama's ptrace
scope 1 (most desktop Linux) a process may only be traced by its ancestors; py-spy is our
child, so the traced process names it as its tracer (prctl PR_SET_PTRACER) before it attaches.
Where py-spy can't attach at all (no ptrace in a container), the run says so in one line and
keeps its exact counts.

py-spy writes speedscope JSON when it stops (on SIGINT): per thread, its samples in order,
each a list of frame indices and a weight in seconds. It has no clock per sample, so a row's
``time`` is where the thread's samples put it at the sampling rate, from when sampling began.
"""

from __future__ import annotations

import ctypes
import json
import os
import re
import shutil
import signal
import subprocess
import sysconfig
import tempfile
import threading
import time

from probe.engines.stacks import Frame, StackLog
from probe.probes import Sampling
from probe.storage.spool import warn

from .scope import probe_paths

PR_SET_PTRACER = 0x59616D61  # "Yama": who may ptrace this process
_STARTED = b"py-spy> Sampling process"
_THREAD = re.compile(r'(?:Process (\d+) )?Thread (\d+)(?: "(.*)")?')
_ENTRY = "_execute"  # the CPython engine's function that execs the program (__init__.py)
_ENGINE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "__init__.py")


def executable() -> str | None:
    """py-spy's binary: $PROBE_PY_SPY if set (a py-spy of your own), else beside this
    interpreter's scripts (the wheel puts it there), else on PATH."""
    chosen = os.environ.get("PROBE_PY_SPY")
    if chosen:
        return chosen if os.access(chosen, os.X_OK) else None
    here = os.path.join(sysconfig.get_path("scripts"), "py-spy")
    return here if os.access(here, os.X_OK) else shutil.which("py-spy")


class PySpy:
    """py-spy recording this process from start() to stop()."""

    def __init__(self, sampling: Sampling) -> None:
        self.sampling = sampling
        self.pid = os.getpid()
        self._proc: subprocess.Popen[bytes] | None = None
        self._out = ""
        self._began = 0.0

    def start(self, since: float) -> bool:
        """Start sampling; False (and a one-line warning) where py-spy can't. ``since``: the
        run's start (time.time()), what sample times count from."""
        exe = executable()
        if exe is None:
            where = os.environ.get("PROBE_PY_SPY") or "py-spy"
            warn(f"{where} not found: no sampled stacks (exact counts are kept)")
            return False
        fd, self._out = tempfile.mkstemp(prefix="probe-pyspy-", suffix=".json")
        os.close(fd)
        s = self.sampling
        cmd = [exe, "record", "-p", str(self.pid), "-f", "speedscope", "-o", self._out]
        cmd += ["-r", str(s.rate), "--full-filenames", "--nonblocking"]
        cmd += [flag for on, flag in ((s.idle, "-i"), (s.gil, "-g"), (s.native, "-n")) if on]
        if s.subprocesses:
            cmd.append("-s")
        self._proc = subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,  # Ctrl-C at the terminal is the program's, not py-spy's
        )
        _allow_tracer(self._proc.pid)
        started = _wait_for_start(self._proc, timeout=10.0)
        if not started:
            self._fail()
            return False
        self._began = time.time() - since
        return True

    def stop(self) -> StackLog:
        """Stop sampling; the samples, without probe's own frames and threads."""
        log = StackLog()
        proc, self._proc = self._proc, None
        if proc is None:
            return log
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
        try:
            _, err = proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            _, err = proc.communicate()
        try:
            with open(self._out, encoding="utf-8") as f:
                profile = json.load(f)
        except (OSError, ValueError):
            if proc.returncode == -signal.SIGINT:  # stopped before it set up its own handler
                warn("the program ended before py-spy took a sample: exact counts are kept")
                return log
            reason = _reason(err) or f"exit status {proc.returncode}"
            warn(f"py-spy wrote no samples ({reason}): exact counts are kept")
            return log
        finally:
            _remove(self._out)
        _read_speedscope(profile, log, self.sampling, self.pid, self._began)
        return log

    def _fail(self) -> None:
        proc, self._proc = self._proc, None
        assert proc is not None
        if proc.poll() is None:
            proc.kill()
        _, err = proc.communicate()
        _remove(self._out)
        reason = _reason(err) or f"exit status {proc.returncode}"
        warn(f"py-spy can't sample this process ({reason}): no sampled stacks (exact counts kept)")


def _allow_tracer(pid: int) -> None:
    """Under Yama scope 1, let ``pid`` (our child) ptrace us; elsewhere a harmless no-op."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PTRACER, ctypes.c_ulong(pid), 0, 0, 0)
    except (OSError, AttributeError):
        pass


def _wait_for_start(proc: subprocess.Popen[bytes], timeout: float) -> bool:
    """Whether py-spy says it samples (it prints so once attached) before ``timeout``."""
    assert proc.stdout is not None
    seen = threading.Event()

    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            if line.startswith(_STARTED):
                seen.set()
                break
        proc.stdout.read()  # drain: py-spy must never block on a full pipe

    reader = threading.Thread(target=read, name="probe-pyspy", daemon=True)
    reader.start()
    deadline = time.monotonic() + timeout
    while not seen.wait(0.01):
        if proc.poll() is not None or time.monotonic() > deadline:
            return seen.is_set()
    return True


def _reason(err: bytes | None) -> str:
    """py-spy's own reason, in one line: its error and the last cause it gives."""
    lines = [ln.strip() for ln in (err or b"").decode(errors="replace").splitlines()]
    lines = [ln for ln in lines if ln and not ln[0].isdigit() and ln != "Caused by:"]
    lines = [ln for ln in lines if not ln.startswith("Stack backtrace")]
    if not lines:
        return ""
    first = lines[0].removeprefix("Error: ")
    return first if len(lines) == 1 else f"{first}: {lines[-1]}"


def _remove(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass


def _read_speedscope(
    profile: dict, log: StackLog, sampling: Sampling, pid: int, began: float
) -> None:
    shared = profile.get("shared", {}).get("frames", [])
    frames: list[Frame] = [(f.get("name", "?"), f.get("file", ""), f.get("line")) for f in shared]
    ours = probe_paths()
    for thread in profile.get("profiles", []):
        m = _THREAD.match(thread.get("name", ""))
        process = int(m.group(1)) if m and m.group(1) else pid
        tid = m.group(2) if m else "?"
        name = (m.group(3) if m else "") or ""
        if name.startswith("probe-"):
            continue  # probe's own threads: snapshots, the disarmer, this reader
        label = f"{tid} {name}" if name else tid
        at = began
        for stack, seconds in zip(
            thread.get("samples", []), thread.get("weights", []), strict=False
        ):
            n = max(1, round(seconds * sampling.rate))
            chain = [frames[i] for i in stack]  # root first
            if process == pid:
                chain = _program_frames(chain, ours, main=tid == str(pid))
            if chain:
                log.add(at, process, label, chain, n, False if not sampling.idle else None,
                        True if sampling.gil else None)  # fmt: skip
            at += seconds


def _program_frames(
    chain: list[Frame], ours: tuple[frozenset[str], tuple[str, ...]], main: bool
) -> list[Frame]:
    """The program's own frames: below probe's (the CLI, the engine) in the main thread (a
    main-thread sample without the program in it is probe's own start or end: none), and
    without probe's frames inside it (a probe's callback): their time is the caller's."""
    for i, (func, unit, _) in enumerate(chain):
        if func == _ENTRY and unit == _ENGINE:
            chain = chain[i + 1 :]
            break
    else:
        if main:
            return []
    files, dirs = ours
    return [f for f in chain if f[1] not in files and not f[1].startswith(dirs)]
