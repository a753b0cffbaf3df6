"""Create or resume a study, run the worker loop, recover from dead workers.

**Create or resume.** A study is created by name in the storage, or resumed when it exists. The
creator stores a fingerprint of everything that decides what a trial measures (the search
space, seeds, metric and directions, model, task, adapter and training sections; not
``n_trials``, the sampler, the pruner, the storage or the device) in the study's user attrs, and
enqueues the baselines (identity at every searched rank) and, for ``sampler: grid``, every grid
point; then it marks the study ready. Resuming with a different fingerprint is refused with the
list of what changed.

**Counting.** ``n_trials`` counts *candidate* trials that are COMPLETE, PRUNED, RUNNING, or
FAIL because the configuration itself failed (``diverged``/``error``). Interrupted and stale
trials are not counted: they are failed and queued again (same parameters, Optuna's
``RetryHeartbeatStaleTrialCallback`` form). Baselines come on top. After ``ask()`` a worker
checks that fewer than ``n_trials`` counted candidates have a smaller trial number; if not, the
others filled the budget first and its trial is recorded FAIL ``surplus:`` (a queued grid point
is queued again), so several workers finish with exactly ``n_trials``.

**Grid.** Grid points are enqueued, not drawn by Optuna's ``GridSampler``: the grid is
conditional (``relu`` is one point per rank, not one per ``sinter.amplitude`` value) and popping a
queued trial is atomic in every storage (a state change from WAITING that only one worker can
win), so no point runs twice, even with workers racing.

**Dead workers.** Every running trial records its worker (host, pid, process start time) and
keeps a heartbeat (Optuna's on SQLite/PostgreSQL/MySQL; a system attr on the journal). Before
each trial a worker fails and requeues every RUNNING trial that is *stale*: its worker ran on
this host and that process is gone (``kill -9``: detected at once), or no heartbeat came for
``grace_period`` seconds (``2 × heartbeat_interval`` by default; for workers on other
machines). A live worker's trial is never touched, so several workers may restart at will.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
import random
import signal
import socket
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import optuna
    from optuna.trial import FrozenTrial

    from loran_search.config import StudyConfig
    from loran_search.search.space import SearchSpace

HOST = socket.gethostname()
READY_ATTR = "loran.ready"
FINGERPRINT_ATTR = "loran.fingerprint"
SETUP_ATTR = "loran.setup"
WORKER_ATTR = "loran.worker"
HEARTBEAT_ATTR = "loran.heartbeat"
COUNTED_FAILURES = ("diverged", "error")
MAX_CONSECUTIVE_ERRORS = 3


class StudyMismatch(Exception):
    """Resuming a study whose stored setup differs from the file's."""


class StudyInterrupted(Exception):
    """Ctrl-C: the running trial was recorded FAIL and queued again."""

    def __init__(self, message: str, trial_number: int | None) -> None:
        super().__init__(message)
        self.trial_number = trial_number


# ------------------------------------------------------------------------------ fingerprint


def fingerprint(cfg: StudyConfig, space: SearchSpace) -> dict[str, Any]:
    """Everything that decides what a trial measures, as JSON-able data."""
    direction = cfg.study.direction
    directions = direction if isinstance(direction, list) else None
    model = dataclasses.asdict(cfg.model)
    model.pop("device", None)
    training = dataclasses.asdict(cfg.training)
    training.pop("threads", None)
    return {
        "space": space.describe(),
        "seeds": list(cfg.study.seeds),
        "metric": cfg.study.metric,
        "directions": directions or study_directions(cfg),
        "objectives": list(cfg.study.objectives),
        "baseline": cfg.study.baseline,
        "model": model,
        "task": dataclasses.asdict(cfg.task),
        "adapter": dataclasses.asdict(cfg.adapter),
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


def study_directions(cfg: StudyConfig) -> list[str]:
    """One direction per objective: the metric's, then ``minimize`` for each cost objective."""
    direction = cfg.study.direction
    if isinstance(direction, list):
        return list(direction)
    return [direction, *["minimize"] * len(cfg.study.objectives)]


# ------------------------------------------------------------------------------ samplers


def _make_sampler_for_candidates(base: Any, excluded: set[str], seed: int | None) -> Any:
    """Wrap ``base`` so that a candidate never gets an ``activation`` only baselines may take.

    When ``identity`` is a baseline but not a searched activation, the ``activation`` parameter
    still lists it (Optuna needs one distribution per name); a proposal of it is replaced by a
    uniformly drawn searched activation.
    """
    from optuna.samplers import BaseSampler

    class CandidateSampler(BaseSampler):
        def __init__(self) -> None:
            self._base = base
            self._rng = random.Random(seed)

        def __getattr__(self, name: str) -> Any:
            return getattr(self._base, name)

        def _fix(self, value: Any, choices: Any) -> Any:
            if value in excluded:
                allowed = [c for c in choices if c not in excluded]
                return self._rng.choice(allowed)
            return value

        def infer_relative_search_space(self, study: Any, trial: Any) -> Any:
            return self._base.infer_relative_search_space(study, trial)

        def sample_relative(self, study: Any, trial: Any, search_space: Any) -> Any:
            params = self._base.sample_relative(study, trial, search_space)
            if "activation" in params and "activation" in search_space:
                params["activation"] = self._fix(
                    params["activation"], search_space["activation"].choices
                )
            return params

        def sample_independent(self, study: Any, trial: Any, name: str, dist: Any) -> Any:
            value = self._base.sample_independent(study, trial, name, dist)
            if name == "activation":
                value = self._fix(value, dist.choices)
            return value

        def before_trial(self, study: Any, trial: Any) -> None:
            self._base.before_trial(study, trial)

        def after_trial(self, study: Any, trial: Any, state: Any, values: Any) -> None:
            self._base.after_trial(study, trial, state, values)

        def reseed_rng(self) -> None:
            self._base.reseed_rng()

    return CandidateSampler()


def make_sampler(cfg: StudyConfig, space: SearchSpace) -> Any:
    """The Optuna sampler of ``study.sampler`` (grid: see the module doc)."""
    import optuna

    spec = dict(cfg.study.sampler)
    name = spec.pop("name")
    seed = spec.get("seed")
    if name == "grid":
        base: Any = optuna.samplers.RandomSampler(seed=seed)  # only for unforeseen params
    else:
        cls = {
            "tpe": optuna.samplers.TPESampler,
            "random": optuna.samplers.RandomSampler,
            "cmaes": optuna.samplers.CmaEsSampler,
            "gp": optuna.samplers.GPSampler,
            "nsga2": optuna.samplers.NSGAIISampler,
        }[name]
        if name == "tpe" and len(space.activation_choices) > 1:
            # The space is conditional (params exist only for their activation): multivariate
            # TPE with group decomposition models each activation's sub-space jointly.
            spec.setdefault("multivariate", True)
            spec.setdefault("group", True)
        if name == "cmaes":
            spec.setdefault("warn_independent_sampling", False)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            base = cls(**spec)
    excluded = space.excluded_for_candidates
    return _make_sampler_for_candidates(base, excluded, seed) if excluded else base


def make_pruner(cfg: StudyConfig) -> Any:
    """The Optuna pruner of ``study.pruner``."""
    import optuna

    spec = dict(cfg.study.pruner)
    name = spec.pop("name")
    cls = {
        "none": optuna.pruners.NopPruner,
        "median": optuna.pruners.MedianPruner,
        "hyperband": optuna.pruners.HyperbandPruner,
        "successive_halving": optuna.pruners.SuccessiveHalvingPruner,
        "wilcoxon": optuna.pruners.WilcoxonPruner,
    }[name]
    return cls(**spec)


# ------------------------------------------------------------------------------ workers


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


def worker_identity() -> dict[str, Any]:
    """This process: ``{host, pid, start}``."""
    return {"host": HOST, "pid": os.getpid(), "start": _proc_start(os.getpid())}


@contextlib.contextmanager
def heartbeat(study: optuna.Study, trial_id: int, interval: float) -> Iterator[None]:
    """Keep a heartbeat for a running trial: Optuna's on RDB storages, a system attr otherwise."""
    from optuna.storages._heartbeat import get_heartbeat_thread, is_heartbeat_enabled

    storage = study._storage
    if is_heartbeat_enabled(storage):
        with get_heartbeat_thread(trial_id, storage):
            yield
        return
    stop = threading.Event()

    def beat() -> None:
        while True:
            with contextlib.suppress(Exception):  # a finished trial cannot be updated
                storage.set_trial_system_attr(trial_id, HEARTBEAT_ATTR, time.time())
            if stop.wait(interval):
                return

    thread = threading.Thread(target=beat, daemon=True, name=f"heartbeat-{trial_id}")
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=5)


def retry_trial(study: optuna.Study, trial: FrozenTrial) -> None:
    """Queue a failed trial again: same params (or queued fixed params), its role, a history."""
    import optuna

    system_attrs = {
        k: v for k, v in trial.system_attrs.items() if k not in (WORKER_ATTR, HEARTBEAT_ATTR)
    }
    history = [*system_attrs.get("retry_history", []), trial.number]
    system_attrs["retry_history"] = history
    system_attrs.setdefault("failed_trial", history[0])
    user_attrs = {"role": trial.user_attrs.get("role", "candidate")}
    study.add_trial(
        optuna.trial.create_trial(
            state=optuna.trial.TrialState.WAITING,
            params=trial.params,
            distributions=trial.distributions,
            user_attrs=user_attrs,
            system_attrs=system_attrs,
        )
    )


def fail_and_retry(study: optuna.Study, trial: FrozenTrial, reason: str) -> bool:
    """Record ``reason`` on a RUNNING trial, fail it and queue it again.

    Returns:
        Whether this call failed it (another worker may have won the race).
    """
    import optuna

    storage = study._storage
    kind = reason.split(":", 1)[0]
    try:
        storage.set_trial_user_attr(trial._trial_id, "failure", reason)
        storage.set_trial_user_attr(trial._trial_id, "failure_kind", kind)
        won = storage.set_trial_state_values(trial._trial_id, optuna.trial.TrialState.FAIL)
    except optuna.exceptions.UpdateFinishedTrialError:
        return False
    if won:
        retry_trial(study, storage.get_trial(trial._trial_id))
    return bool(won)


def recover_stale(
    study: optuna.Study,
    grace: float,
    log: Callable[[str], None],
    trials: list[FrozenTrial] | None = None,
) -> list[int]:
    """Fail and requeue every RUNNING trial whose worker is gone (see the module doc).

    ``trials`` is a snapshot of the study's trials to look at (default: read them).
    """
    import optuna
    from optuna.storages._heartbeat import is_heartbeat_enabled

    storage = study._storage
    rdb_stale: set[int] = set()
    if is_heartbeat_enabled(storage):
        rdb_stale = set(storage._get_stale_trial_ids(study._study_id))
    now = time.time()
    recovered = []
    if trials is None:
        trials = study.get_trials(deepcopy=False)
    for t in trials:
        if t.state != optuna.trial.TrialState.RUNNING:
            continue
        w = t.system_attrs.get(WORKER_ATTR) or {}
        who = f"pid {w.get('pid')} on {w.get('host')}" if w else "unknown worker"
        reason = None
        if w.get("host") == HOST and w.get("pid") != os.getpid():
            if not _alive(int(w["pid"]), w.get("start")):
                reason = f"its worker ({who}) is gone: killed, crashed or restarted"
        elif w.get("pid") == os.getpid() and w.get("host") == HOST:
            continue
        if reason is None:
            if t._trial_id in rdb_stale:
                reason = f"no heartbeat from its worker ({who}) for over {grace:g} s"
            elif not is_heartbeat_enabled(storage):
                last = t.system_attrs.get(HEARTBEAT_ATTR)
                if last is None and t.datetime_start is not None:
                    last = t.datetime_start.timestamp()
                if last is not None and now - float(last) > grace:
                    reason = f"no heartbeat from its worker ({who}) for {now - last:.0f} s"
        if reason and fail_and_retry(study, t, f"stale: {reason}"):
            log(f"Trial {t.number} was left RUNNING ({reason}); recorded FAIL and queued again.")
            recovered.append(t.number)
    return recovered


# ------------------------------------------------------------------------------ counting


def _role(t: FrozenTrial) -> str:
    return t.user_attrs.get("role", "candidate")


def is_counted(t: FrozenTrial) -> bool:
    """Whether a trial uses up one of the ``n_trials`` candidate slots."""
    from optuna.trial import TrialState

    if _role(t) != "candidate":
        return False
    if t.state in (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING):
        return True
    return t.state == TrialState.FAIL and t.user_attrs.get("failure_kind") in COUNTED_FAILURES


@dataclass
class Progress:
    """Where the study stands."""

    candidates: int = 0
    finished: int = 0
    baselines_done: int = 0
    baselines_total: int = 0
    waiting: int = 0
    waiting_baselines: int = 0
    running_baselines: int = 0
    running: int = 0
    best: float | None = None
    best_trial: int | None = None


def progress_of(
    study: optuna.Study, cfg: StudyConfig, trials: list[FrozenTrial] | None = None
) -> Progress:
    """Count candidates, baselines, waiting and running trials; the best candidate value."""
    from optuna.trial import TrialState

    p = Progress()
    maximize = study_directions(cfg)[0] == "maximize"
    for t in study.get_trials(deepcopy=False) if trials is None else trials:
        role = _role(t)
        if t.state == TrialState.WAITING:
            p.waiting += 1
            if role == "baseline":
                p.waiting_baselines += 1
            continue
        if t.state == TrialState.RUNNING:
            p.running += 1
            if role == "baseline":
                p.running_baselines += 1
                continue
        if role == "baseline":
            if t.state == TrialState.COMPLETE:
                p.baselines_done += 1
            continue
        if is_counted(t):
            p.candidates += 1
            if t.state != TrialState.RUNNING:
                p.finished += 1
        if t.state == TrialState.COMPLETE and t.values:
            v = t.values[0]
            if p.best is None or (v > p.best if maximize else v < p.best):
                p.best, p.best_trial = v, t.number
    p.baselines_total = p.baselines_done + p.waiting_baselines + p.running_baselines
    return p


# ------------------------------------------------------------------------------ the study


@dataclass
class StudyHandle:
    """An opened study and what a worker needs to run it."""

    study: optuna.Study
    cfg: StudyConfig
    space: SearchSpace
    storage_url: str
    created: bool
    grace: float
    artifact_dir: Path
    notes: list[str] = field(default_factory=list)


def open_study(
    cfg: StudyConfig,
    storage_url: str | None = None,
    *,
    ready_timeout: float = 30.0,
    log: Callable[[str], None] = print,
) -> StudyHandle:
    """Create the study or resume it (refusing a changed setup).

    Raises:
        StudyMismatch: The stored study was created with another space/setup; the message
            lists the changes and how to start a new study.
    """
    import optuna

    from loran_search.search.space import build_space
    from loran_search.search.storage import (
        default_artifact_dir,
        open_storage,
        parse_storage_url,
    )

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
    )
    fp = fingerprint(cfg, space)
    digest = _digest(fp)
    directions = study_directions(cfg)
    sampler = make_sampler(cfg, space)
    pruner = make_pruner(cfg)
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
    handle = StudyHandle(study, cfg, space, url, created, grace, artifact_dir)
    if created:
        study.set_user_attr(FINGERPRINT_ATTR, digest)
        study.set_user_attr(SETUP_ATTR, fp)
        study.set_user_attr("loran.config_path", cfg.path)
        _enqueue_setup(handle)
        study.set_user_attr(READY_ATTR, True)
        return handle
    deadline = time.monotonic() + ready_timeout
    while not study.user_attrs.get(READY_ATTR):
        if time.monotonic() > deadline:
            # The creator died between creating and enqueuing: finish its setup (idempotent).
            if FINGERPRINT_ATTR not in study.user_attrs:
                study.set_user_attr(FINGERPRINT_ATTR, digest)
                study.set_user_attr(SETUP_ATTR, fp)
            _enqueue_setup(handle)
            study.set_user_attr(READY_ATTR, True)
            break
        time.sleep(0.5)
    if study.directions != [optuna.study.StudyDirection[d.upper()] for d in directions]:
        raise StudyMismatch(_mismatch_message(cfg, url, ["directions differ"]))
    if study.user_attrs.get(FINGERPRINT_ATTR) != digest:
        changes = describe_changes(study.user_attrs.get(SETUP_ATTR) or {}, fp)
        raise StudyMismatch(_mismatch_message(cfg, url, changes or ["(the fingerprint)"]))
    return handle


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


def _point_key(params: dict[str, Any]) -> str:
    return json.dumps(params, sort_keys=True, default=str)


def _enqueue_setup(handle: StudyHandle) -> None:
    """Queue the baselines and (grid) every grid point that is not queued or done yet."""
    study, cfg, space = handle.study, handle.cfg, handle.space
    existing = set()
    for t in study.get_trials(deepcopy=False):
        params = t.system_attrs.get("fixed_params") or t.params
        existing.add((_role(t), _point_key(dict(params))))
    if cfg.study.baseline:
        for rank in space.ranks:
            params = space.baseline_params(rank)
            if ("baseline", _point_key(params)) not in existing:
                study.enqueue_trial(params, user_attrs={"role": "baseline"})
    if cfg.study.sampler.get("name") == "grid":
        points = space.grid()
        if cfg.study.sampler.get("shuffle"):
            random.Random(cfg.study.sampler.get("seed")).shuffle(points)
        for params in points:
            if ("candidate", _point_key(params)) not in existing:
                study.enqueue_trial(params, user_attrs={"role": "candidate"})
        if len(points) < cfg.study.n_trials:
            handle.notes.append(
                f"The grid has {len(points)} points, fewer than n_trials={cfg.study.n_trials}: "
                f"the study ends after {len(points)} candidates."
            )


@dataclass
class WorkerResult:
    """What one worker did."""

    ran: int = 0
    completed: int = 0
    pruned: int = 0
    failed: int = 0
    reason: str = ""


def run_worker(
    handle: StudyHandle,
    *,
    n_trials: int | None = None,
    train_fn: Callable[..., Any] | None = None,
    progress: bool = False,
    log: Callable[[str], None] = print,
    on_trial: Callable[[FrozenTrial, Progress], None] | None = None,
) -> WorkerResult:
    """Run trials until the study has ``n_trials`` counted candidates and every baseline.

    Raises:
        StudyInterrupted: Ctrl-C; the running trial is recorded FAIL (``interrupted:``) and
            queued again.
        MetricMissing: The task has no ``study.metric``.
        RuntimeError: Three configurations in a row raised an error (a systematic problem).
    """
    import optuna
    from optuna.artifacts import FileSystemArtifactStore
    from optuna.trial import TrialState

    from loran_search.search.objective import (
        MetricMissing,
        TrialFailed,
        execute_trial,
        get_train_fn,
    )

    study, cfg = handle.study, handle.cfg
    target = cfg.study.n_trials if n_trials is None else n_trials
    train_fn = train_fn or get_train_fn()
    grid = cfg.study.sampler.get("name") == "grid"
    handle.artifact_dir.mkdir(parents=True, exist_ok=True)
    store = FileSystemArtifactStore(str(handle.artifact_dir))
    adapters_dir = handle.artifact_dir / "adapters" / cfg.study.name
    result = WorkerResult()
    errors_in_a_row = 0
    hb_interval = float(cfg.study.heartbeat_interval)
    while True:
        snapshot = study.get_trials(deepcopy=False)  # one read per loop (journal: one sync)
        if recover_stale(study, handle.grace, log, snapshot):
            snapshot = study.get_trials(deepcopy=False)
        p = progress_of(study, cfg, snapshot)
        if p.candidates >= target and p.waiting_baselines == 0:
            result.reason = f"{p.candidates} of {target} candidate trials done or running"
            break
        if grid and p.waiting == 0:
            result.reason = "the grid is exhausted"
            break
        with warnings.catch_warnings():  # "Heartbeat … supposed to be used with optimize":
            warnings.simplefilter("ignore", UserWarning)  # heartbeat() below keeps it
            trial = study.ask()
        tid = trial._trial_id
        study._storage.set_trial_system_attr(tid, WORKER_ATTR, worker_identity())
        frozen = study._storage.get_trial(tid)
        role = _role(frozen)
        queued = "fixed_params" in frozen.system_attrs or bool(frozen.params)
        if role == "candidate":
            before = sum(
                1
                for t in study.get_trials(deepcopy=False)
                if t.number < trial.number and is_counted(t)
            )
            surplus = before >= target or (grid and not queued)
            if surplus:
                why = (
                    f"surplus: {target} candidates were already taken by other workers"
                    if before >= target
                    else "surplus: the grid is exhausted"
                )
                study._storage.set_trial_user_attr(tid, "failure", why)
                study._storage.set_trial_user_attr(tid, "failure_kind", "surplus")
                study.tell(trial, state=TrialState.FAIL)
                if queued:
                    retry_trial(study, study._storage.get_trial(tid))
                result.reason = why
                break
        result.ran += 1
        values: Any = None
        state = TrialState.COMPLETE
        try:
            with heartbeat(study, tid, hb_interval):
                values = execute_trial(
                    trial,
                    cfg,
                    handle.space,
                    train_fn=train_fn,
                    artifact_store=store,
                    adapters_dir=adapters_dir,
                    best_value=p.best,
                    progress=progress,
                )
            errors_in_a_row = 0
        except optuna.TrialPruned as err:
            state = TrialState.PRUNED
            trial.set_user_attr("pruned", str(err))
            errors_in_a_row = 0
        except TrialFailed as err:
            state = TrialState.FAIL
            trial.set_user_attr("failure", str(err))
            trial.set_user_attr("failure_kind", err.kind)
            log(f"Trial {trial.number} failed: {err}")
            errors_in_a_row = 0
        except KeyboardInterrupt:
            previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
            try:
                reason = "interrupted: Ctrl-C (SIGINT) during the trial"
                trial.set_user_attr("failure", reason)
                trial.set_user_attr("failure_kind", "interrupted")
                study.tell(trial, state=TrialState.FAIL)
                retry_trial(study, study._storage.get_trial(tid))
            finally:
                signal.signal(signal.SIGINT, previous)
            raise StudyInterrupted(
                f"Trial {trial.number} was recorded as FAIL (interrupted) and queued again.",
                trial.number,
            ) from None
        except MetricMissing as err:
            trial.set_user_attr("failure", f"config: {err}")
            trial.set_user_attr("failure_kind", "config")
            study.tell(trial, state=TrialState.FAIL)
            retry_trial(study, study._storage.get_trial(tid))
            raise
        except Exception as err:
            state = TrialState.FAIL
            msg = f"error: {type(err).__name__}: {err}"
            trial.set_user_attr("failure", msg)
            trial.set_user_attr("failure_kind", "error")
            log(f"Trial {trial.number} raised {msg}")
            errors_in_a_row += 1
            if errors_in_a_row >= MAX_CONSECUTIVE_ERRORS:
                study.tell(trial, state=state)
                raise RuntimeError(
                    f"{MAX_CONSECUTIVE_ERRORS} trials in a row raised an error (last: {msg}); "
                    "this looks systematic, so the study stops. The trials keep the errors in "
                    "user_attrs['failure']."
                ) from err
        if state == TrialState.COMPLETE:
            study.tell(trial, values)
            result.completed += 1
        else:
            study.tell(trial, state=state)
            result.pruned += state == TrialState.PRUNED
            result.failed += state == TrialState.FAIL
        if on_trial is not None:
            on_trial(study._storage.get_trial(tid), progress_of(study, cfg))
    return result
