"""Base model + tokenizer loading: embedded name | Hugging Face hub id | local directory.

``model.name`` resolves in this order:

1. an embedded asset (``smollm2-135m``, ``glassllm``), built into the cache on first use;
2. an existing local directory (a transformers checkpoint folder);
3. a hub id ``owner/name`` (``meta-llama/Llama-2-7b-hf``), loaded by transformers as usual
   (``revision`` honoured; offline it must already be in the HF cache).

Anything else is an error naming the closest embedded name and ``loran-search assets list``.

Quantization (bitsandbytes): ``nf4`` / ``fp4`` load 4-bit linear layers
(``BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type=…, bnb_4bit_compute_dtype=…,
bnb_4bit_use_double_quant=double_quant)``), ``int8`` loads ``load_in_8bit``; ``none`` loads
``compute_dtype`` weights. The device is CUDA when present (``device: auto``), else CPU; nothing
here assumes a CPU, so a 7B hub model on a GPU loads the same way. After every load
:func:`loran_search.adapters.guard_4bit` disables the AVX512-BF16 CPU repacking of 4-bit layers
(ASSETS.md: one eval-mode forward would otherwise freeze all gradients through them).
"""

from __future__ import annotations

import difflib
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from loran_search.config import ModelSection
from loran_search.errors import LoranSearchError

QUANTIZATIONS = ("nf4", "fp4", "int8", "none")
COMPUTE_DTYPES = ("float32", "bfloat16", "float16")


class ModelError(LoranSearchError, ValueError):
    """The model section names something that cannot be loaded (message says how to fix it)."""


@dataclass
class LoadInfo:
    """How a model was loaded (kept on ``model.loran_load_info``).

    Attributes:
        source: ``embedded`` | ``local`` | ``hub``.
        path: Folder or hub id passed to ``from_pretrained``.
        device: Device the weights live on.
        seconds: Wall time of tokenizer + model loading (after any asset build).
        guarded_4bit_layers: Layers touched by ``guard_4bit``.
    """

    source: str
    path: str
    device: str
    seconds: float
    guarded_4bit_layers: int


def resolve_device(device: str) -> str:
    """``auto`` → ``cuda`` when available else ``cpu``; other values are passed through."""
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ModelError(f"model.device is {device!r} but CUDA is not available; use 'auto'.")
    return device


def resolve_model_name(name: str) -> tuple[str, str]:
    """``(source, path)`` for ``model.name``; builds embedded assets on demand.

    Raises:
        ModelError: Neither embedded, nor an existing folder, nor shaped like a hub id.
    """
    from loran_search import assets

    spec = assets.ASSETS.get(name)
    if spec is not None:
        if spec.kind != "model":
            raise ModelError(
                f"model.name {name!r} is an embedded {spec.kind}, not a model; embedded models: "
                + ", ".join(n for n, s in assets.ASSETS.items() if s.kind == "model")
                + " (`loran-search assets list`)."
            )
        return "embedded", str(assets.ensure(name))
    path = Path(name).expanduser()
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise ModelError(
                f"model.name {name!r} is a folder without config.json; point it at a "
                "transformers checkpoint folder (save_pretrained output)."
            )
        return "local", str(path)
    looks_like_hub = name.count("/") == 1 and not name.startswith((".", "/", "~"))
    if looks_like_hub:
        return "hub", name
    raise ModelError(
        assets.unknown_asset_message(name, kind="model")
        + " A hub id looks like 'owner/name' (e.g. meta-llama/Llama-2-7b-hf); a local model is "
        "an existing folder with config.json."
    )


def check_model_section(cfg: ModelSection) -> None:
    """Validate the fields that need no loading; raise :class:`ModelError`."""
    if cfg.quantization not in QUANTIZATIONS:
        raise ModelError(
            f"model.quantization {cfg.quantization!r} is not one of {', '.join(QUANTIZATIONS)}."
        )
    if cfg.compute_dtype not in COMPUTE_DTYPES:
        raise ModelError(
            f"model.compute_dtype {cfg.compute_dtype!r} is not one of {', '.join(COMPUTE_DTYPES)}."
        )


def quantization_config(cfg: ModelSection) -> Any:
    """The ``BitsAndBytesConfig`` for ``cfg.quantization`` (``None`` for ``none``)."""
    import torch
    from transformers import BitsAndBytesConfig

    dtype = getattr(torch, cfg.compute_dtype)
    if cfg.quantization in ("nf4", "fp4"):
        return BitsAndBytesConfig(
            load_in_4bit=True,
            bnb_4bit_quant_type=cfg.quantization,
            bnb_4bit_compute_dtype=dtype,
            bnb_4bit_use_double_quant=cfg.double_quant,
        )
    if cfg.quantization == "int8":
        return BitsAndBytesConfig(load_in_8bit=True)
    return None


def _guard(model: Any) -> int:
    """Apply the AVX512-BF16 guard to every bitsandbytes 4-bit layer (ASSETS.md trap)."""
    from loran_search.quant import guard_4bit

    return int(guard_4bit(model))


def load_model(cfg: ModelSection) -> tuple[Any, Any]:
    """Load ``(model, tokenizer)`` as ``cfg`` says; the model is frozen-ready and in eval mode.

    The tokenizer always has a pad token (EOS when the checkpoint defines none) and pads on the
    right. ``model.loran_load_info`` holds a :class:`LoadInfo` (loading seconds etc.).

    Raises:
        ModelError: Bad name/quantization/dtype/device, or transformers could not load it.
    """
    check_model_section(cfg)
    source, path = resolve_model_name(cfg.name)
    device = resolve_device(cfg.device)

    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    logging.getLogger("bitsandbytes").setLevel(logging.ERROR)
    t0 = time.perf_counter()
    kwargs: dict[str, Any] = {"revision": cfg.revision} if cfg.revision else {}
    try:
        tokenizer = AutoTokenizer.from_pretrained(path, **kwargs)
        qcfg = quantization_config(cfg)
        model_kwargs: dict[str, Any] = dict(kwargs, device_map={"": device})
        if qcfg is not None:
            model_kwargs["quantization_config"] = qcfg
            model_kwargs["dtype"] = getattr(torch, cfg.compute_dtype)
        else:
            model_kwargs["dtype"] = getattr(torch, cfg.compute_dtype)
        model = AutoModelForCausalLM.from_pretrained(path, **model_kwargs)
    except OSError as err:
        hint = (
            " It is a hub id: online, check the spelling and access rights; offline, download it "
            "first (HF_HUB_OFFLINE is set)."
            if source == "hub"
            else ""
        )
        raise ModelError(f"could not load model {cfg.name!r} from {path}: {err}{hint}") from err
    guarded = _guard(model)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = "right"
    if cfg.gradient_checkpointing:
        # transformers 5 renamed gradient_checkpointing_enable (deprecated alias kept).
        enable = getattr(model, "activation_checkpointing_enable", None)
        (enable or model.gradient_checkpointing_enable)()
        model.enable_input_require_grads()
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    model.loran_load_info = LoadInfo(
        source=source,
        path=path,
        device=device,
        seconds=round(time.perf_counter() - t0, 3),
        guarded_4bit_layers=guarded,
    )
    return model, tokenizer


def embedded_model_names() -> list[str]:
    """Names of the embedded models."""
    from loran_search import assets

    return sorted(n for n, s in assets.ASSETS.items() if s.kind == "model")


def closest(name: str, choices: list[str]) -> str | None:
    """The closest of ``choices`` to ``name`` (difflib), or ``None``."""
    found = difflib.get_close_matches(name, choices, n=1, cutoff=0.5)
    return found[0] if found else None
