"""loran-search's registry of parametric element-wise activations for LoRAN (``ΔW = s·f(B·A)``).

Importing this package registers the built-in families (``baseline``, ``sinter``, ``fourier``,
``orthogonal``) lazily, on first lookup; it never imports torch until an activation is called.
The formula helpers (``parse_formula``, ``register_formula``, ``FormulaError``) live in
:mod:`activations.formula` and the audit (``audit``, ``AuditResult``) in :mod:`activations.audit`;
they are re-exported lazily here, so that ``import activations`` does not import sympy either.
``activations.audit`` is the audit module, which can be called as the function:
``activations.audit("sinter")`` is ``activations.audit.audit("sinter")``.
"""

from __future__ import annotations

import importlib
from typing import Any

from .registry import (
    ENTRY_POINT_GROUP,
    ActivationError,
    ActivationSpec,
    BoundActivation,
    Param,
    families,
    find_spec,
    get_activation,
    get_spec,
    list_activations,
    load_plugins,
    register,
    register_activation,
    resolve_names,
    unknown_activation_message,
    unregister,
)

#: Lazily re-exported name -> the module that defines it (importing it imports sympy). ``audit``
#: names the callable module itself: the import system binds ``activations.audit`` to it anyway.
_LAZY = {
    "AuditResult": ".audit",
    "FormulaError": ".formula",
    "parse_formula": ".formula",
    "register_formula": ".formula",
}

__all__ = [
    "ENTRY_POINT_GROUP",
    "ActivationError",
    "ActivationSpec",
    "AuditResult",
    "BoundActivation",
    "FormulaError",
    "Param",
    "audit",
    "families",
    "find_spec",
    "get_activation",
    "get_spec",
    "list_activations",
    "load_plugins",
    "parse_formula",
    "register",
    "register_activation",
    "register_formula",
    "resolve_names",
    "unknown_activation_message",
    "unregister",
]


def __getattr__(name: str) -> Any:
    if name == "audit":
        return importlib.import_module(".audit", __name__)
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name], __name__), name)
    raise AttributeError(f"module 'activations' has no attribute {name!r}")
