"""The training-function seam: the call, the result read once (RunOutcome), clear errors."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from optuna.trial import TrialState

from loran_search.search.objective import (
    TRAIN_FN_ENV,
    RunOutcome,
    TrainFnError,
    get_train_fn,
)
from loran_search.search.study import open_study
from loran_search.search.validate import load_config
from loran_search.search.workers import run_worker
from loran_search.testing import FakeResult
from loran_search.testing import run as fake_run

pytestmark = pytest.mark.filterwarnings("ignore:Heartbeat of storage:UserWarning")


def test_a_mapping_and_an_object_read_the_same() -> None:
    as_dict = {
        "status": "completed",
        "metrics": {"accuracy": 1},
        "stability": {"diverged": False},
        "cost": {"train_seconds": 1.0},
        "history": [{"step": 1}],
        "zero_shot": None,
        "adapter_path": Path("/tmp/a"),
    }
    obj = FakeResult(
        "completed", {"accuracy": 1.0}, None, {"diverged": False}, {"train_seconds": 1.0},
        [{"step": 1}], "/tmp/a",
    )  # fmt: skip
    a, b = RunOutcome.from_result(as_dict), RunOutcome.from_result(obj)
    assert a == b
    assert a.metrics == {"accuracy": 1.0} and isinstance(a.metrics["accuracy"], float)
    assert a.adapter_path == "/tmp/a"


def test_a_numeric_scalar_is_read_but_a_numeric_string_is_refused() -> None:
    """Issue 18 (probe 9): ``"0.7"`` was silently read as 0.7; the README says it is refused."""
    import numpy as np

    assert RunOutcome.from_result({"metrics": {"accuracy": np.float32(0.5)}}).metrics == {
        "accuracy": 0.5
    }
    with pytest.raises(TrainFnError, match=r"metrics\['accuracy'\] must be a number, not text"):
        RunOutcome.from_result({"metrics": {"accuracy": "0.7"}}, source="my.module:train")


def test_every_key_is_optional() -> None:
    assert RunOutcome.from_result({}) == RunOutcome()
    assert RunOutcome.from_result({"metrics": {"accuracy": 0.5}}).status == "completed"


def test_the_evidence_fields_are_read() -> None:
    run = RunOutcome.from_result(
        {
            "eval_split": "test",
            "examples": [{"id": "x:1", "correct": 1}],
            "mechanism": {"nonlinearity_median": 0.1, "p_quantiles": [0.0, 1.0]},
        }
    )
    assert run.eval_split == "test" and run.examples == [{"id": "x:1", "correct": 1}]
    assert run.mechanism["p_quantiles"] == [0.0, 1.0]


@pytest.mark.parametrize(
    ("result", "key"),
    [
        (None, "returned NoneType None"),
        (0.5, "returned float 0.5"),
        ({"status": "ok"}, "status = str 'ok'"),
        ({"metrics": [0.5]}, "metrics = list"),
        ({"metrics": {"accuracy": "high"}}, "metrics['accuracy'] = str 'high'"),
        ({"metrics": {"accuracy": "0.7"}}, "metrics['accuracy'] = str '0.7'; metrics['accuracy']"),
        ({"metrics": {"accuracy": b"0.7"}}, "metrics['accuracy'] = bytes b'0.7'"),
        ({"stability": 3}, "stability = int 3"),
        ({"history": {"step": 1}}, "history = dict"),
        ({"history": [1, 2]}, "history = list"),
        ({"zero_shot": 0.3}, "zero_shot = float"),
        ({"adapter_path": 7}, "adapter_path = int 7"),
        ({"eval_split": 3}, "eval_split = int 3"),
        ({"examples": {"id": "a"}}, "examples = dict"),
        ({"examples": ["a"]}, "examples = list"),
        ({"mechanism": [0.1]}, "mechanism = list"),
    ],
)
def test_an_unusable_result_names_the_function_and_the_key(result: Any, key: str) -> None:
    with pytest.raises(TrainFnError) as info:
        RunOutcome.from_result(result, source="my.module:train")
    msg = str(info.value)
    assert "my.module:train" in msg and key in msg


def test_a_bad_train_fn_variable_says_how_to_write_it(monkeypatch) -> None:
    monkeypatch.setenv(TRAIN_FN_ENV, "no.such.module:run")
    with pytest.raises(TrainFnError, match="module:function"):
        get_train_fn()
    monkeypatch.setenv(TRAIN_FN_ENV, "loran_search.testing:FAKE_NOT_THERE")
    with pytest.raises(TrainFnError, match="cannot be loaded"):
        get_train_fn()
    monkeypatch.setenv(TRAIN_FN_ENV, "os:sep")
    with pytest.raises(TrainFnError, match="not a function"):
        get_train_fn()


def _run(study_file, train_fn, **kw):
    cfg = load_config(study_file(**kw))
    handle = open_study(cfg, log=lambda m: None)
    result = run_worker(handle, train_fn=train_fn, log=lambda m: None)
    return handle, result


def test_the_seam_gets_the_documented_keywords_and_a_dict_result_works(
    study_file, monkeypatch, tmp_path
) -> None:
    monkeypatch.chdir(tmp_path)
    calls: list[dict[str, Any]] = []

    def train(cfg: Any, **kwargs: Any) -> dict[str, Any]:
        calls.append(kwargs)
        res = fake_run(cfg, **kwargs)
        return {k: getattr(res, k) for k in ("status", "metrics", "stability", "cost", "history")}

    handle, result = _run(study_file, train, n_trials=1, seeds="[0]")
    assert set(calls[0]) == {
        "activation", "activation_params", "rank", "seed", "training_overrides", "on_eval",
        "adapter_dir", "progress", "eval_split",
    }  # fmt: skip
    assert calls[0]["eval_split"] == "val"
    assert result.completed == 2
    done = [t for t in handle.study.get_trials() if t.state == TrialState.COMPLETE]
    assert all(set(t.user_attrs["seed_metrics"]["0"]) >= {"accuracy"} for t in done)
