"""Probes on Python code that is already loaded: sessions, decorated calls, tests.

``probe run`` compiles the program itself, so it can put counts and branch
markers into the bytecode. Inside a running program the code is compiled
already; here every probe comes from the interpreter's events instead
(sys.monitoring on 3.12+, settrace on 3.11): line flags switch themselves
off after the first run as before, counts take a callback per line, and
branch arcs are read from line transitions. Events and counts can carry a
*context* (the test or decorated function they ran in), and a gated
recorder keeps only what runs inside a context: the decorated call tree.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable

from probe.engines import Outcome, Recorder
from probe.errors import UsageError
from probe.probes import Kind, ProbeSet, Scope

from . import CPythonEngine
from .measured import Measured


class Attached(Measured):
    """Records ``probes`` in this process's Python code from start() to stop()."""

    def __init__(
        self,
        probes: ProbeSet,
        scope: Scope,
        recorder: Recorder,
        context: Callable[[], str | None] | None = None,
        gated: bool = False,
        fine: bool = False,
    ) -> None:
        """``context``, ``gated``, ``fine``: see :class:`Tracer`."""
        CPythonEngine.check(probes)
        if probes.sampling_for("stack") is not None:
            raise UsageError("sampled stacks are recorded by probe run, not inside a program")
        kinds = [k for k in (probes.kind_for("line"), probes.kind_for("branch")) if k]
        lines = None
        if kinds:
            lines = Kind.COUNT if any(k >= Kind.COUNT for k in kinds) else Kind.FLAG
        super().__init__(
            probes,
            scope,
            recorder,
            lines=lines,
            arcs=probes.kind_for("branch") is not None,
            context=context,
            gated=gated,
            fine=fine,
        )
        self.running = False
        self._stopping = threading.RLock()  # SIGTERM's watcher thread may stop it too

    def start(self) -> None:
        self.tracer.start(sys._getframe(1))
        if self.states is not None:
            self.states.start()
        self.running = True

    def context_changed(self) -> None:
        self.tracer.context_changed()

    def forked(self, recorder: Recorder) -> None:
        super().forked(recorder)
        self._stopping = threading.RLock()  # another thread of the parent may have held it

    def stop(self, outcome: Outcome) -> bool:
        """Stop recording, write the tables, close the recorder; False where it had stopped
        (another thread that stops it meanwhile is waited for)."""
        with self._stopping:
            if not self.running:
                return False
            self.running = False
            self._save(outcome)
        return True

    def _save(self, outcome: Outcome) -> None:
        tracer = self.tracer
        tracer.stop()
        if self.states is not None:
            self.states.stop()
        lines, per_context = tracer.lines()
        arcs = dict(tracer.arc_counts)  # branch arcs, counted from line transitions
        if tracer.wants.count_lines == Kind.FLAG:  # flags store 1, however often events came
            lines, arcs = dict.fromkeys(lines, 1), dict.fromkeys(arcs, 1)
            per_context = dict.fromkeys(per_context, 1)
        hits: dict[str, dict[int, int]] = {}
        for site, n in lines.items():
            _, unit, _, line, _ = self.ids.rows[site]
            hits.setdefault(unit, {})[line] = n
        self.write(
            outcome,
            hits,
            arcs,
            lines=bool(tracer.wants.count_lines),
            witnessed=False,
            per_context={**tracer.context_counts, **per_context},
        )
