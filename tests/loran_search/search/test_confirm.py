"""The confirmation phase in-process with the fake trainer: what is confirmed, on which seeds and
split, exactly once, resumable, refused when changed; the record's evidence fields; metric
names; the inert prediction and ``search.skip_inert``."""

from __future__ import annotations

import json
import warnings
from collections import Counter
from pathlib import Path
from typing import Any

import optuna
import pytest
from optuna.trial import TrialState

from loran_search import record as R
from loran_search.search.confirm import ConfirmMismatch, confirm_setup
from loran_search.search.keys import confirm_key
from loran_search.search.objective import TrainFnError
from loran_search.search.progress import progress_of
from loran_search.search.study import open_study
from loran_search.search.summary import summarize
from loran_search.search.validate import load_config
from loran_search.search.workers import run_confirmation, run_worker
from loran_search.testing import run as fake_run
from tests.loran_search.search.conftest import FAKE_SPEC

pytestmark = pytest.mark.filterwarnings("ignore:Heartbeat of storage:UserWarning")

GRID3 = "    sinter.amplitude: [1.0e-4, 1.0e-3, 1.0e-2]\n    sinter.frequency: 1.0e4"
RANGE = "    sinter.amplitude: {low: 1.0e-5, high: 1.0e-2, log: true}\n    sinter.frequency: 1.0e4"
CONFIRM2 = "{top_k: 2, seeds: [100, 101], split: test}"


@pytest.fixture(autouse=True)
def _fake(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("LORAN_SEARCH_TRAIN_FN", FAKE_SPEC)
    for var in ("FAKE_TRAIN_SLEEP", "FAKE_TRAIN_RAISE", "FAKE_TRAIN_MECHANISM", "FAKE_TRAIN_LOG"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.chdir(tmp_path)


class Calls:
    """The fake trainer, recording each call's (activation, params, seed, eval_split)."""

    def __init__(self, fail: Any = None) -> None:
        self.calls: list[tuple[str, str, int, str]] = []
        self.fail = fail

    def __call__(self, cfg: Any, **kw: Any) -> Any:
        key = (kw["activation"], json.dumps(kw["activation_params"], sort_keys=True))
        self.calls.append((*key, kw["seed"], kw["eval_split"]))
        if self.fail is not None and self.fail(kw):
            raise OSError(f"flaky for seed {kw['seed']}")
        return fake_run(cfg, **kw)


def run(path: Path, train: Any = None, logs: list[str] | None = None, confirm=True, **kw):
    cfg = load_config(path, kw.pop("overrides", []))
    handle = open_study(cfg, log=lambda m: None)
    setup = confirm_setup(cfg) if confirm else None
    result = run_worker(
        handle,
        train_fn=train,
        log=logs.append if logs is not None else (lambda m: None),
        confirm=setup,
        **kw,
    )
    return handle, result


def confirmations(study: optuna.Study) -> list[optuna.trial.FrozenTrial]:
    return [t for t in study.get_trials() if t.user_attrs.get("role") in R.CONFIRM_ROLES]


def assert_exactly_once(study: optuna.Study) -> Counter:
    """Each confirmation key COMPLETE exactly once; nothing RUNNING or WAITING."""
    trials = study.get_trials()
    assert not [t.number for t in trials if t.state in (TrialState.RUNNING, TrialState.WAITING)]
    done = Counter(
        t.user_attrs[R.CONFIRM_KEY] for t in confirmations(study) if t.state == TrialState.COMPLETE
    )
    assert all(n == 1 for n in done.values()), done
    keys = {t.user_attrs[R.CONFIRM_KEY] for t in confirmations(study)}
    assert set(done) == keys, "a confirmation key never completed"
    return done


# ------------------------------------------------------------------------------ what is confirmed


def test_the_top_k_and_their_baseline_are_confirmed_on_held_out_seeds_and_split(
    study_file,
) -> None:
    train = Calls()
    logs: list[str] = []
    handle, result = run(study_file(params=GRID3, confirm=CONFIRM2), train, logs)
    study = handle.study
    assert result.confirm_queued == 3 and result.confirm_ran == 3
    assert "every confirmation trial is done" in result.confirm_reason
    assert any("Confirmation: queued 3 trials" in m for m in logs)
    search = {t.number: t for t in study.get_trials() if t.user_attrs["role"] in R.SEARCH_ROLES}
    conf = confirmations(study)
    roles = Counter(t.user_attrs["role"] for t in conf)
    assert roles == {"confirm": 2, "confirm_baseline": 1}
    assert all(t.state == TrialState.COMPLETE for t in conf)
    # the two best candidates by search value (amplitude 1e-2, then 1e-3), distinct
    cands = sorted(
        (t for t in search.values() if t.user_attrs["role"] == "candidate"),
        key=lambda t: -t.value,
    )
    confirmed = [t for t in conf if t.user_attrs["role"] == "confirm"]
    assert [t.params for t in confirmed] == [c.params for c in cands[:2]]
    for t in conf:
        rec = R.TrialRecord.from_frozen(t)
        assert rec.eval_split == "test"
        assert set(rec.seed_metrics or {}) == {"100", "101"}
        assert set(rec.examples) == {"100", "101"}
        assert all(i.startswith("fake:test:") for i in rec.examples["100"]["id"])
        assert set(rec.mechanism) == {"100", "101"}
        assert "layers" not in rec.mechanism["100"] and len(rec.mechanism["100"]["p_quantiles"])
        assert rec.confirm_of and all(search[n].params == t.params for n in rec.confirm_of)
        assert t.intermediate_values == {}  # no pruning, nothing for the pruner to compare
        assert t.user_attrs[R.CONFIRM_KEY] == confirm_key(t.user_attrs["role"], t.params)
        assert R.ADAPTER_PATH not in t.user_attrs  # a confirmation keeps no adapter
    # search trials: their own split and seeds
    for t in search.values():
        rec = R.TrialRecord.from_frozen(t)
        assert rec.eval_split == "val" and set(rec.seed_metrics or {}) == {"0", "1"}
        assert all(i.startswith("fake:val:") for i in rec.examples["0"]["id"])
    splits = Counter(c[3] for c in train.calls)
    assert splits == {"val": 8, "test": 6}  # 4 search trials × 2 seeds, 3 confirmations × 2
    assert {c[2] for c in train.calls if c[3] == "test"} == {100, 101}
    assert study.user_attrs[R.STUDY_CONFIRM] == {
        "top_k": 2,
        "seeds": [100, 101],
        "split": "test",
    }
    p = progress_of(study, handle.cfg)
    assert p.candidates == 3 and p.confirm_done == 3  # not counted in n_trials
    assert p.best_trial == cands[0].number  # a confirmation value is never the best
    assert_exactly_once(study)


def test_a_rerun_queues_and_trains_nothing_again_and_a_larger_top_k_adds_only_the_rest(
    study_file,
) -> None:
    path = study_file(params=GRID3, confirm=CONFIRM2)
    run(path)
    train = Calls()
    _, result = run(path, train)
    assert result.ran == 0 and result.confirm_queued == 0 and train.calls == []
    handle, result = run(path, train, overrides=["study.confirm.top_k=3"])
    assert result.confirm_queued == 1 and result.confirm_ran == 1
    assert len(train.calls) == 2 and {c[3] for c in train.calls} == {"test"}
    assert Counter(t.user_attrs["role"] for t in confirmations(handle.study)) == {
        "confirm": 3,
        "confirm_baseline": 1,
    }
    assert handle.study.user_attrs[R.STUDY_CONFIRM]["top_k"] == 3
    assert_exactly_once(handle.study)


def test_other_seeds_or_split_for_a_confirmed_study_are_refused(study_file, monkeypatch) -> None:
    # 'val2' below stands for another held-out split of a dataset whose splits validate cannot
    # list offline (a hub dataset's); bbc-news has no third held-out split to switch to
    monkeypatch.setattr("loran_search.tasks.data.available_splits", lambda task: None)
    path = study_file(params=GRID3, confirm=CONFIRM2)
    run(path)
    with pytest.raises(ConfirmMismatch) as info:
        run(path, overrides=["study.confirm.seeds=[200, 201]"])
    msg = str(info.value)
    assert "seeds: [100, 101] → [200, 201]" in msg and "3 confirmation trials" in msg
    assert "Restore study.confirm" in msg and "study.name" in msg
    with pytest.raises(ConfirmMismatch, match="split: 'test' → 'val2'"):
        run(path, overrides=["study.confirm.split=val2"])


def test_no_confirm_setup_means_no_confirmation(study_file) -> None:
    handle, result = run(study_file(params=GRID3, confirm=CONFIRM2), confirm=False)
    assert confirmations(handle.study) == [] and result.confirm_reason == ""
    assert R.STUDY_CONFIRM not in handle.study.user_attrs


def test_confirming_an_existing_study_later(study_file) -> None:
    path = study_file(params=GRID3, confirm="false")
    handle, _ = run(path)
    assert confirmations(handle.study) == []
    cfg = load_config(path)
    setup = confirm_setup(cfg, top_k=1, seeds=[7], force=True)
    assert setup is not None and setup.split == "test"  # the default split, confirm: false
    train = Calls()
    handle = open_study(cfg, log=lambda m: None)
    result = run_confirmation(handle, setup, train_fn=train, log=lambda m: None)
    assert result.confirm_ran == 2 and result.ran == 2
    assert {(c[2], c[3]) for c in train.calls} == {(7, "test")}
    assert "confirmation (held out: on 'test', seeds [7]" in summarize(handle.study, cfg)
    assert_exactly_once(handle.study)


def test_a_failed_confirmation_is_retried_by_the_same_command(study_file) -> None:
    path = study_file(params=GRID3, confirm=CONFIRM2)
    flaky = Calls(fail=lambda kw: kw["eval_split"] == "test" and kw["activation"] == "sinter")
    logs: list[str] = []
    handle, result = run(path, flaky, logs)
    failed = [t for t in confirmations(handle.study) if t.state == TrialState.FAIL]
    assert len(failed) == 2 and all(t.user_attrs["failure_kind"] == "error" for t in failed)
    assert any("2 confirmation trials failed with an error" in n for n in result.notes)
    handle, result = run(path, Calls())  # the cause is fixed: the same command again
    assert sorted(result.requeued) == sorted(t.number for t in failed)
    assert result.confirm_ran == 2
    assert_exactly_once(handle.study)
    for t in confirmations(handle.study):
        if t.state == TrialState.COMPLETE and t.user_attrs["role"] == "confirm":
            assert t.user_attrs[R.CONFIRM_OF]  # a retry keeps confirm_of and its key
            assert t.system_attrs["retry_history"]


def test_a_duplicate_queued_confirmation_is_recorded_surplus_and_never_run(study_file) -> None:
    """Two workers that queue at the same instant may queue a key twice: one trial runs."""
    path = study_file(params=GRID3, confirm=CONFIRM2)
    handle, _ = run(path, confirm=False)
    cfg = handle.cfg
    setup = confirm_setup(cfg)
    params = {"activation": "identity", "rank": 4}
    key = confirm_key("confirm_baseline", params)
    for _ in range(2):  # what a racing worker would have queued too
        handle.study.enqueue_trial(
            params, user_attrs={"role": "confirm_baseline", "confirm_key": key, "confirm_of": [0]}
        )
    train = Calls()
    result = run_worker(handle, train_fn=train, log=lambda m: None, confirm=setup)
    done = assert_exactly_once(handle.study)
    assert done[key] == 1 and result.confirm_queued == 2  # the two candidates only
    surplus = [
        t
        for t in confirmations(handle.study)
        if t.state == TrialState.FAIL and t.user_attrs["failure_kind"] == "surplus"
    ]
    assert len(surplus) == 1 and "duplicate confirmation" in surplus[0].user_attrs["failure"]
    assert sum(1 for c in train.calls if c[0] == "identity") == 2  # one trial, two seeds


def test_a_confirmation_trial_popped_by_a_searching_worker_runs_as_one(study_file) -> None:
    """Queued while another worker still searched: ask() pops it; it runs on the held-out setup."""
    path = study_file(params=RANGE, sampler="{name: random, seed: 0}", n_trials=2, confirm=CONFIRM2)
    handle, _ = run(path, confirm=False)
    best = max(
        (t for t in handle.study.get_trials() if t.user_attrs["role"] == "candidate"),
        key=lambda t: t.value,
    )
    # what another worker's confirmation phase queued (setup first, then the trial)
    handle.study.set_user_attr(R.STUDY_CONFIRM, confirm_setup(handle.cfg).to_dict())
    key = confirm_key("confirm", best.params)
    handle.study.enqueue_trial(
        best.params,
        user_attrs={"role": "confirm", "confirm_key": key, "confirm_of": [best.number]},
    )
    train = Calls()
    handle, _result = run(path, train, overrides=["study.n_trials=3"], confirm=False)
    tests = [c for c in train.calls if c[3] == "test"]
    assert sorted(c[2] for c in tests) == [100, 101]
    assert progress_of(handle.study, handle.cfg).candidates == 3  # and the search went on
    conf = confirmations(handle.study)
    assert len(conf) == 1 and conf[0].state == TrialState.COMPLETE
    assert R.TrialRecord.from_frozen(conf[0]).eval_split == "test"


def test_the_sampler_never_sees_confirmation_trials(study_file) -> None:
    path = study_file(params=RANGE, sampler="{name: tpe, seed: 0}", n_trials=2, confirm=CONFIRM2)
    handle, _ = run(path)
    seen: list[int] = []
    sampler = handle.study.sampler
    base = sampler._base  # the search's wrapper around the configured sampler
    original = base.sample_independent

    def spy(study, trial, name, dist):
        seen.extend(t.number for t in study._get_trials(deepcopy=False))
        return original(study, trial, name, dist)

    base.sample_independent = spy
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        handle.space.suggest(handle.study.ask())
    conf = {t.number for t in confirmations(handle.study)}
    assert seen and not (set(seen) & conf)


def test_a_seam_function_without_eval_split_searches_and_is_refused_for_confirmation(
    study_file,
) -> None:
    def old_style(
        cfg, *, activation, activation_params, rank, seed, training_overrides=None,
        on_eval=None, adapter_dir=None, progress=True,
    ):  # fmt: skip
        res = fake_run(
            cfg, activation=activation, activation_params=activation_params, rank=rank,
            seed=seed, training_overrides=training_overrides, on_eval=on_eval,
            adapter_dir=adapter_dir, progress=progress,
        )  # fmt: skip
        return {"status": res.status, "metrics": res.metrics}  # no examples, no mechanism

    path = study_file(params=GRID3, confirm=CONFIRM2)
    with pytest.raises(TrainFnError, match="takes no eval_split argument"):
        run(path, old_style)
    study = optuna.load_study(study_name="t", storage=load_config(path).study.storage)
    search = [t for t in study.get_trials() if t.user_attrs["role"] in R.SEARCH_ROLES]
    assert all(t.state == TrialState.COMPLETE for t in search)
    rec = R.TrialRecord.from_frozen(search[0])
    assert rec.examples == {} and rec.mechanism == {} and rec.eval_split == "val"
    waiting = [t for t in confirmations(study) if t.state == TrialState.WAITING]
    assert waiting, "the refused confirmation trial is queued again, nothing lost"


def test_a_result_on_another_split_than_asked_is_refused(study_file) -> None:
    def liar(cfg, **kw):
        res = fake_run(cfg, **kw)
        res.eval_split = "val"
        return res

    with pytest.raises(TrainFnError, match="reports eval_split = 'val'"):
        run(study_file(params=GRID3, confirm=CONFIRM2), liar)


# ------------------------------------------------------------------------------ record, names


def test_many_examples_are_stored_in_parts_and_read_back_whole(study_file) -> None:
    path = study_file(params="    sinter.amplitude: 1.0e-2\n    sinter.frequency: 1.0e4")
    handle, _ = run(path, overrides=["task.eval_size=3000", "study.seeds=[0]"], confirm=False)
    t = handle.study.get_trials()[1]
    parts = [k for k in t.user_attrs if k.startswith("examples.0.")]
    assert len(parts) >= 2 and t.user_attrs["examples.0"]["parts"] == len(parts)
    rec = R.TrialRecord.from_frozen(t)
    assert len(rec.examples["0"]["id"]) == 3000 and rec.examples["0"]["id"][2999].endswith("02999")


def test_the_study_names_its_metric_for_the_dashboard(study_file) -> None:
    handle, _ = run(study_file(params=GRID3), confirm=False)
    assert handle.study.metric_names == ["accuracy"]
    multi = study_file(
        "m.yaml",
        name="multi",
        params=GRID3,
        sampler="{name: nsga2, seed: 0}",
    )
    cfg = load_config(multi, ["study.objectives=[train_seconds]"])
    h = open_study(cfg, log=lambda m: None)
    assert h.study.metric_names == ["accuracy", "train_seconds"]


# ------------------------------------------------------------------------------ inert candidates


def test_inert_candidates_are_predicted_and_said_before_training(study_file) -> None:
    logs: list[str] = []
    handle, _ = run(study_file(params=GRID3), logs=logs, confirm=False)
    head = next(m for m in logs if m.startswith("Predicted non-linearity"))
    assert "2 of 3 queued candidate configurations are inert" in head
    assert "trained anyway (search.skip_inert: false)" in head
    lines = [m for m in logs if m.startswith("  trial ")]
    assert len(lines) == 3 and sum(m.endswith("inert") for m in lines) == 2
    cands = [t for t in handle.study.get_trials() if t.user_attrs["role"] == "candidate"]
    assert all(t.state == TrialState.COMPLETE for t in cands)
    for t in cands:
        nu = R.TrialRecord.from_frozen(t).predicted_nonlinearity
        amp = t.params["sinter.amplitude"]
        assert nu == pytest.approx(amp / 2**0.5, rel=0.02)  # the fake's ν at its P


def test_skip_inert_records_inert_grid_points_failed_untrained_and_counted(study_file) -> None:
    train = Calls()
    logs: list[str] = []
    handle, _result = run(study_file(params=GRID3, skip_inert="true"), train, logs, confirm=False)
    trials = handle.study.get_trials()
    inert = [t for t in trials if t.user_attrs.get("failure_kind") == "inert"]
    assert len(inert) == 2 and all(t.state == TrialState.FAIL for t in inert)
    for t in inert:
        failure = t.user_attrs["failure"]
        assert failure.startswith("inert: predicted ν = ") and "< threshold 0.001" in failure
        amp = json.dumps({"amplitude": t.params["sinter.amplitude"], "frequency": 10000.0})
        assert not [c for c in train.calls if c[1] == amp]  # never trained
    assert progress_of(handle.study, handle.cfg).candidates == 3  # counted like a divergence
    assert "will be skipped (search.skip_inert)" in next(
        m for m in logs if m.startswith("Predicted")
    )
    assert "fail 2 (inert 2)" in summarize(handle.study, handle.cfg)


def test_skip_inert_checks_a_sampled_trial_right_after_sampling(study_file) -> None:
    train = Calls()
    handle, _ = run(
        study_file(
            params="    sinter.amplitude: {low: 1.0e-6, high: 1.0e-4, log: true}\n"
            "    sinter.frequency: 1.0e4",
            sampler="{name: random, seed: 0}",
            n_trials=3,
            skip_inert="true",
        ),
        train,
        confirm=False,
    )
    cands = [t for t in handle.study.get_trials() if t.user_attrs["role"] == "candidate"]
    assert len(cands) == 3 and all(t.user_attrs["failure_kind"] == "inert" for t in cands)
    assert {c[0] for c in train.calls} == {"identity"}  # only the baseline trained


def test_without_a_trained_baseline_nothing_is_predicted(study_file, monkeypatch) -> None:
    monkeypatch.setenv("FAKE_TRAIN_MECHANISM", "0")
    logs: list[str] = []
    handle, _ = run(study_file(params=GRID3, skip_inert="true"), logs=logs, confirm=False)
    assert not [m for m in logs if "Predicted" in m]
    cands = [t for t in handle.study.get_trials() if t.user_attrs["role"] == "candidate"]
    assert all(t.state == TrialState.COMPLETE for t in cands)
    assert all(R.PREDICTED_NONLINEARITY not in t.user_attrs for t in cands)
