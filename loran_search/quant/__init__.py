"""bitsandbytes quantization helpers: the AVX512-BF16 guard, (re)quantization, noise silencing.

Independent of the LoRAN adapters (nothing here imports :mod:`loran_search.adapters` or peft):

* :func:`guard_4bit` / :func:`unpack_cpu_weight` (:mod:`loran_search.quant.guard`): switch off,
  and undo, bitsandbytes' CPU repacking of 4-bit weights that freezes gradients (ASSETS.md trap).
* :func:`quantize_4bit` / :func:`quantize_8bit` (:mod:`loran_search.quant.quantize`): quantize the
  linear layers of an in-memory model, as ``BitsAndBytesConfig`` does while loading from disk.
* :func:`silence_bitsandbytes_noise` (:mod:`loran_search.quant.noise`): drop bitsandbytes' harmless
  "kernels-community" log message.

Importing this package is cheap (logging only); torch and bitsandbytes are imported when one of
the first four names is first used.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from loran_search.quant.noise import silence_bitsandbytes_noise

if TYPE_CHECKING:
    from loran_search.quant.guard import guard_4bit, unpack_cpu_weight
    from loran_search.quant.quantize import quantize_4bit, quantize_8bit

__all__ = [
    "guard_4bit",
    "quantize_4bit",
    "quantize_8bit",
    "silence_bitsandbytes_noise",
    "unpack_cpu_weight",
]

_LAZY = {
    "guard_4bit": "loran_search.quant.guard",
    "unpack_cpu_weight": "loran_search.quant.guard",
    "quantize_4bit": "loran_search.quant.quantize",
    "quantize_8bit": "loran_search.quant.quantize",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'loran_search.quant' has no attribute {name!r}")
