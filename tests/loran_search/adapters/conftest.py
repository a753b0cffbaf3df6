"""Fixtures for the adapter tests: tiny in-process LLaMA models, NF4 copies, test activations."""

from __future__ import annotations

import logging
import warnings
from collections.abc import Callable
from typing import Any

import pytest
import torch

import loran_search.adapters  # noqa: F401  (registers LoRAN with peft, silences bitsandbytes)
from tests.conftest import tiny_llama

# The activations used where a test needs f visibly non-linear on the tiny models, one per family
# (the registry defaults of Sinter, A = 5e-5, make f almost the identity at these scales).
NONLINEAR: dict[str, dict[str, float]] = {
    "sinter": {"amplitude": 0.05, "frequency": 3.0},
    "tanh": {},
    "fourier_sine": {"amplitude": 0.05, "frequency": 3.0, "terms": 3},
    "legendre": {"amplitude": 0.1, "scale": 2.0, "degree": 3},
}


@pytest.fixture(autouse=True)
def _quiet() -> Any:
    logging.getLogger("bitsandbytes").setLevel(logging.ERROR)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*(Merge|Unmerge) lora module to 4-bit.*")
        warnings.filterwarnings("ignore", message=".*(Merge|Unmerge) lora module to 8-bit.*")
        warnings.filterwarnings("ignore", message=".*Already found a `peft_config`.*")
        yield


def nf4_llama(seed: int = 0, compute_dtype: torch.dtype = torch.float32, **kw: Any) -> Any:
    """:func:`tiny_llama` with every linear layer but the head in NF4 (double quantization)."""
    from loran_search.quant import quantize_4bit

    model = tiny_llama(seed)
    quantize_4bit(model, compute_dtype=compute_dtype, **kw)
    return model


def randomize_lora(model: torch.nn.Module, seed: int = 1, std: float = 0.3) -> None:
    """Give every lora_A/lora_B a random (non-zero) value, reproducibly."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in sorted(model.named_parameters()):
            if "lora_A" in name or "lora_B" in name:
                p.copy_(torch.randn(p.shape, generator=gen, dtype=torch.float32) * std)


def ids(batch: int = 2, seq: int = 12, vocab: int = 96, seed: int = 3) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return torch.randint(0, vocab, (batch, seq), generator=gen)


@pytest.fixture
def make_ids() -> Callable[..., torch.Tensor]:
    return ids


@pytest.fixture
def llama() -> Callable[..., Any]:
    return tiny_llama


@pytest.fixture
def nf4() -> Callable[..., Any]:
    return nf4_llama


@pytest.fixture
def randomize() -> Callable[..., None]:
    return randomize_lora


@pytest.fixture
def nonlinear() -> dict[str, dict[str, float]]:
    return NONLINEAR
