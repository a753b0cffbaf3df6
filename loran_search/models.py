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

What the study-file check needs, without loading weights: :func:`device_problem` (``cuda``
without CUDA), :func:`model_name_problem` (a name that cannot resolve), :func:`describe_model` /
:func:`describe_modules` (the linear layers and their widths, read from the model's
``config.json`` by instantiating the architecture on the ``meta`` device) and
:func:`target_problems` (``adapter.target_modules`` and ``search.rank`` against them).
"""

from __future__ import annotations

import difflib
import hashlib
import importlib.metadata
import importlib.util
import json
import logging
import os
import re
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from loran_search.config import ModelSection
from loran_search.errors import LoranSearchError
from loran_search.words import plural

QUANTIZATIONS = ("nf4", "fp4", "int8", "none")
COMPUTE_DTYPES = ("float32", "bfloat16", "float16")
DEVICE_PATTERN = re.compile(r"auto|cpu|cuda(?::(\d+))?")
#: Embedded models whose build takes a second or so (when their package is installed): the
#: study-file check builds them to read their config; any other unbuilt asset is skipped then
#: and checked by ``run``/``train`` after the build, before training.
CHEAP_TO_BUILD = ("glassllm",)


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


def device_problem(device: str) -> str | None:
    """Why ``model.device`` cannot work on this machine, or ``None``.

    ``auto`` and ``cpu`` always work and import nothing; ``cuda`` / ``cuda:N`` import torch to
    ask whether CUDA is available and how many devices it has.
    """
    match = DEVICE_PATTERN.fullmatch(device)
    if match is None:
        return f"model.device must be auto, cpu, cuda or cuda:N, but got {device!r}."
    if device in ("auto", "cpu"):
        return None
    import torch

    if not torch.cuda.is_available():
        return (
            f"model.device is {device!r} but CUDA is not available on this machine "
            "(torch.cuda.is_available() is False); use device: auto (CUDA when present, else "
            "CPU) or cpu, or run on a machine with a GPU."
        )
    index = match.group(1)
    count = torch.cuda.device_count()
    if index is not None and int(index) >= count:
        return (
            f"model.device is {device!r} but this machine has {count} "
            f"{plural(count, 'CUDA device')} "
            f"(cuda:0 … cuda:{count - 1}); use one of them or device: auto."
        )
    return None


def resolve_device(device: str) -> str:
    """``auto`` → ``cuda`` when available else ``cpu``; ``cpu``/``cuda[:N]`` are checked.

    Raises:
        ModelError: The device cannot work here (see :func:`device_problem`).
    """
    problem = device_problem(device)
    if problem is not None:
        raise ModelError(problem)
    if device == "auto":
        import torch

        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


def model_name_problem(name: str) -> str | None:
    """Why ``model.name`` cannot resolve (as :func:`resolve_model_name` would say), or ``None``.

    Builds nothing and reaches no network: an embedded model and a hub-shaped id pass.
    """
    try:
        resolve_model_name(name, build=False)
    except ModelError as err:
        return str(err)
    return None


def resolve_model_name(name: str, *, build: bool = True) -> tuple[str, str]:
    """``(source, path)`` for ``model.name``; builds embedded assets on demand.

    Args:
        name: ``model.name``.
        build: Build an embedded asset that is not built yet (otherwise its folder is returned
            as it will be once built).

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
        return "embedded", str(assets.ensure(name) if build else assets.asset_dir(name))
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


@dataclass(frozen=True)
class ModelDescription:
    """The layers of a model's architecture, read from its config without any weights.

    Attributes:
        linear: ``{module name: (in_features, out_features)}`` of every ``nn.Linear``
            (``model.layers.0.self_attn.q_proj`` → ``(128, 128)``).
        others: ``{module name: class name}`` of every other module (peft matches those too).
        max_positions: The config's ``max_position_embeddings`` (the context), if it has one.
        conv: ``{module name: (C_in·k_h·k_w, C_out)}`` of every ``nn.Conv2d``: the widths of
            its flattened kernel, whose LoRAN update is ``f(B·A)`` of that shape
            (:mod:`loran_search.adapters.conv`).
    """

    linear: dict[str, tuple[int, int]]
    others: dict[str, str] = field(default_factory=dict)
    max_positions: int | None = None
    conv: dict[str, tuple[int, int]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (see :meth:`from_dict`)."""
        return {
            "linear": {k: list(v) for k, v in self.linear.items()},
            "others": dict(self.others),
            "max_positions": self.max_positions,
            "conv": {k: list(v) for k, v in self.conv.items()},
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ModelDescription:
        """The description :meth:`to_dict` wrote."""
        return cls(
            linear={str(k): (int(v[0]), int(v[1])) for k, v in data["linear"].items()},
            others={str(k): str(v) for k, v in data.get("others", {}).items()},
            max_positions=data.get("max_positions"),
            conv={str(k): (int(v[0]), int(v[1])) for k, v in data.get("conv", {}).items()},
        )


def module_table(model: Any) -> ModelDescription:
    """The :class:`ModelDescription` of an instantiated model (real, quantized or ``meta``)."""
    import torch

    linear: dict[str, tuple[int, int]] = {}
    others: dict[str, str] = {}
    conv: dict[str, tuple[int, int]] = {}
    for name, module in model.named_modules():
        if not name:
            continue
        if isinstance(module, torch.nn.Linear):  # bitsandbytes' layers subclass it
            linear[name] = (int(module.in_features), int(module.out_features))
        elif isinstance(module, torch.nn.Conv2d):
            kh, kw = module.kernel_size
            conv[name] = (int(module.in_channels) * int(kh) * int(kw), int(module.out_channels))
        else:
            others[name] = type(module).__name__
    config = getattr(model, "config", None)
    max_pos = getattr(config, "max_position_embeddings", None)
    positions = int(max_pos) if isinstance(max_pos, int) else None
    return ModelDescription(linear, others, positions, conv)


def _cheap_to_build(name: str) -> bool:
    from loran_search import assets

    if name not in CHEAP_TO_BUILD:
        return False
    try:  # the package's files are read without importing it (see loran_search.assets)
        return importlib.util.find_spec(assets.ASSETS[name].module) is not None
    except (ImportError, ValueError):
        return False


def _config_file(section: ModelSection) -> Path | None:
    """The ``config.json`` of ``model.name`` when it can be had cheaply and offline."""
    from loran_search import assets

    name = section.name
    spec = assets.ASSETS.get(name)
    if spec is not None:
        if spec.kind != "model":
            return None
        if not assets.check(name):
            return assets.asset_dir(name) / "config.json"
        if not _cheap_to_build(name):
            return None  # run/train build it and check the layers before training
        from transformers.utils import logging as hf_logging

        bars = hf_logging.is_progress_bar_enabled()
        hf_logging.disable_progress_bar()  # a check prints its findings, not a build's bars
        try:
            return assets.ensure(name, progress=False) / "config.json"
        except Exception:  # AssetError, a read-only cache, ...: run/train build and report it
            return None
        finally:
            if bars:
                hf_logging.enable_progress_bar()
    path = Path(name).expanduser()
    if path.is_dir():
        file = path / "config.json"
        return file if file.is_file() else None
    if name.count("/") != 1 or name.startswith((".", "/", "~")):
        return None
    try:
        from huggingface_hub import try_to_load_from_cache

        found = try_to_load_from_cache(name, "config.json", revision=section.revision)
    except Exception:  # no hub client, a malformed id: nothing to read offline
        return None
    return Path(found) if isinstance(found, str) else None


def _instantiate_on_meta(
    folder: Path, auto_class: str = "AutoModelForCausalLM"
) -> ModelDescription | None:
    """Build the architecture of ``folder``'s config on the ``meta`` device (no weights)."""
    import warnings

    import torch
    import transformers
    from transformers import AutoConfig
    from transformers.utils import logging as hf_logging

    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            config = AutoConfig.from_pretrained(str(folder), local_files_only=True)
            with torch.device("meta"):
                model = getattr(transformers, auto_class).from_config(config)
    except Exception:  # an architecture transformers cannot build here: run/train will say
        return None
    finally:
        hf_logging.set_verbosity(verbosity)
    return module_table(model)


_DESCRIBED: dict[str, ModelDescription | None] = {}


def _description_cache(key: str) -> Path:
    from loran_search import assets

    return assets.cache_root() / "modules" / f"{key}.json"


def describe_model(
    section: ModelSection, auto_class: str = "AutoModelForCausalLM"
) -> ModelDescription | None:
    """The layers of ``model.name`` read from its config, without loading any weights.

    The config is the ``config.json`` of a local folder or of a built embedded asset (an
    unbuilt one is built first when that is cheap, see :data:`CHEAP_TO_BUILD`), or of a hub
    id already in the Hugging Face cache. The architecture is instantiated on the ``meta``
    device, which allocates no weights; the result is kept per config (and transformers
    version) in memory and under ``<cache root>/modules/`` so the next check imports no torch.

    Args:
        section: The ``model:`` section (``name`` and ``revision`` are used).
        auto_class: The transformers auto class that builds the architecture
            (``AutoModelForSeq2SeqLM`` for encoder-decoders; see :mod:`loran_search.kinds`).

    Returns:
        The description, or ``None`` when it cannot be had cheaply and offline (an unbuilt
        large asset, a hub id not in the cache, an architecture transformers cannot build):
        then nothing can be said before loading.

    Raises:
        ModelError: The ``config.json`` exists but is not valid JSON.
    """
    file = _config_file(section)
    if file is None:
        return None
    try:
        raw = file.read_bytes()
        version = importlib.metadata.version("transformers")
    except (OSError, importlib.metadata.PackageNotFoundError):
        return None
    try:
        json.loads(raw)
    except ValueError as err:
        raise ModelError(
            f"model.name {section.name!r}: {file} is not valid JSON ({err}).",
            fix="Restore the checkpoint's config.json (save_pretrained writes it).",
        ) from None
    salt = b"" if auto_class == "AutoModelForCausalLM" else b"\0" + auto_class.encode()
    key = hashlib.sha256(raw + b"\0transformers " + version.encode() + salt).hexdigest()
    if key in _DESCRIBED:
        return _DESCRIBED[key]
    cache = _description_cache(key)
    desc: ModelDescription | None = None
    try:
        desc = ModelDescription.from_dict(json.loads(cache.read_text(encoding="utf-8")))
    except (OSError, ValueError, KeyError, TypeError, IndexError):
        desc = _instantiate_on_meta(file.parent, auto_class)
        if desc is not None:
            _write_atomically(cache, json.dumps(desc.to_dict()))
    _DESCRIBED[key] = desc
    return desc


def _write_atomically(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` via a renamed temporary file; a failure only skips caching."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}-")
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)
    except OSError:
        return


def read_config(section: ModelSection) -> dict[str, Any] | None:
    """The ``config.json`` of ``model.name`` when it can be read cheaply and offline, else ``None``.

    Read from the same places as :func:`describe_model` (a local folder, a built embedded
    asset, a hub id already in the Hugging Face cache); never reaches the network.
    """
    file = _config_file(section)
    if file is None:
        return None
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def describe_modules(section: ModelSection) -> dict[str, list[tuple[int, int]]] | None:
    """``{leaf name: [(d_in, d_out) of every nn.Linear so named]}`` of ``model.name``.

    For example ``{"q_proj": [(128, 128), …], "v_proj": [(128, 64), …], …}`` for glassllm.
    ``None`` when the model cannot be described cheaply and offline (see
    :func:`describe_model`).
    """
    desc = describe_model(section)
    if desc is None:
        return None
    out: dict[str, list[tuple[int, int]]] = {}
    for name, shape in desc.linear.items():
        out.setdefault(name.rsplit(".", 1)[-1], []).append(shape)
    return out


def _matches(module: str, target: str) -> bool:
    """Whether ``module`` is a ``target`` by peft's rule: the full name or a dotted suffix."""
    return module == target or module.endswith("." + target)


def target_problems(
    desc: ModelDescription, target_modules: Sequence[str], ranks: Sequence[int]
) -> list[tuple[tuple[str | int, ...], str]]:
    """``adapter.target_modules`` and ranks checked against the model's layers.

    Every target must match (peft's rule: a module's full name or a dotted suffix of it) at
    least one ``nn.Linear`` and no other module; every rank ``r`` must satisfy
    ``r <= min(d_in, d_out)`` of every adapted layer (a wider ``B·A`` adds no rank).

    Args:
        desc: The model's layers (:func:`describe_model` or :func:`module_table`).
        target_modules: ``adapter.target_modules``.
        ranks: The ranks to check (``search.rank``, or the one rank of a run).

    Returns:
        ``(path, message)`` pairs, ``path`` like ``("adapter", "target_modules", 1)`` or
        ``("search", "rank", 0)``; empty when all is well.
    """
    from loran_search.config import did_you_mean

    layers = {**desc.linear, **desc.conv}  # the layers LoRAN adapts
    leaves = list(dict.fromkeys(n.rsplit(".", 1)[-1] for n in layers))
    problems: list[tuple[tuple[str | int, ...], str]] = []
    if not target_modules:
        problems.append(
            (
                ("adapter", "target_modules"),
                "`target_modules` is empty; name the linear layers to adapt, e.g. "
                f"[q_proj, v_proj] (this model's: {', '.join(leaves)}).",
            )
        )
    adapted: dict[str, tuple[int, int]] = {}
    for i, target in enumerate(target_modules):
        path: tuple[str | int, ...] = ("adapter", "target_modules", i)
        other = next(((n, c) for n, c in desc.others.items() if _matches(n, target)), None)
        linear = {n: s for n, s in layers.items() if _matches(n, target)}
        if other is not None:
            problems.append(
                (
                    path,
                    f"{target!r} matches {other[0]!r}, a {other[1]}, not a linear layer; LoRAN "
                    f"adapts linear (and 2-D convolution) layers only (this model's: "
                    f"{', '.join(leaves)}).",
                )
            )
        elif not linear:
            problems.append(
                (
                    path,
                    f"The model has no module named {target!r}.{did_you_mean(target, leaves)} "
                    f"Its linear layers: {', '.join(leaves)}.",
                )
            )
        adapted.update(linear)
    if adapted:
        name, (d_in, d_out) = min(adapted.items(), key=lambda kv: min(kv[1]))
        cap = min(d_in, d_out)
        for j, r in enumerate(ranks):
            if isinstance(r, int) and not isinstance(r, bool) and r > cap:
                problems.append(
                    (
                        ("search", "rank", j),
                        f"Rank {r} exceeds the smallest width of an adapted layer: {name} is "
                        f"{d_in} → {d_out}, so r ≤ min(d_in, d_out) = {cap}. Use a rank ≤ {cap} "
                        "or adapt wider layers.",
                    )
                )
    return problems


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


def load_model(cfg: ModelSection, auto_class: str = "AutoModelForCausalLM") -> tuple[Any, Any]:
    """Load ``(model, tokenizer)`` as ``cfg`` says; the model is frozen-ready and in eval mode.

    ``auto_class`` is the transformers class that loads it (``AutoModelForSeq2SeqLM`` for the
    encoder-decoder kind, :mod:`loran_search.kinds`).

    The tokenizer always has a pad token (EOS when the checkpoint defines none) and pads on the
    right. ``model.loran_load_info`` holds a :class:`LoadInfo` (loading seconds etc.).

    Raises:
        ModelError: Bad name/quantization/dtype/device, or transformers could not load it.
    """
    check_model_section(cfg)
    source, path = resolve_model_name(cfg.name)
    device = resolve_device(cfg.device)

    import torch
    import transformers
    from transformers import AutoTokenizer

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
        model = getattr(transformers, auto_class).from_pretrained(path, **model_kwargs)
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
