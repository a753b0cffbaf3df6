"""The AVX512-BF16 guard, and a short LoRAN training run on an NF4 tiny LLaMA whose loss falls."""

from __future__ import annotations

import bitsandbytes as bnb
import peft
import torch

from loran_search.adapters import LoranConfig, guard_4bit

TARGETS = ["q_proj", "v_proj"]


def _raw_nf4(llama):
    """An NF4 model with the bitsandbytes default (repacking allowed), like a fresh load."""
    from loran_search.adapters.quantize import quantize_4bit

    model = llama()
    quantize_4bit(model)
    for m in model.modules():
        if isinstance(m, bnb.nn.Linear4bit):
            m.support_avx512bf16_for_cpu = bnb.functional.has_avx512bf16()
    return model


def test_guard_counts_and_sets_every_4bit_layer(llama):
    model = _raw_nf4(llama)
    assert guard_4bit(model) == 2 * 7  # q, k, v, o, gate, up, down per layer
    assert all(
        not m.support_avx512bf16_for_cpu
        for m in model.modules()
        if isinstance(m, bnb.nn.Linear4bit)
    )
    assert guard_4bit(torch.nn.Linear(2, 2)) == 0


def test_guard_repairs_an_already_repacked_model(llama, make_ids):
    ids = make_ids()
    model = _raw_nf4(llama)
    with torch.no_grad():
        want = model.train()(input_ids=ids).logits  # training mode: no repacking
        model.eval()(input_ids=ids)  # eval + no grad: repacks on AVX512-BF16 CPUs
    guard_4bit(model)
    layer = model.model.layers[0].self_attn.q_proj
    assert not getattr(layer.weight.quant_state, "packing_format_for_cpu", False)
    # the repacking rounded the block scales to bfloat16: the repair is exact up to that
    with torch.no_grad():
        torch.testing.assert_close(model.train()(input_ids=ids).logits, want, rtol=1e-2, atol=1e-2)
    pm = peft.get_peft_model(model, LoranConfig(r=4, target_modules=TARGETS))
    pm(input_ids=ids, labels=ids).loss.backward()
    assert all(p.grad is not None for p in pm.parameters() if p.requires_grad)


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
    assert all(
        not m.support_avx512bf16_for_cpu for m in pm.modules() if isinstance(m, bnb.nn.Linear4bit)
    )


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
