"""Fixtures for the quantization tests: tiny in-process models (no LoRAN, no peft needed)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import pytest
import torch

from loran_search.quant import silence_bitsandbytes_noise
from tests.conftest import tiny_llama

silence_bitsandbytes_noise()


@pytest.fixture(autouse=True)
def _quiet() -> None:
    logging.getLogger("bitsandbytes").setLevel(logging.ERROR)


@pytest.fixture
def llama() -> Callable[..., Any]:
    return tiny_llama


@pytest.fixture
def make_ids() -> Callable[..., torch.Tensor]:
    def ids(batch: int = 2, seq: int = 12, vocab: int = 96, seed: int = 3) -> torch.Tensor:
        gen = torch.Generator().manual_seed(seed)
        return torch.randint(0, vocab, (batch, seq), generator=gen)

    return ids
