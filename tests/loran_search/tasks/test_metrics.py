"""Metrics on hand-made cases (values worked out by hand in the comments)."""

from __future__ import annotations

import pytest

from loran_search.tasks.metrics import accuracy, classification_metrics, macro_f1, rouge


def test_accuracy_and_macro_f1_by_hand() -> None:
    gold = ["a", "a", "b", "c"]
    pred = ["a", "b", "b", "b"]
    assert accuracy(pred, gold) == pytest.approx(0.5)
    # a: TP1 FP0 FN1 → F1 = 2/(2+0+1) = 2/3; b: TP1 FP2 FN0 → 2/(2+2+0) = 1/2; c: TP0 → 0
    assert macro_f1(pred, gold) == pytest.approx((2 / 3 + 1 / 2 + 0) / 3)
    assert classification_metrics(gold, gold) == {"accuracy": 1.0, "macro_f1": 1.0}


def test_macro_f1_counts_labels_only_predicted() -> None:
    # gold has only 'a'; predicting 'z' once adds label z with F1 0: (2·1/(2+0+1) + 0)/2
    assert macro_f1(["a", "z"], ["a", "a"]) == pytest.approx((2 / 3) / 2)


def test_metric_input_errors() -> None:
    with pytest.raises(ValueError, match="equal, non-empty"):
        accuracy([], [])
    with pytest.raises(ValueError, match="equal, non-empty"):
        rouge(["a"], ["a", "b"])


def test_rouge_by_hand() -> None:
    # pred "the cat sat", ref "the cat ran": unigram overlap 2/3 both ways → F = 2/3;
    # bigrams {the cat, cat sat} vs {the cat, cat ran} → 1/2; LCS "the cat" = 2 → 2/3
    r = rouge(["the cat sat"], ["the cat ran"])
    assert r["rouge1"] == pytest.approx(2 / 3)
    assert r["rouge2"] == pytest.approx(1 / 2)
    assert r["rougeL"] == pytest.approx(2 / 3)
    assert r["rouge_l"] == r["rougeL"]
    perfect = rouge(["Dogs run fast."], ["dogs run fast"])
    assert perfect["rouge1"] == pytest.approx(1.0) and perfect["rougeL"] == pytest.approx(1.0)
    assert rouge(["alpha"], ["omega"])["rouge1"] == 0.0


def test_metric_names_per_task_type_come_from_one_table() -> None:
    from loran_search.tasks import TASK_METRICS, TASK_TYPES, metric_names
    from loran_search.tasks.classification import ClassificationTask
    from loran_search.tasks.summarization import SummarizationTask

    assert TASK_TYPES == ("classification", "summarization", "control")
    assert ClassificationTask.metric_names == TASK_METRICS["classification"]
    assert SummarizationTask.metric_names == TASK_METRICS["summarization"]
    from loran_search.tasks.control import ControlTask
    from loran_search.tasks.vision import DigitsTask

    assert DigitsTask.metric_names == TASK_METRICS["classification"]
    assert ControlTask.metric_names == TASK_METRICS["control"] == ("mean_return",)
    assert metric_names("summarization") == ("rouge1", "rouge2", "rougeL", "rouge_l")
    assert metric_names("summarization", aliases=False) == ("rouge1", "rouge2", "rougeL")
    assert set(classification_metrics(["a"], ["a"])) == set(metric_names("classification"))
    assert set(rouge(["a b"], ["a b"])) == set(metric_names("summarization"))
