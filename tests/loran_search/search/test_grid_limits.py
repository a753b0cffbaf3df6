"""The grid sampler: a grid too large is refused fast, and only what n_trials needs is queued.

Issue 18, probe 2: a plain grid of 10⁷ points validated "OK" and ``run`` allocated past 2 GB
before the first trial; a 10⁴ grid took 83 s to start and left 9,998 WAITING trials for
``n_trials: 2``. The grid's size is now counted without making its points (refused above
``MAX_GRID_POINTS``, the form grid's bound too) and the points are queued as the study needs
them.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from optuna.trial import TrialState

from loran_search.cli import main
from loran_search.config import ConfigError
from loran_search.search.space import build_space
from loran_search.search.study import open_study
from loran_search.search.types import MAX_GRID_POINTS, SpaceError
from loran_search.search.validate import load_config
from loran_search.search.workers import run_worker
from tests.loran_search.search.conftest import FAKE_SPEC

pytestmark = pytest.mark.filterwarnings("ignore:Heartbeat of storage:UserWarning")

#: 1000 learning rates × 100 batch sizes × 100 warm-up lengths = 10⁷ points.
HUGE = (
    "  training:\n"
    "    learning_rate: {low: 1.0e-5, high: 1.0e-3, log: true, num: 1000}\n"
    "    batch_size: {low: 1, high: 100, step: 1}\n"
    "    warmup_steps: {low: 0, high: 99, step: 1}\n"
)


@pytest.fixture(autouse=True)
def _fake(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("LORAN_SEARCH_TRAIN_FN", FAKE_SPEC)
    monkeypatch.chdir(tmp_path)


def with_training(path: Path, block: str) -> Path:
    """Add a ``training:`` search block (the study must have ``baseline: false``: a baseline
    beside searched training values is refused since issue 21, see ``study.tune``)."""
    path.write_text(path.read_text().replace("  params:", block + "  params:"))
    return path


def test_a_grid_of_ten_million_points_is_refused_fast(study_file, capsys) -> None:
    path = with_training(study_file(baseline="false"), HUGE)
    start = time.perf_counter()
    assert main(["validate", str(path)]) == 2
    elapsed = time.perf_counter() - start
    err = capsys.readouterr().err
    assert elapsed < 5.0, elapsed  # validate's imports included; the count itself is arithmetic
    assert "s.yaml:6 study.sampler.name" in err
    assert "The grid has 30,000,000 points" in err  # × 3 sinter amplitudes
    assert f"enumerates at most {MAX_GRID_POINTS:,}" in err and "another sampler" in err
    # the run refuses it the same way, before opening the storage
    assert main(["run", str(path)]) == 2
    assert "The grid has 30,000,000 points" in capsys.readouterr().err
    assert not (path.parent / "study.db").exists()
    # the same space is fine for a sampler that does not enumerate it
    path.write_text(path.read_text().replace("{name: grid}", "{name: random, seed: 0}"))
    load_config(path)


def test_one_range_of_a_billion_steps_is_counted_not_listed(study_file) -> None:
    path = with_training(
        study_file(baseline="false"),
        "  training: {learning_rate: {low: 0.0, high: 1.0, step: 1.0e-9}}\n",
    )
    start = time.perf_counter()
    with pytest.raises(ConfigError, match=r"The grid has 3,000,000,00\d points"):
        load_config(path)
    assert time.perf_counter() - start < 5.0
    # another sampler keeps the discrete range; the baseline's value comes from its index
    path.write_text(path.read_text().replace("{name: grid}", "{name: random, seed: 0}"))
    space = build_space(load_config(path))
    assert space.training["learning_rate"].grid_count() in (10**9, 10**9 + 1)
    assert space.baseline_params(4)["training.learning_rate"] == pytest.approx(2e-4)
    with pytest.raises(SpaceError, match="The grid has"):
        space.grid()  # never listed, whoever asks


def test_a_large_grid_with_few_trials_queues_only_what_is_needed(study_file) -> None:
    # 100 × 100 = 10⁴ points, n_trials 2
    block = (
        "  training:\n"
        "    batch_size: {low: 1, high: 100, step: 1}\n"
        "    warmup_steps: {low: 0, high: 99, step: 1}\n"
    )
    fixed = "    sinter.amplitude: 1.0e-3\n    sinter.frequency: 1.0e4"
    path = with_training(study_file(n_trials=2, seeds="[0]", params=fixed, baseline="false"), block)
    cfg = load_config(path)
    start = time.perf_counter()
    handle = open_study(cfg, log=lambda m: None)
    opened = time.perf_counter() - start
    study = handle.study
    waiting = [t for t in study.get_trials() if t.state == TrialState.WAITING]
    assert len(waiting) == 2 and opened < 10.0, (len(waiting), opened)  # the 2 points needed
    run_worker(handle, log=lambda m: None)
    trials = study.get_trials()
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 2
    assert sum(t.user_attrs.get("role") == "candidate" for t in trials) == 2
    # raising n_trials on resume queues the next points of the grid, none twice
    cfg = load_config(path, ["study.n_trials=5"])
    handle = open_study(cfg, log=lambda m: None)
    run_worker(handle, log=lambda m: None)
    cands = [t for t in handle.study.get_trials() if t.user_attrs.get("role") == "candidate"]
    assert [t.state for t in cands] == [TrialState.COMPLETE] * 5
    keys = {tuple(sorted(t.params.items())) for t in cands}
    assert len(keys) == 5
    assert not [t for t in handle.study.get_trials() if t.state == TrialState.WAITING]


def test_a_failed_grid_point_is_replaced_by_the_next_one(study_file, monkeypatch) -> None:
    """A point that fails for good (not counted) does not end the grid early."""
    path = study_file(n_trials=2, seeds="[0]", baseline="false")
    cfg = load_config(path)
    handle = open_study(cfg, log=lambda m: None)
    study = handle.study
    first = study.get_trials()[0]
    assert first.state == TrialState.WAITING and len(study.get_trials()) == 2
    # the first queued point fails with an error that is not retried in this run
    trial = study.ask()
    assert trial.number == first.number
    trial.set_user_attr("failure", "error: the disk was full")
    study.tell(trial, state=TrialState.FAIL)
    result = run_worker(handle, log=lambda m: None)
    cands = [t for t in study.get_trials() if t.user_attrs.get("role") == "candidate"]
    done = [t for t in cands if t.state == TrialState.COMPLETE]
    assert len(done) == 2, (result.reason, [(t.number, t.state) for t in cands])
