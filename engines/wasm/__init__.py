"""The Wasm engine: rewrite a module with inline probes, run it on wasmtime with WASI.

Flow: read (.wat is assembled first) → parse (binary.py) → rewrite for the
run's ProbeSet (rewrite.py; cached with wasmtime's compiled artifact by
module hash and probe-set key) → run (runner.py) → read the probe memory
→ ``sites`` and ``counts`` tables.
"""

from __future__ import annotations

import fnmatch
import os
import sys
from collections.abc import Callable
from pathlib import Path

from probe.engines import Outcome, Recorder, Target, UsageError
from probe.probes import Kind, Probe, ProbeSet, Scope, SiteEvent, Switchboard, site_matches

from . import cache, runner
from .binary import Module, NotSupported, WasmError, parse
from .rewrite import (
    COUNT,
    CURSOR_EXPORT,
    EVENT_BYTES,
    EVENT_CAPACITY,
    EVENTS_EXPORT,
    FLAG,
    FLUSH_IMPORT,
    GUARDS_EXPORT,
    HIT_IMPORT,
    PROBE_MEMORY_EXPORT,
    RANGES_EXPORT,
    Plan,
    Result,
    instrument,
)

_EVENT_FIELDS = {
    "func": "func",
    "block": "block",
    "instr": "instr",
    "branch": "branch",
    "call": "call",
    "load": "memory",
    "store": "memory",
    "return": "exit",
}
# One event in the ring, as the event writer stores it.
_EVENT_DTYPE = [("value", "<i8"), ("site", "<i4"), ("pad", "<i4")]


class WasmEngine:
    name = "wasm"
    events = frozenset(_EVENT_FIELDS)

    def run(self, target: Target, probes: ProbeSet, scope: Scope, recorder: Recorder) -> Outcome:
        opts = runner.Options(**target.options)
        opts.args = list(target.args)
        path = str(target.path)
        module, plan, prepared, engine, compiled = _compiled(path, probes, opts)
        unit = os.path.realpath(path)
        host = _Host(probes, prepared, module, unit, recorder)
        ran = None
        outcome = Outcome("error", 1, "probe stopped before the program ended")
        try:
            ran = runner.run(
                engine,
                compiled,
                os.path.basename(path),
                opts,
                prepared.deferred_start,
                PROBE_MEMORY_EXPORT if plan.any() else None,
                host.imports(),
                host.attach,
            )
            outcome = ran.outcome
            if ran.frames:
                outcome.message = (
                    (outcome.message or "") + "\n" + _backtrace(ran.frames, prepared, module)
                )
                print(f"probe: {outcome.message}", file=sys.stderr)
            elif outcome.status == "timeout":
                print(f"probe: {outcome.message}", file=sys.stderr)
        finally:
            try:
                host.finish()
            finally:
                memory = ran.probe_memory if ran else None
                _write_tables(recorder, unit, module, prepared, memory, host.ranges)
                recorder.close(outcome)
        return outcome


class Trap(Exception):
    """A trap in a Wasm function called from Python: one line, the cause and where."""


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
        opts: runner.Options | None = None,
    ) -> None:
        import wasmtime

        self.path = path
        self.recorder = recorder
        opts = opts or runner.Options()
        module, plan, self.prepared, engine, compiled = _compiled(
            path, probes if recorder else None, opts
        )
        self.module = module
        self.unit = os.path.realpath(path)
        self.host = _Host(probes, self.prepared, module, self.unit, recorder) if recorder else None
        self.store, instance = runner.instantiate(
            engine,
            compiled,
            os.path.basename(path),
            opts,
            self.host.imports() if self.host else None,
            self.host.attach if self.host else None,
        )
        self._exports = instance.exports(self.store)
        memory = self._exports.get(PROBE_MEMORY_EXPORT) if plan.any() else None
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
            for name, item in runner._items(self._exports)
            if isinstance(item, wasmtime.Func) and name not in ours
        ]

    def function(self, name: str):  # a wasmtime.Func
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
            cause = runner._cause(e.message)
            self.outcome = Outcome(
                "trap",
                runner.TRAP_EXIT,
                cause + "\n" + _backtrace(frames, self.prepared, self.module),
            )
            raise Trap(f"{name}: {cause}") from None
        except wasmtime.WasmtimeError as e:
            cause = runner._cause(str(e))
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
            _write_tables(
                self.recorder, self.unit, self.module, self.prepared, memory, self.host.ranges
            )
            self.recorder.close(self.outcome)


def _compiled(path: str, probes: ProbeSet | None, opts: runner.Options):
    """The module at ``path`` read, parsed, rewritten for ``probes`` (None: left as it is)
    and compiled by wasmtime (both cached): (module, plan, prepared, engine, compiled)."""
    original = load_bytes(path)
    try:
        module = parse(original)
    except WasmError as e:
        raise UsageError(f"{path}: {e}") from None
    plan = plan_for(probes, WasmEngine.events, module) if probes is not None else Plan()
    engine = runner.make_engine(opts)
    prepared = prepare(original, module, plan, engine)
    return module, plan, prepared, engine, compile_cached(engine, prepared, runner.config_key(opts))


class _Host:
    """The host side of a probed module: callback points, the event ring, live probes."""

    def __init__(
        self, probes: ProbeSet, prepared: Result, module: Module, unit: str, recorder: Recorder
    ) -> None:
        self.prepared = prepared
        self.module = module
        self.unit = unit
        self.recorder = recorder
        self.store = None
        self.guards = None  # numpy view of the guard memory
        self.ring = None  # numpy view of the event ring
        self.cursor = None
        self.ranges = None  # numpy (sites, 2) view: lowest and highest operand per site
        self.seq = 0
        self.names: dict[int, str] = {}
        self._kinds = None
        self.board = Switchboard(self._resolve, self._switch)
        self._initial = probes.callback_probes()

    def imports(self) -> dict[str, tuple[list[str], Callable[..., None]]]:
        found = {}
        if self.prepared.calls_host:
            found[HIT_IMPORT[1]] = (["i32", "i64"], self.hit)
        if self.prepared.events:
            found[FLUSH_IMPORT[1]] = ([], self.flush)
        return found

    def attach(self, store, exports) -> None:  # wasmtime types
        """Called once the instance exists, before any guest code runs."""
        import numpy as np

        self.store = store
        if self.prepared.calls_host:
            self.guards = _view(store, exports[GUARDS_EXPORT], np.uint8)
            for probe in self._initial:
                if probe.callback is not None:
                    self.board.insert(probe)
        if self.prepared.events:
            self.ring = _view(store, exports[EVENTS_EXPORT], _EVENT_DTYPE)
            self.cursor = exports[CURSOR_EXPORT]
        if self.prepared.ranges:
            self.ranges = _view(store, exports[RANGES_EXPORT], np.uint64).reshape(-1, 2)
            self.ranges[:, 0] = np.iinfo(np.uint64).max  # lowest seen: none yet

    # -- callback points --------------------------------------------------------

    def _site_kinds(self):  # numpy array of kind names
        import numpy as np

        if self._kinds is None:
            self._kinds = np.array(self.prepared.sites.kind, dtype=object)
        return self._kinds

    def _resolve(self, probe: Probe) -> list[int]:
        sites, pattern = self.prepared.sites, probe.site
        assert pattern is not None
        kind = probe.event  # site kinds are the event class names
        return [
            i
            for i in range(len(sites))
            if sites.kind[i] == kind
            and site_matches(
                pattern,
                kind,
                self.unit,
                self._name(sites.func[i]),
                offset=sites.offset[i],
                target=sites.target[i],
            )
        ]

    def _switch(self, event: str, site_ids, on: bool) -> None:  # ids or None
        if self.guards is None:
            raise ValueError(f"no callback points on {event} sites in this run")
        if site_ids is None:
            mask = self._site_kinds() == event
            if not on:  # sites with local probes of their own stay on
                keep = [i for i in range(len(mask)) if mask[i] and self.board.active(event, i)]
                self.guards[: len(mask)][mask] = 0
                self.guards[keep] = 1
            else:
                self.guards[: len(mask)][mask] = 1
            return
        for i in site_ids:
            self.guards[i] = 1 if on else int(self.board.active(event, i))

    def _name(self, func: int) -> str:
        name = self.names.get(func)
        if name is None:
            name = self.names[func] = self.module.func_name(func)
        return name

    def hit(self, site: int, value: int) -> None:
        sites = self.prepared.sites
        kind = sites.kind[site]
        self.board.fire(
            kind,
            site,
            SiteEvent(
                site,
                kind,
                self._name(sites.func[site]),
                offset=sites.offset[site],
                unit=self.unit,
                value=value if site in sites.valued else None,
                probes=self.board,
            ),
        )

    # -- the event ring ---------------------------------------------------------

    def flush(self, count: int = EVENT_CAPACITY) -> None:
        """Move ``count`` events from the ring to the run's events table, as one batch."""
        import numpy as np

        if not count:
            return
        events = self.ring[:count]
        self.recorder.append(
            "events",
            {
                "seq": np.arange(self.seq, self.seq + count, dtype=np.int64),
                "site_id": events["site"].astype(np.int64),
                "value": events["value"].copy(),
            },
        )
        self.seq += count

    def finish(self) -> None:
        """Take the events still in the ring, however the run ended."""
        if self.ring is not None and self.store is not None:
            self.flush(self.cursor.value(self.store) // EVENT_BYTES)


def _view(store, memory, dtype):  # wasmtime and numpy types
    """A numpy view of a memory the guest never grows (so its address stays put)."""
    import ctypes

    import numpy as np

    size = memory.data_len(store)
    buf = (ctypes.c_ubyte * size).from_address(ctypes.addressof(memory.data_ptr(store).contents))
    return np.frombuffer(buf, dtype=dtype)


def plan_for(probes: ProbeSet, events: frozenset[str], module: Module | None = None) -> Plan:
    unsupported = probes.events() - events
    if unsupported:
        raise UsageError(f"the wasm engine has no {', '.join(sorted(unsupported))} probes")
    plan = Plan()
    callbacks, operand, ranges = set(), set(), set()
    switchable = probes.switchable()
    only: set[str] | None = set()  # operand events limited to these function name patterns
    for event, field_name in _EVENT_FIELDS.items():
        kind = probes.kind_for(event)
        if event in switchable:
            if event == "branch":
                raise UsageError("the wasm engine has no callback probes on branch arms yet")
            callbacks.add(field_name)
            kind = max(kind or Kind.FLAG, Kind.FLAG)
        if kind is None:
            continue
        count = COUNT if kind >= Kind.COUNT else FLAG
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


def prepare(data: bytes, module: Module, plan: Plan, engine) -> Result:
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


def compile_cached(engine, prepared: Result, config: str):  # wasmtime types
    """wasmtime's compiled module, from the cache when this exact module was compiled before."""
    import wasmtime

    module = cache.compiled(engine, prepared, config)
    if module is not None:
        return module
    try:
        module = wasmtime.Module(engine, prepared.module)
    except wasmtime.WasmtimeError as e:
        raise UsageError(f"invalid module: {str(e).strip().splitlines()[0]}") from None
    cache.keep_compiled(module, prepared, config)
    return module


def _backtrace(frames: list[tuple[int, str, int]], prepared: Result, module: Module) -> str:
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


def _write_tables(
    recorder: Recorder,
    unit: str,
    module: Module,
    prepared: Result,
    memory: bytes | None,
    ranges=None,  # numpy (sites, 2) lowest and highest operands, or None
) -> None:
    import numpy as np

    sites = prepared.sites
    n = len(sites)
    slots = np.frombuffer(sites.slot, dtype=np.int64) if n else np.zeros(0, np.int64)
    if memory is not None and prepared.slots:
        dtype = np.int64 if prepared.counting else np.uint8
        values = np.frombuffer(memory, dtype=dtype, count=prepared.slots).astype(np.int64)
        counts = np.where(slots >= 0, values[np.clip(slots, 0, None)], 0)
    else:
        counts = np.zeros(n, np.int64)
    funcs = np.frombuffer(sites.func, dtype=np.int64) if n else np.zeros(0, np.int64)
    # Imported functions are sites too (kind 'import', never counted): call sites name them.
    imports = range(module.imported_funcs)
    names = {int(f): module.func_name(int(f)) for f in np.unique(funcs)}
    names.update((i, module.func_name(i)) for i in imports)
    targets = list(sites.target) + list(imports)
    recorder.write(
        "sites",
        {
            "site_id": np.arange(n + len(imports), dtype=np.int64),
            "kind": list(sites.kind) + ["import"] * len(imports),
            "unit": [unit] * (n + len(imports)),
            "func": [names[int(f)] for f in funcs] + [names[i] for i in imports],
            "offset": np.concatenate(
                [
                    np.frombuffer(sites.offset, dtype=np.int64) if n else np.zeros(0, np.int64),
                    np.full(len(imports), -1, np.int64),
                ]
            ),
            "target": targets,
            "size": np.concatenate(
                [
                    np.frombuffer(sites.size, dtype=np.int64) if n else np.zeros(0, np.int64),
                    np.zeros(len(imports), np.int64),
                ]
            ),
        },
    )
    hit = np.nonzero(counts)[0]
    columns = {"site_id": hit.astype(np.int64), "count": counts[hit]}
    if ranges is not None:
        seen = ranges[:n][hit]
        low = seen[:, 0].astype(np.int64)
        has = seen[:, 0] <= seen[:, 1]
        columns["low"] = np.where(has, low, 0)
        columns["high"] = np.where(has, seen[:, 1].astype(np.int64), 0)
        if not has.all():  # sites without a range keeper (not loads or stores)
            columns["low"] = [
                int(v) if h else None for v, h in zip(columns["low"], has, strict=True)
            ]
            columns["high"] = [
                int(v) if h else None for v, h in zip(columns["high"], has, strict=True)
            ]
    recorder.write("counts", columns)
