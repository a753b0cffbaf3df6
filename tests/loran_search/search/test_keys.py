"""The repeat keys and the one twin rule (loran_search.search.keys), on in-memory studies."""

from __future__ import annotations

from typing import Any

import optuna
from optuna.trial import TrialState

from loran_search import record as R
from loran_search.search import keys as K


def _add(study: optuna.Study, state: TrialState, *, system: Any = None, **ua: Any) -> None:
    study.add_trial(
        optuna.trial.create_trial(
            state=state,
            value=0.5 if state == TrialState.COMPLETE else None,
            user_attrs=ua,
            system_attrs=system or {},
        )
    )


def _confirm(study: optuna.Study, state: TrialState, key: str = "k") -> None:
    _add(study, state, role=R.ROLE_CONFIRM, confirm_key=key)


def test_the_keys_are_stable_strings() -> None:
    assert K.point_key({"b": 1, "a": 2}) == '{"a": 2, "b": 1}'
    assert K.confirm_key("confirm", {"b": 1, "a": 2}) == 'confirm|{"a": 2, "b": 1}'
    assert K.tune_key("confirm|{}", {"training.lr": 0.1}) == 'tune|confirm|{}|{"training.lr": 0.1}'
    # 12 significant digits: a value after a JSON round trip keys as before it
    assert K.form_key("x", {"a": 0.1 + 0.2}, 4, {}) == K.form_key("x", {"a": 0.3}, 4, {})


def test_a_queued_key_is_answered_by_a_complete_or_an_earlier_live_trial() -> None:
    study = optuna.create_study()
    _confirm(study, TrialState.FAIL)  # 0: failed, does not answer (1 may be its retry)
    _confirm(study, TrialState.RUNNING)  # 1
    _confirm(study, TrialState.WAITING)  # 2
    _confirm(study, TrialState.RUNNING, key="other")  # 3
    trials = study.get_trials()
    me = trials[1]
    assert K.twin(trials, me, K.confirm_key_of(me), K.CONFIRM) is None
    late = trials[2]
    assert K.twin(trials, late, K.confirm_key_of(late), K.CONFIRM).number == 1
    _confirm(study, TrialState.COMPLETE)  # 4: a complete one answers every other
    trials = study.get_trials()
    assert K.twin(trials, trials[1], "k", K.CONFIRM).number == 4
    assert K.twin(trials, trials[3], "k", K.CONFIRM) is not None  # asked under "k"
    assert K.twin(trials, trials[3], None, K.CONFIRM) is None  # no key: never a twin


def test_a_retry_is_answered_by_any_earlier_copy_of_its_parent_whatever_it_became() -> None:
    study = optuna.create_study()
    _add(study, TrialState.FAIL)  # 0: the parent
    _add(study, TrialState.FAIL, system={R.RETRY_HISTORY: [0]})  # 1: a copy that failed too
    _add(study, TrialState.RUNNING, system={R.RETRY_HISTORY: [0]})  # 2: the second copy
    _add(study, TrialState.COMPLETE, system={R.RETRY_HISTORY: [0]})  # 3: a later copy
    trials = study.get_trials()
    assert K.duplicate_of(trials, trials[2]) == 1
    assert K.duplicate_of(trials, trials[1]) is None  # 3 is later: it does not answer for 1
    assert K.duplicate_of(trials, trials[0]) is None  # not a retry


def test_a_key_is_queued_once() -> None:
    study = optuna.create_study()
    _confirm(study, TrialState.FAIL, key="a")
    have = K.carried(study.get_trials(), K.confirm_key_of)
    assert have == {"a"}
    planned = [(k, {}, {"role": R.ROLE_CONFIRM, "confirm_key": k}) for k in ("a", "b")]
    assert K.enqueue_new(study, planned, have) == 1
    waiting = [t for t in study.get_trials() if t.state == TrialState.WAITING]
    assert [K.confirm_key_of(t) for t in waiting] == ["b"]
