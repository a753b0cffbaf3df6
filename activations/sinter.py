"""Sinter, the reference LoRAN activation, and variants that each answer one of its weaknesses.

Sinter ``f(x) = x + A·x·sin(ω·x)`` has slope ``f'(x) = 1 + A·sin(ωx) + A·ω·x·cos(ωx)``: the
perturbation and the slope grow without bound with ``|x|`` (large entries of ``B·A`` get ever
steeper updates), and ``ω`` only means something relative to the typical size of ``B·A``, which
changes with the layer, the model width and the rank. The variants:

* ``sinter_tanh`` and ``sinter_damped``: bounded perturbations (saturating or vanishing for
  ``|x| ≫ c``), so ``|f'|`` has a global bound;
* ``sinter_log``: a scale-normalised frequency (oscillations per e-fold of ``|x|``), so one value
  means the same whatever the scale of ``B·A``;
* ``sinter_phase``: a phase/shape variant that keeps ``f'(0) = 1``.

All satisfy ``f(0) = 0``: with ``B = 0`` at initialisation the adapter starts as the unchanged
model.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from ._lazy import torch
from .registry import Param, register_activation

if TYPE_CHECKING:
    from torch import Tensor

_AMPLITUDE = Param(5e-5, low=1e-7, high=1e1, log=True, doc="A: perturbation size")
_FREQUENCY = Param(1e4, low=1e-1, high=1e5, log=True, doc="ω: oscillation frequency")
_WIDTH = Param(1e-2, low=1e-5, high=1e2, log=True, doc="c: |x| beyond which it stops growing")

#: ``ε`` inside ``log(|x| + ε)`` of ``sinter_log``: representable in float32 and bfloat16.
LOG_EPS = 1e-30


@register_activation(
    "sinter",
    family="sinter",
    params={"amplitude": _AMPLITUDE, "frequency": _FREQUENCY},
    expr="x + amplitude*x*sin(frequency*x)",
)
def sinter(x: Tensor, amplitude: float, frequency: float) -> Tensor:
    """Sinter ``f(x) = x + A·x·sin(ω·x)``, the published LoRAN activation.

    Defaults are the published LLaMA-2-7B adapters' values (``A = 5e-5``, ``ω = 1e4``).
    ``f(0) = 0`` and ``f'(x) = 1 + A·sin(ωx) + A·ω·x·cos(ωx)``: the slope grows with ``|x|`` and
    with ``A·ω``, which is why the study warned about calibration.
    """
    return x + amplitude * x * torch.sin(frequency * x)


@register_activation(
    "sinter_tanh",
    family="sinter",
    params={"amplitude": _AMPLITUDE, "frequency": _FREQUENCY, "width": _WIDTH},
    expr="x + amplitude*width*tanh(x/width)*sin(frequency*x)",
)
def sinter_tanh(x: Tensor, amplitude: float, frequency: float, width: float) -> Tensor:
    """Saturating Sinter ``f(x) = x + A·c·tanh(x/c)·sin(ω·x)``.

    For ``|x| ≪ c`` it is Sinter (``c·tanh(x/c) ≈ x``); beyond, the perturbation saturates:
    ``|f(x) − x| ≤ A·c`` and ``|f'(x) − 1| ≤ A·(1 + c·ω)`` everywhere, so the slope cannot grow with
    ``|x|`` (Sinter's stability weakness). ``f(0) = 0``, ``f'(0) = 1``.
    """
    return x + (amplitude * width) * torch.tanh(x / width) * torch.sin(frequency * x)


@register_activation(
    "sinter_damped",
    family="sinter",
    params={"amplitude": _AMPLITUDE, "frequency": _FREQUENCY, "width": _WIDTH},
    expr="x + amplitude*x*exp(-(x/width)**2)*sin(frequency*x)",
)
def sinter_damped(x: Tensor, amplitude: float, frequency: float, width: float) -> Tensor:
    """Gaussian-damped Sinter ``f(x) = x + A·x·e^{-(x/c)²}·sin(ω·x)``.

    Sinter inside ``|x| ≲ c``, the identity outside: the perturbation vanishes for large entries of
    ``B·A`` instead of growing. ``|f(x) − x| ≤ A·c/√(2e)`` and
    ``|f'(x) − 1| ≤ A·(1 + ω·c/√(2e))``. ``f(0) = 0``, ``f'(0) = 1``.
    """
    return x + amplitude * x * torch.exp(-torch.square(x / width)) * torch.sin(frequency * x)


@register_activation(
    "sinter_log",
    family="sinter",
    params={
        "amplitude": Param(0.1, low=1e-5, high=1.0, log=True, doc="A: relative perturbation"),
        "log_frequency": Param(
            2 * math.pi / math.log(10.0),
            low=0.1,
            high=100.0,
            log=True,
            doc="ν: radians per e-fold of |x| (default: one oscillation per decade)",
        ),
    },
    expr="x + amplitude*x*sin(log_frequency*log(abs(x) + 1e-30))",
)
def sinter_log(x: Tensor, amplitude: float, log_frequency: float) -> Tensor:
    """Scale-normalised Sinter ``f(x) = x + A·x·sin(ν·ln(|x| + ε))``, ``ε = 1e-30``.

    What it normalises: Sinter's ``sin(ω·x)`` oscillates per unit of ``x``, so the same ``ω``
    means many oscillations at a layer whose ``B·A`` entries are large and none where they are
    small. Here the phase advances with ``ln|x|``: scaling every entry by ``c`` only shifts the
    phase by ``ν·ln c`` (``f(c·x) − c·x = c·A·x·sin(ν·ln|x| + ν·ln c)``), so ``ν`` means the same
    number of oscillations per decade of ``|x|`` at every layer, width and rank
    (``ν = 2π/ln 10`` ≈ 2.73 is one per decade). The slope is bounded everywhere:
    ``|f'(x) − 1| ≤ A·√(1 + ν²)``.

    How it stays element-wise-safe: ``ε`` keeps the logarithm finite at ``x = 0``, where
    ``f(0) = 0`` exactly and the gradient is finite; it is a scalar constant, so ``f`` is an
    element-wise function of ``x`` with scalar parameters (auditable by sympy). float16 inputs are
    evaluated in float32 because ``ε`` underflows in float16.
    """
    if x.dtype == torch.float16:
        return sinter_log(x.float(), amplitude, log_frequency).to(torch.float16)
    return x + amplitude * x * torch.sin(log_frequency * torch.log(x.abs() + LOG_EPS))


@register_activation(
    "sinter_phase",
    family="sinter",
    params={
        "amplitude": _AMPLITUDE,
        "frequency": _FREQUENCY,
        "phase": Param(math.pi / 2, low=-math.pi, high=math.pi, doc="φ: phase of the sine"),
    },
    expr="x + amplitude*x*(sin(frequency*x + phase) - sin(phase))",
)
def sinter_phase(x: Tensor, amplitude: float, frequency: float, phase: float) -> Tensor:
    """Phase-shifted Sinter ``f(x) = x + A·x·(sin(ω·x + φ) − sin φ)``.

    The phase moves where the perturbation peaks relative to 0 (``φ = 0`` is Sinter; the default
    ``φ = π/2`` gives ``x + A·x·(cos(ωx) − 1)``, the reference cosine perturbation corrected to a
    one-sided shrinkage); subtracting ``sin φ`` keeps ``f'(0) = 1`` for every ``φ``, so the phase
    never rescales the initial learning rate. ``f(0) = 0``.
    """
    return x + amplitude * x * (torch.sin(frequency * x + phase) - math.sin(phase))
