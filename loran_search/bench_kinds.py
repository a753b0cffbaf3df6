"""``loran-search bench kinds``: LoRAN against LoRA per model kind, one training step each.

For every kind of :mod:`loran_search.kinds`, a base of that kind is built in-process with random
weights (no download, no asset): the embedded networks at their real size (``digits-cnn``,
``digits-vit``, ``cartpole-mlp``) and the transformers kinds at a small shape (2 layers, hidden
128, 4 heads, vocabulary 512; T5 with 2 + 2 layers). The kind's default target modules get a
rank-4 adapter (alpha 8, no dropout) twice: peft's LoRA (``peft.LoraConfig``) and LoRAN with
Sinter (``A = 0.5``, ``ω = 10``, :mod:`loran_search.adapters`). One measured step is forward,
backward and an AdamW step on a fixed batch (text: 4 × 64 tokens, T5 targets 16 tokens; images:
64 digits; the policy: 256 CartPole observations — the adapter's arithmetic, not a rollout);
the two variants run in paired rounds (:mod:`loran_search.bench_rounds`: 3 untimed warm-up
rounds, then ``rounds`` counted rounds, each running both variants once in alternating order):
the report gives each variant's median step time and ``loran/lora``, the median of the
round-by-round ratios, with their min–max range (``spread``).

:func:`run_bench_kinds` returns ``{"rounds", "warmup_rounds", "environment", "wall_s", "rows"}``
with one row per kind.
"""

from __future__ import annotations

import copy
import statistics
import time
from collections.abc import Callable
from typing import Any

from loran_search.bench_rounds import Timer, environment, load_average, ratio_spread, run_rounds

DEFAULT_ROUNDS = 30
WARMUP_ROUNDS = 3

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


def measure(
    kind: str,
    rounds: int = DEFAULT_ROUNDS,
    warmup: int = WARMUP_ROUNDS,
    *,
    timer: Timer = time.perf_counter,
) -> dict[str, Any]:
    """LoRA and LoRAN step times on ``kind`` in paired rounds, and their ratio with its range.

    Returns a row: ``kind``, ``targets``, ``trainable_params``, ``lora_ms`` and ``loran_ms``
    (median step times), ``loran/lora`` (the median of the round-by-round ratios ``ρ_r =
    t_r(loran) / t_r(lora)``), ``spread`` (``{"loran/lora": {"low", "high", "rounds"}}``: the
    min and max of the ``ρ_r`` and their count) and ``rounds``.
    """
    import torch

    base, loss_fn = base_of(kind)
    models = {v: _adapted(kind, base, v) for v in ("lora", "loran")}
    opts = {
        v: torch.optim.AdamW([p for p in m.parameters() if p.requires_grad], lr=1e-4)
        for v, m in models.items()
    }

    def step(v: str) -> Callable[[], None]:
        def run() -> None:
            opts[v].zero_grad(set_to_none=True)
            loss_fn(models[v]).backward()
            opts[v].step()

        return run

    times = run_rounds({v: step(v) for v in models}, rounds, warmup=warmup, timer=timer)
    lora, loran = (statistics.median(times[v]) for v in ("lora", "loran"))
    spread = ratio_spread(times, "loran", "lora")
    n_params = sum(p.numel() for p in models["loran"].parameters() if p.requires_grad)
    return {
        "kind": kind,
        "targets": sorted(models["loran"].peft_config["default"].target_modules),
        "trainable_params": int(n_params),
        "lora_ms": round(1e3 * lora, 3),
        "loran_ms": round(1e3 * loran, 3),
        "loran/lora": None if spread is None else round(spread.median, 3),
        "spread": {}
        if spread is None
        else {
            "loran/lora": {
                "low": round(spread.low, 3),
                "high": round(spread.high, 3),
                "rounds": spread.rounds,
            }
        },
        "rounds": rounds,
    }


def run_bench_kinds(
    rounds: int = DEFAULT_ROUNDS,
    kinds: list[str] | None = None,
    *,
    warmup: int = WARMUP_ROUNDS,
    timer: Timer = time.perf_counter,
) -> dict[str, Any]:
    """:func:`measure` for every kind (or the named ones, in that order), on one torch thread.

    Returns ``{"rounds", "warmup_rounds", "environment", "wall_s", "rows"}``.
    """
    import torch

    from loran_search.kinds import KINDS

    torch.set_num_threads(1)
    env = environment()
    started = time.monotonic()
    rows = [measure(k, rounds, warmup, timer=timer) for k in (kinds or list(KINDS))]
    env["load_average"]["end"] = load_average()
    return {
        "rounds": rounds,
        "warmup_rounds": warmup,
        "environment": env,
        "wall_s": round(time.monotonic() - started, 1),
        "rows": rows,
    }
