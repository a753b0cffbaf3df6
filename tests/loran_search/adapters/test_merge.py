"""merge / unmerge / merge_and_unload on full-precision and NF4 bases."""

from __future__ import annotations

import peft
import pytest
import torch

from loran_search.adapters import LoranConfig

TARGETS = ["q_proj", "v_proj"]
SINTER = {"amplitude": 0.05, "frequency": 3.0}


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).norm() / b.norm())


def test_fp32_merge_unmerge_merge_and_unload(llama, randomize, make_ids):
    ids = make_ids()
    pm = peft.get_peft_model(
        llama(),
        LoranConfig(
            r=4, lora_alpha=8, target_modules=TARGETS, activation="sinter", activation_params=SINTER
        ),
    )
    randomize(pm)
    pm.eval()
    with torch.no_grad():
        unmerged = pm(input_ids=ids).logits
        base = llama()(input_ids=ids).logits
        assert _rel(unmerged, base) > 1e-3  # the adapter matters
        pm.merge_adapter()
        assert pm.base_model.model.model.layers[0].self_attn.q_proj.merged
        merged = pm(input_ids=ids).logits
        assert _rel(merged, unmerged) < 1e-5
        pm.unmerge_adapter()
        assert _rel(pm(input_ids=ids).logits, unmerged) < 1e-5
        w0 = llama().model.layers[0].self_attn.q_proj.weight
        w1 = pm.base_model.model.model.layers[0].self_attn.q_proj.get_base_layer().weight
        torch.testing.assert_close(w1, w0, rtol=0, atol=1e-6)  # unmerge restores W
        plain = pm.merge_and_unload()
        assert not any("lora" in n for n, _ in plain.named_parameters())
        assert type(plain.model.layers[0].self_attn.q_proj) is torch.nn.Linear
        assert _rel(plain(input_ids=ids).logits, unmerged) < 1e-5


@pytest.mark.parametrize("quant_type", ["nf4", "fp4"])
def test_4bit_merge_error_at_most_twice_peft_lora(quant_type, nf4, randomize, make_ids):
    """Dequantize → add → requantize: the error is that of peft's own LoRA merge, at most 2×."""
    ids = make_ids()
    common = {"r": 4, "lora_alpha": 8, "target_modules": TARGETS}
    errors = {}
    for kind, cfg in {
        "lora": peft.LoraConfig(**common),
        "loran": LoranConfig(**common, activation="sinter", activation_params=SINTER),
    }.items():
        pm = peft.get_peft_model(nf4(quant_type=quant_type), cfg)
        randomize(pm, std=0.1)
        pm.eval()
        with torch.no_grad():
            unmerged = pm(input_ids=ids).logits
            pm.merge_adapter()
            merged = pm(input_ids=ids).logits
            errors[kind] = _rel(merged, unmerged)
            pm.unmerge_adapter()
            errors[kind + "_unmerge"] = _rel(pm(input_ids=ids).logits, unmerged)
            pm.merge_adapter()
            out = pm.merge_and_unload()(input_ids=ids).logits
            errors[kind + "_unload"] = _rel(out, unmerged)
    assert 0 < errors["loran"] <= 2 * errors["lora"], errors
    assert errors["loran_unmerge"] <= 2 * errors["lora_unmerge"], errors
    assert errors["loran_unload"] <= 2 * errors["lora_unload"], errors
    assert errors["loran"] < 0.5  # and the merged model is still close to the adapted one


def test_4bit_merged_weight_is_requantized_w_plus_delta(nf4, randomize):
    import bitsandbytes as bnb

    pm = peft.get_peft_model(
        nf4(),
        LoranConfig(
            r=4, lora_alpha=8, target_modules=TARGETS, activation="sinter", activation_params=SINTER
        ),
    )
    randomize(pm, std=0.1)
    layer = pm.base_model.model.model.layers[0].self_attn.v_proj
    base = layer.get_base_layer()
    w = bnb.functional.dequantize_4bit(base.weight.data, base.weight.quant_state)
    delta = layer.get_delta_weight("default")
    layer.merge()
    w_merged = bnb.functional.dequantize_4bit(base.weight.data, base.weight.quant_state)
    # the merged weight is exactly the 4-bit rounding of W + Δ (not of W, not of W + s·B·A)
    state = base.weight.quant_state
    q, s = bnb.functional.quantize_4bit(
        (w + delta).contiguous(),
        blocksize=state.blocksize,
        quant_type=state.quant_type,
        compress_statistics=state.nested,
    )
    torch.testing.assert_close(w_merged, bnb.functional.dequantize_4bit(q, s), rtol=0, atol=1e-6)
    assert (w_merged - w).abs().max() > 10 * (w_merged - (w + delta)).abs().mean()


def test_unload_restores_the_bare_base(nf4, randomize, make_ids):
    ids = make_ids()
    model = nf4()
    with torch.no_grad():
        want = model(input_ids=ids).logits
    pm = peft.get_peft_model(model, LoranConfig(r=4, target_modules=TARGETS, activation="tanh"))
    randomize(pm)
    bare = pm.unload()
    assert not any("lora" in n for n, _ in bare.named_parameters())
    with torch.no_grad():
        torch.testing.assert_close(bare(input_ids=ids).logits, want, rtol=0, atol=0)
