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

**Total cost.** Nesting multiplies the per-construct limits (three nested 256-term sums have
16.7 M terms), so while reading the text the parser also estimates the cost of every part, the
element-wise operations one evaluation performs (``cost(a + b) = 1 + cost(a) + cost(b)``, a sum
multiplies its term's cost by its number of terms, a polynomial its argument's by its degree; see
:mod:`activations.formula.cost`), and refuses the formula as soon as a part costs more than
:data:`~activations.formula.cost.MAX_FORMULA_COST`, naming that part. :func:`formula_cost`
returns the estimate.
"""

from __future__ import annotations

import difflib
import functools
import keyword
import math
import operator
from collections.abc import Callable, Iterable, Mapping
from typing import Any, NamedTuple

import sympy as sp

from .cost import (
    MAX_FORMULA_COST,
    Range,
    declared_ranges,
    format_cost,
    node_cost,
    polynomial_cost,
    sum_cost,
    value_range,
)

__all__ = [
    "FUNCTIONS",
    "MAX_DEGREE",
    "MAX_DEPTH",
    "MAX_FORMULA_COST",
    "MAX_LENGTH",
    "MAX_TERMS",
    "FormulaError",
    "X",
    "formula_cost",
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


class _Part(NamedTuple):
    """A parsed sub-expression: its sympy node, its cost and where it is in the text."""

    expr: sp.Expr
    cost: int  # see activations.formula.cost
    start: int  # 0-based offset of its first character
    end: int  # 0-based offset just past its last character


class _Parser:
    """Recursive descent over the token list, building sympy nodes as it goes.

    Every grammar method returns a :class:`_Part`; :meth:`charge` refuses a part whose cost is
    over :data:`MAX_FORMULA_COST` before its sympy node is built.
    """

    def __init__(
        self, text: str, params: Mapping[str, sp.Symbol], ranges: Mapping[str, Range]
    ) -> None:
        self.text = text
        self.tokens = _tokenize(text)
        self.pos = 0
        self.params = params
        self.ranges: dict[str, Range] = dict(ranges)  # declared parameters, sum indices in scope
        self.bound: dict[str, sp.Symbol] = {}  # sum indices in scope
        self.depth = 0

    # -- helpers ----------------------------------------------------------------------------
    @property
    def tok(self) -> _Token:
        return self.tokens[self.pos]

    @property
    def end(self) -> int:
        """Offset just past the last consumed token."""
        last = self.tokens[self.pos - 1]
        return last.column - 1 + len(last.text)

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

    def charge(self, cost: int, start: int) -> None:
        """Refuse the part ``text[start:self.end]`` if it costs more than the bound."""
        if cost <= MAX_FORMULA_COST:
            return
        part = self.text[start : self.end]
        shown, part_shown = (t if len(t) <= 80 else t[:77] + "..." for t in (self.text, part))
        raise FormulaError(
            f"Invalid formula {shown!r}: too costly to evaluate. The part {part_shown!r} at "
            f"column {start + 1} costs about {format_cost(cost)} operations per evaluated "
            f"element, over the bound MAX_FORMULA_COST = {format_cost(MAX_FORMULA_COST)} "
            "(nested sums multiply their numbers of terms, nested polynomials their degrees). "
            "Use fewer sum terms, lower polynomial degrees or less nesting, or declare a "
            "smaller range for a parameter used as a sum bound or degree.",
            column=start + 1,
            token=part,
        )

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

    def combine(
        self, tok: _Token, fn: Callable[..., sp.Expr], start: int, *operands: _Part
    ) -> _Part:
        """One operation on parsed operands: ``cost = 1 + Σ cost(operand)``."""
        cost = node_cost(*(o.cost for o in operands))
        self.charge(cost, start)
        return _Part(self.build(tok, fn, *(o.expr for o in operands)), cost, start, self.end)

    # -- grammar ----------------------------------------------------------------------------
    def parse(self) -> _Part:
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

    def additive(self) -> _Part:
        node = self.term()
        while self.tok.kind == "op" and self.tok.text in {"+", "-"}:
            tok = self.tok
            self.pos += 1
            rhs = self.term()
            fn = operator.add if tok.text == "+" else operator.sub
            node = self.combine(tok, fn, node.start, node, rhs)
        return node

    def term(self) -> _Part:
        node = self.unary()
        while self.tok.kind == "op" and self.tok.text in {"*", "/"}:
            tok = self.tok
            self.pos += 1
            rhs = self.unary()
            fn = operator.mul if tok.text == "*" else operator.truediv
            node = self.combine(tok, fn, node.start, node, rhs)
        return node

    def unary(self) -> _Part:
        tok = self.tok
        if tok.kind == "op" and tok.text in {"+", "-"}:
            self.pos += 1
            self.enter(tok)
            operand = self.unary()
            self.depth -= 1
            start = tok.column - 1
            if tok.text == "+":
                return operand._replace(start=start)
            return self.combine(tok, operator.neg, start, operand)
        return self.power()

    def power(self) -> _Part:
        base = self.atom()
        if self.tok.kind == "op" and self.tok.text == "**":
            tok = self.tok
            self.pos += 1
            self.enter(tok)
            exponent = self.unary()
            self.depth -= 1
            pow_ = functools.partial(self.checked_pow, tok=tok)
            return self.combine(tok, pow_, base.start, base, exponent)
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

    def atom(self) -> _Part:
        tok = self.tok
        start = tok.column - 1
        if tok.kind == "num":
            self.pos += 1
            return _Part(self.number(tok), 1, start, self.end)
        if tok.kind == "op" and tok.text == "(":
            self.pos += 1
            self.enter(tok)
            node = self.additive()
            self.depth -= 1
            self.take(")")
            return node._replace(start=start, end=self.end)
        if tok.kind == "name":
            self.pos += 1
            if self.tok.kind == "op" and self.tok.text == "(":
                return self.call(tok)
            return _Part(self.name(tok), 1, start, self.end)
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

    def args(self, fname: _Token) -> list[tuple[_Token, _Part]]:
        self.take("(")
        self.enter(fname)
        out: list[tuple[_Token, _Part]] = []
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

    def call(self, fname: _Token) -> _Part:
        name = fname.text
        start = fname.column - 1
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
            return self.combine(fname, _UNARY[name], start, args[0][1])
        if name == "factorial":
            self.arity(fname, args, 1, "factorial(n), n an integer not depending on x")
            self.degree_arg(fname, *args[0], limit=170)
            return self.combine(fname, sp.factorial, start, args[0][1])
        self.arity(fname, args, 2, f"{name}(n, t), n an integer degree not depending on x")
        n_part, t_part = args[0][1], args[1][1]
        n = self.degree_arg(fname, *args[0], limit=MAX_DEGREE)
        cost = polynomial_cost(self.largest(n, MAX_DEGREE), n_part.cost, t_part.cost)
        self.charge(cost, start)
        cls = _POLYNOMIALS[name]
        if isinstance(n, sp.Integer):
            node = self.build(fname, cls, n, t_part.expr)
        else:
            # sympy's closed forms for a symbolic degree are not always right (hermite_prob(n, 0)
            # in sympy 1.14): keep the node unevaluated until the degree is a number.
            node = self.build(fname, lambda a, b: cls(a, b, evaluate=False), n, t_part.expr)
        return _Part(node, cost, start, self.end)

    def largest(self, value: sp.Expr, cap: int) -> int:
        """The largest value of an integer expression, within ``[0, cap]`` (``cap`` if unknown)."""
        found = value_range(value, self.ranges)
        if found is None:
            return cap
        return min(max(math.floor(found[1]), 0), cap)

    def degree_arg(self, fname: _Token, tok: _Token, part: _Part, *, limit: int) -> sp.Expr:
        n = part.expr
        if n.has(X):
            raise self.fail(f"the degree of {fname.text}() must not depend on x", tok)
        if n.is_number and (not isinstance(n, sp.Integer) or not 0 <= int(n) <= limit):
            raise self.fail(
                f"the degree of {fname.text}() must be an integer from 0 to {limit}", tok
            )
        return n

    def sum_call(self, fname: _Token) -> _Part:
        usage = "sum(k, FROM, TO, TERM) = Σ_{k=FROM}^{TO} TERM"
        start = fname.column - 1
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
        bounds: list[_Part] = []
        for _ in range(2):
            self.take(",")
            btok = self.tok
            bound = self.additive()
            if bound.expr.has(X):
                raise self.fail("sum bounds must not depend on x", btok)
            if bound.expr.is_number and not isinstance(bound.expr, sp.Integer):
                raise self.fail("sum bounds must be integers", btok)
            bounds.append(bound)
        self.take(",")
        lo, hi = bounds[0].expr, bounds[1].expr
        lo_range, hi_range = value_range(lo, self.ranges), value_range(hi, self.ranges)
        if lo_range is None or hi_range is None:
            terms = MAX_TERMS
        else:
            terms = min(max(math.floor(hi_range[1]) - math.ceil(lo_range[0]) + 1, 0), MAX_TERMS)
            self.ranges[index] = (lo_range[0], hi_range[1])
        symbol = sp.Symbol(index, integer=True)
        self.bound[index] = symbol
        body = self.additive()
        del self.bound[index]
        self.ranges.pop(index, None)
        self.depth -= 1
        self.take(")")
        if lo.is_number and hi.is_number and int(hi) - int(lo) + 1 > MAX_TERMS:
            raise self.fail(f"sum() is limited to {MAX_TERMS} terms", fname)
        cost = sum_cost(terms, bounds[0].cost + bounds[1].cost, body.cost)
        self.charge(cost, start)
        return _Part(self.build(fname, sp.Sum, body.expr, (symbol, lo, hi)), cost, start, self.end)


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


def _parse(text: str, params: Iterable[str] | Mapping[str, Any]) -> _Part:
    if not isinstance(text, str):
        raise FormulaError(
            f"A formula must be a string, but got {type(text).__name__}.", column=0, token=""
        )
    symbols = _param_symbols(params)
    if len(text) > MAX_LENGTH:
        raise _error(
            text, f"the formula is longer than {MAX_LENGTH} characters", MAX_LENGTH + 1, "..."
        )
    return _Parser(text, symbols, declared_ranges(params)).parse()


def parse_formula(text: str, params: Iterable[str] | Mapping[str, Any] = ()) -> sp.Expr:
    """Parse a formula in ``x`` and the declared ``params`` into a sympy expression.

    Args:
        text: The formula, e.g. ``"x + a*x*sin(w*x)"``.
        params: Names the formula may use besides ``x`` and ``pi``: an iterable of names, or a
            mapping from names to declarations (a fixed number, a
            :class:`~activations.registry.Param` or ``{default, low, high}``), whose ranges
            bound the cost of sums and polynomials whose bound or degree is that parameter (see
            :mod:`activations.formula.cost`; with names only, such a sum counts as
            :data:`MAX_TERMS` terms and such a degree as :data:`MAX_DEGREE`).

    Returns:
        The sympy expression (``x`` and the parameters are real symbols).

    Raises:
        FormulaError: The text is not in the accepted language (see the module docstring), or
            a part of it costs more than :data:`MAX_FORMULA_COST`; the error carries the
            offending token (for the cost, the part) and its 1-based column.
    """
    return _parse(text, params).expr


def formula_cost(text: str, params: Iterable[str] | Mapping[str, Any] = ()) -> int:
    """The estimated evaluation cost of a formula (see :mod:`activations.formula.cost`).

    Args:
        text: The formula.
        params: As for :func:`parse_formula` (declared ranges bound sums and degrees).

    Returns:
        The number of element-wise operations one evaluation performs, at most, within the
        declared ranges; at most :data:`MAX_FORMULA_COST`.

    Raises:
        FormulaError: As :func:`parse_formula` (a formula over the bound is refused).
    """
    return _parse(text, params).cost
