"""One fine-tuning run: config in, metrics + stability telemetry + cost out.

:func:`run_training` takes a :class:`~loran_search.config.StudyConfig` and one point of the search
space (activation, its parameters, rank, seed), trains a LoRAN adapter on the task and returns a
:class:`RunResult`. ``loran-search train FILE`` (:func:`cmd_train`) does the same from a study
YAML for its first configuration.

Optimisation. AdamW on the adapter parameters only; the learning rate at optimizer step
``k = 1..K`` (``K = max_steps``, ``W = warmup_steps``, ``η = learning_rate``) is

* warm-up, ``k ≤ W``: ``η·k/W``;
* then, with ``u = (k − W)/(K − W)``: cosine ``η·½(1 + cos(π·u))``, linear ``η·(1 − u)``, or
  constant ``η``.

One optimizer step averages ``grad_accum`` micro-batches of ``batch_size`` examples; the step
loss is the mean of the micro-batch losses (each a mean over answer tokens); the gradient is
clipped to total L2 norm ``max_grad_norm`` (the *pre-clipping* norm is recorded).

Stability telemetry (``RunResult.stability``):

* **Divergence**: the run stops with ``status = "diverged"`` at the first step whose loss or
  gradient norm is not finite, or whose loss exceeds ``divergence_factor × L₁`` (``L₁`` = loss of
  step 1, measured before any update). A diverged run is a result (the CLI exits 0), its
  ``metrics`` are empty.
* **Loss spike**: step ``k`` is a spike when at least 3 earlier steps exist and
  ``L_k > spike_factor × median(L_{k−10}, …, L_{k−1})`` (the median of up to 10 previous step
  losses). ``loss_spikes`` counts them.
* ``grad_norm_max``: largest pre-clipping gradient norm; ``final_train_loss``: mean loss of the
  last ``min(10, K)`` steps.

Cost (``RunResult.cost``): ``train_seconds`` (training loop wall time, evaluations excluded),
``eval_seconds``, ``trainable_params``, ``seconds_per_step``, and ``peak_memory_mb``: on CUDA
``torch.cuda.max_memory_allocated`` during the run; on CPU the process's peak resident set size
(``getrusage(RUSAGE_SELF).ru_maxrss``) at the end of the run — it includes the base model and,
being a process high-water mark, any earlier larger peak; ``memory_growth_mb`` is how much that
peak rose during this run.

Evaluation and per-example outcomes. A run evaluates on ``eval_split`` (keyword, default
``task.eval_split`` = ``val``; the confirmation passes ``test``). ``RunResult.examples`` holds
the final evaluation's outcome for every example, each with a stable ``id`` (the same example
has the same id in every run and process: :mod:`loran_search.tasks.data`): classification
``{id, gold, pred, correct, gold_logprob}``, summarization ``{id, rouge1, rouge2, rougeL,
loss}``. Every mean metric equals the mean of its per-example values (``accuracy =
mean(correct)``, ``rougeL = mean(rougeL_i)``); the continuous companions ``gold_logprob_mean``
and ``summary_loss`` are in ``metrics`` too (:mod:`loran_search.tasks.metrics`).

Mechanism (``RunResult.mechanism``), measured once at the end of every run (diverged included)
on the trained factors of every LoRAN layer, identity included: the median/maximum over layers
of :func:`loran_search.adapters.telemetry.layer_mechanism`'s figures
(:func:`~loran_search.adapters.telemetry.summarize`: ``nonlinearity_median`` = median of
``ν = ‖f(P) − P‖_F/‖P‖_F``, ``p_rms_*``, ``stable_rank_*``, ``inert``, …), ``layers`` (the
per-layer figures, each with its ``module``), ``p_quantiles`` (257 quantiles of the pooled
entries of every ``P = B·A``, :func:`p_quantiles`), ``p_entries``, ``nonlinearity_pooled``
(``ν`` of those pooled entries) and ``seconds`` (the telemetry's own cost).
:func:`predict_nonlinearity_from_quantiles` predicts ``ν`` of another ``f`` at that ``P`` from
the quantiles alone. A layer whose figures cannot be computed gets ``nan`` figures (``null`` in
JSON), never an exception.

Measured overhead per run (CPU, one thread, shared 2-core machine): glassllm (8 layers, q_proj
128 × 128 and v_proj 64 × 128, r = 4): **≈ 0.01 s**; SmolLM2-135M (60 layers, 30 × q_proj
576 × 576 + v_proj 192 × 576, r = 8, 13.3 M pooled entries): **≈ 1.0 s** in a real NF4 run with
Sinter at its defaults (0.9 s on the same shapes from random factors: 0.37 s the per-layer
figures, 0.55 s the exact quantiles) — half of one 4 × 64-token training step there (≈ 2 s;
≈ 4 s at the studies' sizes), once per run.

Caching. The base model (keyed by the ``model:`` section) and the tokenized task (keyed by the
``model:`` and ``task:`` sections) stay in memory for the next run in the process; zero-shot
metrics are cached with the task. After every run — completed, diverged, pruned or crashed — the
adapter is removed with peft's ``unload()``, so the cached base is exactly the pretrained model.
"""

from __future__ import annotations

import json
import math
import random
import statistics
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from loran_search.config import SEED_MAX, AdapterSection, StudyConfig, TrainingSection, dotted
from loran_search.errors import LoranSearchError
from loran_search.record import is_spike
from loran_search.words import plural

SCHEDULES = ("cosine", "linear", "constant")


class TrainingError(LoranSearchError, ValueError):
    """A bad training configuration, reported before any training."""


@dataclass
class RunResult:
    """The outcome of one run (``to_dict()`` is the ``train --format json`` output).

    Attributes:
        status: ``completed`` or ``diverged``.
        metrics: Final task metrics (empty when diverged).
        zero_shot: Metrics of the unadapted model when ``training.zero_shot``, else ``None``.
        stability: ``{diverged, diverged_at_step, grad_norm_max, loss_spikes, final_train_loss}``.
        cost: ``{train_seconds, eval_seconds, seconds_per_step, peak_memory_mb,
            memory_growth_mb, peak_memory_kind, trainable_params, model_load_seconds}``.
        history: One dict per optimizer step: ``step, loss, grad_norm, lr`` plus the eval
            metrics at evaluation steps.
        adapter_path: Where the adapter was saved, if it was.
        data: Example counts and truncation counts (``task.max_length`` cuts, never silent),
            ``eval_split`` and ``notes`` (how the splits were made).
        run: What ran: activation, params, rank, seed, model and task names.
        eval_split: The split evaluated (its name as found: ``val``, ``test``, …).
        examples: One dict per evaluation example of the final evaluation, with its stable
            ``id`` (module docstring); empty when diverged.
        mechanism: The adapter's mechanism figures (module docstring); ``{}`` only when the
            model held no LoRAN layer.
    """

    status: str
    metrics: dict[str, float]
    zero_shot: dict[str, float] | None
    stability: dict[str, Any]
    cost: dict[str, Any]
    history: list[dict[str, Any]]
    adapter_path: str | None = None
    data: dict[str, Any] = field(default_factory=dict)
    run: dict[str, Any] = field(default_factory=dict)
    eval_split: str = ""
    examples: list[dict[str, Any]] = field(default_factory=list)
    mechanism: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """A strict-JSON dict: non-finite floats (a diverged loss) become ``None``."""
        return _finite(asdict(self))


def _finite(obj: Any) -> Any:
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_finite(v) for v in obj]
    return obj


# -- per-process caches ---------------------------------------------------------------------------

_MODELS: dict[str, tuple[Any, Any]] = {}
_TASKS: dict[str, Any] = {}
_ZERO_SHOT: dict[str, dict[str, float]] = {}


def _key(*sections: Any) -> str:
    return json.dumps([asdict(s) for s in sections], sort_keys=True, default=str)


def clear_cache() -> None:
    """Drop the cached base models, tasks and zero-shot metrics."""
    _MODELS.clear()
    _TASKS.clear()
    _ZERO_SHOT.clear()


def get_model(cfg: StudyConfig) -> tuple[Any, Any]:
    """The (cached) base model and tokenizer of ``cfg.model``."""
    key = _key(cfg.model)
    if key not in _MODELS:
        from loran_search.kinds import load  # the model kind's loader (LLaMA: models.load_model)

        _MODELS[key] = load(cfg.model)
    return _MODELS[key]


def get_task(cfg: StudyConfig) -> Any:
    """The (cached) tokenized task of ``cfg.task`` for ``cfg.model``'s tokenizer."""
    key = _key(cfg.model, cfg.task)
    if key not in _TASKS:
        from loran_search.kinds import build_task  # the kind's task (LLaMA: tasks.build_task)

        model, tokenizer = get_model(cfg)
        _TASKS[key] = build_task(cfg.model, cfg.task, model, tokenizer)
    return _TASKS[key]


# -- pieces ---------------------------------------------------------------------------------------


def resolve_training(
    base: TrainingSection, overrides: Mapping[str, Any] | None = None
) -> TrainingSection:
    """``base`` with ``overrides`` applied, checked; raises :class:`TrainingError`."""
    names = {f.name for f in fields(TrainingSection)}
    overrides = dict(overrides or {})
    unknown = sorted(set(overrides) - names)
    if unknown:
        raise TrainingError(
            f"unknown training {plural(len(unknown), 'setting')} {unknown}; "
            f"valid: {', '.join(sorted(names))}."
        )
    t = replace(base, **overrides)
    problems = []
    if t.max_steps < 1:
        problems.append(f"training.max_steps must be ≥ 1 (got {t.max_steps})")
    if t.batch_size < 1 or t.grad_accum < 1:
        problems.append("training.batch_size and training.grad_accum must be ≥ 1")
    if not (t.learning_rate > 0 and math.isfinite(t.learning_rate)):
        problems.append(f"training.learning_rate must be > 0 (got {t.learning_rate})")
    if t.warmup_steps < 0:
        problems.append("training.warmup_steps must be ≥ 0")
    if t.schedule not in SCHEDULES:
        problems.append(f"training.schedule {t.schedule!r} is not one of {', '.join(SCHEDULES)}")
    if t.eval_every < 0:
        problems.append("training.eval_every must be ≥ 0 (0 = only at the end)")
    if t.divergence_factor <= 1 or t.spike_factor <= 1:
        problems.append("training.divergence_factor and training.spike_factor must be > 1")
    if t.max_grad_norm is not None and t.max_grad_norm <= 0:
        problems.append("training.max_grad_norm must be > 0 or null")
    if problems:
        raise TrainingError("; ".join(problems) + ".")
    return t


def lr_factor(step: int, t: TrainingSection) -> float:
    """Multiplier of ``learning_rate`` at optimizer step ``step`` (1-based; module docstring)."""
    w, k_max = t.warmup_steps, t.max_steps
    if w > 0 and step <= w:
        return step / w
    if t.schedule == "constant" or k_max <= w:
        return 1.0
    u = min(1.0, (step - w) / (k_max - w))
    if t.schedule == "linear":
        return 1.0 - u
    return 0.5 * (1.0 + math.cos(math.pi * u))


def check_targets(model: Any, adapter: AdapterSection, rank: int) -> None:
    """Refuse target modules the model lacks, or a rank wider than an adapted layer.

    The study-file check does the same from the model's config when it can be read cheaply;
    this one runs on the loaded model, before training, for models it could not describe
    (an embedded model built only now, a hub model downloaded only now).

    Raises:
        TrainingError: Every problem, each naming its key.
    """
    from loran_search.models import module_table, target_problems

    problems = target_problems(module_table(model), list(adapter.target_modules), [rank])
    if problems:
        raise TrainingError(
            "; ".join(
                f"{'rank' if path[:2] == ('search', 'rank') else dotted(path)}: {message}"
                for path, message in problems
            )
        )


def build_adapter(
    model: Any,
    adapter: AdapterSection,
    *,
    rank: int,
    activation: str,
    activation_params: Mapping[str, float],
    method: str = "loran",
    method_params: Mapping[str, Any] | None = None,
) -> Any:
    """Wrap ``model`` in a LoRAN adapter (``peft.get_peft_model`` with a ``LoranConfig``).

    A peer ``method`` (``lora``, ``dora``, ``hira``, …) gets that method's own peft adapter
    instead (:func:`loran_search.methods.build.build_peer`; ``activation`` is then unused).
    """
    import peft

    from loran_search.adapters import LoranConfig
    from loran_search.kinds import peft_task_type

    if rank < 1:
        raise TrainingError(f"rank must be ≥ 1 (got {rank}).")
    if method != "loran":
        from loran_search.methods.build import build_peer

        try:
            return build_peer(model, adapter, method, rank, method_params)
        except (KeyError, ValueError) as err:
            raise TrainingError(str(err).strip("'\"")) from None
    from loran_search.adapters.normalize import normalized_alpha

    cfg = LoranConfig(
        r=rank,
        # adapter.normalize: slope (issue 21): s = alpha/(r·f′(0)), LoRA's first step
        lora_alpha=normalized_alpha(
            adapter.alpha, getattr(adapter, "normalize", None), activation, activation_params
        ),
        lora_dropout=adapter.dropout,
        target_modules=list(adapter.target_modules),
        use_rslora=adapter.use_rslora,
        activation=activation,
        activation_params=dict(activation_params),
        task_type=peft_task_type(model),  # the model kind's (CAUSAL_LM for LLaMA)
    )
    return peft.get_peft_model(model, cfg)


def _peer_rank(
    base: Any,
    adapter: AdapterSection,
    method: str,
    method_params: Mapping[str, Any] | None,
    rank: int,
    match: str,
) -> dict[str, int]:
    """A peer's trained rank and LoRAN's parameter count at ``rank`` (``{}`` for LoRAN)."""
    if method == "loran":
        return {}
    from loran_search.methods import matched_rank, total_params
    from loran_search.methods.build import target_shapes

    shapes = target_shapes(base, list(adapter.target_modules))
    trained = rank
    if match == "params":
        trained = matched_rank(method, shapes, rank, method_params).rank
    loran = total_params("loran", shapes, rank, {})
    return {"adapter_rank": trained, "loran_trainable_params": loran}


def _seed_everything(seed: int) -> None:
    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _batches(examples: list[Any], batch_size: int, seed: int) -> Iterator[list[Any]]:
    """Endless seeded epochs of shuffled micro-batches (the last short batch is kept)."""
    rng = random.Random(seed)
    while True:
        order = list(range(len(examples)))
        rng.shuffle(order)
        for i in range(0, len(order), batch_size):
            yield [examples[j] for j in order[i : i + batch_size]]


def _loss(model: Any, batch: list[Any], pad_id: int, device: Any) -> Any:
    """Mean cross-entropy over answer tokens (labels ≠ -100) of one micro-batch.

    The batch is left-padded (``position_ids`` count real tokens only, so every row is computed
    as if unpadded), which puts every answer in the last ``n`` positions: only those ``n + 1``
    positions' logits are computed (``logits_to_keep``), which saves the ``T × vocab`` logits —
    the largest activation of a small model — and most of the LM-head cost.
    """
    import torch

    from loran_search.tasks.base import IGNORE, pad_batch

    enc = pad_batch(
        [e.input_ids for e in batch], pad_id, left=True, labels=[e.labels for e in batch]
    )
    labels = enc["labels"]  # (B, T)
    answer_cols = (labels != IGNORE).any(dim=0).nonzero()
    keep = labels.shape[1] - int(answer_cols[0]) + 1 if len(answer_cols) else 2
    keep = min(keep, labels.shape[1])
    logits = model(
        input_ids=enc["input_ids"].to(device),
        attention_mask=enc["attention_mask"].to(device),
        position_ids=enc["position_ids"].to(device),
        logits_to_keep=keep,
    ).logits  # (B, keep, V): positions T-keep … T-1
    targets = labels[:, labels.shape[1] - keep + 1 :].to(device)  # (B, keep-1)
    return torch.nn.functional.cross_entropy(
        logits[:, :-1].flatten(0, 1).float(), targets.flatten(), ignore_index=IGNORE
    )


class _Memory:
    """Peak memory of a run (see the module docstring for what is measured)."""

    def __init__(self, device: Any) -> None:
        import resource

        import torch

        self.cuda = getattr(device, "type", str(device)) == "cuda"
        if self.cuda:
            torch.cuda.reset_peak_memory_stats(device)
        self.device = device
        self.start_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB → MiB

    def report(self) -> dict[str, Any]:
        import resource

        import torch

        if self.cuda:
            peak = torch.cuda.max_memory_allocated(self.device) / 2**20
            return {
                "peak_memory_mb": round(peak, 1),
                "memory_growth_mb": None,
                "peak_memory_kind": "cuda_max_memory_allocated",
            }
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        return {
            "peak_memory_mb": round(rss, 1),
            "memory_growth_mb": round(max(0.0, rss - self.start_rss), 1),
            "peak_memory_kind": "cpu_process_max_rss",
        }


# -- mechanism telemetry --------------------------------------------------------------------------

#: Quantiles kept of the pooled ``P`` entries: at ``k/(N − 1)``, ``k = 0 … N − 1`` (0, 1/256, …, 1).
N_QUANTILES = 257


@dataclass
class LayerFactors:
    """One adapted layer, as the mechanism telemetry reads it.

    Attributes:
        module: The layer's module name (``…layers.0.self_attn.q_proj``).
        A: ``lora_A`` weight, ``r × d_in``.
        B: ``lora_B`` weight, ``d_out × r``.
        scale: The layer's scaling ``s`` (``alpha/r``, or ``alpha/√r`` with rsLoRA).
        f: The layer's activation callable.
        frequency: The activation's ``frequency`` parameter, when it has one.
    """

    module: str
    A: Any
    B: Any
    scale: float
    f: Callable[[Any], Any]
    frequency: float | None = None


def adapter_layers(model: Any) -> list[LayerFactors]:
    """Every LoRAN adapter of every LoRAN layer of ``model`` (peft-wrapped), in module order."""
    from loran_search.adapters import LoranLayerMixin

    out = []
    for name, module in model.named_modules():
        if not isinstance(module, LoranLayerMixin):
            continue
        for adapter, fn in module.loran_activations.items():
            freq = getattr(fn, "params", {}).get("frequency")
            out.append(
                LayerFactors(
                    module=name if len(module.loran_activations) == 1 else f"{name}[{adapter}]",
                    # a conv kernel's factors flattened (r × C_in·k_h·k_w, C_out × r): P = B·A
                    A=module.lora_A[adapter].weight.flatten(1),
                    B=module.lora_B[adapter].weight.flatten(1),
                    scale=float(module.scaling[adapter]),
                    f=fn,
                    frequency=None if freq is None else float(freq),
                )
            )
    return out


def p_quantiles(values: Any, n: int = N_QUANTILES) -> list[float]:
    """The ``n`` quantiles ``q_k = Q(k/(n−1))``, ``k = 0 … n−1``, of a 1-D tensor, exactly.

    Same definition as ``numpy.quantile`` (linear interpolation): with the ``m`` values sorted,
    ``h = (m − 1)·k/(n − 1)`` and ``q_k = x_(⌊h⌋) + (h − ⌊h⌋)·(x_(⌊h⌋+1) − x_(⌊h⌋))``, the
    interpolation in float64. The order statistics come from one ``numpy.partition`` at the
    ``2n`` ranks needed on CPU (about twice as fast as a full sort: 0.55 s for the 13.3 M entries
    of SmolLM2's q/v layers at r = 8) and from ``torch.sort`` on an accelerator. No size limit
    (``torch.quantile`` refuses more than ``2²⁴`` values). Any non-finite value (a diverged run)
    gives ``n`` NaNs.
    """
    import numpy as np
    import torch

    flat = values.detach().reshape(-1)
    if flat.dtype not in (torch.float32, torch.float64):
        flat = flat.float()  # bfloat16/float16 factors: numpy has no bfloat16
    m = flat.numel()
    if m == 0 or not bool(torch.isfinite(flat).all()):
        return [math.nan] * n
    h = np.arange(n, dtype=np.float64) * (m - 1) / (n - 1)
    lo = np.minimum(np.floor(h).astype(np.int64), m - 1)
    hi = np.minimum(lo + 1, m - 1)
    if flat.device.type == "cpu":
        xs = np.partition(flat.numpy(), np.union1d(lo, hi))
    else:
        xs = torch.sort(flat).values.cpu().numpy()
    x_lo = xs[lo].astype(np.float64)
    x_hi = xs[hi].astype(np.float64)
    return [float(v) for v in x_lo + (h - lo) * (x_hi - x_lo)]


#: Quadrature of :func:`predict_nonlinearity_from_quantiles`: Gauss–Legendre nodes per interior
#: quantile bin and Gauss–Laguerre nodes per tail bin.
QUANTILE_BIN_NODES = 4
QUANTILE_TAIL_NODES = 16


def predict_nonlinearity_from_quantiles(
    quantiles: Sequence[float], f: Callable[[Any], Any]
) -> float:
    """``ν̂(f)``: the effective non-linearity ``f`` would have at a ``P`` known by its quantiles.

    ``ν = ‖f(P) − P‖_F/‖P‖_F`` with ``‖M‖_F² = Σ_ij M_ij²`` depends on ``P`` only through the
    distribution of its entries: with ``Q`` their quantile function and ``g(x) = (f(x) − x)²``,

        ν² = ∫₀¹ g(Q(u)) du / ∫₀¹ Q(u)² du.

    Given ``q_k = Q(k/N)``, ``k = 0 … N`` (``mechanism["p_quantiles"]``, ``N = 256``), both
    integrals are split into the ``N`` bins ``[k/N, (k+1)/N]`` of mass ``1/N``:

    * the ``N − 2`` interior bins take ``Q`` linear between ``q_k`` and ``q_{k+1}`` (a uniform
      density inside the bin), integrated by ``QUANTILE_BIN_NODES``-point Gauss–Legendre;
    * the two end bins take an exponential tail, which fits how the entries of a low-rank
      ``B·A`` (sums of products of roughly Gaussian factors) thin out: beyond ``q_{N−1}``,
      ``Q = min(q_{N−1} + β·E, q_N)`` with ``E ~ Exp(1)`` and ``β = (q_{N−1} − q_{N−2})/ln 2``
      (the spacing the tail had between ``1 − 2/N`` and ``1 − 1/N``), the lower tail mirrored
      and floored at ``q_0``; ``E`` is integrated by ``QUANTILE_TAIL_NODES``-point
      Gauss–Laguerre.

    The end bins matter: the extremes ``q_0``, ``q_N`` are single entries, and giving them the
    mass ``1/(2N)`` of the plain trapezoidal rule ``‖f(q) − q‖/‖q‖`` over the quantiles
    overstates ``ν`` by 15–60 % where ``f(x) − x ∝ x²`` (small ``ω·rms(P)``, the inert-or-not
    regime) because ``ν`` then weighs the fourth moment of ``P``. Checked on ``B·A`` of random
    rank-1 and rank-8 factors (256 × 256, 576 × 576) and on Gaussian ``P`` against the exact
    ``ν`` of the Sinter ``f(x) = x + A·x·sin(ωx)`` for ``ω·rms(P)`` from 0.01 to 100: within
    2 % for ``ω·rms(P) ≤ 1`` and within 5 % up to 100. Used by the search to predict how
    non-linear a queued ``f`` will be at a trained baseline's ``P`` before training it (to first
    order: the run's own ``P`` drifts with training).

    Args:
        quantiles: ``N + 1 ≥ 4`` quantiles at ``k/N`` in increasing order (e.g.
            :func:`p_quantiles`; ``None`` entries, JSON's ``null``, count as missing).
        f: The element-wise activation (a tensor callable, e.g. ``get_activation(name, …)``).

    Returns:
        ``ν̂``; ``0.0`` when every quantile is 0; ``nan`` when there are fewer than 4 or one is
        missing or not finite (a diverged run's ``p_quantiles``), or ``f`` gives a non-finite
        value.
    """
    import numpy as np
    import torch

    values = [math.nan if v is None else float(v) for v in quantiles]
    if len(values) < 4 or not all(math.isfinite(v) for v in values):
        return math.nan
    with torch.no_grad():
        q = torch.tensor(values, dtype=torch.float64)
        t, wt = np.polynomial.legendre.leggauss(QUANTILE_BIN_NODES)
        e, we = np.polynomial.laguerre.laggauss(QUANTILE_TAIL_NODES)
        lo, hi = q[1:-2], q[2:-1]  # the interior bins
        ts = torch.tensor((t + 1) / 2, dtype=torch.float64)
        inner = (lo[:, None] + (hi - lo)[:, None] * ts[None, :]).reshape(-1)
        w_inner = torch.tensor(wt / 2, dtype=torch.float64).repeat(lo.numel())
        es = torch.tensor(e, dtype=torch.float64)
        upper = torch.minimum(q[-2] + (q[-2] - q[-3]) / math.log(2) * es, q[-1])
        lower = torch.maximum(q[1] - (q[2] - q[1]) / math.log(2) * es, q[0])
        x = torch.cat([inner, upper, lower])
        w_tail = torch.tensor(we, dtype=torch.float64)
        w = torch.cat([w_inner, w_tail, w_tail])
        try:
            fx = f(x).double()
        except (RuntimeError, TypeError):  # an activation that accepts float32 only
            fx = f(x.float()).double()
        den = float((w * x * x).sum())
        num = float((w * (fx - x) ** 2).sum())
    if not math.isfinite(num):
        return math.nan
    return 0.0 if den == 0.0 else math.sqrt(num / den)


def _nan_layer(layer: LayerFactors) -> dict[str, Any]:
    from loran_search.adapters import telemetry

    out: dict[str, Any] = dict.fromkeys(telemetry.FIGURES, math.nan)
    out["omega_p_rms"] = None if layer.frequency is None else math.nan
    out.update(inert=False, rank=int(layer.A.shape[0]), d_out=int(layer.B.shape[0]))
    out["d_in"] = int(layer.A.shape[1])
    return out


def _pooled_nonlinearity(layers: Sequence[LayerFactors], pooled: Sequence[Any]) -> float:
    """``sqrt(Σ_l ‖f_l(P_l) − P_l‖_F² / Σ_l ‖P_l‖_F²)``: ``ν`` of all layers' entries at once."""
    import torch

    num = den = 0.0
    try:
        for layer, p in zip(layers, pooled, strict=True):
            num += float(torch.linalg.vector_norm(layer.f(p) - p, dtype=torch.float64)) ** 2
            den += float(torch.linalg.vector_norm(p, dtype=torch.float64)) ** 2
    except (ValueError, RuntimeError, TypeError, ArithmeticError):
        return math.nan
    if not (math.isfinite(num) and math.isfinite(den)):
        return math.nan
    return 0.0 if den == 0.0 else math.sqrt(num / den)


def mechanism_figures(layers: Sequence[LayerFactors]) -> dict[str, Any]:
    """The mechanism of a trained adapter (module docstring); never raises for bad values.

    Args:
        layers: The adapted layers (:func:`adapter_layers`).

    Returns:
        :func:`loran_search.adapters.telemetry.summarize` of the per-layer figures, plus
        ``layers`` (per-layer figures with ``module``), ``p_quantiles`` (:func:`p_quantiles` of
        the pooled entries of every ``P = B·A``), ``p_entries`` (how many),
        ``nonlinearity_pooled`` (``ν`` of the pooled entries,
        ``sqrt(Σ_l ‖f(P_l) − P_l‖_F² / Σ_l ‖P_l‖_F²)``: what
        :func:`predict_nonlinearity_from_quantiles` of ``p_quantiles`` estimates) and
        ``seconds``; ``{}`` for no layers.
    """
    import torch

    from loran_search.adapters import telemetry

    if not layers:
        return {}
    t0 = time.perf_counter()
    per_layer: list[dict[str, Any]] = []
    pooled = []
    with torch.no_grad():
        for layer in layers:
            try:
                figures = telemetry.layer_mechanism(
                    layer.A, layer.B, layer.scale, layer.f, layer.frequency
                )
            except (ValueError, RuntimeError, TypeError, ArithmeticError):
                figures = _nan_layer(layer)
            per_layer.append({"module": layer.module, **figures})
            dt = torch.float64 if layer.A.dtype == torch.float64 else torch.float32
            pooled.append((layer.B.detach().to(dt) @ layer.A.detach().to(dt)).reshape(-1))
        entries = torch.cat([p.float() for p in pooled])
        out = telemetry.summarize(per_layer)
        out["layers"] = per_layer
        out["p_quantiles"] = p_quantiles(entries)
        out["p_entries"] = int(entries.numel())
        out["nonlinearity_pooled"] = _pooled_nonlinearity(layers, pooled)
    out["seconds"] = round(time.perf_counter() - t0, 4)
    return out


def run_training(
    cfg: StudyConfig,
    *,
    activation: str,
    activation_params: Mapping[str, float],
    rank: int,
    seed: int,
    training_overrides: Mapping[str, Any] | None = None,
    on_eval: Callable[[int, dict[str, float]], None] | None = None,
    adapter_dir: str | Path | None = None,
    progress: bool = True,
    eval_split: str | None = None,
    method: str = "loran",
    method_params: Mapping[str, Any] | None = None,
    match: str = "rank",
) -> RunResult:
    """Train one LoRAN adapter and evaluate it (see the module docstring for every definition).

    Args:
        cfg: The study configuration (``model``, ``task``, ``adapter``, ``training`` are used).
        activation: Registry name (or safe formula) of ``f`` in ``ΔW = s·f(B·A)``.
        activation_params: Its parameter values (defaults fill the rest).
        rank: LoRA rank ``r``.
        seed: Seeds adapter initialisation, dropout and data order.
        training_overrides: ``training:`` fields to override for this run (e.g. a searched lr).
        on_eval: Called as ``on_eval(step, metrics)`` at every evaluation (every ``eval_every``
            steps and at the end). Exceptions it raises (``optuna.TrialPruned``) propagate after
            the adapter has been removed.
        adapter_dir: Save the trained adapter here (completed runs only).
        progress: Show progress on stderr: on a terminal a tqdm bar named after the run
            (:func:`loran_search.console.current_label`) with loss and ETA, otherwise a line
            every ``LORAN_SEARCH_PROGRESS_SECONDS`` (30) seconds (:mod:`loran_search.console`).
        eval_split: The split to evaluate on (``None``: ``cfg.task.eval_split``, ``val`` by
            default; the confirmation passes ``test``). The training set does not depend on it.
        method: ``loran`` (default), or a peer arm built by peft's own tuner (``lora``,
            ``rslora``, ``dora``, ``hira``, ``peanut``, ``delora``; :mod:`loran_search.methods`).
        method_params: The peer's settings (``{"depth": 1}`` for PEANuT …; defaults fill in).
        match: ``rank`` (the peer trains at ``rank``) or ``params`` (at the rank whose trainable
            parameters are closest to LoRAN's at ``rank``,
            :func:`loran_search.methods.matched_rank`); a peer's ``cost`` then also holds
            ``adapter_rank`` and ``loran_trainable_params``.

    Returns:
        The :class:`RunResult` (with ``eval_split``, per-example ``examples`` and
        ``mechanism``).

    Raises:
        TrainingError, TaskError, ModelError: Bad input, before any training (target modules
            and rank are checked against the loaded model, see :func:`check_targets`).
    """
    import torch

    if eval_split is not None and eval_split != cfg.task.eval_split:
        cfg = replace(cfg, task=replace(cfg.task, eval_split=str(eval_split)))
    t = resolve_training(cfg.training, training_overrides)
    if not 0 <= seed <= SEED_MAX:
        raise TrainingError(
            f"seed {seed} is outside 0 … 2³² − 1 ({SEED_MAX}), which numpy and torch accept.",
            fix="Use a smaller non-negative seed.",
        )
    if t.threads:
        torch.set_num_threads(int(t.threads))
    base, tokenizer = get_model(cfg)
    check_targets(base, cfg.adapter, rank)
    task = get_task(cfg)
    eval_bs = t.batch_size
    zkey = _key(cfg.model, cfg.task)
    zero_shot = None
    if t.zero_shot:
        if zkey not in _ZERO_SHOT:
            _ZERO_SHOT[zkey] = task.evaluate(base, eval_bs)
        zero_shot = dict(_ZERO_SHOT[zkey])

    _seed_everything(seed)
    peer = _peer_rank(base, cfg.adapter, method, method_params, rank, match)
    model = build_adapter(
        base,
        cfg.adapter,
        rank=peer["adapter_rank"] if peer else rank,
        activation=activation,
        activation_params=activation_params,
        method=method,
        method_params=method_params,
    )
    try:
        return _train(
            cfg,
            model,
            tokenizer,
            task,
            t,
            seed,
            zero_shot,
            on_eval,
            adapter_dir,
            progress,
            run={
                "activation": activation,
                "activation_params": dict(activation_params),
                "rank": rank,
                "seed": seed,
                "model": cfg.model.name,
                "quantization": cfg.model.quantization,
                "task": cfg.task.name,
                "model_load_seconds": getattr(
                    getattr(base, "loran_load_info", None), "seconds", None
                ),
                **({"method": method, **peer} if peer else {}),
            },
        )
    finally:
        model.unload()  # removes every adapter layer: the cached base is the pretrained model
        base.eval()


def _train(
    cfg: StudyConfig,
    model: Any,
    tokenizer: Any,
    task: Any,
    t: TrainingSection,
    seed: int,
    zero_shot: dict[str, float] | None,
    on_eval: Callable[[int, dict[str, float]], None] | None,
    adapter_dir: str | Path | None,
    progress: bool,
    run: dict[str, Any],
) -> RunResult:
    import torch

    from loran_search.console import StepProgress
    from loran_search.tasks.base import model_device

    device = model_device(model)
    params = [p for p in model.parameters() if p.requires_grad]
    n_trainable = sum(p.numel() for p in params)
    opt = torch.optim.AdamW(params, lr=t.learning_rate, weight_decay=t.weight_decay)
    batches = _batches(task.train_examples, t.batch_size, seed)
    pad_id = getattr(tokenizer, "pad_token_id", None)  # a network's task has no tokenizer
    task_loss = getattr(task, "loss", None)  # a task that owns its loss (kinds docstring)
    memory = _Memory(device)
    history: list[dict[str, Any]] = []
    losses: list[float] = []
    spikes = 0
    grad_max = 0.0
    diverged_at: int | None = None
    first_loss: float | None = None
    train_s = eval_s = 0.0
    metrics: dict[str, float] = {}
    examples: list[dict[str, Any]] = []
    evaluate = getattr(task, "evaluate_examples", None)
    bar = StepProgress(t.max_steps, enabled=progress)  # a named bar, or lines in a log file
    try:
        for step in range(1, t.max_steps + 1):
            t0 = time.perf_counter()
            model.train()
            lr = t.learning_rate * lr_factor(step, t)
            for group in opt.param_groups:
                group["lr"] = lr
            opt.zero_grad(set_to_none=True)
            step_loss = 0.0
            for _ in range(t.grad_accum):
                batch = next(batches)
                loss = task_loss(model, batch) if task_loss else _loss(model, batch, pad_id, device)
                loss = loss / t.grad_accum
                loss.backward()
                step_loss += float(loss.detach())
            norm = torch.nn.utils.clip_grad_norm_(
                params, t.max_grad_norm if t.max_grad_norm is not None else float("inf")
            )
            grad_norm = float(norm)
            if first_loss is None:
                first_loss = step_loss
            history.append({"step": step, "loss": step_loss, "grad_norm": grad_norm, "lr": lr})
            bad = not (math.isfinite(step_loss) and math.isfinite(grad_norm))
            if bad or step_loss > t.divergence_factor * first_loss:
                diverged_at = step
                train_s += time.perf_counter() - t0
                break
            spikes += is_spike(step_loss, losses, t.spike_factor)
            losses.append(step_loss)
            grad_max = max(grad_max, grad_norm)
            opt.step()
            train_s += time.perf_counter() - t0
            bar.update(step, loss=f"{step_loss:.4f}", lr=f"{lr:.2e}")
            last = step == t.max_steps
            if last or (t.eval_every and step % t.eval_every == 0):
                e0 = time.perf_counter()
                if evaluate is not None:
                    metrics, examples = evaluate(model, t.batch_size)
                else:  # a task without per-example outcomes
                    metrics = task.evaluate(model, t.batch_size)
                eval_s += time.perf_counter() - e0
                history[-1].update(metrics)
                if on_eval is not None:
                    on_eval(step, dict(metrics))
    finally:
        bar.close()
    done = len(losses)
    status = "diverged" if diverged_at is not None else "completed"
    mechanism = mechanism_figures(adapter_layers(model))
    adapter_path = None
    if adapter_dir is not None and status == "completed":
        model.save_pretrained(str(adapter_dir))
        adapter_path = str(Path(adapter_dir).resolve())
    stability = {
        "diverged": diverged_at is not None,
        "diverged_at_step": diverged_at,
        "grad_norm_max": grad_max,
        "loss_spikes": int(spikes),
        "final_train_loss": statistics.fmean(losses[-10:]) if losses else None,
    }
    cost = {
        "train_seconds": round(train_s, 3),
        "eval_seconds": round(eval_s, 3),
        "seconds_per_step": round(train_s / max(1, len(history)), 4),
        **memory.report(),
        "trainable_params": int(n_trainable),
        "model_load_seconds": run.pop("model_load_seconds", None),
        "steps_done": done,
        **{k: run[k] for k in ("adapter_rank", "loran_trainable_params") if k in run},
    }
    data = {
        "truncation": task.truncation.to_dict(),
        "max_length": cfg.task.max_length,
        "metric_names": list(task.metric_names),
        "eval_split": getattr(task, "eval_split", cfg.task.eval_split),
        "notes": list(getattr(task, "notes", [])),
    }
    return RunResult(
        status=status,
        metrics=metrics if status == "completed" else {},
        zero_shot=zero_shot,
        stability=stability,
        cost=cost,
        history=history,
        adapter_path=adapter_path,
        data=data,
        run=run,
        eval_split=data["eval_split"],
        examples=examples if status == "completed" else [],
        mechanism=mechanism,
    )
