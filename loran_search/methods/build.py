"""Build a peer arm with peft's own tuner.

``LoraConfig`` (lora, rslora, dora), ``HiraConfig``, ``PeanutConfig``, ``DeloraConfig``.

The shared ``adapter:`` section applies to every arm where the method has the knob: ``alpha``
(LoRA's scaling ``s = alpha/r``; rsLoRA ``alpha/√r``), ``dropout`` (LoRA's ``lora_dropout``,
HiRA's ``hira_dropout``; PEANuT has none, DeLoRA's ``module_dropout`` drops whole modules and
keeps peft's default 0) and ``target_modules``. HiRA, PEANuT and DeLoRA have no ``alpha``
(HiRA's update is ``W ⊙ B·A`` unscaled; PEANuT has its own ``scaling``; DeLoRA its ``λ``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from loran_search.config import AdapterSection
from loran_search.methods.table import LORAN, get_method, resolve_settings


def peft_config(
    method: str, adapter: AdapterSection, rank: int, settings: Mapping[str, Any] | None = None
) -> Any:
    """The peft config of a peer arm (``method`` ≠ ``loran``) at ``rank``.

    Raises:
        KeyError, ValueError: An unknown method or setting, or a bad value (see
            :func:`~loran_search.methods.table.resolve_settings`).
    """
    import peft

    if method == LORAN:
        raise ValueError("loran is built by loran_search.train.build_adapter, not here.")
    get_method(method)
    s = resolve_settings(method, settings)
    targets = list(adapter.target_modules)
    common: dict[str, Any] = {"r": int(rank), "target_modules": targets, "task_type": "CAUSAL_LM"}
    if method in ("lora", "rslora", "dora"):
        return peft.LoraConfig(
            **common,
            lora_alpha=adapter.alpha,
            lora_dropout=adapter.dropout,
            use_rslora=method == "rslora" or (method != "lora" and adapter.use_rslora),
            use_dora=method == "dora",
        )
    if method == "hira":
        init: Any = True if s["init"] == "zero_b" else "gaussian"
        return peft.HiraConfig(**common, hira_dropout=adapter.dropout, init_weights=init)
    if method == "peanut":
        return peft.PeanutConfig(
            **common, depth=int(s["depth"]), act_fn=str(s["act_fn"]), scaling=float(s["scaling"])
        )
    if method == "delora":
        return peft.DeloraConfig(**common, delora_lambda=int(s["lambda"]))
    raise KeyError(f"No peft config for method {method!r}.")  # pragma: no cover - table mismatch


def target_shapes(model: Any, target_modules: list[str]) -> list[tuple[int, int]]:
    """``(d_in, d_out)`` of every ``nn.Linear`` peft would adapt.

    peft's name rule: the full name, or a dotted suffix of it, equals a target.
    """
    import torch

    out = []
    for name, module in model.named_modules():
        if not isinstance(module, torch.nn.Linear):
            continue
        if any(name == t or name.endswith("." + t) for t in target_modules):
            out.append((int(module.in_features), int(module.out_features)))
    return out


def build_peer(
    model: Any,
    adapter: AdapterSection,
    method: str,
    rank: int,
    settings: Mapping[str, Any] | None = None,
) -> Any:
    """``peft.get_peft_model(model, peft_config(...))``: the peer arm on ``model``."""
    import peft

    return peft.get_peft_model(model, peft_config(method, adapter, rank, settings))
