"""What a Python source file offers to measure: statements and branch arcs.

The numbers follow coverage.py so that reports agree with it line for line:
a statement is a line that owns bytecode (after folding multi-line
statements onto their first line, and leaving out docstrings); a branch is
a line with two or more possible next lines, and its arcs are (from, to)
pairs where a negative ``to`` means "leaves the code object that starts on
line -to" (the module's exit is -1).

Branch arcs are measured with *markers*: a ``pass`` statement placed where
only that arc leads (the first statement of an if-body, a new ``else:`` of
an if or loop, a trailing ``case _:``) and given a line number of its own
at or above MARKER_BASE. Each marker is an ordinary line to the engine, so
the same line probe that records coverage records arcs, and the marker
costs nothing once it has fired. Arcs that need no marker (one ``case``
failing to the next) are witnessed by the real line they lead to.
"""

from __future__ import annotations

import ast
import re
import types

from probe.config import DEFAULT_EXCLUDE, DEFAULT_PARTIAL

TYPE_CHECKING = False  # typing's, without importing typing on a run's path (architecture)
if TYPE_CHECKING:
    from probe.probes import Scope

MARKER_BASE = 1 << 28  # no real source file has this many lines

# Branch lines that can't take every arc, whatever the user says (coverage.py's own list).
_PARTIAL_ALWAYS = (r"^\s*while (True|1|False|0):", r"^\s*if (True|1|False|0):")


class SourceInfo:
    """Static facts about one source file, computed once per run. (Plain classes here, not
    dataclasses: see probe.probes on why.)"""

    def __init__(self, path: str) -> None:
        self.path = path
        self.statements: set[int] = set()
        self.excluded: set[int] = set()
        self.no_branch: set[int] = set()  # branch lines not held to every arc
        self.first_line: dict[int, int] = {}  # physical line -> statement line
        self.funcs: dict[int, str] = {}  # statement line -> qualified name
        self.arcs: dict[tuple[int, int], int] = {}  # arc -> witness line

    def statement_of(self, line: int) -> int | None:
        stmt = self.first_line.get(line, line)
        return stmt if stmt in self.statements else None


class _Slot:  # not a NamedTuple: see rows.py
    """Where a marker for one arc would go, and the statement that may witness it instead.

    ``stmt`` is a statement that only this arc leads to (an if-body's first
    statement, the statement after an if whose body never falls through,
    the statement after a loop with no break): when it has code, its line
    having run proves the arc was taken at least once, and no marker is
    needed.
    """

    __slots__ = ("node", "where", "stmt", "within")

    def __init__(
        self,
        node: ast.AST,
        where: str,  # 'body', 'orelse', 'wildcard', or 'after' (node, in ``within``)
        stmt: ast.stmt | None = None,
        within: list[ast.stmt] | None = None,
    ) -> None:
        self.node, self.where, self.stmt, self.within = node, where, stmt, within


class _ArcFinder:
    """Walks a module and finds every branch arc with what witnesses it."""

    def __init__(self) -> None:
        self.arcs: dict[tuple[int, int], _Slot] = {}

    def block(self, stmts: list[ast.stmt], cont: int) -> None:
        for i, stmt in enumerate(stmts):
            nxt = stmts[i + 1] if i + 1 < len(stmts) else None
            self.stmt(stmt, _first(nxt) if nxt else cont, nxt, stmts)

    def arc(self, src: int, dst: int, slot: _Slot) -> None:
        if src != dst:  # a one-line `if x: y` has no arc of its own
            self.arcs.setdefault((src, dst), slot)

    def fall(self, s: ast.stmt, cont: int, nxt: ast.stmt | None, only_way: bool) -> None:
        """The arc from s's test to what follows s when s has no else clause."""
        witness = nxt if only_way else None
        slot = _Slot(s, "wildcard" if isinstance(s, ast.Match) else "orelse", witness)
        line = s.cases[-1].pattern.lineno if isinstance(s, ast.Match) else s.lineno
        self.arc(line, cont, slot)

    def stmt(self, s: ast.stmt, cont: int, nxt: ast.stmt | None, within: list[ast.stmt]) -> None:
        if isinstance(s, ast.If):
            truth = _constant_truth(s.test)
            if truth is not False:
                self.arc(s.lineno, _first(s.body[0]), _Slot(s, "body", s.body[0]))
            if truth is not True:
                if s.orelse:
                    self.arc(s.lineno, _first(s.orelse[0]), _Slot(s, "orelse", s.orelse[0]))
                else:
                    self.fall(s, cont, nxt, only_way=_ends(s.body))
            self.block(s.body, cont)
            self.block(s.orelse, cont)
        elif isinstance(s, ast.While | ast.For | ast.AsyncFor):
            self.arc(s.lineno, _first(s.body[0]), _Slot(s, "body", s.body[0]))
            if not (isinstance(s, ast.While) and _constant_truth(s.test) is True):
                if s.orelse:
                    self.arc(s.lineno, _first(s.orelse[0]), _Slot(s, "orelse", s.orelse[0]))
                else:
                    self.fall(s, cont, nxt, only_way=not _breaks(s.body))
            self.block(s.body, s.lineno)
            self.block(s.orelse, cont)
        elif isinstance(s, ast.Try | ast.TryStar):
            after_final = _first(s.finalbody[0]) if s.finalbody else cont
            self.block(s.body, _first(s.orelse[0]) if s.orelse else after_final)
            for handler in s.handlers:
                self.block(handler.body, after_final)
            self.block(s.orelse, after_final)
            self.block(s.finalbody, cont)
        elif isinstance(s, ast.With | ast.AsyncWith):
            self.block(s.body, cont)
        elif isinstance(s, ast.Match):
            for i, case in enumerate(s.cases):
                line = case.pattern.lineno
                self.arc(line, _first(case.body[0]), _Slot(case, "body", case.body[0]))
                if i + 1 < len(s.cases):
                    # The next pattern runs only when this one failed: its line is the witness.
                    nxt_case = s.cases[i + 1]
                    self.arc(line, nxt_case.pattern.lineno, _Slot(nxt_case, "", nxt_case.pattern))
                elif not _irrefutable(case):
                    self.fall(s, cont, nxt, only_way=all(_ends(c.body) for c in s.cases))
                self.block(case.body, cont)
        elif isinstance(s, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            self.block(s.body, -_first(s))
            line = s.lineno
            if s.body[0].lineno == line:
                # `def f(): return 1`: the line is the def's and its body's, so it has two
                # exits, on to what follows and out of the body (whose code begins at the
                # first decorator), as coverage.py counts them.
                self.arc(line, cont, _Slot(s, "after", within=within))
                self.arc(line, -_first(s), _Slot(s, "body"))


def analyze(
    source: str, path: str, scope: Scope | None = None, markers: bool = False,
    counting: bool = False,
) -> tuple[SourceInfo, ast.Module]:  # fmt: skip
    """Parse ``source`` and return its static facts and its syntax tree. ``scope``'s
    exclusions (coverage.py's by default) say which lines are not measured.

    With ``markers`` the tree comes back with the markers its arcs need in
    place, ready to compile. With ``counting`` every arc gets a marker of its
    own, since a witness statement can run more often than its arc. Raises
    SyntaxError (or ValueError for null bytes) as ``compile`` does.
    """
    tree = ast.parse(source, path)
    code = compile(tree, path, "exec", dont_inherit=True)
    info = SourceInfo(path)
    _map_lines(tree, info, _lines(source))
    for line in _code_lines(code):
        info.statements.add(info.first_line.get(line, line))
    info.statements -= _docstring_lines(tree)
    exclude = scope.exclude if scope is not None else DEFAULT_EXCLUDE
    info.excluded = _excluded(source, tree, info, exclude)
    info.statements -= info.excluded
    partial = scope.partial if scope is not None else DEFAULT_PARTIAL
    info.no_branch = _matching(source, (*partial, *_PARTIAL_ALWAYS), info)

    finder = _ArcFinder()
    finder.block(tree.body, -1)
    exits: dict[int, set[int]] = {}
    kept = {
        arc: w
        for arc, w in finder.arcs.items()
        if arc[0] in info.statements and (arc[1] < 0 or arc[1] not in info.excluded)
    }
    for src, dst in kept:
        exits.setdefault(src, set()).add(dst)
    marker = MARKER_BASE
    for (src, dst), slot in kept.items():
        if len(exits[src]) < 2:
            continue
        witness = _statement_line(slot.stmt, info) if slot.stmt is not None else None
        if witness is not None and (not counting or not slot.where):
            info.arcs[(src, dst)] = witness
            continue
        if not slot.where:
            continue  # nowhere to put a marker, and no statement to witness it
        info.arcs[(src, dst)] = marker
        if markers:
            _place(slot, marker)
        marker += 1
    return info, tree


def _statement_line(node: ast.AST, info: SourceInfo) -> int | None:
    line = _first(node) if isinstance(node, ast.stmt) else node.lineno
    return line if line in info.statements else None


def _ends(body: list[ast.stmt]) -> bool:
    """Whether a block never falls through to what follows it."""
    return isinstance(body[-1], ast.Return | ast.Raise | ast.Break | ast.Continue)


def _breaks(body: list[ast.stmt]) -> bool:
    """Whether a loop body has a break of its own (not of an inner loop or function)."""
    todo = list(body)
    while todo:
        node = todo.pop()
        if isinstance(node, ast.Break):
            return True
        if isinstance(node, ast.For | ast.AsyncFor | ast.While):
            todo.extend(node.orelse)  # an inner loop's else belongs to the outer loop
            continue
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef | ast.Lambda):
            continue
        todo.extend(
            c
            for c in ast.iter_child_nodes(node)
            if isinstance(c, ast.stmt | ast.match_case | ast.excepthandler)
        )
    return False


def _place(slot: _Slot, line: int) -> None:
    mark = ast.Pass(lineno=line, col_offset=0, end_lineno=line, end_col_offset=4)
    if slot.where == "wildcard":
        anything = ast.MatchAs(lineno=line, col_offset=0, end_lineno=line, end_col_offset=1)
        slot.node.cases.append(ast.match_case(pattern=anything, body=[mark]))
    elif slot.where == "after":
        assert slot.within is not None
        slot.within.insert(next(i for i, n in enumerate(slot.within) if n is slot.node) + 1, mark)
    else:
        getattr(slot.node, slot.where).insert(0, mark)


def _first(s: ast.stmt) -> int:
    """The first line of a statement, decorators included, as coverage.py counts it."""
    decorators = getattr(s, "decorator_list", None)
    return min([s.lineno] + [d.lineno for d in decorators]) if decorators else s.lineno


def _constant_truth(test: ast.expr) -> bool | None:
    if isinstance(test, ast.Constant):
        return bool(test.value)
    if isinstance(test, ast.Name) and test.id == "__debug__":
        return True
    return None


def _irrefutable(case: ast.match_case) -> bool:
    if case.guard is not None:
        return False
    pattern = case.pattern
    if isinstance(pattern, ast.MatchOr):
        return any(isinstance(p, ast.MatchAs) and p.pattern is None for p in pattern.patterns)
    return isinstance(pattern, ast.MatchAs) and pattern.pattern is None


def _code_lines(code: types.CodeType) -> set[int]:
    lines = {line for _, _, line in code.co_lines() if line}
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            lines |= _code_lines(const)
    return lines


def _lines(source: str) -> list[str]:
    """The lines as Python numbers them (str.splitlines also splits at form feeds and other
    characters that end no line of Python's)."""
    return re.split(r"\r\n|\r|\n", source)


def _header_end(s: ast.stmt, lines: list[str]) -> int:
    """The last line of a compound statement's header (``def f(`` ... ``) -> None:``): the
    last line of code before its body (not a comment or blank line there), or the body's
    first line where the header ends on it (``) -> None: ...``)."""
    body = getattr(s, "body", None)
    if not (isinstance(body, list) and body and isinstance(body[0], ast.stmt)):
        return s.end_lineno or s.lineno
    start = _first(body[0])  # a decorator begins a line of its own
    if s.lineno < start == body[0].lineno and lines[start - 1][: body[0].col_offset].strip():
        return start
    end = max(s.lineno, start - 1)
    while end > s.lineno and lines[end - 1].lstrip()[:1] in ("", "#"):
        end -= 1
    return end


_COMPOUND = (
    ast.If,
    ast.While,
    ast.For,
    ast.AsyncFor,
    ast.With,
    ast.AsyncWith,
    ast.Try,
    ast.TryStar,
    ast.FunctionDef,
    ast.AsyncFunctionDef,
    ast.ClassDef,
    ast.Match,
)


def _map_lines(tree: ast.Module, info: SourceInfo, lines: list[str]) -> None:
    """Fold the lines of multi-line statements onto their first line; name functions."""

    def span(first: int, last: int) -> None:
        for line in range(first, last + 1):
            info.first_line[line] = first

    def visit(body: list[ast.stmt], scope: str, in_class: bool = False) -> None:
        for s in body:
            for d in getattr(s, "decorator_list", ()):
                span(d.lineno, d.end_lineno or d.lineno)
            if isinstance(s, _COMPOUND):
                end = _header_end(s, lines)
                body = getattr(s, "body", None)
                if body and end >= body[0].lineno:
                    end -= 1  # a header that ends on the body's line: that line is the body's
                span(s.lineno, max(s.lineno, end))
            else:
                span(s.lineno, s.end_lineno or s.lineno)
            info.funcs[s.lineno] = scope
            for d in getattr(s, "decorator_list", ()):
                info.funcs[d.lineno] = scope
            inner, is_class = scope, in_class
            if isinstance(s, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                # as the code object's co_qualname names it (what func sites and stacks say)
                if scope == "<module>":
                    inner = s.name
                elif in_class:
                    inner = f"{scope}.{s.name}"
                else:
                    inner = f"{scope}.<locals>.{s.name}"
                is_class = isinstance(s, ast.ClassDef)
            for name in ("body", "orelse", "finalbody"):
                visit(getattr(s, name, []), inner, is_class)
            for handler in getattr(s, "handlers", ()):
                span(handler.lineno, _header_end(handler, lines))
                info.funcs[handler.lineno] = inner
                visit(handler.body, inner, is_class)
            for case in getattr(s, "cases", ()):
                p = case.pattern
                span(p.lineno, max(p.end_lineno or p.lineno, case.body[0].lineno - 1))
                info.funcs[p.lineno] = inner
                visit(case.body, inner, is_class)

    visit(tree.body, "<module>")


def _docstring_lines(tree: ast.Module) -> set[int]:
    lines: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            body = node.body
            if (
                body
                and isinstance(body[0], ast.Expr)
                and isinstance(body[0].value, ast.Constant)
                and isinstance(body[0].value.value, str)
            ):
                lines.update(range(body[0].lineno, (body[0].end_lineno or body[0].lineno) + 1))
    return lines


def _matching(source: str, patterns: tuple[str, ...], info: SourceInfo) -> set[int]:
    """The statements (first lines) of the lines that a match of any of ``patterns`` touches:
    a regex may span lines, as in coverage.py."""
    if not patterns:
        return set()
    regex = re.compile("|".join(f"(?:{p})" for p in patterns), re.MULTILINE)
    lines: set[int] = set()
    at, line = 0, 1
    for match in regex.finditer(source):
        start, end = match.span()
        line += source.count("\n", at, start)
        last = line + source.count("\n", start, end)
        at = start
        lines.update(info.first_line.get(n, n) for n in range(line, last + 1))
    return lines


def _excluded(
    source: str, tree: ast.Module, info: SourceInfo, patterns: tuple[str, ...]
) -> set[int]:
    """The lines excluded by ``patterns``, as coverage.py excludes them: a matched line, and
    where it begins a clause (its colon on the matched statement: ``if``, ``else:``,
    ``except ...:``, ``def``), the clause's whole suite; a match on a decorator or on a
    signature excludes the whole function or class; a catch-all ``case`` whose body is all
    excluded goes with it. Without a match, nothing is tokenized."""
    excluded = _matching(source, patterns, info)
    if not excluded:
        return set()
    lines = _lines(source)
    excluded |= _suites(source, excluded)
    excluded = {info.first_line.get(n, n) for n in excluded}
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            first = _first(node)
            if excluded.intersection(range(first, _header_end(node, lines) + 1)):
                excluded.update(range(first, (node.end_lineno or node.lineno) + 1))
        elif isinstance(node, ast.match_case) and _irrefutable(node):
            body = range(node.body[0].lineno, (node.body[-1].end_lineno or 0) + 1)
            inside = info.statements.intersection(body)
            if inside and inside <= excluded:
                pattern = node.pattern
                excluded.update(range(pattern.lineno, (pattern.end_lineno or 0) + 1))
    return excluded


def _suites(source: str, matched: set[int]) -> set[int]:
    """The lines of the suites that excluded lines begin: a statement with a matched line
    up to its top-level colon excludes every statement indented below it."""
    import io
    import tokenize

    out: set[int] = set()
    indent = exclude_indent = nesting = first = 0
    excluding = False
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        kind, text, (start, _), (end, _) = tok.type, tok.string, tok.start, tok.end
        if kind == tokenize.INDENT:
            indent += 1
        elif kind == tokenize.DEDENT:
            indent -= 1
        elif kind == tokenize.OP:
            if text == ":" and nesting == 0:
                if not excluding and matched.union(out).intersection(range(first, end + 1)):
                    out.add(end)
                    exclude_indent, excluding = indent, True
            elif text in "([{":
                nesting += 1
            elif text in ")]}":
                nesting -= 1
        elif kind == tokenize.NEWLINE:
            first = 0
        if text.strip() and kind != tokenize.COMMENT and not first:
            first = start
            if excluding and indent <= exclude_indent:
                excluding = False
            if excluding:
                out.add(end)
    return out
