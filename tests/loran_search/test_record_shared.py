"""The meanings the record package owns for both sides: the visited range of P, the form layout.

The search screens a form on the visited range of ``P = B·A`` and the report shows it there;
both read it with :func:`loran_search.record.visited_range`, so the two intervals are the same
(they used to differ: the largest ``|P|`` for the screening, the 99.9th percentile for the report).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import optuna
import pytest
from optuna.trial import TrialState

from loran_search import record as R
from loran_search.analysis.api import visited_interval as study_interval
from loran_search.analysis.mechanism import visited_interval as shown_interval
from loran_search.analysis.records import load_records
from loran_search.search import forms as F
from loran_search.search import screening as S
from loran_search.search.space import parse_dim
from tests.loran_search.analysis.conftest import mechanism_figures, new_study


def _mech(largest: float, p999: float) -> dict[str, Any]:
    """One seed's mechanism whose largest |P| (``p_quantiles`` ends) is above its p99.9."""
    quantiles = list(np.linspace(-largest, largest, 257))
    return {**mechanism_figures(0.01, p999), "p_quantiles": quantiles}


def _study() -> tuple[optuna.Study, Any]:
    study, b = new_study()
    b.add("identity", 8, {0: 0.5, 1: 0.6}, mechanism={0: _mech(0.05, 0.03), 1: _mech(0.04, 0.02)})
    b.add("sinter", 8, {0: 0.52, 1: 0.61}, amplitude=1e-3,
          mechanism={0: _mech(0.02, 0.01), 1: _mech(0.03, 0.01)})  # fmt: skip
    # neither a failed trial nor a confirmation run was ever screened against: left out
    b.add("sinter", 8, {0: 0.5}, amplitude=1e-2, state=TrialState.FAIL, diverged={1: True},
          failure="seed 1 diverged at step 3", mechanism={0: _mech(7.0, 6.0)})  # fmt: skip
    b.add("sinter", 8, {100: 0.6}, amplitude=1e-3, role="confirm", confirm_of=[1],
          eval_split="test", mechanism={100: _mech(9.0, 8.0)})  # fmt: skip
    return study, b


def _screened(study: optuna.Study, rank: int) -> tuple[float, float]:
    """The interval the search screens a candidate form of ``rank`` on, as it records it."""
    raw = {"template": "x + a*G", "leaves": ["sin(x)"], "operators": ["+"], "depth": 1}
    forms = F.FormSpace(raw, {"a": parse_dim("form.a", 0.1, None)})
    name, values = forms.first()
    trial = study.ask()
    S.before_training(trial, forms, name, values, rank, {}, role=R.ROLE_CANDIDATE)
    interval = study.get_trials(deepcopy=False)[trial.number].user_attrs[R.FORM]["interval"]
    study.tell(trial, state=TrialState.FAIL)
    return tuple(interval)


def test_the_screened_interval_is_the_shown_one() -> None:
    study, _ = _study()
    screened = _screened(study, 8)
    shown, why = shown_interval(load_records(study))
    assert screened == shown == pytest.approx((-0.05, 0.05))  # the baseline's largest |P|
    assert "the range the search screens forms on" in why
    interval, _ = study_interval(storage=study._storage, study_name=study.study_name)
    assert interval == shown  # what `activations audit/plot --study` use


def test_every_screened_interval_lies_in_the_shown_one_across_ranks() -> None:
    study, b = _study()
    b.add("identity", 4, {0: 0.5}, mechanism={0: _mech(0.5, 0.3)})
    assert _screened(study, 8) == pytest.approx((-0.05, 0.05))
    assert _screened(study, 4) == pytest.approx((-0.5, 0.5))
    assert _screened(study, 16) == R.UNIT_RANGE  # no trial of that rank yet
    assert shown_interval(load_records(study))[0] == pytest.approx((-0.5, 0.5))


def test_visited_bound_reads_records_and_frozen_trials_alike() -> None:
    study, _ = _study()
    trials = study.get_trials()
    records = [R.TrialRecord.from_frozen(t) for t in trials]
    assert R.visited_bound(trials, 8) == R.visited_bound(records, 8) == pytest.approx(0.05)
    assert R.visited_bound(records, 4) is None and R.visited_range(records, 4) == R.UNIT_RANGE
    assert R.visited_bound([]) is None


@pytest.mark.parametrize(
    ("mechanism", "expected"),
    [
        ({"p_quantiles": [-0.2, 0.0, 0.1]}, 0.2),
        ({"p_quantiles": [-0.1, 0.0, 0.3]}, 0.3),
        ({"p_quantiles": [None, 0.0, 0.3]}, 0.3),  # a non-finite end is stored as null
        ({"p_quantiles": [math.nan, math.inf]}, None),
        ({"p_quantiles": [0.0, 0.0]}, None),
        ({"p_quantiles": []}, None),
        ({"p_abs_p999_max": 0.2}, None),  # a percentile is not the largest entry
        ({}, None),
        (None, None),
    ],
)
def test_p_abs_max_is_the_largest_end_of_the_quantiles(mechanism: Any, expected: Any) -> None:
    assert R.p_abs_max(mechanism) == (pytest.approx(expected) if expected else None)


def test_the_stored_form_parameters_are_read_through_record() -> None:
    attrs = {
        R.STUDY_SETUP: {
            "space": {
                "forms": {
                    "template": "x + a*G",
                    "params": {
                        f"{R.FORM_PREFIX}.a": {"low": 1e-4, "high": 1e-2, "log": True},
                        f"{R.FORM_PREFIX}.w": {"choices": [10.0, 100.0]},
                        f"{R.FORM_PREFIX}.c": {"fixed": 2.0},
                        "other.b": {"fixed": 1.0},
                        f"{R.FORM_PREFIX}.bad": "not a declaration",
                    },
                }
            }
        }
    }
    declared = R.form_param_declarations(attrs)
    assert set(declared) == {"a", "w", "c"}
    assert R.form_param_range(declared["a"], [5e-3]) == (1e-4, 1e-2, True)
    assert R.form_param_range(declared["a"], [0.5, 1e-3]) == (1e-4, 0.5, True)
    assert R.form_param_range(declared["w"], [50.0]) == (10.0, 100.0, False)
    assert R.form_param_range(declared["c"], [2.0]) == (2.0, 2.0, False)
    assert R.form_param_range(None, [3.0, 1.0]) == (1.0, 3.0, False)
    for broken in ({}, {R.STUDY_SETUP: "x"}, {R.STUDY_SETUP: {"space": {"forms": None}}}):
        assert R.form_param_declarations(broken) == {}
