"""Hostile input to the Wasm engine: modules that reach for probe's own parts, a planted cache.

Each case once reached probe's memories, its host functions or its cache: invalid modules
became valid after rewriting, a guest linked to probe's event writer, a pickle in the cache
was unpickled and a compiled artifact copied over another entry ran as that entry.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import SAMPLES, run_probe

HOSTILE = {
    # memory.fill over a memory the module does not have: probe's probe memory, once rewritten
    "memory.wat": """(module (memory 1)
      (func (export "_start")
        (memory.fill 1 (i32.const 0) (i32.const 255) (i32.const 64))))""",
    # a global it does not have: probe's event cursor under -a trace
    "global.wat": """(module
      (func (export "_start") (global.set 0 (i32.const 0x7ffffff0))))""",
    # a function it does not have: probe's host function or event writer
    "function.wat": """(module
      (func (export "_start") (call 1 (i32.const 99999999) (i64.const -5))))""",
}


def probe(*args: str, cwd: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    return run_probe(
        sys.executable, *args, cwd=cwd, env={"PROBE_CACHE": str(cwd / "c"), **(env or {})}
    )


def runs(cwd: Path) -> list[dict]:
    out = probe("query", "--format", "json", "SELECT status FROM runs", cwd=cwd)
    return json.loads(out.stdout) if out.returncode == 0 else []


def one_line(got: subprocess.CompletedProcess, *words: str) -> None:
    assert got.returncode == 2, got.stderr
    assert len(got.stderr.strip().splitlines()) == 1, got.stderr
    assert "Traceback" not in got.stderr
    for word in words:
        assert word in got.stderr, got.stderr


@pytest.mark.parametrize("name", sorted(HOSTILE))
@pytest.mark.parametrize("analysis", ["coverage", "hotness", "trace", "memory"])
def test_an_invalid_module_is_refused_before_rewriting(
    tmp_path: Path, name: str, analysis: str
) -> None:
    (tmp_path / name).write_text(HOSTILE[name])
    one_line(probe("run", "-a", analysis, name, cwd=tmp_path), "invalid module")
    assert runs(tmp_path) == []  # nothing ran, nothing forged


@pytest.mark.parametrize("analysis", ["coverage", "trace", "calls"])
@pytest.mark.parametrize("name", ["flush", "hit"])
def test_a_guest_may_not_import_probes_host_functions(
    tmp_path: Path, analysis: str, name: str
) -> None:
    params = "(param i32 i64)" if name == "hit" else ""
    args = "(i32.const 0) (i64.const 0)" if name == "hit" else ""
    (tmp_path / "imp.wat").write_text(
        f'(module (import "probe" "{name}" (func $f {params}))'
        f'  (func (export "_start") (call $f {args})))'
    )
    one_line(probe("run", "-a", analysis, "imp.wat", cwd=tmp_path), f'"probe" "{name}"')
    assert runs(tmp_path) == []


def _entries(cwd: Path, suffix: str) -> list[Path]:
    return sorted((cwd / "c" / "wasm").glob(f"*{suffix}"))


def _blocks(cwd: Path) -> int:
    out = probe(
        "query",
        "--format",
        "json",
        "SELECT count(*) AS n FROM counts JOIN sites USING (run_id, site_id) "
        "WHERE run_id = (SELECT max_by(run_id, started_at) FROM runs)",
        cwd=cwd,
    )
    return json.loads(out.stdout)[0]["n"]


def test_cache_entries_copied_over_others_are_not_trusted(tmp_path: Path) -> None:
    shutil.copy(SAMPLES / "wasm" / "fib.wat", tmp_path)
    shutil.copy(SAMPLES / "wasm" / "echo.wasm", tmp_path)
    assert probe("run", "-q", "--invoke", "fib", "fib.wat", "10", cwd=tmp_path).returncode == 0
    fib_code = set(_entries(tmp_path, ".cwasm"))
    fib_rewrite = set(_entries(tmp_path, ".rewrite"))
    assert probe("run", "-q", "echo.wasm", "x", cwd=tmp_path).returncode == 0
    expected = _blocks(tmp_path)
    [echo_code] = set(_entries(tmp_path, ".cwasm")) - fib_code
    [echo_rewrite] = set(_entries(tmp_path, ".rewrite")) - fib_rewrite
    # fib's compiled code and rewritten module put in echo's place: native code of another
    # module, and sites that are not echo's
    shutil.copy(next(iter(fib_code)), echo_code)
    shutil.copy(next(iter(fib_rewrite)), echo_rewrite)
    got = probe("run", "echo.wasm", "x", cwd=tmp_path)
    assert got.returncode == 0 and "arg 1: x" in got.stdout, got.stderr
    assert _blocks(tmp_path) == expected
    # a truncated entry, and a pickle where the rewritten module was kept before, are misses
    echo_rewrite.write_bytes(echo_rewrite.read_bytes()[:100])
    (tmp_path / "c" / "wasm" / "rewrite.pickle").write_bytes(b"cos\nsystem\n(S'touch planted'\ntR.")
    assert probe("run", "-q", "echo.wasm", "x", cwd=tmp_path).returncode == 0
    assert _blocks(tmp_path) == expected
    assert not (tmp_path / "planted").exists()


def test_the_cache_is_the_users_own_whatever_the_umask(tmp_path: Path) -> None:
    shutil.copy(SAMPLES / "wasm" / "fib.wat", tmp_path)
    script = (
        "import os, sys; os.umask(0); from probe.cli import main; "
        "sys.argv = ['probe', 'run', '-q', '--invoke', 'fib', 'fib.wat', '5']; main()"
    )
    env = {k: v for k, v in os.environ.items() if k != "PROBE_DB"}
    env["PROBE_CACHE"] = str(tmp_path / "c")
    got = subprocess.run(
        [sys.executable, "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert got.returncode == 0, got.stderr
    for folder in (tmp_path / "c", tmp_path / "c" / "wasm"):
        assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    entries = list((tmp_path / "c" / "wasm").iterdir())
    assert entries
    for entry in entries:
        assert stat.S_IMODE(entry.stat().st_mode) == 0o600


def test_a_cache_others_can_write_is_not_used(tmp_path: Path) -> None:
    shutil.copy(SAMPLES / "wasm" / "fib.wat", tmp_path)
    (tmp_path / "c" / "wasm").mkdir(parents=True)
    os.chmod(tmp_path / "c" / "wasm", 0o777)
    got = probe("run", "--invoke", "fib", "fib.wat", "10", cwd=tmp_path)
    assert got.returncode == 0 and got.stdout.strip() == "55"
    assert "not caching" in got.stderr and "written by others" in got.stderr
    assert list((tmp_path / "c" / "wasm").iterdir()) == []
