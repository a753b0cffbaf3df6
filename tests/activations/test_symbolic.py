"""The compatibility facade ``activations.symbolic`` and the package's lazy re-exports."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import activations
import activations.audit as audit_module
import activations.formula as formula
import activations.symbolic as symbolic
from activations import get_activation


@pytest.mark.parametrize("name", symbolic.__all__)
def test_facade_reexports_the_defining_objects(name: str) -> None:
    home = audit_module if hasattr(audit_module, name) else formula
    assert getattr(symbolic, name) is getattr(home, name)


def test_facade_holds_no_logic() -> None:
    tree = ast.parse(Path(symbolic.__file__).read_text())
    kinds = {type(node) for node in tree.body}
    assert kinds <= {ast.Expr, ast.ImportFrom, ast.Assign}, kinds


@pytest.mark.usefixtures("scratch_registry")
def test_readme_register_formula_through_the_facade() -> None:
    symbolic.register_formula(
        "scratch_wavy_readme",
        "x + a*x*cos(w*x)",
        {"a": {"default": 1e-3, "low": 1e-6, "high": 0.1, "log": True}, "w": 100.0},
    )
    x = torch.linspace(-1, 1, 5, dtype=torch.float64)
    torch.testing.assert_close(
        get_activation("scratch_wavy_readme")(x), x + 1e-3 * x * torch.cos(100 * x)
    )


def test_package_lazy_reexports() -> None:
    assert activations.FormulaError is formula.FormulaError
    assert activations.parse_formula is formula.parse_formula
    assert activations.register_formula is formula.register_formula
    assert activations.AuditResult is audit_module.AuditResult
    # ``activations.audit`` is the audit module (the import system binds it there), callable as
    # the function it used to be.
    assert activations.audit is audit_module
    from activations import audit

    assert audit("sigmoid").to_dict() == audit_module.audit("sigmoid").to_dict()


def test_import_activations_does_not_import_sympy() -> None:
    code = (
        "import sys, activations; assert 'sympy' not in sys.modules; "
        "r = activations.audit('identity'); assert r.lipschitz == 1.0, r"
    )
    root = Path(activations.__file__).parents[1]
    subprocess.run([sys.executable, "-c", code], check=True, cwd=root)
