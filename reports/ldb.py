"""LDB's text (Zhong et al., "Debug like a human", FloridSleeves/LLMDebugger): the traced
function's run cut into basic blocks, each shown as the state before it (a comment), its
source lines, and the state after it.

* A state is the frame's variables (names starting with ``__`` left out) as ``name=str(value)``
  joined by tabs, ``_ret`` the returned value; 100 characters or more become the first 50,
  ``...`` and the last 50. A comment is indented 4 spaces per level of the line it annotates.
* Blocks: a run of executed lines inside one basic block of the function. A block begins at
  the function's first statement, at a loop's header, at the first statement of a loop's
  body, after an ``if``/``try``/``with`` statement (where paths join) and at an exception
  handler; a condition's own block runs on into the branch it takes, and a loop's exit into
  the statement after it, as LDB's output shows (``for n in nums:`` then ``return total`` in
  one block).
* Levels: ``block`` keeps 10 blocks (the first 5, the last 5), ``line`` makes a block of each
  line and keeps 30 (15 + 15), ``function`` one block, its lines cut to 15 + ``...`` + 15.
* An exception: ``*execution fail*This line is wrong: ```LINE``` `` and ``Type: message``
  on the next line; a timeout: ``*timeout*``.
"""

from __future__ import annotations

import ast
from functools import singledispatch

from probe.analyses.states import StateTrace, Step, Value, source_lines, walk

_KEEP = {"block": (5, 5), "line": (15, 15)}
_FUNCTION_LINES = 15


@singledispatch
def render(result: object) -> str:
    raise NotImplementedError(type(result).__name__)


@render.register
def _(result: StateTrace) -> str:
    if result.outcome == "timeout":
        return "*timeout*"
    if result.outcome == "exception":
        return _failure(result)
    root = result.root()
    if not root:
        return ""
    lines = source_lines(root[0].unit)
    executed = []
    for step, before, after in walk(root):
        if step.event == "line":
            executed.append((step, before, after))
        elif step.event == "return" and executed:  # LDB's `_ret = X` is the line's own
            executed[-1][2].update(after)
    if result.level == "function":
        blocks = [_function_block(executed, lines)]
    else:
        leaders = _leaders(lines, root[0].line) if result.level == "block" else None
        blocks = _blocks(executed, lines, leaders)
        first, last = _KEEP[result.level]
        if len(blocks) > first + last:
            blocks = blocks[:first] + blocks[-last:]
    return "".join(f"\n[BLOCK-{i}]\n" + "\n".join(block) for i, block in enumerate(blocks))


def _failure(result: StateTrace) -> str:
    where = result.exception()
    if where is None:
        return "*execution fail*"
    text = source_lines(where.unit)
    line = text[where.line - 1].strip() if 0 < where.line <= len(text) else ""
    value = where.value()
    message = value.repr if value is not None and value.repr else ""
    return f"*execution fail*This line is wrong: ```    {line}```\n{message}"


def state(values: dict[str, Value]) -> str:
    """LDB's state text of a frame's variables."""
    text = "\t".join(f"{name}={v.text}" for name, v in values.items() if not name.startswith("__"))
    return text if len(text) < 100 else text[:50] + "..." + text[-50:]


def _comment(values: dict[str, Value], line: str) -> str:
    level = (len(line) - len(line.lstrip())) // 4
    return "    " * level + "# " + state(values)


def _source(lines: list[str], n: int) -> str:
    return lines[n - 1] if 0 < n <= len(lines) else ""


def _blocks(
    executed: list[tuple[Step, dict[str, Value], dict[str, Value]]],
    lines: list[str],
    leaders: set[int] | None,
) -> list[list[str]]:
    """Consecutive executed lines, cut where a block begins (every line: ``leaders`` None)."""
    groups: list[list[tuple[Step, dict[str, Value], dict[str, Value]]]] = []
    for item in executed:
        if not groups or leaders is None or item[0].line in leaders:
            groups.append([item])
        else:
            groups[-1].append(item)
    out = []
    for group in groups:
        first, last = _source(lines, group[0][0].line), _source(lines, group[-1][0].line)
        out.append(
            [_comment(group[0][1], first)]
            + [_source(lines, step.line) for step, _, _ in group]
            + [_comment(group[-1][2], last)]
        )
    return out


def _function_block(
    executed: list[tuple[Step, dict[str, Value], dict[str, Value]]], lines: list[str]
) -> list[str]:
    if not executed:
        return []
    body = [_source(lines, step.line) for step, _, _ in executed]
    if len(body) > 2 * _FUNCTION_LINES:
        body = body[:_FUNCTION_LINES] + ["..."] + body[-_FUNCTION_LINES:]
    first, last = _source(lines, executed[0][0].line), _source(lines, executed[-1][0].line)
    return [_comment(executed[0][1], first), *body, _comment(executed[-1][2], last)]


def _leaders(lines: list[str], first_line: int) -> set[int]:
    """The lines where a basic block of the function defined at ``first_line`` begins."""
    try:
        tree = ast.parse("\n".join(lines))
    except SyntaxError:
        return set()
    func = next(
        (
            node
            for node in ast.walk(tree)
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
            and min([node.lineno, *(d.lineno for d in node.decorator_list)]) == first_line
        ),
        None,
    )
    if func is None:
        return set()
    leaders = {func.body[0].lineno}

    def visit(body: list[ast.stmt]) -> None:
        for i, stmt in enumerate(body):
            follows = body[i + 1].lineno if i + 1 < len(body) else None
            if isinstance(stmt, ast.For | ast.AsyncFor | ast.While):
                leaders.add(stmt.lineno)
                leaders.add(stmt.body[0].lineno)
            elif isinstance(stmt, ast.If | ast.Try | ast.With | ast.AsyncWith | ast.Match):
                if follows is not None:
                    leaders.add(follows)
            for handler in getattr(stmt, "handlers", []):
                leaders.add(handler.body[0].lineno)
            for name in ("body", "orelse", "finalbody"):
                inner = getattr(stmt, name, None)
                if isinstance(inner, list) and inner and isinstance(inner[0], ast.stmt):
                    visit(inner)
            for handler in getattr(stmt, "handlers", []):
                visit(handler.body)
            for case in getattr(stmt, "cases", []):
                visit(case.body)

    visit(func.body)
    return leaders
