"""Quantize the ``nn.Linear`` layers of an in-memory model with bitsandbytes (4-bit or 8-bit).

``transformers``' ``BitsAndBytesConfig`` quantizes while loading from disk; benchmarks and tests
build small models in memory, and this does the same to them: each selected ``nn.Linear`` is
replaced by a ``bnb.nn.Linear4bit`` (NF4 or FP4, optional double quantization, float32 or
bfloat16 compute) or a ``bnb.nn.Linear8bitLt`` holding the quantized copy of its weight.
"""

from __future__ import annotations

from collections.abc import Collection

import torch
from torch import nn

from loran_search.quant.guard import guard_4bit
from loran_search.quant.noise import silence_bitsandbytes_noise


def _targets(model: nn.Module, skip: Collection[str]) -> list[tuple[nn.Module, str, nn.Linear]]:
    out = []
    for parent_name, parent in model.named_modules():
        for name, child in parent.named_children():
            full = f"{parent_name}.{name}" if parent_name else name
            if type(child) is nn.Linear and not any(s in full.split(".") for s in skip):
                out.append((parent, name, child))
    return out


def quantize_4bit(
    model: nn.Module,
    *,
    quant_type: str = "nf4",
    compute_dtype: torch.dtype = torch.float32,
    double_quant: bool = True,
    skip: Collection[str] = ("lm_head",),
) -> int:
    """Replace every ``nn.Linear`` (except names in ``skip``) by a bitsandbytes ``Linear4bit``.

    Args:
        model: Modified in place.
        quant_type: ``"nf4"`` or ``"fp4"``.
        compute_dtype: Dtype of the 4-bit products (``torch.float32`` or ``torch.bfloat16``).
        double_quant: Quantize the quantization constants too (QLoRA's double quantization).
        skip: Module names (any path component) to leave in full precision.

    Returns:
        How many layers were quantized. The AVX512-BF16 guard is applied to all of them.
    """
    if quant_type not in {"nf4", "fp4"}:
        raise ValueError(f"quant_type must be 'nf4' or 'fp4', got {quant_type!r}.")
    silence_bitsandbytes_noise()
    import bitsandbytes as bnb

    count = 0
    for parent, name, lin in _targets(model, skip):
        q = bnb.nn.Linear4bit(
            lin.in_features,
            lin.out_features,
            bias=lin.bias is not None,
            compute_dtype=compute_dtype,
            compress_statistics=double_quant,
            quant_type=quant_type,
            device="meta",
        )
        q.weight = bnb.nn.Params4bit(
            lin.weight.data.to(torch.float32).contiguous(),
            requires_grad=False,
            compress_statistics=double_quant,
            quant_type=quant_type,
        )
        if lin.bias is not None:
            q.bias = nn.Parameter(lin.bias.data.clone(), requires_grad=False)
        q = q.to("cpu")  # quantizes the weight
        setattr(parent, name, q)
        count += 1
    if count:
        model.is_loaded_in_4bit = True  # what transformers sets; peft's bnb dispatch reads it
    guard_4bit(model)
    return count


def quantize_8bit(
    model: nn.Module, *, threshold: float = 6.0, skip: Collection[str] = ("lm_head",)
) -> int:
    """Replace every ``nn.Linear`` (except ``skip``) by a bitsandbytes ``Linear8bitLt`` (LLM.int8).

    Returns:
        How many layers were quantized.
    """
    silence_bitsandbytes_noise()
    import bitsandbytes as bnb

    count = 0
    for parent, name, lin in _targets(model, skip):
        q = bnb.nn.Linear8bitLt(
            lin.in_features,
            lin.out_features,
            bias=lin.bias is not None,
            has_fp16_weights=False,
            threshold=threshold,
        )
        q.weight = bnb.nn.Int8Params(
            lin.weight.data.to(torch.float16).contiguous(),
            requires_grad=False,
            has_fp16_weights=False,
        )
        if lin.bias is not None:
            q.bias = nn.Parameter(lin.bias.data.clone(), requires_grad=False)
        q = q.to("cpu")
        setattr(parent, name, q)
        count += 1
    if count:
        model.is_loaded_in_8bit = True  # what transformers sets; peft's bnb dispatch reads it
    return count
