"""Tests run by pytest under probe: pytest's assertion rewriter compiles this module, and its
own branches (a loop, an if, a parametrized test) must be measured as coverage.py measures
them."""

import pytest


def classify(x):
    if x > 0:
        return "pos"
    elif x < 0:
        return "neg"
    return "zero"


def test_pos():
    assert classify(1) == "pos"


def test_neg():
    for x in (-1, -2):
        assert classify(x) == "neg", x


@pytest.mark.parametrize("x", [3, 4])
def test_many(x):
    if x > 3:
        assert classify(x) == "pos"
