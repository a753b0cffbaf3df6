"""Which LoRAN layer class peft builds for which base layer (peft's custom-module hook)."""

from __future__ import annotations

from typing import Any

from torch import nn


class UnsupportedLayer:
    """Stands in the dispatch table after the supported types: refuses any other layer clearly.

    Without it peft would fall back to its own layer for, e.g., an ``nn.Embedding`` and train
    plain LoRA there while the config says LoRAN.
    """

    def __new__(cls, target: nn.Module, adapter_name: str, **kwargs: Any) -> Any:  # noqa: D102
        base = target.get_base_layer() if hasattr(target, "get_base_layer") else target
        name = kwargs.get("target_name", "?")
        raise ValueError(
            f"LoRAN cannot adapt module {name!r} of type {type(base).__name__}. Supported layer "
            "types: torch.nn.Linear, torch.nn.Conv2d, bitsandbytes.nn.Linear4bit, "
            "bitsandbytes.nn.Linear8bitLt. Narrow `target_modules` to linear or convolution "
            "layers (e.g. ['q_proj', 'v_proj'])."
        )


def custom_module_mapping() -> dict[type[nn.Module], Any]:
    """Base layer type → LoRAN layer class, most specific first (peft dispatches by isinstance)."""
    import bitsandbytes as bnb

    from loran_search.adapters.bnb import LoranLinear4bit, LoranLinear8bitLt
    from loran_search.adapters.conv import LoranConv2d
    from loran_search.adapters.layers import LoranLinear

    return {
        bnb.nn.Linear4bit: LoranLinear4bit,
        bnb.nn.Linear8bitLt: LoranLinear8bitLt,
        nn.Linear: LoranLinear,
        nn.Conv2d: LoranConv2d,
        nn.Module: UnsupportedLayer,
    }
