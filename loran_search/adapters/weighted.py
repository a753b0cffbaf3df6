"""``add_weighted_adapter`` on LoRAN adapters: refused unless every LoRAN adapter is the identity.

peft's ``LoraModel.add_weighted_adapter(adapters, weights, name, combination_type)`` builds one
new LoRA adapter from several. It copies the first adapter's config (for LoRAN: its activation
``f``, with ``r = lora_alpha = `` the new rank, so scale 1) and then either

* ``cat``: stacks ``Aᵢ·wᵢ·sᵢ`` and ``Bᵢ``, so the new layer computes ``f(Σ wᵢ·sᵢ·Bᵢ·Aᵢ)``; or
* ``linear``, ``svd``, ``ties``, ``dare_*``, ``magnitude_prune*``: combines the layers'
  ``get_delta_weight`` (for LoRAN already ``sᵢ·f(Bᵢ·Aᵢ)``) into new factors, which the new
  layer passes through ``f`` a second time.

The adapters active together compute ``Σ wᵢ·sᵢ·f(Bᵢ·Aᵢ)``. For a non-linear ``f`` a sum of
element-wise non-linear updates is in general not ``f`` of one low-rank product, and ``f`` does
not commute with the scale (``s·f(P) ≠ f(s·P)``), so the result is a different function —
silently (issue 25: 0.41 to 25.9 in log-probability on a tiny LLaMA). Even one adapter alone
(``adapters=[a]``) moves its scale inside ``f`` unless ``s = 1``. Only ``f(x) = x`` (LoRAN's
``activation="identity"``, which is peft's LoRA) makes every combination type what it is for
LoRA. So :func:`install_weighted_adapter_guard` makes the call raise a ``ValueError`` that names
the non-identity LoRAN adapters, their activations and the reason, and says what works instead:
keep the adapters active together (``set_adapter([...])``; peft's multi-adapter forward is
exact), or merge them into the base weights one after the other (``merge_adapter`` /
``merge_and_unload`` with ``adapter_names``).

Where it hooks and why there (``docs/design-changes.md``, "Issue 25"): the public
``LoraModel.add_weighted_adapter``, wrapped before peft does anything — before it copies a
config, injects a layer or returns early for an existing name. ``PeftModel`` has no method of
its own and reaches it through ``__getattr__``; peft's private ``_check_add_weighted_adapter``
would be a narrower hook but may be renamed or inlined, whereas the public method is the API
users call. Pinned in ``tests/loran_search/adapters/test_peft_pins.py``.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Sequence
from typing import Any

from peft import LoraModel

from loran_search.adapters.config import LoranConfig
from loran_search.words import plural


def nonlinear_loran_adapters(peft_config: dict[str, Any], adapters: Sequence[str]) -> list[str]:
    """The names in ``adapters`` that are LoRAN adapters whose activation is not the identity.

    Names that are not in ``peft_config`` are skipped (peft itself refuses them).
    """
    found = []
    for name in adapters:
        cfg = peft_config.get(name) if isinstance(name, str) else None
        if isinstance(cfg, LoranConfig) and not cfg.bound_activation().is_identity:
            found.append(name)
    return found


def weighted_adapter_refusal(peft_config: dict[str, Any], names: Sequence[str]) -> str:
    """The message refusing ``add_weighted_adapter`` over the non-linear LoRAN ``names``."""
    described = ", ".join(
        f"{name!r} (activation {peft_config[name].activation!r}, "
        f"f(x) = {peft_config[name].activation_expr}, params {peft_config[name].activation_params})"
        for name in names
    )
    return (
        "add_weighted_adapter cannot combine the LoRAN "
        f"{plural(len(names), 'adapter')} {described}: their update is "
        "s·f(B·A) with a non-linear f, and a weighted sum Σ wᵢ·sᵢ·f(Bᵢ·Aᵢ) of such updates is "
        "in general not f of one low-rank product; peft would build f(Σ wᵢ·sᵢ·Bᵢ·Aᵢ) (the "
        "scales folded inside f; 'cat') or apply f twice ('linear', 'svd', 'ties', …) — a "
        "different model, silently. What works: keep the adapters active together "
        "(model.base_model.set_adapter([...]); peft's multi-adapter forward computes "
        "Σ sᵢ·f(Bᵢ·Aᵢ) exactly), or merge them into the base weights one after the other "
        "(model.merge_adapter(adapter_names=[...]) or model.merge_and_unload(adapter_names="
        "[...]): W + Σ sᵢ·f(Bᵢ·Aᵢ)). LoRAN adapters with activation='identity' are plain LoRA "
        "and can be combined."
    )


def install_weighted_adapter_guard() -> None:
    """Make ``LoraModel.add_weighted_adapter`` refuse non-linear LoRAN adapters (idempotent).

    Every other call (plain LoRA, identity LoRAN) goes through peft's method unchanged.
    """
    original: Callable[..., Any] = LoraModel.add_weighted_adapter
    if getattr(original, "_loran", False):
        return
    signature = inspect.signature(original)

    @functools.wraps(original)
    def add_weighted_adapter(self: LoraModel, *args: Any, **kwargs: Any) -> Any:
        try:
            adapters = signature.bind(self, *args, **kwargs).arguments["adapters"]
        except TypeError:  # a wrong call: peft's own error
            return original(self, *args, **kwargs)
        if isinstance(adapters, str):
            adapters = [adapters]
        names = nonlinear_loran_adapters(self.peft_config, list(adapters or ()))
        if names:
            raise ValueError(weighted_adapter_refusal(self.peft_config, names))
        return original(self, *args, **kwargs)

    add_weighted_adapter._loran = True  # type: ignore[attr-defined]
    LoraModel.add_weighted_adapter = add_weighted_adapter  # type: ignore[method-assign]
