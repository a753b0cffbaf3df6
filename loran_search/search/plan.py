"""What a study will run, before it runs: ``loran-search validate`` prints it (issue 22).

:func:`study_plan` counts, from the validated config alone:

* **search**: ``study.n_trials`` candidate trials (fewer when a grid has fewer points) plus
  one QLoRA baseline trial per searched rank (``study.baseline``); each trial trains once per
  seed of ``study.seeds``;
* **confirmation** (``study.confirm``, unless ``false``): the ``top_k`` best configurations
  (no more than the search's candidates) plus
  the baseline at each of their ranks — at most ``min(top_k, ranks)`` baselines, the number the
  progress bar assumes too (:func:`loran_search.search.progress.phase_counts`) — each trained
  once per confirmation seed;
* **runs** = Σ trials × seeds, and **steps** = runs × ``training.max_steps``.

:func:`seconds_per_step` looks for a basis of a time estimate: the completed trials of the same
study in its storage, when the storage is a local file that exists (SQLite or journal; a
database server is not contacted, so ``validate`` stays fast and offline). Their recorded mean
training seconds per run (``cost.train_seconds``) over the steps their study trained
(``loran.setup`` → ``training.max_steps``) give seconds per step; the estimate is
steps × that, training only (evaluation comes on top). Nothing here imports torch.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from loran_search import record as R
from loran_search.console import fmt_seconds

if TYPE_CHECKING:
    from loran_search.config import StudyConfig

#: How many of the latest completed trials the estimate uses.
RECENT_TRIALS = 5


@dataclass(frozen=True)
class Plan:
    """The trials and runs a study will make (module docstring).

    Attributes:
        candidates: Candidate trials of the search.
        baselines: Baseline trials of the search (one per searched rank).
        seeds: Runs per search trial.
        confirm_candidates: Confirmation candidate trials (``top_k``; 0 without a confirmation).
        confirm_baselines: Confirmation baseline trials (at most one per rank).
        confirm_seeds: Runs per confirmation trial.
        confirm_split: The split the confirmation evaluates on (``None`` without one).
        steps: Optimizer steps per run.
        tune_points: Grid points of ``study.tune`` (0 without tuning); every arm the
            confirmation takes (its candidates and baselines) is trained at each, on the search
            seeds.
        tune_grid: The grid in words (``3 learning rates``; ``""`` without tuning).
    """

    candidates: int
    baselines: int
    seeds: int
    confirm_candidates: int
    confirm_baselines: int
    confirm_seeds: int
    confirm_split: str | None
    steps: int
    tune_points: int = 0
    tune_grid: str = ""

    @property
    def search_runs(self) -> int:
        """Training runs of the search: (candidates + baselines) × seeds."""
        return (self.candidates + self.baselines) * self.seeds

    @property
    def confirm_runs(self) -> int:
        """Training runs of the confirmation: its trials × confirmation seeds."""
        return (self.confirm_candidates + self.confirm_baselines) * self.confirm_seeds

    @property
    def tune_arms(self) -> int:
        """Arms the tuning phase trains: the confirmation's trials (0 without tuning)."""
        return (self.confirm_candidates + self.confirm_baselines) if self.tune_points else 0

    @property
    def tune_runs(self) -> int:
        """Training runs of the tuning phase: arms × grid points × search seeds."""
        return self.tune_arms * self.tune_points * self.seeds

    @property
    def runs(self) -> int:
        """Every training run of the study."""
        return self.search_runs + self.tune_runs + self.confirm_runs

    @property
    def total_steps(self) -> int:
        """Optimizer steps over every run."""
        return self.runs * self.steps


def study_plan(cfg: StudyConfig) -> Plan:
    """Count the study's trials and runs from its (validated) config."""
    from loran_search.search.confirm import confirm_setup

    ranks = len(set(cfg.search.rank)) or 1
    candidates = int(cfg.study.n_trials)
    if cfg.study.sampler.get("name") == "grid" and not cfg.search.forms:
        from loran_search.search.space import build_space

        candidates = min(candidates, build_space(cfg).plain_grid_size())
    from loran_search.search.tune import tune_setup

    confirm = confirm_setup(cfg)
    top_k = min(int(confirm.top_k), candidates) if confirm is not None else 0
    tune = tune_setup(cfg) if confirm is not None else None
    return Plan(
        candidates=candidates,
        baselines=ranks if cfg.study.baseline else 0,
        seeds=len(cfg.study.seeds),
        confirm_candidates=top_k,
        confirm_baselines=min(top_k, ranks) if top_k else 0,
        confirm_seeds=len(confirm.seeds) if confirm is not None else 0,
        confirm_split=confirm.split if confirm is not None else None,
        steps=int(cfg.training.max_steps),
        tune_points=len(tune.points()) if tune is not None else 0,
        tune_grid=tune.describe() if tune is not None else "",
    )


def seconds_per_step(cfg: StudyConfig) -> tuple[float, str] | str:
    """``(seconds per step, where it comes from)``, or why there is no basis (a sentence).

    Reads the latest :data:`RECENT_TRIALS` completed trials of ``study.name`` in a local
    storage file (module docstring); the median of their training seconds per step.
    """
    from loran_search.storage import parse_storage_url

    url = cfg.study.storage
    try:
        parsed = parse_storage_url(url)
    except Exception as err:  # validate has accepted it; a parse failure here is no estimate
        return f"the storage URL could not be read ({err})"
    if parsed.path is None:
        return "the storage is a database server, which validate does not contact"
    if not Path(parsed.path).exists():
        return f"{parsed.path} does not exist yet (no trial has run)"
    try:
        return _from_storage(url, cfg.study.name)
    except Exception as err:  # a locked or foreign file: no estimate, never a failed validate
        return f"the storage could not be read ({type(err).__name__}: {err})"


def _from_storage(url: str, name: str) -> tuple[float, str] | str:
    import optuna

    from loran_search.storage import close_storage, open_storage

    storage = open_storage(url, heartbeat_interval=None, create=False, writable=False)
    try:
        try:
            study = optuna.load_study(study_name=name, storage=storage)
        except KeyError:
            return f"the storage holds no study named {name!r} yet"
        setup = study.user_attrs.get(R.STUDY_SETUP) or {}
        trials = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    finally:
        close_storage(storage)
    steps = (setup.get("training") or {}).get("max_steps")
    if not isinstance(steps, int) or steps <= 0:
        return f"study {name!r} does not record its training steps"
    done = [
        t
        for t in trials
        if isinstance((t.user_attrs.get(R.COST) or {}).get("train_seconds"), (int, float))
        and t.datetime_complete is not None
    ]
    if not done:
        return f"study {name!r} has no completed trial yet"
    recent = sorted(done, key=lambda t: t.datetime_complete)[-RECENT_TRIALS:]
    per_step = statistics.median(float(t.user_attrs[R.COST]["train_seconds"]) / steps
                                 for t in recent)  # fmt: skip
    numbers = ", ".join(str(t.number) for t in recent)
    return per_step, f"trials {numbers} of study {name!r} ({per_step:.3g} s per step)"


def plan_lines(plan: Plan, basis: tuple[float, str] | str) -> list[str]:
    """The plan as ``validate`` prints it, one line each (indented under ``FILE: OK``)."""
    search = (
        f"search: ({_trials(plan.candidates, 'candidate')} + "
        f"{_trials(plan.baselines, 'baseline')}) × {_n(plan.seeds, 'seed')} = "
        f"{_n(plan.search_runs, 'run')}"
    )
    if plan.confirm_candidates:
        confirm = (
            f"confirmation: ({_n(plan.confirm_candidates, 'best configuration')} + "
            f"{_trials(plan.confirm_baselines, 'baseline')}) × {_n(plan.confirm_seeds, 'seed')} "
            f"= {_n(plan.confirm_runs, 'run')} (on the {plan.confirm_split} split)"
        )
    else:
        confirm = "confirmation: off (study.confirm: false)"
    tune = (  # only with study.tune: every arm the confirmation takes, at every grid point
        [
            f"tuning: {_n(plan.tune_arms, 'arm')} × {plan.tune_grid} × {_n(plan.seeds, 'seed')} "
            f"= {_n(plan.tune_runs, 'run')} (on the search split)"
        ]
        if plan.tune_points
        else []
    )
    total = (
        f"total: {_n(plan.runs, 'training run')} × {_n(plan.steps, 'step')} = "
        f"{plan.total_steps:,} steps"
    )
    if isinstance(basis, tuple):
        per_step, source = basis
        estimate = (
            f"estimate: about {fmt_seconds(per_step * plan.total_steps)} of training (from "
            f"{source}; evaluation comes on top)"
        )
    else:
        estimate = (
            f"estimate: none — {basis}; time one run with `loran-search train FILE` and "
            "multiply by the runs above"
        )
    return [search, *tune, confirm, total, estimate]


def _n(n: int, word: str) -> str:
    from loran_search.words import count

    return count(n, word)


def _trials(n: int, kind: str) -> str:
    return _n(n, f"{kind} trial")


def describe(cfg: StudyConfig) -> list[str]:
    """:func:`plan_lines` of ``cfg`` with the estimate's basis looked up."""
    return plan_lines(study_plan(cfg), seconds_per_step(cfg))
