"""Every Optuna behaviour loran-search relies on beyond the public API (search/_optuna.py).

If one of these fails after an Optuna upgrade, the matching helper in
``loran_search/search/_optuna.py`` needs a new implementation (or a public API replaced it).
The last tests pin public behaviours the search's correctness rests on (atomic pops, immutable
finished trials, the retry-history form).
"""

from __future__ import annotations

import time
import warnings
from pathlib import Path

import optuna
import pytest
from optuna.storages import RDBStorage, RetryHeartbeatStaleTrialCallback
from optuna.storages.journal import JournalFileBackend, JournalStorage
from optuna.trial import TrialState

from loran_search import record as R
from loran_search.search._optuna import (
    heartbeats_enabled,
    queued_params,
    stale_trial_ids,
    storage_of,
)
from loran_search.search.recovery import retry_trial

optuna.logging.set_verbosity(optuna.logging.WARNING)
pytestmark = pytest.mark.filterwarnings(
    "ignore::optuna.exceptions.ExperimentalWarning", "ignore:Heartbeat of storage:UserWarning"
)


def _rdb(tmp_path: Path, **kw) -> RDBStorage:
    return RDBStorage(f"sqlite:///{tmp_path / 'p.db'}", **kw)


def _id(storage, study: optuna.Study, number: int) -> int:
    sid = storage.get_study_id_from_name(study.study_name)
    return storage.get_trial_id_from_study_id_trial_number(sid, number)


def test_storage_of_is_the_storage_the_study_reads_and_writes(tmp_path: Path) -> None:
    storage = _rdb(tmp_path)
    study = optuna.create_study(storage=storage, study_name="s")
    got = storage_of(study)
    assert isinstance(got, optuna.storages.BaseStorage)
    sid = got.get_study_id_from_name("s")
    got.set_study_user_attr(sid, "k", 1)
    assert study.user_attrs["k"] == 1
    journal = JournalStorage(JournalFileBackend(str(tmp_path / "j.journal")))
    assert storage_of(optuna.create_study(storage=journal)) is journal


def test_stale_trial_ids_are_running_trials_with_an_old_heartbeat(tmp_path: Path) -> None:
    storage = _rdb(tmp_path, heartbeat_interval=1, grace_period=1)
    study = optuna.create_study(storage=storage, study_name="s")
    sid = storage.get_study_id_from_name("s")
    old, fresh, silent = (study.ask() for _ in range(3))
    storage.record_heartbeat(_id(storage, study, old.number))
    time.sleep(2.2)
    storage.record_heartbeat(_id(storage, study, fresh.number))
    want = [_id(storage, study, old.number)]
    assert stale_trial_ids(storage, sid) == want
    assert stale_trial_ids(storage_of(study), sid) == want  # Optuna's caching wrapper too
    assert heartbeats_enabled(storage) and heartbeats_enabled(storage_of(study))
    study.tell(old, 1.0)
    assert stale_trial_ids(storage, sid) == []  # only RUNNING trials
    assert silent.number not in [storage.get_trial(i).number for i in stale_trial_ids(storage, sid)]


def test_no_heartbeats_means_no_stale_ids(tmp_path: Path) -> None:
    storage = _rdb(tmp_path)
    study = optuna.create_study(storage=storage, study_name="s")
    study.ask()
    assert not heartbeats_enabled(storage)
    assert stale_trial_ids(storage, storage.get_study_id_from_name("s")) == []
    journal = JournalStorage(JournalFileBackend(str(tmp_path / "j.journal")))
    assert not heartbeats_enabled(journal)
    assert stale_trial_ids(journal, 0) == []


@pytest.mark.parametrize("kind", ["rdb", "journal"])
def test_queued_params_of_a_waiting_and_a_popped_trial(tmp_path: Path, kind: str) -> None:
    storage = (
        _rdb(tmp_path)
        if kind == "rdb"
        else JournalStorage(JournalFileBackend(str(tmp_path / "j.journal")))
    )
    study = optuna.create_study(storage=storage, study_name="s")
    study.enqueue_trial({"activation": "identity", "rank": 4}, user_attrs={"role": "baseline"})
    (waiting,) = study.get_trials()
    assert waiting.state == TrialState.WAITING and waiting.params == {}
    assert queued_params(waiting) == {"activation": "identity", "rank": 4}
    trial = study.ask()
    assert trial.suggest_categorical("activation", ["identity", "sinter"]) == "identity"
    assert queued_params(study.get_trials()[0]) == {"activation": "identity", "rank": 4}
    sampled = study.ask()
    assert queued_params(study.get_trials()[sampled.number]) is None


def test_a_retry_keeps_the_queued_params(tmp_path: Path) -> None:
    study = optuna.create_study(storage=_rdb(tmp_path), study_name="s")
    study.enqueue_trial({"rank": 4}, user_attrs={"role": "baseline"})
    trial = study.ask()
    study.tell(trial, state=TrialState.FAIL)
    retry_trial(study, study.get_trials()[0])
    retried = study.get_trials()[1]
    assert retried.state == TrialState.WAITING
    assert queued_params(retried) == {"rank": 4}
    assert retried.user_attrs == {"role": "baseline"}
    again = study.ask()  # the retry is popped next, with its params
    assert again.number == 1 and again.suggest_int("rank", 1, 64) == 4


def test_two_studies_on_one_storage_never_pop_one_queued_trial_twice(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'p.db'}"
    a = optuna.create_study(storage=url, study_name="s")
    a.enqueue_trial({"x": 0.5})
    b = optuna.load_study(storage=RDBStorage(url), study_name="s")
    ta, tb = a.ask(), b.ask()
    assert {ta.number, tb.number} == {0, 1}  # the second ask made a new trial
    popped = ta if ta.number == 0 else tb
    assert popped.suggest_float("x", 0, 1) == 0.5
    other = tb if popped is ta else ta
    assert queued_params(other.study.get_trials()[other.number]) is None


def test_a_finished_trial_cannot_be_changed_any_more(tmp_path: Path) -> None:
    """Why the stale check records its reason before it fails a trial (and not after)."""
    storage = _rdb(tmp_path)
    study = optuna.create_study(storage=storage, study_name="s")
    trial = study.ask()
    tid = _id(storage, study, trial.number)
    assert storage.set_trial_state_values(tid, TrialState.FAIL)
    with pytest.raises(optuna.exceptions.UpdateFinishedTrialError):
        storage.set_trial_user_attr(tid, R.FAILURE, "stale: too late")
    with pytest.raises(optuna.exceptions.UpdateFinishedTrialError):
        storage.set_trial_state_values(tid, TrialState.FAIL)


def test_the_retry_history_reads_as_optunas(tmp_path: Path) -> None:
    study = optuna.create_study(storage=_rdb(tmp_path), study_name="s")
    trial = study.ask()
    trial.suggest_float("x", 0, 1)
    study.tell(trial, state=TrialState.FAIL)
    retry_trial(study, study.get_trials()[0])
    first_retry = study.ask()
    study.tell(first_retry, state=TrialState.FAIL)
    retry_trial(study, study.get_trials()[1])
    last = study.get_trials()[2]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert RetryHeartbeatStaleTrialCallback.retried_trial_number(last) == 0
        assert RetryHeartbeatStaleTrialCallback.retry_history(last) == [0, 1]


# -- take_waiting, hide_trials (the confirmation) ----------------------------------------------


def test_take_waiting_takes_a_queued_trial_once_and_reads_its_params(tmp_path: Path) -> None:
    from loran_search.search._optuna import take_waiting

    study = optuna.create_study(storage=_rdb(tmp_path))
    study.enqueue_trial({"x": 0.25}, user_attrs={"role": "confirm"})
    study.enqueue_trial({"x": 0.75})
    second = study.get_trials()[1]._trial_id
    trial = take_waiting(study, second)  # not the oldest: the one asked for
    assert trial is not None and trial.number == 1
    assert trial.suggest_float("x", 0.0, 1.0) == 0.75
    assert take_waiting(study, second) is None  # already taken
    study.tell(trial, 1.0)
    assert take_waiting(study, second) is None  # finished
    assert [t.state for t in study.get_trials()] == [TrialState.WAITING, TrialState.COMPLETE]


@pytest.mark.parametrize("name", ["tpe", "cmaes", "nsga2", "gp"])
def test_hide_trials_keeps_hidden_trials_from_the_sampler(tmp_path: Path, name: str) -> None:
    """A sampler fed only hidden trials proposes what it proposes beside as many FAIL trials.

    (FAIL trials keep the trial numbers equal, which CMA-ES folds into its seed, and no sampler
    learns from them.)
    """
    from optuna.distributions import FloatDistribution

    from loran_search.search._optuna import hide_trials

    def make() -> optuna.samplers.BaseSampler:
        if name == "tpe":
            return optuna.samplers.TPESampler(seed=0, n_startup_trials=2)
        if name == "cmaes":
            return optuna.samplers.CmaEsSampler(seed=0, n_startup_trials=2)
        if name == "nsga2":
            return optuna.samplers.NSGAIISampler(seed=0, population_size=2)
        return optuna.samplers.GPSampler(seed=0, n_startup_trials=2)

    def proposals(hidden_trials: bool) -> list[float]:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            sampler = hide_trials(make(), lambda t: t.user_attrs.get("role") == "confirm")
            study = optuna.create_study(sampler=sampler)
            for i in range(6):
                study.add_trial(
                    optuna.trial.create_trial(
                        state=TrialState.COMPLETE if hidden_trials else TrialState.FAIL,
                        params={"x": 0.1 * i, "y": 0.5},
                        distributions={
                            "x": FloatDistribution(0.0, 1.0),
                            "y": FloatDistribution(0.0, 1.0),
                        },
                        value=float(i) if hidden_trials else None,
                        user_attrs={"role": "confirm" if hidden_trials else "filler"},
                    )
                )
            out = []
            for _ in range(4):
                trial = study.ask()
                x, y = trial.suggest_float("x", 0.0, 1.0), trial.suggest_float("y", 0.0, 1.0)
                study.tell(trial, (x - 0.3) ** 2 + y)
                out += [x, y]
            return out

    assert proposals(True) == proposals(False)
