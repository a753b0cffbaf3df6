"""Perturbations of the identity by orthogonal-polynomial bases (Legendre, Chebyshev, Hermite).

Each member is

    f(x) = x + (A/s)·Σ_{k=1}^{K} k^{-p}·(φ_k(t) − φ_k(0)),   t = map(s·x),

where ``φ_k`` is the k-th basis function, the map takes ``s·x`` into the basis' natural domain
(``tanh`` onto ``(-1, 1)`` for Legendre and Chebyshev; the real line with a Gaussian weight for
Hermite), ``K`` (``degree``) and ``p`` (``decay``) are search parameters. Subtracting ``φ_k(0)``
makes ``f(0) = 0`` exactly. Dividing by the input scale ``s`` makes ``A`` a *slope* size:
``f'(x) = 1 + A·Σ k^{-p}·φ_k'(t)·t'(s·x)`` does not depend on ``s``, so ``s`` only chooses which
magnitudes of ``B·A`` the perturbation acts on. Every member has a bounded slope.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING

from ._lazy import torch
from .registry import Param, register_activation

if TYPE_CHECKING:
    from torch import Tensor

_PARAMS = {
    "amplitude": Param(0.1, low=1e-4, high=1.0, log=True, doc="A: slope perturbation size"),
    "scale": Param(1e3, low=1e-1, high=1e5, log=True, doc="s: input scale, t = map(s·x)"),
    "degree": Param(4, low=1, high=12, integer=True, doc="K: highest polynomial degree"),
    "decay": Param(1.0, low=0.0, high=4.0, doc="p: coefficient of degree k is k^-p"),
}


def _series(
    t: Tensor, degree: int, decay: float, step: Callable[[int], tuple[float, float, float]]
) -> Tensor:
    """``Σ_{k=1}^{K} k^{-p}(φ_k(t) − φ_k(0))`` for a three-term recurrence.

    ``step(k) = (a, b, c)`` defines ``φ_{k+1} = (a·t·φ_k − b·φ_{k−1}) / c`` from ``φ_0 = 1`` and
    ``φ_1 = t`` (true for Legendre, Chebyshev T and probabilists' Hermite). ``φ_k(0)`` runs through
    the same recurrence on the scalar ``t = 0``.
    """
    prev, cur = 1.0, t  # φ_0(t), φ_1(t)
    prev0, cur0 = 1.0, 0.0  # φ_0(0), φ_1(0)
    total = cur  # the k = 1 term: 1^{-p}·(φ_1(t) − 0)
    for k in range(1, degree):
        a, b, c = step(k)
        prev, cur = cur, (a * t * cur - b * prev) / c
        prev0, cur0 = cur0, -b * prev0 / c
        total = total + (k + 1) ** (-decay) * (cur - cur0)
    return total


def _legendre_step(k: int) -> tuple[float, float, float]:
    """``(k+1)·P_{k+1} = (2k+1)·t·P_k − k·P_{k−1}``."""
    return 2 * k + 1, k, k + 1


def _chebyshev_step(k: int) -> tuple[float, float, float]:
    """``T_{k+1} = 2t·T_k − T_{k−1}``."""
    return 2.0, 1.0, 1.0


@register_activation(
    "legendre",
    family="orthogonal",
    params=_PARAMS,
    expr=(
        "x + amplitude/scale*sum(k, 1, degree,"
        " k**(-decay)*(legendre(k, tanh(scale*x)) - legendre(k, 0)))"
    ),
)
def legendre(x: Tensor, amplitude: float, scale: float, degree: int, decay: float) -> Tensor:
    """Legendre perturbation ``f(x) = x + (A/s)·Σ_{k=1}^{K} k^{-p}(P_k(tanh(s·x)) − P_k(0))``.

    ``P_k`` are orthogonal on ``[-1, 1]`` with unit weight; ``tanh`` maps the real line onto that
    domain. Bounds: ``|f(x) − x| ≤ (2A/s)·Σ k^{-p}`` and ``|f'(x) − 1| ≤ A·Σ k^{-p}·k(k+1)/2``.
    """
    t = torch.tanh(scale * x)
    return x + (amplitude / scale) * _series(t, degree, decay, _legendre_step)


@register_activation(
    "chebyshev",
    family="orthogonal",
    params=_PARAMS,
    expr=(
        "x + amplitude/scale*sum(k, 1, degree,"
        " k**(-decay)*(chebyshev(k, tanh(scale*x)) - chebyshev(k, 0)))"
    ),
)
def chebyshev(x: Tensor, amplitude: float, scale: float, degree: int, decay: float) -> Tensor:
    """Chebyshev perturbation ``f(x) = x + (A/s)·Σ_{k=1}^{K} k^{-p}(T_k(tanh(s·x)) − T_k(0))``.

    ``T_k(cos θ) = cos(kθ)`` are orthogonal on ``[-1, 1]`` with weight ``1/√(1−t²)``; their
    equi-oscillation spreads the perturbation evenly in angle. Bounds:
    ``|f(x) − x| ≤ (2A/s)·Σ k^{-p}`` and ``|f'(x) − 1| ≤ A·Σ k^{2-p}``.
    """
    t = torch.tanh(scale * x)
    return x + (amplitude / scale) * _series(t, degree, decay, _chebyshev_step)


@register_activation(
    "hermite",
    family="orthogonal",
    params=_PARAMS,
    expr=(
        "x + amplitude/scale*sum(k, 1, degree, k**(-decay)*(hermite(k, scale*x)"
        " - hermite(k, 0))*exp(-(scale*x)**2/4)/sqrt(factorial(k)))"
    ),
)
def hermite(x: Tensor, amplitude: float, scale: float, degree: int, decay: float) -> Tensor:
    """Hermite functions ``f(x) = x + (A/s)·Σ_k k^{-p}(He_k(t) − He_k(0))·e^{-t²/4}/√k!``.

    ``t = s·x``. The probabilists' Hermite polynomials ``He_k`` are orthogonal on the real line —
    their natural domain — with weight ``e^{-t²/2}``; ``He_k(t)·e^{-t²/4}/√k!`` are the orthonormal
    Hermite functions, so every term is bounded and the perturbation vanishes for ``|t| ≫ √K``.
    """
    t = scale * x
    series = _series_scaled_hermite(t, degree, decay)
    return x + (amplitude / scale) * series * torch.exp(-0.25 * t * t)


def _series_scaled_hermite(t: Tensor, degree: int, decay: float) -> Tensor:
    """``Σ_{k=1}^{K} k^{-p}(He_k(t) − He_k(0))/√k!`` by the three-term recurrence."""
    prev, cur = 1.0, t
    prev0, cur0 = 1.0, 0.0
    total = cur
    for k in range(1, degree):
        prev, cur = cur, t * cur - k * prev
        prev0, cur0 = cur0, -k * prev0
        total = total + (k + 1) ** (-decay) * (cur - cur0) / math.sqrt(math.factorial(k + 1))
    return total
