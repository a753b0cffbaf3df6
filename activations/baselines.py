"""Baseline activations: the identity (LoRAN = QLoRA) and the standard non-linearities.

Every baseline is applied element-wise to the full update ``B·A``. Only ``identity`` and
``tanh`` satisfy ``f(0) = 0`` *and* ``f'(0) = 1`` (the published ``cos`` has ``f'(0) = 2``); the
others are here to measure what a generic non-linearity does to a LoRA update (``activations
audit`` says where each one starts and how it rescales the gradient).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ._lazy import torch
from .registry import Param, register_activation

if TYPE_CHECKING:
    from torch import Tensor

_FREQUENCY = Param(1e4, low=1e-1, high=1e5, log=True, doc="ω: oscillation frequency")


@register_activation("identity", family="baseline", expr="x")
def identity(x: Tensor) -> Tensor:
    """Identity ``f(x) = x``: LoRAN with it is exactly (Q)LoRA, the baseline of every study."""
    return x


@register_activation("relu", family="baseline", expr="relu(x)")
def relu(x: Tensor) -> Tensor:
    """Rectifier ``f(x) = max(0, x)``.

    ``B·A`` starts at exactly 0, where autograd takes the sub-gradient 0: with ``B = 0`` at
    initialisation the adapter receives no gradient at all (the audit warns about the kink).
    """
    return torch.relu(x)


@register_activation("sigmoid", family="baseline", expr="sigmoid(x)")
def sigmoid(x: Tensor) -> Tensor:
    """Logistic ``f(x) = 1 / (1 + e^{-x})``; ``f(0) = 1/2`` so ``ΔW`` does not start at zero."""
    return torch.sigmoid(x)


@register_activation("tanh", family="baseline", expr="tanh(x)")
def tanh(x: Tensor) -> Tensor:
    """The hyperbolic tangent: ``f(0) = 0``, ``f'(0) = 1``, saturates at ±1."""
    return torch.tanh(x)


@register_activation("silu", family="baseline", expr="x*sigmoid(x)")
def silu(x: Tensor) -> Tensor:
    """SiLU ``f(x) = x·σ(x)``: ``f(0) = 0`` but ``f'(0) = 1/2`` (halves the initial step)."""
    return torch.nn.functional.silu(x)


@register_activation(
    "swish",
    family="baseline",
    params={"beta": Param(25.0, low=0.1, high=100.0, log=True, doc="β: gate sharpness")},
    expr="x*sigmoid(beta*x)",
)
def swish(x: Tensor, beta: float) -> Tensor:
    """Swish ``f(x) = x·σ(β·x)``; the reference code used ``β = 25`` (the default).

    ``f'(0) = 1/2`` for every ``β``; a large ``β`` makes it ReLU-like away from 0.
    """
    return x * torch.sigmoid(beta * x)


@register_activation("gelu", family="baseline", expr="x*(1 + erf(x/sqrt(2)))/2")
def gelu(x: Tensor) -> Tensor:
    """Exact GELU ``f(x) = x·Φ(x) = x·(1 + erf(x/√2))/2``; ``f'(0) = 1/2``."""
    return torch.nn.functional.gelu(x)


@register_activation("gaussian", family="baseline", expr="0.5*x*exp(-x**2)")
def gaussian(x: Tensor) -> Tensor:
    """The reference code's Gaussian-windowed identity ``f(x) = 0.5·x·e^{-x²}``.

    ``f'(0) = 1/2`` and ``f`` is not monotone (it turns back for ``|x| > 1/√2``).
    """
    return 0.5 * x * torch.exp(-x * x)


#: The published LoRAN code's ``Cos``: ``x·cos(1e4·x) + x``, amplitude 1 (fixed there). The range
#: keeps the amplitude searchable around it (``1`` lies inside, as do the small ones of Sinter).
_COS_AMPLITUDE = Param(1.0, low=1e-7, high=1e1, log=True, doc="A: perturbation size (published: 1)")


@register_activation(
    "cos",
    family="baseline",
    params={"amplitude": _COS_AMPLITUDE, "frequency": _FREQUENCY},
    expr="x + amplitude*x*cos(frequency*x)",
)
def cos(x: Tensor, amplitude: float, frequency: float) -> Tensor:
    """The published LoRAN code's ``Cos`` baseline ``f(x) = x + A·x·cos(ω·x)``.

    At its defaults (``A = 1``, ``ω = 1e4``) it is exactly the function of the published code
    (github ``liyinqiao2012/PEFT-LoRAN``, ``src/peft/utils/other.py``: ``x·cos(1e4·x) + x``, with
    the amplitude fixed at 1 there); here the amplitude stays searchable. ``f(0) = 0`` but
    ``f'(0) = 1 + A`` (2 at the defaults: the initial step is doubled; ``sinter_phase`` with
    ``φ = π/2`` is the version with ``f'(0) = 1``); like Sinter, its slope grows with ``A·ω·|x|``.

    Half-precision inputs are evaluated in float32 and rounded back: at ``ω = 1e4`` the phase
    ``ω·x`` of a bfloat16 ``x ~ 1e-2`` is off by ~0.4 rad in bfloat16 (8 mantissa bits), which at
    ``A = 1`` would make the perturbation noise.
    """
    if x.dtype in (torch.bfloat16, torch.float16):
        return cos(x.float(), amplitude, frequency).to(x.dtype)
    return x + amplitude * x * torch.cos(frequency * x)
