"""Classification: tokenized examples (loss only on the answer), label-word scoring, errors."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch

from loran_search.config import TaskSection
from loran_search.tasks import TaskError, build_task
from loran_search.tasks.base import IGNORE


def _local(tmp_path: Path, n: int = 24, fmt: str = "jsonl") -> str:
    rows = [
        {"sentence": f"the queen said {i} times", "topic": "royal" if i % 2 else "cards"}
        for i in range(n)
    ]
    path = tmp_path / f"d.{fmt}"
    if fmt == "csv":
        import pandas as pd

        pd.DataFrame(rows).to_csv(path, index=False)
    else:
        path.write_text("\n".join(json.dumps(r) for r in rows))
    return str(path)


def test_embedded_bbc(glass_tokenizer: Any) -> None:
    cfg = TaskSection(name="bbc-news", max_length=64, train_size=10, eval_size=5)
    task = build_task(cfg, glass_tokenizer, max_positions=128)
    assert task.labels == ["business", "entertainment", "politics", "sports", "tech"]
    ex = task.train_examples[0]
    assert len(ex.input_ids) == len(ex.labels) <= 64
    n_answer = sum(lab != IGNORE for lab in ex.labels)
    # loss only on the answer: the labelled tail is exactly one label word's tokens
    tail = ex.input_ids[-n_answer:]
    assert tail in list(task.answers.values()) and ex.labels[-n_answer:] == tail
    assert all(lab == IGNORE for lab in ex.labels[:-n_answer])
    assert task.truncation.train_inputs == 10 and task.truncation.n_eval == 5  # long articles


@pytest.mark.parametrize("fmt", ["jsonl", "csv"])
def test_local_file_with_columns_and_label_words(
    glass_tokenizer: Any, glass_model: Any, tmp_path: Path, fmt: str
) -> None:
    cfg = TaskSection(
        name=_local(tmp_path, fmt=fmt),
        text_column="sentence",
        label_column="topic",
        label_words={"royal": "queen", "cards": "cards"},
        prompt="Story: {text}\nAbout:",
        train_size=None,
        eval_size=None,
    )
    task = build_task(cfg, glass_tokenizer)
    # 24 rows: test 6 (20 % per label), val 4 (1/8 of the other 18 per label), train 14
    assert task.truncation.train_inputs == 0 and len(task.eval_prompts) == 4
    assert task.eval_split == "val" and len(task.train_examples) == 14
    assert task.answers["royal"] == glass_tokenizer(" queen", add_special_tokens=False)["input_ids"]
    m = task.evaluate(glass_model, batch_size=4)
    assert set(m) == {"accuracy", "macro_f1", "gold_logprob_mean"} and 0.0 <= m["accuracy"] <= 1.0


def test_scores_match_a_direct_computation(
    glass_tokenizer: Any, glass_model: Any, tmp_path: Path
) -> None:
    cfg = TaskSection(
        name=_local(tmp_path, n=10),
        text_column="sentence",
        label_column="topic",
        label_words={"royal": "queen", "cards": "the garden"},  # 1 token and 2 tokens
        train_size=None,
        eval_size=None,
        eval_split="test",
    )
    task = build_task(cfg, glass_tokenizer)
    preds = task.predict(glass_model.eval(), batch_size=3)  # batched, left-padded
    metrics, examples = task.evaluate_examples(glass_model, batch_size=3)
    expected, gold_logprob = [], []
    with torch.no_grad():
        for prompt, gold in zip(task.eval_prompts, task.eval_gold, strict=True):
            scores = []  # one sequence at a time, no padding, from the full logits
            for lab in task.labels:
                ids = prompt + task.answers[lab]
                logp = torch.log_softmax(glass_model(torch.tensor([ids])).logits[0], -1)
                n = len(task.answers[lab])
                scores.append(
                    sum(float(logp[len(prompt) - 1 + t, ids[len(prompt) + t]]) for t in range(n))
                )
            expected.append(task.labels[max(range(len(scores)), key=scores.__getitem__)])
            gold_logprob.append(scores[task.labels.index(gold)])
    assert preds == expected == [e["pred"] for e in examples]
    # the companion metric: Σ_t log p(a_t | prompt, a_<t) of the gold label word, by hand
    assert [e["gold_logprob"] for e in examples] == pytest.approx(gold_logprob, abs=1e-4)
    assert metrics["gold_logprob_mean"] == pytest.approx(sum(gold_logprob) / len(gold_logprob))
    assert all(g < 0 for g in gold_logprob)


def test_aggregates_are_means_of_the_per_example_outcomes(
    glass_tokenizer: Any, glass_model: Any
) -> None:
    cfg = TaskSection(name="bbc-news", max_length=48, train_size=8, eval_size=24)
    task = build_task(cfg, glass_tokenizer, max_positions=128)
    metrics, examples = task.evaluate_examples(glass_model, batch_size=5)
    assert len(examples) == 24 and task.eval_split == "val"
    assert [e["id"] for e in examples] == task.eval_ids and len(set(task.eval_ids)) == 24
    assert all(set(e) == {"id", "gold", "pred", "correct", "gold_logprob"} for e in examples)
    assert all(e["correct"] == int(e["pred"] == e["gold"]) for e in examples)
    n = len(examples)
    assert metrics["accuracy"] == sum(e["correct"] for e in examples) / n
    assert metrics["gold_logprob_mean"] == sum(e["gold_logprob"] for e in examples) / n
    assert metrics == task.evaluate(glass_model, batch_size=24)  # batching changes nothing
    from loran_search.tasks.metrics import macro_f1

    assert metrics["macro_f1"] == macro_f1([e["pred"] for e in examples], task.eval_gold)


def test_errors(glass_tokenizer: Any, tmp_path: Path) -> None:
    path = _local(tmp_path)
    with pytest.raises(TaskError, match=r"column 'text' \(task.text_column\) not found.*sentence"):
        build_task(TaskSection(name=path, label_column="topic"), glass_tokenizer)
    msg = r"column 'topc' \(task.label_column\).*Did you mean 'topic'"
    with pytest.raises(TaskError, match=msg):
        build_task(
            TaskSection(name=path, text_column="sentence", label_column="topc"), glass_tokenizer
        )
    base = {"name": path, "text_column": "sentence", "label_column": "topic"}
    with pytest.raises(TaskError, match=r"label_words\['royal'\] = '  ' tokenizes to nothing"):
        build_task(TaskSection(**base, label_words={"royal": "  ", "cards": "c"}), glass_tokenizer)
    with pytest.raises(TaskError, match=r"label_words has no word for label \['cards'\]"):
        build_task(TaskSection(**base, label_words={"royal": "queen"}), glass_tokenizer)
    with pytest.raises(TaskError, match=r"names label \['kings'\] that are not in"):
        build_task(TaskSection(**base, label_words={"kings": "k"}), glass_tokenizer)
    with pytest.raises(TaskError, match="same label-word tokens"):
        build_task(TaskSection(**base, label_words={"royal": "x", "cards": "x"}), glass_tokenizer)
    with pytest.raises(TaskError, match=r"must contain '\{text\}' exactly once"):
        build_task(TaskSection(**base, prompt="no placeholder"), glass_tokenizer)
    with pytest.raises(TaskError, match="exceeds the model's context of 128"):
        build_task(TaskSection(**base, max_length=512), glass_tokenizer, max_positions=128)
    with pytest.raises(TaskError, match="template alone takes"):
        build_task(
            TaskSection(**base, max_length=4, prompt="A long instruction here: {text}"),
            glass_tokenizer,
        )
    with pytest.raises(TaskError, match=r"task\.type 'regression' is not one of"):
        build_task(TaskSection(**base, type="regression"), glass_tokenizer)
    (tmp_path / "one.jsonl").write_text('{"sentence": "a", "topic": "x"}\n' * 5)
    with pytest.raises(TaskError, match=r"1 distinct label;.*is task.type right"):
        build_task(
            TaskSection(
                name=str(tmp_path / "one.jsonl"), text_column="sentence", label_column="topic"
            ),
            glass_tokenizer,
        )


def test_free_text_label_column_is_a_type_mismatch(glass_tokenizer: Any, tmp_path: Path) -> None:
    rows = [{"document": f"doc {i}", "summary": f"a unique summary {i}"} for i in range(40)]
    (tmp_path / "sum.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    cfg = TaskSection(
        name=str(tmp_path / "sum.jsonl"), text_column="document", label_column="summary"
    )
    with pytest.raises(TaskError, match=r"32 distinct values in 32 rows — free text.*task\.type"):
        build_task(cfg, glass_tokenizer)
