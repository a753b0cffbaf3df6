"""Loading LoRAN adapters through peft's own entry points.

A LoRAN ``adapter_config.json`` says ``peft_type: LORA`` and adds the LoRAN fields
(:data:`~loran_search.adapters.config.LORAN_FIELDS`: ``activation``, ``activation_params``,
``activation_expr``, ``loran_version``). peft alone builds a plain ``LoraConfig`` from it, dropping
those fields with only a warning: the adapter would load as ordinary LoRA and give different
outputs. :func:`install_config_loader` makes peft's config factory
(``PeftConfigMixin.from_peft_type``, behind ``PeftModel.from_pretrained``,
``PeftModel.load_adapter``, ``PeftConfig.from_pretrained``, ``LoraConfig.from_pretrained`` and
transformers' ``model.load_adapter``) build a :class:`LoranConfig` when a LoRA config carries
**any** of the LoRAN fields. It never falls back to plain LoRA: an activation that is not
registered in this process, or a LoRAN file that lost its ``activation``, raises a clear
``ActivationError``. Importing :mod:`loran_search.adapters` installs it (and ``import
loran_search`` imports that as soon as peft is imported, see :mod:`loran_search._peft_hook`).

:func:`install_injection_guard` makes peft apply :func:`~loran_search.quant.guard_4bit` to the
whole model whenever it injects a LoRAN adapter (``get_peft_model``, ``from_pretrained``,
``add_adapter``, ``load_adapter``, ``inject_adapter_in_model``).

Why LoRAN stays a LoRA variant instead of a peft type of its own, and which private peft
behaviours this relies on (each pinned by a test): ``docs/design-changes.md``, section
"peft integration".
"""

from __future__ import annotations

import dataclasses
import json
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from peft import LoraConfig, LoraModel, PeftModel
from peft.config import PeftConfigMixin

from loran_search.activations import ActivationError
from loran_search.adapters.config import LORAN_FIELDS, LoranConfig
from loran_search.quant.guard import guard_4bit
from loran_search.words import plural

if TYPE_CHECKING:
    from torch import nn

_ORIGINAL_FROM_PEFT_TYPE = PeftConfigMixin.__dict__["from_peft_type"].__func__


def is_loran_config(fields: Mapping[str, Any]) -> bool:
    """Whether saved adapter-config fields describe a LoRAN adapter.

    A LoRA config (``peft_type: LORA``, or no ``peft_type``) with any of :data:`LORAN_FIELDS` is
    LoRAN: each of them alone is enough, so a file that lost some of them is still never read as
    plain LoRA.
    """
    if not any(k in fields for k in LORAN_FIELDS):
        return False
    peft_type = fields.get("peft_type")
    return peft_type is None or str(getattr(peft_type, "value", peft_type)) == "LORA"


def _loran_from_peft_type(cls: type, **kwargs: Any) -> Any:
    """Peft's config factory, except that a LoRA config with LoRAN fields becomes LoranConfig."""
    if not is_loran_config(kwargs) or (
        kwargs.get("peft_type") is None and not issubclass(cls, LoraConfig)
    ):
        return _ORIGINAL_FROM_PEFT_TYPE(cls, **kwargs)
    if "activation" not in kwargs:
        present = sorted(k for k in LORAN_FIELDS if k in kwargs)
        expr = kwargs.get("activation_expr")
        recorded = f" It recorded f(x) = {expr}." if expr else ""
        raise ActivationError(
            "Cannot load this LoRAN adapter: its config has the LoRAN "
            f"{plural(len(present), 'field')} {present} but no "
            f"`activation`, so its f in ΔW = s·f(B·A) is unknown.{recorded} Restore `activation` "
            "(and `activation_params`) in adapter_config.json. Loading it as plain LoRA would "
            "silently change the model."
        )
    known = {f.name for f in dataclasses.fields(LoranConfig)}
    unexpected = sorted(set(kwargs) - known)
    if unexpected:  # what peft's factory does for fields of a newer peft version
        warnings.warn(
            f"Unexpected keyword arguments {unexpected} for class LoranConfig, these are ignored. "
            "The adapter was probably saved with a newer peft version; loran-search is tested "
            "with peft==0.21.2.",
            stacklevel=2,
        )
    try:
        return LoranConfig(**{k: v for k, v in kwargs.items() if k in known})
    except ActivationError as err:
        expr = kwargs.get("activation_expr")
        recorded = f" It was saved with f(x) = {expr}." if expr else ""
        raise ActivationError(
            f"Cannot load this LoRAN adapter: its activation {kwargs.get('activation')!r} "
            f"(params {kwargs.get('activation_params')}) is not usable here: {err}{recorded} "
            "Import the module that registers it before loading (a study's `imports:`, or "
            "`import your_module`). Loading it as plain LoRA would silently change the model."
        ) from None


def install_config_loader() -> None:
    """Make peft's config factory build ``LoranConfig`` for LoRAN adapter configs (idempotent).

    ``PeftConfigMixin.from_peft_type`` is the one factory behind ``PeftConfig.from_pretrained``,
    ``LoraConfig.from_pretrained`` and ``PeftModel.from_pretrained``/``load_adapter``; configs
    that :func:`is_loran_config` does not claim go through it unchanged.
    """
    current = PeftConfigMixin.__dict__.get("from_peft_type")
    if getattr(current.__func__, "_loran", False):
        return
    _loran_from_peft_type._loran = True  # type: ignore[attr-defined]
    PeftConfigMixin.from_peft_type = classmethod(_loran_from_peft_type)  # type: ignore[method-assign,assignment]


def install_injection_guard() -> None:
    """Run :func:`guard_4bit` on the model whenever peft injects a LoRAN adapter (idempotent).

    peft's ``BaseTuner.inject_adapter`` calls ``LoraModel._prepare_model(config, model)`` before
    it replaces any layer, on every injection path (a new ``PeftModel``, ``add_adapter``,
    ``load_adapter``, ``inject_adapter_in_model``); other configs go through it unchanged.
    """
    original = LoraModel._prepare_model
    if getattr(original, "_loran", False):
        return

    def _prepare_model(self: LoraModel, peft_config: Any, model: nn.Module) -> None:
        if isinstance(peft_config, LoranConfig):
            guard_4bit(model)
        original(self, peft_config, model)

    _prepare_model._loran = True  # type: ignore[attr-defined]
    LoraModel._prepare_model = _prepare_model  # type: ignore[method-assign]


def load_adapter(
    model: nn.Module,
    path: str | Path,
    *,
    adapter_name: str = "default",
    is_trainable: bool = False,
    **kwargs: Any,
) -> PeftModel:
    """Load a saved LoRAN (or LoRA) adapter onto ``model``.

    Equivalent to ``PeftModel.from_pretrained(model, path)`` after ``import loran_search``, plus
    the 4-bit guard on ``model`` and a check that a LoRAN file did load as LoRAN.

    Args:
        model: The base model the adapter was trained on (same architecture and quantization).
        path: Directory written by ``save_pretrained``.
        adapter_name: Name of the loaded adapter.
        is_trainable: Load it for further training (otherwise inference mode).
        **kwargs: Passed to ``PeftModel.from_pretrained``.

    Returns:
        The ``PeftModel``; its weights equal the saved ones bit for bit, and so do its outputs
        on the machine that saved it (another CPU may differ by float32 rounding).

    Raises:
        FileNotFoundError: ``path`` has no ``adapter_config.json``.
        ActivationError: The adapter's activation is not registered in this process, or a
            LoRAN config lost its ``activation``.
        RuntimeError: peft built something other than a ``LoranConfig`` for a LoRAN file (its
            config factory was bypassed, e.g. by another peft version).
    """
    path = Path(path)
    config_file = path / "adapter_config.json"
    if not config_file.is_file():
        raise FileNotFoundError(
            f"No adapter_config.json in {path}: point load_adapter at the directory that "
            "save_pretrained wrote."
        )
    marked = is_loran_config(json.loads(config_file.read_text()))
    guard_4bit(model)
    loaded = PeftModel.from_pretrained(
        model, str(path), adapter_name=adapter_name, is_trainable=is_trainable, **kwargs
    )
    config = loaded.peft_config[adapter_name]
    if marked and not isinstance(config, LoranConfig):
        raise RuntimeError(
            f"{config_file} describes a LoRAN adapter, but peft built a "
            f"{type(config).__name__} for it: loran-search's config loader was bypassed "
            "(loran-search is tested with peft==0.21.2 only). Refusing to return a model that "
            "would silently compute plain LoRA."
        )
    return loaded
