"""Classification by label-word scoring (no free generation).

Each label ``l`` has a label word ``w_l`` (``task.label_words``, default the label itself); its
answer tokens are ``a_l = tokenize(" " + w_l)``. Training teaches ``prompt → a_{y}``, loss on the
answer tokens only. Evaluation scores every label by the log-likelihood of its answer,

    score(l) = Σ_{t=1}^{|a_l|} log p(a_{l,t} | prompt, a_{l,<t}),

and predicts ``argmax_l score(l)`` (ties → the first label in sorted order). Metrics: accuracy and
macro-F1 (:mod:`loran_search.tasks.metrics`), and the continuous companion
``gold_logprob_mean = mean_i score_i(y_i)``, the mean log-likelihood of the gold label word.

Per-example outcomes (:meth:`ClassificationTask.evaluate_examples`): one dict per evaluation
example, ``{"id", "gold", "pred", "correct", "gold_logprob"}`` with ``correct = [pred = gold]``
(0/1) and ``gold_logprob = score(y)``; ``accuracy = mean(correct)`` and
``gold_logprob_mean = mean(gold_logprob)`` exactly (the same values, one mean).
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
from loran_search.tasks.metrics import TASK_METRICS, label_metrics
from loran_search.words import count, plural

DEFAULT_PROMPT = "{text}\nTopic:"


class ClassificationTask:
    """A tokenized classification task (see the module docstring)."""

    type = "classification"
    metric_names = TASK_METRICS["classification"]

    def __init__(self, cfg: TaskSection, tokenizer: Any) -> None:
        self.cfg = cfg
        self.tokenizer = tokenizer
        text_col = cfg.text_column or "text"
        label_col = cfg.label_column or "label"
        rows = task_rows(cfg, strat_key=label_col)
        train_rows, eval_rows = rows.train, rows.eval
        self.eval_split = rows.eval_split
        self.notes = rows.notes
        where = f"dataset {cfg.name!r}"
        require_columns(
            train_rows, {"task.text_column": text_col, "task.label_column": label_col}, where
        )
        require_columns(
            eval_rows, {"task.text_column": text_col, "task.label_column": label_col}, where
        )
        self.labels = sorted({str(r[label_col]) for r in train_rows + eval_rows})
        if len(self.labels) < 2:
            raise TaskError(
                f"{where}: column {label_col!r} has {count(len(self.labels), 'distinct label')}; "
                "classification needs at least 2 (is task.type right?)."
            )
        n_rows = len(train_rows) + len(eval_rows)
        if len(self.labels) > 20 and len(self.labels) > 0.5 * n_rows:
            raise TaskError(
                f"{where}: column {label_col!r} has {len(self.labels)} distinct values in "
                f"{n_rows} rows — free text, not class labels. Is task.type right "
                "(summarization?) or task.label_column the wrong column?"
            )
        words = {str(k): str(v) for k, v in (cfg.label_words or {}).items()}
        unknown = sorted(set(words) - set(self.labels))
        if unknown:
            raise TaskError(
                f"task.label_words names {plural(len(unknown), 'label')} {unknown} that are not in "
                f"{where}; its labels: "
                f"{self.labels}."
            )
        missing = [lab for lab in self.labels if lab not in words]
        if words and missing:
            raise TaskError(
                f"task.label_words has no word for {plural(len(missing), 'label')} {missing}; give "
                "every label a word "
                f"(labels: {self.labels})."
            )
        self.label_words = {lab: words.get(lab, lab) for lab in self.labels}
        self.answers: dict[str, list[int]] = {}
        for lab, word in self.label_words.items():
            ids = list(tokenizer(" " + word.strip(), add_special_tokens=False)["input_ids"])
            if not word.strip() or not ids:
                raise TaskError(
                    f"task.label_words[{lab!r}] = {word!r} tokenizes to nothing; use a real word."
                )
            self.answers[lab] = ids
        seen: dict[tuple[int, ...], str] = {}
        for lab, ids in self.answers.items():
            if tuple(ids) in seen:
                raise TaskError(
                    f"labels {seen[tuple(ids)]!r} and {lab!r} have the same label-word tokens "
                    f"{ids}; give them different task.label_words."
                )
            seen[tuple(ids)] = lab
        self.encoder = PromptEncoder(tokenizer, cfg.prompt or DEFAULT_PROMPT)
        longest = max(len(a) for a in self.answers.values())
        budget = cfg.max_length - longest
        self.truncation = Truncation(n_train=len(train_rows), n_eval=len(eval_rows))
        self.train_examples: list[Example] = []
        for r in train_rows:
            prompt, cut = self.encoder.encode(r[text_col], budget)
            ans = self.answers[str(r[label_col])]
            self.train_examples.append(Example(prompt + ans, [IGNORE] * len(prompt) + ans))
            self.truncation.train_inputs += cut
        self.eval_prompts: list[list[int]] = []
        self.eval_gold: list[str] = []
        self.eval_ids: list[str] = []
        for r in eval_rows:
            prompt, cut = self.encoder.encode(r[text_col], budget)
            self.eval_prompts.append(prompt)
            self.eval_gold.append(str(r[label_col]))
            self.eval_ids.append(row_id(r))
            self.truncation.eval_inputs += cut

    def scores(self, model: Any, batch_size: int) -> Any:
        """``score(l)`` of every label for every evaluation prompt: an ``(n, |L|)`` float64 tensor.

        Column ``j`` is label ``self.labels[j]``; see the module docstring for ``score``.
        """
        import torch

        device = model_device(model)
        pad = self.tokenizer.pad_token_id
        out = []
        for start in range(0, len(self.eval_prompts), batch_size):
            prompts = self.eval_prompts[start : start + batch_size]
            scores = torch.zeros(len(prompts), len(self.labels), dtype=torch.float64)
            single = [j for j, lab in enumerate(self.labels) if len(self.answers[lab]) == 1]
            if single:  # one forward on the prompts scores every one-token label word
                batch = {k: v.to(device) for k, v in pad_batch(prompts, pad, left=True).items()}
                logits = model(**batch, logits_to_keep=1).logits[:, -1].float()  # (B, V)
                logp = torch.log_softmax(logits, dim=-1).double().cpu()
                for j in single:
                    scores[:, j] = logp[:, self.answers[self.labels[j]][0]]
            for j, lab in enumerate(self.labels):
                ans = self.answers[lab]
                if len(ans) == 1:
                    continue
                seqs = [p + ans for p in prompts]
                batch = {k: v.to(device) for k, v in pad_batch(seqs, pad, left=True).items()}
                logits = model(**batch, logits_to_keep=len(ans) + 1).logits[:, :-1].float()
                logp = torch.log_softmax(logits, dim=-1).double().cpu()  # (B, |a|, V)
                tgt = torch.tensor(ans).expand(len(prompts), -1)
                scores[:, j] = logp.gather(-1, tgt.unsqueeze(-1)).squeeze(-1).sum(-1)
            out.append(scores)
        return torch.cat(out)

    def predict(self, model: Any, batch_size: int) -> list[str]:
        """The best-scoring label of every evaluation prompt."""
        return [self.labels[int(i)] for i in self.scores(model, batch_size).argmax(dim=-1)]

    def evaluate_examples(
        self, model: Any, batch_size: int = 8
    ) -> tuple[dict[str, float], list[dict[str, Any]]]:
        """Metrics and per-example outcomes on the evaluation split (model left in eval mode).

        Returns:
            ``({"accuracy", "macro_f1", "gold_logprob_mean"}, examples)`` with one
            ``{"id", "gold", "pred", "correct", "gold_logprob"}`` per evaluation example, in
            the split's order (see the module docstring).
        """
        import torch

        model.eval()
        with torch.no_grad():
            scores = self.scores(model, batch_size)
        index = {lab: j for j, lab in enumerate(self.labels)}
        examples: list[dict[str, Any]] = []
        for i, (ex_id, gold) in enumerate(zip(self.eval_ids, self.eval_gold, strict=True)):
            pred = self.labels[int(scores[i].argmax())]
            examples.append(
                {
                    "id": ex_id,
                    "gold": gold,
                    "pred": pred,
                    "correct": int(pred == gold),
                    "gold_logprob": float(scores[i, index[gold]]),
                }
            )
        return label_metrics(examples, self.eval_gold), examples

    def evaluate(self, model: Any, batch_size: int = 8) -> dict[str, float]:
        """The metrics of :meth:`evaluate_examples` (model left in eval mode)."""
        return self.evaluate_examples(model, batch_size)[0]
