"""loran-search's registry of parametric element-wise activations for LoRAN (``ΔW = s·f(B·A)``).

Importing this package registers the built-in families (``baseline``, ``sinter``, ``fourier``,
``orthogonal``) lazily, on first lookup; it never imports torch until an activation is called.
The formula and audit helpers (``parse_formula``, ``register_formula``, ``audit``,
``FormulaError``) live in :mod:`activations.symbolic` and are re-exported lazily here, so that
``import activations`` does not import sympy either.
"""

from __future__ import annotations

import importlib
from typing import Any

from activations.registry import (
    ENTRY_POINT_GROUP,
    ActivationError,
    ActivationSpec,
    BoundActivation,
    Param,
    families,
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

_SYMBOLIC = ("AuditResult", "FormulaError", "audit", "parse_formula", "register_formula")

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
    if name in _SYMBOLIC:
        return getattr(importlib.import_module("activations.symbolic"), name)
    raise AttributeError(f"module 'activations' has no attribute {name!r}")
