"""Cobertura XML, as CI services read it (coverage.py's ``xml`` report): Python coverage."""

from __future__ import annotations

import os
import time
from functools import singledispatch
from xml.sax.saxutils import quoteattr

from probe import __version__
from probe.analyses.coverage import FileCoverage, LineCoverage


@singledispatch
def render(result: object) -> str:
    raise NotImplementedError(type(result).__name__)


@render.register
def _(result: LineCoverage) -> str:
    files, cwd, branch = result.files, result.cwd, result.branch

    def rate(hit: int, total: int) -> str:
        return f"{hit / total:.4g}" if total else "1"

    packages: dict[str, list[FileCoverage]] = {}
    for path, f in files.items():
        rel = result.relative(path)
        packages.setdefault(os.path.dirname(rel).replace(os.sep, ".") or ".", []).append(f)
    lines_valid = sum(f.statements for f in files.values())
    lines_hit = sum(len(f.executed) for f in files.values())
    br_valid = sum(f.branches for f in files.values())
    br_hit = sum(f.covered_branches for f in files.values())
    out = [
        '<?xml version="1.0" ?>',
        f'<coverage version="{__version__}" timestamp="{int(time.time() * 1000)}" '
        f'lines-valid="{lines_valid}" lines-covered="{lines_hit}" '
        f'line-rate="{rate(lines_hit, lines_valid)}" branches-covered="{br_hit}" '
        f'branches-valid="{br_valid}" branch-rate="{rate(br_hit, br_valid) if branch else 0}" '
        'complexity="0">',
        f"\t<sources>\n\t\t<source>{cwd}</source>\n\t</sources>",
        "\t<packages>",
    ]
    for pkg in sorted(packages):
        fs = sorted(packages[pkg], key=lambda f: f.path)
        p_lines = sum(f.statements for f in fs)
        p_hit = sum(len(f.executed) for f in fs)
        p_br = sum(f.branches for f in fs)
        p_brhit = sum(f.covered_branches for f in fs)
        out.append(
            f'\t\t<package name={quoteattr(pkg)} line-rate="{rate(p_hit, p_lines)}" '
            f'branch-rate="{rate(p_brhit, p_br) if branch else 0}" complexity="0">'
        )
        out.append("\t\t\t<classes>")
        for f in fs:
            rel = result.relative(f.path)
            out.append(
                f"\t\t\t\t<class name={quoteattr(os.path.basename(rel))} "
                f"filename={quoteattr(rel)} "
                f'line-rate="{rate(len(f.executed), f.statements)}" '
                f'branch-rate="{rate(f.covered_branches, f.branches) if branch else 0}" '
                'complexity="0">'
            )
            out.append("\t\t\t\t\t<methods/>\n\t\t\t\t\t<lines>")
            arcs: dict[int, list[tuple[int, bool]]] = {}
            for src, dst in f.arcs_hit:
                arcs.setdefault(src, []).append((dst, True))
            for src, dst in f.arcs_missed:
                arcs.setdefault(src, []).append((dst, False))
            for n in sorted(f.executed | f.missing):
                attrs = f'number="{n}" hits="{1 if n in f.executed else 0}"'
                if branch and n in arcs:
                    taken = sum(1 for _, hit in arcs[n] if hit)
                    total = len(arcs[n])
                    attrs += (
                        f' branch="true" condition-coverage='
                        f'"{100 * taken // total}% ({taken}/{total})"'
                    )
                    missed = sorted(d for d, hit in arcs[n] if not hit)
                    if missed:
                        attrs += f' missing-branches="{",".join(map(str, missed))}"'
                out.append(f"\t\t\t\t\t\t<line {attrs}/>")
            out.append("\t\t\t\t\t</lines>\n\t\t\t\t</class>")
        out.append("\t\t\t</classes>\n\t\t</package>")
    out.append("\t</packages>\n</coverage>")
    return "\n".join(out) + "\n"
