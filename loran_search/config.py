"""Study YAML → typed configuration.

The file format is the public contract of DESIGN.md ("Study YAML")::

    imports: []
    study:    {name, storage, metric, direction, sampler, pruner, n_trials, seeds, baseline, ...}
    model:    {name, quantization, compute_dtype, double_quant, ...}
    task:     {name, type, max_length, train_size, eval_size, ...}
    adapter:  {target_modules, alpha, dropout, use_rslora}
    training: {max_steps, learning_rate, batch_size, eval_every, ...}
    search:   {activations, rank, params, training}

Every section is a dataclass whose fields are the allowed keys, with defaults; :func:`parse_study`
reads a file (:mod:`loran_search.yamlio`: the limits and the line of every key), applies ``--set
key.path=value`` overrides and checks the whole document, collecting *every* error as
``FILE:LINE path: message + fix`` (:class:`Context`; one wording of an unknown key,
:func:`unknown_key_problems`). The study-file loader that adds the search's checks is
:func:`loran_search.search.validate.load_config`.

This module imports only the standard library and PyYAML (plus the registry, which imports no
torch), so ``loran-search validate`` stays fast.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import types
import typing
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from loran_search.errors import LoranSearchError
from loran_search.words import count

# The "X as X" names are read as ``loran_search.config.X`` by the README, tests and modules.
from loran_search.yamlio import MAX_STUDY_FILE_BYTES as MAX_STUDY_FILE_BYTES
from loran_search.yamlio import MAX_YAML_DEPTH as MAX_YAML_DEPTH
from loran_search.yamlio import MAX_YAML_NODES as MAX_YAML_NODES
from loran_search.yamlio import Context, YamlReadError, read_yaml, set_values
from loran_search.yamlio import YamlLimitError as YamlLimitError
from loran_search.yamlio import check_yaml_limits as check_yaml_limits
from loran_search.yamlio import dotted as dotted
from loran_search.yamlio import parse_yaml_value as parse_yaml_value


@dataclass
class StudySection:
    """``study:`` — the Optuna study.

    Attributes:
        name: Study name in the storage (created or resumed by name).
        storage: ``sqlite:///PATH`` (default), ``journal:PATH``, ``postgresql://…``, ``mysql://…``.
        metric: The task metric optimised (``accuracy``, ``macro_f1``, ``rougeL``, ...).
        direction: ``maximize`` or ``minimize`` (a list for multi-objective studies).
        objectives: Extra objectives for multi-objective samplers, e.g. ``[train_seconds]``.
        sampler: ``{name: tpe|random|grid|cmaes|gp|nsga2, seed: …, <sampler kwargs>}``.
        pruner: ``{name: none|median|hyperband|successive_halving|wilcoxon, <pruner kwargs>}``.
        n_trials: Number of candidate trials to complete (baseline trials come on top).
        seeds: Every configuration is trained once per seed; the trial value is the mean.
        baseline: Enqueue identity (QLoRA) trials at every searched rank, same seeds.
        save_adapters: ``best`` | ``all`` | ``none`` — which trained adapters become artifacts.
        artifacts: Directory of the artifact store (default next to the storage).
        heartbeat_interval: Seconds between worker heartbeats on RDB storages.
        grace_period: Seconds without a heartbeat after which a trial is declared stale.
        report: Write the report when ``run`` finishes.
        confirm: The confirmation phase, ``{top_k, seeds, split}`` or ``false``. After the
            search, the ``top_k`` best distinct candidate configurations (by search value,
            finite only) and the identity baseline at each of their ranks are retrained on
            ``seeds`` (disjoint from ``study.seeds``) and evaluated on ``split`` (never
            ``task.eval_split``): one trial per configuration, role ``confirm`` /
            ``confirm_baseline``. Default ``{top_k: 3, seeds: [100, 101, 102], split: test}``;
            a mapping that gives only some keys takes the others from the default, ``true`` is
            the default. ``run --no-confirm`` skips it; ``loran-search confirm`` runs it on an
            existing study. Not part of the search fingerprint.
        tune: The tuning grid of every confirmed arm (issue 21): ``{training.<key> |
            adapter.alpha: a list of values or a range {low, high, log, num}}`` (the syntax of
            ``search.params``). Every arm the confirmation takes is trained at every grid point
            on ``seeds`` and evaluated on ``task.eval_split`` (trials of role ``tune``); each is
            confirmed at its own best point. ``null`` (default): no tuning.
            :mod:`loran_search.search.tune`.
    """

    name: str = "loran-study"
    storage: str = "sqlite:///runs/loran-search.db"
    metric: str = "accuracy"
    direction: str | list[str] = "maximize"
    objectives: list[str] = field(default_factory=list)
    sampler: dict[str, Any] = field(default_factory=lambda: {"name": "tpe", "seed": 0})
    pruner: dict[str, Any] = field(default_factory=lambda: {"name": "median"})
    n_trials: int = 12
    seeds: list[int] = field(default_factory=lambda: [0])
    baseline: bool = True
    save_adapters: str = "best"
    artifacts: str | None = None
    heartbeat_interval: int = 60
    grace_period: int | None = None
    report: bool = True
    confirm: dict[str, Any] | bool = field(
        default_factory=lambda: {"top_k": 3, "seeds": [100, 101, 102], "split": "test"}
    )
    tune: dict[str, Any] | None = None


@dataclass
class ModelSection:
    """``model:`` — the frozen base model.

    Attributes:
        name: Embedded asset name (``smollm2-135m``, ``glassllm``), a Hugging Face hub id
            (``meta-llama/Llama-2-7b-hf``) or a local directory.
        quantization: ``nf4`` | ``fp4`` | ``int8`` | ``none``.
        compute_dtype: ``float32`` | ``bfloat16`` | ``float16``.
        double_quant: bitsandbytes double quantization of the 4-bit scales.
        device: ``auto`` (CUDA when present, else CPU), ``cpu`` or ``cuda[:N]``.
        revision: Hub revision for hub ids.
        gradient_checkpointing: Trade compute for activation memory.
        kind: The model kind (:mod:`loran_search.kinds`: ``causal_lm``, ``seq2seq_lm``,
            ``falcon``, ``digits_cnn``, ``digits_vit``, ``cartpole_mlp``) or ``auto``: from
            the embedded name, else the checkpoint's ``config.json`` when it can be read
            offline, else ``causal_lm``.
    """

    name: str = "smollm2-135m"
    quantization: str = "nf4"
    compute_dtype: str = "float32"
    double_quant: bool = True
    device: str = "auto"
    revision: str | None = None
    gradient_checkpointing: bool = False
    kind: str = "auto"


@dataclass
class TaskSection:
    """``task:`` — data, prompts and metrics.

    Attributes:
        name: Embedded dataset (``bbc-news``, ``aclsum``), a hub dataset name, or a local
            ``.json``/``.jsonl``/``.csv``/``.parquet`` file or directory.
        type: ``classification`` | ``summarization`` | ``control`` (a policy; which types a
            model serves: :mod:`loran_search.kinds`).
        max_length: Token budget of one example (prompt + answer); truncation is reported.
        train_size: Training examples drawn (seeded) from the train split; ``null`` = all.
        eval_size: Evaluation examples drawn (seeded) from the eval split; ``null`` = all.
        text_column: Input text column (classification) or document column (summarization).
        label_column: Label column (classification).
        summary_column: Target column (summarization); for ``aclsum`` one of
            ``challenge``/``approach``/``outcome``.
        label_words: ``{label: word}`` — the word the model is trained to answer for each label.
        prompt: Prompt template with ``{text}``.
        train_split: Split name used for training.
        eval_split: Split the run evaluates on, and so the split the search sees: ``val``
            (default). The confirmation evaluates on ``test`` (``study.confirm.split``), so
            the search never sees the test set. Embedded ``bbc-news`` and local single files
            are split train/val/test (``test`` 20 %, ``val`` 1/8 of the rest, stratified,
            seeded by ``split_seed``); a folder or hub dataset without a validation split
            gets ``val`` carved from its train split (said in the run's data notes).
        max_new_tokens: Generation budget (summarization).
        split_seed: Seed of the fixed train/val/test split of embedded datasets and files.
        env: Environment settings of a ``control`` task (``cartpole``): the CartPole constants
            to change (``gravity``, ``masscart``, ``masspole``, ``length``, ``force_mag``) and
            ``max_episode_steps`` (:mod:`loran_search.tasks.control`).
    """

    name: str = "bbc-news"
    type: str = "classification"
    max_length: int = 128
    train_size: int | None = 512
    eval_size: int | None = 256
    text_column: str | None = None
    label_column: str | None = None
    summary_column: str | None = None
    label_words: dict[str, str] | None = None
    prompt: str | None = None
    train_split: str = "train"
    eval_split: str = "val"
    max_new_tokens: int = 48
    split_seed: int = 0
    env: dict[str, float] | None = None


@dataclass
class AdapterSection:
    """``adapter:`` — the LoRAN adapter (rank and activation come from ``search:``).

    Attributes:
        target_modules: Module names adapted (``q_proj``, ``v_proj`` in the published setup).
        alpha: LoRA alpha; the scaling is ``s = alpha / r`` (``alpha / sqrt(r)`` with rsLoRA).
        dropout: Dropout on the adapter input.
        use_rslora: Use rank-stabilised scaling.
        normalize: ``null`` (default) or ``slope``: divide the LoRAN scale by ``f′(0)`` of the
            activation, ``s = alpha/(r·f′(0))``, so that every activation takes LoRA's first
            step (issue 21); refused for an activation with ``f′(0) = 0``.
    """

    target_modules: list[str] = field(default_factory=lambda: ["q_proj", "v_proj"])
    alpha: float = 16.0
    dropout: float = 0.05
    use_rslora: bool = False
    normalize: str | None = None


@dataclass
class TrainingSection:
    """``training:`` — one fine-tuning run.

    Attributes:
        max_steps: Optimizer steps.
        learning_rate: Peak AdamW learning rate.
        batch_size: Examples per micro-batch.
        grad_accum: Micro-batches per optimizer step.
        warmup_steps: Linear warm-up steps.
        schedule: ``cosine`` | ``linear`` | ``constant`` after warm-up.
        weight_decay: AdamW weight decay.
        max_grad_norm: Gradient clipping norm (``null`` disables clipping).
        eval_every: Evaluate every N steps (intermediate values for pruning); 0 = only at the end.
        zero_shot: Evaluate the unadapted model before training.
        divergence_factor: Loss above ``factor ×`` the initial loss counts as divergence.
        spike_factor: A loss spike is a step loss above ``factor ×`` the running median.
        threads: torch CPU threads (``null`` leaves torch's default).
    """

    max_steps: int = 60
    learning_rate: float = 2.0e-4
    batch_size: int = 8
    grad_accum: int = 1
    warmup_steps: int = 5
    schedule: str = "cosine"
    weight_decay: float = 0.0
    max_grad_norm: float | None = 1.0
    eval_every: int = 20
    zero_shot: bool = False
    divergence_factor: float = 10.0
    spike_factor: float = 2.0
    threads: int | None = None


@dataclass
class InlineActivation:
    """An activation defined in the study by a safe formula (registered for this study only)."""

    name: str
    expr: str
    params: dict[str, Any] = field(default_factory=dict)
    family: str = "custom"


#: The keys of an inline activation: the fields of :class:`InlineActivation`.
INLINE_KEYS = tuple(f.name for f in dataclasses.fields(InlineActivation))


@dataclass
class SearchSection:
    """``search:`` — the search space.

    Attributes:
        activations: Registry names, family names, or inline formula definitions.
        rank: Rank choices.
        params: ``<activation>.<param>`` → a range ``{low, high, log, step}``, a list of
            choices, or a plain value (fixed).
        training: Optional training hyperparameters to search, e.g.
            ``{learning_rate: {low: 1e-5, high: 1e-3, log: true}}``.
        skip_inert: Do not train a candidate whose non-linearity, predicted from the trained
            baseline's ``P = B·A`` at the same rank, is below the inert threshold
            (``loran_search.adapters.telemetry.INERT_THRESHOLD``): it would be LoRA in all but
            name. Its trial is recorded FAIL ``inert: predicted ν = … < threshold …`` and
            counts toward ``n_trials`` like a diverged one. Default ``false``: the prediction is
            only printed.
        methods: The study's arms (issue 13): ``loran`` (the activations above) and peers
            built by peft's own tuners — ``lora``, ``rslora``, ``dora``, ``hira``, ``peanut``,
            ``delora`` (:mod:`loran_search.methods`); their settings are ``search.params``
            keys ``<method>.<setting>``. Default ``[loran]``: no ``method`` trial param.
        match: ``rank`` (default: every arm at the searched rank) or ``params`` (each peer at
            the rank whose trainable parameters are closest to LoRAN's at the searched rank).

        forms: A grammar of activation forms to search (``{template, leaves, operators,
            depth, params, require}``; :mod:`loran_search.search.forms`), alone or beside
            ``activations`` (which then defaults to none).
    """

    activations: list[str | InlineActivation] = field(default_factory=lambda: ["sinter"])
    rank: list[int] = field(default_factory=lambda: [8])
    params: dict[str, Any] = field(default_factory=dict)
    training: dict[str, Any] = field(default_factory=dict)
    skip_inert: bool = False
    methods: list[str] = field(default_factory=lambda: ["loran"])
    match: str = "rank"

    forms: dict[str, Any] | None = None


@dataclass
class StudyConfig:
    """A whole study file.

    Attributes:
        path: File it was read from (``None`` when built in code).
        imports: Modules imported first so their ``@register_activation`` calls run.
    """

    study: StudySection = field(default_factory=StudySection)
    model: ModelSection = field(default_factory=ModelSection)
    task: TaskSection = field(default_factory=TaskSection)
    adapter: AdapterSection = field(default_factory=AdapterSection)
    training: TrainingSection = field(default_factory=TrainingSection)
    search: SearchSection = field(default_factory=SearchSection)
    imports: list[str] = field(default_factory=list)
    path: str | None = None


class ConfigError(LoranSearchError, ValueError):
    """Every problem found in a study file, each with its YAML path, line and a fix.

    Attributes:
        errors: ``(location, message)`` pairs; ``location`` reads like
            ``studies/x.yaml:12 search.params.sinter.amplitude``.
    """

    def __init__(self, errors: list[tuple[str, str]]) -> None:
        self.errors = errors
        lines = [f"{count(len(errors), 'error')} in the study configuration:"]
        lines += [f"  {loc}: {msg}" for loc, msg in errors]
        super().__init__("\n".join(lines))


# ---------------------------------------------------------------------------------------------
# Loading and validation
# ---------------------------------------------------------------------------------------------

SECTIONS: dict[str, type] = {
    "study": StudySection,
    "model": ModelSection,
    "task": TaskSection,
    "adapter": AdapterSection,
    "training": TrainingSection,
    "search": SearchSection,
}
TOP_LEVEL_KEYS = ("imports", *SECTIONS)
SAVE_ADAPTERS = ("best", "all", "none")
#: The longest ``study.name``: it becomes a folder name (``reports/<name>``,
#: ``<artifacts>/adapters/<name>``), and file systems allow 255 bytes per name; 100 characters
#: (at most 200 bytes in UTF-8) leave room for a suffix such as the ``-2`` of a new study.
STUDY_NAME_MAX_CHARS = 100
#: Besides letters and digits, the characters a study name may hold (see study_name_problem).
STUDY_NAME_PUNCTUATION = "_-."
STUDY_NAME_MAX_BYTES = 200
#: Seeds go to numpy (``np.random.seed`` takes 0 … 2³² − 1) and torch.
SEED_MAX = 2**32 - 1
DIRECTIONS = ("maximize", "minimize")
COST_OBJECTIVES = ("train_seconds", "peak_memory_mb", "trainable_params")
_CHOICES: dict[tuple[str, str], tuple[str, ...]] = {
    ("study", "save_adapters"): SAVE_ADAPTERS,
    ("model", "quantization"): ("nf4", "fp4", "int8", "none"),
    ("model", "compute_dtype"): ("float32", "bfloat16", "float16"),
    ("task", "type"): ("classification", "summarization", "control"),
    ("training", "schedule"): ("cosine", "linear", "constant"),
    ("search", "match"): ("rank", "params"),
}
# (section, key) -> (minimum, inclusive?) for numeric fields, checked when present.
_MINIMUM: dict[tuple[str, str], tuple[float, bool]] = {
    ("study", "n_trials"): (0, True),
    ("study", "heartbeat_interval"): (1, True),
    ("task", "max_length"): (8, True),
    ("task", "train_size"): (1, True),
    ("task", "eval_size"): (1, True),
    ("task", "max_new_tokens"): (1, True),
    ("adapter", "alpha"): (0, False),
    ("adapter", "dropout"): (0, True),
    ("training", "max_steps"): (1, True),
    ("training", "learning_rate"): (0, False),
    ("training", "batch_size"): (1, True),
    ("training", "grad_accum"): (1, True),
    ("training", "warmup_steps"): (0, True),
    ("training", "weight_decay"): (0, True),
    ("training", "max_grad_norm"): (0, False),
    ("training", "eval_every"): (0, True),
    ("training", "divergence_factor"): (1, False),
    ("training", "spike_factor"): (1, False),
    ("training", "threads"): (1, True),
}


def training_key_kind(key: str) -> type | None:
    """``int`` or ``float`` for a numeric ``training:`` key (searchable), else ``None``."""
    hints = typing.get_type_hints(TrainingSection)
    tp = hints.get(key)
    if tp is None:
        return None
    args = set(typing.get_args(tp)) - {type(None)} or {tp}
    if args == {int}:
        return int
    if args <= {int, float} and float in args:
        return float
    return None


def did_you_mean(word: Any, options: Sequence[str]) -> str:
    """`` Did you mean 'x'?`` for the closest option, or an empty string."""
    close = difflib.get_close_matches(str(word), list(options), n=1, cutoff=0.6)
    return f" Did you mean '{close[0]}'?" if close else ""


def unknown_key_problems(
    mapping: Mapping[Any, Any],
    allowed: Sequence[str],
    where: str,
    path: Sequence[Any] = (),
    *,
    hint: str = "",
) -> list[tuple[tuple[Any, ...], str]]:
    """The one wording of an unknown key: a problem for every key of ``mapping`` not allowed.

    Each message reads ``Unknown key 'KEY' WHERE. Did you mean 'X'? Valid keys: A, B. HINT``
    (the did-you-mean only when a valid key is close). Every unknown key is reported, in the
    mapping's order.

    Args:
        mapping: The mapping as written in the study file.
        allowed: Its valid keys, in the order they are listed.
        where: Where the mapping is, e.g. ``in `study.confirm:``` or ``at the top level``.
        path: The mapping's key path; each problem's path is ``(*path, key)``, ready for
            :meth:`Context.err` (or for a caller that prefixes its own path).
        hint: A sentence added at the end, e.g. ``Or write `confirm: false`.``

    Returns:
        ``(key path, message)`` pairs; empty when every key is allowed.
    """
    valid = f"Valid keys: {', '.join(allowed)}." + (f" {hint}" if hint else "")
    return [
        ((*path, key), f"Unknown key '{key}' {where}.{did_you_mean(key, allowed)} {valid}")
        for key in mapping
        if key not in allowed
    ]


def _override_path(key: str) -> tuple[str, ...]:
    """Where ``--set key=…`` writes (see :func:`apply_overrides`)."""
    parts = key.split(".")
    if parts[0] in TOP_LEVEL_KEYS:
        if parts[:2] == ["search", "params"] and len(parts) >= 4:
            return ("search", "params", f"{parts[2]}.{parts[3]}", *parts[4:])
        return tuple(parts)
    if len(parts) >= 2:  # shorthand: <activation>.<param>[.<range key>] → search.params
        return ("search", "params", f"{parts[0]}.{parts[1]}", *parts[2:])
    raise ValueError(
        f"`--set {key}=…`: '{key}' is neither a section key (section.key, sections: "
        f"{', '.join(TOP_LEVEL_KEYS)}) nor an activation parameter (<activation>.<param>)."
        f"{did_you_mean(key, TOP_LEVEL_KEYS)}"
    )


def apply_overrides(data: dict[str, Any], overrides: Sequence[str], ctx: Context) -> None:
    """Apply ``--set key.path=value`` overrides in place (:func:`loran_search.yamlio.set_values`).

    ``key.path`` is a dotted path from the top (``training.max_steps``,
    ``study.sampler.name``). Shorthand: a path whose first part is not a section name is an
    activation parameter, ``sinter.amplitude=1e-3`` meaning ``search.params.sinter.amplitude``
    (a third part addresses a range key: ``sinter.amplitude.high=1e-2``).
    """
    set_values(data, overrides, ctx, _override_path)


def _describe_type(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_describe_type(a) for a in typing.get_args(tp))
    if origin is list:
        return f"a list of {_describe_type(typing.get_args(tp)[0]).removeprefix('a ')}s"
    if origin is dict:
        return "a mapping"
    return {
        int: "an integer",
        float: "a number",
        str: "a string",
        bool: "true or false",
        type(None): "null",
    }.get(tp, getattr(tp, "__name__", str(tp)))


def _coerce(value: Any, tp: Any) -> tuple[bool, Any]:
    """Check ``value`` against the annotation ``tp``; return (ok, converted value)."""
    origin = typing.get_origin(tp)
    if tp is Any:
        return True, value
    if origin in (typing.Union, types.UnionType):
        for arg in typing.get_args(tp):
            ok, conv = _coerce(value, arg)
            if ok:
                return True, conv
        return False, value
    if tp is type(None):
        return value is None, None
    if tp is bool:
        return isinstance(value, bool), value
    if tp is int:
        return isinstance(value, int) and not isinstance(value, bool), value
    if tp is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        return ok, float(value) if ok else value
    if tp is str:
        return isinstance(value, str), value
    if origin is list:
        if not isinstance(value, list):
            return False, value
        (arg,) = typing.get_args(tp)
        out = []
        for item in value:
            ok, conv = _coerce(item, arg)
            if not ok:
                return False, value
            out.append(conv)
        return True, out
    if origin is dict:
        if not isinstance(value, dict):
            return False, value
        _, varg = typing.get_args(tp)
        out_d = {}
        for k, v in value.items():
            ok, conv = _coerce(v, varg)
            if not ok:
                return False, value
            out_d[k] = conv
        return True, out_d
    if dataclasses.is_dataclass(tp):
        return isinstance(value, dict), value
    return isinstance(value, tp), value


_LIST_FIELDS_ACCEPT_SCALAR = {("study", "seeds"), ("search", "rank"), ("search", "activations")}
_NON_EMPTY: dict[tuple[str, str], str] = {
    ("adapter", "target_modules"): "name the linear layers to adapt, e.g. [q_proj, v_proj]",
}


def non_finite(value: Any, path: tuple[Any, ...] = ()) -> list[tuple[tuple[Any, ...], float]]:
    """Every NaN or infinite number in ``value`` (nested lists and mappings too) with its path.

    YAML reads ``.nan``, ``.inf`` and ``1e999`` as such floats; no setting of a study means them.
    The walk is iterative (an explicit stack, in document order), so no nesting depth can
    exhaust Python's recursion limit; an object met twice on one branch (a recursive
    structure) is not walked again.
    """
    hits: list[tuple[tuple[Any, ...], float]] = []
    stack: list[tuple[Any, tuple[Any, ...], frozenset[int]]] = [(value, path, frozenset())]
    while stack:
        item, where, above = stack.pop()
        if isinstance(item, float) and not math.isfinite(item):
            hits.append((where, item))
        elif isinstance(item, (dict, list)) and id(item) not in above:
            inner = above | {id(item)}
            pairs = item.items() if isinstance(item, dict) else enumerate(item)
            stack.extend((v, (*where, k), inner) for k, v in reversed(list(pairs)))
    return hits


def non_finite_message(value: float) -> str:
    """The error for a NaN or infinite number where a number is expected."""
    spelled = ".nan" if math.isnan(value) else (".inf" if value > 0 else "-.inf")
    return (
        f"A number must be finite, but got {spelled} ({value}); write a real number "
        "(or null where the key allows it)."
    )


def study_name_problem(name: str, *, strict: bool = True) -> str | None:
    r"""Why ``name`` cannot be a study name, or ``None`` when it is safe.

    The name becomes a folder (``reports/<name>``, ``<artifacts>/adapters/<name>``), so it may
    not contain a path separator (``/``, ``\``), ``..`` or control characters, may not be
    only dots or blank, and is at most :data:`STUDY_NAME_MAX_CHARS` characters
    (:data:`STUDY_NAME_MAX_BYTES` bytes in UTF-8).

    ``strict`` (a study file's ``study.name``): it is also written into reports, commands and
    exported code, so it is made of letters and digits (any script, ``str.isalnum``), ``_``,
    ``-`` and ``.`` only, and starts with a letter, a digit or ``_`` (no leading ``-`` that
    reads as a flag, no leading ``.`` that hides the folder). ``strict=False`` keeps the
    folder-safety rules alone, for a name typed to read an existing study
    (``report --study NAME``).
    """
    fix = " Use letters, digits, '-', '_' or '.', e.g. sinter-amplitude-2."
    if not name.strip():
        return "`name` is empty; give the study a name."
    bad = sorted({c for c in name if c in "/\\"})
    if bad:
        return (
            f"`name` {name!r} contains a path separator ({' '.join(bad)}); the name becomes a "
            f"folder (reports/<name>) and may not point elsewhere.{fix}"
        )
    if ".." in name or not name.strip("."):
        return f"`name` {name!r} contains '..' (or is only dots), which names another folder.{fix}"
    ctrl = next((c for c in name if ord(c) < 32 or 127 <= ord(c) < 160), None)
    if ctrl is not None:
        return f"`name` {name!r} contains the control character {ctrl!r}.{fix}"
    if name != name.strip():
        return f"`name` {name!r} starts or ends with white space; remove it."
    n_bytes = len(name.encode("utf-8", "surrogatepass"))
    if len(name) > STUDY_NAME_MAX_CHARS or n_bytes > STUDY_NAME_MAX_BYTES:
        return (
            f"`name` is {len(name)} characters ({n_bytes} bytes in UTF-8); at most "
            f"{STUDY_NAME_MAX_CHARS} characters and {STUDY_NAME_MAX_BYTES} bytes are allowed, "
            "because the name becomes a folder name and file systems allow 255 bytes per name. "
            "Shorten it."
        )
    if not strict:
        return None
    bad = sorted({c for c in name if not (c.isalnum() or c in STUDY_NAME_PUNCTUATION)})
    if bad:
        shown = " ".join(repr(c) for c in bad[:8])
        return (
            f"`name` {name!r} contains {shown}: a study name is written into folders, reports, "
            "commands and exported code, so it is made of letters, digits, '_', '-' and '.' "
            f"only.{fix}"
        )
    if not (name[0].isalnum() or name[0] == "_"):
        return f"`name` {name!r} starts with {name[0]!r}; start it with a letter or a digit.{fix}"
    return None


def check_fields(
    section: str, raw: dict[str, Any], ctx: Context, skip: Sequence[str] = ()
) -> dict[str, Any]:
    """Unknown keys (with did-you-mean) and types of one section; returns converted values."""
    cls = SECTIONS[section]
    hints = typing.get_type_hints(cls)
    ctx.err_each(unknown_key_problems(raw, list(hints), f"in `{section}:`", (section,)))
    values: dict[str, Any] = {}
    for key, value in raw.items():
        path = (section, key)
        if key not in hints:
            continue
        bad_numbers = non_finite(value, path)
        for where, number in bad_numbers:
            ctx.err(where, non_finite_message(number))
        if key in skip:  # the section's own check skips the entries reported here
            values[key] = value
            continue
        if bad_numbers:
            continue
        if (section, key) in _LIST_FIELDS_ACCEPT_SCALAR and not isinstance(value, list):
            value = [value]
        ok, conv = _coerce(value, hints[key])
        if not ok:
            ctx.err(path, f"`{key}` must be {_describe_type(hints[key])}, but got {value!r}.")
            continue
        values[key] = conv
    for key, value in values.items():
        if (section, key) in _NON_EMPTY and not value:
            ctx.err((section, key), f"`{key}` is empty; {_NON_EMPTY[(section, key)]}.")
        if (section, key) in _CHOICES and value not in _CHOICES[(section, key)]:
            opts = _CHOICES[(section, key)]
            ctx.err(
                (section, key),
                f"`{key}` must be one of {', '.join(opts)}, but got {value!r}."
                f"{did_you_mean(value, opts)}",
            )
        if (section, key) in _MINIMUM and isinstance(value, (int, float)):
            low, inclusive = _MINIMUM[(section, key)]
            if value < low or (not inclusive and value == low):
                rel = ">=" if inclusive else ">"
                ctx.err((section, key), f"`{key}` must be {rel} {low}, but got {value!r}.")
    return values


def check_study_section(
    raw: dict[str, Any], sections: dict[str, dict[str, Any]], ctx: Context
) -> dict[str, Any]:
    """``study:``: keys and types, then name, storage URL, objectives, directions, seeds.

    The sampler and pruner are checked by :mod:`loran_search.search.validate` (search owns
    their table).
    """
    values = check_fields("study", raw, ctx)
    from loran_search.storage import StorageURLError, parse_storage_url

    if "name" in values:
        problem = study_name_problem(values["name"])
        if problem:
            ctx.err(("study", "name"), problem)
    if "storage" in values:
        try:
            parse_storage_url(values["storage"])
        except StorageURLError as err:
            ctx.err(("study", "storage"), str(err))
    objectives = values.get("objectives", [])
    for i, o in enumerate(objectives):
        if o not in COST_OBJECTIVES:
            ctx.err(
                ("study", "objectives", i),
                f"Unknown objective {o!r}.{did_you_mean(o, COST_OBJECTIVES)} Extra objectives "
                f"(besides study.metric) are cost figures: {', '.join(COST_OBJECTIVES)}.",
            )
    direction = values.get("direction", "maximize")
    dirs = direction if isinstance(direction, list) else [direction]
    for i, d in enumerate(dirs):
        if d not in DIRECTIONS:
            p = ("study", "direction", i) if isinstance(direction, list) else ("study", "direction")
            ctx.err(p, f"A direction must be maximize or minimize, got {d!r}.")
    if isinstance(direction, list) and len(direction) != 1 + len(objectives):
        ctx.err(
            ("study", "direction"),
            f"{len(direction)} directions for {1 + len(objectives)} objectives (study.metric + "
            f"study.objectives {objectives}); give one direction per objective, or one string "
            "for the metric (costs are then minimised).",
        )
    seeds = values.get("seeds", [0])
    if not seeds:
        ctx.err(("study", "seeds"), "`seeds` is empty; give at least one seed, e.g. [0].")
    elif len(set(seeds)) != len(seeds):
        ctx.err(("study", "seeds"), f"`seeds` repeats a seed: {seeds}.")
    for i, seed in enumerate(seeds):
        if not 0 <= seed <= SEED_MAX:
            ctx.err(
                ("study", "seeds", i),
                f"Seed {seed} is outside 0 … 2³² − 1 ({SEED_MAX}), which numpy and torch "
                "accept; use a smaller non-negative seed.",
            )
    hb, grace = values.get("heartbeat_interval"), values.get("grace_period")
    if isinstance(hb, int) and isinstance(grace, int) and grace <= hb:
        ctx.err(
            ("study", "grace_period"),
            f"`grace_period` ({grace}) must exceed `heartbeat_interval` ({hb}), or a live "
            "worker's trial would be declared stale; use at least twice the interval.",
        )
    return values


def _validate(
    data: Any, ctx: Context, path: str | None, checks: Mapping[str, SectionCheck]
) -> StudyConfig | None:
    """Check a parsed document; return the config when ``ctx`` collected no error."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        ctx.err(
            (),
            f"A study file is a mapping of sections ({', '.join(TOP_LEVEL_KEYS)}), "
            f"but this one is a {type(data).__name__}.",
        )
        return None
    ctx.err_each(unknown_key_problems(data, TOP_LEVEL_KEYS, "at the top level"))
    imports = data.get("imports") or []
    if not isinstance(imports, list) or not all(isinstance(m, str) for m in imports):
        ctx.err(("imports",), f"`imports` must be a list of module names, got {imports!r}.")
        imports = []
    from loran_search.activations import ActivationError, load_plugins

    for i, mod in enumerate(imports):
        try:
            load_plugins([mod])
        except ActivationError as err:
            ctx.err(("imports", i), str(err))
        except (Exception, SystemExit) as err:  # the module's own code failed at import
            ctx.err(
                ("imports", i),
                f"Importing the activation plugin module {mod!r} raised "
                f"{type(err).__name__}: {err}. Fix the module (run `python -c 'import {mod}'` "
                "to see the traceback) or remove it from imports.",
            )
    sections: dict[str, dict[str, Any]] = {}
    for name in SECTIONS:
        raw = data.get(name)
        if raw is None:
            raw = {}
        if not isinstance(raw, dict):
            ctx.err((name,), f"`{name}:` must be a mapping of keys, got {raw!r}.")
            raw = {}
        sections[name] = raw
    values: dict[str, dict[str, Any]] = {}
    for name in SECTIONS:
        check = checks.get(name)
        if check is None:
            values[name] = check_fields(name, sections[name], ctx)
        else:
            values[name] = check(sections[name], values, ctx)
    study, search = values["study"], values["search"]
    if ctx.errors:
        return None
    return StudyConfig(
        study=StudySection(**study),
        model=ModelSection(**sections["model"]),
        task=TaskSection(**sections["task"]),
        adapter=AdapterSection(**sections["adapter"]),
        training=TrainingSection(**sections["training"]),
        search=SearchSection(**search),
        imports=list(imports),
        path=path,
    )


#: A section's own check: ``(raw section, values of the sections checked so far, context)`` →
#: the section's checked values. Sections are checked in :data:`SECTIONS` order.
SectionCheck = Callable[[dict[str, Any], dict[str, dict[str, Any]], Context], dict[str, Any]]


def parse_study(
    path: str | Path | None,
    overrides: Sequence[str] = (),
    *,
    text: str | None = None,
    checks: Mapping[str, SectionCheck] | None = None,
    final: Callable[[StudyConfig, Context], None] | None = None,
) -> tuple[StudyConfig | None, list[tuple[str, str]]]:
    """Read a study file (or ``text``), apply overrides, check it; return config and errors.

    This module knows the schema: sections, keys, types, choices and minimums, the YAML line
    of every key, and ``--set`` overrides. A section whose meaning lives elsewhere brings its
    own check in ``checks`` (the search section and the sampler/pruner of ``study:`` are checked
    by :mod:`loran_search.search.validate`, whose :func:`~loran_search.search.validate.load_config`
    is the loader to use); a section without one gets the schema checks only. ``final``
    checks the built config as a whole (what no single section knows, e.g. the size of the
    grid), only when every section passed.

    Returns:
        ``(config, errors)``: the config is ``None`` when any error was found; each error is
        ``(location, message)`` with ``location`` like ``FILE:LINE dotted.path``.
    """
    checks = dict(checks or {})
    checks.setdefault("study", check_study_section)
    ctx = Context(str(path) if path is not None else "<config>")
    try:
        data = read_yaml(ctx, text)
    except YamlReadError as err:
        return None, [(err.location, str(err))]
    if data is None or data == {}:
        what = "file" if path is not None else "text"
        return None, [
            (
                ctx.file,
                f"The study {what} is empty (nothing but comments or blank lines), which would "
                "run a default study; start from studies/smoke.yaml (copy it and edit).",
            )
        ]
    if isinstance(data, dict):
        apply_overrides(data, overrides, ctx)
    cfg = _validate(data, ctx, None if path is None else str(path), checks)
    if cfg is not None and final is not None:
        final(cfg, ctx)
        if ctx.errors:
            cfg = None
    return cfg, ctx.errors
