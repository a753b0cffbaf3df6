"""A "held-out" confirmation must be held out and must exist (issue 18, probe 3).

The probe confirmed on ``split: train`` (accepted, then printed "held out") and on
``split: nosuch`` (every confirmation trial failed while ``run`` exited 0). ``validate`` and
``confirm`` now refuse the training split and a split the task does not have, naming the key,
the value and the fix; ``run`` and ``confirm`` exit 1 when every confirmation trial failed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from optuna.trial import TrialState

from loran_search.cli import main
from loran_search.tasks.data import TaskError
from loran_search.testing import run as fake_run
from tests.loran_search.search.conftest import FAKE_SPEC

pytestmark = pytest.mark.filterwarnings("ignore:Heartbeat of storage:UserWarning")

GRID2 = "    sinter.amplitude: [1.0e-4, 1.0e-2]\n    sinter.frequency: 1.0e4"


def no_test_split(cfg: Any, *, eval_split: str | None = None, **kw: Any) -> Any:
    """The fake trainer, on data whose ``test`` split cannot be read (a hub dataset's)."""
    if eval_split not in (None, cfg.task.eval_split):
        raise TaskError(f"task.name: split {eval_split!r} not found. Available splits: a, b.")
    return fake_run(cfg, eval_split=eval_split, **kw)


def _run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    code = main(list(args))
    out = capsys.readouterr()
    assert "Traceback" not in out.err + out.out
    return code, out.err


@pytest.fixture(autouse=True)
def _fake(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("LORAN_SEARCH_TRAIN_FN", FAKE_SPEC)
    monkeypatch.chdir(tmp_path)


@pytest.mark.parametrize(
    ("split", "what"),
    [
        ("train", "is the training split (`task.train_split` = 'train')"),
        ("val", "is the split the search evaluates on"),
        ("validation", "is the split the search evaluates on"),  # an alias of val
        ("nosuch", "'nosuch' is not a split of task 'bbc-news' (its splits: train, val, test)"),
        ("tset", "Did you mean 'test'?"),
    ],
)
def test_validate_refuses_a_confirmation_split_that_is_not_held_out(
    study_file, capsys, split: str, what: str
) -> None:
    path = study_file(confirm=f"{{top_k: 1, seeds: [100], split: {split}}}")
    code, err = _run(capsys, "validate", str(path))
    assert code == 2 and "s.yaml:14 study.confirm.split" in err and what in err, err
    assert "study.confirm.split" in err and ("Set " in err or "write" in err)
    # the same through --set, on a confirmation of the default split
    path = study_file(confirm="{top_k: 1, seeds: [100]}")
    code, err = _run(capsys, "validate", str(path), "--set", f"study.confirm.split={split}")
    assert code == 2 and f"--set study.confirm.split ({'study.confirm.split'})" in err, err
    assert what in err


def test_confirm_refuses_the_training_split(study_file, capsys) -> None:
    path = study_file(params=GRID2, confirm="{top_k: 1, seeds: [100]}")
    assert _run(capsys, "run", str(path), "--no-confirm")[0] == 0
    code, err = _run(capsys, "confirm", str(path), "--set", "study.confirm.split=train")
    assert code == 2 and "is the training split" in err
    code, err = _run(capsys, "confirm", str(path), "--set", "task.train_split=test")
    assert code == 2 and "is the training split (`task.train_split` = 'test')" in err


def test_a_folder_task_knows_its_splits(study_file, capsys, tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    for split in ("train", "test"):
        (data / f"{split}.jsonl").write_text('{"text": "a", "label": "x"}\n')
    path = study_file(confirm="{top_k: 1, seeds: [100]}")
    text = path.read_text().replace("name: bbc-news", f"name: {data}")
    path.write_text(text)
    code, err = _run(capsys, "validate", str(path), "--set", "study.confirm.split=held")
    assert code == 2 and "its splits: test, train, val" in err, err
    assert "Set study.confirm.split: test" in err


def test_run_and_confirm_exit_1_when_every_confirmation_trial_failed(
    study_file, capsys, monkeypatch
) -> None:
    monkeypatch.setenv("LORAN_SEARCH_TRAIN_FN", f"{__name__}:no_test_split")
    path = study_file(params=GRID2, confirm="{top_k: 1, seeds: [100], split: test}")
    code, err = _run(capsys, "run", str(path))
    assert code == 1, err
    assert "every confirmation trial of study 't' failed" in err
    assert "split 'test' not found" in err and "loran-search confirm" in err
    import optuna

    study = optuna.load_study(study_name="t", storage=f"sqlite:///{path.parent / 'study.db'}")
    search = [t for t in study.get_trials() if t.user_attrs.get("role") == "candidate"]
    assert [t.state for t in search] == [TrialState.COMPLETE] * 2  # the search is kept
    code, err = _run(capsys, "confirm", str(path))
    assert code == 1 and "every confirmation trial of study 't' failed" in err
    # once the data can be read, the same command confirms and exits 0
    monkeypatch.setenv("LORAN_SEARCH_TRAIN_FN", FAKE_SPEC)
    code, err = _run(capsys, "confirm", str(path))
    assert code == 0, err
