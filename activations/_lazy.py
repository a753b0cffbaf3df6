"""A lazily imported ``torch`` so that registering activations costs no torch import.

The family modules write ``torch.sin(x)`` as usual; the real module is imported on the first
attribute access, i.e. when an activation is first *called*. Listing or auditing the registry
(``loran-search activations list``) therefore never pays torch's ~1.5 s import.
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Any


class _LazyModule(ModuleType):
    """Module proxy that imports ``name`` on first attribute access."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self._real: ModuleType | None = None

    def __getattr__(self, attr: str) -> Any:
        if attr == "_real":  # pragma: no cover - set in __init__
            raise AttributeError(attr)
        real = self._real
        if real is None:
            real = importlib.import_module(self.__name__)
            self._real = real
        return getattr(real, attr)


torch: Any = _LazyModule("torch")
