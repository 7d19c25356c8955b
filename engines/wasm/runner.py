"""Running a (probed) module on wasmtime: WASI, --invoke, fuel and timeout, traps, signals.

The module's probe memory is read after the run, whatever way the run
ended: the rewriter turned a start function into an export, so the host
holds the instance (and the probe memory) before any guest code runs.

Guest code never returns to Python by itself, so Python's signal handlers can't stop it. A
watcher thread is woken by SIGINT or SIGTERM through the signal wakeup fd. With --timeout the
module is compiled with epoch interruption, and the watcher bumps the epoch: the guest traps
at its next loop or call. Without it (epoch checks cost up to 2.6x in tight loops: matmul),
the watcher hands the signal to ``on_signal``, which saves the run from a copy of the probe
memory, and then ends the process. A snapshot thread (engines/snapshots.py) copies the probe
memory every few seconds, what a run killed with SIGKILL is stored with.
"""

from __future__ import annotations

import os
import select
import signal
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import wasmtime

from probe.engines import Outcome
from probe.engines.snapshots import Snapshots
from probe.errors import UsageError

from .options import Options

TRAP_EXIT = 134  # what the wasmtime CLI exits with on a trap (128 + SIGABRT)


def make_engine(opts: Options) -> wasmtime.Engine:
    config = wasmtime.Config()
    config.wasm_multi_memory = True
    config.wasm_tail_call = True
    config.wasm_simd = True
    config.wasm_relaxed_simd = True
    config.wasm_bulk_memory = True
    config.wasm_reference_types = True
    config.wasm_multi_value = True
    if opts.fuel is not None:
        config.consume_fuel = True
    if opts.timeout is not None:
        config.epoch_interruption = True
    return wasmtime.Engine(config)


@dataclass
class Ran:
    outcome: Outcome
    probe_memory: bytes | None
    frames: list[tuple[int, str, int]] = field(default_factory=list)  # (func, name, offset)


def run(
    engine: wasmtime.Engine,
    module: wasmtime.Module,
    name: str,
    opts: Options,
    *,
    deferred_start: str | None = None,
    probe_export: str | None = None,
    host_funcs: dict[str, tuple[list[str], Callable[..., None]]] | None = None,
    attach: Callable[[wasmtime.Store, Any], None] | None = None,
    snapshot: Callable[[bytes], None] | None = None,
    on_signal: Callable[[bytes | None, signal.Signals], None] | None = None,
) -> Ran:
    """Run the module (``name`` is its argv[0]): ``deferred_start`` first, the export that
    the rewriter made of its start function; ``probe_export``, the memory to read after the
    run, however it ends; ``host_funcs`` are imported from module "probe" by name (with their
    parameter types); ``attach`` sees the instance's exports before any guest code;
    ``snapshot`` is given a copy of the probe memory every few seconds while the guest runs;
    ``on_signal`` a last copy (and the signal) when SIGINT or SIGTERM ends a run without
    --timeout: it saves the run, and the process then exits 128 + the signal."""
    try:
        store, instance = instantiate(engine, module, name, opts, host_funcs, attach)
    except wasmtime.Trap as e:  # a data segment out of bounds, a start function's trap
        return Ran(Outcome("trap", TRAP_EXIT, f"instantiation: {cause(e.message)}"), None)
    exports = instance.exports(store)
    memory = exports.get(probe_export) if probe_export else None
    if not isinstance(memory, wasmtime.Memory):
        memory = None
    sys.stdout.flush()
    sys.stderr.flush()
    address = size = 0
    if memory is not None:
        # The probe memory never grows, so its address holds for the whole run.
        import ctypes

        address = ctypes.addressof(memory.data_ptr(store).contents)
        size = memory.data_len(store)

    def read() -> bytes | None:
        """A copy of the probe memory, from any thread, while the guest runs."""
        import ctypes

        return ctypes.string_at(address, size) if address else None

    def stop(sig: signal.Signals) -> None:
        if on_signal is not None:
            on_signal(read(), sig)
        sys.stdout.flush()
        os._exit(128 + sig)

    snapshots = None
    if memory is not None and snapshot is not None:
        snapshots = Snapshots(lambda: snapshot(read()))
        snapshots.start()
    try:
        with _Watch(engine, opts.timeout, stop) as watch:
            outcome, frames = _call(store, instance, opts, deferred_start, watch)
    finally:
        if snapshots is not None:
            snapshots.stop()
    data = memory.read(store, 0, memory.data_len(store)) if memory is not None else None
    return Ran(outcome, data, frames)


_STOPPING = (signal.SIGINT, signal.SIGTERM)


class _Watch:
    """While the guest runs, a thread that interrupts it (a signal, the timeout). ``reason``
    says why the guest was interrupted: 'timeout' or a signal."""

    def __init__(
        self,
        engine: wasmtime.Engine,
        timeout: float | None,
        stop: Callable[[signal.Signals], None],
    ) -> None:
        self.engine = engine
        self.timeout = timeout
        self.stop = stop  # without epoch interruption: save the run and end the process
        self.reason: str | signal.Signals | None = None
        self._done = False
        self._handlers: dict[int, Any] = {}
        self._old_fd: int | None = None

    def __enter__(self) -> _Watch:
        self._r, self._w = os.pipe()
        os.set_blocking(self._w, False)
        if threading.current_thread() is threading.main_thread():
            # Our handlers only note the signal; the watcher acts on the byte Python's C
            # handler writes to the wakeup fd at once, even while the guest runs. The fd
            # comes first: a signal between the two steps must not be noted and lost.
            self._old_fd = signal.set_wakeup_fd(self._w, warn_on_full_buffer=False)
            try:
                for sig in _STOPPING:
                    if signal.getsignal(sig) in (signal.default_int_handler, signal.SIG_DFL):
                        self._handlers[sig] = signal.signal(sig, _noted)
            except BaseException:  # Ctrl-C before our handler: the run ends as Ctrl-C ends it
                self._restore()
                raise
        self._thread = threading.Thread(target=self._loop, name="probe-watch", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._done = True
        try:
            os.write(self._w, b"\0")
        except OSError:
            pass
        self._thread.join()
        self._restore()

    def _restore(self) -> None:
        for sig, old in self._handlers.items():
            signal.signal(sig, old)
        if self._old_fd is not None:
            signal.set_wakeup_fd(self._old_fd)
        os.close(self._r)
        os.close(self._w)

    def _loop(self) -> None:
        deadline = time.monotonic() + self.timeout if self.timeout is not None else None
        while not self._done:
            wait = max(0.0, deadline - time.monotonic()) if deadline is not None else None
            ready, _, _ = select.select([self._r], [], [], wait)
            if self._done:
                return
            if ready:
                for signum in os.read(self._r, 64):
                    if signum in _STOPPING and self.reason is None:
                        self.reason = signal.Signals(signum)
                        if self.timeout is None:
                            self.stop(self.reason)  # does not return
                        self.engine.increment_epoch()
                continue
            if deadline is not None and time.monotonic() >= deadline and self.reason is None:
                self.reason = "timeout"
                self.engine.increment_epoch()
                deadline = None


def _noted(signum: int, frame: object) -> None:
    """SIGINT or SIGTERM while the guest runs: the watcher thread has stopped it."""


def instantiate(
    engine: wasmtime.Engine,
    module: wasmtime.Module,
    name: str,
    opts: Options,
    host_funcs: dict[str, tuple[list[str], Callable[..., None]]] | None = None,
    attach: Callable[[wasmtime.Store, Any], None] | None = None,
) -> tuple[wasmtime.Store, wasmtime.Instance]:
    """A store with WASI as ``opts`` say, and the instance; no guest code has run."""
    store = wasmtime.Store(engine)
    wasi = wasmtime.WasiConfig()
    wasi.argv = [name, *opts.args]
    wasi.env = list(opts.env.items())
    wasi.inherit_stdin()
    wasi.inherit_stdout()
    wasi.inherit_stderr()
    for host, guest in opts.dirs:
        if not os.path.isdir(host):
            raise UsageError(f"--dir {host}: no such directory")
        wasi.preopen_dir(host, guest)
    store.set_wasi(wasi)
    if opts.fuel is not None:
        store.set_fuel(opts.fuel)
    if opts.timeout is not None:
        store.set_epoch_deadline(1)  # the first bump of the epoch stops the guest: see _Watch
    linker = wasmtime.Linker(engine)
    linker.define_wasi()
    types = {"i32": wasmtime.ValType.i32(), "i64": wasmtime.ValType.i64()}
    for name, (params, fn) in (host_funcs or {}).items():
        linker.define_func("probe", name, wasmtime.FuncType([types[t] for t in params], []), fn)
    try:
        instance = linker.instantiate(store, module)
    except wasmtime.WasmtimeError as e:
        raise UsageError(_first_line(str(e))) from None
    if attach is not None:
        attach(store, instance.exports(store))
    return store, instance


def _call(
    store: wasmtime.Store,
    instance: wasmtime.Instance,
    opts: Options,
    deferred_start: str | None,
    watch: _Watch,
) -> tuple[Outcome, list[tuple[int, str, int]]]:
    exports = instance.exports(store)
    try:
        if deferred_start:
            exports[deferred_start](store)
        if opts.invoke:
            func = exports.get(opts.invoke)
            if not isinstance(func, wasmtime.Func):
                names = [n for n, e in exports_of(exports) if isinstance(e, wasmtime.Func)]
                raise UsageError(
                    f"no exported function {opts.invoke!r} (exports: {', '.join(names) or 'none'})"
                )
            values = _parse_args(func.type(store), opts.args, opts.invoke)
            result = func(store, *values)
            if result is not None:
                for v in result if isinstance(result, tuple | list) else (result,):
                    print(v)
        else:
            start = exports.get("_start")
            if not isinstance(start, wasmtime.Func):
                raise UsageError("the module has no _start function: name one with --invoke")
            start(store)
    except wasmtime.ExitTrap as e:
        return Outcome("ok", e.code), []
    except wasmtime.Trap as e:
        frames = [(f.func_index, f.func_name or "", f.module_offset) for f in e.frames or []]
        status = "trap"
        msg = e.message
        if e.trap_code == wasmtime.TrapCode.INTERRUPT and isinstance(watch.reason, signal.Signals):
            return Outcome("killed", 128 + watch.reason, f"stopped by {watch.reason.name}"), []
        if e.trap_code == wasmtime.TrapCode.INTERRUPT:
            status, msg = "timeout", f"timed out after {opts.timeout} s"
        elif e.trap_code == wasmtime.TrapCode.OUT_OF_FUEL:
            status, msg = "timeout", f"ran out of fuel ({opts.fuel})"
        return Outcome(status, TRAP_EXIT, cause(msg)), frames
    except wasmtime.WasmtimeError as e:
        return Outcome("trap", TRAP_EXIT, cause(str(e))), []
    except KeyboardInterrupt:
        return Outcome("killed", 130, "KeyboardInterrupt"), []
    return Outcome("ok", 0), []


def exports_of(exports: Any) -> list[tuple[str, Any]]:
    """(name, export) of every export (wasmtime's exports object, or nothing)."""
    try:
        return list(exports.items())
    except AttributeError:
        return []


def _parse_args(ftype: wasmtime.FuncType, args: list[str], name: str) -> list[Any]:
    params = ftype.params
    if len(args) != len(params):
        raise UsageError(f"{name} takes {len(params)} argument(s), got {len(args)}")
    values = []
    for text, vt in zip(args, params, strict=True):
        kind = str(vt)
        try:
            if kind in ("i32", "i64"):
                values.append(int(text, 0))
            elif kind in ("f32", "f64"):
                values.append(float(text))
            else:
                raise UsageError(f"{name}: can't pass a {kind} argument from the command line")
        except ValueError:
            raise UsageError(f"{name}: {text!r} is not a valid {kind}") from None
    return values


def cause(text: str) -> str:
    """The reason in one of wasmtime's error texts (its last line: "wasm trap: ...")."""
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else "unknown error"


def _first_line(text: str) -> str:
    text = text.strip()
    return text.splitlines()[0] if text else "unknown error"
