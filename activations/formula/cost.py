"""The total evaluation cost of a formula, estimated at parse time, and its bound.

Each ``sum()`` is limited to :data:`~activations.formula.parser.MAX_TERMS` terms and each
polynomial to degree :data:`~activations.formula.parser.MAX_DEGREE`, but nesting multiplies:
``sum(k,1,256,sum(j,1,256,sum(i,1,256,x*k*j*i)))`` has 256³ ≈ 16.7 M terms. The parser therefore
estimates, bottom-up as it reads the text, the *cost* of every sub-expression, the number of
element-wise operations one evaluation performs (every operation of the compiled function runs on
the whole tensor, so this is also the number of tensor operations and, under autograd, of saved
intermediates):

* a number, ``x``, ``pi``, a parameter or a sum index costs 1;
* an operator or a one-argument function costs 1 plus the cost of its operands:
  ``cost(a + b) = 1 + cost(a) + cost(b)``, ``cost(sin(t)) = 1 + cost(t)``;
* a polynomial of degree ``n`` costs ``cost(φ_n(t)) = 1 + cost(n) + n·(cost(t) + 4)``: sympy
  writes ``P_n(t)`` for a numeric ``n`` as about ``n/2`` monomials ``c·t^j``, each evaluating
  ``t`` again, and a symbolic degree runs the three-term recurrence, about 5 operations per
  degree; ``n·(cost(t) + 4)`` bounds both. Composed polynomials multiply: the cost is at least
  the composed degree (``legendre(64, legendre(64, x))`` has degree 4096 and costs 20 866);
* ``cost(sum(k, a, b, T)) = 1 + cost(a) + cost(b) + N·(cost(T) + 1)`` with ``N = b − a + 1``
  terms.

A degree or a sum bound that is not a number takes the largest value it can have: a parameter
declared with a range (a :class:`~activations.registry.Param`, ``{default, low, high}`` or a
fixed number) counts at its ``high``, a sum index at its sum's upper bound, anything else at the
cap the compiled function enforces (``MAX_DEGREE``, ``MAX_TERMS``). The estimate is therefore an
upper bound of what any evaluation within the declared ranges does.

The parser refuses a formula as soon as a part of it costs more than :data:`MAX_FORMULA_COST`,
before sympy builds that part (building ``legendre`` nested five deep takes sympy over a minute),
and names the smallest part over the bound.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable, Mapping
from typing import Any

import sympy as sp

__all__ = [
    "MAX_FORMULA_COST",
    "POLYNOMIAL_STEP_COST",
    "Range",
    "declared_ranges",
    "format_cost",
    "node_cost",
    "polynomial_cost",
    "sum_cost",
    "value_range",
]

#: Largest total cost (element-wise operations per evaluation, see the module docstring) a formula
#: may have. Measured: the costliest registered activation is ``hermite`` at 2 037 (``legendre``,
#: ``chebyshev`` 2 013; their ``degree ≤ 12``), a 256-term Fourier series
#: ``x + a*sum(k,1,256,k**(-p)*sin(k*w*x))`` costs 3 079; so the bound is ~5 times the registry
#: and ~3 times a series at the ``MAX_TERMS`` cap. One unit takes 0.3–1.2 ms to evaluate on a
#: 2²⁰-element float32 tensor on one CPU thread and 0.4–2 ms of the symbolic audit: formulas
#: costing just under 10 000 (double sums, composed polynomials) evaluated in 3–8 s and audited in
#: 3.5–9 s. Refused: ``legendre(64, legendre(64, x))`` (20 866: 20 s per evaluation on that
#: tensor, 15 s to audit), ``legendre(64, legendre(64, legendre(64, x)))`` (≈ 1.3·10⁶, audit
#: > 40 s) and three nested 256-term sums (≈ 1.3·10⁸, training hangs).
MAX_FORMULA_COST = 10_000
#: Operations per degree of a polynomial besides re-evaluating its argument (see above).
POLYNOMIAL_STEP_COST = 4

#: A closed interval ``(low, high)`` of values.
Range = tuple[float, float]


def node_cost(*operands: int) -> int:
    """``1 + Σ cost(operand)``: one operation on already computed operands."""
    return 1 + sum(operands)


def polynomial_cost(degree: int, degree_cost: int, arg_cost: int) -> int:
    """``cost(φ_n(t)) = 1 + cost(n) + n·(cost(t) + 4)`` for the largest degree ``n``."""
    return 1 + degree_cost + max(degree, 0) * (arg_cost + POLYNOMIAL_STEP_COST)


def sum_cost(terms: int, bounds_cost: int, body_cost: int) -> int:
    """``cost(Σ_{k=a}^{b} T) = 1 + cost(a) + cost(b) + N·(cost(T) + 1)`` for ``N`` terms."""
    return 1 + bounds_cost + max(terms, 0) * (body_cost + 1)


def format_cost(cost: int) -> str:
    """``12,345`` (or ``1.2e+15`` past a trillion)."""
    return f"{cost:,}" if cost < 10**12 else f"{float(cost):.2g}"


def _declaration_range(decl: Any) -> Range | None:
    if isinstance(decl, bool):
        return None
    if isinstance(decl, numbers.Real):
        low = high = decl
    elif isinstance(decl, Mapping):
        default = decl.get("default")
        low, high = decl.get("low", default), decl.get("high", default)
    else:  # a Param, or anything with the same fields
        low, high = getattr(decl, "low", None), getattr(decl, "high", None)
    try:
        lo, hi = float(low), float(high)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    if not (math.isfinite(lo) and math.isfinite(hi) and lo <= hi):
        return None
    return lo, hi


def declared_ranges(params: Iterable[str] | Mapping[str, Any]) -> dict[str, Range]:
    """The value range of every parameter whose declaration gives one.

    Args:
        params: Parameter names (no ranges), or a mapping from names to declarations: a number
            (a fixed value ``[v, v]``), a :class:`~activations.registry.Param` or a mapping
            ``{default, low, high}`` (``[low, high]``, each defaulting to ``default``).

    Returns:
        ``{name: (low, high)}`` for the declarations that give finite ``low ≤ high``.
    """
    if not isinstance(params, Mapping):
        return {}
    out: dict[str, Range] = {}
    for name, decl in params.items():
        found = _declaration_range(decl)
        if found is not None:
            out[str(name)] = found
    return out


def _mul_range(a: Range, b: Range) -> Range:
    products = [p if math.isfinite(p) else math.inf for p in (u * v for u in a for v in b)]
    return min(products), max(products)


def value_range(expr: sp.Basic, ranges: Mapping[str, Range]) -> Range | None:
    """Interval arithmetic: the range of a sympy expression free of ``x``, or ``None``.

    Numbers are exact; a symbol takes its range from ``ranges`` (by name); ``+``, ``·`` and
    powers with a constant non-negative integer exponent combine ranges. Anything else (an
    unknown symbol, a function, a negative or symbolic power) gives ``None``: unknown.
    """
    if expr.is_number:
        try:
            v = float(expr)  # type: ignore[arg-type]
        except (TypeError, ValueError):
            return None
        return (v, v) if math.isfinite(v) else None
    if isinstance(expr, sp.Symbol):
        return ranges.get(expr.name)
    if isinstance(expr, (sp.Add, sp.Mul)):
        parts = [value_range(a, ranges) for a in expr.args]
        if any(p is None for p in parts):
            return None
        out = parts[0]
        for p in parts[1:]:
            assert out is not None and p is not None
            out = (out[0] + p[0], out[1] + p[1]) if isinstance(expr, sp.Add) else _mul_range(out, p)
        return out if out is not None and all(map(math.isfinite, out)) else None
    if isinstance(expr, sp.Pow) and expr.exp.is_Integer and 0 <= int(expr.exp) <= 64:
        base = value_range(expr.base, ranges)
        if base is None:
            return None
        e = int(expr.exp)
        try:
            ends = [base[0] ** e, base[1] ** e]
        except OverflowError:
            return None
        low = 0.0 if e % 2 == 0 and base[0] < 0 < base[1] else min(ends)
        return low, max(ends)
    return None
