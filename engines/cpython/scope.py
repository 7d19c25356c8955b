"""Which files a Python run measures: the user's code in scope, not the standard library,
installed packages or probe's own files."""

from __future__ import annotations

import os
import site
import sys

from probe.probes import Scope


class Wanted:
    """Decides, once per file, whether it is the user's code in scope."""

    def __init__(self, scope: Scope) -> None:
        self.scope = scope
        self.cache: dict[str, bool] = {}
        # the standard library (lib-dynload is in it) and every site-packages: sysconfig's
        # stdlib, purelib and platlib, found without importing sysconfig (~2 ms a run)
        version = "python{}.{}".format(*sys.version_info)
        skip = {
            os.path.dirname(os.__file__),
            os.path.join(sys.exec_prefix, sys.platlibdir, version),  # a venv's own lib
            *getattr(site, "getsitepackages", list)(),
        }
        skip.add(site.getusersitepackages())
        self.third_party = tuple(os.path.join(os.path.realpath(p), "") for p in skip if p)
        self.ours = probe_paths()

    def __call__(self, filename: str) -> bool:
        known = self.cache.get(filename)
        if known is None:
            known = self.cache[filename] = self._decide(filename)
        return known

    def is_probe(self, filename: str) -> bool:
        """Whether ``filename`` is one of probe's own files: where the program's calls begin
        (the @probe.trace wrapper is not: a caller calls through it)."""
        path = os.path.realpath(filename)
        if os.path.basename(path) == "tracing.py" and path in self.ours[0]:
            return False
        return path in self.ours[0] or path.startswith(self.ours[1])

    def _decide(self, filename: str) -> bool:
        if not filename or filename.startswith("<") or not filename.endswith(".py"):
            return False
        if not self.scope.narrowed() and filename.startswith(self.third_party):
            return False  # most modules a run imports: decided without resolving links
        path = os.path.realpath(filename)
        if path in self.ours[0] or path.startswith(self.ours[1]):
            return False
        if not self.scope.narrowed() and path.startswith(self.third_party):
            return False
        return self.scope.matches(filename)


def probe_root() -> str:
    """The folder of the probe package this process runs."""
    return os.path.dirname(os.path.realpath(sys.modules["probe"].__file__ or ""))


def probe_paths(root: str | None = None) -> tuple[frozenset[str], tuple[str, ...]]:
    """probe's own files, from the package as installed (in ``root``: this process's probe
    by default), not from the modules loaded so far (a program may import more of probe
    later: probe.wasm, probe.cli): its top-level modules, and the directories of its
    subpackages."""
    root = root or probe_root()
    files, dirs = set(), []
    for entry in os.scandir(root):
        if entry.is_file() and entry.name.endswith(".py"):
            files.add(entry.path)
        elif entry.is_dir() and os.path.exists(os.path.join(entry.path, "__init__.py")):
            dirs.append(os.path.join(entry.path, ""))
    return frozenset(files), tuple(dirs)
