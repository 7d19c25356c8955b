"""Callback probes: an imported host function, every function index moved, order kept."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from probe.engines import Outcome, Target
from probe.engines.wasm.engine import WasmEngine
from probe.probes import Kind, Probe, ProbeSet, Scope

FIB = Path(__file__).resolve().parents[1] / "samples" / "wasm" / "fib.wat"


class MemoryRecorder:
    def __init__(self) -> None:
        self.tables: dict[str, dict] = {}
        self.outcome: Outcome | None = None

    def write(self, table: str, columns: dict) -> None:
        self.tables[table] = columns

    def close(self, outcome: Outcome) -> None:
        self.outcome = outcome


def test_callbacks_fire_in_order_and_agree_with_counts(tmp_path, monkeypatch, capfd) -> None:
    monkeypatch.setenv("PROBE_CACHE", str(tmp_path))
    seen: list[tuple[str, str, int]] = []
    probes = ProbeSet.of(
        [
            Probe("func", Kind.COUNT),
            Probe(
                "func", Kind.CALLBACK, callback=lambda e: seen.append(("first", e.func, e.offset))
            ),
            Probe(
                "func", Kind.CALLBACK, callback=lambda e: seen.append(("second", e.func, e.offset))
            ),
        ]
    )
    rec = MemoryRecorder()
    target = Target(path=str(FIB), args=["10"], options={"invoke": "fib"})
    outcome = WasmEngine().run(target, probes, Scope(), rec)
    assert outcome.status == "ok" and capfd.readouterr().out == "55\n"  # fib still calls fib
    assert len(seen) == 2 * 177
    assert [s[0] for s in seen[:4]] == ["first", "second", "first", "second"]
    assert {s[1] for s in seen} == {"fib"}
    sites, counts = rec.tables["sites"], rec.tables["counts"]
    fib_site = [i for i, f in enumerate(sites["func"]) if f == "fib"][0]
    by_site = dict(
        zip(
            np.asarray(counts["site_id"]).tolist(),
            np.asarray(counts["count"]).tolist(),
            strict=True,
        )
    )
    assert by_site[fib_site] == 177  # the count probe and the callbacks saw the same calls
    assert seen[0][2] == int(np.asarray(sites["offset"])[fib_site])
