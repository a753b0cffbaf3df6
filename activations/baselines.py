"""Baseline activations: the identity (LoRAN = QLoRA) and the standard non-linearities."""

from __future__ import annotations

from typing import TYPE_CHECKING

from activations._lazy import torch
from activations.registry import register_activation

if TYPE_CHECKING:
    from torch import Tensor


@register_activation("identity", family="baseline", expr="x")
def identity(x: Tensor) -> Tensor:
    """Identity ``f(x) = x``: LoRAN with it is exactly (Q)LoRA, the baseline of every study."""
    return x
