"""LoRAN on ``nn.Conv2d``: ``y = conv(x, W) + conv(dropout(x), s·f(B·A) as a kernel)``.

peft's conv LoRA (``peft.tuners.lora.layer.Conv2d``, which this layer subclasses and whose
``lora_A``/``lora_B`` modules, dropout, scaling, bookkeeping, merge/unmerge and save/load it
keeps) factors the update of a kernel ``W`` of shape ``(C_out, C_in, k_h, k_w)`` as
``lora_A``: a ``C_in → r`` convolution with ``W``'s kernel size, stride and padding, weight
``A`` of shape ``(r, C_in, k_h, k_w)``, and ``lora_B``: a ``1 × 1`` convolution ``r → C_out``,
weight ``B`` of shape ``(C_out, r, 1, 1)``. Their composition is one convolution whose kernel is

    ΔW_LoRA[o, i, u, v] = s · Σ_ρ B[o, ρ] · A[ρ, i, u, v],

i.e. ``s·P`` with ``P = B̄·Ā`` the product of the flattened factors ``B̄ = B.flatten(1)``
(``C_out × r``) and ``Ā = A.flatten(1)`` (``r × C_in·k_h·k_w``), reshaped to the kernel. LoRAN
applies ``f`` element-wise to that product:

    Δ = s · f(B̄·Ā).reshape(C_out, C_in, k_h, k_w).

So ``f = identity`` is exactly peft's conv LoRA (up to float rounding: peft convolves twice,
this layer once with the summed kernel), and the mechanism telemetry reads ``P = B̄·Ā`` like a
linear layer's ``B·A``. Forward: with the adapter's dropout inactive (``p = 0`` or eval mode)
``conv(x, W) + conv(x, Δ) = conv(x, W + Δ)``, one convolution; with dropout active the base
sees ``x`` and the update the dropped ``x̃``: ``conv(x, W) + conv(x̃, Δ)``. ``f(P)`` is
differentiated by autograd (the kernels of a small backbone are small; the stored
``C_out × C_in·k_h·k_w`` tensors cost little). Merge, unmerge and the mixed-batch path go through
:class:`~loran_search.adapters.layers.LoranVariant` with :meth:`LoranConv2d.get_delta_weight`.

Refused: ``groups > 1`` (peft merges none of those either) and ``dilation ≠ 1`` (peft's
``lora_A`` convolution does not dilate, so even plain conv LoRA would not be ``W + ΔW``).
"""

from __future__ import annotations

from typing import Any

import torch
from peft.tuners.lora import layer as lora_layer
from torch import Tensor, nn

from loran_search.adapters.layers import LoranLayerMixin, dropout_inactive


class LoranConv2d(LoranLayerMixin, lora_layer.Conv2d):
    """LoRAN on a full-precision ``nn.Conv2d`` (see the module docstring)."""

    def __init__(self, base_layer: nn.Module, adapter_name: str, **kwargs: Any) -> None:
        base = base_layer.get_base_layer() if hasattr(base_layer, "get_base_layer") else base_layer
        if base.groups != 1:
            raise ValueError(
                f"LoRAN adapts nn.Conv2d layers with groups=1 only; this one has groups="
                f"{base.groups}. Leave it out of `target_modules`."
            )
        if tuple(base.dilation) != (1, 1):
            raise ValueError(
                f"LoRAN adapts nn.Conv2d layers with dilation=1 only; this one has dilation="
                f"{tuple(base.dilation)} (peft's conv LoRA does not dilate its update). Leave it "
                "out of `target_modules`."
            )
        super().__init__(base_layer, adapter_name, **kwargs)

    def _factors(self, adapter: str) -> tuple[Tensor, Tensor]:
        """``(Ā, B̄)``: ``A`` as ``r × C_in·k_h·k_w`` and ``B`` as ``C_out × r`` (views)."""
        return self.lora_A[adapter].weight.flatten(1), self.lora_B[adapter].weight.flatten(1)

    def get_delta_weight(self, adapter: str) -> Tensor:
        """``Δ = s·f(B̄·Ā)`` reshaped to the kernel (peft's ``s·B·A`` for a plain adapter)."""
        delta = super().get_delta_weight(adapter)
        return delta.reshape(self.get_base_layer().weight.shape)

    def _kernel(self, adapter: str) -> Tensor:
        """``s·f(B̄·Ā)`` as a kernel, differentiable in ``A`` and ``B`` (float32 or float64)."""
        a, b = self._factors(adapter)
        dt = torch.float64 if a.dtype == torch.float64 else torch.float32
        p = b.to(dt) @ a.to(dt)  # (C_out, C_in·k_h·k_w)
        term = self.loran_term(adapter)
        fp = p if term.is_identity else term.fn(p)
        return (term.scaling * fp).reshape(self.get_base_layer().weight.shape)

    def _conv(self, x: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:
        base = self.get_base_layer()
        dtype = base.weight.dtype
        b = None if bias is None else bias.to(dtype)
        return base._conv_forward(x.to(dtype), weight.to(dtype), b)

    def _delta_forward(self, adapter: str, x: Tensor) -> Tensor:
        """``conv(dropout(x), s·f(B̄·Ā))`` for one LoRAN adapter (no bias)."""
        return self._conv(self.lora_dropout[adapter](x), self._kernel(adapter), None)

    def forward(self, x: Tensor, *args: Any, **kwargs: Any) -> Tensor:
        """``conv(x, W + Σ_fused Δ_k) + Σ_other conv(x̃_k, Δ_k)`` (module docstring)."""
        active = [a for a in self.active_adapters if a in self.lora_A]
        acts = self.loran_activations
        if (
            self.disable_adapters
            or self.merged
            or kwargs.get("adapter_names") is not None
            or not any(a in acts for a in active)
            or args
            or kwargs
        ):
            return lora_layer.Conv2d.forward(self, x, *args, **kwargs)
        self._check_forward_args(x)
        base = self.get_base_layer()
        fused = [a for a in active if a in acts and dropout_inactive(self.lora_dropout[a])]
        weight = base.weight.detach()
        for a in fused:
            weight = weight + self._kernel(a).to(weight.dtype)
        result = self._conv(x, weight, base.bias)
        for a in active:
            if a in fused:
                continue
            if a in acts:
                result = result + self._delta_forward(a, x).to(result.dtype)
            else:  # a plain LoRA adapter on the same layer: peft's two convolutions
                lora_a, lora_b = self.lora_A[a], self.lora_B[a]
                xa = x.to(lora_a.weight.dtype)
                out = lora_b(lora_a(self.lora_dropout[a](xa))) * self.scaling[a]
                result = result + out.to(result.dtype)
        return result

    def __repr__(self) -> str:
        return "loran." + nn.Module.__repr__(self)
