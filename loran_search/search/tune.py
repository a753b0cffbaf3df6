"""Fair comparisons (issue 21): every arm the confirmation takes is tuned over one grid first.

**Why.** A non-linearity acts as a step-size multiplier: with AdamW the update of ``ΔW =
s·f(B·A)`` scales with ``f′(P)`` (``swish``: ``f′(0) = ½``). Comparing every arm at one learning
rate mixes "this shape helps" with "this arm happened to get a better effective step". With
``study.tune`` each arm is compared at its own best setting of the same grid: equal budget by
construction.

**The grid.** ``study.tune`` maps ``training.<key>`` (a numeric ``training:`` key, e.g.
``training.learning_rate``) and ``adapter.alpha`` to a list of values or a range ``{low, high,
log, num}`` (read by :func:`loran_search.search.space.parse_dim`, the parser of
``search.params``). The grid is the Cartesian product of the keys' values, in the order written
(:meth:`TuneSetup.points`).

**The arms** are those :func:`loran_search.search.confirm.plan_confirmation` picks (the top-k
configurations and the identity baseline at each of their ranks; a peer method's configuration
when it is among the top-k). Each is trained at every grid point on ``study.seeds`` and
evaluated on ``task.eval_split`` (the search split): one trial per (arm, point), role ``tune``,
with the arm's params, the point in the user attr :data:`loran_search.record.TUNED`, the arm's
confirmation key in :data:`~loran_search.record.TUNE_ARM` and a queue key
``tune|<arm key>|<point as sorted JSON>`` in :data:`~loran_search.record.TUNE_KEY`.

**Exactly once** as the confirmation: a key is queued only if no trial carries it yet; a taken
tune trial whose key a lower-numbered queued or running trial, or a complete one, stands for is
recorded FAIL ``surplus`` (the twin rule of :mod:`loran_search.search.keys`); retries keep the
three attrs; the samplers never see tune trials (:func:`is_hidden`).

**The choice.** An arm's best point is the COMPLETE tune trial of that arm with the best value
(direction-aware; a tie goes to the earlier grid point); diverged points are results, never
chosen. The confirmation trial of the arm carries that point in ``tuned`` and trains with it
(:func:`apply_tuned`). While a tune trial of an arm failed with an error (retried when a worker
starts), the confirmation is not queued: it would confirm a partly tuned arm.

**Changes.** The grid the study's tune and confirmation trials ran with is stored in the study
attr :data:`loran_search.record.STUDY_TUNE` (``{"grid": …}``, ``None`` without tuning); another
grid is refused once tune or confirmation trials exist (:func:`check_stored_tune`).

**The baseline is never pinned** (item 3 of the issue): ``search.training`` (candidates searched
over training values while the baseline keeps one) with ``study.baseline`` on is refused by
:func:`check_tune`, with the fix: move the keys to ``study.tune``.
"""

from __future__ import annotations

import itertools
import json
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from loran_search import record as R
from loran_search.errors import LoranSearchError
from loran_search.search.keys import carried, enqueue_new, point_key, tune_key, tune_key_of
from loran_search.words import count

if TYPE_CHECKING:
    from optuna.trial import FrozenTrial

    from loran_search.config import Context, StudyConfig
    from loran_search.search.space import SearchSpace
    from loran_search.search.types import Dim, TrialConfig

ADAPTER_KEYS = ("alpha",)
"""``adapter.<key>`` that ``study.tune`` may tune."""
NORMALIZE_CHOICES = ("slope",)


class TuneMismatch(LoranSearchError):
    """The study's tune or confirmation trials ran with another ``study.tune`` (exit 2)."""


def tunable_keys() -> list[str]:
    """Every key ``study.tune`` accepts: the numeric ``training:`` keys and ``adapter.alpha``."""
    from dataclasses import fields

    from loran_search.config import TrainingSection, training_key_kind

    out = [
        f"training.{f.name}"
        for f in fields(TrainingSection)
        if f.name != "threads" and training_key_kind(f.name) is not None
    ]
    return [*out, *(f"adapter.{k}" for k in ADAPTER_KEYS)]


def parse_tune_dim(key: str, raw: Any) -> Dim:
    """One ``study.tune`` entry as a grid dimension (``SpaceError`` when it is unusable)."""
    from loran_search.config import training_key_kind
    from loran_search.search.space import parse_dim
    from loran_search.search.types import SpaceError, grid_needs_finite_message

    section, _, name = key.partition(".")
    integer = section == "training" and training_key_kind(name) is int
    dim = parse_dim(key, raw, None, integer=integer)
    if not dim.finite:
        raise SpaceError(grid_needs_finite_message(key))
    values = dim.grid_values()
    if section == "adapter" or name == "learning_rate":
        bad = [v for v in values if not v > 0]
        if bad:
            raise SpaceError(f"Every value of '{key}' must be > 0, but the grid has {bad}.")
    return dim


@dataclass(frozen=True)
class TuneSetup:
    """``study.tune`` resolved: ``{key: grid values}`` in the order written."""

    grid: tuple[tuple[str, tuple[Any, ...]], ...]

    @classmethod
    def from_raw(cls, raw: Mapping[str, Any] | None) -> TuneSetup | None:
        """From the YAML mapping (``None``/empty: no tuning). Raises ``SpaceError``."""
        if not raw:
            return None
        return cls(
            tuple((str(k), tuple(parse_tune_dim(str(k), v).grid_values())) for k, v in raw.items())
        )

    def to_dict(self) -> dict[str, list[Any]]:
        """``{key: [values]}`` (stored in the study attr)."""
        return {k: list(v) for k, v in self.grid}

    def points(self) -> list[dict[str, Any]]:
        """Every grid point ``{key: value}``: the product of the keys' values, first key slowest."""
        keys = [k for k, _ in self.grid]
        return [dict(zip(keys, combo, strict=True)) for combo in itertools.product(*self.values)]

    @property
    def values(self) -> list[tuple[Any, ...]]:
        """The values of each key."""
        return [v for _, v in self.grid]

    def describe(self) -> str:
        """``4 learning rates`` / ``6 points (3 learning_rate × 2 alpha)``."""
        if len(self.grid) == 1:
            key, vals = self.grid[0]
            name = key.partition(".")[2].replace("_", " ")
            return count(len(vals), name)
        sizes = " × ".join(f"{len(v)} {k.partition('.')[2]}" for k, v in self.grid)
        return f"{len(self.points())} points ({sizes})"


def tune_setup(cfg: StudyConfig) -> TuneSetup | None:
    """The study's tuning grid (``None`` without ``study.tune``)."""
    return TuneSetup.from_raw(getattr(cfg.study, "tune", None))


# ------------------------------------------------------------------------------ validation


def check_tune(search: dict[str, Any], sections: dict[str, dict[str, Any]], ctx: Context) -> None:
    """Check ``study.tune``, ``adapter.normalize`` and refuse a pinned baseline.

    Called by :func:`loran_search.search.validate.check_search_section` once ``search:`` is
    checked (``sections`` holds ``study``, ``adapter`` …).
    """
    from loran_search.config import did_you_mean, unknown_key_problems
    from loran_search.search.types import SpaceError

    study = sections.get("study", {})
    raw = study.get("tune")
    if raw is not None and not isinstance(raw, dict):
        ctx.err(
            ("study", "tune"),
            f"`tune` must be a mapping of training.<key> / adapter.alpha to values, but got "
            f"{raw!r}; e.g. tune: {{training.learning_rate: [3.0e-4, 1.0e-3, 3.0e-3]}}.",
        )
        raw = None
    keys = tunable_keys()
    hint = "It tunes training.<key> (a numeric training: key) and adapter.alpha."
    ctx.err_each(
        unknown_key_problems(raw or {}, keys, "in `study.tune:`", ("study", "tune"), hint=hint)
    )
    for key, value in (raw or {}).items():
        path = ("study", "tune", key)
        if key not in keys:
            continue
        try:
            parse_tune_dim(key, value)
        except SpaceError as err:
            ctx.err(path, str(err))
    if raw is not None and not raw:
        ctx.err(
            ("study", "tune"),
            "`tune` is empty; give at least one key (tune: {training.learning_rate: [3.0e-4, "
            "1.0e-3, 3.0e-3]}) or write tune: null.",
        )
    training = search.get("training") or {}
    if isinstance(training, dict) and training and study.get("baseline", True):
        keys_ = ", ".join(f"training.{k}" for k in training)
        ctx.err(
            ("search", "training"),
            f"search.training searches {keys_} for the candidates while the baseline is "
            "trained at one value: a comparison biased toward the candidates by design. Tune "
            "every confirmed arm, baseline included, over the same grid instead: move the "
            f"entries to study.tune (study: {{tune: {{{keys_}: [...]}}}}), or set "
            "study.baseline: false.",
        )
    normalize = sections.get("adapter", {}).get("normalize")
    if normalize is not None:
        if normalize not in NORMALIZE_CHOICES:
            ctx.err(
                ("adapter", "normalize"),
                f"`normalize` must be slope or null, but got {normalize!r}."
                f"{did_you_mean(normalize, NORMALIZE_CHOICES)}",
            )
        else:
            _check_slopes(search, ctx)


def _check_slopes(search: dict[str, Any], ctx: Context) -> None:
    """``adapter.normalize: slope``: refuse every listed activation with ``f′(0) = 0``."""
    names = search.get("activations") or []
    if not isinstance(names, list):
        return
    from loran_search.activations import resolve_names

    try:
        resolved = resolve_names([n for n in names if isinstance(n, str)])
    except Exception:  # reported by the search check
        return
    from loran_search.adapters.normalize import SlopeError, slope_at_zero

    for name in resolved:
        try:
            slope_at_zero(name, {})
        except SlopeError as err:
            ctx.err(("adapter", "normalize"), str(err))
        except Exception:  # an activation that cannot be built here is reported elsewhere
            continue


# ------------------------------------------------------------------------------ the plan


def is_hidden(t: Any) -> bool:
    """A trial the samplers must not see: a confirmation or a tune trial."""
    return t.user_attrs.get(R.ROLE) in (*R.CONFIRM_ROLES, R.ROLE_TUNE)


@dataclass(frozen=True)
class PlannedTune:
    """One tune trial to queue: the arm's params and role, the grid point, the keys."""

    params: dict[str, Any]
    arm: str
    arm_role: str
    point: dict[str, Any]
    key: str


def plan_tuning(
    trials: Sequence[FrozenTrial],
    cfg: StudyConfig,
    space: SearchSpace,
    tune: TuneSetup,
    setup: Any | None = None,
) -> tuple[list[Any], list[PlannedTune]]:
    """The arms (the confirmation's plan) and every (arm, grid point) tune trial.

    ``setup`` is the confirmation setup in use (``--top-k`` included); default: the study's
    ``study.confirm`` (its default when it is ``false``).
    """
    from loran_search.search.confirm import confirm_setup, plan_confirmation

    if setup is None:
        setup = confirm_setup(cfg, force=True)
    assert setup is not None
    arms = plan_confirmation(trials, cfg, space, setup)
    out = [
        PlannedTune(dict(a.params), a.key, a.role, point, tune_key(a.key, point))
        for a in arms
        for point in tune.points()
    ]
    return arms, out


def best_points(
    trials: Sequence[FrozenTrial], cfg: StudyConfig, tune: TuneSetup
) -> dict[str, dict[str, Any]]:
    """``{arm key: its best grid point}`` from the COMPLETE tune trials with a finite value."""
    from optuna.trial import TrialState

    from loran_search.search.progress import study_directions

    maximize = study_directions(cfg)[0] == "maximize"
    order = {point_key(p): i for i, p in enumerate(tune.points())}
    best: dict[str, tuple[float, int, dict[str, Any]]] = {}
    for t in trials:
        if tune_key_of(t) is None or t.state != TrialState.COMPLETE or not t.values:
            continue
        value = float(t.values[0])
        point = t.user_attrs.get(R.TUNED)
        arm = t.user_attrs.get(R.TUNE_ARM)
        if not math.isfinite(value) or not isinstance(point, dict) or not isinstance(arm, str):
            continue
        rank = order.get(point_key(point))
        if rank is None:  # a point of another grid (refused before it gets here)
            continue
        score = -value if maximize else value
        if arm not in best or (score, rank) < (best[arm][0], best[arm][1]):
            best[arm] = (score, rank, dict(point))
    return {arm: point for arm, (_, _, point) in best.items()}


def response_table(trials: Sequence[FrozenTrial]) -> list[dict[str, Any]]:
    """One row per COMPLETE tune trial: ``{arm, arm_role, point, value}`` (for the figure)."""
    from optuna.trial import TrialState

    rows = []
    for t in trials:
        if tune_key_of(t) is None or t.state != TrialState.COMPLETE or not t.values:
            continue
        rows.append(
            {
                "trial": t.number,
                "arm": t.user_attrs.get(R.TUNE_ARM),
                "point": dict(t.user_attrs.get(R.TUNED) or {}),
                "value": float(t.values[0]),
            }
        )
    return rows


# ------------------------------------------------------------------------------ training


def apply_tuned(
    cfg: StudyConfig, tc: TrialConfig, tuned: Mapping[str, Any]
) -> tuple[StudyConfig, TrialConfig]:
    """The config and trial config a tune/confirmation trial trains with at point ``tuned``.

    ``training.<key>`` goes into the run's ``training_overrides``; ``adapter.alpha`` replaces
    the adapter section's value (the training function reads ``cfg.adapter.alpha``).
    """
    overrides = dict(tc.training_overrides)
    adapter = cfg.adapter
    for key, value in tuned.items():
        section, _, name = str(key).partition(".")
        if section == "training":
            overrides[name] = value
        elif section == "adapter":
            adapter = replace(adapter, **{name: value})
        else:
            raise TuneMismatch(f"A trial is tuned at {key}={value!r}, which is not tunable.")
    return replace(cfg, adapter=adapter), replace(tc, training_overrides=overrides)


# ------------------------------------------------------------------------------ changes


def check_stored_tune(
    stored: Any,
    setup: TuneSetup | None,
    trials: Sequence[FrozenTrial],
    *,
    study: str,
    where: str,
) -> None:
    """Refuse another grid than the study's tune/confirmation trials ran with.

    Args:
        stored: The study attr :data:`loran_search.record.STUDY_TUNE` (``None``: never set).
        setup: The tuning asked for now (``None``: no tuning).
        trials: The study's trials.
        study: The study's name.
        where: Where the setup comes from, for the message.

    Raises:
        TuneMismatch: Tune or confirmation trials exist and the grid differs.
    """
    if not isinstance(stored, Mapping):
        return
    old = stored.get("grid")
    new = setup.to_dict() if setup is not None else None
    if point_key({"g": old}) == point_key({"g": new}):
        return
    n = sum(1 for t in trials if t.user_attrs.get(R.ROLE) in (R.ROLE_TUNE, *R.CONFIRM_ROLES))
    if n == 0:
        return
    shown_old = json.dumps(old) if old else "no tuning"
    shown_new = json.dumps(new) if new else "no tuning (--no-tune or no study.tune)"
    raise TuneMismatch(
        f"Study '{study}' already has {count(n, 'tune or confirmation trial')} run with "
        f"study.tune = "
        f"{shown_old}; {where} asks for {shown_new}. Arms tuned over another grid would not be "
        "comparable with those.",
        fix=f"Restore study.tune to {shown_old} (or drop --no-tune), or tune in a new study "
        "(change study.name, e.g. --set study.name=NAME-tuned).",
    )


# ------------------------------------------------------------------------------ the phase


def tune_phase(worker: Any, tune: TuneSetup, *, wait: bool) -> tuple[str, bool]:
    """Wait for the search, queue the tuning, run queued tune trials until all are done.

    Args:
        worker: The :class:`loran_search.search.workers._Worker` running the study.
        tune: The grid.
        wait: Wait for search trials running on other workers first (``False``: ``loran-search
            tune``, which tunes the arms of what is complete now).

    Returns:
        ``(why the phase ended, whether every tune trial is COMPLETE or a configuration
        failure)``: the confirmation may use the tuning only in the second case.
    """
    if wait:
        worker.wait_for_search()
    trials = worker.study.get_trials(deepcopy=False)
    with worker.signals.held():
        worker.result.tune_queued = queue_tuning(worker, tune, trials)
    said = False
    while running := worker.run_queued((R.ROLE_TUNE,), "tune_ran"):
        # the confirmation needs their values: wait (a dead one is recovered)
        if not said:
            worker.log(f"Tuning: waiting for {count(running, 'tune trial')} on other workers.")
            said = True
        time.sleep(worker.poll)
    return tuning_state(worker.study.get_trials(deepcopy=False))


def tuning_state(trials: Sequence[FrozenTrial]) -> tuple[str, bool]:
    """Why the tuning is (not) finished: every key COMPLETE or a configuration failure."""
    from optuna.trial import TrialState

    done: dict[str, bool] = {}
    for t in trials:
        key = tune_key_of(t)
        if key is None:
            continue
        ok = t.state == TrialState.COMPLETE or (
            t.state == TrialState.FAIL
            and t.user_attrs.get(R.FAILURE_KIND) in R.CONFIGURATION_FAILURES
        )
        done[key] = done.get(key, False) or ok
    missing = sum(1 for ok in done.values() if not ok)
    if missing:
        return (
            f"{count(missing, 'tune trial')} failed with an error; run the same command again "
            "to retry (the confirmation waits for a complete tuning)",
            False,
        )
    return f"every tune trial is done ({len(done)})", True


def store_grid(worker: Any, tune: TuneSetup | None, trials: Sequence[FrozenTrial]) -> None:
    """Refuse another grid than the study's tune/confirmation trials ran with; store this one.

    The grid is stored in the study attr ``loran.tune`` (``{"grid": None}`` without tuning).

    Raises:
        TuneMismatch: The study's tune/confirmation trials ran with another grid.
    """
    check_stored_tune(
        worker.study.user_attrs.get(R.STUDY_TUNE),
        tune,
        trials,
        study=worker.cfg.study.name,
        where=worker.tune_source,
    )
    stored = {"grid": tune.to_dict() if tune is not None else None}
    if worker.study.user_attrs.get(R.STUDY_TUNE) != stored:
        worker.study.set_user_attr(R.STUDY_TUNE, stored)


def queue_tuning(worker: Any, tune: TuneSetup, trials: Sequence[FrozenTrial]) -> int:
    """Store the grid, print the budget, queue every (arm, point) no trial has the key of."""
    cfg = worker.cfg
    store_grid(worker, tune, trials)
    arms, plan = plan_tuning(trials, cfg, worker.handle.space, tune, worker.confirm_setup)
    if not arms:
        worker.log("Nothing to tune: no candidate trial completed with a finite value.")
        return 0
    attrs = R.to_user_attrs(role=R.ROLE_TUNE, eval_split=cfg.task.eval_split)
    planned = (
        (i.key, i.params, {**attrs, R.TUNED: i.point, R.TUNE_ARM: i.arm, R.TUNE_KEY: i.key})
        for i in plan
    )
    queued = enqueue_new(worker.study, planned, carried(trials, tune_key_of))
    worker.log(
        f"Tuning: each of {count(len(arms), 'arm')} tuned over {tune.describe()}: "
        f"{count(len(plan), 'run')} (× {count(len(cfg.study.seeds), 'seed')}, evaluated on "
        f"'{cfg.task.eval_split}'); "
        f"{queued} queued now."
    )
    return queued


def confirmation_points(worker: Any, plan: Sequence[Any], trials: Sequence[FrozenTrial]) -> dict:
    """``{confirmation key: the point it trains with}``; stores the grid the study confirms with.

    Without tuning every point is ``{}`` (and ``loran.tune`` records ``{"grid": None}``).

    Raises:
        TuneMismatch: The study's tune/confirmation trials ran with another grid.
    """
    tune = worker.tune_setup
    cfg = worker.cfg
    store_grid(worker, tune, trials)
    if tune is None:
        return {item.key: {} for item in plan}
    best = best_points(trials, cfg, tune)
    out = {}
    for item in plan:
        point = best.get(item.key)
        if point is None:
            worker.log(
                f"Tuning: no grid point of {item.role} {item.params} completed; it is confirmed "
                "at the study's fixed settings."
            )
            point = {}
        out[item.key] = point
    chosen = "; ".join(
        f"{i.params.get('activation', i.params.get(R.PARAM_METHOD, '?'))} r{i.params.get('rank')}"
        f" → {out[i.key] or 'fixed'}"
        for i in plan
    )
    worker.log(f"Tuning: each arm is confirmed at its best point on the search split: {chosen}.")
    return out
