"""loran-search's registry of parametric element-wise activations for LoRAN (``ΔW = s·f(B·A)``).

Importing this package registers the built-in families (``baseline``, ``sinter``, ``fourier``,
``orthogonal``) lazily, on first lookup; it never imports torch until an activation is called.
"""

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
    unregister,
)

__all__ = [
    "ENTRY_POINT_GROUP",
    "ActivationError",
    "ActivationSpec",
    "BoundActivation",
    "Param",
    "families",
    "get_activation",
    "get_spec",
    "list_activations",
    "load_plugins",
    "register",
    "register_activation",
    "resolve_names",
    "unregister",
]
