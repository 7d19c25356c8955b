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

Neither end waits for py-spy where it needn't: the program starts while py-spy attaches
(10-25 ms), and at the end py-spy takes one or two of its sampling periods to stop and write
(20-30 ms at 100 Hz): unless a summary reads the samples at once, the run leaves them to be
read at ingest (``samples()``, named in the journal), when py-spy has long finished.
"""

from __future__ import annotations

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
from typing import TYPE_CHECKING, Any

from probe.engines.stacks import Frame, StackLog
from probe.storage.spool import warn

from .scope import probe_paths, probe_root

if TYPE_CHECKING:
    from probe.engines import Recorder
    from probe.probes import Sampling

PR_SET_PTRACER = 0x59616D61  # "Yama": who may ptrace this process
_STARTED = b"py-spy> Sampling process"
_THREAD = re.compile(r'(?:Process (\d+) )?Thread (\d+)(?: "(.*)")?')
_ENTRY = "_execute"  # the CPython engine's function that execs the program (__init__.py)
_ENGINE = "__init__.py"  # ... in this folder
_WAIT_S = 30.0  # for py-spy to write its samples once told to stop


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
        self._out = self._log = ""  # py-spy's samples, and what it says (stdout and stderr)
        self._attached: list[float] = []  # when py-spy attached, once it has

    def start(self, since: float) -> bool:
        """Start sampling; False (and a one-line warning) where there is no py-spy. ``since``:
        the run's start (time.time()), what sample times count from.

        The program starts at once, not once py-spy has attached: its first samples are
        taken that much later. Whether py-spy could attach at all is known at stop(), which
        says so then."""
        exe = executable()
        if exe is None:
            where = os.environ.get("PROBE_PY_SPY") or "py-spy"
            warn(f"{where} not found: no sampled stacks (exact counts are kept)")
            return False
        s = self.sampling
        self._out, self._log = _temp(".json"), _temp(".log")
        cmd = [exe, "record", "-p", str(self.pid), "-f", "speedscope", "-o", self._out]
        cmd += ["-r", str(s.rate), "--full-filenames", "--nonblocking"]
        cmd += [flag for on, flag in ((s.idle, "-i"), (s.gil, "-g"), (s.native, "-n")) if on]
        if s.subprocesses:
            cmd.append("-s")
        try:
            # A file, not a pipe, for what py-spy says: it may outlive this process (see stop).
            with open(self._log, "wb") as log:
                self._proc = subprocess.Popen(
                    cmd,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,  # Ctrl-C at the terminal is the program's
                )
        except OSError as e:
            _remove(self._out, self._log)
            warn(f"py-spy can't start ({e.strerror}): no sampled stacks (exact counts are kept)")
            return False
        _allow_tracer(self._proc.pid)
        self._attached = _watch_start(self._proc, self._log, since)
        return True

    def stop(self, recorder: Recorder) -> None:
        """Stop sampling; the samples (without probe's own frames and threads) to the run,
        now or, where the recorder takes them later, at ingest."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        ended = proc.poll() is not None  # before it was told to: it could not attach
        if not ended:
            proc.send_signal(signal.SIGINT)
        s = self.sampling
        args: dict[str, Any] = {
            "out": self._out, "log": self._log, "pid": self.pid, "sampler": proc.pid,
            "began": self._attached[0] if self._attached else None,
            "rate": s.rate, "idle": s.idle, "gil": s.gil,
            "engine": os.path.join(os.path.dirname(os.path.abspath(__file__)), _ENGINE),
            "probe": probe_root(),  # whose frames to leave out: this run's probe
        }  # fmt: skip
        if self._attached and not ended and recorder.defer(f"{__name__}:samples", args):
            return
        try:
            proc.wait(timeout=_WAIT_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        tables, note = samples(args, proc.returncode, failed=ended and not self._attached)
        if note:
            warn(note)
        for table, columns in tables.items():
            recorder.write(table, columns)


def samples(
    args: dict[str, Any], status: int | None = None, failed: bool = False
) -> tuple[dict[str, dict[str, list]], str | None]:
    """The samples and stacks tables of a py-spy that was told to stop (PySpy.stop's
    ``args``), and what went wrong if there are none. ``status``: py-spy's exit status, where
    this process waited for it; at ingest, py-spy (another process's child) is waited for
    here. ``failed``: it ended before it was told to."""
    if status is None and not _ended(args["sampler"], args["out"]):
        return {}, "py-spy did not stop: no sampled stacks (exact counts are kept)"
    try:
        with open(args["out"], encoding="utf-8") as f:
            profile = json.load(f)
    except (OSError, ValueError):
        try:
            with open(args["log"], "rb") as f:
                said = f.read()
        except OSError:
            said = b""
        reason = _reason(said) or f"exit status {status}"
        if failed:
            return {}, f"py-spy can't sample this process ({reason}): no sampled stacks " + (
                "(exact counts are kept)"
            )
        if status == -signal.SIGINT:  # stopped before it set up its own handler
            return {}, "the program ended before py-spy took a sample: exact counts are kept"
        return {}, f"py-spy wrote no samples ({reason}): exact counts are kept"
    finally:
        _remove(args["out"], args["log"])
    log = StackLog()
    _read_speedscope(profile, log, args)
    return log.tables(), None


def _ended(pid: int, out: str) -> bool:
    """Wait for py-spy ``pid`` to end (gone, or a zombie of the run's process), killing it
    after _WAIT_S; whether it ended by itself. A pid reused since is not ours: its command
    line doesn't name our output."""
    deadline = time.monotonic() + _WAIT_S
    while True:
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                ours = out.encode() in f.read()
            with open(f"/proc/{pid}/stat", "rb") as f:
                state = f.read().rsplit(b")", 1)[1].split()[0]
        except (OSError, IndexError):
            return True
        if not ours or state in (b"Z", b"X"):
            return True
        if time.monotonic() > deadline:
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
            return False
        time.sleep(0.005)


def _allow_tracer(pid: int) -> None:
    """Under Yama scope 1, let ``pid`` (our child) ptrace us; elsewhere nothing (not even
    ctypes imported: it costs ~2 ms of the start)."""
    try:
        with open("/proc/sys/kernel/yama/ptrace_scope", "rb") as f:
            if f.read().strip() != b"1":
                return  # 0: any process of ours may; 2 and 3: only root, or none, may
    except OSError:
        return  # no Yama
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PTRACER, ctypes.c_ulong(pid), 0, 0, 0)
    except (OSError, AttributeError):
        pass


def _watch_start(proc: subprocess.Popen[bytes], log: str, since: float) -> list[float]:
    """A list that gets, once py-spy says it samples (it prints so once attached), the
    seconds since ``since`` at that moment."""
    attached: list[float] = []

    def watch() -> None:
        while proc.poll() is None:
            try:
                with open(log, "rb") as f:
                    if _STARTED in f.read():
                        attached.append(time.time() - since)
                        return
            except OSError:
                return
            time.sleep(0.002)

    threading.Thread(target=watch, name="probe-pyspy", daemon=True).start()
    return attached


def _temp(suffix: str) -> str:
    fd, path = tempfile.mkstemp(prefix="probe-pyspy-", suffix=suffix)
    os.close(fd)
    return path


def _reason(err: bytes | None) -> str:
    """py-spy's own reason, in one line: its error and the last cause it gives (not its
    progress lines, "py-spy> ...", which share its log)."""
    lines = [ln.strip() for ln in (err or b"").decode(errors="replace").splitlines()]
    lines = [ln for ln in lines if ln and not ln[0].isdigit() and ln != "Caused by:"]
    lines = [ln for ln in lines if not ln.startswith("py-spy> ")]
    lines = [ln for ln in lines if not ln.startswith("Stack backtrace")]
    if not lines:
        return ""
    first = lines[0].removeprefix("Error: ")
    return first if len(lines) == 1 else f"{first}: {lines[-1]}"


def _remove(*paths: str) -> None:
    for path in paths:
        try:
            os.unlink(path)
        except OSError:
            pass


def _read_speedscope(profile: dict, log: StackLog, args: dict[str, Any]) -> None:
    shared = profile.get("shared", {}).get("frames", [])
    frames: list[Frame] = [(f.get("name", "?"), f.get("file", ""), f.get("line")) for f in shared]
    ours = probe_paths(args["probe"])
    pid, rate, engine = args["pid"], args["rate"], args["engine"]
    idle = False if not args["idle"] else None
    gil = True if args["gil"] else None
    for thread in profile.get("profiles", []):
        m = _THREAD.match(thread.get("name", ""))
        process = int(m.group(1)) if m and m.group(1) else pid
        tid = m.group(2) if m else "?"
        name = (m.group(3) if m else "") or ""
        if name.startswith("probe-"):
            continue  # probe's own threads: snapshots, the disarmer, this reader
        label = f"{tid} {name}" if name else tid
        at = args["began"] or 0.0
        for stack, seconds in zip(
            thread.get("samples", []), thread.get("weights", []), strict=False
        ):
            n = max(1, round(seconds * rate))
            chain = [frames[i] for i in stack]  # root first
            if process == pid:
                chain = _program_frames(chain, ours, engine, main=tid == str(pid))
            if chain:
                log.add(at, process, label, chain, n, idle, gil)
            at += seconds


def _program_frames(
    chain: list[Frame], ours: tuple[frozenset[str], tuple[str, ...]], engine: str, main: bool
) -> list[Frame]:
    """The program's own frames: below probe's (the CLI, the engine) in the main thread (a
    main-thread sample without the program in it is probe's own start or end: none), and
    without probe's frames inside it (a probe's callback): their time is the caller's."""
    for i, (func, unit, _) in enumerate(chain):
        if func == _ENTRY and unit == engine:
            chain = chain[i + 1 :]
            break
    else:
        if main:
            return []
    files, dirs = ours
    return [f for f in chain if f[1] not in files and not f[1].startswith(dirs)]
