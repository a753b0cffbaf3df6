"""The grid sampler's queue: the grid's points are queued as the study needs them.

``sampler: grid`` enumerates the conditional grid (:meth:`~loran_search.search.space.\
SearchSpace.grid`, at most :data:`~loran_search.search.types.MAX_GRID_POINTS` points) in a fixed
order (shuffled by ``seed`` with ``shuffle: true``) and queues only what ``n_trials`` still
needs: at the study's creation (:mod:`loran_search.search.study`) and whenever a worker finds
the queue dry before ``n_trials`` (:mod:`loran_search.search.workers`). A point that a candidate
trial already has, in any state, is never queued again.
"""

from __future__ import annotations

import random
from typing import TYPE_CHECKING, Any

from loran_search import record as R
from loran_search.search._optuna import queued_params
from loran_search.search.keys import point_key
from loran_search.search.progress import is_counted, role_of

if TYPE_CHECKING:
    from optuna.trial import FrozenTrial

    from loran_search.search.handle import StudyHandle


def grid_points(handle: StudyHandle) -> list[dict[str, Any]]:
    """The grid's points in the order they are queued (shuffled by ``seed`` when asked)."""
    cfg = handle.cfg
    points = handle.space.grid()
    if cfg.study.sampler.get("shuffle"):
        random.Random(cfg.study.sampler.get("seed")).shuffle(points)
    return points


def queue_grid(
    handle: StudyHandle, target: int, trials: list[FrozenTrial] | None = None
) -> tuple[int, int]:
    """Queue the next grid points the study needs; ``(points in the grid, points queued now)``.

    Only what ``target`` still needs is queued: ``target`` − counted candidates − queued
    candidates (``is_counted``), taking the grid's points in order and skipping every point
    a candidate trial already has (in any state), so a grid of 10⁴ points with
    ``n_trials: 2`` queues 2 trials, not 10⁴. A worker calls it again when the queue runs
    dry before ``target`` (a point whose retries ran out, a resume with more ``n_trials``).

    Args:
        handle: The opened study.
        target: Candidate trials to reach.
        trials: A snapshot of the study's trials (default: read them).
    """
    from optuna.trial import TrialState

    study = handle.study
    trials = study.get_trials(deepcopy=False) if trials is None else trials
    points = grid_points(handle)
    seen: set[str] = set()
    need, queued = target, 0
    for t in trials:
        if role_of(t) != R.ROLE_CANDIDATE:
            continue
        seen.add(point_key(dict(queued_params(t) or t.params)))
        need -= is_counted(t) or t.state == TrialState.WAITING
    for params in points:
        if need <= 0:
            break
        if point_key(params) not in seen:
            study.enqueue_trial(params, user_attrs={R.ROLE: R.ROLE_CANDIDATE})
            need -= 1
            queued += 1
    return len(points), queued
