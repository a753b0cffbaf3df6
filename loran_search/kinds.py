"""Model kinds: how a base model is loaded, what LoRAN adapts by default, which tasks it serves.

A study names its base in ``model.name`` (an embedded asset, a local folder, a hub id) and may
name its kind in ``model.kind`` (default ``auto``). A :class:`ModelKind` says

* how to load the base (``loader``: ``(model section) → (model, tokenizer or None)``) and
  which ``quantization`` values it takes;
* which modules LoRAN adapts by default (``default_targets``, used when the study file gives no
  ``adapter.target_modules``) and which others are adaptable on request (``other_targets``);
* which ``task.type`` values it serves and how such a task is built for it (``tasks``:
  ``{task type: builder}``, each ``(task section, model, tokenizer) → task``);
* the ``peft`` task type of its adapter (``CAUSAL_LM``, ``SEQ_2_SEQ_LM``, or none for a plain
  ``nn.Module``).

Every task, whatever its kind, is one protocol: ``train_examples`` (a list; the trainer
shuffles it into micro-batches), ``loss(model, batch)`` (the scalar to minimise; a task
without one gets the causal-LM answer-token loss of :mod:`loran_search.train`),
``evaluate_examples(model, batch_size) → (metrics, per-example outcomes with stable ids)``,
``evaluate``, ``metric_names``, ``eval_split``, ``notes`` and ``truncation``. So nothing in
the search, the record, the report, the dashboard or the benchmark knows a kind.

``auto`` resolves, without any network: an embedded name to its kind; else the ``model_type``
of the checkpoint's ``config.json`` when it can be read offline (a local folder, the hub
cache): ``t5``/``mt5``/``umt5``/… → ``seq2seq_lm``, ``falcon`` → ``falcon``; else
``causal_lm``. Loading reads the config again (fetching it for a hub id not yet cached):
``auto`` takes the kind it names, and an explicit kind that needs another transformers class
(``seq2seq_lm`` for a decoder, ``causal_lm`` for a T5) is refused before any weight is read.

=============== ================================ ======================== =====================
kind            bases                            default targets          task types
=============== ================================ ======================== =====================
causal_lm       LLaMA-family decoders            q_proj, v_proj           classification,
                (smollm2-135m, glassllm, hub)                             summarization
falcon          Falcon (tiiuae/falcon-7b, …)     query_key_value (fused)  classification,
                                                                          summarization
seq2seq_lm      T5 family (google/flan-t5-base)  q, v                     classification,
                                                                          summarization
digits_cnn      digits-cnn (embedded, trained)   conv1, conv2, fc1, head  classification
digits_vit      digits-vit (embedded, trained)   query, value, head       classification
cartpole_mlp    cartpole-mlp (embedded, trained) fc1, fc2                 control
=============== ================================ ======================== =====================
"""

from __future__ import annotations

import importlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from loran_search.config import ModelSection, TaskSection
from loran_search.errors import LoranSearchError


class KindError(LoranSearchError, ValueError):
    """A model kind that is unknown, or does not fit the base or the task."""


def _lazy(target: str) -> Callable[..., Any]:
    """The callable at ``"module:attribute"``, imported on first use (start-up stays cheap)."""

    def call(*args: Any, **kwargs: Any) -> Any:
        module, attr = target.split(":")
        return getattr(importlib.import_module(module), attr)(*args, **kwargs)

    call.__qualname__ = target
    return call


@dataclass(frozen=True)
class ModelKind:
    """One kind of base model (see the module docstring).

    Attributes:
        name: ``model.kind`` value.
        description: One line.
        loader: ``(ModelSection) → (model, tokenizer | None)``; the model frozen, in eval mode.
        tasks: ``{task type: builder}``; a builder is ``(TaskSection, model, tokenizer) → task``.
        default_targets: ``adapter.target_modules`` when the study gives none.
        other_targets: Further modules LoRAN adapts on request.
        peft_task_type: The ``task_type`` of the adapter's peft config (``None``: a plain
            module).
        embedded: Embedded model names of this kind.
        model_types: ``config.json`` ``model_type`` values that resolve ``auto`` to this kind.
        quantizations: The ``model.quantization`` values it loads.
        auto_class: The transformers auto class of a transformers kind (``None`` otherwise).
        task_names: When set, the only ``task.name`` values it serves.
    """

    name: str
    description: str
    loader: Callable[[ModelSection], tuple[Any, Any]]
    tasks: dict[str, Callable[[TaskSection, Any, Any], Any]]
    default_targets: tuple[str, ...]
    other_targets: tuple[str, ...] = ()
    peft_task_type: str | None = None
    embedded: tuple[str, ...] = ()
    model_types: tuple[str, ...] = ()
    quantizations: tuple[str, ...] = ("nf4", "fp4", "int8", "none")
    auto_class: str | None = None
    task_names: tuple[str, ...] = field(default=())


def _text_task(cfg: TaskSection, model: Any, tokenizer: Any) -> Any:
    """The causal-LM text tasks (:func:`loran_search.tasks.build_task`)."""
    from loran_search.tasks import build_task

    max_pos = getattr(getattr(model, "config", None), "max_position_embeddings", None)
    return build_task(cfg, tokenizer, max_positions=max_pos)


def _digits_task(cfg: TaskSection, model: Any, tokenizer: Any) -> Any:
    from loran_search.tasks.vision import DigitsTask

    return DigitsTask(cfg)


def _control_task(cfg: TaskSection, model: Any, tokenizer: Any) -> Any:
    from loran_search.tasks.control import ControlTask

    return ControlTask(cfg)


def _load_causal(section: ModelSection) -> tuple[Any, Any]:
    from loran_search.models import load_model

    return load_model(section)


def _load_seq2seq(section: ModelSection) -> tuple[Any, Any]:
    from loran_search.models import load_model

    return load_model(section, auto_class="AutoModelForSeq2SeqLM")


ZOO_ARCHS = {"digits-cnn": ("digits", "cnn"), "digits-vit": ("digits", "vit")}


def build_network(name: str) -> Any:
    """A fresh (randomly initialised) network of embedded model ``name``, float32."""
    if name == "cartpole-mlp":
        from loran_search.zoo.cartpole import PolicyMLP

        return PolicyMLP()
    from loran_search.zoo.digits import build

    return build(ZOO_ARCHS[name][1])


def load_network(section: ModelSection) -> tuple[Any, None]:
    """An embedded in-process network (``digits-cnn``, ``digits-vit``, ``cartpole-mlp``).

    Builds the asset on first use (a seeded pretraining, seconds), loads its state dict into
    the architecture in ``model.compute_dtype`` on ``model.device``; no tokenizer.
    """
    import torch
    from safetensors.torch import load_file

    from loran_search import assets
    from loran_search.models import LoadInfo, ModelError, check_model_section, resolve_device

    check_model_section(section)
    kind = resolve_kind(section)
    if section.name not in kind.embedded:
        raise ModelError(
            f"model.name {section.name!r} is not a {kind.name} network; its embedded ones: "
            f"{', '.join(kind.embedded)}."
        )
    device = resolve_device(section.device)
    t0 = time.perf_counter()
    folder = assets.ensure(section.name)
    model = build_network(section.name)
    model.load_state_dict(load_file(str(folder / "model.safetensors")))
    model = model.to(device=device, dtype=getattr(torch, section.compute_dtype))
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    model.loran_load_info = LoadInfo(
        source="embedded",
        path=str(folder),
        device=device,
        seconds=round(time.perf_counter() - t0, 3),
        guarded_4bit_layers=0,
    )
    return model, None


TEXT_TASKS: dict[str, Callable[[TaskSection, Any, Any], Any]] = {
    "classification": _text_task,
    "summarization": _text_task,
}

KINDS: dict[str, ModelKind] = {
    kind.name: kind
    for kind in (
        ModelKind(
            "causal_lm",
            "LLaMA-family decoder (AutoModelForCausalLM)",
            _load_causal,
            TEXT_TASKS,
            ("q_proj", "v_proj"),
            ("k_proj", "o_proj", "gate_proj", "up_proj", "down_proj"),
            peft_task_type="CAUSAL_LM",
            embedded=("smollm2-135m", "glassllm"),
            model_types=("llama",),
            auto_class="AutoModelForCausalLM",
        ),
        ModelKind(
            "falcon",
            "Falcon decoder with the fused query_key_value projection",
            _load_causal,
            TEXT_TASKS,
            ("query_key_value",),
            ("dense", "dense_h_to_4h", "dense_4h_to_h"),
            peft_task_type="CAUSAL_LM",
            model_types=("falcon",),
            auto_class="AutoModelForCausalLM",
        ),
        ModelKind(
            "seq2seq_lm",
            "T5-family encoder-decoder (AutoModelForSeq2SeqLM)",
            _load_seq2seq,
            {
                "classification": _lazy("loran_search.tasks.seq2seq:Seq2SeqClassificationTask"),
                "summarization": _lazy("loran_search.tasks.seq2seq:Seq2SeqSummarizationTask"),
            },
            ("q", "v"),
            ("k", "o", "wi", "wo", "wi_0", "wi_1"),
            peft_task_type="SEQ_2_SEQ_LM",
            model_types=("t5", "mt5", "umt5", "longt5"),
            auto_class="AutoModelForSeq2SeqLM",
        ),
        ModelKind(
            "digits_cnn",
            "two-conv CNN pretrained here on digits 0–4 (LoRAN on Conv2d and Linear)",
            load_network,
            {"classification": _digits_task},
            ("conv1", "conv2", "fc1", "head"),
            embedded=("digits-cnn",),
            quantizations=("none",),
            task_names=("digits",),
        ),
        ModelKind(
            "digits_vit",
            "two-block ViT pretrained here on digits 0–4 (LoRAN on its linear layers)",
            load_network,
            {"classification": _digits_task},
            ("query", "value", "head"),
            ("key", "out", "fc1", "fc2", "patch"),
            embedded=("digits-vit",),
            quantizations=("none",),
            task_names=("digits",),
        ),
        ModelKind(
            "cartpole_mlp",
            "MLP policy pretrained here by REINFORCE on CartPole-v1 at default dynamics",
            load_network,
            {"control": _control_task},
            ("fc1", "fc2"),
            ("head",),
            embedded=("cartpole-mlp",),
            quantizations=("none",),
            task_names=("cartpole",),
        ),
    )
}
DEFAULT_KIND = "causal_lm"


def unknown_kind_message(name: str) -> str:
    """A did-you-mean message for an unknown ``model.kind``."""
    from loran_search.config import did_you_mean

    return (
        f"model.kind {name!r} is not a model kind.{did_you_mean(name, list(KINDS))} Kinds: "
        f"auto, {', '.join(KINDS)}."
    )


def get_kind(name: str) -> ModelKind:
    """The kind called ``name``; raises :class:`KindError` with a did-you-mean."""
    try:
        return KINDS[name]
    except KeyError:
        raise KindError(unknown_kind_message(name)) from None


def kind_of_config(config: dict[str, Any]) -> ModelKind | None:
    """The kind a ``config.json`` belongs to (by ``model_type``, else ``loran_kind``), or None."""
    model_type = config.get("model_type")
    for kind in KINDS.values():
        if model_type in kind.model_types:
            return kind
    if isinstance(config.get("loran_kind"), str) and config["loran_kind"] in KINDS:
        return KINDS[config["loran_kind"]]
    if config.get("is_encoder_decoder"):
        return KINDS["seq2seq_lm"]
    return None


def resolve_kind(section: ModelSection, *, read_config: bool = True) -> ModelKind:
    """The kind of ``model:`` (module docstring); never reaches the network.

    Args:
        section: The ``model:`` section.
        read_config: Read the checkpoint's ``config.json`` for ``auto`` when it is offline.

    Raises:
        KindError: ``model.kind`` names no kind.
    """
    if section.kind != "auto":
        return get_kind(section.kind)
    for kind in KINDS.values():
        if section.name in kind.embedded:
            return kind
    if read_config:
        from loran_search.models import read_config as read

        config = read(section)
        found = kind_of_config(config) if config is not None else None
        if found is not None:
            return found
    return KINDS[DEFAULT_KIND]


def kind_problems(section: ModelSection) -> list[tuple[str, str]]:
    """``(key, message)`` for a kind that does not fit ``model:`` (cheap, offline)."""
    if section.kind != "auto" and section.kind not in KINDS:
        return [("kind", unknown_kind_message(section.kind))]
    kind = resolve_kind(section)
    problems = []
    owner = next((k for k in KINDS.values() if section.name in k.embedded), None)
    if owner is not None and owner is not kind:
        problems.append(
            (
                "kind",
                f"model.name {section.name!r} is a {owner.name} model, but model.kind is "
                f"{kind.name!r}; set model.kind: {owner.name} (or auto).",
            )
        )
    if kind.embedded and kind.auto_class is None and section.name not in kind.embedded:
        problems.append(
            (
                "name",
                f"the {kind.name} kind loads its embedded network only ({', '.join(kind.embedded)})"
                f", not {section.name!r}.",
            )
        )
    if section.quantization not in kind.quantizations:
        problems.append(
            (
                "quantization",
                f"the {kind.name} kind takes model.quantization "
                f"{' or '.join(kind.quantizations)}, not {section.quantization!r} (bitsandbytes "
                f"quantizes transformers checkpoints only); set model.quantization: "
                f"{kind.quantizations[0]}.",
            )
        )
    return problems


def task_problems(kind: ModelKind, task: TaskSection) -> list[tuple[str, str]]:
    """``(key, message)`` for a ``task:`` the kind does not serve."""
    if task.type not in kind.tasks:
        return [
            (
                "type",
                f"the {kind.name} model kind serves task.type {', '.join(kind.tasks)}, not "
                f"{task.type!r}.",
            )
        ]
    if kind.task_names and task.name not in kind.task_names:
        return [
            (
                "name",
                f"the {kind.name} model kind serves the task {', '.join(kind.task_names)} only "
                f"(got {task.name!r}); set task.name: {kind.task_names[0]}.",
            )
        ]
    return []


def load(section: ModelSection) -> tuple[Any, Any]:
    """Load ``(model, tokenizer or None)`` through the kind's loader; the model is tagged.

    For a transformers checkpoint the config decides first (offline from a folder or the hub
    cache, else fetched as the loading would): ``auto`` takes its kind; an explicit
    ``model.kind`` that needs another transformers class (``seq2seq_lm`` for a decoder, …) is
    refused before any weight is read. ``model.loran_kind`` holds the kind's name (read by
    :func:`peft_task_type`).

    Raises:
        KindError: The checkpoint is of another kind than ``model.kind`` says.
        ModelError: See the loader (:func:`loran_search.models.load_model`).
    """
    from loran_search.models import read_config

    kind = resolve_kind(section)
    if kind.auto_class is not None and section.name not in kind.embedded:
        config = read_config(section)
        found = kind_of_config(config) if config is not None else _hub_kind(section)
        if found is not None and found is not kind and found.auto_class is not None:
            if section.kind == "auto":
                kind = found
            elif found.auto_class != kind.auto_class:
                raise KindError(
                    f"model.kind is {kind.name!r} but {section.name!r} is a {found.name} "
                    f"checkpoint (loaded by {found.auto_class}); set model.kind: {found.name} "
                    "or auto."
                )
    model, tokenizer = kind.loader(section)
    model.loran_kind = kind.name
    return model, tokenizer


def _hub_kind(section: ModelSection) -> ModelKind | None:
    """The kind of a hub or local checkpoint from its config (may download ``config.json``)."""
    try:
        from transformers import AutoConfig

        kwargs = {"revision": section.revision} if section.revision else {}
        config = AutoConfig.from_pretrained(section.name, **kwargs)
    except Exception:  # offline, gated, misspelt: the loader reports it with its own fix
        return None
    return kind_of_config(config.to_dict())


def build_task(section: ModelSection, task: TaskSection, model: Any, tokenizer: Any) -> Any:
    """The task ``task`` for a base of ``section``'s kind (module docstring).

    Raises:
        KindError: The kind does not serve ``task.type`` / ``task.name``.
    """
    kind = KINDS.get(getattr(model, "loran_kind", "")) or resolve_kind(section)
    problems = task_problems(kind, task)
    if problems:
        raise KindError("; ".join(f"task.{key}: {message}" for key, message in problems))
    return kind.tasks[task.type](task, model, tokenizer)


def peft_task_type(model: Any) -> str | None:
    """The peft ``task_type`` for an adapter on ``model`` (``CAUSAL_LM`` when untagged)."""
    name = getattr(model, "loran_kind", None)
    return KINDS[name].peft_task_type if name in KINDS else "CAUSAL_LM"


def describe(section: ModelSection) -> Any:
    """The layers of ``model:`` without loading weights (``None`` when that is not cheap).

    transformers kinds: :func:`loran_search.models.describe_model` with the kind's auto class;
    embedded networks: the architecture built on the ``meta`` device.
    """
    from loran_search.models import describe_model, module_table

    kind = resolve_kind(section)
    if kind.auto_class == "AutoModelForCausalLM":
        return describe_model(section)  # the decoders: exactly as before the kinds
    if kind.auto_class is not None:
        return describe_model(section, kind.auto_class)
    if section.name not in kind.embedded:
        return None
    import torch

    with torch.device("meta"):
        return module_table(build_network(section.name))


def default_targets(section: ModelSection) -> list[str]:
    """``adapter.target_modules`` of ``model:``'s kind when the study gives none."""
    return list(resolve_kind(section).default_targets)
