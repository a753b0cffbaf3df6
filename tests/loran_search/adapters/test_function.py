"""The recomputing autograd function: float64 gradcheck for every registered activation, memory."""

from __future__ import annotations

import pytest
import torch

from activations import get_activation, list_activations
from loran_search.adapters.function import DeltaTerm, delta_weight, loran_linear

D_OUT, D_IN, R = 5, 6, 3


def _inputs(seed: int = 0) -> tuple[torch.Tensor, ...]:
    gen = torch.Generator().manual_seed(seed)

    def rnd(*shape: int, scale: float = 0.5) -> torch.Tensor:
        t = torch.randn(*shape, generator=gen, dtype=torch.float64) * scale
        return t.requires_grad_(True)

    return rnd(2, 3, D_IN), rnd(R, D_IN), rnd(D_OUT, R), rnd(D_OUT, D_IN).detach(), rnd(D_OUT)


@pytest.mark.parametrize("name", list_activations())
def test_gradcheck_fused_and_delta_only(name: str) -> None:
    f = get_activation(name)
    term = DeltaTerm(0.7, f, f.is_identity)
    x, a, b, w, bias = _inputs()

    def fused(x: torch.Tensor, a: torch.Tensor, b: torch.Tensor, bias: torch.Tensor):
        return loran_linear(x, lambda: (w, False), bias, torch.float64, [term], [a, b])

    def delta_only(x: torch.Tensor, a: torch.Tensor, b: torch.Tensor):
        return loran_linear(x, None, None, torch.float64, [term], [a, b])

    # Central differences need a step small against the oscillation: the published Cos
    # (A = 1, ω = 1e4) turns 1e4 rad per unit of P, so its step shrinks with A·ω.
    wiggle = float(f.params.get("amplitude", 0.0)) * float(f.params.get("frequency", 0.0))
    eps = 1e-6 / max(1.0, wiggle / 100.0)
    assert torch.autograd.gradcheck(fused, (x, a, b, bias), eps=eps)
    assert torch.autograd.gradcheck(delta_only, (x, a, b), eps=eps)


def test_gradcheck_two_adapters_and_values_match_formula() -> None:
    f1 = get_activation("sinter", amplitude=0.05, frequency=3.0)
    f2 = get_activation("tanh")
    terms = [DeltaTerm(0.5, f1), DeltaTerm(2.0, f2)]
    x, a1, b1, w, bias = _inputs(1)
    _, a2, b2, _, _ = _inputs(2)

    def fn(x, a1, b1, a2, b2):
        return loran_linear(x, lambda: (w, False), bias, torch.float64, terms, [a1, b1, a2, b2])

    assert torch.autograd.gradcheck(fn, (x, a1, b1, a2, b2))
    expected = x @ (w + 0.5 * f1(b1 @ a1) + 2.0 * torch.tanh(b2 @ a2)).T + bias
    torch.testing.assert_close(fn(x, a1, b1, a2, b2), expected, rtol=1e-12, atol=1e-12)
    with torch.no_grad():
        torch.testing.assert_close(
            delta_weight(terms, [a1, b1, a2, b2]),
            0.5 * f1(b1 @ a1) + 2.0 * torch.tanh(b2 @ a2),
            rtol=1e-12,
            atol=1e-12,
        )


def test_autograd_keeps_no_d_out_by_d_in_tensor() -> None:
    """Only x and the factors are saved: nothing of size d_out × d_in lives until backward."""
    d_out, d_in, r, tokens = 48, 40, 4, 8  # d_out·d_in is far above every saved tensor's size
    x = torch.randn(tokens, d_in, requires_grad=True)
    a = torch.randn(r, d_in, requires_grad=True)
    b = torch.randn(d_out, r, requires_grad=True)
    w = torch.randn(d_out, d_in)
    f = get_activation("sinter", amplitude=0.05, frequency=3.0)
    saved: list[int] = []

    def pack(t: torch.Tensor) -> torch.Tensor:
        saved.append(t.numel())
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        y = loran_linear(x, lambda: (w, False), None, torch.float32, [DeltaTerm(0.5, f)], [a, b])
    assert saved and max(saved) < d_out * d_in
    y.sum().backward()

    # the plain-autograd formulation stores several d_out × d_in tensors (what LoRAN avoids)
    saved.clear()
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        _ = x @ (w + 0.5 * f(b @ a)).T
    assert max(saved) >= d_out * d_in


def test_bfloat16_compute_matches_float32_to_bf16_tolerance() -> None:
    torch.manual_seed(0)
    x = torch.randn(4, 7, 32)
    a, b = torch.randn(4, 32) * 0.3, torch.randn(24, 4) * 0.3
    w = torch.randn(24, 32) * 0.2
    f = get_activation("sinter", amplitude=0.05, frequency=3.0)
    term = [DeltaTerm(0.5, f)]
    xs, as_, bs = (t.clone().requires_grad_(True) for t in (x, a, b))
    y32 = loran_linear(xs, lambda: (w, False), None, torch.float32, term, [as_, bs])
    y32.square().sum().backward()
    x16, a16, b16 = (t.clone().requires_grad_(True) for t in (x, a, b))
    y16 = loran_linear(x16, lambda: (w, False), None, torch.bfloat16, term, [a16, b16])
    y16.square().sum().backward()
    assert y16.dtype == torch.float32  # output in x's dtype, product in bf16
    torch.testing.assert_close(y16, y32, rtol=2e-2, atol=2e-2)
    for g16, g32 in ((x16.grad, xs.grad), (a16.grad, as_.grad), (b16.grad, bs.grad)):
        rel = (g16 - g32).norm() / g32.norm()
        assert rel < 2e-2
    assert not torch.equal(y16, y32)  # it really ran in bfloat16
