"""The Wasm engine: read a module, validate, rewrite and compile it (both cached), run it on
wasmtime with WASI, and write what the probes saw.

    read (.wat assembled) → parse (binary.py) → plan (the ProbeSet as the rewriter's Plan)
    → validate and rewrite (rewrite.py; cache.py keeps the result) → compile (cached too)
    → run (runner.py) with the host side of the probes (host.py) → tables (tables.py)
"""

from __future__ import annotations

import fnmatch
import os
import signal
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from probe.engines import Outcome, Recorder, Target
from probe.errors import NotSupported, UsageError, WasmError
from probe.probes import Kind, ProbeSet, Scope

from . import cache, runner
from .binary import Module, parse
from .emit import EVENT_CAPACITY
from .host import Host
from .lines import line_sites
from .options import Options
from .rewrite import PROBE_MEMORY_EXPORT, Plan, Result, instrument
from .tables import counts_columns, write_sites

if TYPE_CHECKING:
    import wasmtime

# The event classes this engine probes, and the Plan field that places each.
EVENT_FIELDS = {
    "func": "func",
    "block": "block",
    "instr": "instr",
    "branch": "branch",
    "call": "call",
    "load": "memory",
    "store": "memory",
    "return": "exit",
}


class WasmEngine:
    name = "wasm"
    # stack: sampled from a shadow stack the rewriter keeps (plan.stack); path: Ball-Larus
    # path counts (plan.paths)
    events = frozenset(EVENT_FIELDS) | {"stack", "path"}

    def run(self, target: Target, probes: ProbeSet, scope: Scope, recorder: Recorder) -> Outcome:
        opts = Options(**target.options)
        opts.args = list(target.args)
        path = str(target.path)
        c = compile_module(path, probes, opts)
        unit = os.path.realpath(path)
        host = Host(probes, c.prepared, c.module, unit, recorder)
        lines = line_sites(c.module, c.prepared, scope)
        write_sites(recorder, unit, c.module, c.prepared, lines)  # first: a killed run keeps them
        ran = None
        outcome = Outcome("error", 1, "probe stopped before the program ended")

        def snapshot(memory: bytes) -> None:
            ranges = host.ranges.copy() if host.ranges is not None else None
            recorder.snapshot({"counts": counts_columns(c.prepared, memory, ranges, lines)})

        def on_signal(memory: bytes | None, sig: signal.Signals) -> None:
            # From the watcher thread, the guest still running: save, then the runner exits.
            host.samples()
            ranges = host.ranges.copy() if host.ranges is not None else None
            recorder.write("counts", counts_columns(c.prepared, memory, ranges, lines))
            message = f"stopped by {sig.name}"
            if c.prepared.events:
                message += f"; events after the last batch of {EVENT_CAPACITY:,} are not kept"
            recorder.close(Outcome("killed", 128 + sig, message))
            print(f"probe: {message}", file=sys.stderr, flush=True)

        try:
            ran = runner.run(
                c.engine,
                c.code,
                os.path.basename(path),
                opts,
                deferred_start=c.prepared.deferred_start,
                probe_export=PROBE_MEMORY_EXPORT if c.plan.any() else None,
                host_funcs=host.imports(),
                attach=host.attach,
                snapshot=snapshot,
                on_signal=on_signal,
            )
            outcome = ran.outcome
            if ran.frames:
                trace = backtrace(ran.frames, c.prepared, c.module)
                outcome.message = (outcome.message or "") + "\n" + trace
                print(f"probe: {outcome.message}", file=sys.stderr)
            elif outcome.status in ("timeout", "killed") or outcome.message:
                print(f"probe: {outcome.message}", file=sys.stderr)
        finally:
            try:
                host.samples()
                host.paths()
                host.finish()
            finally:
                memory = ran.probe_memory if ran else None
                recorder.write("counts", counts_columns(c.prepared, memory, host.ranges, lines))
                recorder.close(outcome)
        return outcome


@dataclass(frozen=True)
class Compiled:
    """A module made ready to run: as the user wrote it, the plan, as rewritten, as compiled."""

    module: Module  # the user's module, parsed: names and offsets are its own
    plan: Plan
    prepared: Result  # the rewritten module, its sites and how to map back
    engine: wasmtime.Engine
    code: wasmtime.Module


def compile_module(path: str, probes: ProbeSet | None, opts: Options) -> Compiled:
    """The module at ``path`` read, parsed, validated, rewritten for ``probes`` (None: left
    as it is) and compiled by wasmtime (both cached)."""
    original = load_bytes(path)
    try:
        module = parse(original)
    except WasmError as e:
        raise UsageError(f"{path}: {e}") from None
    plan = plan_for(probes, WasmEngine.events, module) if probes is not None else Plan()
    engine = runner.make_engine(opts)
    prepared = prepare(original, module, plan, engine)
    return Compiled(module, plan, prepared, engine, compile_cached(engine, prepared, opts))


def plan_for(probes: ProbeSet, events: frozenset[str], module: Module | None = None) -> Plan:
    unsupported = probes.events() - events
    if unsupported:
        raise UsageError(f"the wasm engine has no {', '.join(sorted(unsupported))} probes")
    plan = Plan()
    callbacks, operand, ranges = set(), set(), set()
    switchable = probes.switchable()
    only: set[str] | None = set()  # operand events limited to these function name patterns
    for event, field_name in EVENT_FIELDS.items():
        kind = probes.kind_for(event)
        if event in switchable:
            if event == "branch":
                raise UsageError("the wasm engine has no callback probes on branch arms yet")
            callbacks.add(field_name)
            kind = max(kind or Kind.FLAG, Kind.FLAG)
        if kind is None:
            continue
        count = Kind.COUNT if kind >= Kind.COUNT else Kind.FLAG
        setattr(plan, field_name, max(getattr(plan, field_name), count))
        if kind == Kind.RANGE:
            ranges.add(field_name)
        if kind == Kind.OPERAND:
            operand.add(field_name)
            funcs = probes.funcs_for(event, Kind.OPERAND)
            if funcs is None:
                only = None
            elif only is not None:
                only.update(funcs)
    if probes.kind_for("stack") is not None:
        if probes.kind_for("stack") != Kind.SAMPLE:
            raise UsageError("the wasm engine samples stacks; exact calling contexts: not yet")
        plan.stack = True
    if probes.kind_for("path") is not None:
        if plan.branch:
            raise UsageError("path probes and branch probes don't go together yet: run them apart")
        plan.paths = True
        plan.func = max(plan.func, Kind.FLAG)  # the paths table names functions by their site
    plan.callbacks = tuple(sorted(callbacks))
    plan.operand = tuple(sorted(operand))
    plan.ranges = tuple(sorted(ranges - operand))
    if operand and only is not None and module is not None:
        plan.operand_funcs = tuple(
            b.index
            for b in module.bodies
            if any(fnmatch.fnmatchcase(module.func_name(b.index), pat) for pat in sorted(only))
        )
    return plan


def load_bytes(path: str) -> bytes:
    try:
        data = Path(path).read_bytes()
    except OSError as e:
        raise UsageError(f"can't open file {path!r}: {e.strerror}") from None
    if path.endswith(".wat") or (data[:4] != b"\0asm" and data.lstrip()[:1] == b"("):
        import wasmtime

        try:
            return bytes(wasmtime.wat2wasm(data.decode("utf-8")))
        except (wasmtime.WasmtimeError, UnicodeDecodeError) as e:
            raise UsageError(f"{path}: {str(e).strip().splitlines()[0]}") from None
    return data


def prepare(data: bytes, module: Module, plan: Plan, engine: wasmtime.Engine) -> Result:
    """The module rewritten for ``plan``: from the cache, or validated, rewritten and cached."""
    result = cache.rewritten(data, plan)
    if result is not None:
        return result
    problem = cache.validate(engine, data, module)
    if problem is not None:
        raise UsageError(f"invalid module: {problem}")
    try:
        result = instrument(module, plan)
    except NotSupported as e:
        raise UsageError(str(e)) from None
    except WasmError as e:
        raise UsageError(f"malformed module: {e}") from None
    cache.keep_rewritten(data, plan, result)
    return result


def compile_cached(engine: wasmtime.Engine, prepared: Result, opts: Options) -> wasmtime.Module:
    """wasmtime's compiled module, from the cache when this exact module was compiled before."""
    import wasmtime

    module = cache.compiled(engine, prepared, opts.config_key())
    if module is not None:
        return module
    try:
        module = wasmtime.Module(engine, prepared.module)
    except wasmtime.WasmtimeError as e:
        raise UsageError(f"invalid module: {str(e).strip().splitlines()[0]}") from None
    cache.keep_compiled(module, prepared, opts.config_key())
    return module


def backtrace(frames: list[tuple[int, str, int]], prepared: Result, module: Module) -> str:
    lines = ["wasm backtrace:"]
    for i, (func, name, offset) in enumerate(frames):
        orig = prepared.original_offset(offset) if offset is not None else None
        where = f"{orig:#x}" if orig is not None else "?"
        index = prepared.original_func(func) if func is not None else None
        if index is None:  # a frame of probe's own code, or one wasmtime could not place
            label = "probe" if func is not None else (name or "?")
            lines.append(f"  {i:>3}: {where} - {label}")
        else:
            lines.append(f"  {i:>3}: {where} - {module.func_name(index)} (func {index})")
    return "\n".join(lines)
