"""loran-search: activation-design search for non-linear low-rank (LoRAN) fine-tuning.

Importing ``loran_search`` is cheap; it registers the LoRAN adapter with peft only when
``loran_search.adapters`` is imported (``PeftModel.from_pretrained`` needs that import, see the
README).
"""

from __future__ import annotations

__version__ = "0.1.0"


def __getattr__(name: str) -> object:
    # `import loran_search` followed by `loran_search.adapters` must work without importing
    # peft at package import time (the CLI's fast start-up depends on it).
    if name in {"adapters", "train", "models", "assets", "config", "search", "analysis", "tasks"}:
        import importlib

        return importlib.import_module(f"loran_search.{name}")
    raise AttributeError(f"module 'loran_search' has no attribute {name!r}")
