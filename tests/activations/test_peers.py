"""``sine_lora`` and the published ``cos`` against their published formulas, through a LoRAN layer.

The reference expressions are written here from the published code, independently of the
registry: the published LoRAN code's ``Cos`` (github liyinqiao2012/PEFT-LoRAN,
``src/peft/utils/other.py``) is ``x·cos(1e4·x) + x``; Sine-LoRA (github samy-ji/Sine-Low-Rank,
``llm/peft/src/peft/tuners/sinlora.py``) adds ``x @ sin(freq · Aᵀ·Bᵀ) / sqrt(in_features) ·
scaling`` to the base output and merges ``sin(freq · B·A) / sqrt(in_features) · scaling`` into W.
"""

from __future__ import annotations

import math

import peft
import pytest
import torch

import loran_search.adapters  # noqa: F401  (registers LoRAN with peft)
from activations import get_activation, get_spec
from loran_search.adapters import LoranConfig
from tests.conftest import tiny_llama

D_IN = 64  # the tiny LLaMA's q_proj: 64 → 64


def published_cos(p: torch.Tensor) -> torch.Tensor:
    return p * torch.cos(1e4 * p) + p


def published_sine_delta(a: torch.Tensor, b: torch.Tensor, freq: float, d_in: int) -> torch.Tensor:
    """Sine-LoRA's merged update before ``scaling``: ``sin(freq·B·A)/sqrt(in_features)``."""
    return torch.sin(freq * (b @ a)) / math.sqrt(d_in)


def test_defaults_are_the_published_ones():
    cos = get_spec("cos")
    assert cos.params["amplitude"].default == 1.0 and cos.params["frequency"].default == 1e4
    assert cos.params["amplitude"].low < 1.0 < cos.params["amplitude"].high  # still searchable
    sine = get_spec("sine_lora")
    assert sine.family == "peer" and sine.expr == "sin(frequency*x)/gain"
    import activations.peers as source

    assert sine.module == "activations.peers" and "samy-ji/Sine-Low-Rank" in (source.__doc__ or "")
    x = torch.linspace(-1e-2, 1e-2, 101, dtype=torch.float64)
    torch.testing.assert_close(get_activation("cos")(x), published_cos(x), rtol=0, atol=1e-15)


def _layer(activation: str, params: dict[str, float], seed: int = 1, std: float = 0.05):
    pm = peft.get_peft_model(
        tiny_llama(),
        LoranConfig(
            r=4,
            lora_alpha=8,
            lora_dropout=0.0,
            target_modules=["q_proj"],
            activation=activation,
            activation_params=params,
        ),
    )
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in sorted(pm.named_parameters()):
            if "lora_A" in name or "lora_B" in name:
                p.copy_(torch.randn(p.shape, generator=gen) * std)
    layer = pm.base_model.model.model.layers[0].self_attn.q_proj
    return pm, layer


CASES = {
    # the published Cos at the registry defaults
    "cos": ({}, lambda a, b: published_cos(b @ a)),
    # Sine-LoRA with the gain set to √d_in of this layer, as its code sets self.s
    "sine_lora": (
        {"frequency": 200.0, "gain": math.sqrt(D_IN)},
        lambda a, b: published_sine_delta(a, b, 200.0, D_IN),
    ),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_forward_gradient_and_merge_match_the_published_formula(name):
    params, f_of = CASES[name]
    pm, layer = _layer(name, params)
    a, b = layer.lora_A["default"].weight, layer.lora_B["default"].weight
    s = float(layer.scaling["default"])
    w = layer.get_base_layer().weight
    x = torch.randn(2, 5, D_IN, generator=torch.Generator().manual_seed(7))
    layer.train()
    y = layer(x)
    want = torch.nn.functional.linear(x, w) + s * (x @ f_of(a, b).T)
    torch.testing.assert_close(y, want, rtol=1e-5, atol=1e-6)
    # the gradient through A and B, against autograd of the published expression
    g = torch.randn(y.shape, generator=torch.Generator().manual_seed(8))
    ga, gb = torch.autograd.grad((y * g).sum(), [a, b])
    a2, b2 = a.detach().clone().requires_grad_(), b.detach().clone().requires_grad_()
    ref = torch.nn.functional.linear(x, w) + s * (x @ f_of(a2, b2).T)
    ra, rb = torch.autograd.grad((ref * g).sum(), [a2, b2])
    torch.testing.assert_close(ga, ra, rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(gb, rb, rtol=1e-4, atol=1e-6)
    assert float(ga.abs().sum()) > 0 and float(gb.abs().sum()) > 0
    # merge: W + s·f(B·A), the published merged weight
    with torch.no_grad():
        w0 = w.detach().clone()
        pm.merge_adapter()
        torch.testing.assert_close(
            layer.get_base_layer().weight, w0 + s * f_of(a, b), rtol=1e-5, atol=1e-6
        )
        layer.eval()
        torch.testing.assert_close(layer(x), want, rtol=1e-4, atol=1e-5)


def test_sine_lora_starts_at_zero_with_slope_frequency_over_gain():
    f = get_activation("sine_lora")
    x = torch.tensor([0.0, 1e-6], dtype=torch.float64, requires_grad=True)
    y = f(x)
    assert float(y[0]) == 0.0
    (slope,) = torch.autograd.grad(y[0], x)
    assert float(slope[0]) == pytest.approx(200.0 / 64.0)
