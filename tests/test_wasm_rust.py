"""Wasm coverage per source line for Rust: rustc's DWARF (wasm32-wasi, -g) read as clang's.

Needs a rustc with the wasm32-wasi standard library: Debian's (`rustc
libstd-rust-dev-wasm32`, which .ci/run installs) or rustup's with that target."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import run_probe

PROGRAM = """use std::env;

fn classify(n: u64) -> &'static str {
    if n % 15 == 0 {
        "fizzbuzz"
    } else if n % 5 == 0 {
        "buzz"
    } else if n % 3 == 0 {
        "fizz"
    } else {
        "number"
    }
}

fn main() {
    let args: Vec<String> = env::args().collect();
    let n: u64 = if args.len() > 1 { args[1].parse().unwrap_or(10) } else { 10 };
    let mut counts = [0u32; 4];
    for i in 1..=n {
        match classify(i) {
            "fizzbuzz" => counts[0] += 1,
            "buzz" => counts[1] += 1,
            "fizz" => counts[2] += 1,
            _ => counts[3] += 1,
        }
    }
    println!("{:?}", counts);
}
"""


def _rustc(work: Path) -> None:
    """count.wasm built by the first rustc here that can build for wasm32-wasi."""
    tried = []
    for rustc in dict.fromkeys(filter(None, [shutil.which("rustc"), "/usr/bin/rustc"])):
        if not os.path.exists(rustc):
            continue
        done = subprocess.run(
            [rustc, "--target", "wasm32-wasi", "-g", "-C", "opt-level=0", "count.rs"],
            cwd=work,
            capture_output=True,
            text=True,
        )
        if done.returncode == 0:
            return
        tried.append(f"{rustc}: {done.stderr.strip().splitlines()[0] if done.stderr else '?'}")
    pytest.skip(
        "no rustc here builds for wasm32-wasi (Debian: rustc libstd-rust-dev-wasm32): "
        + ("; ".join(tried) or "no rustc")
    )


def _lines(work: Path, arg: str) -> tuple[dict, str]:
    done = run_probe(sys.executable, "run", "-a", "coverage", "count.wasm", "--", arg, cwd=work)
    assert done.returncode == 0, done.stderr
    report = run_probe(sys.executable, "report", "coverage", "-f", "json", cwd=work)
    assert report.returncode == 0, report.stderr
    return json.loads(report.stdout)["files"], done.stdout


def test_rust_lines_that_ran(tmp_path: Path) -> None:
    (tmp_path / "count.rs").write_text(PROGRAM)
    _rustc(tmp_path)
    source = PROGRAM.splitlines()

    def line_of(text: str) -> int:
        (found,) = [k + 1 for k, line in enumerate(source) if line.strip() == text]
        return found

    few, out = _lines(tmp_path, "2")
    assert out.strip() == "[0, 0, 0, 2]"  # the program ran as under any WASI runtime
    # Only the program's file: the standard library's sources (/usr/src/rustc-*, or
    # /rustc/<hash>/ where they don't exist) are out by default, as wasi-libc's are.
    assert list(few) == ["count.rs"]
    ran, missed = set(few["count.rs"]["executed_lines"]), set(few["count.rs"]["missing_lines"])
    arms = [line_of(f'"{word}"') for word in ("fizzbuzz", "buzz", "fizz")]
    assert line_of('"number"') in ran and not ran & set(arms) and set(arms) <= missed
    assert line_of("fn main() {") in ran and line_of('println!("{:?}", counts);') in ran
    # rustc's mangled names, demangled: as the source names them, first lines as written
    functions = few["count.rs"]["functions"]
    assert functions["count::classify"] == line_of("fn classify(n: u64) -> &'static str {")
    assert functions["count::main"] == line_of("fn main() {")

    many, out = _lines(tmp_path, "30")
    assert out.strip() == "[2, 4, 8, 16]"
    more = set(many["count.rs"]["executed_lines"])
    assert set(arms) <= more and ran <= more
    # Every line of the two functions with code ran with 30, save where rustc gives a
    # line no instruction (the `} else if` lines): what's missed is outside them.
    body = range(line_of("fn classify(n: u64) -> &'static str {"), len(source) + 1)
    assert not {n for n in many["count.rs"]["missing_lines"] if n in body}


def test_names_demangled_unique_or_left_as_they_are() -> None:
    """Rust's legacy names and C++'s nested ones read as paths; a Rust hash stays where two
    instantiations would share a name, C++ overloads keep their mangled names, and what the
    reader doesn't know (a const member function, a plain C name) stays as it is."""
    from probe.engines.wasm.demangle import demangle_all

    names = {
        0: "_ZN5count8classify17ha0e86aa3df426594E",
        1: "_ZN5alloc7raw_vec11finish_grow17h49284ae8bdad23c2E",
        2: "_ZN5alloc7raw_vec11finish_grow17h11111ae8bdad23c2E",
        3: "_ZN50_$LT$T$u20$as$u20$core..convert..Into$LT$U$GT$$GT$4into17h0123456789abcdefE",
        4: "_ZN3foo3barEv",
        5: "_ZN3foo3barEi",
        6: "_ZN3foo5aloneEv",
        7: "_ZNK3foo3getEv",
        8: "main",
    }
    assert demangle_all(names) == {
        0: "count::classify",
        1: "alloc::raw_vec::finish_grow::h49284ae8bdad23c2",
        2: "alloc::raw_vec::finish_grow::h11111ae8bdad23c2",
        3: "<T as core::convert::Into<U>>::into",
        4: "_ZN3foo3barEv",
        5: "_ZN3foo3barEi",
        6: "foo::alone",
        7: "_ZNK3foo3getEv",
        8: "main",
    }
