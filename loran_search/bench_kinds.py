"""``loran-search bench kinds``: LoRAN against LoRA per model kind, one training step each.

For every kind of :mod:`loran_search.kinds`, a base of that kind is built in-process with random
weights (no download, no asset): the embedded networks at their real size (``digits-cnn``,
``digits-vit``, ``cartpole-mlp``) and the transformers kinds at a small shape (2 layers, hidden
128, 4 heads, vocabulary 512; T5 with 2 + 2 layers). The kind's default target modules get a
rank-4 adapter (alpha 8, no dropout) twice: peft's LoRA (``peft.LoraConfig``) and LoRAN with
Sinter (``A = 0.5``, ``ω = 10``, :mod:`loran_search.adapters`). One measured step is forward,
backward and an AdamW step on a fixed batch (text: 4 × 64 tokens, T5 targets 16 tokens; images:
64 digits; the policy: 256 CartPole observations — the adapter's arithmetic, not a rollout);
after 3 warm-up steps the two variants' steps are interleaved ``repeats`` times and the medians
are reported with their ratio ``loran/lora``.
"""

from __future__ import annotations

import copy
import statistics
import time
from collections.abc import Callable
from typing import Any

SMALL = {"hidden": 128, "layers": 2, "heads": 4, "vocab": 512, "tokens": 64, "batch": 4}


def _text_batch(seq2seq: bool) -> dict[str, Any]:
    import torch

    g = torch.Generator().manual_seed(0)
    ids = torch.randint(4, SMALL["vocab"], (SMALL["batch"], SMALL["tokens"]), generator=g)
    labels = ids[:, :16].contiguous() if seq2seq else ids
    return {"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": labels}


def base_of(kind: str) -> tuple[Any, Callable[[Any], Any]]:
    """``(a base of ``kind`` with random weights, the scalar loss of one fixed batch)``."""
    import torch

    from loran_search.kinds import KINDS, build_network

    torch.manual_seed(0)
    h, n, heads, vocab = SMALL["hidden"], SMALL["layers"], SMALL["heads"], SMALL["vocab"]
    if kind in ("causal_lm", "falcon", "seq2seq_lm"):
        import transformers as tf

        if kind == "causal_lm":
            model = tf.LlamaForCausalLM(
                tf.LlamaConfig(hidden_size=h, intermediate_size=2 * h, num_hidden_layers=n,
                               num_attention_heads=heads, num_key_value_heads=heads,
                               vocab_size=vocab)
            )  # fmt: skip
        elif kind == "falcon":
            model = tf.FalconForCausalLM(
                tf.FalconConfig(hidden_size=h, num_hidden_layers=n, num_attention_heads=heads,
                                vocab_size=vocab, new_decoder_architecture=False)
            )  # fmt: skip
        else:
            model = tf.T5ForConditionalGeneration(
                tf.T5Config(d_model=h, d_kv=h // heads, d_ff=2 * h, num_layers=n,
                            num_decoder_layers=n, num_heads=heads, vocab_size=vocab,
                            dropout_rate=0.0, decoder_start_token_id=0)
            )  # fmt: skip
        batch = _text_batch(kind == "seq2seq_lm")
        return model, lambda m: m(**batch).loss
    embedded = KINDS[kind].embedded[0]
    model = build_network(embedded)
    g = torch.Generator().manual_seed(0)
    if kind == "cartpole_mlp":
        obs = torch.randn(256, 4, generator=g)
        return model, lambda m: torch.nn.functional.cross_entropy(m(obs), torch.arange(256) % 2)
    images = torch.rand(64, 1, 8, 8, generator=g)
    return model, lambda m: torch.nn.functional.cross_entropy(m(images), torch.arange(64) % 10)


def _adapted(kind: str, base: Any, variant: str) -> Any:
    import peft

    from loran_search.adapters import LoranConfig
    from loran_search.kinds import KINDS

    spec = KINDS[kind]
    kw: dict[str, Any] = {
        "r": 4,
        "lora_alpha": 8,
        "lora_dropout": 0.0,
        "target_modules": list(spec.default_targets),
        "task_type": spec.peft_task_type,
    }
    if variant == "lora":
        cfg: Any = peft.LoraConfig(**kw)
    else:
        sinter = {"amplitude": 0.5, "frequency": 10.0}
        cfg = LoranConfig(activation="sinter", activation_params=sinter, **kw)
    model = copy.deepcopy(base)
    for p in model.parameters():
        p.requires_grad_(False)
    return peft.get_peft_model(model, cfg).train()


def measure(kind: str, repeats: int = 20, warmup: int = 3) -> dict[str, Any]:
    """Median step seconds of LoRA and LoRAN on ``kind`` (module docstring) and their ratio."""
    import torch

    base, loss_fn = base_of(kind)
    models = {v: _adapted(kind, base, v) for v in ("lora", "loran")}
    opts = {
        v: torch.optim.AdamW([p for p in m.parameters() if p.requires_grad], lr=1e-4)
        for v, m in models.items()
    }

    def step(v: str) -> float:
        t0 = time.perf_counter()
        opts[v].zero_grad(set_to_none=True)
        loss_fn(models[v]).backward()
        opts[v].step()
        return time.perf_counter() - t0

    for _ in range(warmup):
        for v in models:
            step(v)
    times: dict[str, list[float]] = {v: [] for v in models}
    for i in range(repeats):
        for v in ("lora", "loran") if i % 2 == 0 else ("loran", "lora"):
            times[v].append(step(v))
    lora, loran = (statistics.median(times[v]) for v in ("lora", "loran"))
    n_params = sum(p.numel() for p in models["loran"].parameters() if p.requires_grad)
    return {
        "kind": kind,
        "targets": sorted(models["loran"].peft_config["default"].target_modules),
        "trainable_params": int(n_params),
        "lora_ms": round(1e3 * lora, 3),
        "loran_ms": round(1e3 * loran, 3),
        "loran/lora": round(loran / lora, 3) if lora > 0 else None,
    }


def run_bench_kinds(repeats: int = 20, kinds: list[str] | None = None) -> list[dict[str, Any]]:
    """:func:`measure` for every kind (or the named ones), in registry order."""
    from loran_search.kinds import KINDS

    return [measure(k, repeats) for k in (kinds or list(KINDS))]
