"""Tasks: classification (label-word scoring) and summarization (greedy generation + ROUGE).

Beyond the causal-LM text tasks: their encoder-decoder forms (:mod:`.seq2seq`), image
classification on the digits (:mod:`.vision`) and a CartPole policy's control task
(:mod:`.control`); :mod:`loran_search.kinds` says which a model kind serves. A task may own its
loss, ``loss(model, batch) -> scalar tensor`` over a micro-batch of ``train_examples``; the
causal-LM tasks leave it to the trainer's answer-token loss.

``build_task(task_cfg, tokenizer, max_positions=…)`` loads and checks the data, tokenizes every
example and returns an object with ``train_examples`` (``Example(input_ids, labels)``, labels -100
outside the answer), ``evaluate(model, batch_size) -> {metric: value}``,
``evaluate_examples(model, batch_size) -> ({metric: value}, [per-example dict])`` (each example
with its stable ``id``; every mean metric is the mean of the per-example values),
``metric_names``, ``eval_split`` (the evaluated split's name), ``notes`` (how the splits were
made) and ``truncation`` (counts, reported in the run result). Every input problem raises
:class:`TaskError` before any training.

For the study-file check (no data loaded, no torch): :data:`TASK_METRICS` /
:func:`metric_names` list each task type's metrics, and :func:`check_source` checks
``task.name`` cheaply (an embedded dataset's type; a local file's existence, readability and
first bytes).
"""

from __future__ import annotations

from typing import Any

from loran_search.config import TaskSection
from loran_search.tasks.data import TaskError, check_source
from loran_search.tasks.metrics import (
    COMPANION_METRICS,
    METRIC_ALIASES,
    TASK_METRICS,
    metric_names,
)

TASK_TYPES = tuple(TASK_METRICS)

__all__ = [
    "COMPANION_METRICS",
    "METRIC_ALIASES",
    "TASK_METRICS",
    "TASK_TYPES",
    "TaskError",
    "build_task",
    "check_source",
    "metric_names",
]


def build_task(cfg: TaskSection, tokenizer: Any, *, max_positions: int | None = None) -> Any:
    """A ready task for ``cfg`` (see the package docstring).

    Args:
        cfg: The ``task:`` section.
        tokenizer: The model's tokenizer (with a pad token).
        max_positions: The model's context length; ``task.max_length`` may not exceed it.

    Raises:
        TaskError: Unknown type or dataset, missing columns, empty split, bad label words, …
    """
    if cfg.type not in TASK_TYPES:
        raise TaskError(f"task.type {cfg.type!r} is not one of {', '.join(TASK_TYPES)}.")
    if cfg.max_length < 2:
        raise TaskError(f"task.max_length must be ≥ 2 (got {cfg.max_length}).")
    if max_positions is not None and cfg.max_length > max_positions:
        raise TaskError(
            f"task.max_length {cfg.max_length} exceeds the model's context of {max_positions} "
            f"tokens; set task.max_length ≤ {max_positions}."
        )
    if cfg.type == "classification":
        from loran_search.tasks.classification import ClassificationTask

        return ClassificationTask(cfg, tokenizer)
    if cfg.type == "control":  # a policy's task: no tokenizer (loran_search.tasks.control)
        from loran_search.tasks.control import ControlTask

        return ControlTask(cfg)
    from loran_search.tasks.summarization import SummarizationTask

    return SummarizationTask(cfg, tokenizer)
