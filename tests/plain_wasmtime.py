"""Run a WASI module on plain wasmtime (no probe): the reference the Wasm tests compare with.

python plain_wasmtime.py MODULE [--dir HOST] [--env K=V] -- ARGS
"""

import sys

import wasmtime


def main(argv: list[str]) -> int:
    path, rest = argv[0], argv[1:]
    dirs, env = [], []
    while rest and rest[0] != "--":
        flag, value = rest[0], rest[1]
        (dirs if flag == "--dir" else env).append(value)
        rest = rest[2:]
    args = rest[1:]
    engine = wasmtime.Engine()
    store = wasmtime.Store(engine)
    wasi = wasmtime.WasiConfig()
    wasi.argv = [path.rsplit("/", 1)[-1], *args]
    wasi.env = [tuple(e.split("=", 1)) for e in env]
    wasi.inherit_stdin()
    wasi.inherit_stdout()
    wasi.inherit_stderr()
    for d in dirs:
        wasi.preopen_dir(d, d)
    store.set_wasi(wasi)
    linker = wasmtime.Linker(engine)
    linker.define_wasi()
    instance = linker.instantiate(store, wasmtime.Module.from_file(engine, path))
    try:
        instance.exports(store)["_start"](store)
    except wasmtime.ExitTrap as e:
        return e.code
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
