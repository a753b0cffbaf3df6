"""Study mechanics in-process with the fake trainer: record, samplers, pruning, divergence,
resume, stale recovery, counting."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from loran_search import record as R
from loran_search.search.progress import progress_of
from loran_search.search.recovery import _proc_start
from loran_search.search.study import StudyMismatch, open_study
from loran_search.search.summary import summarize
from loran_search.search.validate import load_config
from loran_search.search.workers import run_worker
from tests.loran_search.search.conftest import FAKE_SPEC

# the tests play a worker by hand with study.ask(); the search's own loop silences this
pytestmark = pytest.mark.filterwarnings("ignore:Heartbeat of storage:UserWarning")


@pytest.fixture(autouse=True)
def _fake(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("LORAN_SEARCH_TRAIN_FN", FAKE_SPEC)
    monkeypatch.delenv("FAKE_TRAIN_DIVERGE_ABOVE", raising=False)
    monkeypatch.delenv("FAKE_TRAIN_SLEEP", raising=False)
    monkeypatch.chdir(tmp_path)


def run(path: Path, overrides: list[str] | None = None, **kw):
    cfg = load_config(path, overrides or [])
    handle = open_study(cfg, log=lambda m: None)
    result = run_worker(handle, log=lambda m: None, **kw)
    return handle, result


def by_role(study: optuna.Study, role: str, state: TrialState | None = None):
    return [
        t
        for t in study.get_trials()
        if t.user_attrs.get("role") == role and (state is None or t.state == state)
    ]


def test_grid_study_writes_the_record_field_by_field(study_file) -> None:
    handle, result = run(study_file())
    study = handle.study
    assert result.ran == 4
    trials = study.get_trials()
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 4
    base = trials[0]  # baselines are queued first
    assert base.user_attrs["role"] == "baseline"
    assert base.params == {"activation": "identity", "rank": 4}
    assert base.user_attrs["activation_spec"] == {
        "name": "identity",
        "family": "baseline",
        "params": {},
    }
    cands = trials[1:]
    amps = sorted(t.params["sinter.amplitude"] for t in cands)
    assert amps == pytest.approx([1e-4, 1e-3, 1e-2])
    for t in cands:
        assert set(t.params) == {"activation", "rank", "sinter.amplitude"}
        assert t.params["activation"] == "sinter" and t.params["rank"] == 4
        ua = t.user_attrs
        assert ua["role"] == "candidate"
        assert ua["record_version"] == 1
        spec = ua["activation_spec"]
        assert spec["name"] == "sinter" and spec["family"] == "sinter"
        assert spec["params"] == {"amplitude": t.params["sinter.amplitude"], "frequency": 1e4}
        assert set(ua["seed_metrics"]) == {"0", "1"}
        for seed, m in ua["seed_metrics"].items():
            amp = t.params["sinter.amplitude"]
            assert m["accuracy"] == pytest.approx(
                0.5 + 0.01 * 4 / 8 + 0.1 * min(amp * 100, 1) + 0.001 * int(seed)
            )
        assert t.value == pytest.approx(sum(m["accuracy"] for m in ua["seed_metrics"].values()) / 2)
        assert set(ua["stability"]) == {"0", "1"}
        assert set(ua["stability"]["0"]) >= {
            "diverged",
            "grad_norm_max",
            "loss_spikes",
            "final_train_loss",
        }
        assert ua["stability"]["0"]["diverged"] is False
        assert set(ua["cost"]) >= {"train_seconds", "peak_memory_mb", "trainable_params"}
        assert ua["cost"]["trainable_params"] == 40
        assert set(ua["history"]) == {"0", "1"} and len(ua["history"]["0"]) == 3
        assert "failure" not in ua
        # intermediate values: seed i reports at i * max_steps + step
        assert sorted(t.intermediate_values) == [2, 4, 6, 8, 10, 12]
    # save_adapters: best → the running best keeps its adapter (uploaded), others are deleted
    best = max(cands, key=lambda t: t.value)
    assert Path(best.user_attrs["adapter_path"]).is_dir()
    from optuna.artifacts import get_all_artifact_meta

    names = {m.filename for m in get_all_artifact_meta(best, storage=handle.storage)}
    assert f"trial-{best.number}-metrics.json" in names
    assert "adapter_config.json" in names
    worst = min(cands, key=lambda t: t.value)
    assert "adapter_path" not in worst.user_attrs or worst is cands[0]
    text = summarize(study, handle.cfg)
    assert "gain" in text and f"trial {best.number}" in text


SAMPLERS = [
    ("{name: tpe, seed: 0, n_startup_trials: 2}", "[sinter, relu]", ""),
    ("{name: random, seed: 1}", "[sinter, relu]", ""),
    ("{name: cmaes, seed: 0}", "[sinter]", ""),
    ("{name: gp, seed: 0, n_startup_trials: 2}", "[sinter]", ""),
    ("{name: nsga2, seed: 0, population_size: 2}", "[sinter, relu]", "train_seconds"),
    ("{name: grid, shuffle: true, seed: 3}", "[sinter, relu]", ""),
]


@pytest.mark.parametrize(("sampler", "acts", "objective"), SAMPLERS, ids=lambda s: str(s)[:12])
def test_space_per_sampler(study_file, sampler: str, acts: str, objective: str) -> None:
    params = (
        "    sinter.amplitude: {low: 1.0e-4, high: 1.0e-2, log: true, num: 3}\n"
        "    sinter.frequency: 1.0e4"
    )
    path = study_file(sampler=sampler, activations=acts, params=params, n_trials=4, seeds="[0]")
    overrides = [f"study.objectives=[{objective}]"] if objective else []
    handle, _ = run(path, overrides)
    study = handle.study
    cands = by_role(study, "candidate", TrialState.COMPLETE)
    assert len(cands) == 4
    assert len(by_role(study, "baseline", TrialState.COMPLETE)) == 1
    for t in cands:
        assert t.params["activation"] in ("sinter", "relu")  # never the baseline-only identity
        if t.params["activation"] == "relu":
            assert set(t.params) == {"activation", "rank"}  # conditional space
        else:
            assert set(t.params) == {"activation", "rank", "sinter.amplitude"}
            assert 1e-4 <= t.params["sinter.amplitude"] <= 1e-2
            assert isinstance(
                t.distributions["sinter.amplitude"], optuna.distributions.FloatDistribution
            )
    if objective:
        assert len(study.directions) == 2
        assert all(len(t.values) == 2 for t in cands)
    if "grid" in sampler:
        keys = [(t.params["activation"], t.params.get("sinter.amplitude")) for t in cands]
        assert len(set(keys)) == 4  # 3 sinter points + relu, none twice


def test_training_hyperparameters_are_searched(study_file) -> None:
    # without a baseline: one pinned baseline beside searched candidates is refused (issue 21)
    path = study_file(sampler="{name: random, seed: 0}", n_trials=2, seeds="[0]", baseline="false")
    text = path.read_text().replace(
        "  params:",
        "  training: {learning_rate: {low: 1.0e-5, high: 1.0e-3, log: true}}\n  params:",
    )
    path.write_text(text)
    handle, _ = run(path)
    trials = handle.study.get_trials()
    assert len(trials) == 2
    for t in trials:
        assert 1e-5 <= t.params["training.learning_rate"] <= 1e-3


def test_pruning_uses_paired_steps(study_file) -> None:
    path = study_file(
        pruner="{name: median, n_startup_trials: 1, n_warmup_steps: 0}",
        params="    sinter.amplitude: [1.0e-2, 1.0e-3, 1.0e-4]\n    sinter.frequency: 1.0e4",
        baseline="false",
    )
    handle, _ = run(path)
    states = [t.state for t in handle.study.get_trials()]
    assert states[0] == TrialState.COMPLETE
    assert TrialState.PRUNED in states
    pruned = next(t for t in handle.study.get_trials() if t.state == TrialState.PRUNED)
    assert "pruned at seed 0, step 2" in pruned.user_attrs["pruned"]


def test_diverging_configuration_fails_and_study_goes_on(study_file, monkeypatch) -> None:
    monkeypatch.setenv("FAKE_TRAIN_DIVERGE_ABOVE", "5e-3")
    handle, result = run(study_file())
    study = handle.study
    failed = [t for t in study.get_trials() if t.state == TrialState.FAIL]
    assert len(failed) == 1
    f = failed[0]
    assert f.params["sinter.amplitude"] == pytest.approx(1e-2)
    assert f.user_attrs["failure"].startswith("diverged: seed 0 diverged at step 4")
    assert f.user_attrs["failure_kind"] == "diverged"
    assert f.user_attrs["stability"]["0"]["diverged"] is True
    # the diverged configuration used its slot: the study still ends with n_trials candidates
    assert len(by_role(study, "candidate", TrialState.COMPLETE)) == 2
    assert progress_of(study, handle.cfg).candidates == 3
    assert result.failed == 1


def test_resume_refuses_a_changed_space(study_file) -> None:
    path = study_file(n_trials=1)
    run(path)
    text = path.read_text().replace("[1.0e-4, 1.0e-3, 1.0e-2]", "[1.0e-4, 1.0e-3]")
    path.write_text(text)
    with pytest.raises(StudyMismatch) as info:
        open_study(load_config(path), log=lambda m: None)
    msg = str(info.value)
    assert "sinter.amplitude" in msg and "1e-05" not in msg
    assert "--set study.name=t-2" in msg
    # the CLI says the same and exits 2
    env = dict(os.environ, LORAN_SEARCH_TRAIN_FN=FAKE_SPEC)
    res = subprocess.run(
        [str(Path(sys.executable).with_name("loran-search")), "run", str(path)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert res.returncode == 2
    assert "was created with a different setup" in res.stderr


def test_resume_extends_and_unchanged_setup_resumes(study_file) -> None:
    path = study_file(n_trials=1)
    handle, _ = run(path)
    assert len(by_role(handle.study, "candidate", TrialState.COMPLETE)) == 1
    handle, result = run(
        path, ["study.n_trials=3", "study.sampler.seed=5"]
    )  # not in the fingerprint
    assert not handle.created
    assert result.ran == 2
    assert len(by_role(handle.study, "candidate", TrialState.COMPLETE)) == 3
    assert len(by_role(handle.study, "baseline")) == 1  # not enqueued twice
    _, result = run(path, ["study.n_trials=3"])
    assert result.ran == 0


def _dead_worker() -> dict:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    start = _proc_start(proc.pid)
    proc.wait()
    return {"host": __import__("socket").gethostname(), "pid": proc.pid, "start": start}


def test_stale_trial_of_a_dead_worker_is_failed_and_retried(study_file) -> None:
    path = study_file(
        n_trials=2, params="    sinter.amplitude: [1.0e-4, 1.0e-3]\n    sinter.frequency: 1.0e4"
    )
    cfg = load_config(path)
    handle = open_study(cfg, log=lambda m: None)
    study = handle.study
    # a worker popped the baseline and a grid point, then died (kill -9)
    for _ in range(2):
        t = study.ask()
        tid = handle.storage.get_trial_id_from_study_id_trial_number(handle.study_id, t.number)
        handle.storage.set_trial_system_attr(tid, R.WORKER, _dead_worker())
        handle.space.suggest(t)
    logs: list[str] = []
    run_worker(handle, log=logs.append)
    trials = study.get_trials()
    stale = [t for t in trials if t.state == TrialState.FAIL]
    assert len(stale) == 2
    assert all(t.user_attrs["failure"].startswith("stale: its worker (pid") for t in stale)
    assert not [t for t in trials if t.state in (TrialState.RUNNING, TrialState.WAITING)]
    done = [t for t in trials if t.state == TrialState.COMPLETE]
    assert sorted(t.params.get("sinter.amplitude", 0) for t in done) == pytest.approx(
        [0, 1e-4, 1e-3]
    )
    assert sum(1 for t in done if t.system_attrs.get("retry_history")) == 2
    assert any("recorded FAIL and queued again" in m for m in logs)


def test_trial_of_a_live_worker_is_left_alone(study_file) -> None:
    path = study_file(n_trials=1, baseline="false", sampler="{name: random, seed: 0}")
    handle = open_study(load_config(path), log=lambda m: None)
    t = handle.study.ask()
    live = {
        "host": __import__("socket").gethostname(),
        "pid": os.getppid(),
        "start": _proc_start(os.getppid()),
    }
    tid = handle.storage.get_trial_id_from_study_id_trial_number(handle.study_id, t.number)
    handle.storage.set_trial_system_attr(tid, R.WORKER, live)
    result = run_worker(handle, log=lambda m: None)
    assert result.ran == 0  # the running trial of the live worker fills n_trials = 1
    assert handle.study.get_trials()[0].state == TrialState.RUNNING


@pytest.mark.mysql
@pytest.mark.parametrize("scheme", ["mysql", "mysql+pymysql"])
def test_a_small_study_on_mysql(study_file, mysql_url: str, scheme: str) -> None:
    url = scheme + mysql_url[len("mysql") :]
    handle, result = run(study_file(storage=url, n_trials=2))
    study = handle.study
    assert result.ran == 3
    assert len(by_role(study, "candidate", TrialState.COMPLETE)) == 2
    assert len(by_role(study, "baseline", TrialState.COMPLETE)) == 1
    cand = by_role(study, "candidate", TrialState.COMPLETE)[0]
    assert set(cand.user_attrs["seed_metrics"]) == {"0", "1"}
    assert cand.system_attrs[R.WORKER]["pid"] == os.getpid()
    # resuming the same study on the server runs nothing more
    _, again = run(study_file(storage=url, n_trials=2))
    assert again.ran == 0
