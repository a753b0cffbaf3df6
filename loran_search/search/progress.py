"""Where a study stands: which trials count toward ``n_trials``, baselines, the best value.

``n_trials`` counts *candidate* trials that are COMPLETE, PRUNED, RUNNING, or FAIL because the
configuration itself failed (a failure kind of :data:`loran_search.record.COUNTED_FAILURES`:
diverged, non-finite). A trial that failed for another reason (an error, an interrupt, a dead
worker) is not counted: it is queued again (at once, or when the next worker starts).
Baselines come on top of ``n_trials`` and are counted per rank: a baseline whose trial failed is
still one of ``baselines_total``, missing until a retry completes it. Confirmation trials (roles
``confirm`` / ``confirm_baseline``) are never counted and never the best: they are counted
apart (``confirm_*``).

**Phases.** A trial belongs to a phase by its role (:func:`phase_of`): ``search`` (candidates
and baselines) or ``confirm`` (the confirmation roles); :func:`phase_counts` gives each phase's
done/total for the study bar of ``loran-search run`` (a phase added later, tuning, is one more
:class:`PhaseCount`). The confirmation's total is exact once it is queued (its queued, running
and done trials) and before that the most it can queue: ``top_k`` configurations and a baseline
at each of their ranks, ``top_k + min(top_k, ranks searched)``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from loran_search import record as R
from loran_search.search._optuna import queued_params

if TYPE_CHECKING:
    import optuna
    from optuna.trial import FrozenTrial

    from loran_search.config import StudyConfig


def study_directions(cfg: StudyConfig) -> list[str]:
    """One direction per objective: the metric's, then ``minimize`` for each cost objective."""
    direction = cfg.study.direction
    if isinstance(direction, list):
        return list(direction)
    return [direction, *["minimize"] * len(cfg.study.objectives)]


def role_of(t: FrozenTrial) -> str:
    """The trial's role; a trial the sampler proposed has none until it runs: a candidate."""
    role = t.user_attrs.get(R.ROLE)
    return role if isinstance(role, str) and role else R.ROLE_CANDIDATE


PHASE_SEARCH = "search"
PHASE_TUNE = "tune"
PHASE_CONFIRM = "confirm"


def phase_of(role: str | None) -> str:
    """The phase of a trial of ``role``: ``confirm``, ``tune`` (``study.tune``) or ``search``."""
    if role in R.CONFIRM_ROLES:
        return PHASE_CONFIRM
    return PHASE_TUNE if role == R.ROLE_TUNE else PHASE_SEARCH


@dataclass(frozen=True)
class PhaseCount:
    """One phase's progress: ``done`` of ``total`` trials (``estimated``: not queued yet)."""

    name: str
    done: int
    total: int
    estimated: bool = False


def phase_counts(p: Progress, cfg: StudyConfig, confirm: Any | None) -> list[PhaseCount]:
    """Done/total per phase (module docstring), in the order the phases run.

    Args:
        p: The study's :class:`Progress`.
        cfg: Its config (``n_trials``, the searched ranks).
        confirm: The confirmation setup (``top_k``), ``None`` when the run does not confirm.
    """
    out = [PhaseCount(PHASE_SEARCH, p.baselines_done + p.finished, p.baselines_total
                      + cfg.study.n_trials)]  # fmt: skip
    tune_queued = p.tune_waiting + p.tune_running + p.tune_done
    if tune_queued:  # the grid × arms is known once the tuning phase has queued it
        out.append(PhaseCount(PHASE_TUNE, p.tune_done, tune_queued))
    if confirm is None:
        return out
    queued = p.confirm_waiting + p.confirm_running + p.confirm_done
    if queued:
        out.append(PhaseCount(PHASE_CONFIRM, p.confirm_done, queued))
    else:
        top_k = int(confirm.top_k)
        ranks = len(set(getattr(cfg.search, "rank", []) or [])) or 1
        out.append(PhaseCount(PHASE_CONFIRM, 0, top_k + min(top_k, ranks), estimated=True))
    return out


def is_counted(t: FrozenTrial) -> bool:
    """Whether a trial uses up one of the ``n_trials`` candidate slots."""
    from optuna.trial import TrialState

    if role_of(t) != R.ROLE_CANDIDATE:
        return False
    if t.state in (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING):
        return True
    return t.state == TrialState.FAIL and t.user_attrs.get(R.FAILURE_KIND) in R.COUNTED_FAILURES


@dataclass
class Progress:
    """Where the study stands.

    Attributes:
        candidates: Counted candidates (:func:`is_counted`), running ones included.
        finished: Counted candidates that are no longer running.
        baselines_done: Ranks whose baseline is COMPLETE.
        baselines_total: Ranks with a baseline trial in any state (failed ones included).
        baselines_failed: Ranks whose baseline only failed (none done, waiting or running).
        waiting: Queued trials of any role.
        waiting_baselines: Queued baselines.
        running_baselines: Running baselines.
        running: Running trials of any role.
        waiting_search: Queued search trials (candidates and baselines).
        running_search: Running search trials.
        confirm_waiting: Queued confirmation trials.
        confirm_running: Running confirmation trials.
        confirm_done: COMPLETE confirmation trials.
        tune_waiting: Queued tuning trials (``study.tune``).
        tune_running: Running tuning trials.
        tune_done: COMPLETE tuning trials.
        best: The best COMPLETE candidate value (first objective).
        best_trial: Its number.
    """

    candidates: int = 0
    finished: int = 0
    baselines_done: int = 0
    baselines_total: int = 0
    baselines_failed: int = 0
    waiting: int = 0
    waiting_baselines: int = 0
    running_baselines: int = 0
    running: int = 0
    waiting_search: int = 0
    running_search: int = 0
    confirm_waiting: int = 0
    confirm_running: int = 0
    confirm_done: int = 0
    tune_waiting: int = 0
    tune_running: int = 0
    tune_done: int = 0
    best: float | None = None
    best_trial: int | None = None


def progress_of(
    study: optuna.Study, cfg: StudyConfig, trials: list[FrozenTrial] | None = None
) -> Progress:
    """Count candidates, baselines, waiting and running trials; the best candidate value.

    Args:
        study: The study.
        cfg: Its config (for the direction).
        trials: A snapshot of the study's trials (default: read them).
    """
    from optuna.trial import TrialState

    p = Progress()
    maximize = study_directions(cfg)[0] == "maximize"
    base_states: dict[Any, set[TrialState]] = {}
    for t in study.get_trials(deepcopy=False) if trials is None else trials:
        role = role_of(t)
        if role == R.ROLE_TUNE:  # study.tune (issue 21): neither search nor confirmation
            p.waiting += t.state == TrialState.WAITING
            p.running += t.state == TrialState.RUNNING
            p.tune_waiting += t.state == TrialState.WAITING
            p.tune_running += t.state == TrialState.RUNNING
            p.tune_done += t.state == TrialState.COMPLETE
            continue
        if role in R.CONFIRM_ROLES:
            p.waiting += t.state == TrialState.WAITING
            p.running += t.state == TrialState.RUNNING
            p.confirm_waiting += t.state == TrialState.WAITING
            p.confirm_running += t.state == TrialState.RUNNING
            p.confirm_done += t.state == TrialState.COMPLETE
            continue
        if role == R.ROLE_BASELINE:
            rank = (queued_params(t) or t.params).get(R.PARAM_RANK)
            base_states.setdefault(rank, set()).add(t.state)
        if t.state == TrialState.WAITING:
            p.waiting += 1
            p.waiting_search += 1
            if role == R.ROLE_BASELINE:
                p.waiting_baselines += 1
            continue
        if t.state == TrialState.RUNNING:
            p.running += 1
            p.running_search += 1
            if role == R.ROLE_BASELINE:
                p.running_baselines += 1
                continue
        if role == R.ROLE_BASELINE:
            continue
        if is_counted(t):
            p.candidates += 1
            if t.state != TrialState.RUNNING:
                p.finished += 1
        if t.state == TrialState.COMPLETE and t.values:
            v = t.values[0]
            if p.best is None or (v > p.best if maximize else v < p.best):
                p.best, p.best_trial = v, t.number
    p.baselines_total = len(base_states)
    p.baselines_done = sum(TrialState.COMPLETE in s for s in base_states.values())
    live = {TrialState.COMPLETE, TrialState.WAITING, TrialState.RUNNING}
    p.baselines_failed = sum(not (s & live) for s in base_states.values())
    return p


def missing_baselines(trials: list[FrozenTrial]) -> dict[Any, str]:
    """``{rank: last failure}`` of the ranks whose baseline only failed."""
    from optuna.trial import TrialState

    out: dict[Any, str] = {}
    ok: set[Any] = set()
    for t in trials:
        if role_of(t) != R.ROLE_BASELINE:
            continue
        rank = (queued_params(t) or t.params).get(R.PARAM_RANK)
        if t.state in (TrialState.COMPLETE, TrialState.WAITING, TrialState.RUNNING):
            ok.add(rank)
        elif t.state == TrialState.FAIL:
            out[rank] = str(t.user_attrs.get(R.FAILURE) or "failed without a recorded reason")
    return {r: f for r, f in out.items() if r not in ok}
