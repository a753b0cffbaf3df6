"""Task metrics, written out so they can be checked by hand.

Classification over predictions ``ŷ_i`` and gold labels ``y_i``, ``i = 1..n``:

* ``accuracy = (1/n) Σ_i [ŷ_i = y_i]``
* ``macro_f1 = (1/|L|) Σ_{l∈L} F1_l`` with ``L`` the labels seen in gold *or* predictions,
  ``P_l = TP_l / (TP_l + FP_l)``, ``R_l = TP_l / (TP_l + FN_l)``,
  ``F1_l = 2·P_l·R_l / (P_l + R_l)`` (0 when ``TP_l = 0``) — the scikit-learn definition.

Summarization: ``rouge1``, ``rouge2``, ``rougeL`` are the mean F-measures of
``rouge_score.rouge_scorer.RougeScorer([...], use_stemmer=True)`` over the pairs, in [0, 1];
``rouge_l`` is the same value as ``rougeL`` (an alias, for study files that spell it so).

:data:`TASK_METRICS` is the one list of the metrics each task type reports; the study-file check
(``study.metric``) and the tasks themselves read it from here.
"""

from __future__ import annotations

from collections.abc import Sequence

#: The metrics each task type reports (the keys of its ``evaluate()`` result, aliases aside).
TASK_METRICS: dict[str, tuple[str, ...]] = {
    "classification": ("accuracy", "macro_f1"),
    "summarization": ("rouge1", "rouge2", "rougeL"),
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


def rouge(pred: Sequence[str], ref: Sequence[str]) -> dict[str, float]:
    """Mean ROUGE-1/2/L F-measures (``rouge_score``, Porter stemmer) and the ``rouge_l`` alias."""
    from rouge_score import rouge_scorer

    if len(pred) != len(ref) or not ref:
        raise ValueError(f"need equal, non-empty lists (got {len(pred)} and {len(ref)})")
    scorer = rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL"], use_stemmer=True)
    sums = {"rouge1": 0.0, "rouge2": 0.0, "rougeL": 0.0}
    for p, r in zip(pred, ref, strict=True):
        scores = scorer.score(r, p)
        for k in sums:
            sums[k] += scores[k].fmeasure
    out = {k: v / len(ref) for k, v in sums.items()}
    out["rouge_l"] = out["rougeL"]
    return out
