"""The digits 5–9 task: splits, ids, loss and per-example outcomes."""

from __future__ import annotations

import math

import pytest
import torch

from loran_search.config import TaskSection
from loran_search.kinds import build_network
from loran_search.tasks.data import TaskError
from loran_search.tasks.vision import TASK_CLASSES, DigitsTask


def _task(**kw: object) -> DigitsTask:
    return DigitsTask(TaskSection(name="digits", type="classification", **kw))


def test_splits_are_disjoint_stable_and_only_the_new_digits() -> None:
    full = {s: _task(train_size=None, eval_size=None, eval_split=s) for s in ("val", "test")}
    val_ids, test_ids = set(full["val"].eval_ids), set(full["test"].eval_ids)
    train = full["val"]
    assert len(train.train_examples) + len(val_ids) + len(test_ids) == 896
    assert not val_ids & test_ids
    assert {e.label for e in train.train_examples} == set(TASK_CLASSES)
    assert set(train.eval_gold) == {str(c) for c in TASK_CLASSES}
    again = _task(train_size=None, eval_size=None, eval_split="test")
    assert again.eval_ids == full["test"].eval_ids  # the same ids in every run
    small = _task(train_size=40, eval_size=20)
    assert len(small.train_examples) == 40 and len(small.eval_ids) == 20
    assert set(small.eval_ids) <= val_ids


def test_outcomes_average_to_the_metrics_and_match_a_direct_computation() -> None:
    task = _task(train_size=32, eval_size=24)
    torch.manual_seed(0)
    model = build_network("digits-cnn").eval()
    metrics, examples = task.evaluate_examples(model, batch_size=7)
    assert [e["id"] for e in examples] == task.eval_ids
    assert metrics["accuracy"] == pytest.approx(sum(e["correct"] for e in examples) / 24)
    assert metrics["gold_logprob_mean"] == pytest.approx(
        sum(e["gold_logprob"] for e in examples) / 24
    )
    with torch.no_grad():  # log-softmax over the logits of 5 … 9 only
        logits = model(task.eval_images)[:, list(TASK_CLASSES)].double()
    logp = torch.log_softmax(logits, dim=-1)
    for i, e in enumerate(examples):
        j = TASK_CLASSES.index(int(e["gold"]))
        assert e["gold_logprob"] == pytest.approx(float(logp[i, j]), abs=1e-5)
        assert e["pred"] == str(TASK_CLASSES[int(logp[i].argmax())])


def test_loss_is_the_mean_nll_of_the_batch() -> None:
    task = _task(train_size=16, eval_size=8)
    torch.manual_seed(0)
    model = build_network("digits-vit").eval()
    batch = task.train_examples[:5]
    loss = task.loss(model, batch)
    x = torch.stack([e.pixels for e in batch])
    with torch.no_grad():
        logp = torch.log_softmax(model(x)[:, list(TASK_CLASSES)], dim=-1)
    expected = -sum(float(logp[i, TASK_CLASSES.index(e.label)]) for i, e in enumerate(batch)) / 5
    assert float(loss.detach()) == pytest.approx(expected, rel=1e-5)
    assert math.isfinite(float(loss))


def test_only_the_digits_dataset() -> None:
    with pytest.raises(TaskError, match=r"set task\.name: digits"):
        DigitsTask(TaskSection(name="bbc-news", type="classification"))
    with pytest.raises(TaskError, match="split 'holdout' not found"):
        _task(eval_split="holdout")
