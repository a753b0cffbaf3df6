"""Import :mod:`loran_search.adapters` right after peft, so peft understands LoRAN adapters.

``PeftModel.from_pretrained`` only builds LoRAN layers for a saved LoRAN adapter once
:mod:`loran_search.adapters` has installed its config loader. Importing that package costs
peft's import (~10 s), which ``import loran_search`` must not pay. So ``loran_search`` installs
this tiny ``sys.meta_path`` finder instead: when peft is imported (by anyone, later), the finder
lets the normal import run and then imports :mod:`loran_search.adapters`. If peft is already
imported, :func:`install` imports the adapters at once.

The finder also silences bitsandbytes' harmless "kernels-community" message before peft imports it
(:func:`loran_search.quant.silence_bitsandbytes_noise`).
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import sys
from collections.abc import Sequence
from types import ModuleType
from typing import Any

_TARGET = "peft"
_ADAPTERS = "loran_search.adapters"


class _ChainLoader(importlib.abc.Loader):
    """Runs peft's own loader, then imports the LoRAN adapters."""

    def __init__(self, loader: importlib.abc.Loader) -> None:
        self._loader = loader

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType | None:
        return self._loader.create_module(spec)

    def exec_module(self, module: ModuleType) -> None:
        self._loader.exec_module(module)
        importlib.import_module(_ADAPTERS)

    def __getattr__(self, name: str) -> Any:  # e.g. get_resource_reader, is_package
        return getattr(self._loader, name)


class PeftImportHook(importlib.abc.MetaPathFinder):
    """A meta-path finder that only wraps the loader of the top-level ``peft`` package."""

    def find_spec(
        self,
        fullname: str,
        path: Sequence[str] | None,
        target: ModuleType | None = None,
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname != _TARGET:
            return None
        _uninstall()  # one shot; also keeps the lookup below from finding this finder again
        # only now (peft is being imported): logging costs `import loran_search` a few ms
        from loran_search.quant.noise import silence_bitsandbytes_noise

        silence_bitsandbytes_noise()  # (importing loran_search.adapters here would import peft)
        spec = importlib.machinery.PathFinder.find_spec(fullname, path)
        if spec is None or spec.loader is None:
            return None
        spec.loader = _ChainLoader(spec.loader)
        return spec


def _uninstall() -> None:
    sys.meta_path[:] = [f for f in sys.meta_path if not isinstance(f, PeftImportHook)]


def install() -> None:
    """Arrange for :mod:`loran_search.adapters` to be imported with peft (idempotent)."""
    if _TARGET in sys.modules:
        if _ADAPTERS not in sys.modules and getattr(sys.modules[_TARGET], "__spec__", None):
            importlib.import_module(_ADAPTERS)
        return
    if not any(isinstance(f, PeftImportHook) for f in sys.meta_path):
        sys.meta_path.insert(0, PeftImportHook())
