"""Recovery: worker identity, heartbeats, re-queuing failed trials, dead workers, signals.

The worker loop (:mod:`loran_search.search.workers`) stands on these pieces; each is small and
has one job:

* **worker identity** — ``{host, pid, start}`` of the process running a trial (the start time
  tells a reused pid apart);
* **heartbeats** — Optuna's heartbeat table on SQLite/PostgreSQL/MySQL, a trial system attr on
  the journal (which has none), written by a thread while a trial runs;
* **retry** — a failed trial is queued again as a new WAITING trial with the same params and
  role, and the numbers of the trials it repeats in ``retry_history`` (Optuna's
  ``RetryHeartbeatStaleTrialCallback`` form); :func:`requeue_failed` does it, when a worker
  starts, for failures whose cause may be fixed by now (``error:``, an old reason-less FAIL);
* **dead workers** — :func:`recover_stale` fails and re-queues every RUNNING trial whose worker
  ran on this host and is gone (``kill -9``: detected at once) or sent no heartbeat for
  ``grace_period`` seconds; a live worker's trial is never touched;
* **signals** — Ctrl-C and SIGTERM become :class:`StudyInterrupted` (exit 130 / 143) once the
  running trial is recorded, never half-way through writing it.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import threading
import time
from collections.abc import Callable, Collection, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from loran_search import record as R
from loran_search.errors import EXIT_INTERRUPTED, EXIT_TERMINATED, LoranSearchError, RuntimeFailure
from loran_search.search._optuna import heartbeats_enabled, stale_trial_ids
from loran_search.search.progress import progress_of, role_of

if TYPE_CHECKING:
    import optuna
    from optuna.storages import BaseStorage
    from optuna.trial import FrozenTrial

    from loran_search.search.handle import StudyHandle

HOST = socket.gethostname()
MAX_CONSECUTIVE_ERRORS = 3
"""Trials in a row that raise an error before the worker stops (the cause is systematic)."""


class StudyInterrupted(LoranSearchError):
    """Ctrl-C or SIGTERM: the running trial was recorded FAIL (``interrupted:``), queued again.

    ``exit_code`` is 130 after SIGINT (Ctrl-C) and 143 after SIGTERM.

    Attributes:
        trial_number: The interrupted trial, ``None`` when none was running.
    """

    exit_code = EXIT_INTERRUPTED

    def __init__(
        self,
        message: str,
        trial_number: int | None,
        *,
        fix: str | None = None,
        exit_code: int | None = None,
    ) -> None:
        super().__init__(message, fix=fix, exit_code=exit_code)
        self.trial_number = trial_number


class TrialErrors(RuntimeFailure):
    """:data:`MAX_CONSECUTIVE_ERRORS` trials in a row raised an error: the worker stops (exit 1).

    Nothing is lost: the failed trials are queued again when the same command runs again.
    """


class _Terminated(KeyboardInterrupt):
    """SIGTERM arrived (raised in the main thread like Ctrl-C's ``KeyboardInterrupt``)."""


# ------------------------------------------------------------------------------ worker identity


def _proc_start(pid: int) -> str | None:
    """The start time of process ``pid`` (Linux ``/proc``), to tell a reused pid apart."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[19]


def _alive(pid: int, start: str | None) -> bool:
    if os.name == "nt":  # os.kill(pid, 0) would terminate it there: rely on heartbeats
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    if start is not None:
        now = _proc_start(pid)
        if now is not None and now != start:
            return False  # the pid was reused by another process
    try:  # a zombie (killed, not yet reaped by its parent) is dead too
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        if state == "Z":
            return False
    except OSError:
        pass
    return True


def worker_gone(worker: Mapping[str, Any] | None) -> bool:
    """Whether a trial's recorded worker (:func:`worker_identity`) ran here and is gone.

    ``True`` only for a worker on this host whose process (pid, and its start time where
    recorded) no longer exists; another host's worker, this process, or a record without a
    pid is never called gone — heartbeats decide for those.
    """
    if not isinstance(worker, Mapping) or worker.get("host") != HOST or "pid" not in worker:
        return False
    if worker["pid"] == os.getpid():
        return False
    return not _alive(int(worker["pid"]), worker.get("start"))


def worker_identity() -> dict[str, Any]:
    """This process: ``{host, pid, start}``."""
    return {"host": HOST, "pid": os.getpid(), "start": _proc_start(os.getpid())}


# ------------------------------------------------------------------------------ heartbeats


@contextlib.contextmanager
def heartbeat(storage: BaseStorage, trial_id: int, interval: float) -> Iterator[None]:
    """Keep a heartbeat for a running trial while the block runs.

    On an RDB storage opened with ``heartbeat_interval`` it is Optuna's (``record_heartbeat``
    every ``get_heartbeat_interval()`` s, read back by the stale check); otherwise (journal) the
    system attr :data:`loran_search.record.HEARTBEAT` every ``interval`` s.
    """
    if heartbeats_enabled(storage):
        every = float(storage.get_heartbeat_interval())  # type: ignore[attr-defined]

        def beat_once() -> None:
            storage.record_heartbeat(trial_id)  # type: ignore[attr-defined]
    else:
        every = interval

        def beat_once() -> None:
            storage.set_trial_system_attr(trial_id, R.HEARTBEAT, time.time())

    stop = threading.Event()

    def beat() -> None:
        while True:
            with contextlib.suppress(Exception):  # a finished trial cannot be updated
                beat_once()
            if stop.wait(every):
                return

    thread = threading.Thread(target=beat, daemon=True, name=f"heartbeat-{trial_id}")
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=5)


# ------------------------------------------------------------------------------ retry, recovery


def retry_trial(study: optuna.Study, trial: FrozenTrial) -> None:
    """Queue a failed trial again: same params (or queued fixed params), its role, a history.

    Also Optuna's ``heartbeat_stale_trial_callback`` (``(study, trial)``).
    """
    import optuna

    system_attrs = {k: v for k, v in trial.system_attrs.items() if k not in (R.WORKER, R.HEARTBEAT)}
    history = [*system_attrs.get(R.RETRY_HISTORY, []), trial.number]
    system_attrs[R.RETRY_HISTORY] = history
    system_attrs.setdefault(R.FAILED_TRIAL, history[0])
    user_attrs = {R.ROLE: role_of(trial)}
    # a confirmation or tune trial's retry keeps its key (and the point it trains at)
    for key in (R.CONFIRM_KEY, R.CONFIRM_OF, *R.TUNE_ATTRS):
        if key in trial.user_attrs:
            user_attrs[key] = trial.user_attrs[key]
    study.add_trial(
        optuna.trial.create_trial(
            state=optuna.trial.TrialState.WAITING,
            params=trial.params,
            distributions=trial.distributions,
            user_attrs=user_attrs,
            system_attrs=system_attrs,
        )
    )


def fail_and_retry(
    study: optuna.Study, storage: BaseStorage, trial_id: int, kind: str, reason: str
) -> bool:
    """Record ``kind: reason`` on a RUNNING trial, fail it and queue it again.

    Returns:
        Whether this call failed it (another worker may have won the race).
    """
    import optuna

    try:
        for key, value in R.failure_attrs(kind, reason).items():
            storage.set_trial_user_attr(trial_id, key, value)
        won = storage.set_trial_state_values(trial_id, optuna.trial.TrialState.FAIL)
    except optuna.exceptions.UpdateFinishedTrialError:
        return False
    if won:
        retry_trial(study, storage.get_trial(trial_id))
    return bool(won)


def trial_id_of(handle: StudyHandle, number: int) -> int:
    """The storage's trial id of trial ``number`` (public storage API, no Optuna privates)."""
    return handle.storage.get_trial_id_from_study_id_trial_number(handle.study_id, number)


def _stale_reason(
    rec: R.TrialRecord, grace: float, heartbeat_stale: set[int], rdb_beats: bool, now: float
) -> str | None:
    """Why a RUNNING trial is stale, or ``None`` when its worker may be alive."""
    w = rec.worker or {}
    who = f"pid {w.get('pid')} on {w.get('host')}" if w else "unknown worker"
    if w.get("host") == HOST and w.get("pid") == os.getpid():
        return None  # this process: alive by definition
    if worker_gone(w):
        return f"its worker ({who}) is gone: killed, crashed or restarted"
    if rec.number in heartbeat_stale:
        return f"no heartbeat from its worker ({who}) for over {grace:g} s"
    if not rdb_beats:
        last = rec.heartbeat
        if last is None and rec.started is not None:
            last = rec.started
        if last is not None and now - float(last) > grace:
            return f"no heartbeat from its worker ({who}) for {now - last:.0f} s"
    return None


def recover_stale(
    handle: StudyHandle,
    log: Callable[[str], None],
    trials: list[FrozenTrial] | None = None,
) -> list[int]:
    """Fail and re-queue every RUNNING trial whose worker is gone (see the module doc).

    Args:
        handle: The opened study.
        log: Receives one line per recovered trial.
        trials: A snapshot of the study's trials to look at (default: read them).

    Returns:
        The numbers of the trials this call failed and queued again.
    """
    from optuna.trial import TrialState

    study, storage = handle.study, handle.storage
    if trials is None:
        trials = study.get_trials(deepcopy=False)
    running = [t for t in trials if t.state == TrialState.RUNNING]
    if not running:
        return []
    rdb_beats = heartbeats_enabled(storage)
    beat_stale = {storage.get_trial(i).number for i in stale_trial_ids(storage, handle.study_id)}
    now = time.time()
    recovered = []
    for t in running:
        rec = R.TrialRecord.from_frozen(t)
        reason = _stale_reason(rec, handle.grace, beat_stale, rdb_beats, now)
        if reason and fail_and_retry(
            study, storage, trial_id_of(handle, t.number), R.FAIL_STALE, reason
        ):
            log(f"Trial {t.number} was left RUNNING ({reason}); recorded FAIL and queued again.")
            recovered.append(t.number)
    return recovered


# ------------------------------------------------------------------------------ retry at start


def retried_numbers(trials: list[FrozenTrial]) -> set[int]:
    """Numbers of the trials some other trial repeats."""
    return {n for t in trials for n in (t.system_attrs.get(R.RETRY_HISTORY) or [])}


def retry_at_start(t: FrozenTrial) -> bool:
    """A FAIL trial to queue again when a worker starts: an error, or no reason recorded."""
    from optuna.trial import TrialState

    if t.state != TrialState.FAIL:
        return False
    kind = R.TrialRecord.from_frozen(t).failure_kind
    return kind in R.RETRIED_AT_START or (kind is None and R.FAILURE not in t.user_attrs)


def requeue_failed(
    handle: StudyHandle,
    *,
    target: int,
    log: Callable[[str], None],
    roles: Collection[str] | None = None,
) -> list[int]:
    """Queue again every trial that failed with an error and has no retry yet.

    A baseline or confirmation trial is always queued again; a candidate while the study has
    room in ``n_trials`` (counted candidates plus queued ones below ``target``), oldest first.
    Called when a worker starts: the cause (a missing data file, memory) may have been fixed
    since. ``roles`` limits it to trials of those roles (``confirm``, which runs no search
    trial, retries the confirmation trials only: re-queued search trials would wait there).

    Returns:
        The numbers of the failed trials queued again.
    """
    from optuna.trial import TrialState

    study = handle.study
    trials = study.get_trials(deepcopy=False)
    retried = retried_numbers(trials)
    todo = [
        t
        for t in trials
        if retry_at_start(t) and t.number not in retried and (roles is None or role_of(t) in roles)
    ]
    if not todo:
        return []
    p = progress_of(study, handle.cfg, trials)
    waiting = sum(
        1 for t in trials if t.state == TrialState.WAITING and role_of(t) == R.ROLE_CANDIDATE
    )
    room = target - p.candidates - waiting
    done = []
    for t in todo:
        role = role_of(t)
        if role == R.ROLE_CANDIDATE:
            if room <= 0:
                continue
            room -= 1
        elif role not in (R.ROLE_BASELINE, R.ROLE_TUNE, *R.CONFIRM_ROLES):
            continue
        retry_trial(study, t)
        why = t.user_attrs.get(R.FAILURE) or "no reason recorded"
        log(f"Trial {t.number} ({role}) had failed ({why}); queued again.")
        done.append(t.number)
    return done


# ------------------------------------------------------------------------------ signals


class Signals:
    """SIGTERM raised like Ctrl-C; both held back while a trial's outcome is written.

    Only in the main thread (Python delivers signals there); elsewhere it does nothing.

    An interrupt raised while Python runs a garbage-collection callback or a ``__del__`` (SQLAlchemy
    closes connections in such callbacks) is printed as "Exception ignored" and lost: the worker
    would go on as if Ctrl-C never came. So the handler also remembers what it raised
    (``raised``) until a handler acknowledges it, and :meth:`reraise_swallowed`, called at the
    worker's checkpoints, raises it again.
    """

    def __init__(self) -> None:
        self.active = threading.current_thread() is threading.main_thread()
        self.holding = False
        self.pending: type[BaseException] | None = None
        self.raised: type[BaseException] | None = None
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> Signals:
        if self.active:
            self._previous[signal.SIGTERM] = signal.signal(signal.SIGTERM, self._on_signal)
            if signal.getsignal(signal.SIGINT) is signal.default_int_handler:
                self._previous[signal.SIGINT] = signal.signal(signal.SIGINT, self._on_signal)
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, previous in self._previous.items():
            signal.signal(sig, previous)
        self._previous.clear()

    def _on_signal(self, signum: int, frame: Any) -> None:
        kind = _Terminated if signum == signal.SIGTERM else KeyboardInterrupt
        if self.holding:
            self.pending = self.pending or kind
            return
        self.raised = self.raised or kind
        raise kind()

    def acknowledge(self) -> None:
        """The raised interrupt reached a handler: nothing was swallowed."""
        self.raised = None

    def reraise_swallowed(self) -> None:
        """Raise again an interrupt that a callback swallowed (see the class docstring)."""
        kind, self.raised = self.raised, None
        if kind is not None:
            raise kind()

    @contextlib.contextmanager
    def held(self, *, drop: bool = False) -> Iterator[None]:
        """Hold Ctrl-C/SIGTERM back in the block; raise one that came after it (unless ``drop``)."""
        outer = self.holding
        self.holding = True
        try:
            yield
        finally:
            self.holding = outer
        if not outer:
            pending, self.pending = self.pending, None
            if pending is not None and not drop:
                raise pending()


def signal_name(err: BaseException) -> str:
    """``SIGTERM`` for a termination, else ``SIGINT`` (Ctrl-C)."""
    return "SIGTERM" if isinstance(err, _Terminated) else "SIGINT"


def interrupted_error(err: BaseException, number: int | None) -> StudyInterrupted:
    """The :class:`StudyInterrupted` for ``err`` (exit 130 or 143) during trial ``number``."""
    name = signal_name(err)
    code = EXIT_TERMINATED if name == "SIGTERM" else EXIT_INTERRUPTED
    if number is None:
        message = f"Interrupted ({name}) between trials; no trial was running."
    else:
        message = f"Trial {number} was recorded as FAIL (interrupted: {name}) and queued again."
    return StudyInterrupted(message, number, exit_code=code)
