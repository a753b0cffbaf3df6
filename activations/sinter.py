"""Sinter, the reference LoRAN activation, and its variants."""

from __future__ import annotations

from typing import TYPE_CHECKING

from activations._lazy import torch
from activations.registry import Param, register_activation

if TYPE_CHECKING:
    from torch import Tensor


@register_activation(
    "sinter",
    family="sinter",
    params={
        "amplitude": Param(5e-5, low=1e-7, high=1e-1, log=True, doc="A: perturbation size"),
        "frequency": Param(1e4, low=1e-1, high=1e5, log=True, doc="ω: oscillation frequency"),
    },
    expr="x + amplitude*x*sin(frequency*x)",
)
def sinter(x: Tensor, amplitude: float, frequency: float) -> Tensor:
    """Sinter ``f(x) = x + A·x·sin(ω·x)``, the published LoRAN activation.

    Defaults are the published LLaMA-2-7B adapters' values (``A = 5e-5``, ``ω = 1e4``).
    ``f(0) = 0`` and ``f'(x) = 1 + A·sin(ωx) + A·ω·x·cos(ωx)``: the slope grows with ``|x|`` and
    with ``A·ω``, which is why the study warned about calibration.
    """
    return x + amplitude * x * torch.sin(frequency * x)
