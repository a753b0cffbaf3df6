"""Summarization: document → summary, loss on summary tokens, greedy generation, ROUGE.

Token budget per example (``L = task.max_length``, ``G = task.max_new_tokens``): the prompt gets
at most ``L − G`` tokens (the document is cut from the right), the target ``summary ⧺ <eos>`` at
most ``G`` tokens, so training sequences and generation both fit in ``L``. Cuts are counted in
``truncation``. Evaluation decodes greedily up to ``G`` new tokens (stopping at EOS), keeps the
text before the first newline, and scores it against the reference with ROUGE-1/2/L F-measure.

The continuous companion, ``summary_loss``, is the mean over examples of the teacher-forced
loss of the reference, ``loss_i = −(1/|y_i|) Σ_t log p(y_{i,t} | prompt_i, y_{i,<t})`` where
``y_i`` = the reference's tokens ⧺ EOS cut to ``G`` tokens (the training target of that example).

Per-example outcomes (:meth:`SummarizationTask.evaluate_examples`): one dict per evaluation
example, ``{"id", "rouge1", "rouge2", "rougeL", "loss"}``; every aggregate is the mean of its
per-example values. The id is the row's (:mod:`loran_search.tasks.data`); for ``aclsum`` it is
``paper id/summary column`` (``P06-1112/approach``), since one paper gives three examples.
"""

from __future__ import annotations

from typing import Any

from loran_search.config import TaskSection
from loran_search.tasks.base import (
    IGNORE,
    Example,
    PromptEncoder,
    Truncation,
    model_device,
    pad_batch,
)
from loran_search.tasks.data import TaskError, require_columns, row_id, task_rows
from loran_search.tasks.metrics import TASK_METRICS, mean, rouge_from_examples, rouge_per_example

DEFAULT_PROMPT = "Text: {text}\nOne-sentence summary:"
ACLSUM_FIELDS = ("challenge", "approach", "outcome")


def greedy_settings(max_new_tokens: int, tokenizer: Any) -> dict[str, Any]:
    """``generate`` keywords of greedy decoding: one beam, no sampling, at most ``max_new_tokens``.

    The sampling knobs are set to ``None`` explicitly so a checkpoint's ``generation_config``
    (e.g. a default ``temperature``) cannot turn greedy decoding into sampling or warn.
    """
    return {
        "max_new_tokens": max_new_tokens,
        "do_sample": False,
        "num_beams": 1,
        "temperature": None,
        "top_p": None,
        "top_k": None,
        "pad_token_id": tokenizer.pad_token_id,
        "eos_token_id": tokenizer.eos_token_id,
    }


def default_columns(cfg: TaskSection) -> tuple[str, str]:
    """``(document column, summary column)`` for the dataset (aclsum: abstract → approach)."""
    if cfg.name == "aclsum":
        summary = cfg.summary_column or "approach"
        if summary not in ACLSUM_FIELDS:
            raise TaskError(
                f"task.summary_column {summary!r} is not an aclsum summary; choose one of "
                f"{', '.join(ACLSUM_FIELDS)}."
            )
        return cfg.text_column or "abstract", summary
    return cfg.text_column or "document", cfg.summary_column or "summary"


class SummarizationTask:
    """A tokenized summarization task (see the module docstring)."""

    type = "summarization"
    metric_names = TASK_METRICS["summarization"]

    def __init__(self, cfg: TaskSection, tokenizer: Any) -> None:
        self.cfg = cfg
        self.tokenizer = tokenizer
        doc_col, sum_col = default_columns(cfg)
        rows = task_rows(cfg)
        train_rows, eval_rows = rows.train, rows.eval
        self.eval_split = rows.eval_split
        self.notes = rows.notes
        where = f"dataset {cfg.name!r}"
        cols = {"task.text_column": doc_col, "task.summary_column": sum_col}
        require_columns(train_rows, cols, where)
        require_columns(eval_rows, cols, where)
        if cfg.max_new_tokens < 1 or cfg.max_new_tokens >= cfg.max_length:
            raise TaskError(
                f"task.max_new_tokens ({cfg.max_new_tokens}) must be in [1, task.max_length "
                f"({cfg.max_length})); the prompt gets max_length − max_new_tokens tokens."
            )
        if tokenizer.eos_token_id is None:
            raise TaskError("the tokenizer has no EOS token; summarization needs one to stop.")
        self.encoder = PromptEncoder(tokenizer, cfg.prompt or DEFAULT_PROMPT)
        budget = cfg.max_length - cfg.max_new_tokens
        self.truncation = Truncation(n_train=len(train_rows), n_eval=len(eval_rows))
        self.train_examples: list[Example] = []
        for r in train_rows:
            prompt, cut = self.encoder.encode(r[doc_col], budget)
            target, cut_target = self._target(str(r[sum_col]))
            self.truncation.train_targets += cut_target
            self.truncation.train_inputs += cut
            self.train_examples.append(Example(prompt + target, [IGNORE] * len(prompt) + target))
        self.eval_prompts: list[list[int]] = []
        self.eval_refs: list[str] = []
        self.eval_targets: list[list[int]] = []
        self.eval_ids: list[str] = []
        suffix = f"/{sum_col}" if cfg.name == "aclsum" else ""
        for r in eval_rows:
            prompt, cut = self.encoder.encode(r[doc_col], budget)
            ref = str(r[sum_col]).strip()
            target, cut_target = self._target(ref)
            self.truncation.eval_inputs += cut
            self.truncation.eval_targets += cut_target
            self.eval_prompts.append(prompt)
            self.eval_refs.append(ref)
            self.eval_targets.append(target)
            self.eval_ids.append(row_id(r) + suffix)

    def _target(self, summary: str) -> tuple[list[int], bool]:
        """``(tokens of " " + summary ⧺ EOS cut to max_new_tokens, whether it was cut)``."""
        ids = self.tokenizer(" " + summary.strip(), add_special_tokens=False)["input_ids"]
        target = [*ids, self.tokenizer.eos_token_id]
        gen = self.cfg.max_new_tokens
        return target[:gen], len(target) > gen

    def generate(self, model: Any, batch_size: int) -> list[str]:
        """Greedy continuations of every evaluation prompt (first line, stripped)."""
        device = model_device(model)
        tok = self.tokenizer
        outs: list[str] = []
        for start in range(0, len(self.eval_prompts), batch_size):
            prompts = self.eval_prompts[start : start + batch_size]
            batch = pad_batch(prompts, tok.pad_token_id, left=True)
            batch.pop("position_ids")
            batch = {k: v.to(device) for k, v in batch.items()}
            new = model.generate(
                **batch,
                **greedy_settings(self.cfg.max_new_tokens, tok),
            )[:, batch["input_ids"].shape[1] :]
            for row in new.tolist():
                text = tok.decode(row, skip_special_tokens=True)
                outs.append(text.strip().split("\n", 1)[0].strip())
        return outs

    def reference_losses(self, model: Any, batch_size: int) -> list[float]:
        """``loss_i`` of every evaluation example: teacher-forced mean NLL of its reference.

        The batch ``prompt_i ⧺ y_i`` is left-padded (``position_ids`` count real tokens), so the
        targets are the last tokens of every row and only the last ``max_i |y_i| + 1`` positions'
        logits are computed.
        """
        import torch

        device = model_device(model)
        pad = self.tokenizer.pad_token_id
        out: list[float] = []
        for start in range(0, len(self.eval_prompts), batch_size):
            prompts = self.eval_prompts[start : start + batch_size]
            targets = self.eval_targets[start : start + batch_size]
            enc = pad_batch(
                [p + t for p, t in zip(prompts, targets, strict=True)],
                pad,
                left=True,
                labels=[[IGNORE] * len(p) + t for p, t in zip(prompts, targets, strict=True)],
            )
            keep = max(len(t) for t in targets) + 1
            logits = model(
                input_ids=enc["input_ids"].to(device),
                attention_mask=enc["attention_mask"].to(device),
                position_ids=enc["position_ids"].to(device),
                logits_to_keep=keep,
            ).logits[:, :-1]  # (B, keep − 1, V): predicts the last keep − 1 tokens
            labels = enc["labels"][:, -(keep - 1) :].to(logits.device)
            nll = torch.nn.functional.cross_entropy(
                logits.float().transpose(1, 2), labels, ignore_index=IGNORE, reduction="none"
            ).double()  # (B, keep − 1), 0 where ignored
            mask = labels != IGNORE
            out += (nll.sum(-1) / mask.sum(-1)).cpu().tolist()
        return out

    def evaluate_examples(
        self, model: Any, batch_size: int = 8
    ) -> tuple[dict[str, float], list[dict[str, Any]]]:
        """Metrics and per-example outcomes on the evaluation split (model left in eval mode).

        Returns:
            ``({"rouge1", "rouge2", "rougeL", "rouge_l", "summary_loss"}, examples)`` with one
            ``{"id", "rouge1", "rouge2", "rougeL", "loss"}`` per evaluation example, in the
            split's order (see the module docstring).
        """
        import torch

        model.eval()
        with torch.no_grad():
            preds = self.generate(model, batch_size)
            losses = self.reference_losses(model, batch_size)
        self.last_predictions = preds
        per = rouge_per_example(preds, self.eval_refs)
        examples = [
            {"id": ex_id, **scores, "loss": loss}
            for ex_id, scores, loss in zip(self.eval_ids, per, losses, strict=True)
        ]
        metrics = rouge_from_examples(per)
        metrics["summary_loss"] = mean(losses)
        return metrics, examples

    def evaluate(self, model: Any, batch_size: int = 8) -> dict[str, float]:
        """The metrics of :meth:`evaluate_examples` (model left in eval mode)."""
        return self.evaluate_examples(model, batch_size)[0]
