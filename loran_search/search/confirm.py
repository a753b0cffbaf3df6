"""The confirmation phase: what to retrain on held-out seeds and split, and its queue keys.

After the search, the ``top_k`` best *distinct* candidate configurations and the identity
baseline at each of their ranks are retrained on ``study.confirm.seeds`` (disjoint from
``study.seeds``) and evaluated on ``study.confirm.split`` (never ``task.eval_split``), as trials
of the same study: one trial per configuration holding all confirmation seeds, role
``confirm`` / ``confirm_baseline``, ``eval_split`` = the confirmation split and ``confirm_of`` =
the numbers of the search trials of that configuration (:mod:`loran_search.record`).

**Choosing.** Candidates are the COMPLETE ``candidate`` trials with a finite first value (the
study metric). Trials with the same params are one configuration, ranked by its best value
(direction-aware); the first ``top_k`` configurations are confirmed. The baseline of a rank is
confirmed when ``study.baseline`` is on (its params are those of the search baseline).

**Exactly once.** Every confirmation trial carries a key, ``<role>|<params as sorted JSON>``
(:func:`~loran_search.search.keys.confirm_key`, user attr
:data:`loran_search.record.CONFIRM_KEY`, kept by retries). A key is queued only if no trial of
the study carries it yet (:func:`queue_confirmation`), so a re-run queues nothing twice; two
workers that queue at the same instant may both queue a key, and then the worker that takes a
trial records it FAIL ``surplus`` when a lower-numbered trial of the same key is queued or
running, or one of that key is complete (the twin rule of :mod:`loran_search.search.keys`): of
each key exactly one trial completes.

**The setup** ``{top_k, seeds, split}`` is stored in the study attr
:data:`loran_search.record.STUDY_CONFIRM` when the confirmation is first queued; it is not part
of the search fingerprint, so confirmation can be added to an existing study. Once confirmation
trials exist, other ``seeds`` or another ``split`` are refused (:func:`check_stored_setup`);
a larger ``top_k`` queues the further configurations.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from loran_search import record as R
from loran_search.errors import LoranSearchError
from loran_search.search.keys import (
    carried,
    confirm_key,
    confirm_key_of,
    enqueue_new,
    point_key,
)
from loran_search.search.progress import role_of, study_directions
from loran_search.search.types import ConfirmSetup
from loran_search.words import count, plural

if TYPE_CHECKING:
    from optuna.trial import FrozenTrial

    from loran_search.config import StudyConfig
    from loran_search.search.space import SearchSpace

CONFIRM_KEYS = ("top_k", "seeds", "split")


class ConfirmMismatch(LoranSearchError):
    """The study's confirmation trials were run with other seeds or another split (exit 2)."""


def default_confirm() -> dict[str, Any]:
    """The default ``study.confirm`` (the one place it is spelled: ``StudySection``)."""
    from loran_search.config import StudySection

    value = StudySection().confirm
    assert isinstance(value, dict)
    return dict(value)


def resolve_confirm(value: Any) -> dict[str, Any] | bool:
    """``study.confirm`` as written → ``False`` or the full mapping (defaults filled in)."""
    if value is False:
        return False
    merged = default_confirm()
    if isinstance(value, Mapping):
        merged.update({str(k): v for k, v in value.items()})
    return merged


def confirm_setup(
    cfg: StudyConfig,
    *,
    top_k: int | None = None,
    seeds: Sequence[int] | None = None,
    split: str | None = None,
    force: bool = False,
) -> ConfirmSetup | None:
    """The study's confirmation setup, with command-line overrides; ``None`` when off.

    Args:
        cfg: The study config (``study.confirm``).
        top_k: ``--top-k``.
        seeds: ``--seeds``.
        split: A split override.
        force: Confirm even when ``study.confirm`` is ``false`` (``loran-search confirm``):
            the default setup then applies.
    """
    raw = cfg.study.confirm
    if raw is False and not force:
        return None
    data = resolve_confirm(raw if raw is not False else True)
    assert isinstance(data, dict)
    if top_k is not None:
        data["top_k"] = top_k
    if seeds is not None:
        data["seeds"] = list(seeds)
    if split is not None:
        data["split"] = split
    return ConfirmSetup.from_dict(data)


def confirm_problems(
    data: Mapping[str, Any],
    *,
    study_seeds: Iterable[Any],
    eval_split: Any | None,
    train_split: Any | None = None,
) -> list[tuple[tuple[Any, ...], str]]:
    """What is wrong with a resolved ``study.confirm`` mapping, as ``(key path, message)``.

    The key path is below ``study.confirm`` (``("seeds", 1)``); ``eval_split=None`` skips the
    check against ``task.eval_split`` and ``task.train_split`` (:func:`split_problem`).
    """
    from loran_search.config import SEED_MAX, unknown_key_problems

    hint = "Or write `confirm: false`."
    out = unknown_key_problems(data, CONFIRM_KEYS, "in `study.confirm:`", hint=hint)
    top_k = data.get("top_k")
    if isinstance(top_k, bool) or not isinstance(top_k, int):
        out.append((("top_k",), f"`top_k` must be an integer ≥ 1, but got {top_k!r}."))
    elif top_k < 1:
        out.append(
            (
                ("top_k",),
                f"`top_k` must be ≥ 1, but got {top_k}; confirm at least the best "
                "configuration, or write `confirm: false` to skip the confirmation.",
            )
        )
    seeds = data.get("seeds")
    if isinstance(seeds, int) and not isinstance(seeds, bool):
        seeds = [seeds]
    if not isinstance(seeds, list) or not all(
        isinstance(s, int) and not isinstance(s, bool) for s in seeds
    ):
        out.append((("seeds",), f"`seeds` must be a list of integers, but got {seeds!r}."))
    elif not seeds:
        out.append((("seeds",), "`seeds` is empty; give at least one seed, e.g. [100, 101, 102]."))
    else:
        if len(set(seeds)) != len(seeds):
            out.append((("seeds",), f"`seeds` repeats a seed: {seeds}."))
        for i, seed in enumerate(seeds):
            if not 0 <= seed <= SEED_MAX:
                out.append(
                    (("seeds", i), f"Seed {seed} is outside 0 … 2³² − 1; use a smaller one.")
                )
        shared = sorted(set(seeds) & {s for s in study_seeds if isinstance(s, int)})
        if shared:
            out.append(
                (
                    ("seeds",),
                    f"`study.confirm.seeds` shares {plural(len(shared), 'seed')} {shared} with "
                    "`study.seeds`; the "
                    "confirmation must retrain on seeds the search never saw. Choose disjoint "
                    "seeds, e.g. [100, 101, 102].",
                )
            )
    split = data.get("split")
    if not isinstance(split, str) or not split.strip():
        out.append((("split",), f"`split` must be a split name (e.g. test), but got {split!r}."))
    elif eval_split is not None and (problem := split_problem(split, eval_split, train_split)):
        out.append((("split",), problem))
    return out


def split_problem(split: Any, eval_split: Any, train_split: Any = None) -> str | None:
    """Why the confirmation split cannot be ``split``, or ``None``.

    It must differ from ``task.eval_split`` (the search's split) and from ``task.train_split``
    (the training data), compared after resolving the aliases ``validation``/``valid``/``dev``
    → ``val`` and ``eval`` → ``test``.
    """
    from loran_search.tasks.data import SPLIT_ALIASES

    def same(a: Any, b: Any) -> bool:
        return a is not None and SPLIT_ALIASES.get(a, a) == SPLIT_ALIASES.get(b, b)

    if same(split, train_split):
        return (
            f"`study.confirm.split` ({split!r}) is the training split (`task.train_split` = "
            f"{train_split!r}): the confirmation would evaluate on the data it trained on, "
            "which is not held out. Set study.confirm.split: test (the default), or write "
            "study.confirm: false."
        )
    if not same(split, eval_split):
        return None
    return (
        f"`study.confirm.split` ({split!r}) is the split the search evaluates on "
        f"(`task.eval_split` = {eval_split!r}), so the confirmation would not be held out. Set "
        "task.eval_split: val and study.confirm.split: test (the defaults), or another "
        "study.confirm.split, or write study.confirm: false."
    )


# ------------------------------------------------------------------------------ the plan


@dataclass(frozen=True)
class Planned:
    """One confirmation trial to queue.

    Attributes:
        role: ``confirm`` or ``confirm_baseline``.
        params: The configuration's trial params (queued as fixed params).
        confirm_of: The search trials of that configuration.
        key: Its queue key.
        value: The search value it was chosen by (``None`` for a baseline).
    """

    role: str
    params: dict[str, Any]
    confirm_of: tuple[int, ...]
    key: str
    value: float | None = None


def plan_confirmation(
    trials: Sequence[FrozenTrial],
    cfg: StudyConfig,
    space: SearchSpace,
    setup: ConfirmSetup,
) -> list[Planned]:
    """Every confirmation trial of the setup (queued or not), baselines first.

    Args:
        trials: The study's trials.
        cfg: The study config (direction, baseline).
        space: The search space (the baseline's params).
        setup: The confirmation setup (``top_k``).
    """
    from optuna.trial import TrialState

    maximize = study_directions(cfg)[0] == "maximize"
    groups: dict[str, list[FrozenTrial]] = {}
    for t in trials:
        if role_of(t) != R.ROLE_CANDIDATE or t.state != TrialState.COMPLETE or not t.values:
            continue
        if not math.isfinite(float(t.values[0])):
            continue
        if R.DUPLICATE_OF in t.user_attrs:  # a repeat form proposal: its twin stands for it
            continue
        groups.setdefault(point_key(t.params), []).append(t)

    def best(ts: list[FrozenTrial]) -> float:
        values = [float(t.values[0]) for t in ts]
        return max(values) if maximize else min(values)

    ranked = sorted(
        groups.values(),
        key=lambda ts: (-best(ts) if maximize else best(ts), min(t.number for t in ts)),
    )[: setup.top_k]
    out: list[Planned] = []
    ranks: list[int] = []
    for ts in ranked:
        rank = int(ts[0].params.get(R.PARAM_RANK, 0))
        if rank not in ranks:
            ranks.append(rank)
    if cfg.study.baseline:
        for rank in ranks:
            params = space.baseline_params(rank)
            search = tuple(
                t.number
                for t in trials
                if role_of(t) == R.ROLE_BASELINE
                and t.state == TrialState.COMPLETE
                and point_key(t.params) == point_key(params)
            )
            key = confirm_key(R.ROLE_CONFIRM_BASELINE, params)
            out.append(Planned(R.ROLE_CONFIRM_BASELINE, params, search, key))
    for ts in ranked:
        params = dict(ts[0].params)
        numbers = tuple(sorted(t.number for t in ts))
        key = confirm_key(R.ROLE_CONFIRM, params)
        out.append(Planned(R.ROLE_CONFIRM, params, numbers, key, best(ts)))
    return out


def check_stored_setup(
    stored: Any, setup: ConfirmSetup, trials: Sequence[FrozenTrial], *, study: str, where: str
) -> None:
    """Refuse other seeds or another split than the confirmation trials that exist were run with.

    Args:
        stored: The study attr :data:`loran_search.record.STUDY_CONFIRM` (``None`` if never
            set).
        setup: The setup asked for now.
        trials: The study's trials.
        study: The study's name, for the message.
        where: Where the setup comes from (``FILE study.confirm``, ``--seeds``), for the message.

    Raises:
        ConfirmMismatch: Confirmation trials exist and ``seeds`` or ``split`` differ.
    """
    if not isinstance(stored, Mapping):
        return
    try:
        old = ConfirmSetup.from_dict(stored)
    except (KeyError, TypeError, ValueError):
        return
    if (old.seeds, old.split) == (setup.seeds, setup.split):
        return
    n = sum(1 for t in trials if confirm_key_of(t) is not None)
    if n == 0:
        return
    changes = []
    if old.seeds != setup.seeds:
        changes.append(f"seeds: {list(old.seeds)} → {list(setup.seeds)}")
    if old.split != setup.split:
        changes.append(f"split: {old.split!r} → {setup.split!r}")
    raise ConfirmMismatch(
        f"Study '{study}' already has {count(n, 'confirmation trial')} run with seeds "
        f"{list(old.seeds)} on split {old.split!r}; {where} asks for {'; '.join(changes)}. "
        "New confirmation trials would not be comparable with those.",
        fix=f"Restore study.confirm to {old.to_dict()} (or drop --seeds), or confirm in a new "
        "study (change study.name).",
    )


# ------------------------------------------------------------------------------ the queue


def queue_confirmation(
    worker: Any,
    setup: ConfirmSetup,
    trials: Sequence[FrozenTrial],
    points_of: Callable[[list[Planned]], Mapping[str, Any]],
) -> int:
    """Store the setup and queue every planned confirmation trial no trial has the key of.

    Args:
        worker: The :class:`loran_search.search.workers._Worker` running the study.
        setup: The confirmation setup.
        trials: The study's trials.
        points_of: ``{key: the tuned point it trains with}`` of the plan
            (:func:`loran_search.search.tune.confirmation_points`).

    Returns:
        How many trials were queued.

    Raises:
        ConfirmMismatch: Confirmation trials exist with other seeds or another split.
    """
    study = worker.study
    check_stored_setup(
        study.user_attrs.get(R.STUDY_CONFIRM),
        setup,
        trials,
        study=worker.cfg.study.name,
        where=worker.confirm_source,
    )
    if study.user_attrs.get(R.STUDY_CONFIRM) != setup.to_dict():
        study.set_user_attr(R.STUDY_CONFIRM, setup.to_dict())
    plan = plan_confirmation(trials, worker.cfg, worker.handle.space, setup)
    worker.result.confirm_planned = len(plan)
    points = points_of(plan)
    attrs = {
        item.key: {
            **R.to_user_attrs(
                role=item.role,
                confirm_key=item.key,
                confirm_of=list(item.confirm_of),
                eval_split=setup.split,
            ),
            R.TUNED: points.get(item.key, {}),
        }
        for item in plan
    }
    planned = ((item.key, item.params, attrs[item.key]) for item in plan)
    queued = enqueue_new(study, planned, carried(trials, confirm_key_of))
    if not plan:
        worker.log("Nothing to confirm: no candidate trial completed with a finite value.")
    elif queued:
        n = sum(1 for i in plan if i.role == R.ROLE_CONFIRM)
        ranks = len({i.params.get(R.PARAM_RANK) for i in plan if i.role == R.ROLE_CONFIRM})
        fewer = f" (of top_k = {setup.top_k}: only {n} completed)" if n < setup.top_k else ""
        worker.log(
            f"Confirmation: queued {count(queued, 'trial')} — the top {n} "
            f"{plural(n, 'configuration')}{fewer} and the baseline at their "
            f"{plural(ranks, 'rank')}, on seeds {list(setup.seeds)}, evaluated on "
            f"'{setup.split}' (held out; the search used '{worker.cfg.task.eval_split}')."
        )
    return queued
