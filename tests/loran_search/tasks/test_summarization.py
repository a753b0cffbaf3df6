"""Summarization: loss only on summary tokens, truncation budget, greedy generation, errors."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch

from loran_search.config import TaskSection
from loran_search.tasks import TaskError, build_task
from loran_search.tasks.base import IGNORE
from loran_search.tasks.data import load_splits


def test_embedded_aclsum(glass_tokenizer: Any, glass_model: Any) -> None:
    cfg = TaskSection(
        name="aclsum",
        type="summarization",
        max_length=96,
        max_new_tokens=24,
        train_size=6,
        eval_size=3,
        summary_column="outcome",
    )
    task = build_task(cfg, glass_tokenizer, max_positions=128)
    eos = glass_tokenizer.eos_token_id
    for ex in task.train_examples:
        target = [t for t in ex.labels if t != IGNORE]
        assert 1 <= len(target) <= 24 and len(ex.input_ids) <= 96
        assert ex.input_ids[-len(target) :] == target
        assert len(ex.input_ids) - len(target) <= 96 - 24  # prompt budget = L − G
    # aclsum abstracts and summaries are longer than this budget: every cut is counted
    assert task.truncation.train_inputs == 6 and task.truncation.train_targets == 6
    assert all(ex.labels[-1] != eos for ex in task.train_examples)  # cut targets lose EOS
    m = task.evaluate(glass_model, batch_size=2)
    assert set(m) == {"rouge1", "rouge2", "rougeL", "rouge_l", "summary_loss"}
    assert len(task.last_predictions) == 3 and all("\n" not in p for p in task.last_predictions)
    # ids: paper id + summary column (one paper is three examples), from the val split
    val = {r["id"] for r in load_splits(cfg)["val"]}
    assert task.eval_split == "val" and all(i.endswith("/outcome") for i in task.eval_ids)
    assert {i.rsplit("/", 1)[0] for i in task.eval_ids} <= val


def test_local_json_with_eos_target(glass_tokenizer: Any, glass_model: Any, tmp_path: Path) -> None:
    rows = [{"dialogue": f"Alice met the cat number {i}.", "summary": "A cat."} for i in range(10)]
    (tmp_path / "s.json").write_text(json.dumps(rows))
    cfg = TaskSection(
        name=str(tmp_path / "s.json"),
        type="summarization",
        text_column="dialogue",
        max_length=64,
        max_new_tokens=8,
        train_size=None,
        eval_size=None,
        eval_split="test",
    )
    task = build_task(cfg, glass_tokenizer)
    assert task.truncation.to_dict()["train_targets"] == 0
    ex = task.train_examples[0]
    assert ex.labels[-1] == glass_tokenizer.eos_token_id
    target = glass_tokenizer(" A cat.", add_special_tokens=False)["input_ids"]
    assert [t for t in ex.labels if t != IGNORE] == [*target, glass_tokenizer.eos_token_id]
    preds = task.generate(glass_model.eval(), batch_size=4)
    assert len(preds) == 2 and all(isinstance(p, str) for p in preds)


def test_batched_generation_equals_one_by_one(
    glass_tokenizer: Any, glass_model: Any, tmp_path: Path
) -> None:
    rows = [{"document": "Alice " * (i + 1), "summary": "Alice."} for i in range(10)]
    (tmp_path / "s.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    cfg = TaskSection(
        name=str(tmp_path / "s.jsonl"),
        type="summarization",
        max_length=48,
        max_new_tokens=6,
        train_size=None,
        eval_size=None,
    )
    task = build_task(cfg, glass_tokenizer)
    glass_model.eval()
    assert task.generate(glass_model, batch_size=2) == task.generate(glass_model, batch_size=1)


def test_errors(glass_tokenizer: Any, tmp_path: Path) -> None:
    with pytest.raises(TaskError, match="not an aclsum summary; choose one of challenge"):
        build_task(
            TaskSection(name="aclsum", type="summarization", summary_column="abstract"),
            glass_tokenizer,
        )
    (tmp_path / "s.jsonl").write_text('{"text": "a", "label": "b"}\n' * 5)
    with pytest.raises(TaskError, match=r"column 'document' \(task.text_column\) not found"):
        build_task(
            TaskSection(name=str(tmp_path / "s.jsonl"), type="summarization"), glass_tokenizer
        )
    with pytest.raises(TaskError, match=r"max_new_tokens \(128\) must be in \[1, task.max_length"):
        build_task(
            TaskSection(name="aclsum", type="summarization", max_new_tokens=128, max_length=128),
            glass_tokenizer,
        )
    with pytest.raises(
        TaskError, match=r"is a summarization dataset but task\.type is 'classification'"
    ):
        build_task(TaskSection(name="aclsum", type="classification"), glass_tokenizer)


def test_per_example_rouge_and_loss_are_the_aggregates(
    glass_tokenizer: Any, glass_model: Any, tmp_path: Path
) -> None:
    rows = [
        {"document": "Alice said " * (i + 1), "summary": "the cat " * (i % 3 + 1)}
        for i in range(16)
    ]
    (tmp_path / "s.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    cfg = TaskSection(
        name=str(tmp_path / "s.jsonl"),
        type="summarization",
        max_length=48,
        max_new_tokens=6,
        train_size=None,
        eval_size=None,
        eval_split="test",
    )
    task = build_task(cfg, glass_tokenizer)
    glass_model.eval()
    metrics, examples = task.evaluate_examples(glass_model, batch_size=3)
    assert len(examples) == 4 and [e["id"] for e in examples] == task.eval_ids
    assert set(task.eval_ids) <= {str(i) for i in range(16)}  # the row index in the file
    n = len(examples)
    for k in ("rouge1", "rouge2", "rougeL"):
        assert metrics[k] == sum(e[k] for e in examples) / n
    assert metrics["rouge_l"] == metrics["rougeL"]
    assert metrics["summary_loss"] == sum(e["loss"] for e in examples) / n
    # the companion by a direct computation: one example at a time, the full logits,
    # −(1/|y|) Σ_t log p(y_t | prompt, y_<t) over the reference tokens ⧺ EOS (cut to 6)
    eos = glass_tokenizer.eos_token_id
    with torch.no_grad():
        for prompt, ref, e in zip(task.eval_prompts, task.eval_refs, examples, strict=True):
            target = [*glass_tokenizer(" " + ref, add_special_tokens=False)["input_ids"], eos][:6]
            ids = prompt + target
            logp = torch.log_softmax(glass_model(torch.tensor([ids])).logits[0].double(), -1)
            nll = [-float(logp[len(prompt) - 1 + t, target[t]]) for t in range(len(target))]
            assert e["loss"] == pytest.approx(sum(nll) / len(nll), abs=1e-4)
    from loran_search.tasks.metrics import rouge

    assert rouge(task.last_predictions, task.eval_refs) == pytest.approx(
        {k: v for k, v in metrics.items() if k != "summary_loss"}
    )
