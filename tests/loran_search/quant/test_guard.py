"""The AVX512-BF16 guard: it sets every 4-bit layer, repairs a repacked one, gradients flow."""

from __future__ import annotations

import bitsandbytes as bnb
import pytest
import torch

from loran_search.quant import guard_4bit, quantize_4bit, unpack_cpu_weight


def _raw_nf4(model, **kw):
    """An NF4 model with the bitsandbytes default (repacking allowed), like a fresh load."""
    quantize_4bit(model, **kw)
    for m in model.modules():
        if isinstance(m, bnb.nn.Linear4bit):
            m.support_avx512bf16_for_cpu = bnb.functional.has_avx512bf16()
    return model


def _input_grad(layer, x):
    x = x.clone().requires_grad_(True)
    layer.train()(x).sum().backward()
    return x.grad


def test_guard_counts_and_sets_every_4bit_layer(llama):
    model = _raw_nf4(llama())
    for m in model.modules():
        if isinstance(m, bnb.nn.Linear4bit):
            m.support_avx512bf16_for_cpu = True
    assert guard_4bit(model) == 2 * 7  # q, k, v, o, gate, up, down per layer
    assert all(
        not m.support_avx512bf16_for_cpu
        for m in model.modules()
        if isinstance(m, bnb.nn.Linear4bit)
    )
    assert guard_4bit(torch.nn.Linear(2, 2)) == 0


def test_guard_repairs_an_already_repacked_model(llama, make_ids):
    ids = make_ids()
    model = _raw_nf4(llama())
    with torch.no_grad():
        want = model.train()(input_ids=ids).logits  # training mode: no repacking
        model.eval()(input_ids=ids)  # eval + no grad: repacks on AVX512-BF16 CPUs
    guard_4bit(model)
    layer = model.model.layers[0].self_attn.q_proj
    assert not getattr(layer.weight.quant_state, "packing_format_for_cpu", False)
    # the repacking rounded the block scales to bfloat16: the repair is exact up to that
    with torch.no_grad():
        torch.testing.assert_close(model.train()(input_ids=ids).logits, want, rtol=1e-2, atol=1e-2)
    x = torch.randn(3, 64, generator=torch.Generator().manual_seed(0))
    grad = _input_grad(layer, x)
    assert grad is not None and grad.abs().sum() > 0


@pytest.mark.skipif(not bnb.functional.has_avx512bf16(), reason="the trap needs AVX512-BF16")
def test_the_trap_still_exists_and_the_guard_fixes_it():
    """Pins bitsandbytes' behaviour: one eval forward repacks, then no gradient flows."""
    layer = _raw_nf4(torch.nn.Sequential(torch.nn.Linear(64, 32, bias=False)), skip=())[0]
    x = torch.randn(3, 64, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        layer.eval()(x)
    assert layer.weight.quant_state.packing_format_for_cpu
    with pytest.warns(UserWarning, match="autograd kernel was not registered"):
        grad = _input_grad(layer, x)
    assert grad is None or not grad.abs().sum() > 0
    assert unpack_cpu_weight(layer)
    assert not unpack_cpu_weight(layer)  # nothing left to undo
    assert guard_4bit(layer) == 1
    grad = _input_grad(layer, x)
    assert grad is not None and grad.abs().sum() > 0
