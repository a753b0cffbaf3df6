"""Safe formulas and the symbolic audit of activations.

**Formulas.** :func:`parse_formula` reads a formula in ``x`` and declared parameters with its own
tokenizer and recursive-descent parser and builds sympy objects directly. It never calls
``eval``, ``exec``, ``sympify`` or ``parse_expr`` on the text. The accepted language is fixed:

* numbers (``3``, ``0.5``, ``1e-4``), the variable ``x``, declared parameters, the constant ``pi``;
* ``+ - * / **``, unary ``+``/``-``, parentheses (``-x**2`` is ``-(x**2)``; ``**`` is
  right-associative);
* the functions ``sin cos tan exp log sqrt tanh sinh cosh atan erf abs sigmoid relu``
  (``sigmoid(t) = 1/(1 + exp(-t))``, ``relu(t) = max(0, t)``);
* the orthogonal polynomials ``legendre(n, t)`` (``P_n``), ``chebyshev(n, t)`` (``T_n``) and
  ``hermite(n, t)`` (probabilists' ``He_n``), and ``factorial(n)``, whose ``n`` must not depend
  on ``x`` and must be an integer from 0 to :data:`MAX_DEGREE`;
* finite sums ``sum(k, FROM, TO, TERM)`` = ``Σ_{k=FROM}^{TO} TERM`` with a fresh index name
  ``k`` (bounds are integers or integer parameters, at most :data:`MAX_TERMS` terms).

Anything else (attribute access, unknown names or functions, double-underscore names, Python
keywords such as ``lambda``, strings, brackets, comprehensions, ``^``) raises
:class:`FormulaError` with the offending token and its 1-based column. Constant powers are
bounded (``|p| ≤ 1000``, results of at most 20 000 digits) so that no formula can make sympy
compute for long.

**Compilation.** :func:`compile_expr` turns a sympy expression into a function by walking its tree
(no code generation): torch for the activation itself (dtype and shape preserved, autograd
works), numpy (float64) for the audit.

**Audit.** :func:`audit` reports ``f(0)``, ``f'(0)``, a Lipschitz estimate ``sup |f'|`` on an
interval, whether ``ΔW = s·f(B·A)`` starts at zero, and warnings in plain words. How the
Lipschitz value is computed (it is a *numerical* estimate, not a proof):

1. ``f'`` is derived symbolically (sympy ``diff``) after the parameters are substituted and the
   sums expanded;
2. ``f'`` is evaluated on a dense grid whose density follows the local oscillation frequency:
   the interval is cut into segments and each gets ≥ 40 points per period of its fastest
   oscillating term (the slope of every ``sin``/``cos``/``tan``/``tanh``/... argument), plus a
   log-spaced grid around 0 (for oscillations in ``log|x|``); the total is capped at
   :data:`MAX_GRID` points, and a warning says so when the cap bites;
3. the 32 largest local maxima of ``|f'|`` on the grid are refined by a bounded scalar
   maximisation (the critical points ``f'' = 0`` between neighbouring grid points); when ``f''``
   is a polynomial its real roots are added exactly. The result is the largest value found.
"""

from __future__ import annotations

import difflib
import keyword
import math
import operator
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from functools import reduce
from typing import TYPE_CHECKING, Any, NamedTuple

import sympy as sp

from activations.registry import (
    ActivationError,
    ActivationSpec,
    Param,
    get_spec,
    register,
)

if TYPE_CHECKING:
    from torch import Tensor

__all__ = [
    "AuditResult",
    "FormulaError",
    "audit",
    "audit_formula",
    "compile_expr",
    "compile_formula",
    "expand_sums",
    "parse_formula",
    "register_formula",
    "spec_expr",
]

#: The variable every formula is written in (real-valued).
X = sp.Symbol("x", real=True)
#: Longest formula accepted.
MAX_LENGTH = 2000
#: Deepest nesting of parentheses, calls and unary operators accepted.
MAX_DEPTH = 60
#: Largest polynomial degree / factorial argument.
MAX_DEGREE = 64
#: Most terms a single ``sum`` may have (checked at parse time for constant bounds, when the sum
#: is evaluated otherwise).
MAX_TERMS = 256
#: Most grid points the audit evaluates ``f'`` on.
MAX_GRID = 4_000_000
#: ``|f'|`` above this on the audited interval triggers the "large slope" warning.
LARGE_SLOPE = 2.0
#: ``|f'(0) − 1|`` above this triggers the "effective learning rate is rescaled" warning.
SLOPE_AT_ZERO_TOLERANCE = 0.01

_CONSTANTS: dict[str, sp.Expr] = {"pi": sp.pi}


def _sigmoid(t: sp.Expr) -> sp.Expr:
    return 1 / (1 + sp.exp(-t))


def _relu(t: sp.Expr) -> sp.Expr:
    return sp.Max(sp.Integer(0), t)


#: One-argument functions: formula name -> sympy builder.
_UNARY: dict[str, Callable[[sp.Expr], sp.Expr]] = {
    "sin": sp.sin,
    "cos": sp.cos,
    "tan": sp.tan,
    "exp": sp.exp,
    "log": sp.log,
    "sqrt": sp.sqrt,
    "tanh": sp.tanh,
    "sinh": sp.sinh,
    "cosh": sp.cosh,
    "atan": sp.atan,
    "erf": sp.erf,
    "abs": sp.Abs,
    "sigmoid": _sigmoid,
    "relu": _relu,
}
#: Orthogonal polynomials ``name(n, t)``: formula name -> sympy class.
_POLYNOMIALS: dict[str, Any] = {
    "legendre": sp.legendre,
    "chebyshev": sp.chebyshevt,
    "hermite": sp.hermite_prob,
}
#: Every name callable in a formula.
FUNCTIONS: tuple[str, ...] = (*_UNARY, *_POLYNOMIALS, "factorial", "sum")
_RESERVED = frozenset({"x", *_CONSTANTS, *FUNCTIONS})


class FormulaError(ValueError):
    """A formula was refused.

    Attributes:
        column: 1-based column of the offending token (0 when the problem is not in the text,
            e.g. a bad parameter declaration).
        token: The offending token's text.
    """

    def __init__(self, message: str, *, column: int, token: str) -> None:
        super().__init__(message)
        self.column = column
        self.token = token


class _Token(NamedTuple):
    kind: str  # "num", "name", "op" or "end"
    text: str
    column: int  # 1-based


_OPS = ("**", "+", "-", "*", "/", "(", ")", ",")
_REFUSED_CHARS = {
    ".": "attribute access is not allowed (a '.' may only appear inside a number)",
    "'": "strings are not allowed",
    '"': "strings are not allowed",
    "^": "'^' is not allowed: write ** for powers",
    "[": "brackets (lists, indexing, comprehensions) are not allowed",
    "]": "brackets (lists, indexing, comprehensions) are not allowed",
    "{": "braces are not allowed",
    "}": "braces are not allowed",
    "=": "assignments and comparisons are not allowed",
    ":": "':' is not allowed (no lambdas, slices or annotations)",
    ";": "';' is not allowed: a formula is a single expression",
    "@": "'@' is not allowed",
    "#": "comments are not allowed",
    "\\": "backslashes are not allowed",
}


def _error(text: str, problem: str, column: int, token: str, hint: str = "") -> FormulaError:
    where = f"column {column}" if column else "the declaration"
    shown = text if len(text) <= 80 else text[:77] + "..."
    msg = f"Invalid formula {shown!r}: {problem} at {where} ({token!r})."
    if hint:
        msg += f" {hint}"
    return FormulaError(msg, column=column, token=token)


def _tokenize(text: str) -> list[_Token]:
    tokens: list[_Token] = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        col = i + 1
        if c in " \t\r\n":
            i += 1
            continue
        if c.isascii() and (c.isdigit() or (c == "." and i + 1 < n and text[i + 1].isdigit())):
            j = i
            while j < n and text[j].isascii() and text[j].isdigit():
                j += 1
            if j < n and text[j] == ".":
                j += 1
                while j < n and text[j].isascii() and text[j].isdigit():
                    j += 1
            if j < n and text[j] in "eE":
                k = j + 1
                if k < n and text[k] in "+-":
                    k += 1
                if k < n and text[k].isascii() and text[k].isdigit():
                    while k < n and text[k].isascii() and text[k].isdigit():
                        k += 1
                    j = k
            tokens.append(_Token("num", text[i:j], col))
            i = j
            continue
        if c.isascii() and (c.isalpha() or c == "_"):
            j = i
            while j < n and text[j].isascii() and (text[j].isalnum() or text[j] == "_"):
                j += 1
            name = text[i:j]
            if "__" in name:
                raise _error(text, "names with double underscores are not allowed", col, name)
            if keyword.iskeyword(name) or keyword.issoftkeyword(name):
                raise _error(
                    text,
                    f"'{name}' is a Python keyword; only arithmetic formulas are allowed",
                    col,
                    name,
                )
            tokens.append(_Token("name", name, col))
            i = j
            continue
        op = next((o for o in _OPS if text.startswith(o, i)), None)
        if op is not None:
            tokens.append(_Token("op", op, col))
            i += len(op)
            continue
        problem = _REFUSED_CHARS.get(c, f"unexpected character {c!r}")
        raise _error(text, problem, col, c)
    tokens.append(_Token("end", "", n + 1))
    return tokens


def _is_bad_value(node: sp.Basic) -> bool:
    if node.has(sp.zoo, sp.nan, sp.oo, sp.S.NegativeInfinity, sp.I):
        return True
    return bool(node.is_number and node.is_extended_real is False)  # e.g. (-8)**(1/3)


class _Parser:
    """Recursive descent over the token list, building sympy nodes as it goes."""

    def __init__(self, text: str, params: Mapping[str, sp.Symbol]) -> None:
        self.text = text
        self.tokens = _tokenize(text)
        self.pos = 0
        self.params = params
        self.bound: dict[str, sp.Symbol] = {}  # sum indices in scope
        self.depth = 0

    # -- helpers ----------------------------------------------------------------------------
    @property
    def tok(self) -> _Token:
        return self.tokens[self.pos]

    def fail(self, problem: str, tok: _Token | None = None, hint: str = "") -> FormulaError:
        tok = tok or self.tok
        return _error(self.text, problem, tok.column, tok.text or "<end>", hint)

    def take(self, text: str) -> _Token:
        tok = self.tok
        if tok.kind == "op" and tok.text == text:
            self.pos += 1
            return tok
        got = "the end of the formula" if tok.kind == "end" else repr(tok.text)
        raise self.fail(f"expected {text!r} but found {got}")

    def enter(self, tok: _Token) -> None:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise self.fail(f"the formula nests deeper than {MAX_DEPTH} levels", tok)

    def build(self, tok: _Token, fn: Callable[..., sp.Expr], *args: Any) -> sp.Expr:
        """Call a sympy constructor; any failure or non-real result becomes a FormulaError."""
        try:
            node = fn(*args)
        except FormulaError:
            raise
        except Exception as err:  # sympy refusing an operation must not escape as another type
            raise self.fail(f"cannot build this expression ({type(err).__name__})", tok) from None
        if _is_bad_value(node):
            raise self.fail(
                "the expression is undefined or not real (division by zero, log(0), "
                "sqrt of a negative number, ...)",
                tok,
            )
        return node

    # -- grammar ----------------------------------------------------------------------------
    def parse(self) -> sp.Expr:
        if self.tok.kind == "end":
            raise self.fail("the formula is empty", hint="Write an expression in x, e.g. 'x'.")
        node = self.additive()
        if self.tok.kind != "end":
            tok = self.tok
            hint = ""
            if tok.text == "(" or tok.kind in {"name", "num"}:
                hint = "Implicit multiplication is not supported: write '*' (e.g. 2*x)."
            raise self.fail(
                f"unexpected {tok.text!r}: expected an operator or the end of the formula",
                hint=hint,
            )
        return node

    def additive(self) -> sp.Expr:
        node = self.term()
        while self.tok.kind == "op" and self.tok.text in {"+", "-"}:
            tok = self.tok
            self.pos += 1
            rhs = self.term()
            node = self.build(tok, operator.add if tok.text == "+" else operator.sub, node, rhs)
        return node

    def term(self) -> sp.Expr:
        node = self.unary()
        while self.tok.kind == "op" and self.tok.text in {"*", "/"}:
            tok = self.tok
            self.pos += 1
            rhs = self.unary()
            node = self.build(tok, operator.mul if tok.text == "*" else operator.truediv, node, rhs)
        return node

    def unary(self) -> sp.Expr:
        tok = self.tok
        if tok.kind == "op" and tok.text in {"+", "-"}:
            self.pos += 1
            self.enter(tok)
            operand = self.unary()
            self.depth -= 1
            return operand if tok.text == "+" else self.build(tok, operator.neg, operand)
        return self.power()

    def power(self) -> sp.Expr:
        base = self.atom()
        if self.tok.kind == "op" and self.tok.text == "**":
            tok = self.tok
            self.pos += 1
            self.enter(tok)
            exponent = self.unary()
            self.depth -= 1
            return self.build(tok, self.checked_pow, base, exponent, tok)
        return base

    def checked_pow(self, base: sp.Expr, exponent: sp.Expr, tok: _Token) -> sp.Expr:
        if isinstance(exponent, sp.Number):
            if isinstance(exponent, sp.Rational) and not exponent.is_Integer and exponent.q > 1000:
                exponent = sp.Float(exponent)
            if abs(float(exponent)) > 1000:
                raise self.fail("constant exponents are limited to |p| <= 1000", tok)
            if isinstance(base, sp.Rational) and exponent.is_Integer:
                size = max(len(str(abs(base.p))), len(str(base.q)))
                if abs(int(exponent)) * size > 20_000:
                    raise self.fail("this constant power is too large (over 20000 digits)", tok)
        return sp.Pow(base, exponent)

    def atom(self) -> sp.Expr:
        tok = self.tok
        if tok.kind == "num":
            self.pos += 1
            return self.number(tok)
        if tok.kind == "op" and tok.text == "(":
            self.pos += 1
            self.enter(tok)
            node = self.additive()
            self.depth -= 1
            self.take(")")
            return node
        if tok.kind == "name":
            self.pos += 1
            if self.tok.kind == "op" and self.tok.text == "(":
                return self.call(tok)
            return self.name(tok)
        if tok.kind == "end":
            raise self.fail("the formula ends too early", hint="Complete the expression.")
        raise self.fail(f"unexpected {tok.text!r}")

    def number(self, tok: _Token) -> sp.Expr:
        text = tok.text
        if any(c in text for c in ".eE"):
            value = float(text)
            if not math.isfinite(value):
                raise self.fail("the number is out of the floating-point range", tok)
            return sp.Float(value)
        if len(text) > 100:
            raise self.fail("integer literals are limited to 100 digits", tok)
        return sp.Integer(int(text))

    def name(self, tok: _Token) -> sp.Expr:
        name = tok.text
        if name == "x":
            return X
        if name in self.bound:
            return self.bound[name]
        if name in self.params:
            return self.params[name]
        if name in _CONSTANTS:
            return _CONSTANTS[name]
        if name in FUNCTIONS:
            raise self.fail(f"'{name}' is a function", tok, hint=f"Call it: {name}(...).")
        raise self.fail(f"unknown name {name!r}", tok, hint=self.names_hint(name))

    def names_hint(self, name: str) -> str:
        known = ["x", *self.params, *self.bound, *_CONSTANTS]
        close = difflib.get_close_matches(name, known, n=1)
        hint = f"Did you mean {close[0]!r}? " if close else ""
        declared = ", ".join(self.params) or "none"
        return (
            f"{hint}A formula may use x, pi, its declared parameters ({declared}) and sum "
            "indices; declare a parameter to use a new name."
        )

    def args(self, fname: _Token) -> list[tuple[_Token, sp.Expr]]:
        self.take("(")
        self.enter(fname)
        out: list[tuple[_Token, sp.Expr]] = []
        if not (self.tok.kind == "op" and self.tok.text == ")"):
            while True:
                out.append((self.tok, self.additive()))
                if self.tok.kind == "op" and self.tok.text == ",":
                    self.pos += 1
                    continue
                break
        self.depth -= 1
        self.take(")")
        return out

    def arity(self, fname: _Token, args: list[Any], n: int, usage: str) -> None:
        if len(args) != n:
            raise self.fail(
                f"{fname.text}() takes {n} argument{'s' if n > 1 else ''} but got {len(args)}",
                fname,
                hint=f"Usage: {usage}.",
            )

    def call(self, fname: _Token) -> sp.Expr:
        name = fname.text
        if name == "sum":
            return self.sum_call(fname)
        if name not in FUNCTIONS:
            if name == "x" or name in self.params or name in _CONSTANTS or name in self.bound:
                raise self.fail(
                    f"{name!r} is not a function",
                    fname,
                    hint="Implicit multiplication is not supported: write '*'.",
                )
            close = difflib.get_close_matches(name, FUNCTIONS, n=1)
            hint = f"Did you mean {close[0]!r}? " if close else ""
            raise self.fail(
                f"unknown function {name!r}",
                fname,
                hint=f"{hint}Allowed functions: {', '.join(FUNCTIONS)}.",
            )
        args = self.args(fname)
        if name in _UNARY:
            self.arity(fname, args, 1, f"{name}(t)")
            return self.build(fname, _UNARY[name], args[0][1])
        if name == "factorial":
            self.arity(fname, args, 1, "factorial(n), n an integer not depending on x")
            n = self.degree_arg(fname, *args[0], limit=170)
            return self.build(fname, sp.factorial, n)
        self.arity(fname, args, 2, f"{name}(n, t), n an integer degree not depending on x")
        n = self.degree_arg(fname, *args[0], limit=MAX_DEGREE)
        cls = _POLYNOMIALS[name]
        if isinstance(n, sp.Integer):
            return self.build(fname, cls, n, args[1][1])
        # sympy's closed forms for a symbolic degree are not always right (hermite_prob(n, 0)
        # in sympy 1.14): keep the node unevaluated until the degree is a number.
        return self.build(fname, lambda a, b: cls(a, b, evaluate=False), n, args[1][1])

    def degree_arg(self, fname: _Token, tok: _Token, n: sp.Expr, *, limit: int) -> sp.Expr:
        if n.has(X):
            raise self.fail(f"the degree of {fname.text}() must not depend on x", tok)
        if n.is_number and (not isinstance(n, sp.Integer) or not 0 <= int(n) <= limit):
            raise self.fail(
                f"the degree of {fname.text}() must be an integer from 0 to {limit}", tok
            )
        return n

    def sum_call(self, fname: _Token) -> sp.Expr:
        usage = "sum(k, FROM, TO, TERM) = Σ_{k=FROM}^{TO} TERM"
        self.take("(")
        self.enter(fname)
        itok = self.tok
        if itok.kind != "name":
            raise self.fail("sum() needs an index name first", hint=f"Usage: {usage}.")
        index = itok.text
        if index in _RESERVED or index in self.params or index in self.bound:
            raise self.fail(
                f"{index!r} cannot be a sum index (it already has a meaning)",
                hint="Use a fresh name such as k.",
            )
        self.pos += 1
        bounds: list[sp.Expr] = []
        for _ in range(2):
            self.take(",")
            btok = self.tok
            bound = self.additive()
            if bound.has(X):
                raise self.fail("sum bounds must not depend on x", btok)
            if bound.is_number and not isinstance(bound, sp.Integer):
                raise self.fail("sum bounds must be integers", btok)
            bounds.append(bound)
        self.take(",")
        symbol = sp.Symbol(index, integer=True)
        self.bound[index] = symbol
        body = self.additive()
        del self.bound[index]
        self.depth -= 1
        self.take(")")
        lo, hi = bounds
        if lo.is_number and hi.is_number and int(hi) - int(lo) + 1 > MAX_TERMS:
            raise self.fail(f"sum() is limited to {MAX_TERMS} terms", fname)
        return self.build(fname, sp.Sum, body, (symbol, lo, hi))


def _param_symbols(params: Iterable[str]) -> dict[str, sp.Symbol]:
    out: dict[str, sp.Symbol] = {}
    for name in params:
        if (
            not isinstance(name, str)
            or not name.isidentifier()
            or not name.isascii()
            or "__" in name
            or keyword.iskeyword(name)
            or keyword.issoftkeyword(name)
        ):
            raise FormulaError(
                f"Invalid parameter name {name!r}: use letters, digits and single underscores.",
                column=0,
                token=str(name),
            )
        if name in _RESERVED:
            raise FormulaError(
                f"Invalid parameter name {name!r}: it is reserved (x, pi and the function "
                "names). Choose another name.",
                column=0,
                token=name,
            )
        out[name] = sp.Symbol(name, real=True)
    return out


def parse_formula(text: str, params: Iterable[str] = ()) -> sp.Expr:
    """Parse a formula in ``x`` and the declared ``params`` into a sympy expression.

    Args:
        text: The formula, e.g. ``"x + a*x*sin(w*x)"``.
        params: Names the formula may use besides ``x`` and ``pi``.

    Returns:
        The sympy expression (``x`` and the parameters are real symbols).

    Raises:
        FormulaError: The text is not in the accepted language (see the module docstring); the
            error carries the offending token and its 1-based column.
    """
    if not isinstance(text, str):
        raise FormulaError(
            f"A formula must be a string, but got {type(text).__name__}.", column=0, token=""
        )
    symbols = _param_symbols(params)
    if len(text) > MAX_LENGTH:
        raise _error(
            text, f"the formula is longer than {MAX_LENGTH} characters", MAX_LENGTH + 1, "..."
        )
    return _Parser(text, symbols).parse()


# ------------------------------------------------------------------------------------------
# Sums, substitution
# ------------------------------------------------------------------------------------------


def expand_sums(expr: sp.Expr, *, max_terms: int = 100_000) -> sp.Expr:
    """Replace every ``Sum`` with constant integer bounds by the explicit sum of its terms.

    sympy's own ``Sum.doit()`` is not used: it first evaluates the term with a *symbolic* index,
    where some closed forms are wrong (``hermite_prob(k, 0)`` in sympy 1.14).

    Raises:
        ValueError: A bound is not an integer constant, or the expansion exceeds ``max_terms``.
    """
    budget = [max_terms]

    def walk(node: sp.Basic) -> sp.Basic:
        if isinstance(node, sp.Sum):
            body = walk(node.function)
            total = body
            for index, lo, hi in reversed(node.limits):
                if not (lo.is_Integer and hi.is_Integer):
                    raise ValueError(
                        f"The bounds of {node} must be integers to expand it, got {lo} and {hi}."
                    )
                count = max(int(hi) - int(lo) + 1, 0)
                budget[0] -= count
                if budget[0] < 0:
                    raise ValueError(f"Expanding the sums would exceed {max_terms} terms.")
                total = sp.Add(
                    *(total.xreplace({index: sp.Integer(i)}) for i in range(int(lo), int(hi) + 1))
                )
            return total
        if not node.args:
            return node
        new_args = [walk(a) for a in node.args]
        if all(a is b for a, b in zip(new_args, node.args, strict=True)):
            return node
        return node.func(*new_args)

    return walk(expr)


def _substitute(expr: sp.Expr, values: Mapping[str, float]) -> sp.Expr:
    mapping: dict[sp.Basic, sp.Basic] = {}
    for s in expr.free_symbols:
        if s.name in values and s is not X:
            v = values[s.name]
            mapping[s] = sp.Integer(v) if isinstance(v, int) else sp.Float(float(v), 30)
    return expand_sums(expr.xreplace(mapping))


def spec_expr(spec: ActivationSpec | str, params: Mapping[str, float] | None = None) -> sp.Expr:
    """The sympy form of an activation with its parameters substituted and sums expanded.

    Args:
        spec: A registered name or its :class:`ActivationSpec`.
        params: Parameter values (omitted ones take their defaults; ranges are checked).

    Returns:
        A sympy expression in :data:`X` only.
    """
    if isinstance(spec, str):
        spec = get_spec(spec)
    values = spec.resolve(**dict(params or {}))
    return _substitute(parse_formula(spec.expr, spec.params), values)


# ------------------------------------------------------------------------------------------
# Compilation: a tree-walking interpreter over sympy nodes (no code generation)
# ------------------------------------------------------------------------------------------

Env = dict[str, Any]
Closure = Callable[[Env], Any]


def _scalar_fn(fn: Callable[[float], float], on_error: float = math.nan) -> Callable[[Any], Any]:
    def call(v: Any) -> float:
        try:
            return fn(float(v))
        except OverflowError:
            return math.inf
        except (ValueError, ZeroDivisionError):
            return on_error

    return call


def _scalar_log(v: float) -> float:
    if v == 0:
        return -math.inf
    return math.log(v) if v > 0 else math.nan


def _scalar_sinh(v: float) -> float:
    try:
        return math.sinh(v)
    except OverflowError:
        return math.copysign(math.inf, v)


_SCALAR: dict[str, Callable[[Any], Any]] = {
    "sin": _scalar_fn(math.sin),
    "cos": _scalar_fn(math.cos),
    "tan": _scalar_fn(math.tan),
    "exp": _scalar_fn(math.exp),
    "log": _scalar_fn(_scalar_log),
    "sqrt": _scalar_fn(math.sqrt),
    "tanh": _scalar_fn(math.tanh),
    "sinh": _scalar_fn(_scalar_sinh),
    "cosh": _scalar_fn(math.cosh),
    "atan": _scalar_fn(math.atan),
    "erf": _scalar_fn(math.erf),
    "abs": _scalar_fn(abs),
    "sign": _scalar_fn(lambda v: float((v > 0) - (v < 0))),
    "gamma": _scalar_fn(math.gamma, on_error=math.inf),  # poles: 1/Γ = 0 there
}


@dataclass(frozen=True)
class _Backend:
    name: str
    is_array: Callable[[Any], bool]
    fns: Mapping[str, Callable[..., Any]]
    heaviside: Callable[[Any, float], Any]
    maximum: Callable[[Any, Any], Any]
    minimum: Callable[[Any, Any], Any]
    power: Callable[[Any, Any], Any]


def _torch_backend() -> _Backend:
    import torch

    def heaviside(v: Any, h0: float) -> Any:
        return torch.where(v > 0, 1.0, torch.where(v < 0, 0.0, h0)).to(v.dtype)

    def maximum(a: Any, b: Any) -> Any:
        if not isinstance(a, torch.Tensor):
            return torch.clamp(b, min=a)
        if not isinstance(b, torch.Tensor):
            return torch.clamp(a, min=b)
        return torch.maximum(a, b)

    def minimum(a: Any, b: Any) -> Any:
        if not isinstance(a, torch.Tensor):
            return torch.clamp(b, max=a)
        if not isinstance(b, torch.Tensor):
            return torch.clamp(a, max=b)
        return torch.minimum(a, b)

    return _Backend(
        name="torch",
        is_array=lambda v: isinstance(v, torch.Tensor),
        fns={
            "sin": torch.sin,
            "cos": torch.cos,
            "tan": torch.tan,
            "exp": torch.exp,
            "log": torch.log,
            "sqrt": torch.sqrt,
            "tanh": torch.tanh,
            "sinh": torch.sinh,
            "cosh": torch.cosh,
            "atan": torch.atan,
            "erf": torch.erf,
            "abs": torch.abs,
            "sign": torch.sign,
        },
        heaviside=heaviside,
        maximum=maximum,
        minimum=minimum,
        power=torch.pow,
    )


def _numpy_backend() -> _Backend:
    import numpy as np
    from scipy import special

    return _Backend(
        name="numpy",
        is_array=lambda v: isinstance(v, np.ndarray),
        fns={
            "sin": np.sin,
            "cos": np.cos,
            "tan": np.tan,
            "exp": np.exp,
            "log": np.log,
            "sqrt": np.sqrt,
            "tanh": np.tanh,
            "sinh": np.sinh,
            "cosh": np.cosh,
            "atan": np.arctan,
            "erf": special.erf,
            "abs": np.abs,
            "sign": np.sign,
        },
        heaviside=lambda v, h0: np.heaviside(v, h0),
        maximum=np.maximum,
        minimum=np.minimum,
        power=np.power,
    )


_SYMPY_FUNCS: dict[type, str] = {
    sp.sin: "sin",
    sp.cos: "cos",
    sp.tan: "tan",
    sp.exp: "exp",
    sp.log: "log",
    sp.tanh: "tanh",
    sp.sinh: "sinh",
    sp.cosh: "cosh",
    sp.atan: "atan",
    sp.erf: "erf",
    sp.Abs: "abs",
    sp.sign: "sign",
}


def _as_int(value: Any, what: str) -> int:
    v = float(value)
    if not math.isfinite(v) or v != int(v):
        raise ValueError(f"{what} must be an integer, but evaluates to {value!r}.")
    return int(v)


class _Compiler:
    def __init__(self, backend: _Backend) -> None:
        self.b = backend

    def unary(self, name: str, arg: Closure) -> Closure:
        array_fn, scalar_fn = self.b.fns[name], _SCALAR[name]
        is_array = self.b.is_array
        return lambda env: array_fn(v) if is_array(v := arg(env)) else scalar_fn(v)

    def pow_(self, base: Closure, exp: Closure) -> Closure:
        is_array, power = self.b.is_array, self.b.power

        def call(env: Env) -> Any:
            b, e = base(env), exp(env)
            if is_array(b) or is_array(e):
                if not is_array(b) and self.b.name == "torch":
                    return power(float(b), e)
                return power(b, e)
            try:
                out = float(b) ** float(e)
            except ZeroDivisionError:
                return math.inf
            except OverflowError:
                return math.inf
            return out if isinstance(out, float) else math.nan  # complex -> nan

        return call

    def closure(self, node: sp.Basic) -> Closure:
        if isinstance(node, sp.Symbol):
            name = node.name
            return lambda env: env[name]
        if not node.free_symbols:
            if node.has(sp.Sum):
                node = expand_sums(node)
            try:
                value = complex(sp.N(node, 30))
            except TypeError:
                raise ValueError(f"The constant {node} is not a real number.") from None
            if value.imag != 0 or math.isnan(value.real):
                raise ValueError(f"The constant {node} is not a real number.")
            const = value.real
            return lambda env: const
        args = [self.closure(a) for a in node.args] if not isinstance(node, sp.Sum) else []
        if isinstance(node, sp.Add):
            return lambda env: reduce(operator.add, (a(env) for a in args))
        if isinstance(node, sp.Mul):
            return lambda env: reduce(operator.mul, (a(env) for a in args))
        if isinstance(node, sp.Pow):
            return self.pow_(args[0], args[1])
        for cls, name in _SYMPY_FUNCS.items():
            if isinstance(node, cls):
                return self.unary(name, args[0])
        if isinstance(node, sp.Heaviside):
            h0 = float(node.args[1]) if len(node.args) > 1 else 0.5
            arg0, is_array, heaviside = args[0], self.b.is_array, self.b.heaviside

            def step(env: Env) -> Any:
                v = arg0(env)
                if is_array(v):
                    return heaviside(v, h0)
                v = float(v)
                return 1.0 if v > 0 else 0.0 if v < 0 else h0

            return step
        if isinstance(node, (sp.Max, sp.Min)):
            fold = self.b.maximum if isinstance(node, sp.Max) else self.b.minimum
            pick = max if isinstance(node, sp.Max) else min
            is_array = self.b.is_array

            def extreme(env: Env) -> Any:
                vals = [a(env) for a in args]
                out = vals[0]
                for v in vals[1:]:
                    out = fold(out, v) if is_array(out) or is_array(v) else pick(out, v)
                return out

            return extreme
        if isinstance(node, (sp.gamma, sp.factorial)):
            shift = 1.0 if isinstance(node, sp.factorial) else 0.0
            arg0, is_array = args[0], self.b.is_array

            def gamma(env: Env) -> Any:
                v = arg0(env)
                if is_array(v):
                    raise ValueError("gamma/factorial of an x-dependent value is not supported.")
                return _SCALAR["gamma"](float(v) + shift)

            return gamma
        if isinstance(node, (sp.legendre, sp.chebyshevt, sp.hermite_prob)):
            return self.polynomial(node, args[0], args[1])
        if isinstance(node, sp.Sum):
            return self.sum_(node)
        raise ValueError(f"Cannot compile the sympy node {type(node).__name__}: {node}.")

    def polynomial(self, node: sp.Basic, degree: Closure, arg: Closure) -> Closure:
        if isinstance(node, sp.legendre):

            def step(k: int) -> tuple[float, float, float]:
                return 2 * k + 1, k, k + 1
        elif isinstance(node, sp.chebyshevt):

            def step(k: int) -> tuple[float, float, float]:
                return 2.0, 1.0, 1.0
        else:

            def step(k: int) -> tuple[float, float, float]:
                return 1.0, k, 1.0

        def call(env: Env) -> Any:
            n = _as_int(degree(env), "A polynomial degree")
            if not 0 <= n <= MAX_DEGREE:
                raise ValueError(f"Polynomial degrees must lie in [0, {MAX_DEGREE}], got {n}.")
            t = arg(env)
            prev, cur = 1.0, t
            if n == 0:
                return 1.0
            for k in range(1, n):
                a, b, c = step(k)
                prev, cur = cur, (a * t * cur - b * prev) / c
            return cur

        return call

    def sum_(self, node: sp.Sum) -> Closure:
        body = self.closure(node.function)
        limits = [(s.name, self.closure(lo), self.closure(hi)) for s, lo, hi in node.limits]

        def call(env: Env) -> Any:
            def nested(level: int, env: Env) -> Any:
                if level == len(limits):
                    return body(env)
                name, lo_c, hi_c = limits[level]
                lo = _as_int(lo_c(env), "A sum bound")
                hi = _as_int(hi_c(env), "A sum bound")
                if hi - lo + 1 > MAX_TERMS:
                    raise ValueError(f"A sum is limited to {MAX_TERMS} terms, got {hi - lo + 1}.")
                total: Any = 0.0
                for k in range(lo, hi + 1):
                    total = total + nested(level + 1, {**env, name: k})
                return total

            return nested(0, env)

        return call


def compile_expr(expr: sp.Expr, backend: str = "torch") -> Callable[..., Any]:
    """Compile a sympy expression in ``x`` (and parameters) into ``fn(x, **params)``.

    Args:
        expr: An expression built by :func:`parse_formula` (possibly differentiated/substituted).
        backend: ``"torch"`` (tensors; dtype/shape preserved, differentiable) or ``"numpy"``.

    Returns:
        ``fn(x, **params)``; constant sub-expressions are folded at compile time.

    Raises:
        ValueError: The expression contains a node this compiler does not know.
    """
    compiler = _Compiler(_torch_backend() if backend == "torch" else _numpy_backend())
    closure = compiler.closure(expr)
    if backend == "torch":

        def fn_torch(x: Tensor, **params: float) -> Tensor:
            out = closure({**params, "x": x})
            if not compiler.b.is_array(out):  # a constant formula: broadcast to x's shape
                import torch

                out = torch.full_like(x, float(out))
            return out

        return fn_torch

    import numpy as np

    def fn_numpy(x: Any, **params: float) -> Any:
        xa = np.asarray(x, dtype=np.float64)
        with np.errstate(all="ignore"):
            out = closure({**params, "x": xa})
            return np.broadcast_to(np.asarray(out, dtype=np.float64), xa.shape).copy()

    return fn_numpy


# ------------------------------------------------------------------------------------------
# Formula activations
# ------------------------------------------------------------------------------------------


def _integer_symbols(expr: sp.Expr) -> set[str]:
    """Parameters used where an integer is required (sum bounds, degrees)."""
    names: set[str] = set()
    for node in sp.preorder_traversal(expr):
        if isinstance(node, sp.Sum):
            for _, lo, hi in node.limits:
                names |= {s.name for s in lo.free_symbols | hi.free_symbols}
        elif isinstance(node, (sp.legendre, sp.chebyshevt, sp.hermite_prob, sp.factorial)):
            names |= {s.name for s in node.args[0].free_symbols}
    return names


def _to_param(name: str, value: Param | float | Mapping[str, Any], integer: bool) -> Param:
    if isinstance(value, Param):
        p = value
    elif isinstance(value, Mapping):
        allowed = {"default", "low", "high", "log", "integer", "doc"}
        unknown = sorted(set(value) - allowed)
        if unknown or "default" not in value:
            raise ActivationError(
                f"Parameter {name!r}: a mapping needs 'default' and may have "
                f"{', '.join(sorted(allowed - {'default'}))}; got keys {sorted(value)}."
            )
        d = float(value["default"])
        p = Param(
            default=d,
            low=float(value.get("low", d)),
            high=float(value.get("high", d)),
            log=bool(value.get("log", False)),
            integer=bool(value.get("integer", False)),
            doc=str(value.get("doc", "")),
        )
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        p = Param(float(value), low=float(value), high=float(value))
    else:
        raise ActivationError(
            f"Parameter {name!r}: give a number, a Param or a mapping "
            f"{{default, low, high, log}}, not {value!r}."
        )
    if integer and not p.integer:
        if any(float(v) != int(v) for v in (p.default, p.low, p.high)):
            raise ActivationError(
                f"Parameter {name!r} is used as a sum bound or polynomial degree, so it must be "
                f"an integer, but got (default={p.default}, low={p.low}, high={p.high})."
            )
        p = Param(p.default, p.low, p.high, log=p.log, integer=True, doc=p.doc)
    return p


def compile_formula(text: str, params: Iterable[str] = ()) -> Callable[..., Tensor]:
    """Parse ``text`` safely and compile it to ``fn(x, **params)`` on torch tensors."""
    return compile_expr(parse_formula(text, params), "torch")


def register_formula(
    name: str,
    expr: str,
    params: Mapping[str, Param | float | Mapping[str, Any]] | None = None,
    *,
    family: str = "custom",
    force: bool = False,
) -> ActivationSpec:
    """Register an activation given by a safe formula (e.g. a study's inline ``expr:``).

    Args:
        name: Registry name.
        expr: Formula in ``x`` and the parameter names (see :func:`parse_formula`).
        params: Each parameter as a :class:`Param`, a plain number (a fixed value: the range
            ``[v, v]``), or a mapping ``{default, low, high, log[, integer]}``. Parameters used as
            sum bounds or polynomial degrees become integer parameters.
        family: Family name.
        force: Replace an existing registration.

    Returns:
        The registered :class:`ActivationSpec` (its ``fn`` is the compiled torch function).

    Raises:
        FormulaError: The formula is refused.
        ActivationError: A bad parameter declaration, or the name is taken.
    """
    raw = dict(params or {})
    sym = parse_formula(expr, raw)
    integer = _integer_symbols(sym)
    declared = {k: _to_param(k, v, k in integer) for k, v in raw.items()}
    fn = compile_expr(sym, "torch")
    spec = ActivationSpec(
        name=name,
        family=family,
        fn=fn,
        params=declared,
        expr=expr,
        module="<formula>",
        doc=f"Formula activation f(x) = {expr}.",
    )
    return register(spec, force=force)


# ------------------------------------------------------------------------------------------
# Audit
# ------------------------------------------------------------------------------------------


@dataclass
class AuditResult:
    """What :func:`audit` found for one activation at given parameter values.

    Attributes:
        name: Activation name (or the formula text).
        params: The resolved parameter values.
        f0: ``f(0)``.
        df0: ``f'(0)``.
        lipschitz: Numerical estimate of ``sup |f'|`` on ``interval`` (see the module docstring).
        interval: The audited interval ``(a, b)``.
        starts_at_zero: ``f(0) = 0``: with ``B = 0`` at initialisation ``ΔW = s·f(B·A)`` starts
            at zero and the adapted model starts as the base model.
        warnings: Plain-words findings.
        df_min: Smallest ``f'`` found on the interval (negative: ``f`` is not monotone there).
        grid_points: How many points ``f'`` was evaluated on.
    """

    name: str
    params: dict[str, float]
    f0: float
    df0: float
    lipschitz: float
    interval: tuple[float, float]
    starts_at_zero: bool
    warnings: list[str] = field(default_factory=list)
    df_min: float = math.nan
    grid_points: int = 0

    def to_dict(self) -> dict[str, Any]:
        """``{name, params, f0, df0, lipschitz, interval, starts_at_zero, warnings}``."""
        return {
            "name": self.name,
            "params": dict(self.params),
            "f0": float(self.f0),
            "df0": float(self.df0),
            "lipschitz": float(self.lipschitz),
            "interval": [float(self.interval[0]), float(self.interval[1])],
            "starts_at_zero": bool(self.starts_at_zero),
            "warnings": list(self.warnings),
        }


def _check_interval(interval: Iterable[float]) -> tuple[float, float]:
    try:
        a, b = (float(v) for v in interval)
    except (TypeError, ValueError):
        raise ValueError(
            f"The interval must be two numbers (a, b), but got {interval!r}."
        ) from None
    if not (math.isfinite(a) and math.isfinite(b) and a < b):
        raise ValueError(f"The interval must satisfy a < b with finite ends, but got ({a}, {b}).")
    return a, b


def _value_at(expr: sp.Expr, point: float) -> float:
    """``expr`` at ``x = point``; a removable singularity is resolved by a limit."""
    try:
        value = complex(sp.N(expr.xreplace({X: sp.Float(point)}), 30))
        if value.imag == 0 and math.isfinite(value.real):
            return value.real
    except (TypeError, ValueError, ZeroDivisionError):
        pass
    try:
        left = sp.limit(expr, X, point, "-")
        right = sp.limit(expr, X, point, "+")
        if left == right and left.is_real and left.is_finite:
            return float(left)
    except Exception:  # sympy's limit may give up in many ways; report undefined then
        pass
    return math.nan


_OSCILLATING = (sp.sin, sp.cos, sp.tan)
#: Functions whose argument only matters while it is small: ``(class, |argument| limit)``.
#: ``exp(g)`` is negligible once ``g < -40``; ``tanh``/``erf``/``atan``/``sign``/``Heaviside`` are
#: flat once ``|g|`` is large.
_GATED = (
    (sp.exp, 40.0),
    (sp.tanh, 20.0),
    (sp.erf, 10.0),
    (sp.atan, 1e3),
    (sp.Heaviside, 1e-3),
    (sp.sign, 1e-3),
)


def _frequency_terms(df: sp.Expr) -> list[Callable[[Any], Any]]:
    """Local-frequency estimators from every oscillating or steep sub-term of ``f'``.

    Each returned function maps grid points to ``|g'(x)|`` for a sub-term ``h(g(x))`` (how fast
    its argument moves), set to 0 where ``h`` is flat (e.g. ``exp(g)`` with ``g < -40``).
    """
    import numpy as np

    out: list[Callable[[Any], Any]] = []
    seen: set[sp.Expr] = set()
    for node in sp.preorder_traversal(df):
        limit = next((lim for cls, lim in _GATED if isinstance(node, cls)), None)
        if not (isinstance(node, _OSCILLATING) or limit is not None):
            continue
        arg = node.args[0]
        if not arg.has(X) or (type(node), arg) in seen:
            continue
        seen.add((type(node), arg))
        slope = compile_expr(sp.diff(arg, X), "numpy")
        value = compile_expr(arg, "numpy")

        def freq(
            xs: Any,
            slope: Any = slope,
            value: Any = value,
            limit: Any = limit,
            is_exp: bool = isinstance(node, sp.exp),
        ) -> Any:
            f = np.abs(slope(xs))
            f = np.where(np.isfinite(f), f, 1e300)
            if limit is None:
                return f
            g = value(xs)
            active = g > -limit if is_exp else np.abs(g) < limit
            return np.where(active, f, 0.0)

        out.append(freq)
    return out


def oscillation_grid(df: sp.Expr, a: float, b: float, budget: int) -> tuple[Any, bool]:
    """A grid on ``[a, b]`` with ≥ 40 points per local period, plus a log grid around 0."""
    import numpy as np

    segments = 256
    edges = np.linspace(a, b, segments + 1)
    probe = np.linspace(a, b, segments * 8 + 1)
    freq = np.zeros_like(probe)
    for estimate in _frequency_terms(df):
        freq = np.maximum(freq, estimate(probe))
    seg_freq = freq[:-1].reshape(segments, 8).max(axis=1)
    seg_freq = np.maximum(seg_freq, freq[8::8])
    width = (b - a) / segments
    want = np.clip(np.ceil(40 * width * seg_freq / (2 * np.pi)), 32, budget).astype(np.int64)
    capped = bool(want.sum() > budget)
    if capped:
        want = np.maximum((want * (budget / want.sum())).astype(np.int64), 32)
    parts = [np.linspace(edges[i], edges[i + 1], int(want[i])) for i in range(segments)]
    reach = max(abs(a), abs(b))
    log_part = np.logspace(-15, math.log10(reach), 20_000) if reach > 0 else np.zeros(0)
    parts.extend([log_part, -log_part, np.array([a, b, 0.0])])
    xs = np.concatenate(parts)
    xs = np.unique(xs[(xs >= a) & (xs <= b)])
    return xs, capped


def _extreme(
    df: sp.Expr, dfn: Callable[..., Any], xs: Any, vals: Any, sign: float
) -> tuple[float, float]:
    """Refine ``max(sign·vals)`` (sign=+1 on |f'| for sup, -1 on f' for min) near grid maxima."""
    import numpy as np
    from scipy.optimize import minimize_scalar

    target = sign * vals
    best_i = int(np.nanargmax(target))
    best_x, best_v = float(xs[best_i]), float(target[best_i])
    interior = np.arange(1, len(xs) - 1)
    if len(interior):
        peaks = interior[
            (target[interior] >= target[interior - 1]) & (target[interior] >= target[interior + 1])
        ]
        peaks = peaks[np.argsort(target[peaks])[::-1][:32]]

        def objective(t: float) -> float:
            v = float(dfn(np.array([t]))[0])
            v = abs(v) if sign > 0 else -v
            return -v if math.isfinite(v) else math.inf

        for i in peaks:
            res = minimize_scalar(
                objective,
                bounds=(float(xs[i - 1]), float(xs[i + 1])),
                method="bounded",
                options={"xatol": 1e-14 * max(1.0, abs(float(xs[i])))},
            )
            if math.isfinite(res.fun) and -res.fun > best_v:
                best_x, best_v = float(res.x), -float(res.fun)
    # Exact critical points when f'' is a polynomial.
    d2 = sp.diff(df, X)
    if d2.is_polynomial(X) and d2 != 0:
        lo, hi = float(xs[0]), float(xs[-1])
        try:
            roots = sp.Poly(d2, X).nroots(n=20)
        except Exception:  # nroots may fail to converge; the grid result stands
            roots = []
        for r in roots:
            if r.is_real and lo <= float(r) <= hi:
                v = float(dfn(np.array([float(r)]))[0])
                v = abs(v) if sign > 0 else -v
                if v > best_v:
                    best_x, best_v = float(r), v
    return best_x, best_v if sign > 0 else -best_v


def _growth(dfn: Callable[..., Any], freqs: list[Callable[..., Any]], radius: float) -> float:
    """``max |f'|`` over windows just inside ``±radius`` (several local periods wide)."""
    import numpy as np

    best = 0.0
    for edge in (radius, -radius):
        probe = np.array([edge])
        freq = max((float(f(probe)[0]) for f in freqs), default=0.0)
        freq = freq if math.isfinite(freq) else 0.0
        width = radius / 2 if freq == 0 else min(radius / 2, 50 * 2 * math.pi / freq)
        xs = np.linspace(edge - math.copysign(width, edge), edge, 20_001)
        vals = np.abs(dfn(xs))
        vals = vals[np.isfinite(vals)]
        if len(vals):
            best = max(best, float(vals.max()))
    return best


def _fmt(v: float) -> str:
    return f"{v:.6g}"


def _audit_expr(
    name: str, f: sp.Expr, values: dict[str, float], interval: tuple[float, float]
) -> AuditResult:
    import numpy as np

    a, b = interval
    df = sp.diff(f, X)
    f0 = _value_at(f, 0.0)
    df0 = _value_at(df, 0.0)
    dfn = compile_expr(df, "numpy")
    xs, capped = oscillation_grid(df, a, b, MAX_GRID)
    vals = dfn(xs)
    warnings: list[str] = []
    bad = ~np.isfinite(vals)
    span = f"[{_fmt(a)}, {_fmt(b)}]"
    if bad.any():
        where = float(xs[bad][0])
        warnings.append(
            f"f' is not finite at x = {_fmt(where)} on {span}: f is undefined or infinitely "
            "steep there, so an update with such entries would produce NaN or inf."
        )
        lipschitz, df_min = math.inf, math.nan
    else:
        _, lipschitz = _extreme(df, dfn, xs, np.abs(vals), +1.0)
        min_x, df_min = _extreme(df, dfn, xs, vals, -1.0)
    starts_at_zero = math.isfinite(f0) and abs(f0) <= 1e-12
    if not math.isfinite(f0):
        warnings.append("f(0) is undefined: the update is undefined at initialisation (B = 0).")
    elif not starts_at_zero:
        warnings.append(
            f"f(0) = {_fmt(f0)}: the update starts at {_fmt(f0)}·alpha/r in every entry, "
            "not at zero"
        )
    left = float(dfn(np.array([-1e-300]))[0])
    right = float(dfn(np.array([1e-300]))[0])
    kink = math.isfinite(left) and math.isfinite(right) and abs(left - right) > 1e-9
    if kink:
        warnings.append(
            f"f is not differentiable at 0 (f' jumps from {_fmt(left)} to {_fmt(right)}): B·A "
            "starts at exactly 0, where autograd uses a sub-gradient (0 for relu and abs), so "
            "the adapter may receive no gradient and never start learning."
        )
    elif math.isfinite(df0) and df0 == 0:
        warnings.append(
            "f'(0) = 0: with B = 0 at initialisation the gradients of A and B vanish, so the "
            "adapter cannot start learning."
        )
    elif math.isfinite(df0) and abs(df0 - 1) > SLOPE_AT_ZERO_TOLERANCE:
        warnings.append(
            f"f'(0) = {_fmt(df0)} instead of 1: at the start of training the update's gradient "
            f"is scaled by {_fmt(df0)}, which rescales the effective learning rate of the "
            "adapter by that factor."
        )
    if math.isfinite(lipschitz) and lipschitz > LARGE_SLOPE:
        warnings.append(
            f"Large slope: |f'| reaches {_fmt(lipschitz)} on {span} (above {LARGE_SLOPE:g}), so "
            f"the update and its gradient can be amplified up to {_fmt(lipschitz)} times; lower "
            "the amplitude or the frequency if training is unstable."
        )
    if math.isfinite(df_min) and df_min < -1e-12:
        warnings.append(
            f"Not monotone: f' reaches {_fmt(df_min)} at x = {_fmt(min_x)} on {span}, so "
            "different entries of B·A map to the same update and the gradient flips sign there."
        )
    if capped:
        warnings.append(
            f"The oscillation is too fast to resolve on {span} with {MAX_GRID} points: the "
            "Lipschitz value may underestimate sup |f'|; audit a smaller interval."
        )
    freqs = _frequency_terms(df)
    near, far = _growth(dfn, freqs, 10.0), _growth(dfn, freqs, 1000.0)
    if far > max(2.0 * near, LARGE_SLOPE):
        warnings.append(
            f"Unbounded growth: |f'| keeps growing with |x| (about {_fmt(near)} near |x| = 10, "
            f"{_fmt(far)} near |x| = 1000), so large entries of B·A get ever steeper updates "
            "(a divergence risk); a bounded or damped perturbation avoids it."
        )
    return AuditResult(
        name=name,
        params=values,
        f0=f0,
        df0=df0,
        lipschitz=lipschitz,
        interval=(a, b),
        starts_at_zero=starts_at_zero,
        warnings=warnings,
        df_min=df_min,
        grid_points=len(xs),
    )


def audit(
    name: str,
    params: Mapping[str, float] | None = None,
    *,
    interval: Iterable[float] = (-1.0, 1.0),
) -> AuditResult:
    """Audit the registered activation ``name`` at ``params`` (defaults for omitted ones).

    Args:
        name: Registry name.
        params: Parameter values; names and ranges are checked like :func:`get_activation`.
        interval: ``(a, b)`` on which ``sup |f'|`` and monotonicity are examined.

    Returns:
        The :class:`AuditResult`.

    Raises:
        ActivationError: Unknown name or bad parameters.
        ValueError: A bad interval.
    """
    iv = _check_interval(interval)
    spec = get_spec(name)
    values = spec.resolve(**dict(params or {}))
    f = _substitute(parse_formula(spec.expr, spec.params), values)
    return _audit_expr(name, f, values, iv)


def audit_formula(
    text: str,
    params: Mapping[str, float] | None = None,
    *,
    interval: Iterable[float] = (-1.0, 1.0),
    name: str | None = None,
) -> AuditResult:
    """Audit a formula (not registered) with every parameter given a value.

    Raises:
        FormulaError: The formula is refused (e.g. an undeclared name).
        ValueError: A bad interval or a non-numeric parameter value.
    """
    iv = _check_interval(interval)
    values: dict[str, float] = {}
    for k, v in (params or {}).items():
        try:
            values[k] = float(v)
        except (TypeError, ValueError):
            raise ValueError(f"Parameter {k!r} must be a number, but got {v!r}.") from None
    sym = parse_formula(text, values)
    for k in _integer_symbols(sym):
        if not math.isfinite(values[k]) or values[k] != int(values[k]):
            raise ValueError(f"Parameter {k!r} is a sum bound or degree and must be an integer.")
        values[k] = int(values[k])
    return _audit_expr(name or text, _substitute(sym, values), values, iv)
