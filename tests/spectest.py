"""Runs the official WebAssembly spec tests twice in lockstep: plain, and with probes everywhere.

Each .wast file is turned into modules and commands by `wasm-tools json-from-wast`. Every
command runs on the plain module and on the module rewritten with flag probes at every
instruction, block, function, branch arm, call and memory access; the two outcomes must be the
same, and the plain one must be what the spec expects. Modules wasmtime rejects, and modules
of proposals probe does not support, are counted as skipped, with the reason.
"""

from __future__ import annotations

import json
import math
import struct
import subprocess
import tempfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import wasmtime

from probe.engines.wasm import binary, runner
from probe.engines.wasm.options import Options
from probe.engines.wasm.rewrite import Plan, instrument
from probe.probes import Kind

EVERYWHERE = Plan(
    func=Kind.FLAG,
    block=Kind.FLAG,
    instr=Kind.FLAG,
    branch=Kind.FLAG,
    call=Kind.FLAG,
    memory=Kind.FLAG,
    exit=Kind.FLAG,
)
COUNTS = Plan(func=Kind.COUNT, block=Kind.COUNT)
# Callback probes import a host function, which moves every defined function's index.
CALLBACKS = Plan(
    func=Kind.FLAG,
    block=Kind.FLAG,
    call=Kind.FLAG,
    memory=Kind.FLAG,
    exit=Kind.FLAG,
    callbacks=("func", "block", "call", "exit", "memory"),
    ranges=("memory",),
)
# Operand events everywhere they exist: scratch locals, the event writer, a second import.
OPERANDS = Plan(
    func=Kind.COUNT,
    block=Kind.COUNT,
    branch=Kind.COUNT,
    call=Kind.COUNT,
    memory=Kind.COUNT,
    exit=Kind.COUNT,
    callbacks=("func",),
    operand=("block", "branch", "call", "exit", "func", "memory"),
)
# Hot paths: a shadow call stack and Ball-Larus path counters (an else arm of their own for
# ifs without one, br_table value tables, conditional counts on back edges).
HOTPATHS = Plan(func=Kind.COUNT, block=Kind.COUNT, stack=True, paths=True)
# Tail-call loops a million deep: with a host call at each probe they take a minute under
# wasmtime-py (microseconds a call); the plans without host calls run them.
_DEEP = {"return_call.wast", "return_call_indirect.wast"}
_DEEP_ARG = 100_000

PLANS = {
    "everywhere": EVERYWHERE,
    "callbacks": CALLBACKS,
    "operands": OPERANDS,
    "hotpaths": HOTPATHS,
}


class Skip(Exception):
    pass


@dataclass
class Report:
    passed: int = 0
    failed: int = 0
    skipped: Counter = field(default_factory=Counter)
    failures: list[str] = field(default_factory=list)
    modules: int = 0
    instrumented: int = 0

    def add(self, other: Report) -> None:
        self.passed += other.passed
        self.failed += other.failed
        self.skipped.update(other.skipped)
        self.failures += other.failures
        self.modules += other.modules
        self.instrumented += other.instrumented

    def summary(self) -> str:
        lines = [
            f"spec tests: {self.passed} passed, {self.failed} failed, "
            f"{sum(self.skipped.values())} skipped; {self.instrumented} of {self.modules} "
            "modules instrumented"
        ]
        lines += [f"  skipped {n:5}: {why}" for why, n in self.skipped.most_common()]
        lines += [f"  FAILED: {f}" for f in self.failures[:30]]
        return "\n".join(lines)


class _World:
    """One store and linker: the plain side or the probed side."""

    def __init__(self, engine: wasmtime.Engine) -> None:
        self.engine = engine
        self.store = wasmtime.Store(engine)
        self.linker = wasmtime.Linker(engine)
        self.linker.allow_shadowing = True
        self.current: wasmtime.Instance | None = None
        self.named: dict[str, wasmtime.Instance] = {}
        self._spectest()

    def _spectest(self) -> None:
        s, d = self.store, self.linker.define
        i32, i64 = wasmtime.ValType.i32(), wasmtime.ValType.i64()
        f32, f64 = wasmtime.ValType.f32(), wasmtime.ValType.f64()
        for name, params in (
            ("print", []),
            ("print_i32", [i32]),
            ("print_i64", [i64]),
            ("print_f32", [f32]),
            ("print_f64", [f64]),
            ("print_i32_f32", [i32, f32]),
            ("print_f64_f64", [f64, f64]),
        ):
            d(s, "spectest", name, wasmtime.Func(s, wasmtime.FuncType(params, []), lambda *a: None))
        for name, vt, val in (
            ("global_i32", i32, 666),
            ("global_i64", i64, 666),
            ("global_f32", f32, 666.6),
            ("global_f64", f64, 666.6),
        ):
            d(s, "spectest", name, wasmtime.Global(s, wasmtime.GlobalType(vt, False), val))
        d(
            s,
            "spectest",
            "table",
            wasmtime.Table(
                s, wasmtime.TableType(wasmtime.ValType.funcref(), wasmtime.Limits(10, 20)), None
            ),
        )
        d(s, "spectest", "memory", wasmtime.Memory(s, wasmtime.MemoryType(wasmtime.Limits(1, 2))))

        # Host functions must not refer to this world: wasmtime-py holds them in a global
        # table until their store is freed, so one that refers to the store keeps it, and
        # each of its memories' address-space reservation (GiBs), for good.
        d(s, "probe", "hit", wasmtime.Func(s, wasmtime.FuncType([i32, i64], []), lambda *a: None))
        d(s, "probe", "flush", wasmtime.Func(s, wasmtime.FuncType([], []), lambda: None))

    def instantiate(self, module: wasmtime.Module, start: str | None, name: str | None) -> tuple:
        try:
            inst = self.linker.instantiate(self.store, module)
            guards = inst.exports(self.store).get("probe:guards")
            if isinstance(guards, wasmtime.Memory):  # every callback point on: hosts are called
                size = guards.data_len(self.store)
                guards.write(self.store, b"\x01" * size, 0)
            if start:
                inst.exports(self.store)[start](self.store)
        except wasmtime.Trap as e:
            return ("trap", e.trap_code)
        except wasmtime.WasmtimeError:
            return ("unlinkable",)
        self.current = inst
        if name:
            self.named[name] = inst
        return ("ok",)

    def instance(self, name: str | None) -> wasmtime.Instance:
        inst = self.named.get(name) if name else self.current
        if inst is None:
            raise Skip("no module to act on (an earlier module was skipped)")
        return inst

    def act(self, action: dict) -> tuple:
        inst = self.instance(action.get("module"))
        item = inst.exports(self.store).get(action["field"])
        if item is None:
            raise Skip("no such export (its module was replaced by a skipped one)")
        try:
            if action["type"] == "get":
                return ("ok", [_norm(item.value(self.store))])
            args = [_arg(a) for a in action.get("args", [])]
            result = item(self.store, *args)
        except wasmtime.Trap as e:
            return ("trap", e.trap_code)
        except wasmtime.WasmtimeError as e:
            return ("error", str(e).splitlines()[0])
        if result is None:
            values = [None] * len(item.type(self.store).results)
        elif isinstance(result, list | tuple):
            values = list(result)
        else:
            values = [result]
        return ("ok", [_norm(v) for v in values])


def _deep(action: dict) -> bool:
    """Whether an invocation asks for a loop of _DEEP_ARG iterations or more."""
    values = [a.get("value") for a in action.get("args", []) if a.get("type") in ("i32", "i64")]
    return any(isinstance(v, str) and v.isdigit() and int(v) >= _DEEP_ARG for v in values)


def _norm(v: object) -> object:
    if isinstance(v, float):
        return ("nan",) if math.isnan(v) else struct.pack("<d", v)
    if isinstance(v, wasmtime.Func):
        return "funcref"
    return v


def _arg(a: dict) -> object:
    t, v = a["type"], a.get("value")
    if t == "i32":
        n = int(v) & 0xFFFFFFFF
        return wasmtime.Val.i32(n - (1 << 32) if n >= 1 << 31 else n)
    if t == "i64":
        n = int(v) & 0xFFFFFFFFFFFFFFFF
        return wasmtime.Val.i64(n - (1 << 64) if n >= 1 << 63 else n)
    if t == "f32":
        return wasmtime.Val.f32(struct.unpack("<f", struct.pack("<I", int(v) & 0xFFFFFFFF))[0])
    if t == "f64":
        bits = int(v) & 0xFFFFFFFFFFFFFFFF
        return wasmtime.Val.f64(struct.unpack("<d", struct.pack("<Q", bits))[0])
    if t == "externref":
        return wasmtime.Val.externref(None if v == "null" else int(v))
    if t == "funcref" and v == "null":
        return wasmtime.Val.funcref(None)
    raise Skip(f"{t} values can't be passed from wasmtime-py")


def _check_values(cmd: dict) -> None:
    types = [a["type"] for a in cmd["action"].get("args", [])]
    types += [e["type"] for e in cmd.get("expected", [])]
    if "v128" in types or "either" in types:
        raise Skip("v128 values can't cross wasmtime-py")
    for a in cmd["action"].get("args", []):
        if a["type"] in ("f32", "f64") and _signalling_nan(a["type"], int(a["value"])):
            raise Skip("signalling NaN payloads can't cross wasmtime-py (Python floats)")


def _signalling_nan(t: str, bits: int) -> bool:
    if t == "f32":
        return (bits >> 23) & 0xFF == 0xFF and bits & 0x7FFFFF and not bits & 0x400000
    return (bits >> 52) & 0x7FF == 0x7FF and bits & ((1 << 52) - 1) and not bits & (1 << 51)


def _expected_ok(expected: list[dict], got: list) -> bool:
    if len(expected) != len(got):
        return False
    for e, g in zip(expected, got, strict=True):
        t, v = e["type"], e.get("value")
        if t in ("i32", "i64"):
            bits = 32 if t == "i32" else 64
            mask = (1 << bits) - 1
            if not isinstance(g, int) or (g & mask) != (int(v) & mask):
                return False
        elif t in ("f32", "f64"):
            if isinstance(v, str) and v.startswith("nan:"):
                if g != ("nan",):
                    return False
            else:
                fmt = "<I" if t == "f32" else "<Q"
                want = int(v) & (0xFFFFFFFF if t == "f32" else 0xFFFFFFFFFFFFFFFF)
                want_f = struct.unpack("<f" if t == "f32" else "<d", struct.pack(fmt, want))[0]
                if g != (("nan",) if math.isnan(want_f) else struct.pack("<d", want_f)):
                    return False
        elif t in ("externref", "funcref", "anyref", "nullref", "nullfuncref", "nullexternref"):
            if v == "null":
                if g is not None:
                    return False
            elif v is None:
                if g is None:
                    return False
            elif g != int(v):
                return False
        else:
            raise Skip(f"{t} results can't be read from wasmtime-py")
    return True


def run_file(wast: Path, plan: Plan = EVERYWHERE) -> Report:
    report = Report()
    with tempfile.TemporaryDirectory(prefix="spec-") as tmp:
        out = Path(tmp) / "cmds.json"
        conv = subprocess.run(
            ["wasm-tools", "json-from-wast", str(wast), "-o", str(out), "--wasm-dir", tmp],
            capture_output=True,
            text=True,
        )
        if conv.returncode != 0:
            report.skipped["wast not convertible by wasm-tools"] += 1
            return report
        commands = json.loads(out.read_text())["commands"]
        engine = runner.make_engine(Options())
        plain, probed = _World(engine), _World(engine)
        usable = True  # the last module loaded on both sides
        for cmd in commands:
            kind = cmd["type"]
            where = f"{wast.name}:{cmd.get('line')}"
            if kind == "module":
                report.modules += 1
                usable = _load(cmd, Path(tmp), plain, probed, report, where, plan)
                continue
            if kind in ("assert_invalid", "assert_malformed"):
                report.skipped["assert_invalid/malformed: left to wasmtime"] += 1
                continue
            if kind in ("assert_unlinkable", "assert_uninstantiable"):
                # Failed instantiations still write tables and memories: run them on both sides.
                report.modules += 1
                keep = (plain.current, probed.current)  # a failing module never becomes current
                _load(cmd, Path(tmp), plain, probed, report, where, plan, expect_failure=True)
                plain.current, probed.current = keep
                continue
            if kind in ("module_definition", "module_instance", "thread", "wait", "either"):
                report.skipped[f"{kind}: not run by this harness"] += 1
                continue
            if kind == "register":
                if not usable:
                    continue
                for w in (plain, probed):
                    try:
                        w.linker.define_instance(w.store, cmd["as"], w.instance(cmd.get("name")))
                    except Skip:
                        pass
                continue
            if kind not in ("assert_return", "assert_trap", "assert_exhaustion", "action"):
                report.skipped[f"{kind}: unknown command"] += 1
                continue
            if plan.callbacks and wast.name in _DEEP and _deep(cmd["action"]):
                report.skipped["a million host calls (tail-call loops): run by other plans"] += 1
                continue
            try:
                _check_values(cmd)
                a = plain.act(cmd["action"])
                b = probed.act(cmd["action"])
                if kind == "assert_return":
                    ok = a[0] == "ok" and _expected_ok(cmd.get("expected", []), a[1])
                elif kind in ("assert_trap", "assert_exhaustion"):
                    ok = a[0] == "trap"
                else:
                    ok = a[0] == "ok"
            except Skip as e:
                report.skipped[str(e)] += 1
                continue
            if ok and a == b:
                report.passed += 1
            else:
                report.failed += 1
                report.failures.append(f"{where} {kind} plain={a!r} probed={b!r}")
    return report


def _load(
    cmd: dict,
    tmp: Path,
    plain: _World,
    probed: _World,
    report: Report,
    where: str,
    plan: Plan,
    expect_failure: bool = False,
) -> bool:
    data = (tmp / cmd["filename"]).read_bytes()
    try:
        if cmd.get("module_type") == "text":
            data = bytes(wasmtime.wat2wasm(data.decode("utf-8")))
        plain_mod = wasmtime.Module(plain.engine, data)
    except wasmtime.WasmtimeError:
        report.skipped["module rejected by wasmtime (proposal not enabled)"] += 1
        plain.current = probed.current = None
        return False
    try:
        rewritten = instrument(binary.parse(data), plan)
    except binary.NotSupported as e:
        report.skipped[str(e).split(" at byte")[0]] += 1
        plain.current = probed.current = None
        return False
    except binary.WasmError as e:
        report.failed += 1
        report.failures.append(f"{where} probe could not read a module wasmtime accepts: {e}")
        plain.current = probed.current = None
        return False
    try:
        probed_mod = wasmtime.Module(probed.engine, rewritten.module)
    except wasmtime.WasmtimeError as e:
        report.failed += 1
        report.failures.append(f"{where} instrumented module rejected: {str(e).splitlines()[0]}")
        plain.current = probed.current = None
        return False
    report.instrumented += 1
    a = plain.instantiate(plain_mod, None, cmd.get("name"))
    b = probed.instantiate(probed_mod, rewritten.deferred_start, cmd.get("name"))
    if expect_failure:
        if a[0] != "ok" and a == b:
            report.passed += 1
        else:
            report.failed += 1
            report.failures.append(f"{where} expected a failed instantiation: {a} / {b}")
        return False
    if a != b:
        report.failed += 1
        report.failures.append(f"{where} instantiation plain={a} probed={b}")
    return a == b == ("ok",)
