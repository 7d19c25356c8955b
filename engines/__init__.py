"""Engines place probes in a target, run it, and hand what the probes saw to a recorder.

Every engine has the same shape: ``run(target, probes, scope, recorder)``
returns an :class:`Outcome` after writing its tables (``sites``, ``counts``,
``events``) through ``recorder.write`` and closing the recorder, whatever
way the target ended.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

from probe.errors import UsageError
from probe.probes import ProbeSet, Scope

TYPE_CHECKING = False  # typing's, without importing typing on a run's path (architecture)
if TYPE_CHECKING:
    from typing import Any, Protocol
else:
    Protocol = object  # the protocols are plain classes at run time


class Target:
    """What to run: a file (``path``) or a module (``module``, as ``python -m``), its
    ``args``, and ``options`` for its engine (Wasm: env, dirs, invoke...)."""

    def __init__(
        self,
        path: str | None = None,
        module: str | None = None,
        args: list[str] | None = None,
        options: dict[str, Any] | None = None,
    ) -> None:
        self.path = path
        self.module = module
        self.args = args if args is not None else []
        self.options = options if options is not None else {}

    def __repr__(self) -> str:
        return f"Target(path={self.path!r}, module={self.module!r}, args={self.args!r})"

    @property
    def name(self) -> str:
        return self.module if self.module else str(self.path)

    @property
    def argv(self) -> list[str]:
        head = ["-m", self.module] if self.module else [str(self.path)]
        return head + list(self.args)


class Outcome:
    """How a run ended: status is 'ok', 'error', 'trap', 'timeout', 'killed' or
    'truncated' (the journal took no more events: --max-events, or the disk nearly full);
    the exit code the program's would have; a message that says why, where it ended badly.

    (Plain classes here, not dataclasses: see probe.probes on why.)"""

    def __init__(self, status: str, exit_code: int, message: str | None = None) -> None:
        self.status = status
        self.exit_code = exit_code
        self.message = message

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Outcome):
            return NotImplemented
        return (self.status, self.exit_code, self.message) == (
            other.status,
            other.exit_code,
            other.message,
        )

    __hash__ = None  # type: ignore[assignment]  # mutable

    def __repr__(self) -> str:
        return f"Outcome({self.status!r}, {self.exit_code!r}, {self.message!r})"


class Recorder(Protocol):
    def write(self, table: str, columns: dict[str, list]) -> None:
        """A whole table (or a chunk of it), kept for the run's summary too."""

    def append(self, table: str, columns: dict[str, Any]) -> bool:
        """A batch of a high-rate table (events), streamed to the journal, not kept.
        False once the journal takes no more (the run will end 'truncated')."""

    def snapshot(self, tables: dict[str, dict[str, Any]]) -> None:
        """Tables as they stand mid-run (counts so far), kept if the run is killed."""

    def defer(self, maker: str, args: dict[str, Any]) -> bool:
        """Leave tables to be made at ingest by ``maker`` ('module:function', a function of
        ``args`` (JSON) that returns (tables, what went wrong or None)), rather than wait for
        them now; False where they are wanted now (a summary reads them): make them now."""

    def part(self) -> Recorder:
        """A recorder for a part of this run: what a process it started records (a forked
        child), journaled on its own and added to the run's counts at ingest."""

    def close(self, outcome: Outcome) -> None: ...


class Engine(Protocol):
    name: str
    events: frozenset[str]

    def run(
        self, target: Target, probes: ProbeSet, scope: Scope, recorder: Recorder
    ) -> Outcome: ...


def target_from_command(
    words: Sequence[str],
    module: str | None = None,
    *,
    env: Sequence[str] = (),
    dirs: Sequence[str] = (),
    invoke: str | None = None,
    fuel: int | None = None,
    timeout: float | None = None,
) -> Target:
    """What ``probe run [-m MODULE] WORDS`` runs: a program and its arguments; Wasm options
    (``--env``, ``--dir``, ``--invoke``, ``--fuel``, ``--timeout``) for a Wasm program, where
    wasmtime's conventions apply to the words after the file too."""
    wasm = {"env": env, "dirs": dirs, "invoke": invoke, "fuel": fuel, "timeout": timeout}
    if module:
        return Target(module=module, args=list(words), options=_wasm_options([], wasm)[1])
    if not words:
        raise UsageError("nothing to run: give a program (app.py, app.wasm) or -m MODULE")
    path, rest = words[0], list(words[1:])
    if _is_wasm(path):
        rest, options = _wasm_options(rest, wasm)
    else:
        options = _wasm_options([], wasm)[1]
    return Target(path=path, args=rest, options=options)


def _wasm_options(words: list[str], given: dict[str, Any]) -> tuple[list[str], dict[str, Any]]:
    if not words and all(v is None or v == () for v in given.values()):
        return [], {}  # a Python run without Wasm options imports nothing of Wasm
    from probe.engines.wasm.options import from_command

    return from_command(words, **given)


def _is_wasm(path: str) -> bool:
    return os.path.splitext(path)[1].lower() in (".wasm", ".wat")


def engine_for(target: Target) -> Engine:
    """The engine that runs ``target``, judged by its file type."""
    if target.path is not None:
        if not os.path.exists(target.path):
            raise UsageError(f"can't open file {target.path!r}: no such file")
        if os.path.isdir(target.path) and not os.path.isfile(
            os.path.join(target.path, "__main__.py")
        ):  # a directory with __main__.py runs as python runs it
            raise UsageError(f"can't find '__main__' module in {target.path!r}")
        if _is_wasm(target.path):
            from probe.engines.wasm.engine import WasmEngine

            return WasmEngine()
    if target.options:
        names = ", ".join(f"--{k}" for k in sorted(target.options))
        raise UsageError(f"{names} apply to WebAssembly programs only")
    from probe.engines.cpython import CPythonEngine

    return CPythonEngine()
