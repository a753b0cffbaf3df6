"""``loran_search.activations``: the tool's own, shadow-proof name for the ``activations`` registry.

The registry ships as the top-level package ``activations``. A user's file ``activations.py`` in
the working folder comes first on ``sys.path`` (``python -m``, ``python -c``, scripts) and hides
that package, so no module of the tool imports the top-level name; they all import
``loran_search.activations``, which this module resolves once, on import, to one of two things:

* **the installed package itself**, where ``activations`` is not shadowed: ``sys.modules`` then
  holds one module under both names (``loran_search.activations is activations``), and a finder
  maps every submodule ``loran_search.activations.<sub>`` to ``activations.<sub>``, so there is
  one registry whichever name a plugin registers through;
* **a private copy** loaded from the installed ``activations/`` folder under the name
  ``loran_search.activations`` (the package imports itself relatively), where the top-level name
  is taken by a different module or would import one. The user's own ``activations`` module is
  left alone: their ``import activations`` still gets their file. Plugins then register through
  ``loran_search.activations``, the import the README recommends.

The installed package is found beside ``loran_search``: both ship in one distribution, so the
folder ``<site>/activations`` sits next to ``<site>/loran_search``.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import sys
from pathlib import Path
from types import ModuleType

_TOP = "activations"
_NAME = __name__
_INIT = Path(__file__).resolve().parent.parent / _TOP / "__init__.py"


def _is_installed(module: ModuleType | None) -> bool:
    """Whether ``module`` is the registry package shipped beside ``loran_search``."""
    origin = getattr(module, "__file__", None)
    return origin is not None and Path(origin).resolve() == _INIT


class _SubmoduleAlias(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Finds ``loran_search.activations.<sub>`` as the already-importable ``activations.<sub>``.

    Without it the import system would load ``activations/<sub>.py`` a second time under the
    long name, and a second module object means a second registry.
    """

    def find_spec(
        self, fullname: str, path: object = None, target: object = None
    ) -> importlib.machinery.ModuleSpec | None:
        """A spec for names below ``loran_search.activations``; None for every other name."""
        if not fullname.startswith(_NAME + "."):
            return None
        return importlib.util.spec_from_loader(fullname, self)

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType:
        """The module ``activations.<sub>`` itself (imported now if it was not yet)."""
        return importlib.import_module(_TOP + spec.name[len(_NAME) :])

    def exec_module(self, module: ModuleType) -> None:
        """Nothing to run: ``create_module`` returned a module that has run already."""


def _resolve() -> ModuleType:
    """The installed ``activations`` package, or a private copy of it where the name is taken."""
    top = sys.modules.get(_TOP)
    if top is None:
        spec = importlib.util.find_spec(_TOP)  # finds, does not import
        if spec is not None and spec.origin and Path(spec.origin).resolve() == _INIT:
            top = importlib.import_module(_TOP)
    if _is_installed(top):
        assert top is not None
        if not any(isinstance(f, _SubmoduleAlias) for f in sys.meta_path):
            sys.meta_path.insert(0, _SubmoduleAlias())
        return top
    spec = importlib.util.spec_from_file_location(
        _NAME, _INIT, submodule_search_locations=[str(_INIT.parent)]
    )
    if spec is None or spec.loader is None:  # pragma: no cover - the folder ships with the tool
        raise ImportError(f"loran-search's registry package is missing: {_INIT} does not exist")
    module = importlib.util.module_from_spec(spec)
    sys.modules[_NAME] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[_NAME]
        raise
    return module


# The import system returns whatever sys.modules holds under this name once this file has run.
sys.modules[_NAME] = _resolve()
