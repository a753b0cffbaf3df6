"""Reading trial records, including older and partial ones."""

from __future__ import annotations

import math

import optuna
from optuna.trial import TrialState

from loran_search.analysis.records import load_records
from tests.loran_search.analysis.conftest import DIST, new_study


def test_current_records_become_one_run_per_seed(canonical) -> None:
    rec = load_records(canonical)
    assert rec.metric == "accuracy" and rec.direction == "maximize"
    assert len(rec.trials) == 6
    assert len(rec.runs[rec.runs["trial"] == 0]) == 3
    assert set(rec.trials["role"]) == {"baseline", "candidate"}
    assert rec.trials.loc[1, "params"] == {"amplitude": 1e-5, "frequency": 1e4}
    assert rec.histories[0]["0"][0]["step"] == 0
    assert rec.notes == []


def test_metric_is_inferred_when_the_study_does_not_name_it() -> None:
    study, b = new_study(metric=None)
    b.add("identity", 8, {0: 0.5})
    rec = load_records(study)
    assert rec.metric == "accuracy"


def test_metric_and_direction_from_the_search_setup_attr() -> None:
    study, b = new_study(metric=None, direction="minimize")
    study.set_user_attr("loran.setup", {"metric": "loss", "directions": ["minimize"]})
    b.metric = "loss"
    b.add("identity", 8, {0: 0.5})
    rec = load_records(study)
    assert (rec.metric, rec.direction) == ("loss", "minimize")


def test_older_records_are_read_with_notes() -> None:
    study = optuna.create_study(direction="maximize")
    # Version-0 style: params only, the trial value, no user_attrs at all.
    for act, amp, value in (("identity", None, 0.5), ("sinter", 1e-3, 0.55)):
        params = {"activation": act, "rank": 8}
        if amp is not None:
            params["sinter.amplitude"] = amp
        study.add_trial(
            optuna.trial.create_trial(
                params=params, distributions={k: DIST[k] for k in params}, value=value
            )
        )
    rec = load_records(study)
    assert rec.metric == "value"
    text = " ".join(rec.notes)
    assert "no record_version" in text and "no role" in text and "no activation_spec" in text
    cand = rec.trials[rec.trials["role"] == "candidate"].iloc[0]
    # Parameters resolved through the registry: the fixed frequency takes its default.
    assert cand["params"]["amplitude"] == 1e-3 and cand["params"]["frequency"] == 1e4
    assert cand["family"] == "sinter"
    assert rec.trials[rec.trials["role"] == "baseline"].iloc[0]["family"] == "baseline"
    run = rec.runs[rec.runs["trial"] == cand["trial"]].iloc[0]
    assert run["seed"] is None and run["metric"] == 0.55


def test_partial_records_missing_keys() -> None:
    study, b = new_study()
    b.add("identity", 8, {0: 0.5, 1: 0.6}, drop=("stability", "cost", "history"))
    b.add("sinter", 8, {0: 0.55}, amplitude=1e-4, drop=("record_version", "seed_metrics"))
    rec = load_records(study)
    assert not rec.runs.loc[rec.runs["trial"] == 0, "has_stability"].any()
    assert math.isnan(rec.trials.loc[0, "train_seconds"])
    assert any("no seed_metrics" in n for n in rec.notes)


def test_divergence_known_only_from_the_failure_reason() -> None:
    study, b = new_study()
    b.add("sinter", 8, None, amplitude=1e-2, state=TrialState.FAIL,
          failure="loss became NaN: training diverged", drop=("stability",))  # fmt: skip
    rec = load_records(study)
    runs = rec.runs[rec.runs["trial"] == 0]
    assert len(runs) == 1 and bool(runs.iloc[0]["diverged"])
    assert any("failure reason" in n for n in rec.notes)


def test_a_candidate_skipped_as_inert_is_not_an_old_record() -> None:
    """search.skip_inert records FAIL `inert:` before training: no 'no seed_metrics' note."""
    study, b = new_study()
    b.add("identity", 8, {0: 0.5})
    b.add("sinter", 8, None, amplitude=1e-5, state=TrialState.FAIL,
          failure="inert: predicted ν = 7e-06 < threshold 0.001", drop=("seed_metrics",),
          attrs={"failure_kind": "inert"})  # fmt: skip
    rec = load_records(study)
    assert not any("no seed_metrics" in n for n in rec.notes)
    assert rec.trials.loc[1, "failure_kind"] == "inert"
