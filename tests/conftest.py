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
