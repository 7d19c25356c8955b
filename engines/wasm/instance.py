"""A module instantiated in this process, its exports called from Python: the engine side
of ``probe.wasm.load``."""

from __future__ import annotations

import os
from typing import Any

from probe.engines import Outcome, Recorder
from probe.errors import Trap, UsageError
from probe.probes import ProbeSet

from . import runner
from .engine import backtrace, compile_module
from .host import Host
from .options import Options
from .rewrite import PROBE_MEMORY_EXPORT
from .tables import write_tables


class Instance:
    """A module instantiated in this process, its exports called from Python (probe.wasm).

    With a recorder, the probes are placed as ``probe run`` places them, and close() reads
    them into the recorder's tables; without, the module runs as it is.
    """

    def __init__(
        self,
        path: str,
        probes: ProbeSet,
        recorder: Recorder | None,
        opts: Options | None = None,
    ) -> None:
        import wasmtime

        self.path = path
        self.recorder = recorder
        opts = opts or Options()
        c = compile_module(path, probes if recorder else None, opts)
        self.prepared = c.prepared
        self.module = module = c.module
        self.unit = os.path.realpath(path)
        self.host = Host(probes, self.prepared, module, self.unit, recorder) if recorder else None
        self.store, instance = runner.instantiate(
            c.engine,
            c.code,
            os.path.basename(path),
            opts,
            self.host.imports() if self.host else None,
            self.host.attach if self.host else None,
        )
        self._exports = instance.exports(self.store)
        memory = self._exports.get(PROBE_MEMORY_EXPORT) if c.plan.any() else None
        self._memory = memory if isinstance(memory, wasmtime.Memory) else None
        self.outcome = Outcome("ok", 0)
        self.closed = False
        if self.prepared.deferred_start:  # the module's start function, run late for probes
            self.call(self.prepared.deferred_start)
        if "_initialize" in self.exports():  # a WASI reactor sets itself up here
            self.call("_initialize")

    def exports(self) -> list[str]:
        """The module's exported functions (probe's own exports left out)."""
        import wasmtime

        ours = {self.prepared.deferred_start}
        return [
            name
            for name, item in runner.exports_of(self._exports)
            if isinstance(item, wasmtime.Func) and name not in ours
        ]

    def function(self, name: str) -> Any:  # a wasmtime.Func
        """The exported function ``name``; AttributeError, listing the exports, if none."""
        import wasmtime

        func = self._exports.get(name)
        if not isinstance(func, wasmtime.Func):
            raise AttributeError(
                f"{os.path.basename(self.path)} exports no function {name!r} "
                f"(exports: {', '.join(self.exports()) or 'none'})"
            )
        return func

    def call(self, name: str, *args: object) -> object:
        import wasmtime

        if self.closed:
            raise UsageError(f"{os.path.basename(self.path)} is closed: its session has ended")
        func = self.function(name)
        try:
            return func(self.store, *args)
        except wasmtime.ExitTrap as e:
            self.outcome = Outcome("ok" if e.code == 0 else "error", e.code, f"exit({e.code})")
            raise SystemExit(e.code) from None
        except wasmtime.Trap as e:
            frames = [(f.func_index, f.func_name or "", f.module_offset) for f in e.frames or []]
            cause = runner.cause(e.message)
            self.outcome = Outcome(
                "trap",
                runner.TRAP_EXIT,
                cause + "\n" + backtrace(frames, self.prepared, self.module),
            )
            raise Trap(f"{name}: {cause}") from None
        except wasmtime.WasmtimeError as e:
            cause = runner.cause(str(e))
            self.outcome = Outcome("trap", runner.TRAP_EXIT, cause)
            raise Trap(f"{name}: {cause}") from None

    def close(self) -> None:
        """Read the probes into the recorder's tables and close it (once)."""
        if self.closed:
            return
        self.closed = True
        if self.recorder is None or self.host is None:
            return
        try:
            self.host.finish()
        finally:
            memory = None
            if self._memory is not None:
                memory = self._memory.read(self.store, 0, self._memory.data_len(self.store))
            write_tables(
                self.recorder, self.unit, self.module, self.prepared, memory, self.host.ranges
            )
            self.recorder.close(self.outcome)
