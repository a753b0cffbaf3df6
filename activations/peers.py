"""Published peers that are activations in this project's sense: an element-wise ``f`` of ``B·A``.

``sine_lora`` — Sine-LoRA (Ji, Saratchandran, Gordon, Zhang, Lucey: *Efficient Learning with
Sine-Activated Low-Rank Matrices*, ICLR 2025; official code github ``samy-ji/Sine-Low-Rank``,
``llm/peft/src/peft/tuners/sinlora.py`` and ``peft/src/peft/tuners/sinlora.py``). Its layer adds

    ``y = W·x + s·(sin(ω·B·A)/g)·x``,   ``s = lora_alpha/r``,   ``g = √d_in``

(the forward computes ``x @ sin(freq · Aᵀ·Bᵀ) / self.s * self.scaling`` and the merge adds
``sin(freq · B·A)/self.s · scaling`` to ``W``; ``self.s = math.sqrt(in_features)`` is set in its
``Linear.__init__``, overriding the ``s`` argument). There is no identity term: the update *is*
the sine of the low-rank product, which raises its rank (the paper's point). Through a LoRAN layer
(``ΔW = s·f(B·A)``) that is ``f(x) = sin(ω·x)/g``.

Defaults, stated with their provenance: ``g`` is ``√d_in`` of the adapted layer in the official
code; a registry activation holds scalar parameters (layers never learn names or shapes), so
``gain`` is a scalar whose default, 64 = √4096, is the value of the published LLaMA-3-8B runs'
attention projections (set it to √d_in of your model: 24 for SmolLM2-135M's ``q_proj``). The
official code has no default frequency: ``finetune.py`` declares ``freq: int = 0``, a placeholder
given on the command line, and the repository ships no run script; ``ω = 200`` here is this
project's default, searchable over ``[1, 1e4]``.

``f(0) = 0`` (with ``B = 0`` at the start the adapted model is the base model) and
``f'(0) = ω/g`` (≈ 3.1 at the defaults: the initial step is ω/g times LoRA's); ``|f| ≤ 1/g`` and
``|f'| ≤ ω/g`` everywhere.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ._lazy import torch
from .registry import Param, register_activation

if TYPE_CHECKING:
    from torch import Tensor


@register_activation(
    "sine_lora",
    family="peer",
    params={
        "frequency": Param(200.0, low=1.0, high=1e4, log=True, doc="ω: frequency of the sine"),
        "gain": Param(64.0, low=1.0, high=1e3, log=True, doc="g: divisor (√d_in in the paper)"),
    },
    expr="sin(frequency*x)/gain",
)
def sine_lora(x: Tensor, frequency: float, gain: float) -> Tensor:
    """Sine-LoRA ``f(x) = sin(ω·x)/g`` (module docstring: source, defaults, ``f'(0) = ω/g``)."""
    return torch.sin(frequency * x) / gain
