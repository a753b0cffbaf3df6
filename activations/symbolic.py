"""Compatibility facade: the formula and audit API under its historical name.

The code lives in :mod:`activations.formula` (the safe parser in
:mod:`activations.formula.parser`, the compiler and :func:`register_formula` in
:mod:`activations.formula.compiler`) and :mod:`activations.audit`. This module holds no logic: it
re-exports their public names so that ``activations.symbolic.register_formula(...)`` (the
README), ``from activations.symbolic import audit`` and the other existing imports keep working.
New code should import from the modules above.

Only the names are shared: rebinding one here (``symbolic.MAX_GRID = ...``) does not change the
value the defining module uses.
"""

from __future__ import annotations

from .audit import (
    LARGE_SLOPE,
    MAX_GRID,
    SLOPE_AT_ZERO_TOLERANCE,
    AuditResult,
    audit,
    audit_formula,
    oscillation_grid,
)
from .formula import (
    FUNCTIONS,
    MAX_DEGREE,
    MAX_DEPTH,
    MAX_FORMULA_COST,
    MAX_LENGTH,
    MAX_TERMS,
    Closure,
    Env,
    FormulaError,
    X,
    compile_expr,
    compile_formula,
    expand_sums,
    formula_cost,
    parse_formula,
    register_formula,
    spec_expr,
)

__all__ = [
    "FUNCTIONS",
    "LARGE_SLOPE",
    "MAX_DEGREE",
    "MAX_DEPTH",
    "MAX_FORMULA_COST",
    "MAX_GRID",
    "MAX_LENGTH",
    "MAX_TERMS",
    "SLOPE_AT_ZERO_TOLERANCE",
    "AuditResult",
    "Closure",
    "Env",
    "FormulaError",
    "X",
    "audit",
    "audit_formula",
    "compile_expr",
    "compile_formula",
    "expand_sums",
    "formula_cost",
    "oscillation_grid",
    "parse_formula",
    "register_formula",
    "spec_expr",
]
