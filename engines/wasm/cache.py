"""The Wasm cache: rewritten modules, wasmtime's compiled code and a module's DWARF line
tables, kept between runs.

A compiled artifact is native code that wasmtime runs without checking it, so the cache is
trusted only as far as nobody else can write it:

* its directory is the user's own, mode 0700 whatever the umask; one that another user owns
  or can write is not used at all (the run goes on uncached, saying so once);
* every entry is plain data (never pickle), written 0600, and begins with a digest of its
  key and its contents, so an entry copied over another's, truncated or edited by hand is
  a miss, not code to run;
* a module is validated by wasmtime before it is rewritten: the rewriter adds memories,
  globals and functions, and an invalid module that used their index spaces would become
  valid after rewriting and reach them. A rewritten entry exists only for a valid module.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
import struct
import sys
from array import array
from dataclasses import fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .binary import Module
from .rewrite import Plan, Result, Sites

if TYPE_CHECKING:
    import wasmtime

    from .dwarf import SourceLines

REWRITER_VERSION = "11"  # part of every key: bump when rewritten modules or this format change
LINES_VERSION = "1"  # of the line tables' entries
_DIGEST = hashlib.sha256().digest_size
_warned: set[str] = set()


class Unusable(Exception):
    """The cache directory can't be trusted or made."""


def directory() -> Path:
    root = os.environ.get("PROBE_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "probe"
    )
    return Path(root) / "wasm"


def rewrite_key(data: bytes, plan: Plan) -> str:
    h = _hashed(data)
    h.update(f"|{plan.key()}|{REWRITER_VERSION}".encode())
    return h.hexdigest()[:32]


_last: list = []  # [module bytes, their sha256]: a run keys one module's bytes 2-3 times


def _hashed(data: bytes) -> Any:
    """A sha256 of ``data`` to go on from: hashed once a module (a 10 MB one: ~20 ms)."""
    if not (_last and _last[0] is data):
        _last[:] = [data, hashlib.sha256(data)]
    return _last[1].copy()


def load(name: str, key: str) -> bytes | None:
    """The entry ``name`` if it is ours, unaltered and made for ``key``; else None."""
    try:
        folder = _trusted()
    except Unusable:
        return None
    try:
        fd = os.open(folder / name, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError:
        return None
    with os.fdopen(fd, "rb") as f:
        info = os.fstat(f.fileno())
        if info.st_uid != os.geteuid() or info.st_mode & 0o022 or not stat.S_ISREG(info.st_mode):
            return None
        data = f.read()
    digest, payload = data[:_DIGEST], data[_DIGEST:]
    if len(digest) != _DIGEST or digest != _digest(key, payload):
        return None
    return payload


def store(name: str, key: str, payload: bytes) -> None:
    """Write the entry ``name`` for ``key`` (owner-only, whole or not at all)."""
    try:
        folder = _trusted()
    except Unusable as e:
        if str(e) not in _warned:
            _warned.add(str(e))
            print(f"probe: not caching: {e}", file=sys.stderr)
        return
    tmp = folder / f".{name}.{os.getpid()}.tmp"
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(_digest(key, payload))
            f.write(payload)
        os.replace(tmp, folder / name)
    except OSError:
        try:
            os.unlink(tmp)
        except OSError:
            pass


def _digest(key: str, payload: bytes) -> bytes:
    h = hashlib.sha256(key.encode())
    h.update(payload)
    return h.digest()


def _trusted() -> Path:
    """The cache directory, made owner-only where it is new; Unusable if others can write it."""
    folder = directory()
    missing = []
    for part in (folder, *folder.parents):
        if part.exists():
            break
        missing.append(part)
    for part in reversed(missing):
        try:
            part.mkdir(mode=0o700)
            os.chmod(part, 0o700)  # the umask may have taken bits away, or (000) none
        except FileExistsError:
            pass
        except OSError as e:
            raise Unusable(f"can't make {part}: {e.strerror}") from None
    try:
        info = os.lstat(folder)
    except OSError as e:
        raise Unusable(f"{folder}: {e.strerror}") from None
    if not stat.S_ISDIR(info.st_mode):
        raise Unusable(f"{folder} is not a directory")
    if info.st_uid != os.geteuid():
        raise Unusable(f"{folder} belongs to another user")
    if info.st_mode & 0o022:
        raise Unusable(f"{folder} can be written by others (chmod go-w to use it)")
    return folder


# -- rewritten modules --------------------------------------------------------------------


def rewritten(data: bytes, plan: Plan) -> Result | None:
    key = rewrite_key(data, plan)
    payload = load(key + ".rewrite", key)
    if payload is None:
        return None
    try:
        return decode(payload)
    except (ValueError, KeyError, TypeError, struct.error):
        return None


def keep_rewritten(data: bytes, plan: Plan, result: Result) -> None:
    key = rewrite_key(data, plan)
    store(key + ".rewrite", key, encode(result))


def encode(result: Result) -> bytes:
    """A Result as plain data: a JSON header, then its arrays and the module as raw bytes."""
    header: dict = {"byteorder": sys.byteorder, "blobs": []}
    blobs: list[bytes] = []
    for owner, prefix in ((result, ""), (result.sites, "sites.")):
        for f in fields(owner):
            value = getattr(owner, f.name)
            if isinstance(value, Sites):
                continue
            if isinstance(value, array | bytes):
                raw = value.tobytes() if isinstance(value, array) else value
                header["blobs"].append([prefix + f.name, len(raw)])
                blobs.append(raw)
            else:
                header[prefix + f.name] = sorted(value) if isinstance(value, set) else value
    head = json.dumps(header).encode()
    return struct.pack("<I", len(head)) + head + b"".join(blobs)


def decode(payload: bytes) -> Result:
    (size,) = struct.unpack_from("<I", payload)
    header = json.loads(payload[4 : 4 + size])
    if header.pop("byteorder") != sys.byteorder:
        raise ValueError("written on another machine")
    at = 4 + size
    for name, length in header.pop("blobs"):
        header[name] = payload[at : at + length]
        at += length
    if at != len(payload):
        raise ValueError("truncated")
    sites = Sites()
    for f in fields(Sites):
        value = header.pop("sites." + f.name)
        current = getattr(sites, f.name)
        if isinstance(current, array):
            current.frombytes(value)
        else:
            setattr(sites, f.name, set(value) if isinstance(current, set) else value)
    for name in ("new_starts", "old_starts"):
        header[name] = array("q", header[name])
    return Result(sites=sites, **header)


# -- DWARF line tables --------------------------------------------------------------------


def source_lines(data: bytes) -> SourceLines | None:
    """The line tables read from the module ``data`` before, if kept (a 10 MB module's take
    0.7 s to read, a few ms to load)."""
    from .dwarf import SourceLines

    key = _lines_key(data)
    payload = load(key + ".lines", key)
    if payload is None:
        return None
    try:
        (size,) = struct.unpack_from("<I", payload)
        header = json.loads(payload[4 : 4 + size])
        if header["byteorder"] != sys.byteorder:
            return None
        table = SourceLines(header["code_start"])
        table.files = header["files"]
        at = 4 + size
        for name in ("address", "file", "line", "column"):
            column = getattr(table, name)
            length = header["lengths"][name]
            column.frombytes(payload[at : at + length])
            at += length
    except (ValueError, KeyError, TypeError, struct.error):
        return None
    return table


def keep_source_lines(data: bytes, table: SourceLines) -> None:
    columns = {n: getattr(table, n).tobytes() for n in ("address", "file", "line", "column")}
    header = {
        "byteorder": sys.byteorder,
        "code_start": table.code_start,
        "files": table.files,
        "lengths": {n: len(b) for n, b in columns.items()},
    }
    head = json.dumps(header).encode()
    key = _lines_key(data)
    store(key + ".lines", key, struct.pack("<I", len(head)) + head + b"".join(columns.values()))


def _lines_key(data: bytes) -> str:
    h = _hashed(data)
    h.update(f"|lines|{LINES_VERSION}".encode())
    return h.hexdigest()[:32]


# -- compiled code ------------------------------------------------------------------------


def compiled(engine: wasmtime.Engine, prepared: Result, config: str) -> wasmtime.Module | None:
    """wasmtime's module compiled before from exactly these bytes, with this configuration."""
    import wasmtime

    key = _compiled_key(prepared, config)
    payload = load(key + ".cwasm", key)
    if payload is None:
        return None
    try:
        return wasmtime.Module.deserialize(engine, payload)
    except wasmtime.WasmtimeError:
        return None


def keep_compiled(module: wasmtime.Module, prepared: Result, config: str) -> None:
    key = _compiled_key(prepared, config)
    store(key + ".cwasm", key, module.serialize())


def _compiled_key(prepared: Result, config: str) -> str:
    digest = hashlib.sha256(prepared.module).hexdigest()[:32]
    return f"{digest}-{config}-{_wasmtime_version()}"


def _wasmtime_version() -> str:
    """wasmtime-py's version, from its dist-info folder's name beside it: importlib.metadata
    would find it too, but importing it costs a cached run ~25 ms."""
    import wasmtime

    site = os.path.dirname(os.path.dirname(wasmtime.__file__))
    for name in os.listdir(site):
        if name.startswith("wasmtime-") and name.endswith(".dist-info"):
            return name[len("wasmtime-") : -len(".dist-info")]
    from importlib.metadata import version

    return version("wasmtime")


def validate(engine: wasmtime.Engine, data: bytes, module: Module) -> str | None:
    """Why wasmtime (or probe) would refuse the user's module as it is; None if it is valid."""
    import wasmtime

    for mod, name, _, _ in module.imports:
        if mod == "probe":
            return f'it imports "probe" "{name}": that namespace is probe\'s own'
    try:
        wasmtime.Module.validate(engine, data)
    except wasmtime.WasmtimeError as e:
        text = str(e).strip()
        return text.splitlines()[0] if text else "invalid"
    return None
