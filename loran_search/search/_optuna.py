"""The Optuna internals loran-search relies on, each in one function (Optuna 5.0.0).

Everything else in the search uses Optuna's public API (``study.ask``/``tell``/``add_trial``/
``enqueue_trial``, ``trial.number``, the public methods of the storage object the search opened
itself, ``optuna.artifacts``). What is here has no public equivalent; each function says which
private it touches and why. ``tests/loran_search/search/test_optuna_privates.py`` pins every
behaviour relied on, so an Optuna upgrade that changes one fails there, not in a study.
"""

from __future__ import annotations

from collections.abc import Callable
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


def take_waiting(study: optuna.Study, trial_id: int) -> optuna.Trial | None:
    """Take one WAITING trial by id (its state to RUNNING), as ``Study.ask`` pops the queue.

    ``ask()`` pops the *oldest* WAITING trial, or samples a new one when none is left; the
    confirmation takes a given queued trial and must never sample. The state change is the
    public ``storage.set_trial_state_values`` (atomic: of two workers only one wins, exactly as
    ``Study._pop_waiting_trial_id`` relies on); building ``optuna.trial.Trial(study, trial_id)``
    for a trial that is RUNNING is what ``ask`` does after its pop (the constructor is public but
    documented as internal). The trial's queued params are read back by ``suggest_*``.

    Returns:
        The running trial, or ``None`` when another worker took (or finished) it first.
    """
    import optuna

    storage = storage_of(study)
    try:
        if not storage.set_trial_state_values(trial_id, state=optuna.trial.TrialState.RUNNING):
            return None
    except optuna.exceptions.UpdateFinishedTrialError:
        return None
    return optuna.trial.Trial(study, trial_id)


def hide_trials(sampler: Any, hidden: Callable[[FrozenTrial], bool]) -> Any:
    """``sampler`` as if the trials for which ``hidden`` holds were not in the study.

    Confirmation trials hold values measured on the held-out split; a sampler that learnt from
    them (a search resumed after its confirmation) would leak that split into the search. The
    built-in samplers (TPE, CMA-ES, GP, NSGA-II, the search-space helpers they call) read the
    history through the private ``Study._get_trials`` (and ``get_trials``/``trials``); the
    wrapper hands them a view of the study whose three readers leave those trials out and that
    passes everything else (``_storage``, ``directions``, …) through. Pinned by
    ``test_optuna_privates.py`` (a TPE fed only hidden trials samples as in an empty study).
    """
    from optuna.samplers import BaseSampler

    class _View:
        def __init__(self, study: Any) -> None:
            self._study_ = study

        def __getattr__(self, name: str) -> Any:
            return getattr(self._study_, name)

        def _get_trials(self, *args: Any, **kwargs: Any) -> list[FrozenTrial]:
            return [t for t in self._study_._get_trials(*args, **kwargs) if not hidden(t)]

        def get_trials(self, *args: Any, **kwargs: Any) -> list[FrozenTrial]:
            return [t for t in self._study_.get_trials(*args, **kwargs) if not hidden(t)]

        @property
        def trials(self) -> list[FrozenTrial]:
            return self.get_trials()

    class SearchSampler(BaseSampler):
        def __init__(self) -> None:
            self._base = sampler

        def __getattr__(self, name: str) -> Any:
            return getattr(self._base, name)

        def infer_relative_search_space(self, study: Any, trial: Any) -> Any:
            return self._base.infer_relative_search_space(_View(study), trial)

        def sample_relative(self, study: Any, trial: Any, search_space: Any) -> Any:
            return self._base.sample_relative(_View(study), trial, search_space)

        def sample_independent(self, study: Any, trial: Any, name: str, dist: Any) -> Any:
            return self._base.sample_independent(_View(study), trial, name, dist)

        def before_trial(self, study: Any, trial: Any) -> None:
            self._base.before_trial(_View(study), trial)

        def after_trial(self, study: Any, trial: Any, state: Any, values: Any) -> None:
            self._base.after_trial(_View(study), trial, state, values)

        def reseed_rng(self) -> None:
            self._base.reseed_rng()

    return SearchSampler()
