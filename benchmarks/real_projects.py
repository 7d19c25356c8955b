"""Real projects' own test suites under coverage.py and under probe: the same numbers, file by
file, and what each costs.

    python benchmarks/real_projects.py [--python PATH] [--reps 1] [--only NAME ...] [--work DIR]

Each project's sdist is downloaded from PyPI (``pip download --no-binary :all:``), unpacked,
and its tests run with branch coverage three ways, in the same round: plain pytest,
``coverage run --branch -m pytest`` and ``probe run --branch -m pytest``, each reading the
project's own coverage settings. Their JSON reports are compared file by file (executed,
missing and excluded lines, executed and missing branches); the table says how many files
are identical, how many lines and branches differ, whether pytest's outcome line is the same,
and each tool's time as a ratio to the plain run. The exit status is 1 where any file
differs, so the script also serves as a test wherever PyPI can be reached.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tarfile
import time
from pathlib import Path

from ratios import compile_probe, settle

# name -> (version, directories put on sys.path: the project's importable code)
PROJECTS = {
    "toolz": ("1.2.0", ["."]),
    "boltons": ("26.2.0", ["."]),
    "more-itertools": ("11.2.1", ["."]),
    "cachetools": ("8.0.2", ["src"]),
    "six": ("1.17.0", ["."]),
}
PYTEST = ["-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:probe"]
KEYS = (
    "executed_lines", "missing_lines", "excluded_lines", "executed_branches", "missing_branches"
)  # fmt: skip


def fetch(name: str, version: str, python: str, work: Path) -> Path:
    """The unpacked sdist (downloaded once into ``work``)."""
    found = [p for p in work.glob("*.tar.gz") if _sdist_of(p, name, version)]
    if not found:
        subprocess.run(
            [python, "-m", "pip", "download", "--quiet", "--no-deps", "--no-binary", ":all:",
             "--dest", str(work), f"{name}=={version}"],
            check=True, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        found = [p for p in work.glob("*.tar.gz") if _sdist_of(p, name, version)]
    with tarfile.open(found[0]) as tar:
        top = tar.getnames()[0].split("/")[0]
        where = work / top
        if not where.exists():
            tar.extractall(work, filter="data")
    return where


def _sdist_of(path: Path, name: str, version: str) -> bool:
    stem = path.name.removesuffix(".tar.gz").lower().replace("_", "-")
    return stem == f"{name}-{version}".lower()


def _run(cmd: list[str], cwd: Path, env: dict[str, str]) -> tuple[float, str]:
    t0 = time.perf_counter()
    out = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - t0
    lines = [x for x in out.stdout.splitlines() if re.search(r"\d+ (passed|failed|error)", x)]
    outcome = re.sub(r" in [\d.]+s.*", "", lines[-1]) if lines else f"exit {out.returncode}"
    return elapsed, outcome.strip("= ")


def measure(python: str, where: Path, paths: list[str], reps: int) -> dict:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(str(where / p) for p in paths)}
    env.pop("PROBE_DB", None)
    db = where / ".probe-bench" / "probe.duckdb"
    data = where / ".coverage-bench"
    cmds = {
        "plain": [python, *PYTEST],
        "coverage.py": [python, "-m", "coverage", "run", "--branch", f"--data-file={data}",
                        *PYTEST],
        "probe": [python, "-m", "probe", "run", "-q", "--branch", "--db", str(db), *PYTEST],
    }  # fmt: skip
    times: dict[str, list[float]] = {k: [] for k in cmds}
    outcomes: dict[str, str] = {}
    for _ in range(reps):
        shutil.rmtree(db.parent, ignore_errors=True)
        data.unlink(missing_ok=True)
        for name, cmd in cmds.items():
            elapsed, outcomes[name] = _run(cmd, where, env)
            times[name].append(elapsed)
            settle(str(db))
    theirs = where / "coverage.json"
    subprocess.run(
        [python, "-m", "coverage", "json", "-q", f"--data-file={data}", "-o", str(theirs),
         "--fail-under=0"],
        cwd=where, env=env, check=True,
    )  # fmt: skip
    ours = subprocess.run(
        [python, "-m", "probe", "report", "coverage", "-f", "json", "--db", str(db),
         "--fail-under", "0"],
        cwd=where, env=env, capture_output=True, text=True, check=True,
    )  # fmt: skip
    return {
        "times": {k: statistics.median(v) for k, v in times.items()},
        "outcomes": outcomes,
        "diff": compare(json.loads(theirs.read_text())["files"], json.loads(ours.stdout)["files"]),
    }


def compare(theirs: dict, ours: dict) -> dict:
    """Files identical, lines and branches that differ, and what differs (for the notes)."""
    names = sorted(set(theirs) | set(ours))
    same, lines, branches, notes = 0, 0, 0, []
    for name in names:
        a, b = theirs.get(name), ours.get(name)
        if a is None or b is None:
            notes.append(f"{name}: only in {'probe' if a is None else 'coverage.py'}")
            continue
        differs = False
        for key in KEYS:
            x = {tuple(v) if isinstance(v, list) else v for v in a.get(key) or []}
            y = {tuple(v) if isinstance(v, list) else v for v in b.get(key) or []}
            if x != y:
                differs = True
                n = len(x ^ y)
                if "branch" in key:
                    branches += n
                else:
                    lines += n
                notes.append(f"{name}: {key} coverage.py-only {sorted(x - y)[:5]}, "
                             f"probe-only {sorted(y - x)[:5]}")  # fmt: skip
        same += not differs
    return {"files": len(names), "same": same, "lines": lines, "branches": branches,
            "notes": notes}  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--python", default=sys.executable, help="interpreter (with pytest, "
                        "coverage and probe installed)")  # fmt: skip
    parser.add_argument("--reps", type=int, default=1, help="rounds per configuration")
    parser.add_argument("--only", action="append", choices=sorted(PROJECTS), help="projects")
    parser.add_argument("--work", default=str(Path.home() / ".cache" / "probe-real-projects"),
                        help="where sdists are downloaded and unpacked")  # fmt: skip
    args = parser.parse_args()
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    compile_probe(args.python)
    version = subprocess.run(
        [args.python, "-c", "import sys, coverage; print(sys.version.split()[0], "
         "coverage.__version__)"], capture_output=True, text=True, check=True,
    ).stdout.split()  # fmt: skip
    print(f"# Real projects' test suites, branch coverage: coverage.py {version[1]} and probe")
    print(f"Python {version[0]}, {os.cpu_count()} cores, {time.strftime('%Y-%m-%d')}, "
          f"median of {args.reps} round(s)\n")  # fmt: skip
    print("| project | files identical | lines / branches differing | tests | plain (s) "
          "| coverage.py | probe |")  # fmt: skip
    print("|---|---|---|---|---:|---:|---:|")
    notes: list[str] = []
    failed = False
    for name in args.only or PROJECTS:
        version, paths = PROJECTS[name]
        where = fetch(name, version, args.python, work)
        got = measure(args.python, where, paths, args.reps)
        d, t, o = got["diff"], got["times"], got["outcomes"]
        tests = "; ".join(f"{k}: {v}" for k, v in o.items())
        if len(set(o.values())) == 1:
            tests = "same"
        print(f"| {name} {version} | {d['same']}/{d['files']} | {d['lines']} / {d['branches']} "
              f"| {tests} | {t['plain']:.1f} | {t['coverage.py'] / t['plain']:.2f}x "
              f"| {t['probe'] / t['plain']:.2f}x |", flush=True)  # fmt: skip
        notes += [f"{name}: {n}" for n in d["notes"]]
        failed |= d["same"] != d["files"]
    for note in notes:
        print(f"- {note}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
