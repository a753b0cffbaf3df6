"""Every registered activation: torch agrees with its sympy form, keeps dtype/shape, has finite
gradients; the non-baseline families start at zero. Parametrised over ``list_activations()`` so
that every future registration is covered automatically."""

from __future__ import annotations

import math

import mpmath
import pytest
import sympy as sp
import torch

from activations import families, get_activation, get_spec, list_activations
from activations.formula import X, spec_expr

NAMES = list_activations()
ZERO_FAMILIES = ("sinter", "fourier", "orthogonal")
# A grid of magnitudes: tiny entries of B·A up to large ones, both signs.
MAGNITUDES = [1e-7, 1e-5, 1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 0.05, 0.3, 1.0, 3.0, 10.0]
GRID = [0.0, *MAGNITUDES, *(-m for m in MAGNITUDES)]


def _midpoint(name: str) -> dict[str, float]:
    """Parameters halfway through their ranges (geometric mean on a log scale)."""
    out: dict[str, float] = {}
    for pname, p in get_spec(name).params.items():
        v = math.sqrt(p.low * p.high) if p.log else (p.low + p.high) / 2
        out[pname] = round(v) if p.integer else v
    return out


PARAM_SETS = [(n, "defaults", {}) for n in NAMES] + [(n, "midpoint", _midpoint(n)) for n in NAMES]


def _reference(expr: sp.Expr):
    mpmath.mp.dps = 40
    fn = sp.lambdify(X, expr, "mpmath")  # the tree comes from our own parser (trusted)
    return lambda v: float(fn(mpmath.mpf(v)))


def _torch_values(name: str, params: dict[str, float], xs: list[float]):
    act = get_activation(name, **params)
    x = torch.tensor(xs, dtype=torch.float64, requires_grad=True)
    y = act(x)
    (dy,) = torch.autograd.grad(y.sum(), x)
    return y.detach().tolist(), dy.tolist()


def test_at_least_sixteen_activations_in_four_families() -> None:
    assert len(NAMES) >= 16
    assert {"baseline", "sinter", "fourier", "orthogonal"} <= families()
    assert {
        "identity",
        "relu",
        "sigmoid",
        "tanh",
        "silu",
        "swish",
        "gelu",
        "gaussian",
        "cos",
    } <= set(list_activations(family="baseline"))
    assert len(list_activations(family="sinter")) >= 4
    assert len(list_activations(family="fourier")) >= 2
    assert {"legendre", "chebyshev", "hermite"} <= set(list_activations(family="orthogonal"))


@pytest.mark.parametrize(("name", "label", "params"), PARAM_SETS, ids=lambda v: str(v)[:40])
def test_torch_matches_sympy_values_and_derivatives(
    name: str, label: str, params: dict[str, float]
) -> None:
    expr = spec_expr(name, params)
    f_ref, df_ref = _reference(expr), _reference(sp.diff(expr, X))
    values, slopes = _torch_values(name, params, GRID)
    # Compare the perturbations f(x) − x and f'(x) − 1: for the x + small·g(x) families the
    # identity part would otherwise hide errors in g. The absolute slack is float64 rounding of
    # the full value (cancellation inside φ_k(t) − φ_k(0) costs a few hundred ulps of |x|).
    for x, got in zip(GRID, values, strict=True):
        want = f_ref(x)
        slack = 1e-13 * max(abs(x), abs(want)) + 1e-25
        assert abs((got - x) - (want - x)) <= 1e-9 * abs(want - x) + slack, (
            f"{name} ({label}) f({x}): torch {got!r} vs sympy {want!r}"
        )
    for x, got in zip(GRID, slopes, strict=True):
        if x == 0.0:  # kinks (relu) differ by convention at exactly 0; audited separately
            continue
        want = df_ref(x)
        slack = 1e-13 * max(1.0, abs(want))
        assert abs((got - 1) - (want - 1)) <= 1e-8 * abs(want - 1) + slack, (
            f"{name} ({label}) f'({x}): autograd {got!r} vs sympy diff {want!r}"
        )


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize(
    ("dtype", "tol"), [(torch.float32, 1e-5), (torch.float64, 1e-12), (torch.bfloat16, 2e-2)]
)
def test_shape_and_dtype_preserved(name: str, dtype: torch.dtype, tol: float) -> None:
    gen = torch.Generator().manual_seed(0)
    x64 = torch.randn(3, 4, 5, generator=gen, dtype=torch.float64) * 1e-2
    x64[0, 0, 0] = 0.0
    x = x64.to(dtype)
    act = get_activation(name)
    y = act(x)
    assert y.shape == x.shape and y.dtype == dtype
    assert torch.isfinite(y).all()
    ref = act(x.to(torch.float64))
    scale = ref.abs() + x.to(torch.float64).abs() + 1e-6
    assert ((y.to(torch.float64) - ref).abs() <= tol * scale).all()


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_gradients_are_finite(name: str, dtype: torch.dtype) -> None:
    gen = torch.Generator().manual_seed(1)
    x = torch.cat(
        [
            torch.zeros(1),
            torch.randn(255, generator=gen) * 10 ** torch.randint(-6, 1, (255,), generator=gen),
        ]
    )
    x = x.to(dtype).requires_grad_(True)
    get_activation(name)(x).sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()


@pytest.mark.parametrize("name", [n for fam in ZERO_FAMILIES for n in list_activations(family=fam)])
@pytest.mark.parametrize("label", ["defaults", "midpoint"])
def test_non_baseline_families_start_at_zero(name: str, label: str) -> None:
    params = {} if label == "defaults" else _midpoint(name)
    assert spec_expr(name, params).xreplace({X: 0}) == 0
    y = get_activation(name, **params)(torch.zeros(4, dtype=torch.float64))
    assert torch.equal(y, torch.zeros(4, dtype=torch.float64))


@pytest.mark.parametrize("name", NAMES)
def test_documented(name: str) -> None:
    spec = get_spec(name)
    assert spec.doc, f"{name} has no docstring"
    for p in spec.params.values():
        assert p.doc


def test_sinter_is_exactly_the_published_formula() -> None:
    spec = get_spec("sinter")
    assert spec.expr == "x + amplitude*x*sin(frequency*x)"
    assert spec.params["amplitude"].default == 5e-5 and spec.params["frequency"].default == 1e4
    x = torch.linspace(-0.01, 0.01, 101, dtype=torch.float64)
    torch.testing.assert_close(get_activation("sinter")(x), x + 5e-5 * x * torch.sin(1e4 * x))


def test_variants_reduce_to_sinter() -> None:
    x = torch.linspace(-0.5, 0.5, 1001, dtype=torch.float64)
    sinter = get_activation("sinter", amplitude=1e-3, frequency=50.0)(x)
    torch.testing.assert_close(
        get_activation("fourier_sinter", amplitude=1e-3, frequency=50.0, terms=1)(x), sinter
    )
    torch.testing.assert_close(
        get_activation("sinter_phase", amplitude=1e-3, frequency=50.0, phase=0.0)(x), sinter
    )
    # Far inside the width, the bounded variants are Sinter.
    small = x * 1e-4
    ref = get_activation("sinter", amplitude=1e-3, frequency=50.0)(small)
    for name in ("sinter_tanh", "sinter_damped"):
        got = get_activation(name, amplitude=1e-3, frequency=50.0, width=10.0)(small)
        torch.testing.assert_close(got, ref, rtol=1e-12, atol=1e-18)


@pytest.mark.parametrize("name", ["sinter_tanh", "sinter_damped"])
def test_bounded_variants_do_not_grow(name: str) -> None:
    act = get_activation(name, amplitude=1e-2, frequency=1e3, width=1e-2)
    x = torch.linspace(1.0, 1000.0, 200_001, dtype=torch.float64, requires_grad=True)
    y = act(x)
    (dy,) = torch.autograd.grad(y.sum(), x)
    assert (y - x).abs().max() <= 1e-2 * 1e-2 + 1e-15  # |f - x| <= A·c
    assert (dy - 1).abs().max() <= 1e-2 * (1 + 1e-2 * 1e3) + 1e-12  # |f' - 1| <= A(1 + cω)


def test_sinter_log_is_scale_invariant() -> None:
    """f(c·x) − c·x = c·A·x·sin(ν ln|x| + ν ln c): at the default ν a decade is one period."""
    act = get_activation("sinter_log")
    x = torch.logspace(-6, -3, 301, dtype=torch.float64)
    pert = lambda v: (act(v) - v) / v  # noqa: E731 - relative perturbation
    torch.testing.assert_close(pert(10 * x), pert(x), rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("name", ["legendre", "chebyshev", "hermite"])
def test_orthogonal_highest_degree_matches_sympy(name: str) -> None:
    spec = get_spec(name)
    params = {"degree": int(spec.params["degree"].high), "decay": 0.0, "scale": 3.0}
    expr = spec_expr(name, params)
    f_ref = _reference(expr)
    xs = [-1.0, -0.2, 0.05, 0.4, 0.9]
    values, _ = _torch_values(name, params, xs)
    for x, got in zip(xs, values, strict=True):
        assert got == pytest.approx(f_ref(x), rel=1e-9, abs=1e-12)
