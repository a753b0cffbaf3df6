"""Is this a repeat? The keys that say when two trials stand for the same thing, and one twin rule.

**The keys.** Each is a string, equal for two trials exactly when they would measure the same
thing:

* the **point key** (:func:`point_key`): a trial's params as sorted JSON; the grid and the
  baselines are queued only where no trial of the study has the point (the role included);
* the **confirm key** (:func:`confirm_key`): ``<role>|<point key>`` of a confirmation trial,
  stored in :data:`loran_search.record.CONFIRM_KEY`;
* the **tune key** (:func:`tune_key`): ``tune|<arm's confirm key>|<grid point's point key>``,
  stored in :data:`loran_search.record.TUNE_KEY`;
* the **form key** (:func:`form_key`): rank, canonical formula, parameter values (12
  significant digits) and training overrides of a form proposal, stored in
  ``user_attrs["form"]["key"]``;
* the **retry key** (:func:`retry_key_of`): the trial a retry repeats, the last number of its
  :data:`loran_search.record.RETRY_HISTORY`.

**Queueing** (:func:`carried`, :func:`enqueue_new`): a key is queued only if no trial of the
study carries it, in any state, so running the same command again queues nothing twice.

**The twin rule** (:func:`twin`), one for every key. Two workers may still queue or propose
the same key at the same moment; a trial taken (or proposed) then asks whether another trial
of its key *answers for it*, its twin:

    the lowest-numbered *settled* trial of the key, else the *live* trial of the key that
    *came first*, if it came before this one.

What "settled", "live" and "came first" mean is the one thing a key decides (its
:class:`TwinRule`), and each follows from what the key's trials are:

============  =====================================  ==================  ==============
key           settled (its result is known)          live                came first
============  =====================================  ==================  ==============
retry         never: any copy repeats the parent     any state           lower number
confirm/tune  COMPLETE                               WAITING or RUNNING  lower number
form          COMPLETE, PRUNED, or a counted FAIL    RUNNING             started first
              that is not ``screened``
============  =====================================  ==================  ==============

Why they differ. A *retry*'s failed copy still stands for its parent (that copy gets its own
retry when a worker starts), so the second copy of a retry is surplus whatever became of the
first; a *confirm* or *tune* trial that FAILed does not answer its key, because the trial
asking may be its retry (a retry keeps the key). Confirm and tune trials are queued and taken
in number order, so the lower number came first; a *form* is a proposal ``ask()`` samples, whose
number says when it was created, not when it started, so the one that started first trains
(a later one waits for it, :mod:`loran_search.search.screening`), and its answers include
PRUNED and failed proposals because a form is answered with how its twin ended. The form key
counts only candidate trials that are not themselves answers (``duplicate_of``).

The issue's four "is this a repeat?" rules are these: the point key's is the queue-time check
above; the retry, confirm/tune and form rules became this one rule without changing a decision
(the form and retry rules answer with the same trial as before). The confirm/tune rule used
to answer with the lowest-numbered of the settled and the earlier live trials together; a
settled trial beside a lower-numbered live one would have had to run while that one was
already queued, which this very rule records as surplus, so both readings name the same trial
in every state a study can reach.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from loran_search import record as R
from loran_search.search._optuna import queued_params

if TYPE_CHECKING:
    import optuna
    from optuna.trial import FrozenTrial


# ------------------------------------------------------------------------------ the keys


def point_key(params: Mapping[str, Any]) -> str:
    """A trial's parameters as one comparable string (sorted JSON)."""
    return json.dumps(dict(params), sort_keys=True, default=str)


def confirm_key(role: str, params: Mapping[str, Any]) -> str:
    """The queue key of one confirmation trial: ``<role>|<params as sorted JSON>``."""
    return f"{role}|{point_key(params)}"


def confirm_key_of(t: FrozenTrial) -> str | None:
    """A trial's confirmation key (recorded, else rebuilt from its role and params)."""
    role = t.user_attrs.get(R.ROLE)
    if role not in R.CONFIRM_ROLES:
        return None
    key = t.user_attrs.get(R.CONFIRM_KEY)
    if isinstance(key, str) and key:
        return key
    return confirm_key(str(role), queued_params(t) or t.params)


def tune_key(arm: str, point: Mapping[str, Any]) -> str:
    """The queue key of one tune trial: ``tune|<arm's confirmation key>|<point as JSON>``."""
    return f"{R.ROLE_TUNE}|{arm}|{point_key(point)}"


def tune_key_of(t: FrozenTrial) -> str | None:
    """A tune trial's queue key (``None`` for any other trial)."""
    if t.user_attrs.get(R.ROLE) != R.ROLE_TUNE:
        return None
    key = t.user_attrs.get(R.TUNE_KEY)
    return key if isinstance(key, str) and key else None


def form_key(expr: str, values: Mapping[str, Any], rank: int, training: Mapping[str, Any]) -> str:
    """The key of a form proposal: rank, canonical formula, parameter values, training overrides.

    Values are rounded to 12 significant digits, so a value that went through a JSON round
    trip keys as the one that did not.
    """
    vals = {p: float(f"{float(v):.12g}") for p, v in sorted(values.items())}
    return json.dumps([int(rank), expr, vals, dict(sorted(training.items()))], default=str)


def form_key_of(t: FrozenTrial) -> str | None:
    """A candidate's form key (``None``: no form recorded, not a candidate, or an answer)."""
    form = t.user_attrs.get(R.FORM)
    if not isinstance(form, Mapping):
        return None
    if t.user_attrs.get(R.ROLE) != R.ROLE_CANDIDATE or R.DUPLICATE_OF in t.user_attrs:
        return None
    return form.get("key")


def retry_key_of(t: FrozenTrial) -> int | None:
    """The number of the trial a retry repeats (``None``: not a retry)."""
    history = t.system_attrs.get(R.RETRY_HISTORY) or []
    return history[-1] if history else None


def started(t: FrozenTrial) -> tuple[float, int]:
    """Who came first among proposals: the time it started running, then its number."""
    start = t.datetime_start.timestamp() if t.datetime_start is not None else math.inf
    return (start, t.number)


def _numbered(t: FrozenTrial) -> tuple[float, int]:
    return (0.0, t.number)


# ------------------------------------------------------------------------------ the twin rule


@dataclass(frozen=True)
class TwinRule:
    """What a key's trials are, for :func:`twin` (module doc).

    Attributes:
        key_of: A trial's key (``None``: the trial has none, it never answers).
        settled: Whether a trial of the key has a known result that answers for the key.
        live: Whether an unsettled trial of the key may still answer (it will end).
        order: Sorts the trials by who came first.
    """

    key_of: Callable[[FrozenTrial], Any]
    settled: Callable[[FrozenTrial], bool]
    live: Callable[[FrozenTrial], bool]
    order: Callable[[FrozenTrial], tuple[float, int]] = _numbered


def _state(t: FrozenTrial) -> str:
    return t.state.name


def _form_settled(t: FrozenTrial) -> bool:
    kind = t.user_attrs.get(R.FAILURE_KIND)
    return _state(t) in ("COMPLETE", "PRUNED") or (
        _state(t) == "FAIL" and kind in R.COUNTED_FAILURES and kind != R.FAIL_SCREENED
    )


RETRY = TwinRule(retry_key_of, settled=lambda t: False, live=lambda t: True)
CONFIRM = TwinRule(
    confirm_key_of,
    settled=lambda t: _state(t) == "COMPLETE",
    live=lambda t: _state(t) in ("WAITING", "RUNNING"),
)
TUNE = TwinRule(tune_key_of, settled=CONFIRM.settled, live=CONFIRM.live)
FORM = TwinRule(
    form_key_of, settled=_form_settled, live=lambda t: _state(t) == "RUNNING", order=started
)


def twin(
    trials: Iterable[FrozenTrial], me: FrozenTrial | int, key: Any, rule: TwinRule
) -> FrozenTrial | None:
    """The trial that answers for ``me`` (a trial, or its number) under ``key``, or ``None``.

    The lowest-numbered settled trial of the key, else the live one that came first, if it
    came before ``me`` (module doc); ``None`` also when ``key`` is ``None``.
    """
    if key is None:
        return None
    trials = list(trials)
    number = me if isinstance(me, int) else me.number
    if isinstance(me, int):
        found = next((t for t in trials if t.number == number), None)
        mine = rule.order(found) if found is not None else (math.inf, number)
    else:
        mine = rule.order(me)
    settled, earlier = [], []
    for t in trials:
        if t.number == number or rule.key_of(t) != key:
            continue
        if rule.settled(t):
            settled.append(t)
        elif rule.live(t) and rule.order(t) < mine:
            earlier.append(t)
    if settled:
        return min(settled, key=lambda t: t.number)
    return min(earlier, key=rule.order) if earlier else None


def duplicate_of(trials: Sequence[FrozenTrial], frozen: FrozenTrial) -> int | None:
    """The lower-numbered trial that repeats the same failed trial as ``frozen``, if any."""
    found = twin(trials, frozen, retry_key_of(frozen), RETRY)
    return None if found is None else found.number


def find_twin(trials: Sequence[FrozenTrial], number: int, key: str) -> FrozenTrial | None:
    """The trial a form proposal with ``key`` is answered from, or ``None`` (:data:`FORM`).

    A COMPLETE, PRUNED or configuration-FAIL candidate with the key (not itself a duplicate;
    the lowest-numbered), else the RUNNING one with the key that started first, when it started
    before trial ``number`` (a trial started later defers to this one).
    """
    return twin(trials, number, key, FORM)


# ------------------------------------------------------------------------------ queueing


def carried(trials: Iterable[FrozenTrial], key_of: Callable[[FrozenTrial], Any]) -> set[Any]:
    """The keys some trial of the study already carries (any state)."""
    return {k for t in trials if (k := key_of(t)) is not None}


def enqueue_new(
    study: optuna.Study,
    planned: Iterable[tuple[str, Mapping[str, Any], Mapping[str, Any]]],
    have: set[str],
) -> int:
    """Queue every planned ``(key, params, user_attrs)`` whose key is not in ``have``.

    Returns:
        How many trials were queued.
    """
    queued = 0
    for key, params, user_attrs in planned:
        if key in have:
            continue
        study.enqueue_trial(dict(params), user_attrs=dict(user_attrs))
        queued += 1
    return queued
