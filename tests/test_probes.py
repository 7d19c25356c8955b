"""The probe model: probe sets merge and deduplicate; scopes match files like coverage.py."""

from __future__ import annotations

import os

import pytest

from probe.analyses.coverage import Coverage
from probe.probes import Kind, Probe, ProbeSet, Scope, Site


def test_analyses_asking_for_the_same_sites_share_one_probe() -> None:
    events = frozenset({"line", "branch"})
    probes = ProbeSet.of([*Coverage(branch=True).probes(events), *Coverage().probes(events)])
    assert len(probes) == 2
    assert probes.kind_for("line") is Kind.FLAG and probes.kind_for("branch") is Kind.FLAG


def test_the_stronger_kind_wins() -> None:
    site = Site("line", "a.py", line=3)
    probes = ProbeSet.of(
        [
            Probe("line", Kind.FLAG),
            Probe("line", Kind.COUNT),
            Probe("line", Kind.FLAG, site),
            Probe("line", Kind.FLAG, site),
        ]
    )
    assert probes.kind_for("line") is Kind.COUNT
    assert len(probes) == 2 and Probe("line", Kind.FLAG, site) in list(probes)


def test_unknown_events_are_refused() -> None:
    with pytest.raises(ValueError, match="unknown probe event"):
        Probe("lines")


def test_scope(tmp_path) -> None:
    src = tmp_path / "src"
    inside = str(src / "pkg" / "mod.py")
    outside = str(tmp_path / "other.py")
    assert Scope().matches(inside) and not Scope().narrowed()
    assert Scope(source=(str(src),)).matches(inside)
    assert not Scope(source=(str(src),)).matches(outside)
    assert not Scope(omit=("*/pkg/*",)).matches(inside)
    assert Scope(include=("*/pkg/*",)).matches(inside)
    assert not Scope(include=("*/pkg/*",)).matches(outside)
    here = os.getcwd()
    try:
        os.chdir(tmp_path)
        assert Scope(include=("src/pkg/*",)).matches(inside)
    finally:
        os.chdir(here)
