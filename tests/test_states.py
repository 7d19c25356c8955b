"""States: the engine's record of what a program held, and the formats it is written in.

Every expected text is written out here; the LDB and SemCoder ones are the examples of
../shared/llm-trace-formats.md, produced by those tools."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from probe import recording
from probe.analyses.states import States
from probe.reports import render

PROGRAMS = Path(__file__).parent / "states_programs"


def trace(file: str, call: str, **options):
    return recording.trace_call(str(PROGRAMS / file), call, **options)


def text(file: str, call: str, fmt: str, **options) -> str:
    level = options.pop("level", "block")
    return render(States(level=level), trace(file, call, level=level, **options), fmt)


def test_ldb_block_level_is_the_shared_example():
    out = text("sum_even.py", "sum_even([1, 2, 3, 4, 5, 6, 7, 8])", "ldb")
    blocks = out.split("\n[BLOCK-")
    assert len(blocks) == 11  # "" before the first, then 10 of the 18 blocks
    assert blocks[1] == (
        "0]\n"
        "    # nums=[1, 2, 3, 4, 5, 6, 7, 8]\n"
        "    total = 0\n"
        "    # nums=[1, 2, 3, 4, 5, 6, 7, 8]\ttotal=0"
    )
    assert blocks[10] == (
        "9]\n"
        "    # nums=[1, 2, 3, 4, 5, 6, 7, 8]\ttotal=20\tn=8\n"
        "    for n in nums:\n"
        "    return total\n"
        "    # nums=[1, 2, 3, 4, 5, 6, 7, 8]\ttotal=20\tn=8\t_ret=20"
    )


def test_ldb_line_and_function_levels_and_caps():
    line = text("sum_even.py", "sum_even([1, 2])", "ldb", level="line")
    assert line == (
        "\n[BLOCK-0]\n    # nums=[1, 2]\n    total = 0\n    # nums=[1, 2]\ttotal=0"
        "\n[BLOCK-1]\n    # nums=[1, 2]\ttotal=0\n    for n in nums:"
        "\n    # nums=[1, 2]\ttotal=0\tn=1"
        "\n[BLOCK-2]\n        # nums=[1, 2]\ttotal=0\tn=1\n        if n % 2 == 0:"
        "\n        # nums=[1, 2]\ttotal=0\tn=1"
        "\n[BLOCK-3]\n    # nums=[1, 2]\ttotal=0\tn=1\n    for n in nums:"
        "\n    # nums=[1, 2]\ttotal=0\tn=2"
        "\n[BLOCK-4]\n        # nums=[1, 2]\ttotal=0\tn=2\n        if n % 2 == 0:"
        "\n        # nums=[1, 2]\ttotal=0\tn=2"
        "\n[BLOCK-5]\n            # nums=[1, 2]\ttotal=0\tn=2\n            total += n"
        "\n            # nums=[1, 2]\ttotal=2\tn=2"
        "\n[BLOCK-6]\n    # nums=[1, 2]\ttotal=2\tn=2\n    for n in nums:"
        "\n    # nums=[1, 2]\ttotal=2\tn=2"
        "\n[BLOCK-7]\n    # nums=[1, 2]\ttotal=2\tn=2\n    return total"
        "\n    # nums=[1, 2]\ttotal=2\tn=2\t_ret=2"
    )
    many = text("sum_even.py", "sum_even(list(range(40)))", "ldb", level="line")
    assert many.count("[BLOCK-") == 30 and "[BLOCK-29]" in many
    function = text("sum_even.py", "sum_even(list(range(40)))", "ldb", level="function")
    body = function.split("\n")
    assert body[1] == "[BLOCK-0]" and body.count("...") == 1 and len(body) == 2 + 2 + 31
    # A state of 100 characters or more: its first 50, "...", its last 50.
    long = text("sum_even.py", "sum_even(list(range(100)))", "ldb")
    comment = long.split("\n")[2]
    assert (
        comment
        == "    # "
        + ("nums=" + str(list(range(100))))[:50]
        + "..."
        + ("nums=" + str(list(range(100))))[-50:]
    )


def test_ldb_exception_and_timeout_texts():
    out = text("kinds.py", "calls_divide(1)", "ldb")
    assert out == (
        "*execution fail*This line is wrong: ```    q = a / b```\n"
        "ZeroDivisionError: division by zero"
    )
    assert text("kinds.py", "spin(10**9)", "ldb", timeout=0.5, max_steps=10**8) == "*timeout*"


def test_semcoder_is_the_shared_example():
    out = text("buggy.py", "sum_even([1, 2, 3, 4, 5, 6, 7, 8])", "semcoder")
    assert out == (
        'def sum_even(nums): # [INPUT] {"nums": [1, 2, 3, 4, 5, 6, 7, 8]} [/INPUT]\n'
        '    total = 0 # [STATE-0] {"total": 0} [/STATE-0]\n'
        '    for n in nums: # [STATE-1] {"n": 1} [/STATE-1][STATE-3] {"n": 2} [/STATE-3]'
        ' ... [STATE-12] {"n": 8} [/STATE-12]\n'
        "        if n % 2 == 1:\n"
        '            total += n # [STATE-2] {"total": 1} [/STATE-2][STATE-5] {"total": 4}'
        ' [/STATE-5] ... [STATE-11] {"total": 16} [/STATE-11]\n'
        "    return total # [OUTPUT] 16 [/OUTPUT]"
    )


def test_semcoder_exception():
    out = text("kinds.py", "calls_divide(1)", "semcoder").split("\n")
    # The root function's line the exception left it by.
    assert out[-1] == (
        "    return divide(y, 0) # [EXCEPTION] ZeroDivisionError: division by zero [/EXCEPTION]"
    )
    assert '    y = x + 1 # [STATE-0] {"y": 2} [/STATE-0]' in out


def test_traced_lines_new_modified_and_element_deltas():
    out = text("kinds.py", "mutate()", "traced")
    source, run = out.split("\n\n")
    assert "def mutate(): # L25" in source.split("\n")
    assert run == (
        "L26 new var: xs = [0, 0, 0] L27 modified var: xs[1] = 1 L28 modified var: xs[3] = 5"
        " L29 new var: d = {'a': 1} L30 modified var: d['b'] = 2"
        " L31 modified var: d = {'b': 2} L32"
    )


def test_traced_truncates_and_labels():
    from probe.reports.traced import labels

    result = trace("sum_even.py", "sum_even(list(range(100)))")
    run = render(States(), result, "traced").split("\n\n")[1]
    first = run.split(" L3 ")[0]
    assert first.startswith("L2 new var: total = 0")
    nums = render(States(), trace("kinds.py", "spin(3)"), "traced")
    assert (
        "L19 new var: s = 0 L20 new var: i = 0 L21 L20 modified var: i = 1 L21 modified var: s = 1"
        in nums
    )
    found = labels(result)
    assert found["coverage"] == {1: 1, 2: 1, 3: 1, 4: 1, 5: 1, 6: 1}
    assert found["branches"] == {4: "both"}
    quantized = {(v["name"], v["quantized"]) for v in found["values"]}
    assert ("total", "ZERO") in quantized and ("total", "POSITIVE-REG") in quantized
    assert ("total", "POSITIVE-VL") not in quantized
    big = labels(trace("sum_even.py", "sum_even(list(range(300)))"))
    assert any(v["quantized"] == "POSITIVE-VL" for v in big["values"])
    assert {v["var_type"] for v in big["values"]} == {"basic_type"}


def test_codeexecutor_lines_states_and_output():
    out = text("sum_even.py", "sum_even([1, 2])", "codeexecutor")
    source, run = out.split("\n")
    assert source.startswith("<0> def sum_even(nums): <1> total = 0 <2> for n in nums:")
    assert run.startswith(
        "<line> <1> <state> nums : [ 1 , 2 ] <dictsep> total : 0 </state> "
        "<line> <2> <state> nums : [ 1 , 2 ] <dictsep> total : 0 <dictsep> n : 1 </state>"
    )
    assert run.endswith(
        "<line> <5> <state> nums : [ 1 , 2 ] <dictsep> total : 2 <dictsep> n : 2 </state>"
    )


def test_recursion_generator_and_depth():
    result = trace("kinds.py", "fact(3)")
    calls = [(s.depth, s.value().repr) for s in result.steps if s.event == "return"]
    assert calls == [(2, "1"), (1, "2"), (0, "6")]
    gen = trace("kinds.py", "collect(5)")
    yields = [s.value().repr for s in gen.steps if s.event == "yield"]
    assert yields == ["0", "2", "4"]
    assert {s.depth for s in gen.steps if s.func == "evens"} == {1}


def test_a_loop_of_10000_iterations_and_the_step_cap():
    done = trace("kinds.py", "spin(10_000)")
    assert (
        done.outcome == "ok" and len(done.steps) == 2 + 2 * 10_000 + 3
    )  # call, s = 0; the loop; exit, return
    capped = trace("kinds.py", "spin(10_000)", max_steps=500)
    assert capped.outcome == "step_cap" and len(capped.steps) == 500
    ldb = render(States(), capped, "ldb")
    assert ldb.count("[BLOCK-") == 10


def test_huge_cyclic_and_raising_values():
    result = trace("kinds.py", "odd_values()")
    values = {v.name: v for s in result.steps for v in s.values if v.name}
    big = values["big"]
    assert big.length == 100_000 and big.size is None and big.cut
    assert big.repr.startswith("[0, 1, 2,") and big.repr.endswith(", ...]")
    assert big.json is None
    assert values["cyc"].repr == "[1, [...]]"
    assert values["loud"].repr == "<Loud: repr raised RuntimeError>"
    assert result.outcome == "ok"


def test_values_have_types_json_str_and_deltas():
    result = trace("kinds.py", "mutate()")
    rows = [v for s in result.steps for v in s.values if v.name == "xs"]
    assert rows[0].type == "list" and rows[0].json == "[0, 0, 0]" and rows[0].change == "new"
    assert json.loads(rows[1].delta) == [{"op": "set", "key": 1, "value": "1"}]
    ret = [s.value() for s in result.steps if s.event == "return"][0]
    assert ret.type == "tuple" and ret.json is None and ret.repr == "([0, 1, 0, 5], {'b': 2})"


def _probe(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "probe", *args], cwd=cwd, capture_output=True, text=True
    )


def test_probe_trace_command(tmp_path):
    ok = _probe(
        "trace",
        str(PROGRAMS / "sum_even.py"),
        "--call",
        "sum_even([1, 2])",
        "--format",
        "semcoder",
        cwd=tmp_path,
    )
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.startswith('def sum_even(nums): # [INPUT] {"nums": [1, 2]} [/INPUT]')
    raised = _probe("trace", str(PROGRAMS / "kinds.py"), "--call", "calls_divide(1)", cwd=tmp_path)
    assert raised.returncode == 0 and "*execution fail*" in raised.stdout
    for bad in (
        ["nosuch.py", "--call", "f()"],
        [str(PROGRAMS / "kinds.py"), "--call", "f("],
        [str(PROGRAMS / "kinds.py"), "--call", "f()", "--format", "lcov"],
    ):
        out = _probe("trace", *bad, cwd=tmp_path)
        assert out.returncode == 2 and out.stderr.count("\n") == 1, out.stderr


def test_probe_run_states_into_sql(tmp_path):
    prog = tmp_path / "app.py"
    prog.write_text(
        "def f(xs):\n    xs.append(len(xs))\n    return xs\n\nys = f([1])\nys = f(ys)\n"
    )
    run = _probe("run", "-a", "states", "app.py", cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    assert "states: " in run.stderr
    q = _probe(
        "query",
        "SELECT v.name, v.change, v.repr, v.delta FROM variables v "
        "JOIN states s USING (run_id, step) WHERE s.func = 'f' AND v.name = 'xs' "
        "ORDER BY step",
        "-f",
        "json",
        cwd=tmp_path,
    )
    rows = json.loads(q.stdout)
    assert [(r["change"], r["repr"]) for r in rows] == [
        ("arg", "[1]"),
        ("modified", "[1, 1]"),
        ("arg", "[1, 1]"),
        ("modified", "[1, 1, 2]"),
    ]
    assert json.loads(rows[1]["delta"]) == [{"op": "append", "key": 1, "value": "1"}]
    capped = _probe("run", "-a", "states", "--max-steps", "3", "app.py", cwd=tmp_path)
    assert "step cap of 3 reached" in capped.stderr
    report = _probe("report", "states", "-f", "jsonl", cwd=tmp_path)
    assert len(report.stdout.splitlines()) == 3


def test_states_in_a_session_and_under_the_decorator(tmp_path):
    prog = tmp_path / "inside.py"
    prog.write_text(
        "import probe\n\n"
        "@probe.trace(analysis='states')\n"
        "def g(n):\n    t = n * 2\n    return t\n\n"
        "def h(n):\n    u = n + 1\n    return u\n\n"
        "with probe.session() as s:\n"
        "    g(3)\n    h(4)\n"
        'print(s.query("SELECT func, count(*) FROM states GROUP BY 1 ORDER BY 1").fetchall())\n'
        "with probe.session('states') as s2:\n"
        "    h(5)\n"
        "print(s2.query(\"SELECT name, repr FROM variables WHERE name = 'u'\").fetchall())\n"
    )
    out = subprocess.run([sys.executable, str(prog)], cwd=tmp_path, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    first, second = out.stdout.splitlines()
    assert first == "[('g', 4)]"  # the decorated call tree only
    assert second == "[('u', '6')]"


def test_wasm_refuses_states(tmp_path):
    fib = Path(__file__).parent.parent / "samples" / "wasm" / "fib.wasm"
    out = _probe("run", "-a", "states", str(fib), cwd=tmp_path)
    assert out.returncode == 2 and "Python programs only" in out.stderr


def test_a_trace_after_a_session_records_as_the_first(tmp_path):
    # A tool id freed by a session is the next trace's: what the session switched off
    # (DISABLE) must not hide the trace's code.
    import probe
    from probe.engines.cpython import call as calls

    module, real = calls.load(str(PROGRAMS / "sum_even.py"))
    code = calls.compile_call("sum_even([1, 2, 3, 4])")
    first = calls.trace(module, real, code, max_steps=10**6).steps
    with probe.session("states", db=str(tmp_path / "s.duckdb"), include=[f"{PROGRAMS}/*"]):
        eval(code, module.__dict__)
    again = calls.trace(module, real, code, max_steps=10**6).steps
    assert again == first > 10
