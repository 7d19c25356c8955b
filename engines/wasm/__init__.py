"""The Wasm engine: rewrite a module with inline probes, run it on wasmtime with WASI.

Flow: read (.wat is assembled first) → parse (binary.py) → rewrite for the
run's ProbeSet (rewrite.py; cached with wasmtime's compiled artifact by
module hash and probe-set key) → run (runner.py) → read the probe memory
→ ``sites`` and ``counts`` tables.
"""

from __future__ import annotations

import hashlib
import os
import pickle
import sys
from collections.abc import Callable
from pathlib import Path

from probe.engines import Outcome, Recorder, Target, UsageError
from probe.probes import Kind, ProbeSet, Scope

from .binary import Module, NotSupported, WasmError, parse
from .rewrite import COUNT, FLAG, Plan, Result, instrument

REWRITER_VERSION = "2"  # part of every cache key: bump when rewritten modules change
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


class WasmEngine:
    name = "wasm"
    events = frozenset(_EVENT_FIELDS)

    def run(self, target: Target, probes: ProbeSet, scope: Scope, recorder: Recorder) -> Outcome:
        from . import runner

        plan = plan_for(probes, self.events)
        opts = runner.Options(**target.options)
        opts.args = list(target.args)
        path = str(target.path)
        original = load_bytes(path)
        try:
            module = parse(original)
        except WasmError as e:
            raise UsageError(f"{path}: {e}") from None
        prepared = prepare(original, module, plan)
        engine = runner.make_engine(opts)
        compiled = compile_cached(engine, prepared, runner.config_key(opts))
        ran = None
        outcome = Outcome("error", 1, "probe stopped before the program ended")
        try:
            ran = runner.run(
                engine,
                compiled,
                os.path.basename(path),
                opts,
                prepared.deferred_start,
                "probe:memory" if plan.any() else None,
                _dispatcher(probes, prepared, module) if prepared.calls_host else None,
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
            memory = ran.probe_memory if ran else None
            _write_tables(recorder, os.path.realpath(path), module, prepared, memory)
            recorder.close(outcome)
        return outcome


def _dispatcher(probes: ProbeSet, prepared: Result, module: Module) -> Callable[[int], None]:
    """The host function callback probes call: site id -> each callback, in order."""
    from probe.probes import SiteEvent

    sites = prepared.sites
    by_kind = {
        kind: probes.callbacks(event)
        for event, kind in (
            ("func", "func"),
            ("block", "block"),
            ("instr", "instr"),
            ("call", "call"),
            ("load", "memory"),
            ("store", "memory"),
            ("return", "return"),
        )
    }
    names: dict[int, str] = {}

    def hit(site: int) -> None:
        kind = sites.kind[site]
        fns = by_kind.get(kind)
        if not fns:
            return
        func = sites.func[site]
        name = names.get(func) or names.setdefault(func, module.func_name(func))
        event = SiteEvent(site, kind, name, sites.offset[site])
        for fn in fns:
            fn(event)

    return hit


def plan_for(probes: ProbeSet, events: frozenset[str]) -> Plan:
    unsupported = probes.events() - events
    if unsupported:
        raise UsageError(f"the wasm engine has no {', '.join(sorted(unsupported))} probes")
    plan = Plan()
    callbacks = []
    for event, field_name in _EVENT_FIELDS.items():
        kind = probes.kind_for(event)
        if kind is None:
            continue
        if kind == Kind.OPERAND:
            raise UsageError("the wasm engine has no operand probes yet")
        count = COUNT if kind == Kind.COUNT else FLAG
        setattr(plan, field_name, max(getattr(plan, field_name), count))
        if probes.callbacks(event):
            if event == "branch":
                raise UsageError("the wasm engine has no callback probes on branch arms yet")
            callbacks.append(field_name)
    plan.callbacks = tuple(sorted(set(callbacks)))
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


def cache_dir() -> Path:
    root = os.environ.get("PROBE_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "probe"
    )
    return Path(root) / "wasm"


def _key(data: bytes, plan: Plan) -> str:
    h = hashlib.sha256(data)
    h.update(f"|{plan.key()}|{REWRITER_VERSION}".encode())
    return h.hexdigest()[:32]


def prepare(data: bytes, module: Module, plan: Plan) -> Result:
    """The module rewritten for ``plan``: from the cache, or rewritten now and cached."""
    folder = cache_dir() / _key(data, plan)
    cached = folder / "rewrite.pickle"
    try:
        with open(cached, "rb") as f:
            return pickle.load(f)
    except (OSError, pickle.UnpicklingError, EOFError, AttributeError):
        pass
    try:
        result = instrument(module, plan)
    except NotSupported as e:
        raise UsageError(str(e)) from None
    except WasmError as e:
        raise UsageError(f"malformed module: {e}") from None
    try:
        folder.mkdir(parents=True, exist_ok=True)
        tmp = cached.with_suffix(".tmp")
        with open(tmp, "wb") as f:
            pickle.dump(result, f, protocol=pickle.HIGHEST_PROTOCOL)
        os.replace(tmp, cached)
    except OSError:
        pass  # no cache this time
    return result


def compile_cached(engine, prepared: Result, config: str):  # noqa: ANN001, ANN201 - wasmtime types
    """wasmtime's compiled module, from the cache when this exact module was compiled before."""
    import wasmtime

    key = hashlib.sha256(prepared.module).hexdigest()[:32]
    artifact = cache_dir() / "compiled" / f"{key}-{config}-{wasmtime_version()}.cwasm"
    if artifact.exists():
        try:
            return wasmtime.Module.deserialize_file(engine, str(artifact))
        except wasmtime.WasmtimeError:
            pass
    try:
        module = wasmtime.Module(engine, prepared.module)
    except wasmtime.WasmtimeError as e:
        raise UsageError(f"invalid module: {str(e).strip().splitlines()[0]}") from None
    try:
        artifact.parent.mkdir(parents=True, exist_ok=True)
        tmp = artifact.with_suffix(".tmp")
        tmp.write_bytes(module.serialize())
        os.replace(tmp, artifact)
    except OSError:
        pass
    return module


def wasmtime_version() -> str:
    from importlib.metadata import version

    return version("wasmtime")


def _backtrace(frames: list[tuple[int, str, int]], prepared: Result, module: Module) -> str:
    lines = ["wasm backtrace:"]
    for i, (func, name, offset) in enumerate(frames):
        orig = prepared.original_offset(offset) if offset is not None else None
        label = module.func_name(func) if func is not None else (name or "?")
        where = f"{orig:#x}" if orig is not None else "?"
        lines.append(f"  {i:>3}: {where} - {label} (func {func})")
    return "\n".join(lines)


def _write_tables(
    recorder: Recorder, unit: str, module: Module, prepared: Result, memory: bytes | None
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
    names = {int(f): module.func_name(int(f)) for f in np.unique(funcs)}
    recorder.write(
        "sites",
        {
            "site_id": np.arange(n, dtype=np.int64),
            "kind": sites.kind,
            "unit": [unit] * n,
            "func": [names[int(f)] for f in funcs],
            "offset": np.frombuffer(sites.offset, dtype=np.int64) if n else np.zeros(0, np.int64),
            "target": sites.target,
            "size": np.frombuffer(sites.size, dtype=np.int64) if n else np.zeros(0, np.int64),
        },
    )
    hit = np.nonzero(counts)[0]
    recorder.write("counts", {"site_id": hit.astype(np.int64), "count": counts[hit]})
