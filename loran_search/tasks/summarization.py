"""Summarization: document → summary, loss on summary tokens, greedy generation, ROUGE.

Token budget per example (``L = task.max_length``, ``G = task.max_new_tokens``): the prompt gets
at most ``L − G`` tokens (the document is cut from the right), the target ``summary ⧺ <eos>`` at
most ``G`` tokens, so training sequences and generation both fit in ``L``. Cuts are counted in
``truncation``. Evaluation decodes greedily up to ``G`` new tokens (stopping at EOS), keeps the
text before the first newline, and scores it against the reference with ROUGE-1/2/L F-measure.
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
from loran_search.tasks.data import TaskError, require_columns, train_eval_rows
from loran_search.tasks.metrics import TASK_METRICS, rouge

DEFAULT_PROMPT = "Text: {text}\nOne-sentence summary:"
ACLSUM_FIELDS = ("challenge", "approach", "outcome")


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
        train_rows, eval_rows = train_eval_rows(cfg)
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
        gen = cfg.max_new_tokens
        eos = tokenizer.eos_token_id
        self.truncation = Truncation(n_train=len(train_rows), n_eval=len(eval_rows))
        self.train_examples: list[Example] = []
        for r in train_rows:
            prompt, cut = self.encoder.encode(r[doc_col], budget)
            target = list(
                tokenizer(" " + str(r[sum_col]).strip(), add_special_tokens=False)["input_ids"]
            )
            target.append(eos)
            if len(target) > gen:
                self.truncation.train_targets += 1
                target = target[:gen]
            self.truncation.train_inputs += cut
            self.train_examples.append(Example(prompt + target, [IGNORE] * len(prompt) + target))
        self.eval_prompts: list[list[int]] = []
        self.eval_refs: list[str] = []
        for r in eval_rows:
            prompt, cut = self.encoder.encode(r[doc_col], budget)
            ref = str(r[sum_col]).strip()
            self.truncation.eval_inputs += cut
            ref_len = len(tokenizer(" " + ref, add_special_tokens=False)["input_ids"]) + 1
            self.truncation.eval_targets += ref_len > gen
            self.eval_prompts.append(prompt)
            self.eval_refs.append(ref)

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
                max_new_tokens=self.cfg.max_new_tokens,
                do_sample=False,
                num_beams=1,
                temperature=None,
                top_p=None,
                top_k=None,
                pad_token_id=tok.pad_token_id,
                eos_token_id=tok.eos_token_id,
            )[:, batch["input_ids"].shape[1] :]
            for row in new.tolist():
                text = tok.decode(row, skip_special_tokens=True)
                outs.append(text.strip().split("\n", 1)[0].strip())
        return outs

    def evaluate(self, model: Any, batch_size: int = 8) -> dict[str, float]:
        """``{"rouge1", "rouge2", "rougeL", "rouge_l"}`` (model left in eval mode)."""
        import torch

        model.eval()
        with torch.no_grad():
            preds = self.generate(model, batch_size)
        self.last_predictions = preds
        return rouge(preds, self.eval_refs)
