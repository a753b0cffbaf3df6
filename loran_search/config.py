"""Study YAML → typed configuration.

The file format is the public contract of DESIGN.md ("Study YAML")::

    imports: []
    study:    {name, storage, metric, direction, sampler, pruner, n_trials, seeds, baseline, ...}
    model:    {name, quantization, compute_dtype, double_quant, ...}
    task:     {name, type, max_length, train_size, eval_size, ...}
    adapter:  {target_modules, alpha, dropout, use_rslora}
    training: {max_steps, learning_rate, batch_size, eval_every, ...}
    search:   {activations, rank, params, training}

Every section is a dataclass whose fields are the allowed keys, with defaults; :func:`load_config`
reads a file, applies ``--set key.path=value`` overrides and validates the whole document,
collecting *every* error (with its YAML path and line) into one :class:`ConfigError`.

This module imports only the standard library and PyYAML (plus the registry, which imports no
torch), so ``loran-search validate`` stays fast.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


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
    """

    name: str = "smollm2-135m"
    quantization: str = "nf4"
    compute_dtype: str = "float32"
    double_quant: bool = True
    device: str = "auto"
    revision: str | None = None
    gradient_checkpointing: bool = False


@dataclass
class TaskSection:
    """``task:`` — data, prompts and metrics.

    Attributes:
        name: Embedded dataset (``bbc-news``, ``aclsum``), a hub dataset name, or a local
            ``.json``/``.jsonl``/``.csv``/``.parquet`` file or directory.
        type: ``classification`` | ``summarization``.
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
        eval_split: Split name used for evaluation.
        max_new_tokens: Generation budget (summarization).
        split_seed: Seed of the fixed train/eval split of embedded datasets.
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
    eval_split: str = "test"
    max_new_tokens: int = 48
    split_seed: int = 0


@dataclass
class AdapterSection:
    """``adapter:`` — the LoRAN adapter (rank and activation come from ``search:``).

    Attributes:
        target_modules: Module names adapted (``q_proj``, ``v_proj`` in the published setup).
        alpha: LoRA alpha; the scaling is ``s = alpha / r`` (``alpha / sqrt(r)`` with rsLoRA).
        dropout: Dropout on the adapter input.
        use_rslora: Use rank-stabilised scaling.
    """

    target_modules: list[str] = field(default_factory=lambda: ["q_proj", "v_proj"])
    alpha: float = 16.0
    dropout: float = 0.05
    use_rslora: bool = False


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
    """

    activations: list[str | InlineActivation] = field(default_factory=lambda: ["sinter"])
    rank: list[int] = field(default_factory=lambda: [8])
    params: dict[str, Any] = field(default_factory=dict)
    training: dict[str, Any] = field(default_factory=dict)


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


class ConfigError(ValueError):
    """Every problem found in a study file, each with its YAML path, line and a fix.

    Attributes:
        errors: ``(location, message)`` pairs; ``location`` reads like
            ``studies/x.yaml:12 search.params.sinter.amplitude``.
    """

    def __init__(self, errors: list[tuple[str, str]]) -> None:
        self.errors = errors
        lines = [f"{len(errors)} error(s) in the study configuration:"]
        lines += [f"  {loc}: {msg}" for loc, msg in errors]
        super().__init__("\n".join(lines))
