"""The trial record (loran_search/record.py): writing, reading, tolerance, one home."""

from __future__ import annotations

import datetime
import math
import re
import subprocess
import sys
from pathlib import Path

import optuna
import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution
from optuna.trial import TrialState, create_trial

from loran_search import record as R

ROOT = Path(__file__).resolve().parents[2]


def test_importing_the_record_imports_only_the_standard_library() -> None:
    code = (
        "import sys; import loran_search.record; "
        "bad = [m for m in ('optuna', 'pandas', 'numpy', 'torch') if m in sys.modules]; "
        "print(bad); sys.exit(1 if bad else 0)"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert res.returncode == 0, res.stdout + res.stderr


def test_to_user_attrs_names_every_key_and_leaves_out_what_is_absent() -> None:
    attrs = R.to_user_attrs(
        role=R.ROLE_CANDIDATE,
        activation_spec={"name": "sinter", "family": "sinter", "params": {"amplitude": 1e-3}},
        seed_metrics={"0": {"accuracy": 0.5}},
        stability={"0": {"diverged": False}},
        cost={"train_seconds": 1.0},
        history={"0": [{"step": 1, "loss": 2.0}]},
        version=True,
    )
    assert attrs == {
        "role": "candidate",
        "record_version": 1,
        "activation_spec": {"name": "sinter", "family": "sinter", "params": {"amplitude": 1e-3}},
        "seed_metrics": {"0": {"accuracy": 0.5}},
        "stability": {"0": {"diverged": False}},
        "history": {"0": [{"step": 1, "loss": 2.0}]},
        "cost": {"train_seconds": 1.0},
    }
    assert R.to_user_attrs(zero_shot={}) == {}  # an empty zero-shot is "not measured"
    assert R.to_user_attrs(adapter_path="/a") == {"adapter_path": "/a"}
    with pytest.raises(ValueError, match="Unknown trial role"):
        R.to_user_attrs(role="champion")


def test_failure_attrs_start_with_their_kind() -> None:
    assert R.failure_attrs(R.FAIL_DIVERGED, "seed 0 diverged") == {
        "failure": "diverged: seed 0 diverged",
        "failure_kind": "diverged",
    }
    assert R.failure_attrs(R.FAIL_ERROR, "error: OSError: x")["failure"] == "error: OSError: x"
    with pytest.raises(ValueError, match="Unknown failure kind"):
        R.failure_attrs("oops", "x")
    assert R.failure_kind_of("stale: its worker is gone") == "stale"
    assert R.failure_kind_of("loss became NaN") is None
    assert R.failure_kind_of(None) is None


def test_roles_and_reserved_roles() -> None:
    assert R.SEARCH_ROLES == ("baseline", "candidate")
    assert set(R.ROLES) == {"baseline", "candidate", "confirm", "confirm_baseline"}
    assert R.BASELINE_ACTIVATION == "identity"
    assert set(R.COUNTED_FAILURES) <= set(R.FAILURE_KINDS)


DIST = {
    "activation": CategoricalDistribution(["identity", "sinter"]),
    "rank": CategoricalDistribution([4, 8]),
    "sinter.amplitude": FloatDistribution(1e-6, 1.0, log=True),
}


def _frozen(params=None, user_attrs=None, system_attrs=None, state=TrialState.COMPLETE, value=0.5):
    params = {"activation": "sinter", "rank": 8} if params is None else params
    t = create_trial(
        state=state,
        value=value if state == TrialState.COMPLETE else None,
        params=params,
        distributions={k: DIST[k] for k in params},
        user_attrs=user_attrs or {},
        system_attrs=system_attrs or {},
    )
    t.number = 3
    return t


def test_from_frozen_reads_a_current_record() -> None:
    ua = R.to_user_attrs(
        role="candidate",
        activation_spec={"name": "sinter", "family": "sinter", "params": {"amplitude": 1e-3}},
        seed_metrics={"0": {"accuracy": 0.5}},
        stability={"0": {"diverged": False}},
        cost={"train_seconds": 2.0},
        history={"0": [{"step": 1}, "junk"]},
        version=True,
    )
    sa = {R.WORKER: {"host": "h", "pid": 1, "start": "9"}, R.RETRY_HISTORY: [1]}
    rec = R.TrialRecord.from_frozen(_frozen(user_attrs=ua, system_attrs=sa))
    assert rec.number == 3 and rec.state == "COMPLETE" and rec.value == 0.5
    assert (rec.role, rec.activation, rec.rank) == ("candidate", "sinter", 8)
    assert rec.seed_metrics == {"0": {"accuracy": 0.5}}
    assert rec.history == {"0": [{"step": 1}]}  # rows that are not mappings are dropped
    assert rec.cost == {"train_seconds": 2.0} and rec.record_version == 1
    assert rec.worker == {"host": "h", "pid": 1, "start": "9"} and rec.retry_history == (1,)
    assert rec.finished and rec.failure is None and rec.failure_kind is None


def test_from_frozen_tolerates_older_and_ill_typed_records() -> None:
    rec = R.TrialRecord.from_frozen(_frozen(params={"activation": "identity", "rank": 4}))
    assert rec.role is None and rec.role_or("candidate") == "candidate"
    assert rec.activation == "identity" and rec.rank == 4
    assert rec.seed_metrics is None and rec.stability == {} and rec.record_version is None
    bad = {
        "seed_metrics": [1, 2],
        "stability": "no",
        "cost": None,
        "history": 5,
        "role": 7,
        "failure": "stale: its worker is gone",
        "activation_spec": "sinter",
    }
    rec = R.TrialRecord.from_frozen(_frozen(user_attrs=bad, state=TrialState.FAIL))
    assert rec.seed_metrics is None and rec.stability == {} and rec.cost == {}
    assert rec.history is None and rec.role is None and rec.activation_spec is None
    assert rec.failure_kind == "stale" and rec.value is None  # kind read from the sentence


def test_from_frozen_of_a_queued_trial_uses_its_queued_params() -> None:
    t = _frozen(params={}, state=TrialState.WAITING, user_attrs={"role": "candidate"})
    assert R.TrialRecord.from_frozen(t).activation is None
    rec = R.TrialRecord.from_frozen(t, queued_params={"activation": "sinter", "rank": 4})
    assert (rec.activation, rec.rank, rec.state) == ("sinter", 4, "WAITING")


def test_started_is_a_unix_time() -> None:
    t = _frozen()
    t.datetime_start = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)
    assert math.isclose(R.TrialRecord.from_frozen(t).started or 0, 1767225600.0)


def test_a_study_attr_name_is_written_in_one_place() -> None:
    """The record's names live in record.py; nothing else spells them out."""
    names = [
        R.STUDY_SETUP,
        R.STUDY_FINGERPRINT,
        R.STUDY_READY,
        R.STUDY_CONFIG_PATH,
        R.STUDY_REPORT_ARTIFACTS,
        R.WORKER,
        R.HEARTBEAT,
    ]
    pattern = re.compile("|".join(re.escape(f'"{n}"') for n in names) + r"|RECORD_VERSION\s*=")
    offenders = [
        f"{p.relative_to(ROOT)}:{i}"
        for p in (ROOT / "loran_search").rglob("*.py")
        if p.name != "record.py"
        for i, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1)
        if pattern.search(line)
    ]
    assert offenders == []


def test_a_record_written_by_the_writer_reads_back_through_optuna(tmp_path: Path) -> None:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(storage=f"sqlite:///{tmp_path / 'r.db'}")
    trial = study.ask()
    trial.suggest_categorical("activation", ["identity", "sinter"])
    for k, v in R.to_user_attrs(role="baseline", seed_metrics={"0": {"accuracy": 1.0}}).items():
        trial.set_user_attr(k, v)
    study.tell(trial, 1.0)
    rec = R.TrialRecord.from_frozen(study.get_trials()[0])
    assert rec.role == "baseline" and rec.seed_metrics == {"0": {"accuracy": 1.0}}
