"""Live probes, driven through probe's API in this interpreter; prints what fired, as JSON.

Run by test_dynamic.py as a subprocess per interpreter:  python dynamic.py ENGINE SCENARIO
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from probe.engines import Outcome, Target
from probe.probes import Kind, Probe, ProbeSet, Scope, Site

HERE = Path(__file__).resolve().parent
CALC = HERE.parent / "samples" / "wasm" / "calc.wasm"
CALLS = HERE / "programs" / "calls.py"


class Recorder:
    def __init__(self) -> None:
        self.tables: dict = {}
        self.events: list = []

    def write(self, table: str, columns: dict) -> None:
        self.tables[table] = columns

    def append(self, table: str, columns: dict) -> None:
        self.events.append(columns)

    def close(self, outcome: Outcome) -> None:
        self.outcome = outcome


def run(engine: str, probes: list[Probe]) -> Recorder:
    rec = Recorder()
    if engine == "wasm":
        from probe.engines.wasm.engine import WasmEngine

        WasmEngine().run(Target(str(CALC), args=["8"]), ProbeSet.of(probes), Scope(), rec)
    else:
        from probe.engines.cpython import CPythonEngine

        devnull = open(os.devnull, "w")  # the program's own output
        saved, sys.stdout = sys.stdout, devnull
        try:
            CPythonEngine().run(Target(str(CALLS)), ProbeSet.of(probes), Scope(), rec)
        finally:
            sys.stdout = saved
    return rec


def main() -> None:
    engine, scenario = sys.argv[1], sys.argv[2]
    fib = Site("func", str(CALLS) if engine == "python" else None, func="fib")
    fired: dict[str, list] = {}

    def note(name: str, what: object = None):
        return lambda ev: fired.setdefault(name, []).append(what(ev) if what else 1)

    points = [Probe("func", Kind.CALLBACK)]  # switchable func sites, none on at the start
    if scenario == "order":
        order: list[str] = []
        probes = [
            Probe("func", Kind.CALLBACK, callback=lambda ev: order.append("g1")),
            Probe("func", Kind.CALLBACK, fib, callback=lambda ev: order.append("l1")),
            Probe("func", Kind.CALLBACK, callback=lambda ev: order.append("g2")),
        ]
        run(engine, probes)
        fired["order"] = order
    elif scenario == "insert":
        later = Probe("func", Kind.CALLBACK, fib, callback=note("later"))

        def first(ev):
            note("first")(ev)
            if len(fired["first"]) == 1:
                ev.probes.insert(later)

        run(engine, [*points, Probe("func", Kind.CALLBACK, fib, callback=first)])
    elif scenario == "remove":
        victim = Probe("func", Kind.CALLBACK, fib, callback=note("victim"))

        def killer(ev):
            note("killer")(ev)
            if len(fired["killer"]) == 1:
                ev.probes.remove(victim)

        run(engine, [*points, Probe("func", Kind.CALLBACK, fib, callback=killer), victim])
    elif scenario == "once":

        def once(ev):
            note("once")(ev)
            ev.probes.remove(me)

        me = Probe("func", Kind.CALLBACK, fib, callback=once)
        run(engine, [*points, me])
    elif scenario == "hot":
        # After the 10th call of fib, watch the first statement / block of every call.
        event = "block" if engine == "wasm" else "line"
        inner = Site(event, str(CALLS) if engine == "python" else None, func="fib")

        def entry(ev):
            note("entries")(ev)
            if len(fired["entries"]) == 10:
                ev.probes.insert(Probe(event, Kind.CALLBACK, inner, callback=note("inner", at)))

        def at(ev):
            return ev.offset if engine == "wasm" else ev.line

        points.append(Probe(event, Kind.CALLBACK))
        rec = run(engine, [*points, Probe("func", Kind.CALLBACK, fib, callback=entry)])
        fired["outcome"] = [rec.outcome.status]
    print("\nRESULT " + json.dumps(fired))


if __name__ == "__main__":
    main()
