"""Summarization: loss only on summary tokens, truncation budget, greedy generation, errors."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from loran_search.config import TaskSection
from loran_search.tasks import TaskError, build_task
from loran_search.tasks.base import IGNORE


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
    assert set(m) == {"rouge1", "rouge2", "rougeL", "rouge_l"}
    assert len(task.last_predictions) == 3 and all("\n" not in p for p in task.last_predictions)


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
