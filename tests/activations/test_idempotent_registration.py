"""Formula registration is idempotent, and a name is never silently given a second meaning.

Every test runs against the registry under both of its names: the installed ``activations`` and
the tool's shadow-proof ``loran_search.activations`` (one registry, issue 22).
"""

from __future__ import annotations

import importlib
from types import ModuleType

import pytest

pytestmark = pytest.mark.usefixtures("scratch_registry")

WAVY = "x + a*x*sin(w*x)"
PARAMS = {"a": {"default": 0.01, "low": 1e-4, "high": 0.1, "log": True}, "w": 10.0}


@pytest.fixture(params=["activations", "loran_search.activations"])
def registry(request: pytest.FixtureRequest) -> ModuleType:
    """The registry package under one of its two import names."""
    return importlib.import_module(request.param)


def test_the_same_definition_again_returns_the_registered_entry(registry: ModuleType) -> None:
    first = registry.register_formula("scratch_idem", WAVY, PARAMS, family="custom")
    again = registry.register_formula("scratch_idem", WAVY, dict(PARAMS), family="custom")
    assert again is first and registry.get_spec("scratch_idem") is first
    # the same formula spelt otherwise (sympy orders the terms) is the same definition
    assert registry.register_formula("scratch_idem", "a*x*sin(w*x) + x", PARAMS) is first


@pytest.mark.parametrize(
    ("expr", "params", "family", "differs"),
    [
        ("x + a*x*cos(w*x)", PARAMS, "custom", "formula"),
        (WAVY, {**PARAMS, "w": 20.0}, "custom", "parameters"),
        (WAVY, PARAMS, "other", "family"),
    ],
)
def test_a_different_definition_is_refused_with_both_and_the_fix(
    registry: ModuleType, expr: str, params: dict, family: str, differs: str
) -> None:
    registry.register_formula("scratch_idem", WAVY, PARAMS)
    with pytest.raises(registry.ActivationError) as err:
        registry.register_formula("scratch_idem", expr, params, family=family)
    msg = str(err.value)
    assert "'scratch_idem' is already registered by module '<formula>'" in msg
    assert f"f(x) = {WAVY} (family custom" in msg and f"f(x) = {expr} (family {family}" in msg
    assert f"differs in its {differs}" in msg
    assert "unregister('scratch_idem')" in msg and "force=True" in msg
    assert registry.get_spec("scratch_idem").expr == WAVY  # nothing changed
    replaced = registry.register_formula("scratch_idem", expr, params, family=family, force=True)
    assert registry.get_spec("scratch_idem") is replaced and replaced.family == family


def test_a_formula_never_takes_a_registered_function_name(registry: ModuleType) -> None:
    with pytest.raises(registry.ActivationError, match="differs in its kind"):
        registry.register_formula("identity", "x", {}, family="baseline")


def test_find_spec_answers_without_raising(registry: ModuleType) -> None:
    assert registry.find_spec("scratch_nowhere") is None
    assert registry.find_spec("sinter") is registry.get_spec("sinter")  # built-ins are loaded
    spec = registry.register_formula("scratch_found", "x + a*x**2", {"a": 0.1})
    assert registry.find_spec("scratch_found") is spec
