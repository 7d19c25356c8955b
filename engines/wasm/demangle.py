"""Function names as their authors wrote them: Rust's legacy mangling and C++'s plain nested
names, from a module's name section (``_ZN5count8classify17h…E`` -> ``count::classify``).

Rust (rustc's default, legacy scheme) and C++ (Itanium) mangle a path as ``_ZN``, each
part as its length and text, ``E``; Rust adds a part ``h`` + 16 hex digits, a hash that tells
instantiations of one generic apart, and escapes ``<>,& *{}'`` as ``$LT$``, ``$GT$``... (and
``::`` inside a part as ``..``). What a C++ name has after ``E`` (its parameter types) is not
shown, nor is anything this doesn't read (templates, operators, Rust's v0 ``_R`` scheme):
those names stay as they are. Where two functions of a module demangle to one name, the
Rust hash stays on them (``finish_grow::h4928…``), and C++ overloads keep their mangled
names, so that each function is its own in the reports.
"""

from __future__ import annotations

import re

_ESCAPES = {
    "$SP$": "@", "$BP$": "*", "$RF$": "&", "$LT$": "<", "$GT$": ">", "$LP$": "(",
    "$RP$": ")", "$C$": ",",
}  # fmt: skip
_ESCAPE = re.compile(r"\$(SP|BP|RF|LT|GT|LP|RP|C|u[0-9a-f]{2,6})\$")
_HASH = re.compile(r"h[0-9a-f]{16}")


def demangle_all(names: dict[int, str]) -> dict[int, str]:
    """Each function's name demangled where it can be, unique within the module."""
    read = {k: _parts(n) for k, n in names.items()}
    short = {k: "::".join(p[:-1] if _rust(p) else p) for k, p in read.items() if p}
    seen: dict[str, int] = {}
    for name in short.values():
        seen[name] = seen.get(name, 0) + 1
    out = dict(names)
    for k, name in short.items():
        if seen[name] == 1:
            out[k] = name
        elif _rust(read[k]):  # the hash tells them apart
            out[k] = "::".join(read[k])
    return out


def _rust(parts: list[str]) -> bool:
    return len(parts) > 1 and bool(_HASH.fullmatch(parts[-1]))


def _parts(name: str) -> list[str] | None:
    """The path's parts, unescaped; None where the name is not one this reads."""
    if name.startswith("__ZN"):
        name = name[1:]
    if not name.startswith("_ZN"):
        return None
    parts, p = [], 3
    while p < len(name) and name[p] != "E":
        m = re.match(r"\d+", name[p:])
        if m is None:
            return None  # a template, an operator, a substitution: left as it is
        n, p = int(m[0]), p + len(m[0])
        if n == 0 or p + n > len(name):
            return None
        parts.append(_unescape(name[p : p + n]))
        p += n
    if p >= len(name) or not parts:
        return None
    rest = name[p + 1 :]
    if rest and not _rust(parts) and not re.fullmatch(r"[A-Za-z0-9_]*", rest):
        return None
    return parts


def _unescape(part: str) -> str:
    if part.startswith("_$"):
        part = part[1:]

    def one(m: re.Match[str]) -> str:
        code = m[1]
        if code.startswith("u"):
            return chr(int(code[1:], 16))
        return _ESCAPES[f"${code}$"]

    return _ESCAPE.sub(one, part).replace("..", "::")
