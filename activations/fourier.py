"""Truncated Fourier-series perturbations of the identity.

Each member is ``x`` plus ``K`` harmonics of a base frequency ``ω`` whose coefficients decay as
``k^{-p}``; ``K`` (``terms``) and ``p`` (``decay``) are search parameters. With ``K = 1`` they
reduce to single-frequency perturbations (``fourier_sinter`` with ``K = 1`` is exactly Sinter).
Every member satisfies ``f(0) = 0``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ._lazy import torch
from .registry import Param, register_activation

if TYPE_CHECKING:
    from torch import Tensor

_FREQUENCY = Param(1e4, low=1e-1, high=1e5, log=True, doc="ω: base frequency")
_TERMS = Param(4, low=1, high=16, integer=True, doc="K: number of harmonics")
_DECAY = Param(2.0, low=0.0, high=4.0, doc="p: coefficient of harmonic k is k^-p")


def _sine_series(x: Tensor, frequency: float, terms: int, decay: float) -> Tensor:
    """``Σ_{k=1}^{K} k^{-p}·sin(k·ω·x)``: the series of ``fourier_sine`` and ``fourier_sinter``."""
    total = torch.sin(frequency * x)
    for k in range(2, terms + 1):
        total = total + k ** (-decay) * torch.sin((k * frequency) * x)
    return total


@register_activation(
    "fourier_sine",
    family="fourier",
    params={
        "amplitude": Param(2e-5, low=1e-8, high=1e-1, log=True, doc="A: perturbation size"),
        "frequency": _FREQUENCY,
        "terms": _TERMS,
        "decay": _DECAY,
    },
    expr="x + amplitude*sum(k, 1, terms, k**(-decay)*sin(k*frequency*x))",
)
def fourier_sine(x: Tensor, amplitude: float, frequency: float, terms: int, decay: float) -> Tensor:
    """Additive sine series ``f(x) = x + A·Σ_{k=1}^{K} k^{-p}·sin(k·ω·x)``.

    A bounded perturbation (``|f(x) − x| ≤ A·Σ k^{-p}``) whose slope does not grow with ``|x|``:
    ``|f'(x) − 1| ≤ A·ω·Σ k^{1-p}``. It is odd, ``f(0) = 0``, and ``f'(0) = 1 + A·ω·Σ k^{1-p}``
    (the initial learning rate is rescaled by that factor).
    """
    return x + amplitude * _sine_series(x, frequency, terms, decay)


@register_activation(
    "fourier_sinter",
    family="fourier",
    params={
        "amplitude": Param(5e-5, low=1e-7, high=1e-1, log=True, doc="A: relative size"),
        "frequency": _FREQUENCY,
        "terms": _TERMS,
        "decay": Param(1.0, low=0.0, high=4.0, doc="p: coefficient of harmonic k is k^-p"),
    },
    expr="x + amplitude*x*sum(k, 1, terms, k**(-decay)*sin(k*frequency*x))",
)
def fourier_sinter(
    x: Tensor, amplitude: float, frequency: float, terms: int, decay: float
) -> Tensor:
    """Multi-harmonic Sinter ``f(x) = x + A·x·Σ_{k=1}^{K} k^{-p}·sin(k·ω·x)``.

    ``K = 1`` is exactly Sinter; more harmonics sharpen the periodic modulation of the relative
    perturbation into a saw-tooth-like shape (``p = 1`` is the saw-tooth's own decay). Like Sinter,
    ``f(0) = 0``, ``f'(0) = 1``, and the slope grows with ``|x|``.
    """
    return x + amplitude * x * _sine_series(x, frequency, terms, decay)


@register_activation(
    "fourier_damped",
    family="fourier",
    params={
        "amplitude": Param(2e-5, low=1e-8, high=1e-1, log=True, doc="A: perturbation size"),
        "frequency": _FREQUENCY,
        "terms": _TERMS,
        "decay": _DECAY,
        "width": Param(1e-2, low=1e-5, high=1e2, log=True, doc="c: Gaussian envelope width"),
    },
    expr=(
        "x + amplitude*exp(-(x/width)**2)"
        "*sum(k, 1, terms, k**(-decay)*(sin(k*frequency*x) + cos(k*frequency*x) - 1))"
    ),
)
def fourier_damped(
    x: Tensor, amplitude: float, frequency: float, terms: int, decay: float, width: float
) -> Tensor:
    """Damped sine/cosine series ``x + A·e^{-(x/c)²}·Σ_{k=1}^{K} k^{-p}(sin kωx + cos kωx − 1)``.

    The cosine terms make the perturbation asymmetric (not odd); ``− 1`` in every term keeps
    ``f(0) = 0``; the Gaussian envelope makes it vanish for ``|x| ≫ c``, so large entries of ``B·A``
    pass unchanged and the slope has a global bound. ``f'(0) = 1 + A·ω·Σ k^{1-p}``.
    """
    total = torch.sin(frequency * x) + torch.cos(frequency * x) - 1.0
    for k in range(2, terms + 1):
        kx = (k * frequency) * x
        total = total + k ** (-decay) * (torch.sin(kx) + torch.cos(kx) - 1.0)
    return x + amplitude * torch.exp(-torch.square(x / width)) * total
