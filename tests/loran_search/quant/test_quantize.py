"""In-memory quantization (4-bit NF4/FP4, 8-bit) and the cheap import of loran_search.quant."""

from __future__ import annotations

import logging
import subprocess
import sys
from pathlib import Path

import bitsandbytes as bnb
import pytest
import torch

from loran_search.quant import quantize_4bit, quantize_8bit, silence_bitsandbytes_noise

REPO = Path(__file__).resolve().parents[3]


@pytest.mark.parametrize("quant_type", ["nf4", "fp4"])
def test_quantize_4bit_replaces_linears_but_the_head(llama, make_ids, quant_type):
    model = llama()
    ids = make_ids()
    with torch.no_grad():
        want = model(input_ids=ids).logits
    assert quantize_4bit(model, quant_type=quant_type) == 2 * 7
    assert model.is_loaded_in_4bit  # what transformers sets; peft's bnb dispatch reads it
    assert type(model.lm_head) is torch.nn.Linear
    q = model.model.layers[0].mlp.down_proj
    assert isinstance(q, bnb.nn.Linear4bit) and q.weight.quant_type == quant_type
    assert not q.support_avx512bf16_for_cpu  # guarded
    with torch.no_grad():
        got = model(input_ids=ids).logits
    assert (got - want).abs().max() < 0.5  # quantized, not broken


def test_quantize_4bit_refuses_an_unknown_type(llama):
    with pytest.raises(ValueError, match="'nf4' or 'fp4'"):
        quantize_4bit(llama(), quant_type="int4")


def test_quantize_8bit(llama, make_ids):
    model = llama()
    assert quantize_8bit(model, skip=("lm_head", "down_proj")) == 2 * 6
    assert model.is_loaded_in_8bit
    assert isinstance(model.model.layers[1].self_attn.o_proj, bnb.nn.Linear8bitLt)
    assert type(model.model.layers[1].mlp.down_proj) is torch.nn.Linear
    with torch.no_grad():
        assert torch.isfinite(model(input_ids=make_ids()).logits).all()


def test_plain_peft_lora_sees_the_in_memory_4bit_model(llama):
    """Pins peft reading transformers' ``is_loaded_in_4bit`` flag that quantize_4bit sets."""
    import peft
    from peft.tuners.lora import bnb as lora_bnb

    model = llama()
    quantize_4bit(model)
    pm = peft.get_peft_model(model, peft.LoraConfig(r=2, target_modules=["q_proj"]))
    assert isinstance(pm.base_model.model.model.layers[0].self_attn.q_proj, lora_bnb.Linear4bit)


def test_noise_filter_drops_only_the_kernels_community_message(caplog):
    silence_bitsandbytes_noise()
    silence_bitsandbytes_noise()  # idempotent
    logger = logging.getLogger("bitsandbytes.backends.cpu.ops")
    assert len(logger.filters) == 1
    with caplog.at_level(logging.INFO, logger=logger.name):
        logger.warning("Failed to load CPU gemm_4bit_forward from kernels-community: no kernels")
        logger.warning("something else")
    assert [r.getMessage() for r in caplog.records] == ["something else"]


def test_importing_loran_search_quant_is_cheap():
    script = (
        "import sys, loran_search.quant, loran_search.quant.noise\n"
        "from loran_search.quant import silence_bitsandbytes_noise\n"
        "heavy = {'torch', 'bitsandbytes', 'peft', 'transformers', 'loran_search.adapters'}\n"
        "print(sorted(heavy & set(sys.modules)))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip() == "[]"
