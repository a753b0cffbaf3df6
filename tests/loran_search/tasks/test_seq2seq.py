"""Encoder-decoder tasks on a tiny T5: label-word scoring against a direct computation, the
loss, greedy decoding and the reference losses."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch

from loran_search.config import TaskSection
from loran_search.tasks.base import IGNORE
from loran_search.tasks.seq2seq import Seq2SeqClassificationTask, Seq2SeqSummarizationTask
from tests.conftest import tiny_t5

WORDS = {"a": "apple", "b": "river stone", "c": "cloud"}


@pytest.fixture(scope="module")
def t5() -> Any:
    return tiny_t5(seed=0)


def _jsonl(path: Path, rows: list[dict[str, Any]]) -> str:
    path.write_text("\n".join(json.dumps(r) for r in rows), encoding="utf-8")
    return str(path)


@pytest.fixture
def classification(tmp_path: Path, glass_tokenizer: Any) -> Seq2SeqClassificationTask:
    rows = [
        {"text": f"the {w} is seen on day {i}", "label": lab}
        for i in range(12)
        for lab, w in WORDS.items()
    ]
    cfg = TaskSection(
        name=_jsonl(tmp_path / "cls.jsonl", rows), type="classification", max_length=32,
        train_size=8, eval_size=6, label_words=WORDS,
    )  # fmt: skip
    return Seq2SeqClassificationTask(cfg, None, glass_tokenizer)


def _direct_logprob(model: Any, source: list[int], target: list[int]) -> float:
    """Σ_t log p(y_t | x, y_<t) by one decoder pass on <start> ⧺ y_<T, one example."""
    start = model.config.decoder_start_token_id
    dec = torch.tensor([[start, *target[:-1]]])
    with torch.no_grad():
        logits = model(input_ids=torch.tensor([source]), decoder_input_ids=dec).logits[0]
    logp = torch.log_softmax(logits.double(), dim=-1)
    return float(sum(logp[t, y] for t, y in enumerate(target)))


def test_label_word_scores_match_a_direct_computation(
    classification: Seq2SeqClassificationTask, t5: Any
) -> None:
    task = classification
    assert any(len(a) > 1 for a in task.answers.values())  # a multi-token label word too
    eos = task.tokenizer.eos_token_id
    assert all(p[-1] == eos for p in task.eval_prompts)
    scores = task.scores(t5, batch_size=4)
    assert scores.shape == (6, 3)
    for i, prompt in enumerate(task.eval_prompts):
        for j, lab in enumerate(task.labels):
            direct = _direct_logprob(t5, prompt, task.answers[lab])
            assert float(scores[i, j]) == pytest.approx(direct, abs=1e-4)
    metrics, examples = task.evaluate_examples(t5, batch_size=4)
    assert metrics["accuracy"] == pytest.approx(sum(e["correct"] for e in examples) / 6)


def test_loss_is_the_target_token_cross_entropy(
    classification: Seq2SeqClassificationTask, t5: Any
) -> None:
    batch = classification.train_examples[:3]
    for ex in batch:
        assert ex.source[-1] == classification.tokenizer.eos_token_id
        assert IGNORE not in ex.target
    loss = classification.loss(t5, batch)
    nll = sum(-_direct_logprob(t5, e.source, e.target) for e in batch)
    assert float(loss) == pytest.approx(nll / sum(len(e.target) for e in batch), rel=1e-4)


def test_summarization_generates_and_scores(tmp_path: Path, glass_tokenizer: Any, t5: Any) -> None:
    rows = [
        {"document": f"a long text number {i} about rivers and stones", "summary": f"text {i}"}
        for i in range(60)
    ]
    cfg = TaskSection(
        name=_jsonl(tmp_path / "sum.jsonl", rows), type="summarization", max_length=40,
        max_new_tokens=6, train_size=8, eval_size=4,
    )  # fmt: skip
    task = Seq2SeqSummarizationTask(cfg, None, glass_tokenizer)
    metrics, examples = task.evaluate_examples(t5, batch_size=3)
    assert {"rouge1", "rougeL", "summary_loss"} <= set(metrics)
    assert len(examples) == len(task.last_predictions) == 4
    for prompt, target, e in zip(task.eval_prompts, task.eval_targets, examples, strict=True):
        direct = -_direct_logprob(t5, prompt, target) / len(target)
        assert e["loss"] == pytest.approx(direct, rel=1e-4)
    loss = task.loss(t5, task.train_examples[:2])
    assert torch.isfinite(loss)
