"""``adapter.normalize: slope`` (issue 21): the LoRAN scale divided by ``f′(0)``.

At initialisation ``B = 0``, so every entry of ``P = B·A`` is exactly 0 and the first gradient
step of ``ΔW = s·f(B·A)`` is LoRA's times ``f′(0)``: ``∂ΔW/∂B = s·f′(0)·(…)·A`` (``swish``,
``gelu``: ``f′(0) = ½`` — half LoRA's step). With ``normalize: slope`` the scale is
``s = alpha/(r·f′(0))`` (``alpha/(√r·f′(0))`` with rsLoRA), so the first step is LoRA's for every
activation. ``f′(0)`` is the derivative autograd takes at ``P = 0`` (the one training sees:
``relu′(0) = 0`` in torch), in float64.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from loran_search.errors import LoranSearchError

SLOPE_FLOOR = 1e-6
"""``|f′(0)|`` below this cannot be normalised (the scale would explode)."""


class SlopeError(LoranSearchError):
    """``adapter.normalize: slope`` with an activation whose ``f′(0)`` is 0 (or not finite)."""


def slope_at_zero(activation: str, params: Mapping[str, Any] | None = None) -> float:
    """``f′(0)`` of the activation at ``params``, by autograd at exactly 0 (float64).

    Raises:
        SlopeError: ``|f′(0)| < SLOPE_FLOOR`` or not finite; the message names the activation.
    """
    import torch

    from loran_search.activations import get_activation

    f = get_activation(activation, **dict(params or {}))
    x = torch.zeros(1, dtype=torch.float64, requires_grad=True)
    (grad,) = torch.autograd.grad(f(x).sum(), x)
    df0 = float(grad[0])
    if not math.isfinite(df0) or abs(df0) < SLOPE_FLOOR:
        raise SlopeError(
            f"adapter.normalize: slope divides the scale by f′(0), but {activation} has "
            f"f′(0) = {df0:g} at P = 0 (where B = 0 puts every entry at initialisation): the "
            "normalised scale would be infinite.",
            fix=f"Remove {activation} from search.activations, or drop adapter.normalize.",
        )
    return df0


def normalized_alpha(
    alpha: float, normalize: str | None, activation: str, params: Mapping[str, Any] | None
) -> float:
    """``alpha / f′(0)`` with ``normalize: slope``, else ``alpha``."""
    if normalize != "slope":
        return float(alpha)
    return float(alpha) / slope_at_zero(activation, params)
