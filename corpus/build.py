"""A corpus build: every (program, input) of a data set traced in isolation, its renderings
written as records.

Jobs go to workers (``worker.py``): local processes, ``workers`` of them, or Ray tasks on an
existing cluster (``ray``: ``auto`` or an address), each task a batch of jobs run by a
worker process of its own, so a Ray build isolates exactly as a local one and writes the
same records. Records are written in parts as jobs finish:

    OUT/parquet/format=FORMAT/part-NNNNNN.parquet   (hive-partitioned by format)
    OUT/jsonl/part-NNNNNN.jsonl                      (the same rows; the build's ledger)

A part's Parquet files are written before its JSONL file, each renamed into place whole, so
``resume`` trusts the JSONL parts: a job with rows there is done; Parquet files of a part
without its JSONL (a build killed between the two) are removed and the job runs again.
"""

from __future__ import annotations

import json
import os
import queue
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from probe.errors import UsageError

from .inputs import Task, read

FORMATS = ("ldb", "semcoder", "traced", "codeexecutor", "jsonl")
OUTCOMES = ("ok", "exception", "timeout", "memory", "step_cap", "crash")
EFFICIENCY = ("perf", "callgrind", "time", "none")
# Jobs per part at most (PROBE_CORPUS_PART_JOBS: smaller parts, to test resuming).
PART_JOBS = int(os.environ.get("PROBE_CORPUS_PART_JOBS", "200"))
PART_SECONDS = 10.0  # and a part at least this often
RAY_BATCH = 64  # jobs per Ray task

COLUMNS = (
    "task_id",
    "input",
    "call",
    "format",
    "text",
    "outcome",
    "result",
    "exception",
    "steps",
    "efficiency",
    "efficiency_value",
    "labels",
    "wall_s",
)


@dataclass
class Options:
    formats: Sequence[str] = ("ldb", "semcoder", "traced")
    workers: int = 2
    timeout: float = 10.0
    memory: int | None = 1024  # MiB
    max_steps: int = 10_000
    level: str = "block"
    efficiency: str | None = None  # None: perf where the CPU counts, else time
    resume: bool = False
    ray: str | None = None


@dataclass
class Summary:
    jobs: int = 0  # in the data set
    done_before: int = 0  # skipped by --resume
    ran: int = 0
    outcomes: Counter = field(default_factory=Counter)
    causes: Counter = field(default_factory=Counter)  # failures by their first line
    skipped_asserts: int = 0
    seconds: float = 0.0
    efficiency: str = "none"

    def text(self) -> str:
        rate = self.ran / self.seconds if self.seconds else 0.0
        lines = [
            f"{self.ran:,} inputs traced in {self.seconds:.1f} s ({rate:.1f}/s)"
            + (f", {self.done_before:,} done before" if self.done_before else "")
            + f"; efficiency: {self.efficiency}",
            "outcomes: " + ", ".join(f"{k} {v:,}" for k, v in self.outcomes.most_common()),
        ]
        if self.skipped_asserts:
            lines.append(f"{self.skipped_asserts:,} asserts were not single calls: left out")
        failed = [(c, n) for c, n in self.causes.most_common(10)]
        if failed:
            lines.append("failures by cause:")
            lines += [f"  {n:>6,}  {c}" for c, n in failed]
        return "\n".join(lines)


def build(sources: Sequence[str], out: str, options: Options, log: TextIO = sys.stderr) -> Summary:
    """Trace every (program, input) of the data sets ``sources`` into ``out``."""
    for fmt in options.formats:
        if fmt not in FORMATS:
            raise UsageError(f"--format {fmt!r}: use {', '.join(FORMATS)}")
    if options.workers < 1:
        raise UsageError("--workers must be at least 1")
    efficiency = options.efficiency or _default_efficiency()
    if efficiency not in EFFICIENCY:
        raise UsageError(f"--efficiency {efficiency!r}: use {', '.join(EFFICIENCY)}")
    if efficiency == "callgrind":
        # Not yet: callgrind's dumps, asked for from a worker's forked children, read 0.
        raise UsageError(
            "--efficiency callgrind is not available in corpus builds yet: use time or perf "
            "(probe.measure and probe run --counters-backend callgrind count exactly)"
        )
    tasks = [t for path in sources for t in read(path)]
    root = Path(out)
    summary = Summary(efficiency=efficiency)
    summary.skipped_asserts = sum(t.skipped for t in tasks)
    done = _done(root) if options.resume else set()
    if not options.resume and (root / "jsonl").exists() and any((root / "jsonl").iterdir()):
        raise UsageError(f"{out} holds a build already: --resume to go on with it")
    jobs = [_job(t, i, call, options) for t in tasks for i, call in enumerate(t.calls)]
    summary.jobs = len(jobs)
    todo = [j for j in jobs if (j["task_id"], j["input"]) not in done]
    summary.done_before = len(jobs) - len(todo)
    writer = _Writer(root, options.formats)
    started = time.perf_counter()
    with _Progress(len(todo), log) as progress:
        run = _on_ray if options.ray else _locally
        for job, answer in run(todo, options, efficiency):
            writer.add(job, answer)
            summary.ran += 1
            summary.outcomes[answer["outcome"]] += 1
            if answer["outcome"] != "ok":
                cause = (answer.get("exception") or answer["outcome"]).split("\n")[0][:120]
                summary.causes[f"{answer['outcome']}: {cause}"] += 1
            progress.advance()
    writer.close()
    summary.seconds = time.perf_counter() - started
    return summary


def _default_efficiency() -> str:
    from probe.engines.perf.region import Region

    try:
        region = Region(["instructions"])
    except OSError:
        return "time"
    try:
        return "time" if region.missing else "perf"
    finally:
        region.close()


def _job(task: Task, index: int, call: str, options: Options) -> dict[str, Any]:
    return {
        "task_id": task.task_id,
        "input": index,
        "call": call,
        "program": task.program,
        "formats": list(options.formats),
        "timeout": options.timeout,
        "memory": options.memory,
        "max_steps": options.max_steps,
        "level": options.level,
    }


# -- running jobs -----------------------------------------------------------------------------


def worker_command(efficiency: str) -> tuple[list[str], dict[str, str]]:
    """How a worker process starts."""
    # A fixed hash seed: sets and dicts of strings iterate alike in every worker and run.
    env = dict(os.environ, PROBE_EFFICIENCY=efficiency, PYTHONHASHSEED="0")
    return [sys.executable, "-m", "probe.corpus.worker"], env


class Worker:
    """A worker process: jobs in, answers out, one at a time; restarted if it dies."""

    def __init__(self, efficiency: str) -> None:
        self.efficiency = efficiency
        self.proc: subprocess.Popen | None = None

    def ask(self, job: dict[str, Any]) -> dict[str, Any]:
        for _ in range(2):
            if self.proc is None or self.proc.poll() is not None:
                command, env = worker_command(self.efficiency)
                self.proc = subprocess.Popen(
                    command,
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.DEVNULL,
                    env=env,
                    text=True,
                )
            try:
                self.proc.stdin.write(json.dumps(job) + "\n")  # type: ignore[union-attr]
                self.proc.stdin.flush()  # type: ignore[union-attr]
                line = self.proc.stdout.readline()  # type: ignore[union-attr]
            except (BrokenPipeError, OSError):
                line = ""
            if line:
                return json.loads(line)
            self.close()
        return {"outcome": "crash", "exception": "the worker process died on this input"}

    def close(self) -> None:
        if self.proc is not None:
            try:
                self.proc.stdin.close()  # type: ignore[union-attr]
                self.proc.wait(timeout=5)
            except (OSError, subprocess.TimeoutExpired):
                self.proc.kill()
            self.proc = None


def run_batch(jobs: list[dict[str, Any]], efficiency: str) -> list[dict[str, Any]]:
    """Jobs run one after another by one worker process (a Ray task's body)."""
    worker = Worker(efficiency)
    try:
        return [worker.ask(job) for job in jobs]
    finally:
        worker.close()


def _locally(
    jobs: list[dict[str, Any]], options: Options, efficiency: str
) -> Iterable[tuple[dict[str, Any], dict[str, Any]]]:
    todo: queue.Queue = queue.Queue()
    for job in jobs:
        todo.put(job)
    answers: queue.Queue = queue.Queue()
    stop = threading.Event()

    def serve() -> None:
        worker = Worker(efficiency)
        try:
            while not stop.is_set():
                try:
                    job = todo.get_nowait()
                except queue.Empty:
                    return
                answers.put((job, worker.ask(job)))
        finally:
            worker.close()

    threads = [
        threading.Thread(target=serve, daemon=True) for _ in range(min(options.workers, len(jobs)))
    ]
    for t in threads:
        t.start()
    try:
        for _ in range(len(jobs)):
            yield answers.get()
    finally:
        stop.set()
        for t in threads:
            t.join()


def _on_ray(
    jobs: list[dict[str, Any]], options: Options, efficiency: str
) -> Iterable[tuple[dict[str, Any], dict[str, Any]]]:
    try:
        import ray
    except ImportError:
        raise UsageError("--ray needs the ray package: pip install 'dynprobe[ray]'") from None
    _reachable(options.ray)
    try:
        ray.init(address=options.ray, logging_level="ERROR", log_to_driver=False)
    except (ConnectionError, RuntimeError, ValueError) as e:
        raise UsageError(f"--ray {options.ray}: can't connect: {str(e).splitlines()[0]}") from None
    try:
        task = ray.remote(num_cpus=1, max_retries=2)(run_batch)
        pending = {}
        for start in range(0, len(jobs), RAY_BATCH):
            batch = jobs[start : start + RAY_BATCH]
            pending[task.remote(batch, efficiency)] = batch
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1)
            for ref in ready:
                batch = pending.pop(ref)
                try:
                    answers = ray.get(ref)
                except ray.exceptions.RayError as e:
                    line = str(e).splitlines()[0]
                    answers = [{"outcome": "crash", "exception": f"ray: {line}"}] * len(batch)
                yield from zip(batch, answers, strict=True)
    finally:
        ray.shutdown()


def _reachable(address: str) -> None:
    """A HOST:PORT that answers, before Ray is asked: ray.init retries one that doesn't for
    minutes."""
    import socket

    if address == "auto" or ":" not in address:
        return
    host, _, port = address.removeprefix("ray://").rpartition(":")
    try:
        socket.create_connection((host, int(port)), timeout=5).close()
    except (OSError, ValueError) as e:
        raise UsageError(f"--ray {address}: nothing answers there: {e}") from None


# -- writing records --------------------------------------------------------------------------


def _done(root: Path) -> set[tuple[str, int]]:
    """Jobs with rows in a JSONL part; Parquet files of parts without one are removed."""
    done: set[tuple[str, int]] = set()
    parts = set()
    for path in sorted((root / "jsonl").glob("part-*.jsonl")):
        parts.add(path.stem)
        with open(path, encoding="utf-8") as f:
            for line in f:
                row = json.loads(line)
                done.add((row["task_id"], row["input"]))
    for path in (root / "parquet").glob("format=*/part-*.parquet"):
        if path.stem not in parts:
            path.unlink()
    return done


class _Writer:
    def __init__(self, root: Path, formats: Sequence[str]) -> None:
        self.root = root
        self.formats = formats
        self.rows: list[dict[str, Any]] = []
        self.jobs = 0
        self.last = time.perf_counter()
        existing = [int(p.stem.split("-")[1]) for p in (root / "jsonl").glob("part-*.jsonl")]
        self.part = max(existing, default=-1) + 1

    def add(self, job: dict[str, Any], answer: dict[str, Any]) -> None:
        texts = answer.get("texts") or {}
        for fmt in self.formats:
            self.rows.append(
                {
                    "task_id": job["task_id"],
                    "input": job["input"],
                    "call": job["call"],
                    "format": fmt,
                    "text": texts.get(fmt),
                    "outcome": answer["outcome"],
                    "result": answer.get("result"),
                    "exception": answer.get("exception"),
                    "steps": answer.get("steps"),
                    "efficiency": answer.get("efficiency"),
                    "efficiency_value": answer.get("efficiency_value"),
                    "labels": answer.get("labels") if fmt == "traced" else None,
                    "wall_s": answer.get("wall"),
                }
            )
        self.jobs += 1
        if self.jobs >= PART_JOBS or time.perf_counter() - self.last > PART_SECONDS:
            self.flush()

    def flush(self) -> None:
        if not self.rows:
            return
        import pyarrow as pa
        import pyarrow.parquet as pq

        name = f"part-{self.part:06d}"
        schema = pa.schema(
            [
                ("task_id", pa.string()),
                ("input", pa.int64()),
                ("call", pa.string()),
                ("format", pa.string()),
                ("text", pa.string()),
                ("outcome", pa.string()),
                ("result", pa.string()),
                ("exception", pa.string()),
                ("steps", pa.int64()),
                ("efficiency", pa.string()),
                ("efficiency_value", pa.float64()),
                ("labels", pa.string()),
                ("wall_s", pa.float64()),
            ]
        )
        for fmt in self.formats:
            rows = [r for r in self.rows if r["format"] == fmt]
            folder = self.root / "parquet" / f"format={fmt}"
            folder.mkdir(parents=True, exist_ok=True)
            table = pa.Table.from_pylist(rows, schema=schema)
            _whole(folder / f"{name}.parquet", lambda p, t=table: pq.write_table(t, p))
        (self.root / "jsonl").mkdir(parents=True, exist_ok=True)
        text = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in self.rows)
        _whole(self.root / "jsonl" / f"{name}.jsonl", lambda p: Path(p).write_text(text, "utf-8"))
        self.rows.clear()
        self.jobs = 0
        self.part += 1
        self.last = time.perf_counter()

    def close(self) -> None:
        self.flush()


def _whole(path: Path, write: Callable[[str], object]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    write(str(tmp))
    os.replace(tmp, path)


class _Progress:
    """A bar with rate and ETA on a terminal (rich); plain lines every 5 s otherwise."""

    def __init__(self, total: int, log: TextIO) -> None:
        self.total, self.log, self.done = total, log, 0
        self.started = self.shown = time.perf_counter()
        self.bar: Any = None
        if log.isatty():
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TaskProgressColumn,
                TextColumn,
                TimeRemainingColumn,
            )

            self.bar = Progress(
                TextColumn("tracing"),
                BarColumn(),
                MofNCompleteColumn(),
                TaskProgressColumn(),
                TextColumn("{task.fields[rate]}"),
                TimeRemainingColumn(),
                transient=False,
            )
            self.task = self.bar.add_task("trace", total=total, rate="")

    def __enter__(self) -> _Progress:
        if self.bar is not None:
            self.bar.start()
        return self

    def advance(self) -> None:
        self.done += 1
        now = time.perf_counter()
        rate = self.done / max(now - self.started, 1e-9)
        if self.bar is not None:
            self.bar.update(self.task, advance=1, rate=f"{rate:.1f}/s")
        elif now - self.shown >= 5 or self.done == self.total:
            self.shown = now
            eta = (self.total - self.done) / rate if rate else 0
            print(
                f"probe: {self.done:,}/{self.total:,} inputs, {rate:.1f}/s, ETA {eta:.0f} s",
                file=self.log,
                flush=True,
            )

    def __exit__(self, *exc: object) -> None:
        if self.bar is not None:
            self.bar.stop()
