"""Fixtures for the quantization tests: tiny in-process models (no LoRAN, no peft needed)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import pytest
import torch

from loran_search.quant import silence_bitsandbytes_noise

silence_bitsandbytes_noise()


@pytest.fixture(autouse=True)
def _quiet() -> None:
    logging.getLogger("bitsandbytes").setLevel(logging.ERROR)


def tiny_llama(seed: int = 0, vocab: int = 96) -> Any:
    """A 2-layer LLaMA (hidden 64, 4 heads) with random weights, float32, eval mode."""
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


@pytest.fixture
def llama() -> Callable[..., Any]:
    return tiny_llama


@pytest.fixture
def make_ids() -> Callable[..., torch.Tensor]:
    def ids(batch: int = 2, seq: int = 12, vocab: int = 96, seed: int = 3) -> torch.Tensor:
        gen = torch.Generator().manual_seed(seed)
        return torch.randint(0, vocab, (batch, seq), generator=gen)

    return ids
