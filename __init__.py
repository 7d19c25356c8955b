"""probe: dynamic instrumentation and profiling for Python and WebAssembly, queried with SQL.

    probe run --analysis coverage app.py ARGS
    probe query "SELECT ..."

The package's parts follow the data: ``probes`` (the probe model),
``engines`` (place probes, run targets), ``storage`` (DuckDB tables),
``analyses`` (questions answered from the tables), ``cli``.
"""

from probe.analyses import Analysis
from probe.probes import Kind, Probe, ProbeSet, Scope, Site

__version__ = "0.1.0"

__all__ = ["Analysis", "Kind", "Probe", "ProbeSet", "Scope", "Site", "__version__"]
