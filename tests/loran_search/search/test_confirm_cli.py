"""The confirmation through the command line, in real processes with the fake trainer:
``run`` confirms after the search, ``--no-confirm``, ``loran-search confirm``, two workers,
``kill -9`` during the confirmation then the same command again."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from collections import Counter
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from loran_search import record as R
from loran_search.storage import open_storage
from tests.loran_search.search.conftest import cli, run_cli

GRID3 = "    sinter.amplitude: [1.0e-4, 1.0e-3, 1.0e-2]\n    sinter.frequency: 1.0e4"
GRID6 = (
    "    sinter.amplitude: {low: 1.0e-4, high: 1.0e-2, log: true, num: 6}\n"
    "    sinter.frequency: 1.0e4"
)
CONFIRM = "{top_k: 2, seeds: [100, 101], split: test}"


def load(url: str, name: str = "t") -> optuna.Study:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna.load_study(study_name=name, storage=open_storage(url, heartbeat_interval=None))


def confirmations(study: optuna.Study) -> list[optuna.trial.FrozenTrial]:
    return [t for t in study.get_trials() if t.user_attrs.get("role") in R.CONFIRM_ROLES]


def assert_exactly_once(study: optuna.Study, n: int) -> None:
    """``n`` confirmation keys, each COMPLETE exactly once; nothing RUNNING or WAITING."""
    trials = study.get_trials()
    assert not [t.number for t in trials if t.state in (TrialState.RUNNING, TrialState.WAITING)]
    conf = confirmations(study)
    done = Counter(t.user_attrs[R.CONFIRM_KEY] for t in conf if t.state == TrialState.COMPLETE)
    assert len(done) == n and set(done.values()) == {1}, done
    assert {t.user_attrs[R.CONFIRM_KEY] for t in conf} == set(done)


def test_run_confirms_after_the_search_and_the_summary_says_which_numbers_are_which(
    study_file, fake_env, tmp_path: Path
) -> None:
    path = study_file(params=GRID3, confirm=CONFIRM)
    res = run_cli(["run", str(path)], fake_env, tmp_path)
    assert res.returncode == 0, res.stderr
    assert "Confirmation: queued 3 trials" in res.stderr
    assert "search (on 'val', seeds [0, 1]; optimistic" in res.stdout
    assert "confirmation (held out: on 'test', seeds [100, 101]" in res.stdout
    url = f"sqlite:///{tmp_path / 'study.db'}"
    assert_exactly_once(load(url), 3)
    runs = [json.loads(line) for line in (tmp_path / "runs.log").read_text().splitlines()]
    assert Counter(r[4] for r in runs) == {"val": 8, "test": 6}
    # the same command again: nothing trained, nothing queued
    before = len(runs)
    res = run_cli(["run", str(path)], fake_env, tmp_path)
    assert res.returncode == 0, res.stderr
    assert len((tmp_path / "runs.log").read_text().splitlines()) == before
    # another confirmation setup for the confirmed study: refused, exit 2, a clear message
    res = run_cli(["run", str(path), "--set", "study.confirm.seeds=[300]"], fake_env, tmp_path)
    assert res.returncode == 2
    assert "already has 3 confirmation trials" in res.stderr and "[100, 101] → [300]" in res.stderr


def test_no_confirm_then_confirm_on_the_existing_study(
    study_file, fake_env, tmp_path: Path
) -> None:
    path = study_file(params=GRID3, confirm=CONFIRM)
    url = f"sqlite:///{tmp_path / 'study.db'}"
    res = run_cli(["run", str(path), "--no-confirm"], fake_env, tmp_path)
    assert res.returncode == 0, res.stderr
    assert confirmations(load(url)) == [] and "confirmation (held out" not in res.stdout
    res = run_cli(["confirm", str(path), "--top-k", "1", "--seeds", "7", "8"], fake_env, tmp_path)
    assert res.returncode == 0, res.stderr
    assert "confirmation (held out: on 'test', seeds [7, 8]" in res.stdout
    assert_exactly_once(load(url), 2)
    res = run_cli(["confirm", str(path), "--seeds", "9"], fake_env, tmp_path)
    assert res.returncode == 2 and "--seeds asks for seeds: [7, 8] → [9]" in res.stderr
    res = run_cli(["confirm", str(path), "--seeds", "0"], fake_env, tmp_path)
    assert res.returncode == 2 and "--seeds:" in res.stderr and "study.seeds" in res.stderr
    res = run_cli(["confirm", str(path), "--set", "study.name=nope"], fake_env, tmp_path)
    assert res.returncode == 2 and "No study 'nope'" in res.stderr


def _confirm_running(url: str):
    def pred() -> bool:
        try:
            s = load(url)
        except KeyError:
            return False
        return any(t.state == TrialState.RUNNING and t.params for t in confirmations(s))

    return pred


def wait_for(pred, timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if pred():
                return
        except Exception:  # the storage being created
            pass
        time.sleep(0.2)
    raise AssertionError("condition not reached in time")


@pytest.mark.parametrize("backend", ["sqlite", "journal"])
def test_kill_9_during_the_confirmation_then_the_same_command(
    study_file, fake_env, tmp_path: Path, backend: str
) -> None:
    url = f"sqlite:///{tmp_path / 'k.db'}" if backend == "sqlite" else f"journal:{tmp_path / 'k.j'}"
    path = study_file(storage=url, params=GRID3, seeds="[0]", confirm=CONFIRM)
    fake_env["FAKE_TRAIN_SLEEP"] = "0.6"  # only the confirmation phase is slow enough to catch
    proc = subprocess.Popen(
        cli("run", str(path)),
        env=fake_env,
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for(_confirm_running(url))
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    killed = load(url)
    running = [t.number for t in killed.get_trials() if t.state == TrialState.RUNNING]
    assert len(running) == 1 and killed.trials[running[0]].user_attrs["role"] in R.CONFIRM_ROLES
    fake_env["FAKE_TRAIN_SLEEP"] = "0"
    res = run_cli(["run", str(path)], fake_env, tmp_path)  # the same command again
    assert res.returncode == 0, res.stderr
    assert f"Trial {running[0]} was left RUNNING" in res.stderr
    study = load(url)
    assert_exactly_once(study, 3)
    stale = study.trials[running[0]]
    assert stale.state == TrialState.FAIL and stale.user_attrs["failure"].startswith("stale:")
    retried = [
        t for t in study.get_trials() if running[0] in t.system_attrs.get("retry_history", [])
    ]
    assert len(retried) == 1 and retried[0].state == TrialState.COMPLETE
    assert retried[0].user_attrs[R.CONFIRM_KEY] == stale.user_attrs[R.CONFIRM_KEY]
    # the search was not run again: 1 baseline + 3 candidates complete, once each
    search = [t for t in study.get_trials() if t.user_attrs["role"] in R.SEARCH_ROLES]
    assert Counter(t.state for t in search) == {TrialState.COMPLETE: 4}


def test_two_workers_share_the_confirmation(study_file, fake_env, tmp_path: Path) -> None:
    url = f"journal:{tmp_path / 'two.journal'}"
    path = study_file(storage=url, params=GRID6, n_trials=6, seeds="[0]", confirm="{top_k: 4}")
    fake_env["FAKE_TRAIN_SLEEP"] = "0.15"
    procs = [
        subprocess.Popen(
            cli("worker", str(path), "--storage", url),
            env=fake_env,
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    for p in procs:
        _, err = p.communicate(timeout=240)
        assert p.returncode == 0, err
    study = load(url)
    assert_exactly_once(study, 5)  # the top 4 and the baseline of their rank
    conf = [t for t in confirmations(study) if t.state == TrialState.COMPLETE]
    pids = {t.system_attrs["loran.worker"]["pid"] for t in conf}
    assert len(pids) == 2, "both workers should have run confirmation trials"
    runs = [json.loads(line) for line in (tmp_path / "runs.log").read_text().splitlines()]
    held_out = Counter(json.dumps(r[:4]) for r in runs if r[4] == "test")
    assert len(held_out) == 15 and set(held_out.values()) == {1}  # 5 trials × 3 seeds, once
    bad = [
        t.number
        for t in study.get_trials()
        if t.state == TrialState.FAIL and t.user_attrs.get("failure_kind") != "surplus"
    ]
    assert bad == []


def test_confirm_on_a_study_whose_search_failed_says_so_and_exits_non_zero(
    study_file, fake_env, tmp_path: Path
) -> None:
    # issue 18 finding 11: `confirm` re-queued the failed search trials and said "every
    # confirmation trial is done"
    path = study_file(params=GRID3, confirm=CONFIRM)
    url = f"sqlite:///{tmp_path / 'study.db'}"
    broken = dict(fake_env, FAKE_TRAIN_RAISE="FileNotFoundError")
    res = run_cli(["run", str(path), "--no-confirm"], broken, tmp_path)
    assert res.returncode != 0
    before = Counter(t.state for t in load(url).get_trials())
    res = run_cli(["confirm", str(path)], fake_env, tmp_path)
    assert res.returncode == 1, res.stderr
    assert "every confirmation trial is done" not in res.stderr
    assert "Nothing to confirm in study 't': no candidate trial of its search completed" in (
        res.stderr
    )
    assert "3 FAIL (error ×3)" in res.stderr  # the baseline and two candidates raised
    assert f"loran-search run {path}" in res.stderr
    assert "Traceback" not in res.stderr
    # nothing queued, nothing trained: the search's failures are the search's to retry
    assert Counter(t.state for t in load(url).get_trials()) == before
    assert not (tmp_path / "runs.log").exists() or "test" not in (tmp_path / "runs.log").read_text()
