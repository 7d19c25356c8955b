"""The data sets a corpus build reads, each record turned into a task: a program, the
function to call, and the calls (inputs) to trace.

* HumanEval style: ``task_id, prompt, canonical_solution, test, entry_point``; the program is
  prompt + solution, and every ``assert`` in ``check`` that calls ``candidate`` is an input
  (the call, with ``candidate`` named by the entry point). An assert inside a loop of
  ``check`` uses the loop's variables: it can't be called alone, and is left out (counted).
* MBPP style: ``task_id, code, test_list`` (``["assert f(...) == ...", ...]``): the call in
  each assert to a function the code defines.
* Plain: ``id, code, entry_point, inputs``: each input the arguments of one call as Python
  source (``"[1, 2], 3"``).
"""

from __future__ import annotations

import ast
import gzip
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from probe.errors import UsageError


@dataclass
class Task:
    task_id: str
    program: str
    entry_point: str
    calls: list[str]
    skipped: int = 0  # asserts that couldn't become inputs
    extra: dict = field(default_factory=dict)


def read(path: str) -> Iterator[Task]:
    """The tasks of a JSONL or JSONL.gz file, in order; a bad file or record is a
    UsageError naming its line."""
    p = Path(path)
    if not p.is_file():
        raise UsageError(f"no such data set: {path}")
    opener = gzip.open if p.suffix == ".gz" else open
    try:
        with opener(p, "rt", encoding="utf-8") as f:
            for n, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    record = json.loads(line)
                except ValueError as e:
                    raise UsageError(f"{path}:{n}: not JSON: {e}") from None
                if not isinstance(record, dict):
                    raise UsageError(f"{path}:{n}: a record must be a JSON object")
                yield task_of(record, f"{path}:{n}")
    except (OSError, EOFError, UnicodeDecodeError) as e:
        raise UsageError(f"can't read {path}: {e}") from None


def task_of(record: dict, where: str) -> Task:
    if {"prompt", "canonical_solution", "test", "entry_point"} <= record.keys():
        return _humaneval(record)
    if {"code", "test_list"} <= record.keys():
        return _mbpp(record, where)
    if {"code", "entry_point", "inputs"} <= record.keys():
        inputs = record["inputs"]
        if not isinstance(inputs, list) or not all(isinstance(i, str) for i in inputs):
            raise UsageError(f"{where}: inputs must be a list of strings (call arguments)")
        entry = record["entry_point"]
        return Task(
            str(record.get("id", record.get("task_id"))),
            record["code"],
            entry,
            [f"{entry}({i})" for i in inputs],
        )
    raise UsageError(
        f"{where}: not a HumanEval (prompt, canonical_solution, test, entry_point), MBPP "
        "(code, test_list) or plain (id, code, entry_point, inputs) record"
    )


def _humaneval(record: dict) -> Task:
    entry = record["entry_point"]
    program = record["prompt"] + record["canonical_solution"]
    calls, skipped = [], 0
    try:
        tree = ast.parse(record["test"])
    except SyntaxError:
        return Task(record["task_id"], program, entry, [], skipped=1)
    check = next(
        (n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "check"), None
    )
    known = _top_names(program) | _BUILTINS
    for stmt in _asserts(check.body if check else tree.body, in_loop=False):
        assert_, looped = stmt
        call = _call_to(assert_.test, {"candidate"})
        if call is None or looped or not _free_names(call) <= known | {"candidate"}:
            skipped += 1  # in a loop, or on names of check's own: not a call alone
            continue
        call.func = ast.Name(entry)
        calls.append(ast.unparse(call))
    return Task(record["task_id"], program, entry, calls, skipped)


def _mbpp(record: dict, where: str) -> Task:
    code = record["code"]
    try:
        defined = {n.name for n in ast.parse(code).body if isinstance(n, ast.FunctionDef)}
    except SyntaxError:
        defined = set()
    calls, skipped, entry = [], 0, ""
    for test in record["test_list"]:
        try:
            stmt = ast.parse(test).body[0]
        except (SyntaxError, IndexError):
            skipped += 1
            continue
        call = _call_to(stmt.test if isinstance(stmt, ast.Assert) else stmt, defined)
        if call is None:
            skipped += 1
            continue
        entry = entry or call.func.id  # type: ignore[attr-defined]
        calls.append(ast.unparse(call))
    return Task(str(record["task_id"]), code, entry, calls, skipped)


def _asserts(body: list[ast.stmt], in_loop: bool) -> Iterator[tuple[ast.Assert, bool]]:
    for stmt in body:
        if isinstance(stmt, ast.Assert):
            yield stmt, in_loop
        loop = in_loop or isinstance(stmt, ast.For | ast.While | ast.With)
        for name in ("body", "orelse", "finalbody"):
            inner = getattr(stmt, name, None)
            if isinstance(inner, list) and inner and isinstance(inner[0], ast.stmt):
                yield from _asserts(inner, loop)


def _call_to(node: ast.AST, names: set[str]) -> ast.Call | None:
    """The outermost call in ``node`` of a function named in ``names``."""
    for sub in ast.walk(node):
        if isinstance(sub, ast.Call) and isinstance(sub.func, ast.Name) and sub.func.id in names:
            return sub
    return None


_BUILTINS = frozenset(dir(__import__("builtins")))


def _top_names(program: str) -> set[str]:
    """Names the program's module defines at its top level."""
    try:
        tree = ast.parse(program)
    except SyntaxError:
        return set()
    names = set()
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.Import | ast.ImportFrom):
            names.update((a.asname or a.name).split(".")[0] for a in node.names)
        elif isinstance(node, ast.Assign):
            names.update(t.id for t in node.targets if isinstance(t, ast.Name))
    return names


def _free_names(node: ast.AST) -> set[str]:
    bound = {
        n.id
        for sub in ast.walk(node)
        if isinstance(sub, ast.comprehension)
        for n in ast.walk(sub.target)
        if isinstance(n, ast.Name)
    }
    bound |= {a.arg for sub in ast.walk(node) if isinstance(sub, ast.Lambda) for a in sub.args.args}
    used = {n.id for n in ast.walk(node) if isinstance(n, ast.Name)}
    return used - bound
