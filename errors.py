"""probe's exceptions, all of them.

A :class:`ProbeError` is a request probe can't carry out for a reason the user can mend: a
bad argument, a malformed module, a database another program holds, a machine without perf.
Its message is one line that keeps the useful detail; the CLI prints it and exits 2. Any
other exception that escapes probe is probe's own bug, and is never reported as bad input:
the CLI says "internal error" and exits 3 (``PROBE_DEBUG=1`` shows the traceback).
"""

from __future__ import annotations


class ProbeError(Exception):
    """A request probe can't carry out; the message says why, in one line."""


class UsageError(ProbeError, ValueError):
    """Bad input: an argument, option, file or probe that can't be used as given.

    A ValueError too, so that Python callers catch what Python functions raise for a bad
    argument."""


class UnknownAnalysis(UsageError, LookupError):
    """No analysis is registered under the name asked for."""


class StorageError(ProbeError):
    """The database or its journal can't be used (missing, locked, unwritable, bad SQL)."""


class PerfError(ProbeError):
    """perf (or valgrind) can't count here, or not the events asked for."""


class WasmError(UsageError):
    """A malformed module; ``offset`` is the byte offset in the file where it went wrong."""

    def __init__(self, message: str, offset: int | None = None) -> None:
        self.offset = offset
        super().__init__(message if offset is None else f"{message} at byte offset {offset:#x}")


class NotSupported(WasmError):
    """A valid module that uses a feature the rewriter does not handle (yet)."""

    def __init__(self, feature: str, offset: int | None = None) -> None:
        self.feature = feature
        super().__init__(f"not supported: {feature}", offset)


class Trap(Exception):
    """A trap in a Wasm function called from Python: one line, the cause and where.

    Not a ProbeError: it is the program's failure, as an exception of the program's would be.
    """
