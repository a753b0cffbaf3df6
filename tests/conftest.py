"""Test-wide settings: one torch thread (2-core CI machines), an isolated asset cache dir."""

from __future__ import annotations

import os
from typing import Any

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


def pytest_configure(config: object) -> None:
    """Pin torch to one thread when torch is importable (it is in every test run)."""
    try:
        import torch
    except ImportError:  # pragma: no cover
        return
    torch.set_num_threads(1)


def tiny_llama(seed: int = 0, vocab: int = 96) -> Any:
    """A 2-layer LLaMA (hidden 64, 4 heads) with random weights, float32, eval mode.

    Shared by the adapter and quantization tests (``from tests.conftest import tiny_llama``).
    """
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    cfg = LlamaConfig(
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=4,
        vocab_size=vocab,
        max_position_embeddings=64,
        tie_word_embeddings=False,
    )
    return LlamaForCausalLM(cfg).eval()


#: The token ids of glassllm's BPE tokenizer (vocabulary 1,024), which the tiny T5 and Falcon
#: models share so the text tasks can run on them.
GLASS_IDS = {"vocab": 1024, "pad": 0, "bos": 2, "eos": 3}


def tiny_t5(seed: int = 0, gated: bool = False) -> Any:
    """A 2+2-layer T5 (d_model 32, 4 heads) with random weights and glassllm's token ids.

    ``gated``: the T5 v1.1 / Flan-T5 feed-forward (``wi_0``, ``wi_1``, ``wo``; else ``wi``, ``wo``).
    """
    import torch
    from transformers import T5Config, T5ForConditionalGeneration

    torch.manual_seed(seed)
    cfg = T5Config(
        vocab_size=GLASS_IDS["vocab"],
        d_model=32,
        d_kv=8,
        d_ff=64,
        num_layers=2,
        num_decoder_layers=2,
        num_heads=4,
        dropout_rate=0.0,
        feed_forward_proj="gated-gelu" if gated else "relu",
        pad_token_id=GLASS_IDS["pad"],
        eos_token_id=GLASS_IDS["eos"],
        decoder_start_token_id=GLASS_IDS["pad"],
    )
    return T5ForConditionalGeneration(cfg).eval()


def tiny_falcon(seed: int = 0) -> Any:
    """A 2-layer Falcon (hidden 64, 4 heads, fused query_key_value) with glassllm's token ids."""
    import torch
    from transformers import FalconConfig, FalconForCausalLM

    torch.manual_seed(seed)
    cfg = FalconConfig(
        vocab_size=GLASS_IDS["vocab"],
        hidden_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        new_decoder_architecture=False,
        multi_query=True,
        max_position_embeddings=256,
        pad_token_id=GLASS_IDS["pad"],
        bos_token_id=GLASS_IDS["bos"],
        eos_token_id=GLASS_IDS["eos"],
    )
    return FalconForCausalLM(cfg).eval()
