"""The symbolic audit: f(0), f'(0), the Lipschitz estimate and the warnings."""

from __future__ import annotations

import math
import time

import pytest
import torch

from activations import get_activation, get_spec
from activations.audit import audit, audit_formula
from activations.formula import FormulaError


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


# -- guards against sympy blow-up ---------------------------------------------------------------
def test_audit_of_high_degree_polynomials_skips_slow_exact_roots() -> None:
    # mpmath's nroots took ~56 s for x + x**100 and ~15 s for x + legendre(64, x)
    start = time.perf_counter()
    r = audit_formula("x + x**100")
    assert r.lipschitz == pytest.approx(101.0)
    # P_64(0) = C(64, 32) / 2**64
    assert audit_formula("x + 0.001*legendre(64, x)").f0 == pytest.approx(
        0.001 * math.comb(64, 32) / 2**64, rel=1e-9
    )
    assert time.perf_counter() - start < 10.0


@pytest.mark.parametrize(
    ("text", "params", "message"),
    [
        ("x + 0.001*legendre(n, x)", {"n": 300}, r"must lie in \[0, 64\], but reaches 300"),
        ("x + 0.001*factorial(n)*x", {"n": 100_000}, r"must lie in \[0, 170\]"),
        ("x + 0.001*sum(k, 1, n, sin(k*x)/k**2)", {"n": 3000}, "limited to 256 terms, got 3000"),
    ],
)
def test_audit_refuses_values_past_the_limits_before_sympy_expands(
    text: str, params: dict, message: str
) -> None:
    start = time.perf_counter()
    with pytest.raises(ValueError, match=message):
        audit_formula(text, params)
    assert time.perf_counter() - start < 1.0


def test_audit_formula_with_a_polynomial_of_a_sum_index() -> None:
    # sum indices are integer symbols too; they must not be looked up as parameters
    r = audit_formula("x + 0.01*sum(k, 1, 3, legendre(k, x))")
    # P1'(0) + P2'(0) + P3'(0) = 1 + 0 - 3/2
    assert r.df0 == pytest.approx(1 + 0.01 * (1 - 1.5), rel=1e-12)


def test_audit_refuses_a_formula_over_the_cost_bound_fast() -> None:
    start = time.perf_counter()
    with pytest.raises(FormulaError, match="too costly"):
        audit_formula("x + legendre(64, legendre(64, legendre(64, x)))")
    assert time.perf_counter() - start < 1.0


@pytest.mark.parametrize(
    ("text", "params", "where"),
    [
        ("x/(x - 0.31234567)", {}, "Singular at x = 0.312346 "),  # issue 18: grids step over it
        ("tan(3*x)", {}, "Singular at x = -0.523599 "),
        ("x/(x**2 - 0.1234567)", {}, "Singular at x = -0.351364 "),
        ("tan(w*x)", {"w": 1000.0}, "Singular at x = -0.0015708 "),  # the pole nearest to 0
        ("sqrt(x)", {}, "f is not real at x = -0.5 "),
        ("log(1 + x/2) + x", {}, None),  # log(1 + x/2) > 0 on [-1, 1]
        ("x**p + x", {"p": 2.0}, None),  # an integral float power is defined for x < 0
        ("x/(x - 2)", {}, None),  # its pole lies outside [-1, 1]
    ],
)
def test_singularities_are_found_symbolically(text: str, params: dict, where: str | None) -> None:
    r = audit_formula(text, params)
    if where is None:
        assert r.singularities == [] and math.isfinite(r.lipschitz)
    else:
        assert r.singularities and r.singularities[0].startswith(where), r.singularities
        assert math.isinf(r.lipschitz)  # sup |f'| over an interval holding a singularity
        assert r.singularities[0] in r.warnings
