"""LoRAN adapters for peft: ``ΔW = s·f(B·A)`` on ``nn.Linear``, ``nn.Conv2d``, bnb 4/8-bit layers.

Importing this package registers LoRAN with peft: ``peft.get_peft_model(model, LoranConfig(...))``
builds LoRAN layers, and ``PeftModel.from_pretrained`` recognises saved LoRAN adapters
(``import loran_search`` is enough for the latter: it imports this package once peft is imported).
Saved adapters keep ``peft_type: LORA``; their LoRAN fields (``activation``, ...) mark them, and a
LoRAN file never loads as plain LoRA once this package is imported (see
:mod:`loran_search.adapters.io`). ``PeftModel.add_weighted_adapter`` refuses LoRAN adapters whose
activation is not the identity (:mod:`loran_search.adapters.weighted`). ``guard_4bit`` is
:func:`loran_search.quant.guard_4bit`.

Example::

    from loran_search.adapters import LoranConfig
    cfg = LoranConfig(r=8, lora_alpha=16, lora_dropout=0.05, target_modules=["q_proj", "v_proj"],
                      activation="sinter", activation_params={"amplitude": 1e-3})
    model = peft.get_peft_model(model, cfg)
"""

from __future__ import annotations

import warnings

from loran_search.quant import guard_4bit, silence_bitsandbytes_noise

silence_bitsandbytes_noise()
# peft 0.21.2 (pinned) reads `model.is_gradient_checkpointing` in every get_peft_model, which
# transformers 5.24 deprecates with a FutureWarning: noise for users, nothing they can act on.
warnings.filterwarnings(
    "ignore", message="`is_gradient_checkpointing` is deprecated", category=FutureWarning
)

from loran_search.adapters.bnb import LoranLinear4bit, LoranLinear8bitLt  # noqa: E402
from loran_search.adapters.config import LORAN_FIELDS, LoranConfig, build_activation  # noqa: E402
from loran_search.adapters.conv import LoranConv2d  # noqa: E402
from loran_search.adapters.function import DeltaTerm, loran_linear  # noqa: E402
from loran_search.adapters.io import (  # noqa: E402
    install_config_loader,
    install_injection_guard,
    is_loran_config,
    load_adapter,
)
from loran_search.adapters.layers import LoranLayerMixin, LoranLinear, LoranVariant  # noqa: E402
from loran_search.adapters.weighted import install_weighted_adapter_guard  # noqa: E402

install_config_loader()
install_injection_guard()
install_weighted_adapter_guard()

__all__ = [
    "LORAN_FIELDS",
    "DeltaTerm",
    "LoranConfig",
    "LoranConv2d",
    "LoranLayerMixin",
    "LoranLinear",
    "LoranLinear4bit",
    "LoranLinear8bitLt",
    "LoranVariant",
    "build_activation",
    "guard_4bit",
    "is_loran_config",
    "load_adapter",
    "loran_linear",
]
