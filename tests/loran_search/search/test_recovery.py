"""Nothing lost, nothing hangs: failed, non-finite and interrupted trials, with the fake trainer.

Each test runs the real study and worker loop in-process (or a real process for signals) and
then checks the study's trials: nothing lost (every configuration finally COMPLETE or failed by
its configuration), nothing duplicated (no configuration completed twice), nothing left
RUNNING, and the message the user sees.
"""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
import warnings
from collections import Counter
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from loran_search.errors import EXIT_FAILURE, EXIT_INTERRUPTED, EXIT_TERMINATED
from loran_search.search.progress import progress_of
from loran_search.search.recovery import MAX_CONSECUTIVE_ERRORS, TrialErrors
from loran_search.search.study import open_study
from loran_search.search.summary import summarize
from loran_search.search.validate import load_config
from loran_search.search.workers import run_worker
from tests.loran_search.search.conftest import FAKE_SPEC, cli

pytestmark = pytest.mark.filterwarnings("ignore:Heartbeat of storage:UserWarning")

ROOT = Path(__file__).resolve().parents[3]
GRID3 = "    sinter.amplitude: [1.0e-4, 1.0e-3, 1.0e-2]\n    sinter.frequency: 1.0e4"
RANGE = "    sinter.amplitude: {low: 1.0e-4, high: 1.0e-2, log: true}\n    sinter.frequency: 1.0e4"


@pytest.fixture(autouse=True)
def _fake(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("LORAN_SEARCH_TRAIN_FN", FAKE_SPEC)
    for var in (
        "FAKE_TRAIN_DIVERGE_ABOVE",
        "FAKE_TRAIN_SLEEP",
        "FAKE_TRAIN_METRIC",
        "FAKE_TRAIN_METRIC_ABOVE",
        "FAKE_TRAIN_RAISE",
        "FAKE_TRAIN_RAISE_FOR",
        "FAKE_TRAIN_ADAPTER_EARLY",
    ):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.chdir(tmp_path)


def run(path: Path, logs: list[str] | None = None, **kw):
    cfg = load_config(path, kw.pop("overrides", []))
    handle = open_study(cfg, log=lambda m: None)
    result = run_worker(handle, log=(logs.append if logs is not None else lambda m: None), **kw)
    return handle, result


def trials_of(handle) -> list[optuna.trial.FrozenTrial]:
    return handle.study.get_trials()


def config_key(t: optuna.trial.FrozenTrial) -> tuple:
    return (t.user_attrs.get("role"), json.dumps(t.params, sort_keys=True))


def assert_sound(trials) -> None:
    """Nothing RUNNING, no configuration completed twice."""
    assert not [t.number for t in trials if t.state == TrialState.RUNNING]
    done = Counter(config_key(t) for t in trials if t.state == TrialState.COMPLETE)
    assert [k for k, n in done.items() if n > 1] == []


def flaky(kind: type[BaseException], when, state: dict | None = None):
    """A train_fn that raises ``kind`` whenever ``when(kwargs)`` holds."""
    from loran_search.testing import run as fake

    def train(cfg, **kwargs):
        if when(kwargs):
            raise kind(f"flaky {kind.__name__}")
        return fake(cfg, **kwargs)

    return train


# ------------------------------------------------------------------------------ 1. error: trials


def test_an_error_trial_is_not_counted_and_the_same_command_retries_it(study_file) -> None:
    path = study_file(params=GRID3, n_trials=3)
    bad = flaky(FileNotFoundError, lambda kw: kw["activation_params"].get("amplitude") == 1e-3)
    handle, first = run(path, train_fn=bad)
    trials = trials_of(handle)
    (failed,) = [t for t in trials if t.state == TrialState.FAIL]
    assert failed.user_attrs["failure"].startswith("error: FileNotFoundError: flaky")
    assert failed.user_attrs["failure_kind"] == "error"
    assert progress_of(handle.study, handle.cfg).candidates == 2  # not counted
    assert any("failed with an error" in n for n in first.notes)
    # the cause is fixed: the same command runs the lost point, and only that one
    handle, second = run(path)
    assert second.ran == 1
    trials = trials_of(handle)
    assert_sound(trials)
    cands = [t for t in trials if t.user_attrs.get("role") == "candidate"]
    done = [t for t in cands if t.state == TrialState.COMPLETE]
    assert sorted(t.params["sinter.amplitude"] for t in done) == pytest.approx([1e-4, 1e-3, 1e-2])
    retry = next(t for t in done if t.params["sinter.amplitude"] == pytest.approx(1e-3))
    assert retry.system_attrs["retry_history"] == [failed.number]
    assert not [t for t in trials if t.state == TrialState.WAITING]
    _, third = run(path)
    assert third.ran == 0  # nothing left, nothing run twice


def test_a_failed_baseline_is_counted_as_missing_and_retried(study_file) -> None:
    path = study_file(params=GRID3, n_trials=3)
    bad = flaky(MemoryError, lambda kw: kw["activation"] == "identity")
    logs: list[str] = []
    handle, first = run(path, logs, train_fn=bad)
    p = progress_of(handle.study, handle.cfg)
    assert (p.baselines_done, p.baselines_total, p.baselines_failed) == (0, 1, 1)
    text = "\n".join([*first.notes, *logs])
    assert "baseline" in text and "rank 4" in text and "run the same command again" in text
    assert "no COMPLETE baseline at rank 4" in summarize(handle.study, handle.cfg)
    handle, second = run(path)
    assert second.ran == 1
    trials = trials_of(handle)
    assert_sound(trials)
    base = [t for t in trials if t.user_attrs.get("role") == "baseline"]
    assert [t.state for t in base] == [TrialState.FAIL, TrialState.COMPLETE]
    p = progress_of(handle.study, handle.cfg)
    assert (p.baselines_done, p.baselines_total, p.baselines_failed) == (1, 1, 0)
    assert "gain" in summarize(handle.study, handle.cfg)


@pytest.mark.parametrize("storage", ["sqlite", "journal"])
def test_a_requeued_baseline_runs_before_the_queued_candidates(
    study_file, tmp_path: Path, storage: str
) -> None:
    # issue 18 finding 7: the baseline failed with `error:`, the worker stopped, and the next
    # `run` trained the queued grid points before the re-queued baseline (a higher number), so
    # the inert prediction and skip_inert could not apply to them
    from loran_search.testing import run as fake

    url = (
        f"sqlite:///{tmp_path / 'study.db'}"
        if storage == "sqlite"
        else f"journal:{tmp_path / 'study.journal'}"
    )
    grid = (
        "    sinter.amplitude: [1.0e-5, 1.0e-4, 1.0e-3, 1.0e-2, 1.0e-1]\n"
        "    sinter.frequency: 1.0e4"
    )
    path = study_file(params=grid, n_trials=5, storage=url, skip_inert="true")
    always = flaky(FileNotFoundError, lambda kw: True)
    with pytest.raises(TrialErrors):
        run(path, train_fn=always)  # the baseline and two candidates fail; the worker stops
    order: list[str] = []

    def recording(cfg, **kwargs):
        order.append(kwargs["activation"])
        return fake(cfg, **kwargs)

    handle, _ = run(path, train_fn=recording)
    assert order[0] == "identity", order  # the re-queued baseline first
    trials = trials_of(handle)
    assert_sound(trials)
    base = [t for t in trials if t.user_attrs.get("role") == "baseline"]
    assert [t.state for t in base] == [TrialState.FAIL, TrialState.COMPLETE]
    # with the baseline trained first, the inert prediction applies to every candidate: the
    # amplitudes up to 1e-3 (ν = A/√2 < 1e-3) are predicted inert and skipped untrained
    inert = [t for t in trials if t.user_attrs.get("failure_kind") == "inert"]
    assert sorted(t.params["sinter.amplitude"] for t in inert) == pytest.approx([1e-5, 1e-4, 1e-3])
    # seeds 0 and 1 of the baseline, then of 1e-2 and 1e-1 only
    assert order == ["identity"] * 2 + ["sinter"] * 4


def test_systematic_errors_stop_with_a_message_and_nothing_is_lost(study_file) -> None:
    path = study_file(params=GRID3, n_trials=3)
    always = flaky(FileNotFoundError, lambda kw: True)
    with pytest.raises(TrialErrors) as info:
        run(path, train_fn=always)
    err = info.value
    assert err.exit_code == EXIT_FAILURE
    msg = str(err)
    assert f"{MAX_CONSECUTIVE_ERRORS} trials in a row" in msg and "FileNotFoundError" in msg
    assert "run the same command again" in msg
    handle, _ = run(path)  # the data file is back
    trials = trials_of(handle)
    assert_sound(trials)
    failed = [t for t in trials if t.state == TrialState.FAIL]
    assert len(failed) == MAX_CONSECUTIVE_ERRORS
    retried = Counter(
        t.system_attrs["retry_history"][-1] for t in trials if "retry_history" in t.system_attrs
    )
    assert retried == Counter({t.number: 1 for t in failed})  # each failed trial retried once
    done = [t for t in trials if t.state == TrialState.COMPLETE]
    assert Counter(t.user_attrs["role"] for t in done) == {"baseline": 1, "candidate": 3}
    assert not [t for t in trials if t.state == TrialState.WAITING]


def test_an_error_in_a_sampled_study_is_replaced_not_lost(study_file) -> None:
    path = study_file(sampler="{name: random, seed: 0}", n_trials=3, seeds="[0]", params=RANGE)
    calls = {"n": 0}
    from loran_search.testing import run as fake

    def once(cfg, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:  # the first candidate: a transient out-of-memory
            raise MemoryError("transient")
        return fake(cfg, **kwargs)

    handle, _ = run(path, train_fn=once)
    trials = trials_of(handle)
    assert_sound(trials)
    cands = [t for t in trials if t.user_attrs.get("role") == "candidate"]
    assert Counter(t.state for t in cands) == {TrialState.COMPLETE: 3, TrialState.FAIL: 1}
    _, again = run(path)  # n_trials is full: the failed point waits for a larger budget
    assert again.ran == 0
    handle, extended = run(path, overrides=["study.n_trials=4"])
    assert extended.ran == 1  # the failed configuration, not a new sample
    failed = next(t for t in cands if t.state == TrialState.FAIL)
    retry = trials_of(handle)[-1]
    assert retry.state == TrialState.COMPLETE and retry.params == failed.params
    assert retry.system_attrs["retry_history"] == [failed.number]


def test_two_workers_starting_together_retry_a_failed_trial_once(study_file) -> None:
    path = study_file(params=GRID3, n_trials=3)
    bad = flaky(FileNotFoundError, lambda kw: kw["activation_params"].get("amplitude") == 1e-3)
    run(path, train_fn=bad)
    cfg = load_config(path)
    a = open_study(cfg, log=lambda m: None)
    b = open_study(cfg, log=lambda m: None)
    from loran_search.search.recovery import requeue_failed

    requeue_failed(a, target=3, log=lambda m: None)
    requeue_failed(b, target=3, log=lambda m: None)  # raced: it queues a second copy
    run_worker(b, log=lambda m: None)
    run_worker(a, log=lambda m: None)
    trials = trials_of(a)
    assert_sound(trials)
    assert not [t for t in trials if t.state in (TrialState.WAITING, TrialState.RUNNING)]
    dupes = [t for t in trials if t.user_attrs.get("failure_kind") == "surplus"]
    assert all("duplicate retry" in t.user_attrs["failure"] for t in dupes)


@pytest.mark.parametrize("when", ["before", "during"])
def test_a_trial_finished_by_another_process_is_left_to_it(
    study_file, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, when: str
) -> None:
    # issue 18 finding 10: two `confirm` commands at once on one SQLite study (no row lock: both
    # took one queued trial) gave UpdateFinishedTrialError from check_surplus when the other
    # process had recorded the trial first
    from loran_search.search import workers as W
    from loran_search.testing import run as fake

    path = study_file(params=GRID3, n_trials=3)
    handle = open_study(load_config(path), log=lambda m: None)
    logs: list[str] = []
    worker = W._Worker(
        handle, target=0, train_fn=fake, progress=False, log=logs.append, on_trial=None
    )  # target 0: any candidate it takes is surplus, so check_surplus writes to it
    worker.survey()
    base = worker.take_next_trial()
    assert base.role == "baseline"
    worker.survey()
    taken = worker.take_next_trial()
    assert taken.role == "candidate"
    other = optuna.load_study(study_name="t", storage=f"sqlite:///{tmp_path / 'study.db'}")

    def finish_elsewhere() -> None:
        other.tell(taken.trial.number, state=TrialState.FAIL)

    if when == "before":
        finish_elsewhere()
    else:  # between check_surplus's read of the trial and its write
        real = W.duplicate_of

        def racing(trials, frozen):
            finish_elsewhere()
            return real(trials, frozen)

        monkeypatch.setattr(W, "duplicate_of", racing)
    assert worker.check_surplus(taken) == W._SKIP
    assert taken.recorded
    assert any(f"Trial {taken.trial.number} was taken and recorded FAIL" in m for m in logs)
    frozen = handle.storage.get_trial(taken.trial_id)
    assert frozen.state == TrialState.FAIL and "failure" not in frozen.user_attrs


def test_an_unusable_train_result_stops_at_once_and_loses_nothing(study_file) -> None:
    from loran_search.search.objective import TrainFnError

    path = study_file(params=GRID3, n_trials=3)
    with pytest.raises(TrainFnError, match="returned NoneType None"):
        run(path, train_fn=lambda cfg, **kw: None)
    handle, _ = run(path)  # the function is fixed
    trials = trials_of(handle)
    assert_sound(trials)
    (failed,) = [t for t in trials if t.state == TrialState.FAIL]
    assert failed.user_attrs["failure_kind"] == "config"
    done = [t for t in trials if t.state == TrialState.COMPLETE]
    assert Counter(t.user_attrs["role"] for t in done) == {"baseline": 1, "candidate": 3}


# ------------------------------------------------------------------------------ 2. non-finite


def test_sys_exit_in_the_training_function_fails_the_trial_and_stops(study_file) -> None:
    # issue 18 finding 8: argparse in a user's script called sys.exit(); `run` exited 0 with no
    # message and left the trial RUNNING
    import argparse

    from loran_search.search.objective import TrainFnError

    def script(cfg, **kw):
        parser = argparse.ArgumentParser(prog="train.py")
        parser.add_argument("--lr", type=float, required=True)
        parser.parse_args(["run", "s.yaml"])  # the search's own command line

    path = study_file(params=GRID3, n_trials=3)
    with pytest.raises(TrainFnError) as info:
        run(path, train_fn=script)
    msg = str(info.value)
    assert "called sys.exit(2) (SystemExit)" in msg and "argparse" in msg
    assert 'if __name__ == "__main__":' in msg
    handle = open_study(load_config(path), log=lambda m: None)
    trials = trials_of(handle)
    assert not [t for t in trials if t.state == TrialState.RUNNING]
    (failed,) = [t for t in trials if t.state == TrialState.FAIL]
    assert failed.user_attrs["failure_kind"] == "config"
    assert "sys.exit(2)" in failed.user_attrs["failure"]
    assert failed.number in {
        n
        for t in trials
        if t.state == TrialState.WAITING
        for n in t.system_attrs.get("retry_history", [])
    }  # queued again: nothing lost
    handle, _ = run(path)  # the script is fixed
    trials = trials_of(handle)
    assert_sound(trials)
    done = [t for t in trials if t.state == TrialState.COMPLETE]
    assert Counter(t.user_attrs["role"] for t in done) == {"baseline": 1, "candidate": 3}


def test_sys_exit_in_the_training_function_through_the_command_line(
    study_file, fake_env, tmp_path: Path
) -> None:
    path = study_file(params=GRID3, n_trials=3, seeds="[0]")
    fake_env["FAKE_TRAIN_RAISE"] = "SystemExit"
    done = subprocess.run(
        cli("run", str(path)), env=fake_env, cwd=tmp_path, capture_output=True, text=True,
        timeout=120,
    )  # fmt: skip
    assert done.returncode != 0, done.stderr
    assert "(SystemExit) instead of returning a result" in done.stderr
    assert "Traceback" not in done.stderr
    url = f"sqlite:///{tmp_path / 'study.db'}"
    trials = optuna.load_study(study_name="t", storage=url).get_trials()
    assert not [t for t in trials if t.state == TrialState.RUNNING]
    assert [t.user_attrs["failure_kind"] for t in trials if t.state == TrialState.FAIL] == [
        "config"
    ]


def test_a_nan_trial_of_an_older_study_is_run_again_and_recorded(study_file, monkeypatch) -> None:
    """Before the fix, Optuna failed a NaN trial without a reason and the grid point was lost."""
    path = study_file(params=GRID3, n_trials=3)
    handle = open_study(load_config(path), log=lambda m: None)
    study = handle.study
    for value in (0.5, 0.6, 0.7, float("nan")):  # what the old loop left behind
        t = study.ask()
        handle.space.suggest(t)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            study.tell(t, value)
    lost = trials_of(handle)[-1]
    assert lost.state == TrialState.FAIL and "failure_kind" not in lost.user_attrs
    monkeypatch.setenv("FAKE_TRAIN_METRIC", "nan")
    monkeypatch.setenv("FAKE_TRAIN_METRIC_ABOVE", "5e-3")
    handle, again = run(path)
    assert again.requeued == [lost.number] and again.ran == 1
    retry = trials_of(handle)[-1]
    assert retry.params == lost.params and retry.system_attrs["retry_history"] == [lost.number]
    assert retry.user_attrs["failure_kind"] == "nonfinite"  # now a named, counted failure
    _, third = run(path)
    assert third.ran == 0 and third.requeued == []


@pytest.mark.parametrize("value", ["nan", "inf"])
def test_a_non_finite_metric_is_a_counted_failure_random(study_file, monkeypatch, value) -> None:
    monkeypatch.setenv("FAKE_TRAIN_METRIC", value)
    path = study_file(sampler="{name: random, seed: 0}", n_trials=2, seeds="[0, 1]", params=RANGE)
    start = time.monotonic()
    handle, result = run(path)
    assert time.monotonic() - start < 30
    trials = trials_of(handle)
    assert len(trials) == 3  # the baseline + exactly n_trials, no endless loop
    assert_sound(trials)
    cands = [t for t in trials if t.user_attrs.get("role") == "candidate"]
    assert [t.state for t in cands] == [TrialState.FAIL, TrialState.FAIL]
    for t in cands:
        assert t.user_attrs["failure_kind"] == "nonfinite"
        assert t.user_attrs["failure"].startswith(f"nonfinite: seed 0: accuracy = {value}")
    assert progress_of(handle.study, handle.cfg).candidates == 2
    assert result.failed == 2


def test_a_non_finite_grid_point_is_recorded_not_lost(study_file, monkeypatch) -> None:
    monkeypatch.setenv("FAKE_TRAIN_METRIC", "nan")
    monkeypatch.setenv("FAKE_TRAIN_METRIC_ABOVE", "5e-3")
    handle, _ = run(study_file(params=GRID3, n_trials=3))
    trials = trials_of(handle)
    assert_sound(trials)
    (bad,) = [t for t in trials if t.state == TrialState.FAIL]
    assert bad.params["sinter.amplitude"] == pytest.approx(1e-2)
    assert bad.user_attrs["failure_kind"] == "nonfinite"
    _, again = run(study_file(params=GRID3, n_trials=3))
    assert again.ran == 0  # counted like divergence: not retried


def test_an_infinite_value_is_never_the_best_in_the_summary(study_file, monkeypatch) -> None:
    """A study written before the fix holds a COMPLETE trial of value inf."""
    handle, _ = run(study_file(params=GRID3, n_trials=3, seeds="[0]"))
    t = trials_of(handle)[1]
    handle.study.add_trial(
        optuna.trial.create_trial(
            params=t.params, distributions=t.distributions, value=math.inf,
            user_attrs={**t.user_attrs, "seed_metrics": {"0": {"accuracy": math.inf}}},
        )
    )  # fmt: skip
    text = summarize(handle.study, handle.cfg)
    best = next(line for line in text.splitlines() if line.startswith("best:"))
    assert "inf" not in best
    assert "1 completed candidate trial has a non-finite value" in text


# ------------------------------------------------------------------------------ 3. signals

SCRIPT = """\
import sys
from loran_search.search.study import open_study
from loran_search.search.validate import load_config
from loran_search.search.recovery import StudyInterrupted
from loran_search.search.workers import run_worker

handle = open_study(load_config(sys.argv[1]), log=lambda m: None)
try:
    run_worker(handle, log=lambda m: print(m, file=sys.stderr, flush=True))
except StudyInterrupted as err:
    print(f"STOPPED {err.exit_code} {err}", file=sys.stderr, flush=True)
    sys.exit(err.exit_code)
"""


def _default_signals() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


def _wait_running(url: str, timeout: float = 60) -> optuna.trial.FrozenTrial:
    """The first RUNNING trial with its params, polled while the child creates the study.

    Opened through :func:`open_storage`: a plain ``load_study(storage=url)`` may race the child
    creating Optuna's schema in the same SQLite file ("UNIQUE constraint failed:
    alembic_version"), which ``open_storage`` waits out as the workers do.
    """
    from loran_search.storage import open_storage

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            study = optuna.load_study(
                study_name="t", storage=open_storage(url, heartbeat_interval=None)
            )
            running = [t for t in study.get_trials() if t.state == TrialState.RUNNING]
            if running and running[0].params:
                return running[0]
        except KeyError:
            pass
        time.sleep(0.2)
    raise AssertionError("no trial started")


@pytest.mark.parametrize(
    ("sig", "code", "word", "failure"),
    [
        (signal.SIGTERM, EXIT_TERMINATED, "SIGTERM", "interrupted: SIGTERM during the trial"),
        (signal.SIGINT, EXIT_INTERRUPTED, "SIGINT", "interrupted: Ctrl-C (SIGINT) during"),
    ],
    ids=["sigterm", "sigint"],
)
def test_a_signal_records_the_trial_interrupted_and_queues_it(
    study_file, tmp_path: Path, sig: int, code: int, word: str, failure: str
) -> None:
    path = study_file(params=GRID3, n_trials=3, seeds="[0]", save_adapters="all")
    url = f"sqlite:///{tmp_path / 'study.db'}"
    script = tmp_path / "worker.py"
    script.write_text(SCRIPT)
    env = dict(os.environ, FAKE_TRAIN_SLEEP="2.0", FAKE_TRAIN_ADAPTER_EARLY="1")
    env["PYTHONPATH"] = str(ROOT)
    proc = subprocess.Popen(
        [sys.executable, str(script), str(path)],
        env=env,
        cwd=tmp_path,
        preexec_fn=_default_signals,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        running = _wait_running(url)
        time.sleep(0.5)  # inside the (slow) training
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == code, err
    assert f"STOPPED {code} Trial {running.number} was recorded as FAIL (interrupted: {word}" in err
    study = optuna.load_study(study_name="t", storage=url)
    trials = study.get_trials()
    assert_sound(trials)
    stopped = trials[running.number]
    assert stopped.state == TrialState.FAIL
    assert stopped.user_attrs["failure"].startswith(failure)
    retry = [t for t in trials if t.system_attrs.get("retry_history") == [running.number]]
    assert len(retry) == 1 and retry[0].state == TrialState.WAITING
    adapters = tmp_path / "artifacts" / "adapters" / "t"
    assert not (adapters / f"trial-{running.number}").exists()  # no half-written folder
    env["FAKE_TRAIN_SLEEP"] = "0"
    res = subprocess.run([sys.executable, str(script), str(path)], env=env, cwd=tmp_path)
    assert res.returncode == 0
    trials = optuna.load_study(study_name="t", storage=url).get_trials()
    assert_sound(trials)
    done = [t for t in trials if t.state == TrialState.COMPLETE]
    assert Counter(t.user_attrs["role"] for t in done) == {"baseline": 1, "candidate": 3}
    assert not [t for t in trials if t.state == TrialState.WAITING]


def test_sigterm_through_the_command_line(study_file, fake_env, tmp_path: Path) -> None:
    path = study_file(params=GRID3, n_trials=3, seeds="[0]")
    url = f"sqlite:///{tmp_path / 'study.db'}"
    fake_env["FAKE_TRAIN_SLEEP"] = "2.0"
    proc = subprocess.Popen(
        cli("run", str(path)),
        env=fake_env,
        cwd=tmp_path,
        preexec_fn=_default_signals,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        running = _wait_running(url)
        time.sleep(0.5)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert "Interrupted." in err and "Resume with:" in err, err
    assert f"Trial {running.number} was recorded as FAIL (interrupted: SIGTERM" in err
    trials = optuna.load_study(study_name="t", storage=url).get_trials()
    assert not [t for t in trials if t.state == TrialState.RUNNING]
    if proc.returncode == EXIT_INTERRUPTED:
        pytest.xfail("the command layer does not map StudyInterrupted.exit_code (143) yet")
    assert proc.returncode == EXIT_TERMINATED


@pytest.fixture
def python_sigint():
    """SIGINT with Python's default handler, as in a terminal, for the duration of a test.

    A runner started in the background (``cmd &``, CI under nohup or setsid) inherits SIGINT
    *ignored*, and :class:`Signals` rightly leaves an ignored SIGINT alone; these tests are
    about the handler, so they give the process the disposition a terminal has.
    """
    import signal

    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


@pytest.mark.usefixtures("python_sigint")
def test_a_ctrl_c_swallowed_by_a_gc_callback_is_raised_again() -> None:
    """SIGINT delivered inside a weakref callback (as SQLAlchemy closes connections) is lost.

    Python prints "Exception ignored" and goes on; the worker's checkpoint raises it again, so
    Ctrl-C still stops the run (seen as a flaky Ctrl-C test under load before this guard).
    """
    import gc
    import signal
    import weakref

    from loran_search.search.recovery import Signals

    class Thing:
        pass

    with Signals() as sig:
        assert sig.active
        thing = Thing()
        # the callback runs while the object is collected; the signal's handler runs inside it
        ref = weakref.ref(thing, lambda _: signal.raise_signal(signal.SIGINT))
        del thing
        gc.collect()
        assert ref() is None
        assert sig.raised is KeyboardInterrupt  # lost by Python, remembered by the handler
        with pytest.raises(KeyboardInterrupt):
            sig.reraise_swallowed()
        sig.reraise_swallowed()  # once only


@pytest.mark.usefixtures("python_sigint")
def test_an_acknowledged_ctrl_c_is_not_raised_twice() -> None:
    import signal

    from loran_search.search.recovery import Signals

    with Signals() as sig:
        with pytest.raises(KeyboardInterrupt):
            signal.raise_signal(signal.SIGINT)
        sig.acknowledge()  # the worker's handler took it
        sig.reraise_swallowed()  # nothing left to raise
