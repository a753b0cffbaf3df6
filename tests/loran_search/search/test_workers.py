"""Real processes: two workers on journal, PostgreSQL and MySQL, kill -9 then resume, Ctrl-C.

The trainer is the fake of :mod:`loran_search.testing` (selected by ``LORAN_SEARCH_TRAIN_FN``),
slowed by ``FAKE_TRAIN_SLEEP`` so that processes overlap; everything else is the real CLI and
storage.
"""

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

from loran_search.storage import open_storage
from tests.loran_search.search.conftest import cli, postgres_url, run_cli, unique_name

GRID6 = (
    "    sinter.amplitude: {low: 1.0e-4, high: 1.0e-2, log: true, num: 6}\n"
    "    sinter.frequency: 1.0e4"
)


def load(url: str, name: str) -> optuna.Study:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna.load_study(study_name=name, storage=open_storage(url, heartbeat_interval=None))


def states(study: optuna.Study, role: str = "candidate") -> Counter:
    return Counter(t.state for t in study.get_trials() if t.user_attrs.get("role") == role)


def two_workers(
    path: Path, url: str, env: dict, cwd: Path, n: int = 6
) -> list[subprocess.CompletedProcess]:
    procs = [
        subprocess.Popen(
            cli("worker", str(path), "--storage", url),
            env=env,
            cwd=cwd,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    outs = []
    for p in procs:
        out, err = p.communicate(timeout=180)
        outs.append(subprocess.CompletedProcess(p.args, p.returncode, out, err))
        assert p.returncode == 0, err
    return outs


def check_two_workers(study: optuna.Study, n: int, log: Path, grid: bool) -> None:
    trials = study.get_trials()
    assert states(study)[TrialState.COMPLETE] == n
    assert states(study, "baseline")[TrialState.COMPLETE] == 1
    assert not [t for t in trials if t.state == TrialState.RUNNING]
    assert not [
        t
        for t in trials
        if t.state == TrialState.FAIL and t.user_attrs.get("failure_kind") != "surplus"
    ]
    workers = {
        json.dumps(t.system_attrs["loran.worker"]["pid"])
        for t in trials
        if t.state == TrialState.COMPLETE
    }
    assert len(workers) == 2, "both workers should have run trials"
    if grid:
        runs = [
            tuple(json.dumps(x) for x in json.loads(line)[:3])
            for line in log.read_text().splitlines()
        ]
        dupes = [k for k, c in Counter(runs).items() if c > 1]
        assert not dupes, f"grid points trained twice: {dupes}"
        assert len(runs) == n + 1


@pytest.mark.parametrize("sampler", ["{name: grid}", "{name: random, seed: 0}"])
def test_two_workers_on_journal(study_file, fake_env, tmp_path: Path, sampler: str) -> None:
    url = f"journal:{tmp_path / 'study.journal'}"
    path = study_file(sampler=sampler, params=GRID6, n_trials=6, seeds="[0]")
    fake_env["FAKE_TRAIN_SLEEP"] = "0.15"
    two_workers(path, url, fake_env, tmp_path)
    check_two_workers(load(url, "t"), 6, tmp_path / "runs.log", grid="grid" in sampler)


@pytest.mark.postgres
def test_two_workers_on_postgresql(study_file, fake_env, tmp_path: Path) -> None:
    url = postgres_url()
    name = unique_name("two-workers")
    path = study_file(name=name, params=GRID6, n_trials=6, seeds="[0]")
    fake_env["FAKE_TRAIN_SLEEP"] = "0.15"
    two_workers(path, url, fake_env, tmp_path)
    check_two_workers(load(url, name), 6, tmp_path / "runs.log", grid=True)


@pytest.mark.mysql
def test_two_workers_on_mysql(study_file, fake_env, tmp_path: Path, mysql_url: str) -> None:
    path = study_file(name="two-workers", params=GRID6, n_trials=6, seeds="[0]")
    fake_env["FAKE_TRAIN_SLEEP"] = "0.15"
    two_workers(path, mysql_url, fake_env, tmp_path)
    check_two_workers(load(mysql_url, "two-workers"), 6, tmp_path / "runs.log", grid=True)


@pytest.mark.mysql
def test_two_random_workers_on_mysql_finish_with_exactly_n_trials(
    study_file, fake_env, tmp_path: Path, mysql_url: str
) -> None:
    path = study_file(name="random", sampler="{name: random, seed: 0}", n_trials=6, seeds="[0]")
    fake_env["FAKE_TRAIN_SLEEP"] = "0.15"
    two_workers(path, mysql_url, fake_env, tmp_path)
    check_two_workers(load(mysql_url, "random"), 6, tmp_path / "runs.log", grid=False)


def wait_for(pred, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return
        time.sleep(0.2)
    raise AssertionError("condition not reached in time")


def _running_after(url: str, name: str, n_complete: int):
    def pred() -> bool:
        try:
            s = load(url, name)
        except KeyError:
            return False
        st = Counter(t.state for t in s.get_trials())
        return st[TrialState.COMPLETE] >= n_complete and st[TrialState.RUNNING] == 1

    return pred


@pytest.mark.parametrize(
    "backend",
    [
        "sqlite",
        "journal",
        pytest.param("postgresql", marks=pytest.mark.postgres),
        pytest.param("mysql", marks=pytest.mark.mysql),
    ],
)
def test_kill_9_then_rerun_resumes(
    study_file, fake_env, tmp_path: Path, backend: str, request: pytest.FixtureRequest
) -> None:
    name = "t"
    if backend == "sqlite":
        url = f"sqlite:///{tmp_path / 'k.db'}"
    elif backend == "journal":
        url = f"journal:{tmp_path / 'k.journal'}"
    elif backend == "mysql":
        url = request.getfixturevalue("mysql_url")
    else:
        url, name = postgres_url(), unique_name("kill9")
    path = study_file(storage=url, name=name, params=GRID6, n_trials=6, seeds="[0, 1]")
    fake_env["FAKE_TRAIN_SLEEP"] = "1.0"  # a poller under load must see a trial RUNNING
    proc = subprocess.Popen(
        cli("run", str(path)),
        env=fake_env,
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for(_running_after(url, name, 2))
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    killed = load(url, name)
    running = [t.number for t in killed.get_trials() if t.state == TrialState.RUNNING]
    assert len(running) == 1
    fake_env["FAKE_TRAIN_SLEEP"] = "0"  # (only the trainer's speed differs)
    res = run_cli(["run", str(path)], fake_env, tmp_path)  # the same command again
    assert res.returncode == 0, res.stderr
    assert f"Trial {running[0]} was left RUNNING" in res.stderr
    study = load(url, name)
    trials = study.get_trials()
    assert states(study)[TrialState.COMPLETE] == 6
    assert states(study, "baseline")[TrialState.COMPLETE] == 1
    assert not [t for t in trials if t.state in (TrialState.RUNNING, TrialState.WAITING)]
    stale = study.trials[running[0]]
    assert stale.state == TrialState.FAIL and stale.user_attrs["failure"].startswith("stale:")
    retried = [t for t in trials if running[0] in t.system_attrs.get("retry_history", [])]
    assert len(retried) == 1 and retried[0].state == TrialState.COMPLETE
    amps = [t.params.get("sinter.amplitude") for t in trials if t.state == TrialState.COMPLETE]
    assert len(set(amps)) == 7  # 6 grid points + the baseline (None), none twice


def _default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def test_ctrl_c_records_fail_and_says_how_to_resume(study_file, fake_env, tmp_path: Path) -> None:
    path = study_file(params=GRID6, n_trials=6, seeds="[0]")
    url = f"sqlite:///{tmp_path / 'study.db'}"
    fake_env["FAKE_TRAIN_SLEEP"] = "2.0"  # SIGINT must land inside a trial even on a loaded machine
    proc = subprocess.Popen(
        cli("run", str(path)),
        env=fake_env,
        cwd=tmp_path,
        # A test runner started in the background (CI, nohup, `&`) inherits SIGINT ignored, and
        # Python then keeps it ignored: give the child the default disposition a terminal has.
        preexec_fn=_default_sigint,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for(_running_after(url, "t", 1))
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err
    assert "Interrupted." in err and "Resume with:" in err and f"run {path}" in err
    study = load(url, "t")
    failed = [t for t in study.get_trials() if t.state == TrialState.FAIL]
    assert len(failed) == 1
    assert failed[0].user_attrs["failure"].startswith("interrupted: Ctrl-C")
    assert not [t for t in study.get_trials() if t.state == TrialState.RUNNING]
    fake_env["FAKE_TRAIN_SLEEP"] = "0"
    res = run_cli(["run", str(path)], fake_env, tmp_path)
    assert res.returncode == 0, res.stderr
    study = load(url, "t")
    assert states(study)[TrialState.COMPLETE] == 6
    assert [
        t for t in study.get_trials() if failed[0].number in t.system_attrs.get("retry_history", [])
    ]


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_dashboard_serves_the_study_and_artifacts(study_file, fake_env, tmp_path: Path) -> None:
    import urllib.request

    path = study_file(n_trials=1, seeds="[0]")
    assert run_cli(["run", str(path)], fake_env, tmp_path).returncode == 0
    port = _free_port()
    proc = subprocess.Popen(
        cli("dashboard", str(path), "--port", str(port)),
        env=fake_env,
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        body = None

        def up() -> bool:
            nonlocal body
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/studies", timeout=2) as r:
                    body = json.loads(r.read())
                return True
            except OSError:
                return proc.poll() is not None

        wait_for(up, timeout=60)
        assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
        assert [s["study_name"] for s in body["study_summaries"]] == ["t"]
        sid = body["study_summaries"][0]["study_id"]
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/studies/{sid}", timeout=5) as r:
            detail = json.loads(r.read())
        arts = [a for t in detail["trials"] for a in t.get("artifacts", [])]
        assert any(a["filename"].endswith("-metrics.json") for a in arts)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def test_bench_storage_reports_a_ratio(tmp_path: Path) -> None:
    res = run_cli(
        [
            "bench",
            "storage",
            "--storage",
            f"journal:{tmp_path / 'b.journal'}",
            "--trials",
            "6",
            "--format",
            "json",
        ],
        dict(__import__("os").environ),
        tmp_path,
        timeout=300,
    )
    assert res.returncode == 0, res.stderr
    (row,) = json.loads(res.stdout)
    assert row["one_worker_trials_per_s"] > 0 and row["two_workers_trials_per_s"] > 0
    assert row["ratio"] == pytest.approx(
        row["two_workers_trials_per_s"] / row["one_worker_trials_per_s"], rel=0.02
    )
