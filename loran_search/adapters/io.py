"""Loading LoRAN adapters through peft's own entry points.

peft reads ``adapter_config.json``, sees ``peft_type: LORA`` and builds a plain ``LoraConfig``,
dropping unknown fields with only a warning: a LoRAN adapter would load as ordinary LoRA and give
different outputs. :func:`install_config_loader` makes peft's config factory for LoRA
(``PeftConfigMixin.from_peft_type``, reached by ``PeftModel.from_pretrained``,
``PeftModel.load_adapter``, ``PeftConfig.from_pretrained``) build a :class:`LoranConfig` when the
file carries the LoRAN marker ``loran_version``; if the activation is not registered in this
process, that raises a clear error instead of falling back to LoRA. Importing
:mod:`loran_search.adapters` installs it (and ``import loran_search`` imports that as soon as peft
is imported, see :mod:`loran_search._peft_hook`).

:func:`install_injection_guard` makes peft apply :func:`guard_4bit` to the whole model before it
injects a LoRAN adapter.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from peft import LoraModel, PeftModel
from peft.config import PeftConfigMixin

from activations import ActivationError
from loran_search.adapters.config import LoranConfig
from loran_search.quant.guard import guard_4bit

if TYPE_CHECKING:
    from torch import nn

_MARKER = "loran_version"


_ORIGINAL_FROM_PEFT_TYPE = PeftConfigMixin.__dict__["from_peft_type"].__func__


def _loran_from_peft_type(cls: type, **kwargs: Any) -> Any:
    """Peft's config factory, except that a config with the LoRAN marker becomes LoranConfig."""
    peft_type = kwargs.get("peft_type")
    peft_type = str(getattr(peft_type, "value", peft_type)) if peft_type is not None else None
    is_loran = _MARKER in kwargs and (peft_type == "LORA" or issubclass(cls, LoranConfig))
    if not is_loran:
        return _ORIGINAL_FROM_PEFT_TYPE(cls, **kwargs)
    kwargs = dict(kwargs)
    kwargs.pop("peft_type", None)
    try:
        # peft's factory with cls=LoranConfig (it also drops fields of newer peft versions)
        return _ORIGINAL_FROM_PEFT_TYPE(LoranConfig, **kwargs)
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
    without the LoRAN marker go through it unchanged.
    """
    current = PeftConfigMixin.__dict__.get("from_peft_type")
    if getattr(current.__func__, "_loran", False):
        return
    _loran_from_peft_type._loran = True  # type: ignore[attr-defined]
    PeftConfigMixin.from_peft_type = classmethod(_loran_from_peft_type)  # type: ignore[method-assign,assignment]


def install_injection_guard() -> None:
    """Run :func:`guard_4bit` on the model before peft injects a LoRAN adapter (idempotent)."""
    original = LoraModel._pre_injection_hook
    if getattr(original, "_loran", False):
        return

    def _pre_injection_hook(
        self: LoraModel, model: nn.Module, config: Any, adapter_name: str
    ) -> None:
        if isinstance(config, LoranConfig):
            guard_4bit(model)
        original(self, model, config, adapter_name)

    _pre_injection_hook._loran = True  # type: ignore[attr-defined]
    LoraModel._pre_injection_hook = _pre_injection_hook  # type: ignore[method-assign]


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
    the 4-bit guard on ``model``.

    Args:
        model: The base model the adapter was trained on (same architecture and quantization).
        path: Directory written by ``save_pretrained``.
        adapter_name: Name of the loaded adapter.
        is_trainable: Load it for further training (otherwise inference mode).
        **kwargs: Passed to ``PeftModel.from_pretrained``.

    Returns:
        The ``PeftModel``; its outputs equal the saved model's bit for bit.

    Raises:
        FileNotFoundError: ``path`` has no ``adapter_config.json``.
        ActivationError: The adapter's activation is not registered in this process.
    """
    path = Path(path)
    if not (path / "adapter_config.json").is_file():
        raise FileNotFoundError(
            f"No adapter_config.json in {path}: point load_adapter at the directory that "
            "save_pretrained wrote."
        )
    guard_4bit(model)
    return PeftModel.from_pretrained(
        model, str(path), adapter_name=adapter_name, is_trainable=is_trainable, **kwargs
    )
