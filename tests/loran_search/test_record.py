"""The trial record (loran_search/record/): writing, reading, tolerance, one home."""

from __future__ import annotations

import datetime
import json
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
    assert set(R.ROLES) == {"baseline", "candidate", "confirm", "confirm_baseline", "tune"}
    assert R.ROLE_TUNE not in R.SEARCH_ROLES + R.CONFIRM_ROLES  # study.tune (issue 21)
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
    """The record's names live in the record package; nothing else spells them out."""
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
        if not p.is_relative_to(ROOT / "loran_search" / "record")
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


# -- evidence fields: eval_split, mechanism, examples, confirm_of ------------------------------

MECH = {
    "nonlinearity_median": 1.23456789e-4,
    "nonlinearity_max": float("nan"),
    "inert": True,
    "p_quantiles": [-0.1234567891, 0.0, float("inf")],
    "nonlinearity_pooled": 2e-4,
    "seconds": 0.01,
    "layers": [{"module": "q_proj", "nonlinearity": 1e-4}],
}


def _rows(n: int) -> list[dict]:
    return [
        {
            "id": f"bbc-news:val:{i:05d}",
            "gold": "tech",
            "pred": "sport" if i % 3 else "tech",
            "correct": i % 3 == 0,
            "gold_logprob": -1.0 / (i + 1) if i != 5 else float("nan"),
        }
        for i in range(n)
    ]


def test_mechanism_drops_layers_rounds_and_nulls_non_finite() -> None:
    out = R.mechanism_attr({0: MECH, "1": {}})
    assert set(out) == {"0", "1"} and out["1"] == {}
    m = out["0"]
    assert "layers" not in m and m["inert"] is True
    assert m["nonlinearity_median"] == 1.234568e-4 and m["nonlinearity_max"] is None
    assert m["p_quantiles"] == [-0.1234568, 0.0, None]
    assert R.to_user_attrs(mechanism={0: MECH})[R.MECHANISM] == {"0": m}


def test_examples_are_columns_with_string_ids_and_rounded_values() -> None:
    attrs = R.examples_attrs(0, _rows(7))
    assert list(attrs) == ["examples.0"]
    cols = attrs["examples.0"]
    assert list(cols) == ["id", "gold", "pred", "correct", "gold_logprob"]
    assert cols["id"][0] == "bbc-news:val:00000" and cols["correct"][:3] == [1, 0, 0]
    assert cols["gold_logprob"][2] == -0.3333333 and cols["gold_logprob"][5] is None
    assert R.examples_attrs(0, []) == {}
    ragged = R.examples_columns([{"id": 1, "a": 1.0}, {"id": 2, "b": "x"}])
    assert ragged == {"id": ["1", "2"], "a": [1.0, None], "b": [None, "x"]}


def test_examples_over_the_limit_are_split_into_parts_joined_on_reading() -> None:
    rows = _rows(3000)
    attrs = R.examples_attrs(4, rows)
    parts = [k for k in attrs if k.startswith("examples.4.")]
    assert len(parts) >= 2 and list(attrs)[-1] == "examples.4"  # the index is set last
    assert attrs["examples.4"] == {"parts": len(parts), "rows": 3000}
    assert all(len(json.dumps(attrs[k], separators=(",", ":"))) <= 60_000 for k in parts)
    whole = R.examples_columns(rows)
    assert R.read_examples(attrs) == {"4": whole}
    small = R.examples_attrs(4, rows[:50], limit=1000)
    assert R.read_examples(small) == {"4": R.examples_columns(rows[:50])}
    incomplete = {k: v for k, v in attrs.items() if k != parts[-1]}
    assert R.read_examples(incomplete) == {}  # a missing part: the seed reads as absent
    no_index = {k: v for k, v in attrs.items() if k != "examples.4"}
    assert R.read_examples(no_index) == {}  # parts without their index: not finished


def test_evidence_fields_round_trip_through_optuna_storage(tmp_path: Path) -> None:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(storage=f"sqlite:///{tmp_path / 'e.db'}")
    trial = study.ask()
    trial.suggest_categorical("activation", ["identity", "sinter"])
    attrs = R.to_user_attrs(
        role=R.ROLE_CONFIRM,
        eval_split="test",
        mechanism={"100": MECH},
        confirm_of=[3, 7],
        confirm_key="k",
        seed_metrics={"100": {"accuracy": 0.5}},
    )
    attrs.update(R.examples_attrs(100, _rows(3000)))
    attrs.update(R.examples_attrs(101, _rows(4)))
    for k, v in attrs.items():
        trial.set_user_attr(k, v)
    study.tell(trial, 0.5)
    rec = R.TrialRecord.from_frozen(study.get_trials()[0])
    assert rec.role == "confirm" and rec.eval_split == "test" and rec.confirm_of == (3, 7)
    assert rec.mechanism["100"]["p_quantiles"] == [-0.1234568, 0.0, None]
    assert "layers" not in rec.mechanism["100"]
    assert rec.examples["100"] == R.examples_columns(_rows(3000))
    assert rec.examples["101"]["id"] == [f"bbc-news:val:{i:05d}" for i in range(4)]


def test_evidence_fields_are_tolerant_of_absent_and_ill_typed_values() -> None:
    rec = R.TrialRecord.from_frozen(_frozen())
    assert rec.mechanism == {} and rec.examples == {} and rec.confirm_of == ()
    assert rec.eval_split is None
    bad = {
        "mechanism": {"0": "x", "1": {"inert": False}},
        "examples.0": {"id": [1, 2], "correct": [1]},  # ragged columns
        "examples.1": "junk",
        "examples.2": {"parts": "2"},
        "examples.3": {"id": "a"},
        "confirm_of": [1, "2", True],
        "eval_split": 3,
    }
    rec = R.TrialRecord.from_frozen(_frozen(user_attrs=bad))
    assert rec.mechanism == {"1": {"inert": False}} and rec.examples == {}
    assert rec.confirm_of == (1,) and rec.eval_split is None


def test_confirm_roles_and_the_inert_failure_kind() -> None:
    assert R.CONFIRM_ROLES == ("confirm", "confirm_baseline")
    assert R.FAIL_INERT in R.COUNTED_FAILURES
    assert R.failure_attrs(R.FAIL_INERT, "predicted ν = 1e-05 < threshold 0.001")[
        "failure"
    ].startswith("inert: ")
    assert R.is_examples_key("examples.0.1") and not R.is_examples_key("example")
