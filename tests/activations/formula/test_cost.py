"""The cost arithmetic: interval ranges of bounds and degrees, declarations, formatting."""

from __future__ import annotations

import math

import pytest
import sympy as sp

from activations import Param
from activations.formula.cost import (
    MAX_FORMULA_COST,
    declared_ranges,
    format_cost,
    polynomial_cost,
    sum_cost,
    value_range,
)

n, k = sp.Symbol("n", real=True), sp.Symbol("k", integer=True)


@pytest.mark.parametrize(
    ("expr", "expected"),
    [
        (sp.Integer(7), (7.0, 7.0)),
        (n, (1.0, 12.0)),
        (2 * n + 1, (3.0, 25.0)),
        (n - k, (1.0 - 5.0, 12.0 - 2.0)),
        (n * k, (2.0, 60.0)),
        ((n - 4) ** 2, (0.0, 64.0)),
        (sp.Symbol("m"), None),  # undeclared
        (sp.floor(n), None),  # not interval arithmetic
        (sp.Pow(n, -1), None),
    ],
)
def test_value_range(expr: sp.Expr, expected: tuple[float, float] | None) -> None:
    assert value_range(expr, {"n": (1.0, 12.0), "k": (2.0, 5.0)}) == expected


def test_value_range_overflow_is_unknown() -> None:
    assert value_range(n**64, {"n": (0.0, 1e300)}) is None


def test_declared_ranges() -> None:
    got = declared_ranges(
        {
            "a": 0.5,
            "n": Param(3, low=1, high=12, integer=True),
            "m": {"default": 4, "low": 2, "high": 8},
            "d": {"default": 4},
            "bad": {"low": "x"},
            "flag": True,
            "inf": math.inf,
        }
    )
    assert got == {"a": (0.5, 0.5), "n": (1.0, 12.0), "m": (2.0, 8.0), "d": (4.0, 4.0)}
    assert declared_ranges(["a", "n"]) == {}


def test_cost_rules_and_formatting() -> None:
    assert polynomial_cost(64, 1, 1) == 1 + 1 + 64 * 5
    assert sum_cost(256, 2, 10) == 1 + 2 + 256 * 11
    assert sum_cost(-3, 2, 10) == 3
    assert format_cost(525_315) == "525,315"
    assert format_cost(10**15) == "1e+15"
    assert MAX_FORMULA_COST == 10_000
