"""How a Wasm program is to run, and how `probe run` words become that.

WASI arguments, environment and preopened directories, an export to invoke instead of
``_start``, fuel and a timeout: what a wasmtime user passes to ``wasmtime run``. This module
imports nothing heavy (not wasmtime), so ``probe run app.py`` can build its target here too.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from probe.errors import UsageError


@dataclass
class Options:
    args: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    dirs: list[tuple[str, str]] = field(default_factory=list)  # (host, guest)
    invoke: str | None = None
    fuel: int | None = None
    timeout: float | None = None

    def config_key(self) -> str:
        """What about the engine's configuration changes compiled code."""
        return f"fuel={self.fuel is not None},epoch={self.timeout is not None}"


def from_command(
    words: Sequence[str],
    *,
    env: Sequence[str] = (),
    dirs: Sequence[str] = (),
    invoke: str | None = None,
    fuel: int | None = None,
    timeout: float | None = None,
) -> tuple[list[str], dict[str, Any]]:
    """The guest's arguments and the options (Target.options) of ``probe run FILE.wasm
    WORDS`` with ``--env K=V``, ``--dir HOST[::GUEST]``, ``--invoke``, ``--fuel``,
    ``--timeout``. As with wasmtime, ``--invoke NAME`` may follow the file
    (``probe run lib.wasm --invoke f 1``) and a first ``--`` ends probe's own options."""
    options: dict[str, Any] = {}
    if env:
        options["env"] = dict(_pair(e, "=", "--env") for e in env)
    if dirs:
        options["dirs"] = [_pair(d, "::", "--dir") if "::" in d else (d, d) for d in dirs]
    for name, value in (("invoke", invoke), ("fuel", fuel), ("timeout", timeout)):
        if value is not None:
            options[name] = value
    rest = list(words)
    if rest[:1] == ["--invoke"] and len(rest) > 1 and "invoke" not in options:
        options["invoke"], rest = rest[1], rest[2:]
    if rest[:1] == ["--"]:
        rest = rest[1:]
    return rest, options


def _pair(text: str, sep: str, option: str) -> tuple[str, str]:
    if sep not in text:
        raise UsageError(f"{option} takes {'K=V' if sep == '=' else 'HOST::GUEST'}, not {text!r}")
    key, value = text.split(sep, 1)
    return key, value
