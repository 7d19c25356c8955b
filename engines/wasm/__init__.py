"""The Wasm engine: Wasm modules rewritten with inline probes, run on wasmtime with WASI.

One module per concern (docs/architecture.md has the map):

* ``engine.py``: WasmEngine, the steps from a file to a run (read, plan, validate, rewrite,
  compile) and the trap backtrace in the user's terms;
* ``instance.py``: a module instantiated in this process (``probe.wasm.load``);
* ``host.py``: the host side of the probes while the module runs (callbacks, event ring);
* ``tables.py``: the ``sites`` and ``counts`` a run leaves;
* ``runner.py``: wasmtime and WASI; ``options.py``: how a program is to run, from the
  command line;
* ``binary.py``: the format; ``opcodes.py``: every opcode's immediates; ``rewrite.py``: the
  probe rewriter; ``cache.py``: rewritten and compiled modules kept between runs.

Importing this package imports none of them (nor wasmtime): ``probe run app.py`` builds its
target with ``options.py`` and never pays for the rest.
"""
