"""The benchmarks' one table: each configuration's median time over the plain run's, per row
(a program or a kernel), and the median of those ratios, as Markdown."""

from __future__ import annotations

import statistics
import subprocess
import time
from pathlib import Path

Times = dict[str, dict[str, list[float]]]  # row -> configuration -> seconds of each round


def table(
    times: Times,
    label: str = "program",
    extra: tuple[str, dict[str, str]] | None = None,
    base_digits: int = 2,
    unit: str = "s",
) -> str:
    """The table of ``times`` against their "plain" configuration; ``extra``: a last column
    (its heading, and its cell per row). ``unit``: what the plain column counts."""
    configs = [c for c in next(iter(times.values())) if c != "plain"]
    tail = f" {extra[0]} |" if extra else ""
    lines = [
        f"| {label} | plain ({unit}) | " + " | ".join(configs) + " |" + tail,
        "|---|---:|" + "---:|" * (len(configs) + bool(extra)),
    ]
    ratios: dict[str, list[float]] = {c: [] for c in configs}
    for row, by_config in times.items():
        base = statistics.median(by_config["plain"])
        cells = []
        for c in configs:
            r = statistics.median(by_config[c]) / base
            ratios[c].append(r)
            cells.append(f"{r:.2f}x")
        cell = f" {extra[1].get(row, '')} |" if extra else ""
        lines.append(f"| {row} | {base:.{base_digits}f} | " + " | ".join(cells) + " |" + cell)
    medians = " | ".join(f"**{statistics.median(ratios[c]):.2f}x**" for c in configs)
    lines.append("| **median** | | " + medians + " |" + (" |" if extra else ""))
    return "\n".join(lines)


def compile_probe(python: str) -> None:
    """Write probe's bytecode for ``python``, as installing a wheel does, before timing it: an
    editable install under PYTHONDONTWRITEBYTECODE (as on CI machines) would otherwise compile
    probe's modules from source at every start (~30 ms), a cost no installed copy pays."""
    code = (
        "import compileall, os, probe; "
        "compileall.compile_dir(os.path.dirname(probe.__file__), quiet=2)"
    )
    subprocess.run([python, "-c", code], check=True, stdout=subprocess.DEVNULL)


def settle(db: str) -> None:
    """Wait until probe's detached ingest has stored every run of ``db``: it must not share
    the machine with the next measurement (it would slow whichever command comes next)."""
    spool = Path(f"{db}.spool")
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        if not spool.exists() or not [p for p in spool.iterdir() if p.is_dir()]:
            return
        time.sleep(0.02)
