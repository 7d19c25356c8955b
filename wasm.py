"""``probe.wasm.load(path)``: a Wasm module whose exports are called from Python.

Loaded while a session records, the module carries the probes the session's
analyses place in Wasm, and is a run of that session of its own (engine
'wasm'), saved when the session stops; each export call can be a counter
region. Loaded outside a session, it runs as it is.

    with probe.session("hotness") as s:
        calc = probe.wasm.load("calc.wasm", counters=["instructions"])
        calc.fib(25)
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from probe.engines.wasm.instance import Instance
from probe.engines.wasm.options import Options
from probe.errors import Trap
from probe.probes import ProbeSet

__all__ = ["Module", "Trap", "load"]


class Module:
    """A loaded module: ``module.name(*args)`` calls the export ``name``."""

    def __init__(self, instance: Instance, counters: Sequence[str]) -> None:
        from probe.tracing import Span

        self._instance = instance
        self._counters = list(counters)
        self._spans: dict[str, Span] = {}
        self.name = os.path.basename(instance.path)

    def exports(self) -> list[str]:
        return self._instance.exports()

    def call(self, export: str, *args: object) -> object:
        from probe.recording import current
        from probe.tracing import Span

        if current() is None or not self._counters:
            return self._instance.call(export, *args)
        span = self._spans.get(export)
        if span is None:
            span = self._spans[export] = Span(f"{self.name}:{export}", self._counters)
        with span.entered():
            return self._instance.call(export, *args)

    def __getattr__(self, export: str) -> Any:
        if export.startswith("_"):
            raise AttributeError(export)
        self._instance.function(export)  # AttributeError, listing the exports, if none
        return lambda *args: self.call(export, *args)

    def close(self) -> None:
        self._instance.close()


def load(
    path: str,
    *,
    args: Sequence[str] = (),
    env: dict[str, str] | None = None,
    dirs: Sequence[tuple[str, str]] = (),
    counters: Sequence[str] = (),
) -> Module:
    """Instantiate the module at ``path`` (WASI with ``args``, ``env``, preopened ``dirs`` as
    (host, guest) pairs); ``counters``: perf events counted around each export call while a
    session records."""
    from probe.recording import current, new_run

    if counters:
        from probe.engines.perf.region import check_events

        check_events(list(counters))
    opts = Options(args=list(args), env=dict(env or {}), dirs=list(dirs))
    session = current()
    if session is None:
        return Module(Instance(path, ProbeSet.of([]), None, opts), counters)
    from probe.engines.wasm.engine import WasmEngine

    analyses = session.fresh_analyses()
    probes = ProbeSet.of(p for a in analyses for p in a.probes(WasmEngine.events))
    recorder = new_run(
        session.db_path,
        os.path.abspath(path),
        "wasm",
        [a.name for a in analyses],
        [path, *args],
        session.options,
        analyses=analyses,
        parent=session.run_id,
    )
    try:
        instance = Instance(path, probes, recorder, opts)
    except BaseException:
        recorder.spool.discard()
        raise
    session.add_run(recorder.spool.run_id, instance)
    return Module(instance, counters)
