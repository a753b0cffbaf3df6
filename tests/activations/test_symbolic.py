"""The safe formula parser, the compiler, register_formula and the audit."""

from __future__ import annotations

import ast
import builtins
import math
from pathlib import Path
from unittest import mock

import numpy as np
import pytest
import sympy as sp
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import activations.symbolic as symbolic
from activations import ActivationError, Param, get_activation, get_spec
from activations.symbolic import (
    FormulaError,
    X,
    audit,
    audit_formula,
    compile_expr,
    compile_formula,
    expand_sums,
    parse_formula,
    register_formula,
)

a, w = sp.Symbol("a", real=True), sp.Symbol("w", real=True)


# -- accepted formulas --------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("x", X),
        ("x + a*x*sin(w*x)", X + a * X * sp.sin(w * X)),
        ("-x**2", -(X**2)),
        ("2**-1*x", X / 2),
        ("x**2**3", X**8),
        ("(x + 1)*(x - 1)", (X + 1) * (X - 1)),
        ("1.5e-3*x", sp.Float(1.5e-3) * X),
        (".5*x", sp.Float(0.5) * X),
        ("sigmoid(x)", 1 / (1 + sp.exp(-X))),
        ("relu(x) - abs(x)", sp.Max(0, X) - sp.Abs(X)),
        (
            "tanh(x)+sinh(x)+cosh(x)+atan(x)+erf(x)",
            sp.tanh(X) + sp.sinh(X) + sp.cosh(X) + sp.atan(X) + sp.erf(X),
        ),
        ("exp(log(sqrt(tan(x))))", sp.sqrt(sp.tan(X))),
        ("pi*x", sp.pi * X),
        ("legendre(2, x)", sp.legendre(2, X)),
        ("chebyshev(3, x) + hermite(2, x)", sp.chebyshevt(3, X) + sp.hermite_prob(2, X)),
        ("factorial(4)*x", 24 * X),
        ("  x\t+\n1 ", X + 1),
    ],
)
def test_accepted(text: str, expected: sp.Expr) -> None:
    assert sp.simplify(parse_formula(text, ["a", "w"]) - expected) == 0


def test_sum_and_expansion() -> None:
    n = sp.Symbol("n", real=True)
    expr = parse_formula("sum(k, 1, n, x**k/k)", ["n"])
    assert isinstance(expr, sp.Sum)
    expanded = expand_sums(expr.xreplace({n: 3}))
    assert sp.simplify(expanded - (X + X**2 / 2 + X**3 / 3)) == 0
    # sympy's own doit() is wrong for hermite_prob(k, 0) with a symbolic k; expand_sums is not.
    he = expand_sums(parse_formula("sum(k, 1, 4, hermite(k, 0))"))
    assert he == 0 - 1 + 0 + 3


# -- refused formulas ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "column", "token", "message"),
    [
        ("x.real", 2, ".", "attribute access is not allowed"),
        ("x + os.system(1)", 7, ".", "attribute access is not allowed"),
        ("foo(x)", 1, "foo", "unknown function 'foo'"),
        ("x + open(x)", 5, "open", "unknown function 'open'"),
        ("__import__(x)", 1, "__import__", "double underscores"),
        ("x + __class__", 5, "__class__", "double underscores"),
        ("lambda: x", 1, "lambda", "'lambda' is a Python keyword"),
        ("[x for x in x]", 1, "[", "brackets (lists, indexing, comprehensions)"),
        ("x for x in x", 3, "for", "'for' is a Python keyword"),
        ("'abc'", 1, "'", "strings are not allowed"),
        ('x + "s"', 5, '"', "strings are not allowed"),
        ("x^2", 2, "^", "write ** for powers"),
        ("2x", 2, "x", "Implicit multiplication is not supported"),
        ("x +", 4, "<end>", "ends too early"),
        ("", 1, "<end>", "the formula is empty"),
        ("y*x", 1, "y", "unknown name 'y'"),
        ("sin(x, x)", 1, "sin", "sin() takes 1 argument but got 2"),
        ("sin", 1, "sin", "'sin' is a function"),
        ("x(2)", 1, "x", "'x' is not a function"),
        ("(x", 3, "<end>", "expected ')'"),
        ("x)", 2, ")", "unexpected ')'"),
        ("1/0", 2, "/", "undefined or not real"),
        ("log(0)", 1, "log", "undefined or not real"),
        ("sqrt(-1)", 1, "sqrt", "undefined or not real"),
        ("(-8)**(1/3)", 5, "**", "undefined or not real"),
        ("legendre(x, x)", 10, "x", "must not depend on x"),
        ("legendre(2.5, x)", 10, "2.5", "must be an integer from 0 to 64"),
        ("legendre(100000, x)", 10, "100000", "must be an integer from 0 to 64"),
        ("sum(x, 1, 2, x)", 5, "x", "cannot be a sum index"),
        ("sum(k, 1, 100000, k)", 1, "sum", "limited to 256 terms"),
        ("9**9**9", 2, "**", "limited to |p| <= 1000"),
        ("x = 1", 3, "=", "assignments and comparisons are not allowed"),
        ("x; x", 2, ";", "single expression"),
        ("1e999*x", 1, "1e999", "out of the floating-point range"),
        ("x + é", 5, "é", "unexpected character"),
        ("(" * 70 + "x" + ")" * 70, 61, "(", "nests deeper than 60 levels"),
    ],
)
def test_refused(text: str, column: int, token: str, message: str) -> None:
    with pytest.raises(FormulaError) as err:
        parse_formula(text, ["a"])
    assert message in str(err.value)
    assert (err.value.column, err.value.token) == (column, token)
    assert f"column {column}" in str(err.value)


def test_unknown_name_suggests_declared_parameter() -> None:
    with pytest.raises(FormulaError, match=r"unknown name 'amp'.*Did you mean 'amp1'"):
        parse_formula("amp*x", ["amp1"])


@pytest.mark.parametrize("bad", ["x", "sin", "pi", "__a", "lambda", "1a", "a-b"])
def test_bad_parameter_names(bad: str) -> None:
    with pytest.raises(FormulaError, match="Invalid parameter name") as err:
        parse_formula("x", [bad])
    assert err.value.column == 0


def test_non_string_formula() -> None:
    with pytest.raises(FormulaError, match="must be a string"):
        parse_formula(42)  # type: ignore[arg-type]


def test_module_never_calls_eval_like_functions() -> None:
    tree = ast.parse(Path(symbolic.__file__).read_text())
    forbidden = {"eval", "exec", "compile", "sympify", "parse_expr", "lambdify", "__import__"}
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            f = node.func
            name = (
                f.id if isinstance(f, ast.Name) else f.attr if isinstance(f, ast.Attribute) else ""
            )
            assert name not in forbidden, f"symbolic.py calls {name}() at line {node.lineno}"


# -- fuzzing ------------------------------------------------------------------------------------
_VOCAB = [
    "x",
    "a",
    "w",
    "k",
    "pi",
    "1",
    "2.5",
    "1e3",
    "0",
    "+",
    "-",
    "*",
    "/",
    "**",
    "(",
    ")",
    ",",
    "sin",
    "exp",
    "log",
    "sqrt",
    "sum",
    "legendre",
    "hermite",
    "factorial",
    "relu",
    "sigmoid",
    "abs",
    ".",
    "__class__",
    "lambda",
    "'",
    "[",
    "]",
    "import",
    "os",
    "eval",
    "^",
    "=",
    ":",
]


def _guarded_parse(text: str) -> None:
    boom = AssertionError("code execution attempted")
    with (
        mock.patch.object(builtins, "eval", side_effect=boom),
        mock.patch.object(builtins, "exec", side_effect=boom),
        mock.patch("sympy.parsing.sympy_parser.parse_expr", side_effect=boom),
    ):
        try:
            result = parse_formula(text, ["a", "w"])
        except FormulaError as err:
            assert isinstance(err.column, int) and 0 <= err.column <= len(text) + 1
            return
    assert isinstance(result, sp.Basic)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(max_size=80))
def test_fuzz_arbitrary_text(text: str) -> None:
    _guarded_parse(text)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.sampled_from(_VOCAB), max_size=30).map(" ".join))
def test_fuzz_token_soup(text: str) -> None:
    _guarded_parse(text)


def test_injection_attempts_do_not_run(tmp_path: Path) -> None:
    canary = tmp_path / "pwned"
    for text in [
        f"__import__('os').system('touch {canary}')",
        f"x + eval(\"open('{canary}', 'w')\")",
        "().__class__.__bases__[0].__subclasses__()",
        f'exec(\'open(r"{canary}", "w")\')',
    ]:
        with pytest.raises(FormulaError):
            parse_formula(text)
    assert not canary.exists()


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


# -- audit --------------------------------------------------------------------------------------
def test_audit_sigmoid_warning_in_plain_words() -> None:
    r = audit("sigmoid")
    assert r.f0 == 0.5 and r.df0 == pytest.approx(0.25) and not r.starts_at_zero
    assert "f(0) = 0.5: the update starts at 0.5·alpha/r in every entry, not at zero" in r.warnings
    assert any("effective learning rate" in w for w in r.warnings)
    assert r.lipschitz == pytest.approx(0.25, rel=1e-12)


def test_audit_to_dict_contract() -> None:
    d = audit("sinter", {"amplitude": 1e-3}).to_dict()
    assert list(d) == [
        "name",
        "params",
        "f0",
        "df0",
        "lipschitz",
        "interval",
        "starts_at_zero",
        "warnings",
    ]
    assert d["params"] == {"amplitude": 1e-3, "frequency": 1e4}
    assert d["interval"] == [-1.0, 1.0] and d["starts_at_zero"] is True
    assert all(type(d[k]) is float for k in ("f0", "df0", "lipschitz"))
    # sup |1 + A sin(ωx) + Aωx cos(ωx)| on [-1, 1] is just below 1 + A + Aω = 11.001
    assert 10.99 < d["lipschitz"] <= 11.001
    assert any(w.startswith("Large slope") for w in d["warnings"])
    assert any(w.startswith("Unbounded growth") for w in d["warnings"])


@pytest.mark.parametrize(
    ("name", "params", "bound"),
    [
        # |x| >> c: f' = 1 + A·c·ω·cos(ωx) (+ A·sech² terms, negligible there): sup = 1 + Acω.
        ("sinter_tanh", {"amplitude": 1e-2, "frequency": 100.0, "width": 0.1}, 1 + 1e-2 * 10),
        # sup |f' - 1| = A·√(1 + ν²), attained at a phase of the log-oscillation.
        ("sinter_log", {"amplitude": 0.1, "log_frequency": 3.0}, 1 + 0.1 * math.sqrt(10)),
        # f'(0) = 1 + A·ω·Σ k^{1-p} = 1 + A·ω·K for p = 1: the sup, at x = 0.
        (
            "fourier_sine",
            {"amplitude": 1e-3, "frequency": 50.0, "terms": 3, "decay": 1.0},
            1 + 1e-3 * 50 * 3,
        ),
    ],
)
def test_audit_lipschitz_is_tight_against_analytic_values(
    name: str, params: dict, bound: float
) -> None:
    r = audit(name, params)
    assert r.lipschitz == pytest.approx(bound, rel=1e-6)
    assert not any("Unbounded growth" in w for w in r.warnings)


def test_audit_flags_kinks_non_monotone_and_zero_slope() -> None:
    relu = audit("relu")
    assert any("not differentiable at 0" in w for w in relu.warnings)
    gauss = audit("gaussian")
    assert any(w.startswith("Not monotone") for w in gauss.warnings)
    assert gauss.lipschitz == pytest.approx(0.5)
    flat = audit_formula("x**3")
    assert any("f'(0) = 0" in w for w in flat.warnings)
    assert flat.lipschitz == pytest.approx(3.0)


def test_audit_interval_and_formula_params() -> None:
    r = audit_formula("a*x**2 + x", {"a": 1.0}, interval=(0.0, 2.0))
    assert r.interval == (0.0, 2.0) and r.lipschitz == pytest.approx(5.0)
    assert r.name == "a*x**2 + x" and r.params == {"a": 1.0}
    undefined = audit_formula("log(x)")
    assert math.isnan(undefined.f0) and math.isinf(undefined.lipschitz)
    assert any("not finite" in w for w in undefined.warnings)
    removable = audit_formula("sin(x)/x")
    assert removable.f0 == pytest.approx(1.0)
    with pytest.raises(ValueError, match="a < b"):
        audit("sinter", interval=(1.0, -1.0))
    with pytest.raises(FormulaError, match="unknown name 'a'"):
        audit_formula("a*x")


@pytest.mark.parametrize("name", ["sinter", "legendre", "fourier_damped", "hermite"])
def test_audit_df0_matches_autograd(name: str) -> None:
    r = audit(name)
    x = torch.zeros(1, dtype=torch.float64, requires_grad=True)
    (g,) = torch.autograd.grad(get_activation(name)(x).sum(), x)
    assert g.item() == pytest.approx(r.df0, rel=1e-12)
    assert r.f0 == 0.0 and r.starts_at_zero
    assert get_spec(name).family != "baseline"
