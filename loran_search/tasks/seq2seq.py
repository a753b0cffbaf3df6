"""The text tasks for an encoder-decoder (T5 family): the prompt in the encoder, the answer decoded.

Both tasks read, check and tokenize their data exactly as their causal-LM counterparts
(:class:`~loran_search.tasks.classification.ClassificationTask`,
:class:`~loran_search.tasks.summarization.SummarizationTask`: the same splits, ids, prompt
template, label words, token budgets and truncation counts); what changes is where the tokens
go. An example's causal sequence ``prompt ⧺ answer`` becomes the encoder input
``x = prompt ⧺ <eos>`` and the decoder target ``y = answer``; the decoder reads
``<start> ⧺ y_{<t}`` (T5 shifts the labels right itself, ``decoder_start_token_id``) and

    log p(y | x) = Σ_t log p(y_t | x, y_{<t}).

* Loss (:meth:`Seq2SeqMixin.loss`): the mean token cross-entropy of the targets of a
  micro-batch, ``−(1/Σ_i |y_i|) Σ_i log p(y_i | x_i)`` (encoder inputs right-padded and masked,
  targets padded with -100) — the causal tasks' answer-token loss, through the decoder.
* Classification: ``score(l) = log p(a_l | x)`` for every label word ``a_l`` (the encoder runs
  once per batch, the decoder once per label), prediction ``argmax_l score(l)``; metrics and
  per-example outcomes as for the causal task.
* Summarization: greedy decoding (``num_beams = 1``) of at most ``task.max_new_tokens`` tokens,
  the text before the first newline, ROUGE against the reference; ``loss_i`` is the mean NLL of
  the reference target ``y_i`` (its tokens ⧺ EOS cut to ``max_new_tokens``), teacher-forced.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from loran_search.config import TaskSection
from loran_search.tasks.base import IGNORE, model_device
from loran_search.tasks.classification import ClassificationTask
from loran_search.tasks.summarization import SummarizationTask, greedy_settings


@dataclass
class Seq2SeqExample:
    """One example: encoder input ids and decoder target ids."""

    source: list[int]
    target: list[int]


def _encoder_batch(sources: list[list[int]], pad_id: int, device: Any) -> dict[str, Any]:
    """Right-padded encoder inputs and their attention mask."""
    import torch

    n = max(len(s) for s in sources)
    ids = torch.full((len(sources), n), pad_id, dtype=torch.long)
    mask = torch.zeros((len(sources), n), dtype=torch.long)
    for i, s in enumerate(sources):
        ids[i, : len(s)] = torch.tensor(s, dtype=torch.long)
        mask[i, : len(s)] = 1
    return {"input_ids": ids.to(device), "attention_mask": mask.to(device)}


def _targets(targets: list[list[int]], device: Any) -> Any:
    """Decoder labels padded with ``-100``."""
    import torch

    n = max(len(t) for t in targets)
    labels = torch.full((len(targets), n), IGNORE, dtype=torch.long)
    for i, t in enumerate(targets):
        labels[i, : len(t)] = torch.tensor(t, dtype=torch.long)
    return labels.to(device)


def target_logprobs(
    model: Any, enc: dict[str, Any], labels: Any, encoder_outputs: Any = None
) -> Any:
    """``log p(y_t | x, y_{<t})`` per target position: ``(B, T)`` float64, 0 where ignored."""
    import torch

    kwargs = dict(enc)
    if encoder_outputs is not None:
        kwargs = {"attention_mask": enc["attention_mask"], "encoder_outputs": encoder_outputs}
    logits = model(**kwargs, labels=labels).logits.float()  # (B, T, V)
    logp = torch.log_softmax(logits, dim=-1).double()
    safe = labels.clamp(min=0)
    picked = logp.gather(-1, safe.unsqueeze(-1)).squeeze(-1)
    return torch.where(labels == IGNORE, torch.zeros_like(picked), picked)


class Seq2SeqMixin:
    """The encoder-decoder examples and loss shared by both tasks (module docstring)."""

    tokenizer: Any
    train_examples: list[Any]
    eval_prompts: list[list[int]]

    def _to_seq2seq(self) -> None:
        eos = self.tokenizer.eos_token_id
        converted = []
        for ex in self.train_examples:
            n_prompt = sum(1 for lab in ex.labels if lab == IGNORE)
            source = list(ex.input_ids[:n_prompt]) + ([eos] if eos is not None else [])
            converted.append(Seq2SeqExample(source, list(ex.labels[n_prompt:])))
        self.train_examples = converted
        if eos is not None:
            self.eval_prompts = [[*p, eos] for p in self.eval_prompts]

    def loss(self, model: Any, batch: list[Seq2SeqExample]) -> Any:
        """Mean target-token cross-entropy of a micro-batch (module docstring)."""
        import torch

        device = model_device(model)
        enc = _encoder_batch([e.source for e in batch], self.tokenizer.pad_token_id, device)
        labels = _targets([e.target for e in batch], device)
        logits = model(**enc, labels=labels).logits  # (B, T, V)
        return torch.nn.functional.cross_entropy(
            logits.flatten(0, 1).float(), labels.flatten(), ignore_index=IGNORE
        )


class Seq2SeqClassificationTask(Seq2SeqMixin, ClassificationTask):
    """Label-word classification through the decoder (module docstring)."""

    def __init__(self, cfg: TaskSection, model: Any, tokenizer: Any) -> None:
        super().__init__(cfg, tokenizer)
        self._to_seq2seq()

    def scores(self, model: Any, batch_size: int) -> Any:
        """``score(l) = log p(a_l | x)`` per label and evaluation prompt: ``(n, |L|)`` float64."""
        import torch

        device = model_device(model)
        out = []
        for start in range(0, len(self.eval_prompts), batch_size):
            prompts = self.eval_prompts[start : start + batch_size]
            enc = _encoder_batch(prompts, self.tokenizer.pad_token_id, device)
            encoder_outputs = model.get_encoder()(**enc)  # the encoder once per batch
            scores = torch.zeros(len(prompts), len(self.labels), dtype=torch.float64)
            for j, lab in enumerate(self.labels):
                labels = _targets([self.answers[lab]] * len(prompts), device)
                lp = target_logprobs(model, enc, labels, encoder_outputs)
                scores[:, j] = lp.sum(-1).cpu()
            out.append(scores)
        return torch.cat(out)


class Seq2SeqSummarizationTask(Seq2SeqMixin, SummarizationTask):
    """Summarization by an encoder-decoder (module docstring)."""

    def __init__(self, cfg: TaskSection, model: Any, tokenizer: Any) -> None:
        super().__init__(cfg, tokenizer)
        self._to_seq2seq()

    def generate(self, model: Any, batch_size: int) -> list[str]:
        """Greedy decodings of every evaluation prompt (first line, stripped)."""
        device = model_device(model)
        tok = self.tokenizer
        outs: list[str] = []
        for start in range(0, len(self.eval_prompts), batch_size):
            enc = _encoder_batch(
                self.eval_prompts[start : start + batch_size], tok.pad_token_id, device
            )
            new = model.generate(
                **enc,
                **greedy_settings(self.cfg.max_new_tokens, tok),
            )
            for row in new.tolist():
                text = tok.decode(row, skip_special_tokens=True)
                outs.append(text.strip().split("\n", 1)[0].strip())
        return outs

    def reference_losses(self, model: Any, batch_size: int) -> list[float]:
        """``loss_i``: the mean NLL of every evaluation reference target, teacher-forced."""
        device = model_device(model)
        out: list[float] = []
        for start in range(0, len(self.eval_prompts), batch_size):
            prompts = self.eval_prompts[start : start + batch_size]
            targets = self.eval_targets[start : start + batch_size]
            enc = _encoder_batch(prompts, self.tokenizer.pad_token_id, device)
            labels = _targets(targets, device)
            lp = target_logprobs(model, enc, labels)
            n = (labels != IGNORE).sum(-1)
            out += (-lp.sum(-1) / n).cpu().tolist()
        return out
