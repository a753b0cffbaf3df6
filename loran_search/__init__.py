"""loran-search: activation-design search for non-linear low-rank (LoRAN) fine-tuning.

Importing ``loran_search`` is cheap (no torch, no peft). It installs a tiny import hook
(:mod:`loran_search._peft_hook`) that imports ``loran_search.adapters`` as soon as peft is
imported, so that ``PeftModel.from_pretrained`` understands saved LoRAN adapters.
"""

from __future__ import annotations

__version__ = "0.1.0"

from loran_search import _peft_hook  # tiny: imports loran_search.adapters right after peft

_peft_hook.install()


def __getattr__(name: str) -> object:
    # `import loran_search` followed by `loran_search.adapters` must work without importing
    # peft at package import time (the CLI's fast start-up depends on it).
    if name in {"adapters", "train", "models", "assets", "config", "search", "analysis", "tasks"}:
        import importlib

        return importlib.import_module(f"loran_search.{name}")
    raise AttributeError(f"module 'loran_search' has no attribute {name!r}")
