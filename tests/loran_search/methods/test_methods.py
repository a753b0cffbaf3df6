"""Peer arms: each builds with peft's own tuner, trains, saves and reloads; counts; matching.

Tiny in-process LLaMA models (hidden 64, 2 layers, q_proj 64 → 64 and v_proj 64 → 64), float32
and NF4; no download.
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

import peft
import pytest
import torch

from loran_search.config import AdapterSection
from loran_search.methods import (
    LORAN,
    METHODS,
    PEER_METHODS,
    matched_rank,
    method_problems,
    resolve_settings,
    total_params,
)
from loran_search.methods.build import build_peer, peft_config, target_shapes
from loran_search.quant import guard_4bit, quantize_4bit
from tests.conftest import tiny_llama

ADAPTER = AdapterSection(target_modules=["q_proj", "v_proj"], alpha=16, dropout=0.0)
ON_4BIT = [m for m in PEER_METHODS if "nf4" in METHODS[m].quantizations]


@pytest.fixture(autouse=True)
def _quiet():
    logging.getLogger("bitsandbytes").setLevel(logging.ERROR)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def _base(quantization: str):
    model = tiny_llama()
    if quantization == "nf4":
        quantize_4bit(model, quant_type="nf4", compute_dtype=torch.float32, double_quant=True)
        guard_4bit(model)
    return model


def _ids(seed: int = 3) -> torch.Tensor:
    return torch.randint(0, 96, (2, 12), generator=torch.Generator().manual_seed(seed))


CASES = [(m, "none") for m in PEER_METHODS] + [(m, "nf4") for m in ON_4BIT]


@pytest.mark.parametrize(("method", "quantization"), CASES, ids=lambda v: str(v))
def test_every_arm_builds_trains_saves_and_reloads(method, quantization, tmp_path: Path):
    base = _base(quantization)
    shapes = target_shapes(base, ADAPTER.target_modules)  # before peft wraps the layers
    assert shapes == [(64, 64)] * 4
    model = build_peer(base, ADAPTER, method, 4, {})
    assert type(model.peft_config["default"]) is type(peft_config(method, ADAPTER, 4))
    trainable = [p for p in model.parameters() if p.requires_grad]
    # the formula of loran_search.methods against peft's own count
    n = sum(p.numel() for p in trainable)
    assert n == total_params(method, shapes, 4, {})
    ids = _ids()
    model.eval()
    with torch.no_grad():  # an eval-mode forward first: the 4-bit trap of ASSETS.md
        model(input_ids=ids)
    model.train()
    opt = torch.optim.AdamW(trainable, lr=1e-2)
    before = [p.detach().clone() for p in trainable]
    for _ in range(3):
        loss = model(input_ids=ids, labels=ids).loss
        loss.backward()
        grads = [p.grad for p in trainable if p.grad is not None]
        assert grads and any(float(g.abs().sum()) > 0 for g in grads)
        opt.step()
        opt.zero_grad(set_to_none=True)
    assert any(not torch.equal(b, p.detach()) for b, p in zip(before, trainable, strict=True))
    model.save_pretrained(str(tmp_path))
    model.eval()
    with torch.no_grad():
        want = model(input_ids=ids).logits
    plain = model.unload()
    again = peft.PeftModel.from_pretrained(plain, str(tmp_path)).eval()
    assert type(again.peft_config["default"]) is type(model.peft_config["default"])
    with torch.no_grad():
        got = again(input_ids=ids).logits
    torch.testing.assert_close(got, want, rtol=0, atol=1e-5)


def test_rslora_dora_are_loraconfig_flags_and_settings_reach_peft():
    assert peft_config("rslora", ADAPTER, 8).use_rslora
    assert peft_config("dora", ADAPTER, 8).use_dora
    assert not peft_config("lora", ADAPTER, 8).use_dora
    assert peft_config("hira", ADAPTER, 8, {"init": "gaussian"}).init_weights == "gaussian"
    assert peft_config("hira", ADAPTER, 8).init_weights is True
    p = peft_config("peanut", ADAPTER, 8, {"depth": 2, "act_fn": "gelu", "scaling": 0.5})
    assert (p.depth, p.act_fn, p.scaling) == (2, "gelu", 0.5)
    assert peft_config("delora", ADAPTER, 8, {"lambda": 4}).delora_lambda == 4
    with pytest.raises(KeyError, match="has no setting 'depht'; its settings: depth, act_fn"):
        resolve_settings("peanut", {"depht": 1})
    with pytest.raises(ValueError, match=r"outside its range \[0, 4\]"):
        resolve_settings("peanut", {"depth": 9})


def test_parameter_counts_on_known_shapes():
    shapes = [(576, 576), (576, 192)]  # SmolLM2-135M's q_proj and v_proj, one block
    lora8 = 8 * (576 + 576) + 8 * (576 + 192)
    assert total_params(LORAN, shapes, 8, {}) == lora8 == 15_360
    assert total_params("dora", shapes, 8, {}) == lora8 + 576 + 192
    assert total_params("hira", shapes, 8, {}) == lora8
    assert total_params("delora", shapes, 8, {}) == lora8 + 2
    assert total_params("peanut", shapes, 8, {}) == 2 * 8 * 576 + 2 * 8 * 192
    assert total_params("peanut", shapes, 8, {"depth": 1}) == 2 * 8 * 768 + 2 * 2 * 64


def test_matching_picks_the_closest_rank_on_known_shapes():
    shapes = [(576, 576), (576, 192)] * 30  # all 30 blocks of SmolLM2-135M
    # DoRA adds 768 per block: at r = 8 it is 23,040 over LoRAN's 460,800; r = 7 is 34,560 under.
    m = matched_rank("dora", shapes, 8)
    assert (m.rank, m.params, m.loran_params) == (8, 483_840, 460_800)
    assert m.relative_gap == pytest.approx(0.05)
    # At r = 1, DoRA's 1 + 768/1920 = 1.4 units of LoRA's: r' = 1 stays closest.
    assert matched_rank("dora", [(64, 64)], 1).rank == 1
    # PEANuT (depth 0) has 2·r·d_out per layer, against LoRA's r·(d_in + d_out): on square
    # layers they are equal; on (576 → 192), 384 r' against 768 r, so r' = 2r.
    assert matched_rank("peanut", [(576, 192)], 8).rank == 16
    assert matched_rank("peanut", [(64, 64)], 4).rank == 4
    # a tie goes to the smaller rank: |N(r') − N(r)| equal on both sides
    tie = matched_rank("peanut", [(300, 100)], 1)  # target 400, r'=2 → 400 exactly
    assert tie.rank == 2 and tie.params == 400
    # never wider than the narrowest layer
    assert matched_rank("peanut", [(576, 4)], 8).rank == 4


def test_refusals_name_the_reason_and_the_nearest_alternative():
    for method in ("peanut", "delora"):
        for q in ("nf4", "fp4", "int8"):
            (msg,) = method_problems(method, quantization=q)
            assert f"cannot run on a base quantized to {q}" in msg
            assert "Use `model.quantization: none`" in msg
            assert "hira is the dense-update one with 4-bit layers" in msg
        assert method_problems(method, quantization="none") == []
    for method in ("lora", "rslora", "dora", "hira"):
        assert method_problems(method, quantization="nf4") == []
    (msg,) = method_problems("peanut", quantization="none", target_types={"conv": {"Conv2d"}})
    assert "adapts Linear layers only, but target module 'conv' is a Conv2d" in msg
    assert "lora, rslora, dora, hira" in msg
