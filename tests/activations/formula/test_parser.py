"""The safe formula parser: accepted and refused formulas, fuzzing, no code execution."""

from __future__ import annotations

import ast
import builtins
import re
import time
from pathlib import Path
from unittest import mock

import pytest
import sympy as sp
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import activations
from activations import Param, get_spec, list_activations
from activations.formula.cost import format_cost
from activations.formula.parser import (
    FUNCTIONS,
    MAX_FORMULA_COST,
    FormulaError,
    X,
    formula_cost,
    parse_formula,
)

a, w = sp.Symbol("a", real=True), sp.Symbol("w", real=True)

#: Every module of the formula pipeline (the facade included).
_PIPELINE = sorted(
    [
        *Path(activations.__file__).parent.joinpath("formula").glob("*.py"),
        Path(activations.__file__).parent / "audit.py",
        Path(activations.__file__).parent / "symbolic.py",
    ]
)


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


def test_pipeline_modules_are_all_checked() -> None:
    names = {p.relative_to(Path(activations.__file__).parent).as_posix() for p in _PIPELINE}
    assert {"formula/parser.py", "formula/compiler.py", "audit.py", "symbolic.py"} <= names


@pytest.mark.parametrize("path", _PIPELINE, ids=lambda p: p.name)
def test_module_never_calls_eval_like_functions(path: Path) -> None:
    tree = ast.parse(path.read_text())
    forbidden = {"eval", "exec", "compile", "sympify", "parse_expr", "lambdify", "__import__"}
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            f = node.func
            name = (
                f.id if isinstance(f, ast.Name) else f.attr if isinstance(f, ast.Attribute) else ""
            )
            assert name not in forbidden, f"{path.name} calls {name}() at line {node.lineno}"


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


# -- the total cost bound -----------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "part", "cost"),
    [
        (
            "x + sum(k,1,256,sum(j,1,256,sum(i,1,256,x*k*j*i)))",
            "sum(j,1,256,sum(i,1,256,x*k*j*i))",
            525_315,
        ),
        (
            "x + legendre(64, legendre(64, legendre(64, x)))",
            "legendre(64, legendre(64, x))",
            20_866,
        ),
        # five deep: sympy alone needs over a minute to build it; refused before building
        ("x + " + "legendre(64, " * 5 + "x" + ")" * 5, "legendre(64, legendre(64, x))", 20_866),
    ],
)
def test_cost_bound_refuses_nesting_fast(text: str, part: str, cost: int) -> None:
    start = time.perf_counter()
    with pytest.raises(FormulaError) as err:
        parse_formula(text)
    assert time.perf_counter() - start < 1.0
    msg = str(err.value)
    assert f"The part {part!r}" in msg
    assert f"costs about {format_cost(cost)} operations" in msg
    assert f"MAX_FORMULA_COST = {format_cost(MAX_FORMULA_COST)}" in msg
    assert "fewer sum terms, lower polynomial degrees or less nesting" in msg
    assert err.value.token == part
    assert err.value.column == text.index(part) + 1


@pytest.mark.parametrize("name", list_activations())
def test_every_registered_activation_is_under_the_bound(name: str) -> None:
    spec = get_spec(name)
    assert 1 <= formula_cost(spec.expr, spec.params) <= MAX_FORMULA_COST


def _readme_formulas() -> list[str]:
    readme = Path(activations.__file__).parents[1] / "README.md"
    found = re.findall(
        r'(?:expr=|activation=|register_formula\("\w+", )"([^"]+)"', readme.read_text()
    )
    assert len(found) >= 3, found
    return found


@pytest.mark.parametrize("text", _readme_formulas())
def test_readme_formulas_are_under_the_bound(text: str) -> None:
    names = set(re.findall(r"[A-Za-z_]\w*", text)) - {"x", "pi", *FUNCTIONS}
    names -= set(re.findall(r"sum\(\s*([A-Za-z_]\w*)", text))  # sum indices
    assert 1 <= formula_cost(text, sorted(names)) <= MAX_FORMULA_COST


def test_declared_ranges_bound_symbolic_sums_and_degrees() -> None:
    template = "x + sum(k, 1, {n}, legendre(k, tanh(x)))"
    text = template.format(n="n")
    # names only: n counts as MAX_TERMS = 256 terms, legendre(k, .) as degree MAX_DEGREE = 64
    with pytest.raises(FormulaError, match="too costly"):
        parse_formula(text, ["n"])
    # a declared range: at most 12 terms, k ≤ 12
    small = formula_cost(text, {"n": Param(3, low=1, high=12, integer=True)})
    assert small == formula_cost(template.format(n=12))
    assert small == formula_cost(text, {"n": {"default": 3, "low": 1, "high": 12}})
    assert formula_cost(text, {"n": 5}) == formula_cost(template.format(n=5))


@pytest.mark.parametrize(
    ("text", "cost"),
    [
        ("x", 1),
        ("(x)", 1),
        ("-x", 2),
        ("x + 1", 3),
        ("2*x**3", 5),
        ("sin(x)", 2),
        ("legendre(2, x)", 1 + 1 + 2 * (1 + 4)),
        ("legendre(0, x)", 2),
        ("sum(k, 1, 3, k)", 1 + 2 + 3 * (1 + 1)),
        ("sum(k, 3, 1, k)", 3),  # empty
        ("sum(k, 1, 2, legendre(k, x))", 1 + 2 + 2 * ((1 + 1 + 2 * (1 + 4)) + 1)),
    ],
)
def test_cost_model(text: str, cost: int) -> None:
    assert formula_cost(text) == cost
