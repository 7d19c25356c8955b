"""probe: dynamic instrumentation and profiling for Python and WebAssembly, queried with SQL.

    probe run --analysis coverage app.py ARGS
    probe query "SELECT ..."

The package's parts follow the data: ``probes`` (the probe model),
``engines`` (place probes, run targets), ``storage`` (DuckDB tables),
``analyses`` (questions answered from the tables), ``cli``.
"""

__version__ = "0.1.0"

_EXPORTS = {
    "Analysis": "probe.analyses",
    "Kind": "probe.probes",
    "Probe": "probe.probes",
    "ProbeSet": "probe.probes",
    "Scope": "probe.probes",
    "Site": "probe.probes",
}


def __getattr__(name: str) -> object:
    # Lazy, so that `probe run` pays only for what it uses before the program starts.
    if name in _EXPORTS:
        import importlib

        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'probe' has no attribute {name!r}")


__all__ = ["Analysis", "Kind", "Probe", "ProbeSet", "Scope", "Site", "__version__"]
