"""LoRAN on bitsandbytes layers: 4-bit ``Linear4bit`` (NF4/FP4) and 8-bit ``Linear8bitLt``.

4-bit: the frozen weight is dequantized (``W = dequantize_4bit(W_q)``, in the quantization's
float dtype), ``W_eff = W + s·f(B·A)`` is formed in float32 and cast to the layer's compute dtype
(float32 or bfloat16), and one product ``x·W_effᵀ`` gives ``base(x) + x·Δᵀ`` (see
:mod:`loran_search.adapters.layers` for when this fused form is exact). bitsandbytes' own 4-bit
product on CPU also dequantizes and multiplies in the compute dtype, so the fused output matches
``base(x) + x·Δᵀ`` to the compute dtype's rounding. The backward dequantizes again (as
bitsandbytes' ``MatMul4Bit`` does) instead of keeping ``W_eff`` alive between the passes.

Merging uses peft's path: dequantize → add ``Δ`` → requantize (and the reverse to unmerge).

8-bit: LLM.int8 also quantizes the input, so the base output stays bitsandbytes' and the update
is added as ``x̃·Δᵀ``.
"""

from __future__ import annotations

from typing import Any

import bitsandbytes as bnb
import torch
from peft.tuners.lora import bnb as lora_bnb
from torch import Tensor, nn

from loran_search.adapters.layers import LoranLayerMixin, WeightFn
from loran_search.quant.guard import unpack_cpu_weight


class LoranLinear4bit(LoranLayerMixin, lora_bnb.Linear4bit):
    """LoRAN on a bitsandbytes ``Linear4bit`` (NF4 or FP4, any double quantization / compute dtype).

    Creating the layer switches off the AVX512-BF16 repacking of its base (see
    :func:`loran_search.quant.guard_4bit`).
    """

    def __init__(self, base_layer: nn.Module, adapter_name: str, **kwargs: Any) -> None:
        base = base_layer.get_base_layer() if hasattr(base_layer, "get_base_layer") else base_layer
        base.support_avx512bf16_for_cpu = False
        unpack_cpu_weight(base)
        super().__init__(base_layer, adapter_name, **kwargs)

    def _compute_dtype(self, x: Tensor) -> torch.dtype:
        cd = self.get_base_layer().compute_dtype
        return cd if cd is not None else x.dtype

    def _base_weight_fn(self) -> WeightFn | None:
        base = self.get_base_layer()
        bnb.nn.modules.fix_4bit_weight_quant_state_from_module(base)
        unpack_cpu_weight(base)
        weight = base.weight

        def dequantized() -> tuple[Tensor, bool]:
            return bnb.functional.dequantize_4bit(weight.data, weight.quant_state), True

        return dequantized

    def _base_bias(self) -> Tensor | None:
        return self.get_base_layer().bias

    def _base_forward(self, x: Tensor, *args: Any, **kwargs: Any) -> Tensor:
        # bitsandbytes' 4-bit output may be a view that autograd dislikes (peft clones it too)
        return self.base_layer(x, *args, **kwargs).clone()

    def __repr__(self) -> str:
        return "loran." + nn.Module.__repr__(self)


class LoranLinear8bitLt(LoranLayerMixin, lora_bnb.Linear8bitLt):
    """LoRAN on a bitsandbytes ``Linear8bitLt`` (LLM.int8): ``base(x) + x̃·Δᵀ``."""

    def _base_weight_fn(self) -> WeightFn | None:
        return None  # the int8 product quantizes x too: never fold Δ into the weight

    def _compute_dtype(self, x: Tensor) -> torch.dtype:
        return self.lora_A[next(iter(self.lora_A))].weight.dtype

    def __repr__(self) -> str:
        return "loran." + nn.Module.__repr__(self)
