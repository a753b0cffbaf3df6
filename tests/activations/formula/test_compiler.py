"""The compiler (sympy tree → torch / numpy), sum expansion and register_formula."""

from __future__ import annotations

import math
import time
from typing import Any

import numpy as np
import pytest
import sympy as sp
import torch

import activations.symbolic as symbolic
from activations import ActivationError, Param, get_activation, list_activations
from activations.formula import (
    MAX_FORMULA_COST,
    MAX_TERMS,
    FormulaError,
    X,
    compile_expr,
    compile_formula,
    expand_sums,
    formula_cost,
    parse_formula,
    register_formula,
)


def test_sum_and_expansion() -> None:
    n = sp.Symbol("n", real=True)
    expr = parse_formula("sum(k, 1, n, x**k/k)", ["n"])
    assert isinstance(expr, sp.Sum)
    expanded = expand_sums(expr.xreplace({n: 3}))
    assert sp.simplify(expanded - (X + X**2 / 2 + X**3 / 3)) == 0
    # sympy's own doit() is wrong for hermite_prob(k, 0) with a symbolic k; expand_sums is not.
    he = expand_sums(parse_formula("sum(k, 1, 4, hermite(k, 0))"))
    assert he == 0 - 1 + 0 + 3


# -- compilation --------------------------------------------------------------------------------
FORMULAS = [
    ("x + a*x*sin(w*x)", {"a": 0.1, "w": 7.0}),
    ("sigmoid(w*x) - relu(x - a) + abs(x)**1.5", {"a": 0.2, "w": 3.0}),
    ("x*sum(k, 1, n, k**(-a)*cos(k*w*x))", {"a": 1.5, "w": 2.0, "n": 5}),
    ("legendre(n, tanh(x)) - legendre(n, 0) + hermite(n, x)/sqrt(factorial(n))", {"n": 4}),
    ("atan(x)*erf(x) + sinh(x)/cosh(x) - tanh(x) + exp(-x**2)*log(1 + x**2) + 2**x", {}),
]


@pytest.mark.parametrize(("text", "params"), FORMULAS)
def test_compiled_torch_and_numpy_match_sympy(text: str, params: dict) -> None:
    expr = parse_formula(text, params)
    xs = [-2.0, -0.7, -0.1, 0.0, 0.05, 0.3, 1.0, 2.5]
    subs = {s: params[s.name] for s in expr.free_symbols if s.name in params}
    ref_expr = expand_sums(
        expr.xreplace({s: sp.Integer(v) if isinstance(v, int) else v for s, v in subs.items()})
    )
    want = [float(sp.N(ref_expr.xreplace({X: sp.Float(v)}), 30)) for v in xs]
    got_t = compile_expr(expr, "torch")(torch.tensor(xs, dtype=torch.float64), **params)
    got_n = compile_expr(expr, "numpy")(np.array(xs), **params)
    np.testing.assert_allclose(got_t.numpy(), want, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(got_n, want, rtol=1e-12, atol=1e-14)
    x = torch.tensor(xs, dtype=torch.float64, requires_grad=True)
    (grad,) = torch.autograd.grad(compile_expr(expr, "torch")(x, **params).sum(), x)
    dref = sp.diff(ref_expr, X)
    for v, g in zip(xs, grad.tolist(), strict=True):
        if v == 0.0 and ("relu" in text or "abs" in text):
            continue
        assert g == pytest.approx(
            float(sp.N(dref.xreplace({X: sp.Float(v)}), 30)), rel=1e-10, abs=1e-12
        )


def test_compiled_constant_formula_keeps_shape_and_dtype() -> None:
    fn = compile_formula("2*pi")
    y = fn(torch.zeros(2, 3, dtype=torch.bfloat16))
    assert y.shape == (2, 3) and y.dtype == torch.bfloat16


def test_compiled_formula_preserves_dtype() -> None:
    fn = compile_formula("x + a*x*sin(w*x)", ["a", "w"])
    for dtype in (torch.float32, torch.bfloat16, torch.float64):
        y = fn(torch.ones(4, dtype=dtype), a=0.1, w=2.0)
        assert y.dtype == dtype


# -- register_formula ---------------------------------------------------------------------------
@pytest.mark.usefixtures("scratch_registry")
def test_register_formula_contract() -> None:
    spec = register_formula(
        "scratch_wavy",
        "x + a*x*sin(w*x)",
        {"a": {"default": 0.01, "low": 1e-4, "high": 0.1, "log": True}, "w": 10.0},
    )
    assert spec.family == "custom" and spec.module == "<formula>"
    assert spec.params["a"] == Param(0.01, 1e-4, 0.1, log=True)
    assert spec.params["w"] == Param(10.0, 10.0, 10.0)
    act = get_activation("scratch_wavy", a=0.05)
    x = torch.linspace(-1, 1, 11, dtype=torch.float64)
    torch.testing.assert_close(act(x), x + 0.05 * x * torch.sin(10 * x))
    with pytest.raises(ActivationError, match=r"'scratch_wavy.w' = 11.0 is outside"):
        get_activation("scratch_wavy", w=11.0)
    with pytest.raises(ActivationError, match="already registered by module '<formula>'"):
        register_formula("scratch_wavy", "x", {})
    register_formula("scratch_wavy", "2*x", {}, force=True)
    assert get_activation("scratch_wavy")(torch.ones(1)).item() == 2.0


@pytest.mark.usefixtures("scratch_registry")
def test_register_formula_integer_params() -> None:
    spec = register_formula(
        "scratch_series",
        "x + a*sum(k, 1, n, sin(k*x)/k)",
        {"a": 0.1, "n": {"default": 3, "low": 1, "high": 8}},
    )
    assert spec.params["n"].integer
    with pytest.raises(ActivationError, match="must be an integer"):
        register_formula("scratch_series2", "sum(k, 1, n, x)", {"n": 2.5})
    with pytest.raises(ActivationError, match="may have"):
        register_formula("scratch_series3", "a*x", {"a": {"low": 1}})
    with pytest.raises(FormulaError, match="unknown name 'b'"):
        register_formula("scratch_series4", "a*b*x", {"a": 1.0})


# -- the total cost bound -----------------------------------------------------------------------
_NEAR_BOUND = "x + 1e-3*sum(k, 1, {n}, sum(j, 1, 64, sin(k*j*x)))"


def test_formula_just_under_the_bound_is_accepted_and_evaluates() -> None:
    costs = {}
    for n in range(1, MAX_TERMS + 1):
        try:
            costs[n] = formula_cost(_NEAR_BOUND.format(n=n))
        except FormulaError as err:
            assert "too costly" in str(err)
            break
    n = max(costs)
    assert n < MAX_TERMS and 0.95 * MAX_FORMULA_COST < costs[n] <= MAX_FORMULA_COST
    with pytest.raises(FormulaError, match="too costly"):
        parse_formula(_NEAR_BOUND.format(n=n + 1))
    xs = np.linspace(-1.0, 1.0, 101)
    got = compile_formula(_NEAR_BOUND.format(n=n))(torch.tensor(xs, dtype=torch.float64))
    k = np.arange(1, n + 1)[:, None, None]
    j = np.arange(1, 65)[None, :, None]
    want = xs + 1e-3 * np.sin(k * j * xs).sum(axis=(0, 1))
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-12, atol=1e-12)


@pytest.mark.usefixtures("scratch_registry")
@pytest.mark.parametrize("entry", [register_formula, symbolic.register_formula])
def test_register_formula_refuses_costly_formulas(entry: Any) -> None:
    """``register_formula`` is what a study's inline ``{name, expr, params}`` goes through."""
    text = "x + a*sum(k, 1, n, sum(j, 1, n, sin(k*j*x)))"
    start = time.perf_counter()
    with pytest.raises(FormulaError, match="too costly") as err:
        # a YAML-style declaration: n may reach 256, so 256 × 256 terms
        entry("scratch_costly", text, {"a": 0.1, "n": {"default": 4, "low": 1, "high": 256}})
    assert time.perf_counter() - start < 1.0
    assert err.value.token == "sum(k, 1, n, sum(j, 1, n, sin(k*j*x)))"
    assert "scratch_costly" not in list_activations()
    # the same formula with a small declared range is cheap and accepted
    spec = entry("scratch_costly", text, {"a": 0.1, "n": {"default": 4, "low": 1, "high": 8}})
    assert spec.params["n"].integer
    x = torch.linspace(-1, 1, 5, dtype=torch.float64)
    want = x + 0.1 * sum(torch.sin(k * j * x) for k in range(1, 5) for j in range(1, 5))
    torch.testing.assert_close(get_activation("scratch_costly")(x), want)


def test_compile_formula_counts_undeclared_bounds_at_their_caps() -> None:
    text = "x + sum(k, 1, n, legendre(k, tanh(x)))"
    with pytest.raises(FormulaError, match="too costly"):
        compile_formula(text, ["n"])
    fn = compile_formula(text, {"n": Param(3, low=1, high=12, integer=True)})
    x = torch.tensor([0.5], dtype=torch.float64)
    t = math.tanh(0.5)
    assert fn(x, n=2).item() == pytest.approx(0.5 + t + (3 * t**2 - 1) / 2, rel=1e-14)


def test_expand_sums_enforces_the_term_limit() -> None:
    n = sp.Symbol("n", real=True)
    expr = parse_formula("sum(k, 1, n, x/k)", ["n"]).xreplace({n: MAX_TERMS + 1})
    with pytest.raises(ValueError, match=f"limited to {MAX_TERMS} terms"):
        expand_sums(expr)
