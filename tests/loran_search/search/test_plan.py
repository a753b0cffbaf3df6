"""``loran-search validate`` prints the plan after OK (issue 22, item 7).

Trials per phase, training runs and steps from the config alone; a time estimate from the
completed trials of the same study when its storage file exists; never torch.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import optuna
import pytest

from loran_search import record as R
from loran_search.cli import main
from loran_search.console import fmt_seconds
from loran_search.search.plan import Plan, plan_lines

STUDY = """\
study:
  name: planned
  storage: sqlite:///{db}
  metric: accuracy
  n_trials: 5
  seeds: [0, 1]
  confirm: {{top_k: 2, seeds: [100, 101, 102], split: test}}
model: {{name: glassllm, quantization: none}}
task: {{name: bbc-news, train_size: 16, eval_size: 8}}
adapter: {{target_modules: [q_proj, v_proj]}}
training: {{max_steps: 10, eval_every: 5}}
search:
  activations: [sinter]
  rank: [4, 8]
"""


@pytest.fixture(scope="module", autouse=True)
def _cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    mp = pytest.MonkeyPatch()
    mp.setenv("LORAN_SEARCH_CACHE", str(tmp_path_factory.getbasetemp() / "loran-cache"))
    yield
    mp.undo()


def _write(tmp_path: Path) -> tuple[Path, Path]:
    db = tmp_path / "runs" / "plan.db"
    path = tmp_path / "study.yaml"
    path.write_text(STUDY.format(db=db))
    return path, db


def test_the_plan_counts_trials_runs_and_steps(tmp_path: Path, capsys) -> None:
    path, _ = _write(tmp_path)
    assert main(["validate", str(path)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == f"{path}: OK"
    # search: (5 + one baseline per rank = 2) × 2 seeds = 14; confirmation: (2 + 2) × 3 = 12
    assert out[1:4] == [
        "  search: (5 candidate trials + 2 baseline trials) × 2 seeds = 14 runs",
        "  confirmation: (2 best configurations + 2 baseline trials) × 3 seeds = 12 runs (on "
        "the test split)",
        "  total: 26 training runs × 10 steps = 260 steps",
    ]
    assert out[4].startswith("  estimate: none — ") and "does not exist yet" in out[4]
    assert "`loran-search train FILE`" in out[4]


def test_the_estimate_comes_from_the_study_s_completed_trials(tmp_path: Path, capsys) -> None:
    path, db = _write(tmp_path)
    db.parent.mkdir()
    study = optuna.create_study(storage=f"sqlite:///{db}", study_name="planned")
    study.set_user_attr(R.STUDY_SETUP, {"training": {"max_steps": 20}})
    for seconds in (4.0, 6.0, 100.0):  # 0.2, 0.3 and 5 s/step: the median is 0.3
        study.add_trial(optuna.trial.create_trial(
            value=0.5, user_attrs={R.COST: {"train_seconds": seconds}}))  # fmt: skip
    assert main(["validate", str(path)]) == 0
    estimate = capsys.readouterr().out.splitlines()[4]
    assert estimate == (
        f"  estimate: about {fmt_seconds(0.3 * 260)} of training (from trials 0, 1, 2 of study "
        "'planned' (0.3 s per step); evaluation comes on top)"
    )


def test_without_confirmation_and_a_server_storage() -> None:
    plan = Plan(candidates=1, baselines=1, seeds=1, confirm_candidates=0, confirm_baselines=0,
                confirm_seeds=0, confirm_split=None, steps=1)  # fmt: skip
    lines = plan_lines(plan, "the storage is a database server, which validate does not contact")
    assert lines == [
        "search: (1 candidate trial + 1 baseline trial) × 1 seed = 2 runs",
        "confirmation: off (study.confirm: false)",
        "total: 2 training runs × 1 step = 2 steps",
        "estimate: none — the storage is a database server, which validate does not contact; "
        "time one run with `loran-search train FILE` and multiply by the runs above",
    ]


def test_validate_with_its_plan_does_not_import_torch(tmp_path: Path) -> None:
    """The plan (and the checks) import no torch once the model is described in the cache.

    Validate reads the model's architecture from the cache (``<cache>/modules``); on a cold
    cache it builds the embedded asset (the glassllm conversion) and instantiates the
    architecture on the meta device once, which needs torch. Which test warmed the cache
    depended on the order the suite ran in, so a first run here warms it, in the cache the child
    processes are given explicitly; the second run must not import torch (the child prints
    the stack of the import if it does).
    """
    from loran_search import assets

    path, _ = _write(tmp_path)
    code = (
        "import sys, traceback\n"
        "seen = []\n"
        "class Watch:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name == 'torch':\n"
        "            seen.append(''.join(traceback.format_stack()))\n"
        "sys.meta_path.insert(0, Watch())\n"
        "from loran_search.cli import main\n"
        f"rc = main(['validate', {str(path)!r}])\n"
        "assert 'torch' not in sys.modules, 'torch imported from:\\n' + '\\n'.join(seen)\n"
        "sys.exit(rc)\n"
    )
    env = {
        **os.environ,
        "PYTHONPATH": str(Path.cwd()),
        "LORAN_SEARCH_CACHE": str(assets.cache_root()),
    }
    warm_code = f"from loran_search.cli import main; main(['validate', {str(path)!r}])"
    warm = subprocess.run([sys.executable, "-c", warm_code], capture_output=True, text=True,
                          env=env, timeout=120)  # fmt: skip
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=env, timeout=120)  # fmt: skip
    assert done.returncode == 0, (warm.stderr, done.stderr)
    assert "total: 26 training runs" in done.stdout


def test_the_tuning_phase_is_planned_with_study_tune(tmp_path: Path, capsys) -> None:
    """study.tune (issue 21): every arm the confirmation takes, at every grid point, on the
    search seeds — (2 configurations + 2 baselines) × 3 learning rates × 2 seeds = 24 runs."""
    path, _ = _write(tmp_path)
    tune = "study.tune={training.learning_rate: [1.0e-4, 1.0e-3, 3.0e-3]}"
    assert main(["validate", str(path), "--set", tune]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[2] == "  tuning: 4 arms × 3 learning rates × 2 seeds = 24 runs (on the search split)"
    assert out[4] == "  total: 50 training runs × 10 steps = 500 steps"  # 14 + 24 + 12
