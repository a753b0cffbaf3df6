"""LoRAN injection applies the 4-bit guard; a short LoRAN run on NF4 whose loss falls."""

from __future__ import annotations

import bitsandbytes as bnb
import peft
import torch

from loran_search.adapters import LoranConfig
from loran_search.quant import quantize_4bit

TARGETS = ["q_proj", "v_proj"]


def _raw_nf4(llama):
    """An NF4 model with the bitsandbytes default (repacking allowed), like a fresh load."""
    model = llama()
    quantize_4bit(model)
    for m in model.modules():
        if isinstance(m, bnb.nn.Linear4bit):
            m.support_avx512bf16_for_cpu = bnb.functional.has_avx512bf16()
    return model


def _all_guarded(model):
    layers = [m for m in model.modules() if isinstance(m, bnb.nn.Linear4bit)]
    return len(layers) == 2 * 7 and all(not m.support_avx512bf16_for_cpu for m in layers)


def test_evaluate_then_train_gives_nonzero_gradients(llama, randomize, make_ids):
    """The trap: one evaluation, then no gradient flows. Injection applies the guard."""
    ids = make_ids()
    model = _raw_nf4(llama)
    pm = peft.get_peft_model(
        model, LoranConfig(r=4, lora_alpha=8, target_modules=TARGETS, activation="sinter")
    )
    randomize(pm, std=0.05)
    pm.eval()
    with torch.no_grad():
        pm(input_ids=ids)  # evaluate first (eval mode, no grad)
    pm.train()
    loss = pm(input_ids=ids, labels=ids).loss
    loss.backward()
    grads = [p.grad for n, p in pm.named_parameters() if p.requires_grad]
    assert len(grads) == 8
    assert all(g is not None and g.abs().sum() > 0 for g in grads)
    assert _all_guarded(pm)


def test_short_training_run_on_nf4_loss_falls(nf4, make_ids):
    torch.manual_seed(0)
    ids = make_ids(batch=4, seq=16)
    pm = peft.get_peft_model(
        nf4(),
        LoranConfig(
            r=8,
            lora_alpha=16,
            lora_dropout=0.05,
            target_modules=TARGETS,
            activation="sinter",
            activation_params={"amplitude": 1e-3},
        ),
    )
    opt = torch.optim.AdamW([p for p in pm.parameters() if p.requires_grad], lr=1e-2)
    pm.eval()
    with torch.no_grad():
        pm(input_ids=ids)  # an evaluation before training, as the training loop does
    pm.train()
    losses = []
    for _ in range(25):
        loss = pm(input_ids=ids, labels=ids).loss
        loss.backward()
        opt.step()
        opt.zero_grad()
        losses.append(loss.item())
    assert losses[-1] < losses[0] - 0.3, losses
    assert min(losses[:5]) > max(losses[-5:]), losses
