"""Issue 22 through the command line: progress lines without a terminal, the environment
fingerprint in every trial, and the warning when a study resumes on another machine."""

from __future__ import annotations

import json
import re
import sqlite3
from pathlib import Path

import optuna
from optuna.trial import TrialState

from loran_search import record as R
from loran_search.environment import COMPARED_KEYS, machine_fingerprint
from loran_search.search.progress import Progress, phase_counts
from loran_search.search.validate import load_config_text
from loran_search.storage import open_storage
from tests.loran_search.search.conftest import run_cli, study_text

GRID2 = "    sinter.amplitude: [1.0e-4, 1.0e-2]\n    sinter.frequency: 1.0e4"
CONFIRM = "{top_k: 1, seeds: [100, 101], split: test}"


def _load(tmp_path: Path) -> optuna.Study:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    url = f"sqlite:///{tmp_path / 'study.db'}"
    return optuna.load_study(study_name="t", storage=open_storage(url, heartbeat_interval=None))


def test_a_run_without_a_terminal_prints_progress_records_the_environment_and_warns_on_resume(
    study_file, fake_env, tmp_path: Path
) -> None:
    path = study_file(params=GRID2, n_trials=2, confirm=CONFIRM)
    env = dict(fake_env, LORAN_SEARCH_PROGRESS_SECONDS="0")
    res = run_cli(["run", str(path)], env, tmp_path)  # stderr is a pipe: no terminal
    assert res.returncode == 0, res.stderr
    lines = [line for line in res.stderr.splitlines() if line.startswith("[progress]")]
    pattern = re.compile(
        r"\[progress\] trial (\d+) · (search|confirm) · seed (\d+) \((\d)/2\): completed in "
        r"\d+s; trial (ETA \d+s|done)"
    )
    seen = [pattern.fullmatch(line) for line in lines]
    assert all(seen), lines
    # one line per seed of every trial: 3 search trials (baseline + 2) and 2 confirmation ones
    assert len(seen) == 2 * 5
    phases = {(m.group(2), m.group(3)) for m in seen if m}
    assert {("search", "0"), ("search", "1"), ("confirm", "100"), ("confirm", "101")} == phases
    assert "Traceback" not in res.stderr

    study = _load(tmp_path)
    here = machine_fingerprint()
    trials = [t for t in study.get_trials() if t.state == TrialState.COMPLETE]
    assert len(trials) == 5
    for t in trials:
        fp = t.user_attrs[R.ENVIRONMENT]
        assert {k: fp[k] for k in COMPARED_KEYS} == {k: here[k] for k in COMPARED_KEYS}
        assert fp["compute_dtype"] == "float32" and fp["quantization"] == "none"
        assert R.TrialRecord.from_frozen(t).environment == fp

    # the same study resumed here: no warning
    res = run_cli(["run", str(path), "--no-report"], env, tmp_path)
    assert res.returncode == 0 and "differs from this one" not in res.stderr, res.stderr

    # trials 0 and 1 recorded on another machine (as a study copied from elsewhere reads)
    other = dict(here, cpu_model="Imaginary CPU 9000", cpu_flags="avx2 avx512_bf16 amx_bf16")
    with sqlite3.connect(tmp_path / "study.db") as db:
        db.execute(
            "UPDATE trial_user_attributes SET value_json = ? WHERE key = ? AND trial_id IN "
            "(SELECT trial_id FROM trials WHERE number IN (0, 1))",
            (json.dumps(other), R.ENVIRONMENT),
        )
    res = run_cli(["run", str(path), "--no-report"], env, tmp_path)
    assert res.returncode == 0, res.stderr
    assert "differs from this one" in res.stderr
    assert f"trials 0, 1: cpu_model: 'Imaginary CPU 9000' → {here['cpu_model']!r}" in res.stderr
    assert "cpu_flags: 'avx2 avx512_bf16 amx_bf16'" in res.stderr


def test_an_old_record_without_a_fingerprint_still_reads_and_reports(tmp_path: Path) -> None:
    from loran_search.analysis.environment import environments, lines

    study = optuna.create_study(direction="maximize")
    study.add_trial(
        optuna.trial.create_trial(value=0.5, user_attrs={"role": "baseline", "record_version": 1})
    )
    rec = R.TrialRecord.from_frozen(study.get_trials()[0])
    assert rec.environment is None
    groups = environments(study.get_trials())
    assert groups == [{"fingerprint": None, "trials": [0], "roles": ["baseline"]}]
    assert lines(groups)[0].startswith("Trials 0 (baseline): not recorded")


def test_the_study_bar_covers_the_confirmation(tmp_path: Path) -> None:
    cfg = load_config_text(
        study_text(storage=f"sqlite:///{tmp_path / 'x.db'}", confirm=CONFIRM, rank="[4, 8]"),
        environment=False,
    )
    from loran_search.search.confirm import confirm_setup

    setup = confirm_setup(cfg)
    p = Progress(candidates=3, finished=3, baselines_done=2, baselines_total=2)
    search, confirm = phase_counts(p, cfg, setup)
    assert (search.name, search.done, search.total) == ("search", 5, 5)
    # not queued yet: at most top_k configurations and one baseline each
    assert (confirm.name, confirm.done, confirm.total, confirm.estimated) == ("confirm", 0, 2, True)
    p.confirm_waiting, p.confirm_running, p.confirm_done = 1, 0, 1
    confirm = phase_counts(p, cfg, setup)[1]
    assert (confirm.done, confirm.total, confirm.estimated) == (1, 2, False)
    assert len(phase_counts(p, cfg, None)) == 1
    from loran_search.cli.study import _Bar

    text = _Bar.describe(phase_counts(p, cfg, setup))
    assert text == "study [confirm] search 5/5 · confirm 1/2"
