"""Create or resume a study: fingerprint, baselines and grid queued, ready flag.

**Create or resume.** A study is created by name in the storage, or resumed when it exists. The
creator stores a fingerprint of everything that decides what a trial measures (the search
space, seeds, metric and directions, model, task, adapter and training sections; not
``n_trials``, the sampler, the pruner, the storage or the device) in the study's user attrs, and
enqueues the baselines (identity at every searched rank) and, for ``sampler: grid``, every grid
point; then it marks the study ready. Resuming with a different fingerprint is refused with the
list of what changed.

**Metric names.** The study's objectives are named (``study.set_metric_names``: the metric,
then the cost objectives) when it is created, or resumed without names, so the dashboard says
``accuracy``, not ``Objective 0``.

**Grid.** Grid points are enqueued, not drawn by Optuna's ``GridSampler``: the grid is
conditional (``relu`` is one point per rank, not one per ``sinter.amplitude`` value) and popping a
queued trial is atomic in every storage (a state change from WAITING that only one worker can
win), so no point runs twice, even with workers racing.

Running the study is :mod:`loran_search.search.workers` (the loop), which stands on
:mod:`loran_search.search.recovery` (heartbeats, retries, dead workers, signals); counting is
:mod:`loran_search.search.progress`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from loran_search import record as R
from loran_search.errors import LoranSearchError
from loran_search.search._optuna import hide_trials, queued_params
from loran_search.search.grid import queue_grid
from loran_search.search.handle import StudyHandle
from loran_search.search.keys import point_key
from loran_search.search.progress import role_of, study_directions
from loran_search.search.recovery import retry_trial
from loran_search.search.samplers import build_pruner, build_sampler

if TYPE_CHECKING:
    import optuna

    from loran_search.config import StudyConfig
    from loran_search.search.space import SearchSpace


class StudyMismatch(LoranSearchError):
    """Resuming a study whose stored setup differs from the file's (exit 2)."""


# ------------------------------------------------------------------------------ fingerprint


def fingerprint(cfg: StudyConfig, space: SearchSpace) -> dict[str, Any]:
    """Everything that decides what a trial measures, as JSON-able data."""
    direction = cfg.study.direction
    directions = direction if isinstance(direction, list) else None
    model = dataclasses.asdict(cfg.model)
    model.pop("device", None)
    task = dataclasses.asdict(cfg.task)
    # keys added later (issue 14) stay out at their defaults, so stored studies still resume
    if model.get("kind") == "auto":
        model.pop("kind")
    if task.get("env") is None:
        task.pop("env", None)
    training = dataclasses.asdict(cfg.training)
    training.pop("threads", None)
    adapter = dataclasses.asdict(cfg.adapter)
    if adapter.get("normalize") is None:  # added later (issue 21): absent at its default
        adapter.pop("normalize", None)
    return {
        "space": space.describe(),
        "seeds": list(cfg.study.seeds),
        "metric": cfg.study.metric,
        "directions": directions or study_directions(cfg),
        "objectives": list(cfg.study.objectives),
        "baseline": cfg.study.baseline,
        "model": model,
        "task": task,
        "adapter": adapter,
        "training": training,
    }


def _digest(data: Any) -> str:
    return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()


def _flatten(data: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(data, dict):
        out: dict[str, Any] = {}
        for k, v in data.items():
            key = f"{prefix}.{k}" if prefix else str(k)
            if isinstance(v, dict) and v and not {"low", "high", "fixed", "choices"} & set(v):
                out.update(_flatten(v, key))
            else:
                out[key] = v
        return out
    return {prefix: data}


def describe_changes(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """``key: old → new`` lines between two fingerprints."""
    a, b = _flatten(old), _flatten(new)
    lines = []
    for key in sorted(set(a) | set(b)):
        if a.get(key, "<absent>") != b.get(key, "<absent>"):
            va = json.dumps(a[key], default=str) if key in a else "(absent)"
            vb = json.dumps(b[key], default=str) if key in b else "(absent)"
            lines.append(f"{key.removeprefix('space.')}: {va} → {vb}")
    return lines


# ------------------------------------------------------------------------------ samplers


def make_sampler(cfg: StudyConfig, space: SearchSpace) -> Any:
    """The Optuna sampler of ``study.sampler`` (:mod:`loran_search.search.samplers`).

    It never sees the confirmation trials (:func:`~loran_search.search._optuna.hide_trials`):
    their values are measured on the held-out split, which must not steer the search.
    """
    base = build_sampler(
        cfg.study.sampler,
        conditional=len(space.activation_choices) > 1 or space.has_methods,
        excluded=space.excluded_for_candidates,
    )
    from loran_search.search.tune import is_hidden

    return hide_trials(base, is_hidden)  # tune trials too: another learning rate (issue 21)


# ------------------------------------------------------------------------------ the study


def open_study(
    cfg: StudyConfig,
    storage_url: str | None = None,
    *,
    ready_timeout: float = 30.0,
    log: Callable[[str], None] = print,
) -> StudyHandle:
    """Create the study or resume it (refusing a changed setup).

    Args:
        cfg: The study config.
        storage_url: Overrides ``study.storage``.
        ready_timeout: Seconds to wait for another creator to finish queuing before finishing
            its setup here.
        log: Receives what the storage layer does on the user's behalf.

    Raises:
        StudyMismatch: The stored study was created with another space/setup; the message
            lists the changes and how to start a new study.
    """
    import optuna

    from loran_search.search.space import build_space
    from loran_search.storage import default_artifact_dir, open_storage, parse_storage_url

    url = storage_url or cfg.study.storage
    parsed = parse_storage_url(url)
    space = build_space(cfg)
    hb = cfg.study.heartbeat_interval
    grace = float(cfg.study.grace_period or 2 * hb)
    storage = open_storage(
        url,
        heartbeat_interval=hb if parsed.heartbeats else None,
        grace_period=int(grace),
        stale_callback=retry_trial,
        log=log,
    )
    fp = fingerprint(cfg, space)
    digest = _digest(fp)
    directions = study_directions(cfg)
    sampler = make_sampler(cfg, space)
    pruner = build_pruner(cfg.study.pruner)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        study = optuna.create_study(
            storage=storage,
            study_name=cfg.study.name,
            directions=directions,
            sampler=sampler,
            pruner=pruner,
        )
        created = True
    except optuna.exceptions.DuplicatedStudyError:
        study = optuna.load_study(
            study_name=cfg.study.name, storage=storage, sampler=sampler, pruner=pruner
        )
        created = False
    artifact_dir = Path(cfg.study.artifacts) if cfg.study.artifacts else default_artifact_dir(url)
    study_id = storage.get_study_id_from_name(cfg.study.name)
    handle = StudyHandle(study, cfg, space, url, created, grace, artifact_dir, storage, study_id)
    if created or study.metric_names is None:
        with warnings.catch_warnings():  # experimental since Optuna 3.2, stable in use
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            study.set_metric_names(metric_names(cfg))
    if created:
        _store_setup(study, cfg, fp, digest)
        _enqueue_setup(handle)
        study.set_user_attr(R.STUDY_READY, True)
        return handle
    deadline = time.monotonic() + ready_timeout
    while not study.user_attrs.get(R.STUDY_READY):
        if time.monotonic() > deadline:
            # The creator died between creating and enqueuing: finish its setup (idempotent).
            if R.STUDY_FINGERPRINT not in study.user_attrs:
                _store_setup(study, cfg, fp, digest)
            _enqueue_setup(handle)
            study.set_user_attr(R.STUDY_READY, True)
            break
        time.sleep(0.5)
    if study.directions != [optuna.study.StudyDirection[d.upper()] for d in directions]:
        raise StudyMismatch(_mismatch_message(cfg, url, ["directions differ"]))
    if study.user_attrs.get(R.STUDY_FINGERPRINT) != digest:
        changes = describe_changes(study.user_attrs.get(R.STUDY_SETUP) or {}, fp)
        raise StudyMismatch(_mismatch_message(cfg, url, changes or ["(the fingerprint)"]))
    return handle


def metric_names(cfg: StudyConfig) -> list[str]:
    """The names of the study's objectives: ``study.metric``, then ``study.objectives``."""
    return [cfg.study.metric, *cfg.study.objectives]


def study_exists(cfg: StudyConfig, storage_url: str | None = None) -> bool:
    """Whether the storage holds a study named ``study.name`` (never creates one)."""
    from loran_search.storage import close_storage, open_storage, parse_storage_url

    url = storage_url or cfg.study.storage
    parsed = parse_storage_url(url)
    if parsed.path is not None and not parsed.path.exists():
        return False
    storage = open_storage(url, heartbeat_interval=None, create=False, writable=False)
    try:
        storage.get_study_id_from_name(cfg.study.name)
    except KeyError:
        return False
    finally:
        close_storage(storage)
    return True


def _store_setup(study: optuna.Study, cfg: StudyConfig, fp: dict[str, Any], digest: str) -> None:
    study.set_user_attr(R.STUDY_FINGERPRINT, digest)
    study.set_user_attr(R.STUDY_SETUP, fp)
    study.set_user_attr(R.STUDY_CONFIG_PATH, cfg.path)


def _mismatch_message(cfg: StudyConfig, url: str, changes: list[str]) -> str:
    shown = "\n".join(f"  {c}" for c in changes[:20])
    more = f"\n  … and {len(changes) - 20} more" if len(changes) > 20 else ""
    path = cfg.path or "FILE"
    return (
        f"Study '{cfg.study.name}' in {url} was created with a different setup; its trials "
        f"would not be comparable with new ones. What changed (stored → now):\n{shown}{more}\n"
        f"Start a new study: change study.name in {path}, or run\n"
        f"  loran-search run {path} --set study.name={cfg.study.name}-2\n"
        "(or point --storage at another database). To continue the old study, restore the "
        "old settings."
    )


def _enqueue_setup(handle: StudyHandle) -> None:
    """Queue the baselines and (grid) every grid point that is not queued or done yet."""
    study, cfg, space = handle.study, handle.cfg, handle.space
    existing = set()
    for t in study.get_trials(deepcopy=False):
        params = queued_params(t) or t.params
        existing.add((role_of(t), point_key(dict(params))))
    if cfg.study.baseline:
        for rank in space.ranks:
            params = space.baseline_params(rank)
            if (R.ROLE_BASELINE, point_key(params)) not in existing:
                study.enqueue_trial(params, user_attrs={R.ROLE: R.ROLE_BASELINE})
    if cfg.study.sampler.get("name") == "grid":
        n_points, _ = queue_grid(handle, cfg.study.n_trials)
        if n_points < cfg.study.n_trials:
            handle.notes.append(
                f"The grid has {n_points} points, fewer than n_trials={cfg.study.n_trials}: "
                f"the study ends after {n_points} candidates."
            )
