"""The symbolic audit of an activation: ``f(0)``, ``f'(0)``, a Lipschitz estimate and warnings.

:func:`audit` (a registered activation) and :func:`audit_formula` (a formula) report ``f(0)``,
``f'(0)``, a Lipschitz estimate ``L ≈ sup_{x∈[a,b]} |f'(x)|`` on an interval, whether
``ΔW = s·f(B·A)`` starts at zero (``f(0) = 0``: with ``B = 0`` at initialisation the adapted
model starts as the base model), and warnings in plain words. How the Lipschitz value is
computed (it is a *numerical* estimate, not a proof):

1. ``f'`` is derived symbolically (sympy ``diff``) after the parameters are substituted and the
   sums expanded;
2. ``f'`` is evaluated on a dense grid whose density follows the local oscillation frequency:
   the interval is cut into segments and each gets ≥ 40 points per period of its fastest
   oscillating term (the slope ``|g'(x)|`` of every ``sin``/``cos``/``tan``/``tanh``/...
   argument ``g``, a local angular frequency, so a segment of width ``w`` gets
   ``⌈40·w·|g'|/2π⌉`` points), plus a log-spaced grid around 0 (for oscillations in
   ``log|x|``); the total is capped at :data:`MAX_GRID` points, and a warning says so when the
   cap bites;
3. the 32 largest local maxima of ``|f'|`` on the grid are refined by a bounded scalar
   maximisation (the critical points ``f'' = 0`` between neighbouring grid points); when ``f''``
   is a polynomial of degree at most :data:`MAX_ROOT_DEGREE` its real roots are added exactly.
   The result is the largest value found.

**Singularities** (:func:`singularities`). A grid steps over a pole (``x/(x − 0.31234567)`` on
a 4,001-point grid never lands on ``0.31234567``), so the audit looks for them symbolically
first. It walks the expression for the sub-terms that can be singular on the real line: a
denominator ``g`` (a negative power ``g^(−k)``) and ``tan(h)`` (``cos(h) = 0``) are singular
where they vanish; a non-integer power ``g^p`` and ``log(g)`` need ``g ≥ 0`` (``g > 0``) and are
singular where ``g = 0``. Where ``g`` vanishes is found

* exactly when ``g`` is a polynomial in ``x`` (its real roots, up to degree
  :data:`MAX_ROOT_DEGREE`), and when ``g = cos(c·x + d)`` (the poles of ``tan``:
  ``x = (π/2 + kπ − d)/c``, the ``k`` that land in ``[a, b]``);
* otherwise by a sign change of ``g`` on the oscillation-aware grid of ``g``, refined by Brent's
  method (a zero ``g`` only touches is then left to the Lipschitz estimate, which is huge there).

A zero ``p`` of ``g`` is a singularity of ``f`` unless it is removable: ``|f|`` or ``|f'|`` at
``p ± δ`` must grow as ``δ`` shrinks from ``10⁻³·w`` to ``10⁻⁹·w`` (``w`` = the interval's width)
by more than a factor of 100 (a pole of order ``k`` grows by ``10^(6k)``, ``√`` 's slope by
``10³``, while ``sin(x)/x`` stays at 1 and ``x·log|x|`` 's slope grows only logarithmically,
staying below 100 on the whole float32 range). A singularity inside ``[a, b]`` makes the
Lipschitz value infinite (``sup |f'| = ∞``) and is reported in the warnings.
"""

from __future__ import annotations

import itertools
import math
import sys
import types
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import sympy as sp

from .formula.compiler import _integer_symbols, _substitute, compile_expr
from .formula.parser import X, parse_formula
from .registry import get_spec

__all__ = [
    "LARGE_SLOPE",
    "MAX_GRID",
    "MAX_ROOT_DEGREE",
    "SLOPE_AT_ZERO_TOLERANCE",
    "AuditResult",
    "audit",
    "audit_formula",
    "oscillation_grid",
    "singularities",
]

#: Most grid points the audit evaluates ``f'`` on.
MAX_GRID = 4_000_000
#: ``|f'|`` above this on the audited interval triggers the "large slope" warning.
LARGE_SLOPE = 2.0
#: ``|f'(0) − 1|`` above this triggers the "effective learning rate is rescaled" warning.
SLOPE_AT_ZERO_TOLERANCE = 0.01
#: Highest degree of a polynomial ``f''`` whose real roots the audit adds exactly; above it the
#: grid and its refinement stand alone. mpmath's ``nroots`` takes ~0.002·n² s at degree n
#: (1.6 s at 32, 7 s at 64, about a minute at 100 for ``x + x**100``).
MAX_ROOT_DEGREE = 32
#: Most grid points of the sign-change search for the zeros of a non-polynomial ``g``.
SINGULARITY_GRID = 1_000_000
#: Most zeros of one ``g`` tested for removability (one real singularity is enough to refuse).
MAX_SINGULAR_CANDIDATES = 16


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
        singularities: Where ``f`` or ``f'`` is singular or ``f`` is not real on the interval,
            in plain words (:func:`singularities`); not part of :meth:`to_dict` (the sentences
            are also in ``warnings``).
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
    singularities: list[str] = field(default_factory=list)

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


def _polynomial_degree(expr: sp.Basic, seen: dict[sp.Basic, int | None]) -> int | None:
    """An upper bound of the degree of ``expr`` in ``x``; ``None`` unless visibly a polynomial.

    ``deg(a + b) ≤ max(deg a, deg b)``, ``deg(a·b) = deg a + deg b``, ``deg(a^n) = n·deg a`` for
    a constant integer ``n ≥ 0``; computed without expanding anything (``seen`` memoises shared
    sub-trees).
    """
    if expr in seen:
        return seen[expr]
    out: int | None
    if not expr.has(X):
        out = 0
    elif expr is X:
        out = 1
    elif isinstance(expr, (sp.Add, sp.Mul)):
        parts = [_polynomial_degree(a, seen) for a in expr.args]
        if any(p is None for p in parts):
            out = None
        else:
            known = [p for p in parts if p is not None]
            out = max(known) if isinstance(expr, sp.Add) else sum(known)
    elif isinstance(expr, sp.Pow) and expr.exp.is_Integer and int(expr.exp) >= 0:
        base = _polynomial_degree(expr.base, seen)
        out = None if base is None else base * int(expr.exp)
    else:
        out = None
    seen[expr] = out
    return out


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
    # Exact critical points when f'' is a polynomial (of a degree nroots solves quickly; f'' is
    # not even formed otherwise: for a product of n factors it has ~n³ nodes).
    degree = _polynomial_degree(df, {})
    d2 = sp.diff(df, X) if degree is not None and 2 <= degree <= MAX_ROOT_DEGREE + 1 else None
    if d2 is not None and d2.is_polynomial(X) and d2 != 0:
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


def _conditions(f: sp.Expr) -> list[tuple[str, sp.Expr, str]]:
    """The sub-terms of ``f`` that can be singular: ``(kind, g, what)``.

    ``kind`` is ``"pole"`` (singular where ``g = 0``) or ``"domain"`` (``g`` must not be
    negative, and ``f`` or ``f'`` is singular where ``g = 0``); ``what`` names the sub-term.
    """
    out: list[tuple[str, sp.Expr, str]] = []
    seen: set[tuple[str, sp.Expr]] = set()

    def add(kind: str, g: sp.Expr, what: str) -> None:
        if g.has(X) and (kind, g) not in seen:
            seen.add((kind, g))
            out.append((kind, g, what))

    for node in sp.preorder_traversal(f):
        if isinstance(node, sp.Pow) and node.base.has(X):
            e = node.exp
            if not e.is_number:
                add("domain", node.base, f"the power {node}")
                continue
            if e.is_negative:
                add("pole", node.base, "a denominator")
            integral = bool(e.is_integer) or (e.is_Float and float(e).is_integer())  # x**2.0
            if not integral:
                add("domain", node.base, f"the power {node}")
        elif isinstance(node, sp.tan):
            add("pole", sp.cos(node.args[0]), f"the pole of {node}")
        elif isinstance(node, sp.log):
            add("domain", node.args[0], f"the logarithm {node}")
    return out


def _trig_zeros(g: sp.Expr, a: float, b: float) -> list[float] | None:
    """The zeros of ``g = cos(c·x + d)`` or ``sin(c·x + d)`` on ``[a, b]``; ``None``: other ``g``.

    ``cos`` vanishes at ``π/2 + kπ``, ``sin`` at ``kπ``; the ``k`` with ``(θ_k − d)/c`` in
    ``[a, b]`` are taken, at most :data:`MAX_SINGULAR_CANDIDATES` of them (the nearest to 0).
    """
    if not isinstance(g, (sp.cos, sp.sin)):
        return None
    h = g.args[0]
    try:
        poly = sp.Poly(h, X)
    except sp.PolynomialError:
        return None
    if poly.degree() != 1:
        return None
    c, d = (float(v) for v in poly.all_coeffs())
    if c == 0 or not (math.isfinite(c) and math.isfinite(d)):
        return None
    shift = math.pi / 2 if isinstance(g, sp.cos) else 0.0
    lo, hi = sorted((c * a + d, c * b + d))
    k0, k1 = math.ceil((lo - shift) / math.pi), math.floor((hi - shift) / math.pi)
    if k1 < k0:
        return []
    ks = range(k0, k1 + 1)
    if len(ks) > MAX_SINGULAR_CANDIDATES:  # the ones nearest to x = 0 (k = (d − shift)/π)
        start = min(max(k0, round((d - shift) / math.pi) - MAX_SINGULAR_CANDIDATES // 2), k1)
        ks = range(start, min(start + MAX_SINGULAR_CANDIDATES, k1 + 1))
    return [x for x in ((shift + k * math.pi - d) / c for k in ks) if a <= x <= b]


def _polynomial_zeros(g: sp.Expr, a: float, b: float) -> list[float] | None:
    """The real zeros of a polynomial ``g`` on ``[a, b]``; ``None``: not a polynomial we solve."""
    degree = _polynomial_degree(g, {})
    if degree is None or degree > MAX_ROOT_DEGREE:
        return None
    try:
        poly = sp.Poly(sp.expand(g), X)
        if poly.degree() <= 0:
            return []
        roots = poly.nroots(n=17, maxsteps=200)
    except Exception:  # nroots may fail to converge: the numeric search takes over
        return None
    out = []
    for r in roots:
        re, im = (float(v) for v in r.as_real_imag())
        if abs(im) <= 1e-7 * max(1.0, abs(re)) and a <= re <= b:
            out.append(re)
    return sorted(out)


def _numeric_zeros(g: sp.Expr, a: float, b: float) -> list[float]:
    """Zeros of ``g`` on ``[a, b]``: sign changes on the oscillation grid, refined by Brent."""
    import numpy as np
    from scipy.optimize import brentq

    gn = compile_expr(g, "numpy")
    xs, _ = oscillation_grid(g, a, b, SINGULARITY_GRID)
    with np.errstate(all="ignore"):
        vals = np.asarray(gn(xs), dtype=float) * np.ones_like(xs)
    out = [float(v) for v in xs[vals == 0][:MAX_SINGULAR_CANDIDATES]]
    ok = np.isfinite(vals[:-1]) & np.isfinite(vals[1:])
    change = np.nonzero(ok & (np.sign(vals[:-1]) * np.sign(vals[1:]) < 0))[0]
    for i in change[: MAX_SINGULAR_CANDIDATES - len(out)]:
        lo, hi = float(xs[i]), float(xs[i + 1])
        try:
            out.append(float(brentq(lambda t: float(gn(np.array([t]))[0]), lo, hi, xtol=1e-15)))
        except (ValueError, RuntimeError):
            out.append((lo + hi) / 2)
    return sorted(out)


def _negative_part(g: sp.Expr, zeros: list[float], a: float, b: float) -> float | None:
    """A point of ``[a, b]`` where ``g < 0`` (between its zeros, or on a grid), else ``None``."""
    import numpy as np

    gn = compile_expr(g, "numpy")
    cuts = sorted({a, b, *zeros})
    probes = [(u + v) / 2 for u, v in itertools.pairwise(cuts)]
    probes += list(np.linspace(a, b, 4001))
    with np.errstate(all="ignore"):
        vals = np.asarray(gn(np.array(probes)), dtype=float) * np.ones(len(probes))
    neg = np.nonzero(vals < 0)[0]
    return float(probes[neg[0]]) if len(neg) else None


def _blows_up(fns: list[Callable[..., Any]], p: float, width: float) -> bool:
    """Whether ``|f|`` or ``|f'|`` grows by > 100× from ``p ± 10⁻³·w`` to ``p ± 10⁻⁹·w``."""
    import numpy as np

    far_near = np.array([1e-3, 1e-9]) * width
    for fn in fns:
        for side in (-1.0, 1.0):
            with np.errstate(all="ignore"):
                v = np.abs(np.asarray(fn(p + side * far_near), dtype=float) * np.ones(2))
            if not np.isfinite(v[1]) or v[1] > 100.0 * (v[0] + 1.0):
                return True
    return False


def singularities(f: sp.Expr, interval: tuple[float, float]) -> list[str]:
    """Where ``f`` (or ``f'``) is singular, or ``f`` not real, on ``[a, b]`` (module doc).

    Args:
        f: The function of ``x`` with every parameter substituted.
        interval: ``(a, b)``.

    Returns:
        Plain-words findings, one per singular sub-term (empty: none found).
    """
    a, b = interval
    width = b - a
    span = f"[{_fmt(a)}, {_fmt(b)}]"
    fns = [compile_expr(f, "numpy"), compile_expr(sp.diff(f, X), "numpy")]
    found: list[str] = []
    for kind, g, what in _conditions(f):
        zeros = _trig_zeros(g, a, b)
        exact = zeros is not None
        if zeros is None:
            zeros = _polynomial_zeros(g, a, b)
            exact = zeros is not None
        if zeros is None:
            zeros = _numeric_zeros(g, a, b)
        if kind == "domain":
            neg = _negative_part(g, zeros, a, b)
            if neg is not None:
                found.append(
                    f"f is not real at x = {_fmt(neg)} on {span}: {what} needs "
                    f"{g} ≥ 0, which is {_fmt(float(compile_expr(g, 'numpy')(neg)))} there."
                )
                continue
        for p in sorted(zeros, key=abs)[:MAX_SINGULAR_CANDIDATES]:  # nearest to 0 first
            if _blows_up(fns, p, width):
                how = "exactly" if exact else "numerically"
                found.append(
                    f"Singular at x = {_fmt(p)} on {span}: {g} = 0 there ({what}; found {how}), "
                    f"so f or f' is infinite and an update with an entry of B·A near {_fmt(p)} "
                    "would produce inf or NaN."
                )
                break
    return found


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
    singular = singularities(f, (a, b))
    if singular:
        warnings.extend(singular)
        lipschitz = math.inf  # sup |f'| over an interval holding a singularity
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
        singularities=singular,
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
    for k in _integer_symbols(sym) & values.keys():  # sum indices are integer symbols too
        if not math.isfinite(values[k]) or values[k] != int(values[k]):
            raise ValueError(f"Parameter {k!r} is a sum bound or degree and must be an integer.")
        values[k] = int(values[k])
    return _audit_expr(name or text, _substitute(sym, values), values, iv)


class _CallableModule(types.ModuleType):
    """This module, callable as :func:`audit`.

    ``activations.audit`` was the function :func:`audit` (lazily re-exported by the package)
    before it was this module's name; the import system binds the module to that attribute, so
    the module forwards calls to keep ``activations.audit("sinter")`` working.
    """

    def __call__(
        self,
        name: str,
        params: Mapping[str, float] | None = None,
        *,
        interval: Iterable[float] = (-1.0, 1.0),
    ) -> AuditResult:
        return audit(name, params, interval=interval)


sys.modules[__name__].__class__ = _CallableModule
