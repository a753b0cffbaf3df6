"""Mechanism telemetry: ν, the visited scale of P = B·A and stable ranks, against direct algebra."""

from __future__ import annotations

import math
import time

import numpy as np
import pytest
import torch

from loran_search.adapters import build_activation
from loran_search.adapters import telemetry as T


def _identity(x: torch.Tensor) -> torch.Tensor:
    return x


def _sinter_like(a: float, w: float):
    def f(x: torch.Tensor) -> torch.Tensor:
        return x + a * x * torch.sin(w * x)

    return f


def _factors(d_out: int, d_in: int, r: int, seed: int = 0, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    a = torch.randn(r, d_in, generator=g, dtype=dtype)
    b = torch.randn(d_out, r, generator=g, dtype=dtype) * 0.3
    return a, b


def _direct(a, b, scale, f):
    """Everything by hand: float64 numpy / torch.linalg.svdvals (a full SVD is fine this small)."""
    p = b @ a  # the dtype training uses
    fp = f(p)
    p64, fp64 = p.double(), fp.double()
    sv_p = torch.linalg.svdvals(scale * p64)
    sv_d = torch.linalg.svdvals(scale * fp64)
    return {
        "nonlinearity": float(torch.linalg.norm(fp64 - p64) / torch.linalg.norm(p64)),
        "p_rms": float(np.sqrt(np.mean(p64.numpy() ** 2))),
        "p_abs_p999": float(np.percentile(np.abs(p64.numpy()), 99.9)),
        "stable_rank": float((sv_d**2).sum() / sv_d[0] ** 2),
        "stable_rank_lora": float((sv_p**2).sum() / sv_p[0] ** 2),
        "delta_fro": float(torch.linalg.norm(scale * fp64)),
        "lora_fro": float(torch.linalg.norm(scale * p64)),
        "rank_delta": int(torch.linalg.matrix_rank(fp64)),
    }


def test_identity_is_lora_on_a_tiny_layer() -> None:
    a, b = _factors(12, 10, 3)
    got = T.layer_mechanism(a, b, 2.0, _identity, frequency=50.0)
    ref = _direct(a, b, 2.0, _identity)
    assert got["nonlinearity"] == 0.0
    assert got["inert"] is True
    for key in ("p_rms", "p_abs_p999", "stable_rank", "stable_rank_lora", "delta_fro", "lora_fro"):
        assert got[key] == pytest.approx(ref[key], rel=1e-6), key
    assert got["stable_rank"] == got["stable_rank_lora"]
    assert 1.0 <= got["stable_rank_lora"] <= 3.0
    assert got["omega_p_rms"] == pytest.approx(50.0 * ref["p_rms"])
    assert (got["rank"], got["d_out"], got["d_in"]) == (3, 12, 10)


def test_a_strong_sinter_is_measured_exactly_and_can_exceed_rank_r() -> None:
    a, b = _factors(12, 10, 3)
    f = _sinter_like(0.8, 6.0)  # a·w = 4.8: far from the identity at |P| ~ 0.5
    got = T.layer_mechanism(a, b, 0.5, f)
    ref = _direct(a, b, 0.5, f)
    assert got["nonlinearity"] > 0.1 and got["inert"] is False
    for key in ("nonlinearity", "p_rms", "p_abs_p999", "stable_rank", "stable_rank_lora"):
        assert got[key] == pytest.approx(ref[key], rel=1e-6), key
    assert got["delta_fro"] == pytest.approx(ref["delta_fro"], rel=1e-6)
    assert got["omega_p_rms"] is None
    # the element-wise f raised the rank above r; LoRA's stable rank stays ≤ r
    assert ref["rank_delta"] > 3
    assert got["stable_rank_lora"] <= 3.0
    assert got["stable_rank"] > got["stable_rank_lora"]
    assert T.predict_nonlinearity(b @ a, f) == got["nonlinearity"]


def test_a_registered_activation_and_float64_factors() -> None:
    a, b = _factors(40, 30, 4, seed=2, dtype=torch.float64)
    f = build_activation("sinter", {"amplitude": 1e-2, "frequency": 3.0})
    got = T.layer_mechanism(a, b, 4.0, f, frequency=3.0)
    ref = _direct(a, b, 4.0, f)
    assert got["nonlinearity"] == pytest.approx(ref["nonlinearity"], rel=1e-9)
    assert got["stable_rank"] == pytest.approx(ref["stable_rank"], rel=1e-9)


def test_zero_update_has_zero_figures() -> None:
    a = torch.randn(4, 16)
    b = torch.zeros(20, 4)  # B = 0 at initialisation
    got = T.layer_mechanism(a, b, 2.0, _sinter_like(0.5, 10.0), frequency=10.0)
    assert got["nonlinearity"] == 0.0 and got["inert"] is True
    assert got["stable_rank"] == 0.0 and got["stable_rank_lora"] == 0.0
    assert got["p_rms"] == 0.0 and got["p_abs_p999"] == 0.0 and got["omega_p_rms"] == 0.0
    assert T.predict_nonlinearity(torch.zeros(3, 3), _identity) == 0.0


@pytest.mark.parametrize(
    ("shape", "spectrum"),
    [
        ((12, 10), None),  # dense random
        ((300, 200), None),
        ((200, 100), np.linspace(1.0, 0.5, 60)),  # slowly decaying: 0.99 between neighbours
        ((64, 256), np.array([3.0, 2.999, 2.998, 1.0, 0.5])),  # clustered top, wide matrix
    ],
)
def test_power_iteration_finds_the_top_singular_value(shape, spectrum) -> None:
    rng = np.random.default_rng(4)
    if spectrum is None:
        m = rng.normal(size=shape)
    else:
        k = spectrum.size
        u = np.linalg.qr(rng.normal(size=(shape[0], k)))[0]
        v = np.linalg.qr(rng.normal(size=(shape[1], k)))[0]
        m = (u * spectrum) @ v.T
    for dtype in (torch.float64, torch.float32):
        t = torch.tensor(m, dtype=dtype)
        ref = float(torch.linalg.svdvals(t.double())[0])
        assert T.spectral_norm(t) == pytest.approx(ref, rel=1e-4)
        assert T.spectral_norm(t) <= ref * (1 + 1e-6)


def test_percentile_is_numpys_linear_interpolation() -> None:
    rng = np.random.default_rng(0)
    for n in (1, 2, 10, 999, 1000, 1001, 54321):
        x = rng.exponential(size=n)
        assert T.percentile(torch.tensor(x), 0.999) == pytest.approx(
            np.percentile(x, 99.9), rel=1e-12
        )
        assert T.percentile(torch.tensor(x), 0.5) == pytest.approx(np.median(x), rel=1e-12)


def test_results_are_deterministic() -> None:
    a, b = _factors(64, 48, 8, seed=5)
    f = _sinter_like(0.3, 20.0)
    first = T.layer_mechanism(a, b, 2.0, f, frequency=20.0)
    second = T.layer_mechanism(a.clone(), b.clone(), 2.0, f, frequency=20.0)
    assert first == second
    assert T.spectral_norm(b @ a, seed=3) == T.spectral_norm(b @ a, seed=3)


def test_a_large_layer_is_fast_and_accurate() -> None:
    a, b = _factors(1024, 1024, 8, seed=6)
    a = a / math.sqrt(1024)
    f = _sinter_like(0.5, 30.0)
    T.layer_mechanism(a[:, :64], b[:64], 2.0, f)  # warm-up (first-call overheads)
    start = time.perf_counter()
    got = T.layer_mechanism(a, b, 2.0, f, frequency=30.0)
    elapsed = time.perf_counter() - start
    assert elapsed < 1.0, f"layer_mechanism took {elapsed:.2f} s on a 1024 × 1024 layer"
    p = (b @ a).double()
    fp = f(b @ a).double()
    sv = torch.linalg.svdvals(fp)
    assert got["stable_rank"] == pytest.approx(float((sv**2).sum() / sv[0] ** 2), rel=1e-4)
    assert got["stable_rank_lora"] <= 8.0
    assert got["nonlinearity"] == pytest.approx(
        float(torch.linalg.norm(fp - p) / torch.linalg.norm(p)), rel=1e-6
    )
    dense = torch.randn(1024, 1024, generator=torch.Generator().manual_seed(1))
    sigma = T.spectral_norm(dense)  # the slow case: top singular values 0.3% apart
    assert sigma == pytest.approx(float(torch.linalg.svdvals(dense.double())[0]), rel=1e-4)


def test_summarize_gives_median_and_max() -> None:
    layers = [
        {"nonlinearity": 0.0, "p_rms": 1.0, "omega_p_rms": None, "stable_rank": 2.0},
        {"nonlinearity": 0.5, "p_rms": 3.0, "omega_p_rms": None, "stable_rank": 4.0},
        {"nonlinearity": 2e-4, "p_rms": 2.0, "omega_p_rms": None, "stable_rank": 9.0},
        {"nonlinearity": 0.1, "p_rms": 10.0, "omega_p_rms": None, "stable_rank": 1.0},
    ]
    out = T.summarize(layers)
    assert out["nonlinearity_median"] == pytest.approx((2e-4 + 0.1) / 2)
    assert out["nonlinearity_max"] == 0.5
    assert out["p_rms_median"] == 2.5 and out["p_rms_max"] == 10.0
    assert out["stable_rank_median"] == 3.0 and out["stable_rank_max"] == 9.0
    assert out["omega_p_rms_median"] is None and out["omega_p_rms_max"] is None
    assert out["stable_rank_lora_median"] is None  # absent from every layer
    assert (out["n_layers"], out["inert_layers"], out["inert"]) == (4, 2, False)
    assert out["nonfinite_layers"] == 0
    a, b = _factors(20, 16, 4)
    real = [T.layer_mechanism(a, b, 2.0, _identity, frequency=7.0) for _ in range(3)]
    summary = T.summarize(real)
    assert summary["inert"] is True and summary["inert_layers"] == 3
    assert set(summary) == {f"{k}_{s}" for k in T.FIGURES for s in ("median", "max")} | {
        "n_layers",
        "inert_layers",
        "inert",
        "nonfinite_layers",
    }
    assert summary["omega_p_rms_max"] == pytest.approx(7.0 * real[0]["p_rms"])
    with pytest.raises(ValueError, match="at least one layer"):
        T.summarize([])


def test_inert_threshold_and_bad_inputs() -> None:
    assert T.INERT_THRESHOLD == 1e-3
    assert T.inert(9.99e-4) and not T.inert(1e-3) and not T.inert(0.2)
    assert T.inert(0.05, threshold=0.1)
    a, b = _factors(8, 6, 2)
    with pytest.raises(ValueError, match="Factors must be"):
        T.layer_mechanism(a, b.T, 1.0, _identity)
    with pytest.raises(ValueError, match="element-wise"):
        T.layer_mechanism(a, b, 1.0, lambda x: x.sum(0))
    with pytest.raises(ValueError, match="2-D"):
        T.spectral_norm(torch.ones(3))


def test_a_diverged_layer_gives_nan_not_an_exception() -> None:
    a, b = _factors(10, 8, 2)
    b[3, 1] = float("nan")
    got = T.layer_mechanism(a, b, 2.0, _sinter_like(0.5, 10.0))
    assert math.isnan(got["nonlinearity"]) and math.isnan(got["stable_rank"])
    assert math.isnan(got["stable_rank_lora"]) and got["inert"] is False
    fine = T.layer_mechanism(*_factors(10, 8, 2), 2.0, _identity)
    out = T.summarize([got, fine])
    assert out["nonlinearity_max"] == 0.0 and out["stable_rank_max"] == fine["stable_rank"]
    assert (out["nonfinite_layers"], out["inert_layers"], out["inert"]) == (1, 1, False)
