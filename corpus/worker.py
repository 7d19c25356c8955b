"""A corpus worker: ``python -m probe.corpus.worker`` reads jobs (JSON lines) on stdin and
answers each with one JSON line on stdout, in order.

Each job — one (program, input) — runs in a child forked for it: its own process group and
temporary working directory, stdin/stdout/stderr on /dev/null (what the program prints goes
to a bounded buffer), its address space limited (``memory`` MiB beyond the worker's own),
and a wall-time limit (``timeout``: the call is stopped from inside, then the group killed
from outside a second later). A program that loops, allocates without end, forks, calls
os._exit, closes its streams or segfaults costs its own record. The worker forks rather than
starting a process per job: a fork of a warm interpreter costs about a millisecond.

A job's folder is named by its worker (``probe-job-<pid>-...``): a worker killed with the
build (SIGKILL can't be caught) leaves its job's folder behind, and the next worker to
start removes the folders of workers that are gone.
"""

from __future__ import annotations

import json
import os
import resource
import select
import shutil
import signal
import sys
import tempfile
import time
from typing import Any

READ_LIMIT = 256 << 20  # a child's answer beyond this is a crash, not a record
GRACE = 1.0  # seconds after the timeout before the child's group is killed


def main() -> None:
    out = sys.stdout
    sys.stdout = sys.stderr  # nothing but answers on the answer stream
    remove_orphans()
    efficiency = os.environ.get("PROBE_EFFICIENCY", "time")
    meter = Meter(efficiency)
    for line in sys.stdin:
        if not line.strip():
            continue
        job = json.loads(line)
        answer = run(job, meter)
        out.write(json.dumps(answer) + "\n")
        out.flush()


def remove_orphans() -> None:
    """Remove the job folders of this user's workers that no longer run."""
    where = tempfile.gettempdir()
    for name in os.listdir(where):
        parts = name.split("-")
        if len(parts) < 4 or parts[:2] != ["probe", "job"] or not parts[2].isdigit():
            continue
        path = os.path.join(where, name)
        try:
            mine = os.stat(path).st_uid == os.getuid()
        except OSError:
            continue  # gone meanwhile
        if mine and not _running(int(parts[2])):
            shutil.rmtree(path, ignore_errors=True)


def _running(pid: int) -> bool:
    """Whether process ``pid`` runs: a zombie doesn't (a worker killed with its build is
    one until init reaps it, and kill(pid, 0) still finds it)."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as f:
            state = f.read().rpartition(")")[2].split()[0]
        return state not in ("Z", "X")
    except FileNotFoundError:
        return False
    except (OSError, IndexError):  # no /proc here
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except OSError:
            pass
        return True


def run(job: dict[str, Any], meter: Meter) -> dict[str, Any]:
    """One job in a child of its own; whatever the program does, an answer."""
    folder = tempfile.mkdtemp(prefix=f"probe-job-{os.getpid()}-")
    path = os.path.join(folder, "program.py")
    with open(path, "w", encoding="utf-8") as f:
        f.write(job["program"])
    timeout = float(job.get("timeout") or 10)
    started = time.perf_counter()
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child
        os.close(r)
        me = os.getpid()
        code = 0
        try:
            answer = _child(job, path, folder, meter, timeout)
        except BaseException as e:  # noqa: BLE001 - whatever the program did, an answer
            answer = {"outcome": "crash", "exception": f"{type(e).__name__}: {e}"}
            code = 1
        if os.getpid() != me:
            os._exit(0)  # a process the program forked came back here: only one answers
        try:
            data = json.dumps(answer).encode()
        except (TypeError, ValueError) as e:
            data = json.dumps({"outcome": "crash", "exception": f"unreadable: {e}"}).encode()
        view = memoryview(data)
        while view:
            n = os.write(w, view[: 1 << 16])
            view = view[n:]
        os._exit(code)
    os.close(w)
    data, killed, status = _read(r, pid, started + timeout + GRACE)
    shutil.rmtree(folder, ignore_errors=True)
    wall = time.perf_counter() - started
    if killed:
        return {"outcome": "timeout", "exception": f"killed after {timeout:g} s", "wall": wall}
    try:
        answer = json.loads(data) if data else None
    except ValueError:
        answer = None
    if not isinstance(answer, dict):
        return {"outcome": "crash", "exception": _death(status), "wall": wall}
    answer["wall"] = wall
    return answer


def _read(fd: int, pid: int, deadline: float) -> tuple[bytes, bool, int]:
    """The child's answer, whether it was killed for time, and its exit status. Once the
    child has exited, its group is killed: a process the program forked may hold the pipe."""
    chunks, size, status, killed = [], 0, None, False
    try:
        while True:
            if status is None:
                done, code = os.waitpid(pid, os.WNOHANG)
                if done:
                    status = code
                    _kill(pid)
            if status is None and time.perf_counter() > deadline:
                _kill(pid)
                killed = True
                status = os.waitpid(pid, 0)[1]
                return b"", killed, status
            ready, _, _ = select.select([fd], [], [], 0.02)
            if not ready:
                continue
            chunk = os.read(fd, 1 << 16)
            if not chunk:
                if status is None:
                    status = os.waitpid(pid, 0)[1]
                    _kill(pid)
                return b"".join(chunks), killed, status
            chunks.append(chunk)
            size += len(chunk)
            if size > READ_LIMIT:
                _kill(pid)
                return b"", killed, os.waitpid(pid, 0)[1] if status is None else status
    finally:
        os.close(fd)


def _kill(group: int) -> None:
    try:
        os.killpg(group, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _death(status: int) -> str:
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        return f"killed by {signal.Signals(sig).name}"
    return f"exited with status {os.WEXITSTATUS(status)} before answering"


def _child(job: dict[str, Any], path: str, folder: str, meter: Meter, timeout: float) -> dict:
    from probe.engines.cpython import call as calls

    os.setsid()  # a group of its own: killed with everything it starts
    os.chdir(folder)
    null = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(null, fd)
    memory = job.get("memory")
    if memory:
        limit = _address_space() + int(memory) * (1 << 20)
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    resource.setrlimit(resource.RLIMIT_FSIZE, (64 << 20, 64 << 20))  # files it writes
    signal.signal(signal.SIGALRM, _alarm)
    signal.setitimer(signal.ITIMER_REAL, timeout)
    try:
        module, real = calls.load(path, job["program"])
        code = calls.compile_call(job["call"])
    except calls._Stopped:
        return {"outcome": "timeout", "exception": f"the module ran past {timeout:g} s"}
    except MemoryError:
        return {"outcome": "memory", "exception": "MemoryError while loading the module"}
    except Exception as e:  # noqa: BLE001 - the program's module failed: its record says so
        return {"outcome": "exception", "exception": f"{type(e).__name__}: {e}"}
    traced = calls.trace(module, real, code, max_steps=int(job.get("max_steps") or 10_000))
    measured = {"efficiency": meter.kind if meter.event else None, "efficiency_value": None}
    if traced.outcome in ("ok", "step_cap"):  # counted once more, untraced, in the time left
        try:
            measured = meter.measure(module, code)
        except calls._Stopped:
            pass
    signal.setitimer(signal.ITIMER_REAL, 0)
    outcome = traced.outcome
    if outcome == "exception" and (traced.exception or "").startswith("MemoryError"):
        outcome = "memory"
    return {
        "outcome": outcome,
        "result": traced.result,
        "exception": traced.exception,
        "steps": traced.steps,
        "output": traced.output,
        **_rendered(traced, job),
        **measured,
    }


def _rendered(traced: Any, job: dict[str, Any]) -> dict[str, Any]:
    from probe.analyses.states import States
    from probe.recording import states_of
    from probe.reports import render

    level = job.get("level") or "block"
    result = states_of(traced, level)
    analysis = States(level=level)
    texts = {fmt: render(analysis, result, fmt) for fmt in job["formats"]}
    found: dict[str, Any] = {"texts": texts}
    if "traced" in job["formats"]:
        from probe.reports.traced import labels

        found["labels"] = json.dumps(labels(result))
    return found


def _alarm(signum: int, frame: object) -> None:
    from probe.engines.cpython.call import _Stopped

    raise _Stopped("timeout")


def _address_space() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[0]) * resource.getpagesize()


class Meter:
    """The efficiency label of a call: user-space instructions (perf), task-clock (time), or
    nothing."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.event = {"perf": "instructions", "time": "task-clock"}
        self.event = self.event.get(kind, "")

    def measure(self, module: Any, code: Any) -> dict[str, Any]:
        if not self.event:
            return {"efficiency": None, "efficiency_value": None}
        from probe.engines.perf import open_region

        region = open_region([self.event])
        namespace = module.__dict__
        empty = compile("None", "<empty>", "eval")
        try:
            base = min(self._once(region, empty, namespace) for _ in range(3))
            runs = []
            for _ in range(3 if self.kind == "time" else 1):
                runs.append(self._once(region, code, namespace))
                if runs[-1] is None or self.kind == "time" and runs[-1] > 100:
                    break
        except Exception:  # noqa: BLE001 - the call raised: no label, the trace says why
            return {"efficiency": self.kind, "efficiency_value": None}
        finally:
            region.close()
        if None in runs or base is None:
            return {"efficiency": self.kind, "efficiency_value": None}
        return {"efficiency": self.kind, "efficiency_value": max(min(runs) - base, 0.0)}

    def _once(self, region: Any, code: Any, namespace: dict) -> float | None:
        region.start()
        try:
            eval(code, namespace)
        finally:
            readings = region.stop()
        reading = next((r for r in readings if r.event == self.event), None)
        return reading.value if reading is not None and reading.status == "ok" else None


if __name__ == "__main__":
    main()
