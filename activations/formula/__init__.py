"""Safe formulas in ``x``: the whitelist parser and the tree-walking compiler.

:mod:`activations.formula.parser` reads a formula with its own tokenizer and recursive-descent
parser into a sympy expression (never ``eval``/``sympify``), refusing formulas whose estimated
evaluation cost (:mod:`activations.formula.cost`) exceeds ``MAX_FORMULA_COST``;
:mod:`activations.formula.compiler` turns that expression into a torch or numpy function and
registers formula activations. The public names of both are re-exported here::

    from activations.formula import parse_formula, register_formula

    register_formula("wavy", "x + a*x*cos(w*x)", {"a": 1e-3, "w": 100.0})

The audit of an activation (``f(0)``, ``f'(0)``, Lipschitz estimate) is in :mod:`activations.audit`.
"""

from __future__ import annotations

from .compiler import (
    Closure,
    Env,
    compile_expr,
    compile_formula,
    expand_sums,
    register_formula,
    spec_expr,
)
from .parser import (
    FUNCTIONS,
    MAX_DEGREE,
    MAX_DEPTH,
    MAX_FORMULA_COST,
    MAX_LENGTH,
    MAX_TERMS,
    FormulaError,
    X,
    formula_cost,
    parse_formula,
)

__all__ = [
    "FUNCTIONS",
    "MAX_DEGREE",
    "MAX_DEPTH",
    "MAX_FORMULA_COST",
    "MAX_LENGTH",
    "MAX_TERMS",
    "Closure",
    "Env",
    "FormulaError",
    "X",
    "compile_expr",
    "compile_formula",
    "expand_sums",
    "formula_cost",
    "parse_formula",
    "register_formula",
    "spec_expr",
]
