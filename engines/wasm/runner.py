"""Running a (probed) module on wasmtime: WASI, --invoke, fuel and timeout, traps.

The module's probe memory is read after the run, whatever way the run
ended: the rewriter turned a start function into an export, so the host
holds the instance (and the probe memory) before any guest code runs.
"""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import wasmtime

from probe.engines import Outcome
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
) -> Ran:
    """Run the module (``name`` is its argv[0]): ``deferred_start`` first, the export that
    the rewriter made of its start function; ``probe_export``, the memory to read after the
    run, however it ends; ``host_funcs`` are imported from module "probe" by name (with their
    parameter types); ``attach`` sees the instance's exports before any guest code."""
    store, instance = instantiate(engine, module, name, opts, host_funcs, attach)
    exports = instance.exports(store)
    memory = exports.get(probe_export) if probe_export else None
    sys.stdout.flush()
    sys.stderr.flush()
    timer = None
    if opts.timeout is not None:
        timer = threading.Timer(opts.timeout, engine.increment_epoch)
        timer.daemon = True
        timer.start()
    try:
        outcome, frames = _call(store, instance, opts, deferred_start)
    finally:
        if timer:
            timer.cancel()
    data = None
    if isinstance(memory, wasmtime.Memory):
        data = memory.read(store, 0, memory.data_len(store))
    return Ran(outcome, data, frames)


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
        store.set_epoch_deadline(1)
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
    store: wasmtime.Store, instance: wasmtime.Instance, opts: Options, deferred_start: str | None
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
