"""From a parsed sympy tree to a function: sums, substitution, compilation, formula activations.

**Sums and substitution.** :func:`expand_sums` replaces every ``Sum`` with constant bounds by
its explicit terms, ``Σ_{k=a}^{b} T(k) → T(a) + … + T(b)`` (sympy's ``doit()`` is not used: its
closed forms for a symbolic index are not always right); :func:`spec_expr` gives a registered
activation's expression with its parameter values substituted and its sums expanded.

**Compilation.** :func:`compile_expr` turns a sympy expression into a function by walking its tree
(no code generation): torch for the activation itself (dtype and shape preserved, autograd
works), numpy (float64) for the audit. Constant sub-trees are folded once; a ``Sum`` with
symbolic bounds is evaluated term by term (at most :data:`~activations.formula.parser.MAX_TERMS`
terms); ``P_n``, ``T_n`` and ``He_n`` of a symbolic degree ``n`` by their three-term recurrences

* ``(k + 1)·P_{k+1}(t) = (2k + 1)·t·P_k(t) − k·P_{k−1}(t)``,
* ``T_{k+1}(t) = 2t·T_k(t) − T_{k−1}(t)``,
* ``He_{k+1}(t) = t·He_k(t) − k·He_{k−1}(t)``,

starting from ``φ_0 = 1``, ``φ_1 = t``.

**Formula activations.** :func:`register_formula` parses a formula, compiles it for torch and
registers it (a study's inline ``expr:``, an adapter's recorded formula).
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from functools import reduce
from typing import TYPE_CHECKING, Any

import sympy as sp

from ..registry import (
    ActivationError,
    ActivationSpec,
    Param,
    find_spec,
    get_spec,
    register,
)
from .cost import Range, value_range
from .parser import MAX_DEGREE, MAX_TERMS, X, parse_formula

if TYPE_CHECKING:
    from torch import Tensor

__all__ = [
    "Closure",
    "Env",
    "compile_expr",
    "compile_formula",
    "expand_sums",
    "register_formula",
    "spec_expr",
]

#: The ``module`` of every formula registration (a decorated function names its own module).
FORMULA_MODULE = "<formula>"

# ------------------------------------------------------------------------------------------
# Sums, substitution
# ------------------------------------------------------------------------------------------


def expand_sums(expr: sp.Expr, *, max_terms: int = 100_000) -> sp.Expr:
    """Replace every ``Sum`` with constant integer bounds by the explicit sum of its terms.

    sympy's own ``Sum.doit()`` is not used: it first evaluates the term with a *symbolic* index,
    where some closed forms are wrong (``hermite_prob(k, 0)`` in sympy 1.14).

    Raises:
        ValueError: A bound is not an integer constant, a sum has more than :data:`MAX_TERMS`
            terms (the limit the compiled function enforces too), or the expansion exceeds
            ``max_terms``.
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
                if count > MAX_TERMS:
                    raise ValueError(f"A sum is limited to {MAX_TERMS} terms, got {count}.")
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


#: Nodes whose first argument is an integer with an upper limit, and that limit.
_DEGREE_LIMITS: tuple[tuple[type, int], ...] = (
    (sp.legendre, MAX_DEGREE),
    (sp.chebyshevt, MAX_DEGREE),
    (sp.hermite_prob, MAX_DEGREE),
    (sp.factorial, 170),
)


def _check_degrees(expr: sp.Basic, ranges: Mapping[str, Range]) -> None:
    """Refuse parameter values that push a degree (or a factorial) past its limit.

    Substituting a value into ``legendre(n, t)`` makes sympy expand ``P_n`` at once (minutes for
    ``n = 300``), so the limits the parser and the compiled function enforce
    (:data:`MAX_DEGREE`, 170) are checked first, with ``ranges`` holding the parameter values
    and, inside a sum, its index's range.

    Raises:
        ValueError: A degree can exceed its limit.
    """
    if isinstance(expr, sp.Sum):
        inner = dict(ranges)
        for index, lo, hi in expr.limits:
            lo_range, hi_range = value_range(lo, inner), value_range(hi, inner)
            if lo_range is not None and hi_range is not None:
                inner[index.name] = (lo_range[0], hi_range[1])
        _check_degrees(expr.function, inner)
        return
    for cls, limit in _DEGREE_LIMITS:
        if isinstance(expr, cls) and not expr.args[0].is_number:
            found = value_range(expr.args[0], ranges)
            if found is not None and found[1] > limit:
                raise ValueError(
                    f"The degree of {expr} must lie in [0, {limit}], but reaches {found[1]:g}."
                )
    for arg in expr.args:
        _check_degrees(arg, ranges)


def _substitute(expr: sp.Expr, values: Mapping[str, float]) -> sp.Expr:
    """``expr`` with the parameter ``values`` substituted and its sums expanded.

    Raises:
        ValueError: A value makes a sum longer than :data:`MAX_TERMS` or a degree larger than
            :data:`MAX_DEGREE` (checked before sympy expands anything).
    """
    _check_degrees(expr, {k: (float(v), float(v)) for k, v in values.items()})
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


def compile_formula(
    text: str, params: Iterable[str] | Mapping[str, Any] = ()
) -> Callable[..., Tensor]:
    """Parse ``text`` safely and compile it to ``fn(x, **params)`` on torch tensors.

    ``params`` are names or declarations, as for :func:`parse_formula` (declared ranges bound
    the cost of sums and polynomials whose bound or degree is a parameter).
    """
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

    Idempotent: registering a name again with the same definition returns the entry already
    registered and changes nothing, so a module that registers its formulas may be imported twice
    and a study may register the forms it meets as often as it meets them. *The same definition*
    is: registered by a formula (not a decorated function), the same family, the same declared
    parameters (as :class:`Param` objects, integer parameters recognised) and the same
    formula (equal text, or equal sympy trees: ``"x + a*x"`` and ``"a*x + x"`` are one formula).

    Args:
        name: Registry name.
        expr: Formula in ``x`` and the parameter names (see :func:`parse_formula`).
        params: Each parameter as a :class:`Param`, a plain number (a fixed value: the range
            ``[v, v]``), or a mapping ``{default, low, high, log[, integer]}``. Parameters used as
            sum bounds or polynomial degrees become integer parameters; their ``high`` bounds
            the formula's cost.
        family: Family name.
        force: Replace an existing registration with a different definition.

    Returns:
        The registered :class:`ActivationSpec` (its ``fn`` is the compiled torch function): the
        one already registered when the definition is the same.

    Raises:
        FormulaError: The formula is refused (not in the language, or over
            :data:`~activations.formula.cost.MAX_FORMULA_COST` for the declared ranges).
        ActivationError: A bad parameter declaration, or the name is registered with a different
            definition (the message shows both and how to resolve it).
    """
    raw = dict(params or {})
    sym = parse_formula(expr, raw)
    integer = _integer_symbols(sym)
    declared = {k: _to_param(k, v, k in integer) for k, v in raw.items()}
    existing = find_spec(name)
    if existing is not None and not force:
        differs = _difference(existing, sym, declared, family)
        if not differs:
            return existing
        raise ActivationError(
            f"Activation '{name}' is already registered by module '{existing.module}' as "
            f"{_definition(existing.expr, existing.family, existing.params)}; registering it "
            f"again as {_definition(expr, family, declared)} differs in its {differs}. Give "
            f"this formula another name, call unregister('{name}') first, or pass force=True "
            "to replace it."
        )
    spec = ActivationSpec(
        name=name,
        family=family,
        fn=compile_expr(sym, "torch"),
        params=declared,
        expr=expr,
        module=FORMULA_MODULE,
        doc=f"Formula activation f(x) = {expr}.",
    )
    return register(spec, force=force)


def _difference(
    existing: ActivationSpec, sym: sp.Expr, declared: Mapping[str, Param], family: str
) -> str:
    """What makes a registration differ from ``existing`` (``""``: the same definition)."""
    if existing.module != FORMULA_MODULE:
        return "kind (that one is a registered function, this a formula)"
    if existing.family != family:
        return "family"
    if dict(existing.params) != dict(declared):
        return "parameters"
    try:
        same = parse_formula(existing.expr, dict(existing.params)) == sym
    except ValueError:  # FormulaError, ActivationError
        same = False
    return "" if same else "formula"


def _definition(expr: str, family: str, params: Mapping[str, Param]) -> str:
    """``f(x) = <expr> (family F, params {a: [low, high] default d, …})`` for an error message."""
    shown = ", ".join(
        f"{k}: [{p.low:g}, {p.high:g}] default {p.default:g}{' log' if p.log else ''}"
        for k, p in params.items()
    )
    return f"f(x) = {expr} (family {family}, params {{{shown}}})"
