"""Task metrics, written out so they can be checked by hand.

Classification over predictions ``ŷ_i`` and gold labels ``y_i``, ``i = 1..n``:

* ``accuracy = (1/n) Σ_i [ŷ_i = y_i]``
* ``macro_f1 = (1/|L|) Σ_{l∈L} F1_l`` with ``L`` the labels seen in gold *or* predictions,
  ``P_l = TP_l / (TP_l + FP_l)``, ``R_l = TP_l / (TP_l + FN_l)``,
  ``F1_l = 2·P_l·R_l / (P_l + R_l)`` (0 when ``TP_l = 0``) — the scikit-learn definition.

Summarization: ``rouge1``, ``rouge2``, ``rougeL`` are the mean F-measures of
``rouge_score.rouge_scorer.RougeScorer([...], use_stemmer=True)`` over the pairs, in [0, 1];
``rouge_l`` is the same value as ``rougeL`` (an alias, for study files that spell it so).

Control (a policy, :mod:`loran_search.tasks.control`): ``mean_return = (1/n) Σ_i R_i`` over
the ``n`` evaluation episodes, ``R_i`` the return of episode ``i`` (fixed environment seed,
greedy actions); its per-example value is ``return``.

Per-example outcomes: every aggregate that is a mean is the mean of its per-example values
(``accuracy = mean(correct_i)``, ``rougeL = mean(rougeL_i)``, …; ``macro_f1`` is not a mean and
has no per-example value). The continuous companion metrics (:data:`COMPANION_METRICS`) are means
too: ``gold_logprob_mean = (1/n) Σ_i Σ_t log p(a_{y_i,t} | prompt_i, a_{y_i,<t})`` (the gold label
word's log-likelihood, the score the prediction ranks) and ``summary_loss = (1/n) Σ_i loss_i``
with ``loss_i = −(1/|y_i|) Σ_t log p(y_{i,t} | prompt_i, y_{i,<t})`` (teacher forcing on the
reference ``y_i`` = its tokens ⧺ EOS, cut to ``task.max_new_tokens`` as in training).

:data:`TASK_METRICS` is the one list of the metrics each task type reports; the study-file check
(``study.metric``) and the tasks themselves read it from here.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

#: The metrics each task type reports (the keys of its ``evaluate()`` result, aliases aside).
TASK_METRICS: dict[str, tuple[str, ...]] = {
    "classification": ("accuracy", "macro_f1"),
    "summarization": ("rouge1", "rouge2", "rougeL"),
    "control": ("mean_return",),
}
#: The continuous companion of each task type's metrics (also in ``evaluate()``'s result; not a
#: ``study.metric``: lower ``summary_loss`` is better, higher ``gold_logprob_mean``).
COMPANION_METRICS: dict[str, tuple[str, ...]] = {
    "classification": ("gold_logprob_mean",),
    "summarization": ("summary_loss",),
    "control": (),
}
#: Other spellings a task type also reports: ``{alias: metric}``.
METRIC_ALIASES: dict[str, str] = {"rouge_l": "rougeL"}


def metric_names(task_type: str, *, aliases: bool = True) -> tuple[str, ...]:
    """The metrics ``task_type`` reports (with their aliases unless ``aliases=False``).

    Args:
        task_type: ``classification`` or ``summarization``.
        aliases: Include the aliases (``rouge_l``), which ``study.metric`` may name too.

    Returns:
        The metric names; empty for an unknown task type.
    """
    names = TASK_METRICS.get(task_type, ())
    if not aliases:
        return names
    return names + tuple(a for a, m in METRIC_ALIASES.items() if m in names)


def accuracy(pred: Sequence[str], gold: Sequence[str]) -> float:
    """Fraction of exact matches."""
    if len(pred) != len(gold) or not gold:
        raise ValueError(f"need equal, non-empty lists (got {len(pred)} and {len(gold)})")
    return sum(p == g for p, g in zip(pred, gold, strict=True)) / len(gold)


def macro_f1(pred: Sequence[str], gold: Sequence[str]) -> float:
    """Unweighted mean of per-label F1 over labels present in gold or predictions."""
    if len(pred) != len(gold) or not gold:
        raise ValueError(f"need equal, non-empty lists (got {len(pred)} and {len(gold)})")
    labels = sorted(set(gold) | set(pred))
    total = 0.0
    for label in labels:
        tp = sum(p == label and g == label for p, g in zip(pred, gold, strict=True))
        fp = sum(p == label and g != label for p, g in zip(pred, gold, strict=True))
        fn = sum(p != label and g == label for p, g in zip(pred, gold, strict=True))
        total += 0.0 if tp == 0 else 2 * tp / (2 * tp + fp + fn)  # = 2PR/(P+R)
    return total / len(labels)


def classification_metrics(pred: Sequence[str], gold: Sequence[str]) -> dict[str, float]:
    """``{"accuracy", "macro_f1"}``."""
    return {"accuracy": accuracy(pred, gold), "macro_f1": macro_f1(pred, gold)}


def mean(values: Sequence[float]) -> float:
    """``(1/n) Σ_i v_i`` (``nan`` for no values): the one mean of every aggregate."""
    return sum(values) / len(values) if values else math.nan


def rouge_per_example(pred: Sequence[str], ref: Sequence[str]) -> list[dict[str, float]]:
    """``{"rouge1", "rouge2", "rougeL"}`` F-measures of every pair (``rouge_score``, stemmer)."""
    from rouge_score import rouge_scorer

    if len(pred) != len(ref) or not ref:
        raise ValueError(f"need equal, non-empty lists (got {len(pred)} and {len(ref)})")
    scorer = rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL"], use_stemmer=True)
    out = []
    for p, r in zip(pred, ref, strict=True):
        scores = scorer.score(r, p)
        out.append({k: float(scores[k].fmeasure) for k in ("rouge1", "rouge2", "rougeL")})
    return out


def rouge_from_examples(per_example: Sequence[dict[str, float]]) -> dict[str, float]:
    """Means of per-example ROUGE F-measures, plus the ``rouge_l`` alias."""
    out = {k: mean([e[k] for e in per_example]) for k in ("rouge1", "rouge2", "rougeL")}
    out["rouge_l"] = out["rougeL"]
    return out


def rouge(pred: Sequence[str], ref: Sequence[str]) -> dict[str, float]:
    """Mean ROUGE-1/2/L F-measures (``rouge_score``, Porter stemmer) and the ``rouge_l`` alias."""
    return rouge_from_examples(rouge_per_example(pred, ref))


def label_metrics(examples: Sequence[dict[str, Any]], gold: Sequence[str]) -> dict[str, float]:
    """The label tasks' metrics from their per-example outcomes.

    ``accuracy = mean_i correct_i``, ``macro_f1`` of the predictions against ``gold``, and the
    companion ``gold_logprob_mean = mean_i gold_logprob_i`` (every mean metric is the mean of
    its per-example values, so paired comparisons read the same numbers).

    Args:
        examples: Per-example dicts with ``pred``, ``correct`` and ``gold_logprob``.
        gold: The gold labels, in the order of ``examples``.
    """
    return {
        "accuracy": mean([e["correct"] for e in examples]),
        "macro_f1": macro_f1([e["pred"] for e in examples], gold),
        "gold_logprob_mean": mean([e["gold_logprob"] for e in examples]),
    }
