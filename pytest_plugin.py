"""pytest plugin: ``pytest --probe coverage`` records the test session as one probe run.

Every event and every per-context count carries the test's node id (the
``context`` column), so SQL answers "which tests reach line X"; with
``--probe-counters`` each test is a counter region (``counters.region`` is
its node id), so SQL answers "which tests are slowest by instructions".
Code that runs outside any test (imports during collection) has no context.
Registered through the ``pytest11`` entry point; inert without ``--probe``.
"""

from __future__ import annotations

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
        self.session = Session(
            names,
            db=config.option.probe_db,
            source=config.option.probe_source,
            name="pytest " + " ".join(config.invocation_params.args),
        )
        self.span = Span("tests", counters)
        self.tests = 0

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_protocol(self, item: pytest.Item) -> Iterator[None]:
        self.tests += 1
        self.session.context_changed()
        with self.span.entered(item.nodeid):
            yield

    @pytest.hookimpl(tryfirst=True)
    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        from probe.engines import Outcome

        status = int(exitstatus)
        self.session.stop(Outcome("ok" if status == 0 else "error", status, None))

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        terminalreporter.write_line(
            f"probe: {self.tests} tests recorded as run {self.session.run_id} "
            f"in {self.session.db_path}"
        )


def pytest_configure(config: pytest.Config) -> None:
    if not config.option.probe:
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
