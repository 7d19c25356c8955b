"""pytest plugin: ``pytest --probe coverage`` records the test session as one probe run.

Every event and every per-context count carries the test's node id (the
``context`` column), so SQL answers "which tests reach line X"; with
``--probe-counters`` each test is a counter region (``counters.region`` is
its node id), so SQL answers "which tests are slowest by instructions".
Code that runs outside any test (imports during collection) has no context.
Python processes the tests start are measured into the run, pytest-xdist's workers too
(each test of theirs a context as well).
Registered through the ``pytest11`` entry point; inert without ``--probe``.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from typing import Any

import pytest


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("probe", "probe: record the tests with probe's analyses")
    group.addoption(
        "--probe",
        action="append",
        default=[],
        metavar="ANALYSIS",
        help="record the test session with this analysis (repeat or comma-separate)",
    )
    group.addoption(
        "--probe-db",
        default=None,
        metavar="PATH",
        help="database to record into (default: $PROBE_DB or .probe/probe.duckdb)",
    )
    group.addoption(
        "--probe-counters",
        default="",
        metavar="EVENTS",
        help="perf events counted around each test, comma-separated (e.g. instructions)",
    )
    group.addoption(
        "--probe-source",
        action="append",
        default=[],
        metavar="DIR",
        help="measure only code below DIR (default: the project's code, not installed packages)",
    )
    group.addoption(
        "--probe-branch",
        action="store_true",
        default=None,
        help="coverage: measure branch coverage too",
    )
    group.addoption(
        "--probe-fail-under",
        type=float,
        default=None,
        metavar="PERCENT",
        help="coverage: fail the session when the total is below PERCENT",
    )
    group.addoption(
        "--probe-show-missing",
        action="store_true",
        default=None,
        help="coverage: a Missing column in the table",
    )


class _Plugin:
    """The test session's recording (a Session), and the span each test runs in."""

    def __init__(self, config: pytest.Config) -> None:
        from probe.errors import UsageError
        from probe.recording import Session
        from probe.tracing import Span

        names = [n.strip() for arg in config.option.probe for n in arg.split(",") if n.strip()]
        counters = [e.strip() for e in config.option.probe_counters.split(",") if e.strip()]
        if counters:
            from probe.engines.perf.region import check_events

            try:
                check_events(counters)
            except UsageError as e:
                raise pytest.UsageError(f"--probe-counters: {e}") from None
        from probe import config as settings_of

        # The project's settings (coverage.py's too), under the options given here.
        self.settings = settings_of.load(str(config.invocation_params.dir)).with_options(
            {
                "branch": config.option.probe_branch,
                "source": tuple(config.option.probe_source),
                "fail_under": config.option.probe_fail_under,
                "show_missing": config.option.probe_show_missing,
            }
        )
        s = self.settings
        self.session = Session(
            names,
            db=config.option.probe_db,
            source=s["source"],
            include=s["include"],
            omit=s["omit"],
            exclude=s.exclusions(),
            partial=s["partial_branches"],
            name="pytest " + " ".join(config.invocation_params.args),
            options={"branch": s["branch"]},
        )
        self.span = Span("tests", counters)
        self.tests: set[str] = set()
        self.table: str | None = None  # coverage's, as pytest-cov prints it
        self.failure: str | None = None

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        self.tests.add(report.nodeid)  # here or in an xdist worker

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_protocol(self, item: pytest.Item) -> Iterator[None]:
        self.session.context_changed()
        with self.span.entered(item.nodeid):
            yield

    # trylast: after xdist's own, which ends the workers (their parts are then saved)
    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        from probe.engines import Outcome

        status = int(exitstatus)
        self.session.stop(Outcome("ok" if status == 0 else "error", status, None))
        if not any(a.name == "coverage" for a in self.session.analyses):
            return
        from probe.analyses.coverage import Coverage
        from probe.storage import Database

        coverage = Coverage(branch=self.settings["branch"], **self.settings.report_options())
        with Database(self.session.db_path) as db:
            self.table = coverage.report(db, self.session.run_id, "text")
        self.failure = coverage.failure()
        if self.failure and status == 0:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if self.table is not None:
            import platform

            where = f"platform {sys.platform}, python {platform.python_version()}"
            terminalreporter.write_sep("-", f"coverage: {where}")
            terminalreporter.write_line(self.table)
            if self.failure:
                terminalreporter.write_line(f"FAIL {self.failure}", red=True, bold=True)
        terminalreporter.write_line(
            f"probe: {len(self.tests)} tests recorded as run {self.session.run_id} "
            f"in {self.session.db_path}"
        )


class _Worker:
    """A pytest-xdist worker's tests, in a process that is a part of the session's run (its
    controller's ``Session`` put the run in the environment; see probe.subprocesses): each
    test is a context there, and the counts are added to the run when the worker ends."""

    def __init__(self, part: Any) -> None:
        from probe.tracing import Span

        self.part = part
        self.span = Span("tests")

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_protocol(self, item: pytest.Item) -> Iterator[None]:
        self.part.context_changed()
        with self.span.entered(item.nodeid):
            yield


def pytest_configure(config: pytest.Config) -> None:
    if not config.option.probe:
        return
    if hasattr(config, "workerinput"):  # an xdist worker: the controller records the session
        from probe import subprocesses

        part = subprocesses.recording()
        if part is not None:
            config.pluginmanager.register(_Worker(part), "probe-worker")
        return
    from probe.errors import ProbeError

    try:
        plugin = _Plugin(config)
        plugin.session.start()
    except ProbeError as e:
        raise pytest.UsageError(f"--probe: {e}") from None
    config.pluginmanager.register(plugin, "probe-plugin")
    config._probe_plugin = plugin  # type: ignore[attr-defined]


def pytest_unconfigure(config: pytest.Config) -> None:
    plugin = getattr(config, "_probe_plugin", None)
    if plugin is not None:
        plugin.session.stop()
