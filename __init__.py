"""probe: dynamic instrumentation and profiling for Python and WebAssembly, queried with SQL.

    probe run --analysis coverage app.py ARGS
    probe query "SELECT ..."

Inside a program: ``@probe.trace`` marks functions, ``probe.session(...)`` records (their
call trees, or everything), ``probe.wasm.load(path)`` runs a module with probes placed,
``probe.measure(fn, inputs)`` counts instructions per input, repeated.

The package's parts follow the data: ``probes`` (the probe model),
``engines`` (place probes, run targets), ``storage`` (DuckDB tables),
``analyses`` (questions answered from the tables), ``cli``.
"""

__version__ = "0.1.0"

_EXPORTS = {
    "trace": "probe.tracing",
    "session": "probe.recording",
    "Session": "probe.recording",
    "measure": "probe.efficiency",
    "Analysis": "probe.analyses",
    "Kind": "probe.probes",
    "Probe": "probe.probes",
    "ProbeSet": "probe.probes",
    "Scope": "probe.probes",
    "Site": "probe.probes",
}


def __getattr__(name: str) -> object:
    # Lazy, so that `probe run` pays only for what it uses before the program starts.
    import importlib

    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    if name == "wasm":
        return importlib.import_module("probe.wasm")
    raise AttributeError(f"module 'probe' has no attribute {name!r}")


__all__ = [
    "Analysis",
    "Kind",
    "Probe",
    "ProbeSet",
    "Scope",
    "Session",
    "Site",
    "__version__",
    "measure",
    "session",
    "trace",
    "wasm",
]
