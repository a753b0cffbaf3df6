"""The safe formula parser: text in ``x`` → a sympy expression, never ``eval``.

:func:`parse_formula` reads a formula in ``x`` and declared parameters with its own tokenizer and
recursive-descent parser and builds sympy objects directly. It never calls ``eval``, ``exec``,
``sympify`` or ``parse_expr`` on the text. The accepted language is fixed:

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
"""

from __future__ import annotations

import difflib
import keyword
import math
import operator
from collections.abc import Callable, Iterable, Mapping
from typing import Any, NamedTuple

import sympy as sp

__all__ = [
    "FUNCTIONS",
    "MAX_DEGREE",
    "MAX_DEPTH",
    "MAX_LENGTH",
    "MAX_TERMS",
    "FormulaError",
    "X",
    "parse_formula",
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
