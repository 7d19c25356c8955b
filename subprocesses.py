"""Python processes a run starts, measured as parts of it (coverage.py's ``patch = subprocess``).

A run of a Python program puts what its parts need (the database, the run, the probes, the
scope) in the environment, ``PROBE_PART_OF``; probe's ``.pth`` file, which probe writes into
the environment's site-packages once, has every Python process that finds it there start a
part as the interpreter starts, before the program's first line. A part records as a session
does (the code is compiled by the interpreter itself, not by probe: no markers, arcs from
line events), journals on its own and is added to the run at ingest (``storage/db.py``), or
at once where the run's summary needs it. Forked children are parts too
(``engines/cpython``). Without the variable the ``.pth`` line costs a dictionary lookup.
"""

from __future__ import annotations

import atexit
import json
import os
import signal
import site
import sys
from collections.abc import Callable

TYPE_CHECKING = False  # typing's, without importing typing on a run's path (architecture)
if TYPE_CHECKING:
    from typing import Any

ENV = "PROBE_PART_OF"
PTH_NAME = "probe_subprocesses.pth"
# One line, as site.py runs a .pth line that starts with "import"; it may outlive probe's
# uninstalling, so a probe that can't be imported costs nothing either.
PTH = (
    f"import os; exec('try:\\n from probe import subprocesses\\nexcept Exception:\\n pass\\n"
    f"else:\\n subprocesses.start()') if os.environ.get({ENV!r}) else None\n"
)
# Probes a part places: what adds up across processes (events have one order, a process's).
PART_EVENTS = ("line", "branch", "func", "call")

_part: Any = None  # this process's part (an Attached), once started


def export(
    db_path: str, run_id: str, probes: Any, scope: Any
) -> tuple[Callable[[], None], str | None]:
    """Have the Python processes the run starts measured as parts of it, until the returned
    function is called; and why they won't be, where probe's .pth file can't be written
    (for the run's message)."""
    from probe.probes import Kind

    kinds = {e: int(min(k, Kind.COUNT)) for e in PART_EVENTS if (k := probes.kind_for(e))}
    if not kinds:
        return (lambda: None), None
    if not install_pth():
        why = "Python subprocesses not measured: no site-packages directory here is writable"
        return (lambda: None), why
    before = os.environ.get(ENV)
    os.environ[ENV] = json.dumps(
        {"db": db_path, "run": run_id, "probes": kinds, "scope": scope.fields()}
    )

    def undo() -> None:
        if before is None:
            os.environ.pop(ENV, None)
        else:
            os.environ[ENV] = before

    return undo, None


def install_pth() -> bool:
    """probe's .pth file in this environment's site-packages (written if it is missing or
    out of date); False where no site-packages directory can be written."""
    dirs = [d for d in site.getsitepackages() if os.path.isdir(d)]
    for d in dirs:
        try:
            with open(os.path.join(d, PTH_NAME), encoding="utf-8") as f:
                if f.read() == PTH:
                    return True
        except OSError:
            continue
    for d in dirs:
        try:
            tmp = os.path.join(d, f".{PTH_NAME}.{os.getpid()}")
            with open(tmp, "w", encoding="utf-8") as f:
                f.write(PTH)
            os.replace(tmp, os.path.join(d, PTH_NAME))
            return True
        except OSError:
            continue
    return False


def start() -> None:
    """A part of the run named in the environment, recording this process (from the .pth
    file, as the interpreter starts). Never raises: the program must run whatever happens."""
    global _part
    if _part is not None or _unmeasured(sys.orig_argv):
        return  # site-packages seen twice (a lib64 link), or a process not the program's
    try:
        spec = json.loads(os.environ[ENV])
        _part = _start(spec)
    except Exception as e:  # noqa: BLE001 - the program runs on, unmeasured, saying why
        print(f"probe: process {os.getpid()} is not measured: {e}", file=sys.stderr)
        return
    atexit.register(_stop)
    real_exit = os._exit

    def hard_exit(status: int) -> None:  # skips atexit: save first
        _stop(status, "os._exit")
        real_exit(status)

    os._exit = hard_exit
    from probe.engines.cpython import sigterm

    if signal.getsignal(signal.SIGTERM) == signal.SIG_DFL:
        sigterm.save_on_sigterm(_terminated)
    sigterm.on_fork(_forked)


def _start(spec: dict[str, Any]) -> Any:
    from probe.engines.cpython.attach import Attached
    from probe.probes import Kind, Probe, ProbeSet, Scope
    from probe.recording import new_run
    from probe.tracing import current_context

    argv = sys.orig_argv[1:]
    recorder = new_run(
        spec["db"], argv[0] if argv else None, "cpython", [], argv, {}, part_of=spec["run"]
    )
    probes = ProbeSet.of(Probe(e, Kind(k)) for e, k in spec["probes"].items())
    scope = Scope(**{k: tuple(v) for k, v in spec["scope"].items()})
    # contexts: a pytest-xdist worker's tests name theirs (pytest_plugin)
    part = Attached(probes, scope, recorder, context=current_context)
    part.pid = os.getpid()
    part.start()
    return part


def recording() -> Any:
    """This process's part of a run (an Attached), while it records; else None."""
    return _part if _part is not None and _part.running else None


def _stop(status: int = 0, how: str | None = None) -> bool:
    """Save the part; False where it was saved already (or another thread saved it)."""
    from probe.engines import Outcome

    part = _part
    if part is None or part.pid != os.getpid():
        return False
    try:
        return part.stop(Outcome("ok", status, how))
    except Exception as e:  # noqa: BLE001 - the process ends all the same
        print(f"probe: process {os.getpid()}: its part of the run was not saved: {e}",
              file=sys.stderr)  # fmt: skip
        return True


def _terminated() -> bool:
    """SIGTERM: the part is saved (``sigterm`` then ends the process as SIGTERM would)."""
    part = _part
    if part is None or part.pid != os.getpid():
        return True  # nothing of this process's (a child forked before its part began)
    return _stop(128 + signal.SIGTERM, "terminated by SIGTERM")


def _forked() -> None:
    """A child forked from a part is a part of its own (SIGTERM's handler, if probe's, came
    with it: ``sigterm``)."""
    part = _part
    if part is None or not part.running:
        return
    try:
        part.forked(part.recorder.part())
        part.pid = os.getpid()
    except Exception as e:  # noqa: BLE001 - the child runs on, unmeasured
        part.running = False
        print(f"probe: process {os.getpid()} is not measured: {e}", file=sys.stderr)
        from probe.engines.cpython import sigterm

        sigterm.forget()


def _unmeasured(argv: list[str]) -> bool:
    """Whether this process is probe's own command (a run inside the run is its own), or
    multiprocessing's resource tracker (it runs none of the program's code, and lives until
    the run's process has ended)."""
    words = argv[1:3]
    if words and os.path.basename(words[0]) == "probe":
        return True
    if len(words) == 2 and words[0] == "-m" and words[1].split(".")[0] == "probe":
        return True
    code = argv[argv.index("-c") + 1] if "-c" in argv[:-1] else ""
    return "multiprocessing.resource_tracker" in code
