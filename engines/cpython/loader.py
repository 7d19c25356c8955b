"""Compiling the user's code with probes in place, and running it as ``python`` would.

An import hook hands the user's own modules (the files in scope) to
:class:`Compiler`, which adds branch markers to the syntax tree and, on
3.11, probe stores to the bytecode. Instrumented code is never written to
``__pycache__``: a later plain ``python`` must not pick it up.
"""

from __future__ import annotations

import ast
import importlib.machinery
import importlib.util
import sys
import types
from collections.abc import Callable

from .source import SourceInfo, analyze

TYPE_CHECKING = False  # typing's, without importing typing on a run's path (architecture)
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

    def compile(
        self, data: bytes | str, path: str, transform: Callable[[ast.Module], None] | None = None
    ) -> types.CodeType:
        """``transform``: what else changes the tree before it is compiled (pytest's
        assertion rewriting)."""
        source = data if isinstance(data, str) else importlib.util.decode_source(data)
        info, tree = analyze(source, path, self.scope, markers=self.markers, counting=self.counting)
        self.infos[path] = info
        if transform is not None:
            transform(tree)
        code = compile(tree, path, "exec", dont_inherit=True)
        return self.rewriter.instrument(code) if self.rewriter else code


class _Loader(importlib.machinery.SourceFileLoader):
    compiler: Compiler

    def get_code(self, fullname: str) -> types.CodeType:
        path = self.get_filename(fullname)
        return self.compiler.compile(self.get_data(path), path)


class ImportHook:  # a meta path finder (importlib.abc's base class only costs an import)
    """Routes imports of wanted source files through a Compiler, and pytest's assertion
    rewriting of them too (see _PytestRewriting)."""

    def __init__(self, compiler: Compiler, wanted: Callable[[str], bool]) -> None:
        self._wanted = wanted
        self._loader_type = type("ProbeLoader", (_Loader,), {"compiler": compiler})
        self.pytest = _PytestRewriting(compiler, wanted)

    def find_spec(self, fullname, path=None, target=None):  # importlib protocol
        spec = importlib.machinery.PathFinder.find_spec(fullname, path, target)
        if fullname == _PytestRewriting.MODULE and spec is not None:
            spec.loader = self.pytest.loader(spec.loader)
        elif (
            spec is not None
            and isinstance(spec.loader, importlib.machinery.SourceFileLoader)
            and spec.origin
            and self._wanted(spec.origin)
        ):
            spec.loader = self._loader_type(fullname, spec.origin)
        return spec

    def install(self) -> None:
        sys.meta_path.insert(0, self)
        self.pytest.install()

    def remove(self) -> None:
        if self in sys.meta_path:
            sys.meta_path.remove(self)
        self.pytest.remove()


class _PytestRewriting:
    """pytest compiles test modules (and conftest files) itself: its assertion rewriter is an
    import hook ahead of probe's, so they would run without branch markers or count stores.
    While probe's hook is installed, the rewriter's ``exec_module`` compiles the files in
    scope through the Compiler, with pytest's rewriting applied to the same syntax tree (its
    ``rewrite_asserts``). That code is neither read from nor written to pytest's pyc cache: a
    later plain pytest must never load probes."""

    MODULE = "_pytest.assertion.rewrite"

    def __init__(self, compiler: Compiler, wanted: Callable[[str], bool]) -> None:
        self.compiler = compiler
        self.wanted = wanted
        self.patched: tuple[type, Callable] | None = None  # the hook's class, its own method

    def loader(self, loader: object) -> object:
        """A loader of pytest's rewrite module that patches it once the module has run."""
        if not isinstance(loader, importlib.machinery.SourceFileLoader):
            return loader
        outer = self

        class Patching(type(loader)):  # type: ignore[misc]
            def exec_module(self, module: types.ModuleType) -> None:
                super().exec_module(module)
                outer.patch(module)

        return Patching(loader.name, loader.path)

    def install(self) -> None:
        module = sys.modules.get(self.MODULE)
        if module is not None:
            self.patch(module)

    def patch(self, module: types.ModuleType) -> None:
        hook = getattr(module, "AssertionRewritingHook", None)
        rewrite = getattr(module, "rewrite_asserts", None)
        if hook is None or rewrite is None or self.patched is not None:
            return
        original = hook.exec_module
        compiler, wanted = self.compiler, self.wanted

        def exec_module(self: object, module: types.ModuleType) -> None:
            origin = module.__spec__.origin if module.__spec__ is not None else None
            if not origin or not wanted(origin):
                return original(self, module)
            names = getattr(self, "_rewritten_names", None)
            if isinstance(names, dict):  # pytest's note of what it rewrote
                from pathlib import Path  # not at import: a run of a script has no pytest

                names[module.__name__] = Path(origin)
            with open(origin, "rb") as f:
                data = f.read()
            config = getattr(self, "config", None)
            code = compiler.compile(data, origin, lambda tree: rewrite(tree, data, origin, config))
            exec(code, module.__dict__)

        hook.exec_module = exec_module
        self.patched = (hook, original)

    def remove(self) -> None:
        if self.patched is not None:
            hook, original = self.patched
            hook.exec_module = original
            self.patched = None
