"""Compiling the user's code with probes in place, and running it as ``python`` would.

An import hook hands the user's own modules (the files in scope) to
:class:`Compiler`, which adds branch markers to the syntax tree and, on
3.11, probe stores to the bytecode. Instrumented code is never written to
``__pycache__``: a later plain ``python`` must not pick it up.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import importlib.util
import sys
import types
from collections.abc import Callable
from typing import TYPE_CHECKING

from .source import SourceInfo, analyze

if TYPE_CHECKING:
    from probe.probes import Scope

    from .rewrite import Rewriter


class Compiler:
    """Turns source files into code objects that carry the run's probes."""

    def __init__(
        self, scope: Scope, markers: bool, rewriter: Rewriter | None, counting: bool = False
    ) -> None:
        self.scope = scope  # its exclusions say which lines are not statements
        self.markers = markers
        self.counting = counting
        self.rewriter = rewriter
        self.infos: dict[str, SourceInfo] = {}

    @property
    def needed(self) -> bool:
        """Whether code must be compiled by us at all (else plain imports do)."""
        return self.markers or self.rewriter is not None

    def compile(self, data: bytes | str, path: str) -> types.CodeType:
        source = data if isinstance(data, str) else importlib.util.decode_source(data)
        info, tree = analyze(source, path, self.scope, markers=self.markers, counting=self.counting)
        self.infos[path] = info
        code = compile(tree, path, "exec", dont_inherit=True)
        return self.rewriter.instrument(code) if self.rewriter else code


class _Loader(importlib.machinery.SourceFileLoader):
    compiler: Compiler

    def get_code(self, fullname: str) -> types.CodeType:
        path = self.get_filename(fullname)
        return self.compiler.compile(self.get_data(path), path)


class ImportHook(importlib.abc.MetaPathFinder):
    """Routes imports of wanted source files through a Compiler."""

    def __init__(self, compiler: Compiler, wanted: Callable[[str], bool]) -> None:
        self._wanted = wanted
        self._loader_type = type("ProbeLoader", (_Loader,), {"compiler": compiler})

    def find_spec(self, fullname, path=None, target=None):  # importlib protocol
        spec = importlib.machinery.PathFinder.find_spec(fullname, path, target)
        if (
            spec is not None
            and isinstance(spec.loader, importlib.machinery.SourceFileLoader)
            and spec.origin
            and self._wanted(spec.origin)
        ):
            spec.loader = self._loader_type(fullname, spec.origin)
        return spec

    def install(self) -> None:
        sys.meta_path.insert(0, self)

    def remove(self) -> None:
        if self in sys.meta_path:
            sys.meta_path.remove(self)
