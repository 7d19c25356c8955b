"""3.11's line flags inserted into code units (engines/cpython/units.py), held to the code
they were put in: on every code object of a few hundred stdlib modules, the instructions
without the probes are the original ones with the same arguments, jump targets, positions
and exception table entries, and a probe stands before each instruction that starts a line
(or that a jump lands on), for that line. Run in a 3.11 interpreter of the suite's."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from conftest import INTERPRETERS, version_of

CHECK = r"""
import dis, sys, sysconfig, os, types
from probe.engines.cpython.units import insert_flags

def instructions(code):
    return [i for i in dis.get_instructions(code) if i.opname != "EXTENDED_ARG"]

def starts(code):
    # each instruction's first offset: its EXTENDED_ARGs' (where jumps land)
    out, first = [], None
    for i in dis.get_instructions(code):
        if i.opname == "EXTENDED_ARG":
            first = i.offset if first is None else first
            continue
        out.append(i.offset if first is None else first)
        first = None
    return out

def strip(code, slots):
    '''The instructions but the probes, and per kept instruction the probe before it.'''
    ins = instructions(code)
    kept, probe_of, k = [], {}, 0
    while k < len(ins):
        a = ins[k]
        if (a.opname == "NOP" and k + 4 < len(ins) and ins[k + 2].argval is slots
                and ins[k + 4].opname == "STORE_SUBSCR"):
            probe_of[len(kept)] = ins[k + 3].argval
            k += 5
            continue
        kept.append(a)
        k += 1
    return kept, probe_of

def index_at(ins, offset):
    '''The index of the first kept instruction at or after ``offset``.'''
    for n, i in enumerate(ins):
        if i.offset >= offset:
            return n
    return len(ins)

def check(code):
    slots, index = [], {}
    new, placed = insert_flags(code, slots, index)
    raw = new.co_code
    for slot, at, skip in placed:  # where the disarming thread writes its jump: the NOP,
        assert raw[at] == dis.opmap["NOP"], (code, at)  # the store's cache the last skipped
        end = at + 2 + 2 * skip
        assert raw[end - 2 * (1 + 1)] == dis.opmap["STORE_SUBSCR"], (code, at, skip)
    old_ins = instructions(code)
    kept, probe_of = strip(new, slots)
    assert len(kept) == len(old_ins), (code, len(kept), len(old_ins))
    lines = {v: k for k, v in index.items()}
    landing = {i.argval for i in old_ins if i.opcode in dis.hasjrel}
    landing |= {e.target for e in dis._parse_exception_table(code)}
    resumed, last = False, None
    first = starts(code)
    assert sorted(slot for slot, _, _ in placed) == sorted(probe_of.values())
    for n, (a, b) in enumerate(zip(old_ins, kept)):
        assert a.opname == b.opname, (code, n, a, b)
        assert a.positions == b.positions, (code, n, a.positions, b.positions)
        if a.opcode in dis.hasjrel:
            # the new target: the kept instruction after the probe it lands on, if any
            assert index_at(old_ins, a.argval) == index_at(kept, b.argval), (code, n)
        elif a.opname != "LOAD_CONST":
            assert a.argval == b.argval or a.argval != a.argval, (code, n, a, b)
        else:
            assert a.argval is b.argval or a.argval == b.argval, (code, n)
        line = a.positions.lineno
        wanted = resumed and line and line > 0 and (line != last or first[n] in landing)
        assert (n in probe_of) == bool(wanted), (code, n, a)
        if n in probe_of:
            assert lines[probe_of[n]] == line
        if a.opname == "RESUME":
            resumed = True
        if line:
            last = line
    old_t = [(index_at(old_ins, e.start), index_at(old_ins, e.end), index_at(old_ins, e.target),
              e.depth, e.lasti)
             for e in dis._parse_exception_table(code)]
    new_t = [(index_at(kept, e.start), index_at(kept, e.end), index_at(kept, e.target),
              e.depth, e.lasti) for e in dis._parse_exception_table(new)]
    assert old_t == new_t, (code, old_t, new_t)
    return len(probe_of)

def walk(code):
    yield code
    for c in code.co_consts:
        if isinstance(c, types.CodeType):
            yield from walk(c)

stdlib = sysconfig.get_paths()["stdlib"]
files = sorted(os.path.join(top, f) for top, _, names in os.walk(stdlib)
               if "site-packages" not in top and "test" not in top for f in names
               if f.endswith(".py"))[: int(sys.argv[1])]
codes = probes = 0
for path in files:
    try:
        with open(path, "rb") as f:
            top = compile(f.read(), path, "exec")
    except (SyntaxError, ValueError):
        continue
    for code in walk(top):
        probes += check(code)
        codes += 1
print(codes, probes)
"""


def test_probes_in_code_units_leave_every_instruction_as_it_was(tmp_path: Path) -> None:
    found = [p for p in INTERPRETERS if version_of(p) == "(3, 11)"]
    if not found:
        pytest.skip("no Python 3.11 among the suite's interpreters (units.py is 3.11's)")
    done = subprocess.run(
        [found[0], "-c", CHECK, "400"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    codes, probes = map(int, done.stdout.split())
    assert codes > 5_000 and probes > 50_000, done.stdout
