"""The Optuna internals loran-search relies on, each in one function (Optuna 5.0.0).

Everything else in the search uses Optuna's public API (``study.ask``/``tell``/``add_trial``/
``enqueue_trial``, ``trial.number``, the public methods of the storage object the search opened
itself, ``optuna.artifacts``). What is here has no public equivalent; each function says which
private it touches and why. ``tests/loran_search/search/test_optuna_privates.py`` pins every
behaviour relied on, so an Optuna upgrade that changes one fails there, not in a study.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import optuna
    from optuna.storages import BaseStorage
    from optuna.trial import FrozenTrial

OPTUNA_VERSION = "5.0.0"
"""The Optuna version these helpers were written and tested against."""

FIXED_PARAMS_ATTR = "fixed_params"
"""The trial system attr in which ``Study.enqueue_trial`` keeps a queued trial's params."""


def storage_of(study: optuna.Study) -> BaseStorage:
    """The storage a loaded ``optuna.Study`` reads and writes (``study._storage``).

    Optuna has no public accessor of a study's storage (``Trial.storage`` exists only for a
    running trial). Where the caller opened the storage itself (``StudyHandle.storage``), use
    that instead; this is for code that only holds a ``Study``. For an RDB URL the result is
    Optuna's caching wrapper around the ``RDBStorage``; writes through either are consistent
    (the wrapper re-reads unfinished trials).
    """
    return study._storage


def stale_trial_ids(storage: BaseStorage, study_id: int) -> list[int]:
    """Ids of RUNNING trials whose RDB heartbeat is older than the storage's grace period.

    Touches ``RDBStorage._get_stale_trial_ids``: the public ``optuna.storages.fail_stale_trials``
    fails such trials itself, before loran-search can record *why* in the trial (a finished
    trial's user attrs cannot be changed any more), so the ids are read here and the caller
    records ``failure`` first, then fails the trial. ``[]`` when the storage keeps no
    heartbeats (journal, or an RDB storage opened without ``heartbeat_interval``).
    """
    if not heartbeats_enabled(storage):
        return []
    return list(storage._get_stale_trial_ids(study_id))  # type: ignore[attr-defined]


def heartbeats_enabled(storage: BaseStorage) -> bool:
    """Whether the storage keeps Optuna's RDB heartbeats (public methods only)."""
    get = getattr(storage, "get_heartbeat_interval", None)
    return callable(get) and get() is not None


def queued_params(trial: FrozenTrial) -> dict[str, Any] | None:
    """The params a trial was queued with (``enqueue_trial``, or a retry), else ``None``.

    Touches the system attr ``fixed_params``, where ``Study.enqueue_trial`` stores them and
    ``Trial`` reads them back; Optuna has no public reader, and a WAITING trial has no params
    of its own yet. The search needs them to tell a queued grid point or baseline from a
    sampled trial, and to avoid queuing a point twice.
    """
    params = trial.system_attrs.get(FIXED_PARAMS_ATTR)
    return dict(params) if isinstance(params, dict) else None
