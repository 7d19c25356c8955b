"""What differs between the CPython versions probe supports (3.11+), in one place.

Which mechanism reports events is the big one: sys.monitoring (PEP 669) from 3.12, with a
module of its own (sysmon.py); sys.settrace on 3.11 (settrace.py). The rest are quirks the
engine's modules must know about, named here so that no module tests a version itself.
"""

from __future__ import annotations

import sys
from types import CodeType

TYPE_CHECKING = False  # typing's, without importing typing on a run's path (architecture)
if TYPE_CHECKING:
    from typing import Any

# sys.monitoring (3.12+) reports events; before it, sys.settrace.
MONITORING = sys.version_info >= (3, 12)

# 3.13.0: a PY_START callback returning DISABLE also silences later LINE events at the
# code's first instruction (a one-line lambda then counts once, however often it runs).
# Counts keep PY_START on in measured code there; flags only need the first event anyway.
START_DISABLE_HIDES_LINE = sys.version_info >= (3, 13)

# 3.11's sys.settrace reports a line event after every backward jump; 3.12's sys.monitoring
# LINE only when the line changes. Counts follow the events the version's tracer sees.
BACK_JUMP_IS_LINE_EVENT = not MONITORING

# 3.11, 3.12: where a code object's executable bytecode (co_code_adaptive) starts in the
# object, for patching it in place (rewrite.py, settle.py).
CODE_ADAPTIVE_OFFSET = CodeType.__basicsize__


def executable_bytecode(code: CodeType) -> Any:
    """The executable bytecode of ``code`` (co_code_adaptive), as a ctypes array of its
    bytes to read and patch in place. An assignment to it, one byte or a slice, runs with
    the GIL held, so the interpreter, between two instructions, sees all of it or none;
    ctypes.memmove lets the GIL go while it copies."""
    import ctypes  # only where something is patched: ~1.5 ms of a run's start

    return (ctypes.c_uint8 * len(code.co_code)).from_address(id(code) + CODE_ADAPTIVE_OFFSET)


# Generators, coroutines and async generators: their frames are resumed and suspended, and
# sys.settrace reports each resumption as a call and each suspension as a return. (inspect's
# CO_GENERATOR | CO_COROUTINE | CO_ASYNC_GENERATOR: importing inspect costs a run ~7 ms.)
SUSPENDABLE = 0x20 | 0x80 | 0x200
