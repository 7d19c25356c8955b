"""The CPython engine: runs a script or module in this interpreter with line and branch probes.

Line flags on 3.12+ are sys.monitoring LINE events (monitor.py); flags on 3.11
and counts everywhere are stores inserted into the bytecode (rewrite.py). Branch arcs are marker
lines on both (source.py). The program runs in this process exactly as
``python`` would run it: same sys.argv, ``__main__``, sys.path[0], streams
and exit status.
"""

from __future__ import annotations

import builtins
import importlib.util
import os
import signal
import sys
import threading
import time
import types

from probe.engines import Outcome, Recorder, Target
from probe.engines.snapshots import Snapshots
from probe.errors import StorageError, UsageError
from probe.probes import Kind, ProbeSet, Scope
from probe.storage.spool import warn

from . import sigterm
from .compat import MONITORING
from .loader import Compiler, ImportHook
from .measured import Measured
from .source import SourceInfo


class _Terminated(BaseException):
    """Raised in the program when SIGTERM arrives, so its events are kept."""


def _on_term(signum: int, frame: object) -> None:
    raise _Terminated


_running: _Run | None = None  # the run of this process's program, while it runs


def _after_fork_in_child() -> None:
    """A forked child (a multiprocessing worker, ``os.fork()``) records what it runs as a
    part of the run. SIGTERM saves that part and ends the child: it is the parent's run that
    SIGTERM ends cleanly, and ``Pool.terminate()`` must simply end a worker (``sigterm``
    gave the child its handler)."""
    if _running is not None and not _running.finished:
        _running.forked()


sigterm.hold_across_forks(_on_term)
sigterm.on_fork(_after_fork_in_child)


class CPythonEngine:
    name = "cpython"
    events = frozenset({"line", "branch", "func", "call", "return", "state", "stack"})

    @classmethod
    def check(cls, probes: ProbeSet) -> None:
        """UsageError for probes this engine can't place (for a run and a session alike)."""
        unsupported = probes.events() - cls.events
        if unsupported:
            raise UsageError(f"the cpython engine has no {', '.join(sorted(unsupported))} probes")
        if probes.switchable() - {"line", "func", "return"}:
            raise UsageError("the cpython engine has callback probes on line, func, return only")

    def run(self, target: Target, probes: ProbeSet, scope: Scope, recorder: Recorder) -> Outcome:
        self.check(probes)
        kinds = [k for k in (probes.kind_for("line"), probes.kind_for("branch")) if k]
        count = any(k >= Kind.COUNT for k in kinds)
        branch = probes.kind_for("branch") is not None
        return _Run(target, scope, recorder, probes, count=count, branch=branch).execute()


class _Run(Measured):
    """One execution of a target, from placing probes to writing what they saw."""

    def __init__(
        self,
        target: Target,
        scope: Scope,
        recorder: Recorder,
        probes: ProbeSet,
        count: bool,
        branch: bool,
    ) -> None:
        # Function starts counted in the bytecode beside the line counts, where nothing
        # else needs the interpreter's start events: not a callback a call.
        self.starts = (
            count
            and probes.kind_for("func") == Kind.COUNT
            and probes.kind_for("call") is None
            and "func" not in probes.switchable()
        )
        super().__init__(probes.without("func") if self.starts else probes, scope, recorder)
        self.target = target
        self.lines = probes.kind_for("line") is not None or branch
        if MONITORING and not count:
            from .monitor import Monitor

            self.collector = Monitor(self.wanted)
            self.compiler = Compiler(scope, markers=branch, counting=count, rewriter=None)
        else:
            # Counts on every version, flags on 3.11: increments inserted into the bytecode
            # cost a few nanoseconds a line; a sys.monitoring callback costs ten times that.
            from .rewrite import Rewriter

            self.collector = Rewriter(count=count, entries=self.starts)
            self.compiler = Compiler(scope, markers=branch, counting=count, rewriter=self.collector)
        self.hook = ImportHook(self.compiler, self.wanted)
        self.finished = False
        self._finishing = threading.RLock()  # SIGTERM's watcher thread may save it too
        self.before_fork: tuple[dict[str, dict[int, int]], dict[int, int]] | None = None
        self.snapshots = Snapshots(self._snapshot)
        self.pid = os.getpid()
        self.began = time.time()
        sampling = probes.sampling_for("stack")
        self.sampler = None
        if sampling is not None:
            from .sampler import PySpy

            self.sampler = PySpy(sampling)

    def analyze(self, path: str) -> SourceInfo | None:
        """Files compiled with probes were analysed then."""
        info = next(
            (i for f, i in self.compiler.infos.items() if os.path.realpath(f) == path), None
        )
        return info if info is not None else super().analyze(path)

    def execute(self) -> Outcome:
        global _running
        saved = (sys.argv[:], sys.path[:], sys.modules.get("__main__"))
        # Probes go in before the main module is found: `-m pkg.mod` imports pkg first.
        if self.compiler.needed:
            self.hook.install()
        if self.lines:
            self.collector.start()
        if self.tracer.needed:
            self.tracer.start(None)  # nothing of the program runs yet
        if self.states is not None:
            self.states.start()
        try:
            code, main = self._prepare()
        except BaseException:
            self._stop()
            sys.argv[:], sys.path[:] = saved[0], saved[1]
            raise
        real_exit = os._exit
        old_term = signal.getsignal(signal.SIGTERM)

        def hard_exit(status: int) -> None:  # os._exit skips every finally: save first
            if os.getpid() == self.pid:  # this process's run, or its part (a forked child's)
                self._finish(Outcome("ok", status, "os._exit"))
            real_exit(status)

        os._exit = hard_exit
        if old_term == signal.SIG_DFL and threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, _on_term)
        outcome = Outcome("error", 1, "probe stopped before the program ended")
        if self.lines or self.tracer.needed:
            self.snapshots.start()
        if self.sampler is not None and not self.sampler.start(self.began):
            self.sampler = None
        _running = self
        try:
            sys.modules["__main__"] = main
            outcome = _execute(code, main)
            _join_threads()
        finally:
            _running = None
            os._exit = real_exit
            if signal.getsignal(signal.SIGTERM) is _on_term:
                signal.signal(signal.SIGTERM, old_term)
            self._finish(outcome)
            sys.argv[:], sys.path[:] = saved[0], saved[1]
            if saved[2] is not None:
                sys.modules["__main__"] = saved[2]
        return outcome

    def _prepare(self) -> tuple[types.CodeType, types.ModuleType]:
        """Compile the main code and build ``__main__`` as python would."""
        target = self.target
        main = types.ModuleType("__main__")
        main.__builtins__ = builtins
        if target.module:
            sys.path.insert(0, os.getcwd())
            spec = _find_main_spec(target.module)
            code = spec.loader.get_code(spec.name)
            if code is None:
                raise UsageError(f"no code object available for {target.module}")
            path = spec.origin
            main.__spec__, main.__loader__ = spec, spec.loader
            main.__package__ = spec.parent
        else:
            path = os.path.abspath(target.path)
            home = os.path.dirname(path)
            if os.path.isdir(path):  # `python dir`: dir first on the path, its __main__.py
                home, path = path, os.path.join(path, "__main__.py")
            try:
                with open(path, "rb") as f:
                    data = f.read()
            except OSError as e:
                raise UsageError(f"can't open file {target.path!r}: {e.strerror}") from None
            code = self._compile(data, path)
            sys.path[0:1] = [home]
            main.__spec__ = None
            main.__loader__ = None
        main.__file__ = path
        main.__cached__ = None
        sys.argv = [path if target.module else str(target.path), *target.args]
        return code, main

    def _compile(self, data: bytes, path: str) -> types.CodeType:
        try:
            if self.compiler.needed and self.wanted(path):
                return self.compiler.compile(data, path)
            return compile(importlib.util.decode_source(data), path, "exec", dont_inherit=True)
        except SyntaxError as e:
            where = f"{path}:{e.lineno}" if e.lineno else path
            raise UsageError(f"{where}: syntax error: {e.msg}") from None
        except UnicodeDecodeError as e:  # as python says it: the line, the byte
            line = data[: e.start].count(b"\n") + 1
            raise UsageError(
                f"{path}:{line}: not {e.encoding} (byte {data[e.start]:#x}) and no encoding "
                "declared"
            ) from None
        except ValueError as e:  # null bytes, bad encoding declaration
            raise UsageError(f"{path}: cannot compile: {e}") from None

    def forked(self) -> None:
        """In a forked child: from here on, this process's own part of the run (its counts
        less what the parent had counted at the fork)."""
        self.sampler = None  # py-spy samples the parent
        try:
            recorder = self.recorder.part()
        except StorageError as e:
            warn(f"process {os.getpid()} is not measured: {e}")
            self.finished = True
            sigterm.forget()  # nothing to save
            return
        self.before_fork = (self._hits(), self._started())
        super().forked(recorder)
        self._finishing = threading.RLock()  # another thread of the parent may have held it
        self.pid = os.getpid()  # last: SIGTERM before this ends the child with nothing saved
        if sigterm.is_ours():  # not where the program has a handler of its own
            sigterm.save_on_sigterm(self._terminated)

    def _snapshot(self) -> None:
        self.snapshot(self._hits(), self._started(), lines=self.lines)

    def _hits(self) -> dict[str, dict[int, int]]:
        """Lines run so far, per file by real path (nothing where no line probes are)."""
        if not self.lines:
            return {}
        hits = {os.path.realpath(f): lines for f, lines in self.collector.hits().items()}
        for module in list(sys.modules.values()):  # measured, if no line of it ran (empty)
            path = getattr(module, "__file__", None)
            if isinstance(path, str) and path.endswith(".py") and self.wanted(path):
                hits.setdefault(os.path.realpath(path), {})
        return hits

    def _started(self) -> dict[int, int]:
        """Starts of each function (func site -> count) where the bytecode counts them."""
        if not self.starts:
            return {}
        real = os.path.realpath
        return {
            self.ids.get("func", real(filename), func, line): n
            for filename, starts in self.collector.starts().items()
            for (func, line), n in starts.items()
        }

    def _stop(self) -> None:
        self.snapshots.stop()
        self.hook.remove()
        if self.states is not None:
            self.states.stop()
        if self.tracer.needed:
            self.tracer.stop()
        if self.lines:
            self.collector.stop()

    def _terminated(self) -> bool:
        """SIGTERM in a forked child (``Pool.terminate()`` ends its workers so): its part of
        the run is saved (``sigterm`` then ends it as SIGTERM would have)."""
        if os.getpid() != self.pid:
            return True  # a child forked from this one, before it has a part of its own
        return self._finish(Outcome("killed", 128 + signal.SIGTERM, "terminated by SIGTERM"))

    def _finish(self, outcome: Outcome) -> bool:
        """Save the run (or a forked child's part); False where it was saved already, or
        another thread saved it meanwhile (SIGTERM's: see sigterm)."""
        with self._finishing:  # the other waits: its process ends when this returns
            if self.finished or os.getpid() != self.pid:
                return False  # a forked child records nothing until forked(): the parent's
            self.finished = True
            self._save(outcome)
        return True

    def _save(self, outcome: Outcome) -> None:
        self._stop()
        if self.sampler is not None:
            self.sampler.stop(self.recorder)
        hits, started = self._hits(), self._started()
        if self.before_fork is not None:  # a forked child's part: what it ran itself
            hits = {f: _less(lines, self.before_fork[0].get(f, {})) for f, lines in hits.items()}
            started = _less(started, self.before_fork[1])
        self.write(outcome, hits, started, lines=self.lines)
        if self.lines and self.before_fork is None:
            for text in self.scope.unmatched(hits):
                warn(f"warning: {text}")


def _less(counts: dict[int, int], before: dict[int, int]) -> dict[int, int]:
    return {k: n - before.get(k, 0) for k, n in counts.items() if n > before.get(k, 0)}


def _execute(code: types.CodeType, main: types.ModuleType) -> Outcome:
    """Run the program's code; turn however it ends into an Outcome, as python would."""
    try:
        exec(code, main.__dict__)
    except SystemExit as e:
        return Outcome("ok", *_exit_status(e.code))
    except KeyboardInterrupt as e:
        _print_uncaught(e, code)
        return Outcome("killed", 130, "KeyboardInterrupt")
    except _Terminated:
        return Outcome("killed", 128 + signal.SIGTERM, "terminated by SIGTERM")
    except BaseException as e:  # noqa: BLE001 - the program's exception, reported as python would
        _print_uncaught(e, code)
        return Outcome("error", 1, f"{type(e).__name__}: {e}")
    return Outcome("ok", 0)


def _exit_status(code: object) -> tuple[int, str | None]:
    if code is None:
        return 0, None
    if isinstance(code, int):
        return code, None
    print(code, file=sys.stderr)
    return 1, str(code)


def _print_uncaught(exc: BaseException, code: types.CodeType) -> None:
    tb = exc.__traceback__
    while tb is not None and tb.tb_frame.f_code is not code:
        tb = tb.tb_next  # drop probe's own frames, as if python had run the file
    sys.excepthook(type(exc), exc.with_traceback(tb), tb)


def _join_threads() -> None:
    """Wait for non-daemon threads, as the interpreter does before it exits."""
    for t in threading.enumerate():
        if t is not threading.current_thread() and not t.daemon and t.is_alive():
            t.join()


def _find_main_spec(module: str):  # importlib.machinery.ModuleSpec
    try:
        spec = importlib.util.find_spec(module)
        if spec is not None and spec.submodule_search_locations is not None:
            spec = importlib.util.find_spec(module + ".__main__")
    except (ImportError, ValueError) as e:
        raise UsageError(f"error while finding module specification for {module!r}: {e}") from None
    if spec is None:
        raise UsageError(f"no module named {module}")
    if spec.loader is None or not spec.origin or not os.path.isfile(spec.origin):
        raise UsageError(f"{module} is not a Python source module")
    return spec
