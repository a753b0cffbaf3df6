"""The AVX512-BF16 guard for bitsandbytes 4-bit layers on CPU.

On CPUs with AVX512-BF16, a ``bnb.nn.Linear4bit`` that runs once in eval mode on an input that
needs no gradient repacks its weight into a CPU inference layout for good. After that no gradient
flows through any 4-bit layer and dequantize/merge read the packed bytes as if they were the
original ones (wrong weights). ``from_pretrained`` returns models in eval mode, so one evaluation
is enough to trigger it. The fix: ``support_avx512bf16_for_cpu = False`` on every 4-bit layer,
right after loading (and undo a repacking that already happened).
"""

from __future__ import annotations

import importlib.util

from torch import nn

from loran_search.quant.noise import silence_bitsandbytes_noise

__all__ = ["guard_4bit", "unpack_cpu_weight"]


def unpack_cpu_weight(layer: nn.Module) -> bool:
    """Undo bitsandbytes' CPU inference repacking of a ``Linear4bit`` weight, if it happened.

    The repacking rounded the per-block scales to bfloat16, so the restored weight equals the
    original up to that rounding (relative ``2⁻⁸`` per block); guard right after loading to keep
    it exact.

    Returns:
        Whether the weight was packed (and is now restored to the standard 4-bit layout).
    """
    weight = getattr(layer, "weight", None)
    state = getattr(weight, "quant_state", None)
    if state is None or not getattr(state, "packing_format_for_cpu", False):
        return False
    from bitsandbytes.functional import _convert_weight_packed_for_cpu_inverse

    data, state = _convert_weight_packed_for_cpu_inverse(weight.data, state)
    weight.data = data
    weight.quant_state = state
    return True


def guard_4bit(model: nn.Module) -> int:
    """Switch off the AVX512-BF16 repacking on every bitsandbytes ``Linear4bit`` of ``model``.

    Sets ``support_avx512bf16_for_cpu = False`` on each 4-bit layer and restores any weight that
    was already repacked. Call it after every load of a 4-bit model (LoRAN's injection and
    :func:`loran_search.adapters.load_adapter` call it too).

    Args:
        model: Any module tree.

    Returns:
        How many ``Linear4bit`` layers it set (0 when bitsandbytes is not installed).
    """
    if importlib.util.find_spec("bitsandbytes") is None:
        return 0
    silence_bitsandbytes_noise()
    import bitsandbytes as bnb

    touched = 0
    for module in model.modules():
        if isinstance(module, bnb.nn.Linear4bit):
            module.support_avx512bf16_for_cpu = False
            unpack_cpu_weight(module)
            touched += 1
    return touched
