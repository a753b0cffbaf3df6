"""The worker loop; its heartbeats, retries and recovery of dead workers are in :mod:`.recovery`.

**The loop** (:func:`run_worker`) first queues again what failed for a reason that may be
fixed by now (:func:`requeue_failed`), then repeats these steps until the study has
``n_trials`` counted candidates and every baseline (:mod:`loran_search.search.progress`):

1. *survey*: read the trials once, fail and re-queue stale ones, decide whether to stop;
2. *take the next trial*: a queued baseline (taken by id, so a baseline queued again after a
   failure still runs before the grid points queued earlier), else ``study.ask()`` pops a
   queued trial (grid points, retries) or samples one, and records this worker in it; a
   second copy of a retry (two workers started together) is recorded FAIL ``surplus:`` and
   skipped;
3. *check surplus*: a worker checks that fewer than ``n_trials`` counted candidates have a
   smaller trial number; if not, the others filled the budget first and its trial is recorded
   FAIL ``surplus:`` (a queued point is queued again), so several workers finish with exactly
   ``n_trials``;
4. *execute with a heartbeat*, then *record the outcome*: how the trial ended is classified into
   one :class:`_Outcome` (COMPLETE, PRUNED, or FAIL of a kind; whether to queue it again;
   whether to stop), which is written in one place, with Ctrl-C and SIGTERM held back until it
   is written.

**Failures** (kinds of :mod:`loran_search.record`). A configuration that diverges or gives a
non-finite metric is a result: FAIL, counted in ``n_trials``, never retried. Anything else is
retried, so every failure can be recovered by running the same command again once its cause is
fixed: an ``error:`` (the training function raised: a missing data file, out of memory) is
not counted, the loop goes on, and the next worker to start queues it again (a baseline
always, a candidate while ``n_trials`` has room); an interrupt, a dead worker or a surplus
trial is queued again at once. :data:`MAX_CONSECUTIVE_ERRORS` errors in a row stop the worker
with :class:`TrialErrors`. Ctrl-C and SIGTERM record the running trial FAIL ``interrupted:``,
queue it again and raise :class:`StudyInterrupted` (exit 130 or 143).

**Dead workers.** Every running trial records its worker (host, pid, process start time) and
keeps a heartbeat (Optuna's on SQLite/PostgreSQL/MySQL; a system attr on the journal). Before
each trial a worker fails and re-queues every RUNNING trial that is *stale*: its worker ran on
this host and that process is gone (``kill -9``: detected at once), or no heartbeat came for
``grace_period`` seconds (``2 × heartbeat_interval`` by default; for workers on other
machines). A live worker's trial is never touched, so several workers may restart at will.
A re-queued trial is a new WAITING trial with the same params and role, and the numbers of the
trials it repeats in ``retry_history`` (Optuna's ``RetryHeartbeatStaleTrialCallback`` form).

**Confirmation** (``confirm=`` a :class:`~loran_search.search.types.ConfirmSetup`;
:mod:`loran_search.search.confirm`). When the search loop is done, the worker waits until no
search trial is running on another worker (running a search trial that a dead worker left
behind itself), then queues the confirmation trials that no trial carries the key of yet
(baselines first; the setup stored in the study attr ``loran.confirm``) and takes queued
confirmation trials one by one by id (:func:`~loran_search.search._optuna.take_waiting`: never
``ask()``, so nothing is sampled), until none is queued. A taken confirmation trial whose key a
lower-numbered queued or running trial, or a complete one, already stands for is recorded FAIL
``surplus:`` and skipped. Heartbeats, stale recovery, retries, signals and the record are the
search trials'. A confirmation trial that a search-loop ``ask()`` pops (it was queued while
another worker was still searching) runs as a confirmation trial too.

**Inert candidates.** Before a candidate trains, its non-linearity is predicted from the trained
baseline at its rank (:class:`~loran_search.search.objective.InertCheck`); the first time a
worker is about to train a candidate with a baseline to predict from, it prints the prediction
for every queued candidate configuration, marking the inert ones (``search.skip_inert`` then
records those FAIL ``inert:`` untrained, counted like a diverged one).
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from loran_search import record as R
from loran_search.errors import UsageError
from loran_search.search._optuna import queued_params
from loran_search.search.keys import CONFIRM, TUNE, duplicate_of, twin
from loran_search.search.progress import (
    Progress,
    is_counted,
    missing_baselines,
    progress_of,
    role_of,
)
from loran_search.search.recovery import (
    MAX_CONSECUTIVE_ERRORS,
    Signals,
    StudyInterrupted,
    TrialErrors,
    heartbeat,
    interrupted_error,
    recover_stale,
    requeue_failed,
    retried_numbers,
    retry_at_start,
    retry_trial,
    signal_name,
    trial_id_of,
    worker_identity,
)
from loran_search.search.types import ConfirmSetup, WorkerResult
from loran_search.words import count, plural

if TYPE_CHECKING:
    import optuna
    from optuna.trial import FrozenTrial, TrialState

    from loran_search.search.handle import StudyHandle
    from loran_search.search.objective import InertCheck
    from loran_search.search.tune import TuneSetup


# ------------------------------------------------------------------------------ the loop


def adapters_dir_of(artifact_dir: Path, study_name: str) -> Path:
    """``<artifacts>/adapters/<study>``, refused if the name would lead outside ``artifacts/``.

    Trial folders there are created and removed, so this is checked even though a validated
    study name has no separator and no ``..`` (a hand-built config skips validation).

    Raises:
        UsageError: The folder would not lie inside ``<artifacts>/adapters``.
    """
    base = artifact_dir / "adapters"
    path = base / study_name
    if not path.resolve().is_relative_to(base.resolve()) or path.resolve() == base.resolve():
        raise UsageError(
            f"Study name {study_name!r} would put the adapters outside {base}: use a plain "
            "name (letters, digits, '-', '_', '.'), e.g. sinter-amplitude-2."
        )
    return path


@dataclass
class _Taken:
    """A trial this worker took (``ask``), before it runs."""

    trial: optuna.Trial
    trial_id: int
    role: str
    queued: bool
    recorded: bool = False


@dataclass
class _Outcome:
    """How a trial ended, and what to do about it (written by :meth:`_Worker.record`).

    Attributes:
        state: The Optuna state to tell.
        values: The objective value(s) of a COMPLETE trial.
        attrs: User attrs to set before telling.
        message: A line for the log.
        retry: Queue the trial again after telling.
        error: The trial raised (counts toward :data:`MAX_CONSECUTIVE_ERRORS`).
        stop: Raised after the trial is recorded (the worker stops).
    """

    state: TrialState
    values: Any = None
    attrs: dict[str, Any] = field(default_factory=dict)
    message: str | None = None
    retry: bool = False
    error: bool = False
    stop: BaseException | None = None


_SKIP = "skip"  # check_surplus: this trial was a duplicate retry; take the next one


class _Worker:
    """One worker's run of the loop (see the module doc).

    :func:`run_worker`, :func:`run_confirmation` and :func:`run_tuning` build it with their
    phases; ``target`` defaults to ``study.n_trials`` and ``train_fn`` to
    :func:`~loran_search.search.objective.get_train_fn`.
    """

    def __init__(
        self,
        handle: StudyHandle,
        *,
        target: int | None = None,
        train_fn: Callable[..., Any] | None = None,
        progress: bool = False,
        log: Callable[[str], None] = print,
        on_trial: Callable[[FrozenTrial, Progress], None] | None = None,
        confirm: ConfirmSetup | None = None,
        confirm_source: str = "study.confirm",
        poll: float = 1.0,
        tune: TuneSetup | None = None,
        tune_source: str = "study.tune",
    ) -> None:
        from optuna.artifacts import FileSystemArtifactStore

        from loran_search.search.objective import get_train_fn

        self.tune_setup = tune  # study.tune (issue 21; loran_search.search.tune)
        self.tune_source = tune_source
        self.confirm_setup = confirm
        self.confirm_source = confirm_source
        self.poll = poll
        self.inert_table_shown = False
        self.inert_shown: set[int] = set()  # trials whose prediction the table showed
        self.snapshot: list[FrozenTrial] = []
        self.taken: _Taken | None = None
        self.handle = handle
        self.study = handle.study
        self.storage = handle.storage
        self.cfg = handle.cfg
        self.target = handle.cfg.study.n_trials if target is None else target
        self.train_fn = train_fn or get_train_fn()
        self.progress = progress
        self.log = log
        self.on_trial = on_trial
        self.grid = self.cfg.study.sampler.get("name") == "grid"
        handle.artifact_dir.mkdir(parents=True, exist_ok=True)
        self.store = FileSystemArtifactStore(str(handle.artifact_dir))
        self.adapters_dir = adapters_dir_of(handle.artifact_dir, self.cfg.study.name)
        self.hb_interval = float(self.cfg.study.heartbeat_interval)
        self.errors_in_a_row = 0
        self.result = WorkerResult()
        self.signals = Signals()

    def run(self, *, search: bool = True) -> WorkerResult:
        """Queue failed trials again, loop until the search is done, then confirm (if asked).

        Args:
            search: Run the search loop (``False``: only the confirmation, ``confirm``).
        """
        with self.signals:
            self.taken = None
            try:
                with self.signals.held():  # `confirm` (no search) retries confirmations only
                    self.result.requeued = requeue_failed(
                        self.handle,
                        target=self.target,
                        log=self.log,
                        roles=None if search else R.CONFIRM_ROLES,
                    )
                if search:
                    self.result.reason = self.search_loop()
                if self.tune_setup is not None:
                    from loran_search.search.tune import tune_phase

                    why, tuned = tune_phase(self, self.tune_setup, wait=search)
                    self.result.tune_reason = why
                    if not tuned and self.confirm_setup is not None:
                        self.confirm_setup = None
                        self.result.confirm_reason = "not started: the tuning is incomplete"
                if self.confirm_setup is not None:
                    self.result.confirm_reason = self.confirm_phase(wait=search)
            except KeyboardInterrupt as err:  # Ctrl-C or SIGTERM outside the training itself
                self.signals.acknowledge()
                taken = self.taken
                if taken is not None and not taken.recorded:
                    self.record(taken, self._interrupt_outcome(taken, err))
                raise interrupted_error(err, None) from None
        self.result.notes = self.notes(search=search)
        for note in self.result.notes:
            self.log(note)
        return self.result

    def search_loop(self) -> str:
        """Steps 1–4 until the search is done (or others filled it); returns why it stopped."""
        while True:
            self.taken = None
            self.signals.reraise_swallowed()  # a Ctrl-C lost in a callback stops here
            p = self.survey()
            reason = self.done(p)
            if reason is None:
                self.taken = self.take_next_trial()
                reason = self.check_surplus(self.taken)
            if reason == _SKIP:
                continue
            if reason is not None:
                return reason
            self.result.ran += 1
            outcome = self.execute_with_heartbeat(self.taken, p.best)
            self.record(self.taken, outcome)

    # -- the confirmation --------------------------------------------------------------------

    def confirm_phase(self, *, wait: bool) -> str:
        """Wait for the search to finish, queue the confirmation, run queued confirmation trials.

        Args:
            wait: Wait for search trials running on other workers (and run any that is queued
                again meanwhile); ``False`` (``loran-search confirm``): confirm what is complete
                now, saying what is not.

        Returns:
            Why the phase ended.
        """
        from optuna.trial import TrialState

        setup = self.confirm_setup
        assert setup is not None
        if wait:
            self.wait_for_search(
                lambda n: (
                    f"Search done here; waiting for {count(n, 'search trial')} running on other "
                    "workers before choosing what to confirm."
                )
            )
        trials = self.study.get_trials(deepcopy=False)
        if not wait:
            live = [
                t.number
                for t in trials
                if role_of(t) in R.SEARCH_ROLES
                and t.state in (TrialState.RUNNING, TrialState.WAITING)
            ]
            if live:
                shown = ", ".join(str(n) for n in live[:10]) + (" …" if len(live) > 10 else "")
                self.log(
                    f"{count(len(live), 'search trial')} {plural(len(live), 'is')} queued or "
                    f"running (trials {shown}); the "
                    "configurations to confirm are chosen from the completed ones."
                )
        with self.signals.held():
            self.result.confirm_queued = self.queue_confirmation(setup, trials)
        if self.result.confirm_planned == 0 and not any(
            role_of(t) in R.CONFIRM_ROLES for t in trials
        ):
            return "nothing to confirm: no candidate trial completed with a finite value"
        running = self.run_queued(R.CONFIRM_ROLES, "confirm_ran")
        if running:
            return f"no confirmation trial left to take; {running} running elsewhere"
        return "every confirmation trial is done"

    def wait_for_search(self, say: Callable[[int], str] | None = None) -> None:
        """Until no search trial runs on another worker; run any that is queued again meanwhile.

        Args:
            say: The line to log once while waiting, from the number of search trials running.
        """
        said = False
        while True:
            p = self.survey()
            if self.done(p) is None:  # a search trial was queued again (a dead worker's)
                self.result.reason = self.search_loop()
                continue
            if p.running_search == 0:
                return
            if say is not None and not said:
                self.log(say(p.running_search))
                said = True
            time.sleep(self.poll)

    def run_queued(self, roles: Collection[str], counter: str) -> int:
        """Take the queued trials of ``roles`` one by one by id and run them, until none is queued.

        Args:
            roles: The roles of the phase (the confirmation's, or ``tune``).
            counter: The :class:`WorkerResult` field counting the phase's trials.

        Returns:
            How many trials of ``roles`` are then running on other workers.
        """
        from optuna.trial import TrialState

        while True:
            self.taken = None
            snapshot = self.study.get_trials(deepcopy=False)
            with self.signals.held():
                if recover_stale(self.handle, self.log, snapshot):
                    snapshot = self.study.get_trials(deepcopy=False)
            mine = [t for t in snapshot if role_of(t) in roles]
            waiting = [t for t in mine if t.state == TrialState.WAITING]
            if not waiting:
                return sum(1 for t in mine if t.state == TrialState.RUNNING)
            self.taken = self.take_queued(waiting)
            if self.taken is None or self.check_surplus(self.taken) == _SKIP:
                continue
            self.result.ran += 1
            setattr(self.result, counter, getattr(self.result, counter) + 1)
            self.record(self.taken, self.execute_with_heartbeat(self.taken, None))

    def queue_confirmation(self, setup: ConfirmSetup, trials: list[FrozenTrial]) -> int:
        """Queue the confirmation (:func:`loran_search.search.confirm.queue_confirmation`)."""
        from loran_search.search.confirm import queue_confirmation
        from loran_search.search.tune import confirmation_points

        return queue_confirmation(
            self, setup, trials, lambda plan: confirmation_points(self, plan, trials)
        )

    def take_queued(self, waiting: list[FrozenTrial]) -> _Taken | None:
        """Take the oldest of these queued trials that another worker has not taken first."""
        from loran_search.search._optuna import take_waiting

        with self.signals.held():  # a taken trial is RUNNING: it must carry its worker
            for t in sorted(waiting, key=lambda t: t.number):
                tid = trial_id_of(self.handle, t.number)
                trial = take_waiting(self.study, tid)
                if trial is None:
                    continue
                self.storage.set_trial_system_attr(tid, R.WORKER, worker_identity())
                return _Taken(trial, tid, role_of(t), True)
        return None

    def stored_confirm(self) -> ConfirmSetup | None:
        """The study's confirmation setup (the stored one wins), for a confirmation trial."""
        stored = self.study.user_attrs.get(R.STUDY_CONFIRM)
        if isinstance(stored, dict):
            try:
                return ConfirmSetup.from_dict(stored)
            except (KeyError, TypeError, ValueError):
                pass
        return self.confirm_setup

    # -- inert candidates --------------------------------------------------------------------

    def inert_check(self, trials: list[FrozenTrial]) -> InertCheck | None:
        """The predictor from the trained baselines (``None`` before any has a ``P``)."""
        from loran_search.search.objective import InertCheck

        check = InertCheck.from_trials(trials, skip=self.cfg.search.skip_inert)
        return check if check.quantiles else None

    def show_inert_table(self, check: InertCheck, trials: list[FrozenTrial]) -> None:
        """Once: the predicted ν of every queued candidate configuration, inert ones marked."""
        from optuna.trial import TrialState

        self.inert_table_shown = True
        rows = []
        for t in trials:
            if t.state != TrialState.WAITING or role_of(t) != R.ROLE_CANDIDATE:
                continue
            tc = self.handle.space.config_of(queued_params(t) or {})
            if tc is None or tc.method != R.METHOD_LORAN:  # a peer arm has no f to predict
                continue
            act, own, rank = tc.activation, tc.activation_params, tc.rank
            try:
                nu = check.predict(act, own, rank)
            except Exception as err:  # an activation that cannot be built here: say so
                self.log(f"  (no prediction for trial {t.number}: {type(err).__name__}: {err})")
                continue
            if nu is not None:
                rows.append((t.number, act, own, rank, nu))
                self.inert_shown.add(t.number)
        if not rows:
            return
        inert = [r for r in rows if check.is_inert(r[4])]
        what = (
            "skipped (search.skip_inert)"
            if check.skip
            else "trained anyway (search.skip_inert: false)"
        )
        self.log(
            f"Predicted non-linearity ν̂ at the trained baseline's P, before training: "
            f"{len(inert)} of {count(len(rows), 'queued candidate configuration')} "
            f"{plural(len(inert), 'is')} inert "
            f"(ν̂ < {check.threshold:g}, LoRA in all but name) and will be {what}."
        )
        for number, act, own, rank, nu in rows:
            mark = "  inert" if check.is_inert(nu) else ""
            self.log(f"  trial {number}: {act} {own} at rank {rank}: ν̂ = {nu:.3g}{mark}")

    # -- step 1: survey ----------------------------------------------------------------------

    def survey(self) -> Progress:
        """Read the trials once (the journal: one sync), recover stale ones, count."""
        snapshot = self.study.get_trials(deepcopy=False)
        with self.signals.held():
            recovered = recover_stale(self.handle, self.log, snapshot)
        if recovered:
            snapshot = self.study.get_trials(deepcopy=False)
        self.snapshot = snapshot
        return progress_of(self.study, self.cfg, snapshot)

    def done(self, p: Progress) -> str | None:
        """Why the worker stops before taking a trial, or ``None``."""
        if p.candidates >= self.target and p.waiting_baselines == 0:
            return f"{p.candidates} of {self.target} candidate trials done or running"
        if self.grid and p.waiting_search == 0:
            from loran_search.search.grid import queue_grid  # the grid is queued as needed

            with self.signals.held():
                _, queued = queue_grid(self.handle, self.target, self.snapshot)
            if queued:
                return None
            return "the grid is exhausted"
        return None

    # -- step 2: take the next trial ---------------------------------------------------------

    def take_next_trial(self) -> _Taken:
        """A queued baseline, else ``ask()`` (a queued trial first); record this worker in it.

        ``ask()`` pops the *oldest* WAITING trial, and a baseline queued again after a failure
        has a higher number than the grid points queued before it: it is taken by id first, so
        the baselines run first after a failure too (the inert prediction and ``skip_inert``
        need a trained baseline).
        """
        from optuna.trial import TrialState

        from loran_search.search._optuna import take_waiting

        with self.signals.held():  # a popped trial is RUNNING: it must carry its worker
            baselines = sorted(
                (
                    t
                    for t in self.snapshot
                    if t.state == TrialState.WAITING and role_of(t) == R.ROLE_BASELINE
                ),
                key=lambda t: t.number,
            )
            for t in baselines:
                tid = trial_id_of(self.handle, t.number)
                taken = take_waiting(self.study, tid)
                if taken is not None:  # else another worker took it first
                    self.storage.set_trial_system_attr(tid, R.WORKER, worker_identity())
                    return _Taken(taken, tid, R.ROLE_BASELINE, True)
            with warnings.catch_warnings():  # "Heartbeat … supposed to be used with optimize":
                warnings.simplefilter("ignore", UserWarning)  # heartbeat() below keeps it
                trial = self.study.ask()
            tid = trial_id_of(self.handle, trial.number)
            self.storage.set_trial_system_attr(tid, R.WORKER, worker_identity())
            frozen = self.storage.get_trial(tid)
            queued = queued_params(frozen) is not None or bool(frozen.params)
            return _Taken(trial, tid, role_of(frozen), queued)

    # -- step 3: check surplus ---------------------------------------------------------------

    def check_surplus(self, taken: _Taken) -> str | None:
        """Record a duplicate retry, or a candidate beyond ``n_trials``/the grid, as surplus.

        Returns:
            ``None`` to run the trial, :data:`_SKIP` to take the next one, else why to stop.
        """
        trials = self.study.get_trials(deepcopy=False)
        frozen = self.storage.get_trial(taken.trial_id)
        if frozen.state.is_finished():
            return self._finished_elsewhere(taken)
        repeat = duplicate_of(trials, frozen)
        if repeat is not None:
            why = f"a duplicate retry (trial {repeat} repeats the same trial)"
            self._surplus(taken, why, False)
            return _SKIP
        if taken.role in (*R.CONFIRM_ROLES, R.ROLE_TUNE):  # a keyed queue: one per key
            confirming = taken.role in R.CONFIRM_ROLES
            rule = CONFIRM if confirming else TUNE
            found = twin(trials, frozen, rule.key_of(frozen), rule)
            if found is not None:
                what = "confirmation" if confirming else "tune trial"
                same = "configuration" if confirming else "arm and point"
                why = f"a duplicate {what} (trial {found.number} stands for the same {same})"
                self._surplus(taken, why, False)
                return _SKIP
            return None
        if taken.role != R.ROLE_CANDIDATE:
            return None
        number = taken.trial.number
        before = sum(1 for t in trials if t.number < number and is_counted(t))
        if before < self.target and (taken.queued or not self.grid):
            return None
        why = (
            f"{self.target} candidates were already taken by other workers"
            if before >= self.target
            else "the grid is exhausted"
        )
        return self._surplus(taken, why, taken.queued)

    def _surplus(self, taken: _Taken, why: str, retry: bool) -> str:
        import optuna
        from optuna.trial import TrialState

        attrs = R.failure_attrs(R.FAIL_SURPLUS, why)
        with self.signals.held():
            try:
                for key, value in attrs.items():
                    self.storage.set_trial_user_attr(taken.trial_id, key, value)
                self.study.tell(taken.trial, state=TrialState.FAIL)
            except optuna.exceptions.UpdateFinishedTrialError:
                return self._finished_elsewhere(taken)
            if retry:
                retry_trial(self.study, self.storage.get_trial(taken.trial_id))
            taken.recorded = True
        return attrs[R.FAILURE]

    def _finished_elsewhere(self, taken: _Taken) -> str:
        """The taken trial was finished by another process meanwhile: leave it, take the next.

        Two workers can take one queued trial at the same moment where the storage has no row
        lock (SQLite: both see it WAITING); the other worker then records it (it ran it, or
        recorded it surplus) and this one must neither write to it nor run it.
        """
        state = self.storage.get_trial(taken.trial_id).state.name
        self.log(
            f"Trial {taken.trial.number} was taken and recorded {state} by another worker at "
            "the same moment; this worker leaves it and takes the next one."
        )
        taken.recorded = True
        return _SKIP

    # -- step 4: execute with a heartbeat ----------------------------------------------------

    def execute_with_heartbeat(self, taken: _Taken, best: float | None) -> _Outcome:
        """Run the trial; classify how it ended (an interrupt too: it is recorded, then raised)."""
        import optuna
        from optuna.trial import TrialState

        from loran_search.search.objective import (
            MetricMissing,
            TrainFnError,
            TrialFailed,
            execute_trial,
        )

        trial = taken.trial
        confirm = self.stored_confirm() if taken.role in R.CONFIRM_ROLES else None
        inert = None
        if taken.role == R.ROLE_CANDIDATE:
            snapshot = self.snapshot or self.study.get_trials(deepcopy=False)
            inert = self.inert_check(snapshot)
            if inert is not None and not self.inert_table_shown:
                self.show_inert_table(inert, snapshot)
        try:
            with heartbeat(self.storage, taken.trial_id, self.hb_interval):
                values = execute_trial(
                    trial,
                    self.cfg,
                    self.handle.space,
                    train_fn=self.train_fn,
                    artifact_store=self.store,
                    adapters_dir=self.adapters_dir,
                    best_value=best,
                    progress=self.progress,
                    confirm=confirm,
                    inert=inert,
                    log=None if trial.number in self.inert_shown else self.log,
                )
            self.signals.reraise_swallowed()  # a Ctrl-C lost in a callback during the trial
        except optuna.TrialPruned as err:
            return _Outcome(TrialState.PRUNED, attrs={R.PRUNED: str(err)})
        except TrialFailed as err:
            return _Outcome(
                TrialState.FAIL,
                attrs=R.failure_attrs(err.kind, str(err)),
                message=f"Trial {trial.number} failed: {err}",
            )
        except KeyboardInterrupt as err:
            return self._interrupt_outcome(taken, err)
        except (MetricMissing, TrainFnError) as err:  # the setup is wrong: stop, lose nothing
            return _Outcome(
                TrialState.FAIL,
                attrs=R.failure_attrs(R.FAIL_CONFIG, str(err)),
                retry=True,
                stop=err,
            )
        except Exception as err:
            msg = f"{R.FAIL_ERROR}: {type(err).__name__}: {err}"
            outcome = _Outcome(
                TrialState.FAIL,
                attrs=R.failure_attrs(R.FAIL_ERROR, msg),
                message=f"Trial {trial.number} raised {msg}",
                error=True,
            )
            if self.errors_in_a_row + 1 >= MAX_CONSECUTIVE_ERRORS:
                stop = TrialErrors(
                    f"{MAX_CONSECUTIVE_ERRORS} trials in a row raised an error (last: trial "
                    f"{trial.number}, {msg}); this looks systematic, so the worker stops. The "
                    "trials keep the errors in user_attrs['failure'].",
                    fix="Fix the cause and run the same command again: the failed trials are "
                    "queued again, nothing is lost.",
                )
                stop.__cause__ = err
                outcome.stop = stop
            return outcome
        return _Outcome(TrialState.COMPLETE, values=values)

    def _interrupt_outcome(self, taken: _Taken, err: BaseException) -> _Outcome:
        from optuna.trial import TrialState

        self.signals.acknowledge()
        name = signal_name(err)
        why = "Ctrl-C (SIGINT)" if name == "SIGINT" else "SIGTERM"
        return _Outcome(
            TrialState.FAIL,
            attrs=R.failure_attrs(R.FAIL_INTERRUPTED, f"{why} during the trial"),
            retry=True,
            stop=interrupted_error(err, taken.trial.number),
        )

    # -- step 5: record the outcome ----------------------------------------------------------

    def record(self, taken: _Taken, outcome: _Outcome) -> None:
        """Write the outcome (attrs, state, a retry) with signals held; then stop or report."""
        from optuna.trial import TrialState

        trial = taken.trial
        stopping = isinstance(outcome.stop, StudyInterrupted)
        with self.signals.held(drop=stopping):  # a second Ctrl-C must not cut the record short
            for key, value in outcome.attrs.items():
                trial.set_user_attr(key, value)
            # on_trial reports the recorded trial, failure included: log the message only when
            # nothing else will say it (no callback, or the worker stops before calling it)
            if outcome.message and (self.on_trial is None or outcome.stop is not None):
                self.log(outcome.message)
            if outcome.state == TrialState.COMPLETE:
                self.study.tell(trial, outcome.values)
            else:
                self.study.tell(trial, state=outcome.state)
            if outcome.retry:
                retry_trial(self.study, self.storage.get_trial(taken.trial_id))
            taken.recorded = True
        self.errors_in_a_row = self.errors_in_a_row + 1 if outcome.error else 0
        if outcome.stop is not None:
            raise outcome.stop
        self.result.completed += outcome.state == TrialState.COMPLETE
        self.result.pruned += outcome.state == TrialState.PRUNED
        self.result.failed += outcome.state == TrialState.FAIL
        if self.on_trial is not None:
            self.on_trial(self.storage.get_trial(taken.trial_id), progress_of(self.study, self.cfg))

    # -- the end -----------------------------------------------------------------------------

    def notes(self, *, search: bool = True) -> list[str]:
        """What the user must know when the worker is done: missing baselines, errors.

        Without ``search`` (``confirm``, which retries no search trial) only the confirmation
        trials' notes: "run the same command again" would not retry a search trial there.
        """
        trials = self.study.get_trials(deepcopy=False)
        out = []
        missing = missing_baselines(trials) if search else {}
        for rank, failure in sorted(missing.items(), key=lambda kv: str(kv[0])):
            out.append(
                f"The baseline at rank {rank} failed ({failure}): gains at rank {rank} are "
                "unavailable until it completes; fix the cause and run the same command again "
                "to retry it."
            )
        retried = retried_numbers(trials)
        waiting = [
            t.number
            for t in trials
            if search
            and retry_at_start(t)
            and t.number not in retried
            and role_of(t) == R.ROLE_CANDIDATE
        ]
        if waiting:
            shown = ", ".join(str(n) for n in waiting[:10]) + (" …" if len(waiting) > 10 else "")
            out.append(
                f"{count(len(waiting), 'candidate trial')} failed with an error and "
                f"{plural(len(waiting), 'is')} not counted "
                f"(trials {shown}); run the same command again (with a larger --n-trials if the "
                "budget is full) to retry them."
            )
        confirm = [
            t.number
            for t in trials
            if retry_at_start(t) and t.number not in retried and role_of(t) in R.CONFIRM_ROLES
        ]
        if confirm:
            shown = ", ".join(str(n) for n in confirm[:10]) + (" …" if len(confirm) > 10 else "")
            out.append(
                f"{count(len(confirm), 'confirmation trial')} failed with an error "
                f"(trials {shown}); run the same command again to retry them."
            )
        return out


def run_worker(
    handle: StudyHandle,
    *,
    n_trials: int | None = None,
    train_fn: Callable[..., Any] | None = None,
    progress: bool = False,
    log: Callable[[str], None] = print,
    on_trial: Callable[[FrozenTrial, Progress], None] | None = None,
    confirm: ConfirmSetup | None = None,
    poll: float = 1.0,
    tune: TuneSetup | None = None,
) -> WorkerResult:
    """Run trials until the study has ``n_trials`` counted candidates and every baseline.

    With ``confirm``, the worker then runs the confirmation phase (module doc): it waits for
    the search trials other workers are running, queues the confirmation and runs queued
    confirmation trials.

    Args:
        handle: The opened study (:func:`loran_search.search.study.open_study`).
        n_trials: Candidate trials to reach (default ``study.n_trials``).
        train_fn: The training function (default :func:`~loran_search.search.objective.\
get_train_fn`).
        progress: Show the per-run progress bar.
        log: Receives the loop's messages (recovered and re-queued trials, failures, and at the
            end :attr:`WorkerResult.notes`).
        on_trial: Called after each recorded trial with the trial and the study's progress.
        confirm: The confirmation setup (``None``: no confirmation phase).
        tune: The tuning grid (``study.tune``; ``None``: no tuning phase, e.g. ``--no-tune``):
            between the search and the confirmation (:mod:`loran_search.search.tune`).
        poll: Seconds between looks at the study while waiting for other workers.

    Raises:
        StudyInterrupted: Ctrl-C (exit 130) or SIGTERM (exit 143); the running trial is
            recorded FAIL (``interrupted:``) and queued again.
        ConfirmMismatch: The study's confirmation trials were run with other seeds or split.
        MetricMissing: The task has no ``study.metric`` (the trial is queued again).
        TrainFnError: The training function cannot be loaded or returned something unusable.
        TrialErrors: :data:`MAX_CONSECUTIVE_ERRORS` trials in a row raised an error.
    """
    worker = _Worker(
        handle,
        target=n_trials,
        train_fn=train_fn,
        progress=progress,
        log=log,
        on_trial=on_trial,
        confirm=confirm,
        poll=poll,
        tune=tune,
    )
    return worker.run()


def run_confirmation(
    handle: StudyHandle,
    setup: ConfirmSetup,
    *,
    source: str = "study.confirm",
    train_fn: Callable[..., Any] | None = None,
    progress: bool = False,
    log: Callable[[str], None] = print,
    on_trial: Callable[[FrozenTrial, Progress], None] | None = None,
    tune: TuneSetup | None = None,
) -> WorkerResult:
    """Confirm an existing study: queue its confirmation and run it (no search trial runs).

    The top-k come from the candidates complete now (search trials still queued or running are
    named in the log). Failed confirmation trials are queued again first, as a worker does.

    Args:
        handle: The opened study.
        setup: The confirmation setup (``study.confirm`` with ``--top-k``/``--seeds``).
        source: Where the setup came from, for a refusal's message.
        train_fn: The training function (default: ``get_train_fn()``).
        progress: Show the per-run progress bar.
        log: Receives the messages.
        on_trial: Called after each recorded trial.
        tune: The tuning grid (``study.tune``): the arms are tuned first.

    Raises:
        ConfirmMismatch: Confirmation trials exist with other seeds or another split.
        StudyInterrupted: Ctrl-C or SIGTERM (the running trial is queued again).
    """
    worker = _Worker(
        handle,
        train_fn=train_fn,
        progress=progress,
        log=log,
        on_trial=on_trial,
        confirm=setup,
        confirm_source=source,
        tune=tune,
    )
    return worker.run(search=False)


def run_tuning(
    handle: StudyHandle,
    tune: TuneSetup,
    *,
    train_fn: Callable[..., Any] | None = None,
    progress: bool = False,
    log: Callable[[str], None] = print,
    on_trial: Callable[[FrozenTrial, Progress], None] | None = None,
) -> WorkerResult:
    """``loran-search tune``: tune the arms of an existing study (no search, no confirmation).

    The tuning phase of :mod:`loran_search.search.tune`; the arms are those of the candidates
    complete now. Failed trials are queued again first, as a worker does.

    Raises:
        TuneMismatch: The study's tune/confirmation trials ran with another grid.
        StudyInterrupted: Ctrl-C or SIGTERM (the running trial is queued again).
    """
    worker = _Worker(
        handle, train_fn=train_fn, progress=progress, log=log, on_trial=on_trial, tune=tune
    )
    return worker.run(search=False)
