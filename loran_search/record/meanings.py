"""The meanings both the search and the analysis judge by, defined here and nowhere else.

The stored form parameters (:func:`form_param_declarations`, :func:`form_param_range`), the
inert threshold :data:`INERT_THRESHOLD`, the one rule for the visited range of ``P``
(:func:`p_abs_max`, :func:`visited_bound`, :func:`visited_range`) and the loss-spike rule
(:func:`is_spike`); ``tests/test_architecture.py`` checks that no other module defines them.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from loran_search.record.keys import FORM_PREFIX, SEARCH_ROLES, STUDY_SETUP
from loran_search.record.trial import TrialRecord
from loran_search.record.values import _number

if TYPE_CHECKING:
    from optuna.trial import FrozenTrial

# -- the mechanism: what both the search's screening and the report judge by -----------------

INERT_THRESHOLD = 1e-3
"""``ν`` below which a configuration is inert: LoRA in all but name.

With ``ν = ‖f(P) − P‖_F / ‖P‖_F``, ``‖Δ − s·P‖_F = ν·‖s·P‖_F``: below 1e-3 the LoRAN update
differs from the LoRA update of the same factors by under 0.1% of its norm, and so the layer's
output change ``‖x·(Δ − s·P)ᵀ‖ ≤ ν·‖s·P‖_F·‖x‖`` by under 0.1% of what the adapter adds. Two LoRA
runs that differ only in the seed differ in their updates by far more than that (order one
relative), so a short fine-tuning run cannot tell such an ``f`` from the identity. The telemetry
flags inert layers with it, the search skips predicted-inert candidates with it
(``search.skip_inert``) and the report calls configurations inert with it."""
UNIT_RANGE = (-1.0, 1.0)
"""The range of ``P`` assumed where no trial has recorded one (before any ran; older records)."""


def form_param_declarations(study_user_attrs: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """``{param: declaration}`` of the study's ``search.forms.params``, as the search stored it.

    The stored layout: :data:`STUDY_SETUP` = ``{…, "space": {…, "forms": {template, leaves,
    operators, depth, require, "params": {"<FORM_PREFIX>.<param>": declaration}}}}`` with a
    declaration one of ``{"fixed": v}``, ``{"choices": [v, …]}`` or ``{"low", "high", "log"[,
    "step", "num", "integer"]}`` (the search's ``Dim.to_dict``). A study without forms, or a
    part that is not that shape, reads as ``{}``; never raises.
    """
    setup = study_user_attrs.get(STUDY_SETUP)
    space = setup.get("space") if isinstance(setup, Mapping) else None
    forms = space.get("forms") if isinstance(space, Mapping) else None
    params = forms.get("params") if isinstance(forms, Mapping) else None
    head = f"{FORM_PREFIX}."
    return {
        key[len(head) :]: dict(value)
        for key, value in (params.items() if isinstance(params, Mapping) else ())
        if isinstance(key, str) and key.startswith(head) and isinstance(value, Mapping)
    }


def form_param_range(
    declaration: Mapping[str, Any] | None, values: Iterable[float]
) -> tuple[float, float, bool]:
    """``(low, high, log)``: the smallest range holding a declared form parameter and ``values``.

    ``low = min(values ∪ D)``, ``high = max(values ∪ D)`` with ``D`` the declared ``{low, high}``
    or ``choices`` (nothing for a fixed value); ``log`` as declared (``False`` when not said).

    Raises:
        ValueError: Neither ``values`` nor the declaration gives a number.
    """
    d = declaration or {}
    points = [float(v) for v in values]
    if "low" in d and "high" in d:
        points += [float(d["low"]), float(d["high"])]
    elif "choices" in d:
        points += [float(c) for c in d["choices"]]
    return min(points), max(points), bool(d.get("log", False))


def p_abs_max(mechanism: Any) -> float | None:
    """``max |P|`` of one seed's stored :data:`MECHANISM`: ``max(|q_0|, |q_N|)`` of its quantiles.

    ``p_quantiles`` holds ``q_k = Q(k/N)`` of the pooled entries of every ``P = B·A``, so
    ``q_0 = min P`` and ``q_N = max P`` exactly. ``None`` when they are missing or not finite (a
    diverged run) or both are 0.
    """
    qs = mechanism.get("p_quantiles") if isinstance(mechanism, Mapping) else None
    if not isinstance(qs, list) or not qs:
        return None
    ends = [abs(float(q)) for q in (qs[0], qs[-1]) if _number(q) is not None]
    return max(ends) if ends and max(ends) > 0 else None


def visited_bound(
    trials: Iterable[TrialRecord | FrozenTrial], rank: int | None = None
) -> float | None:
    r"""``m``, the largest ``|P|`` the study's trained updates reached: ``P ∈ [−m, m]``.

    **The one rule** for the range of ``P = B·A`` on which ``f`` is judged, used alike by the
    search's screening of a form (:func:`visited_range` at the form's rank, before it trains) and
    by the report and ``activations audit/plot --study`` (all ranks). With ``T`` the COMPLETE
    trials of the search roles (:data:`SEARCH_ROLES`: baseline and candidate) at ``rank``
    (every rank for ``None``) and ``q^{t,s}`` the stored quantiles of trial ``t``, seed ``s``
    (:func:`p_abs_max`),

    .. math::

        m = \max_{t ∈ T,\, s} \max\left(|q^{t,s}_0|,\ |q^{t,s}_N|\right)
          = \max_{t,s} \max_{ij} |P^{t,s}_{ij}|,

    and the visited range is ``[−m, m] ⊇ [min P, max P]`` of every such run.

    * *The largest entry, not a percentile.* ``f`` is applied to every entry of ``P``. The
      screening certifies ``f(0) = 0``, ``f`` and ``f'`` finite and ``sup |f'| ≤ L`` on the range;
      on ``[−p_{99.9}, p_{99.9}]`` it would leave out 0.1% of the entries (13 000 of the
      1.3·10⁷ of SmolLM2's q/v updates at r = 8), where a pole could sit unseen. The report
      measures and draws ``f`` on the same range, so what it shows is what was certified.
    * *Baselines too.* Baselines run first, so before a candidate of ``rank`` completes their
      ``P`` is the only evidence; keeping it afterwards makes ``m`` non-decreasing as trials
      complete, so a later form is screened on a superset of every earlier one's range (the
      screening never becomes laxer as the study learns).
    * *Search roles only.* Confirmation trials retrain the chosen configurations after the
      search: no form was ever screened on them.
    * *Every rank for the report.* It shows all forms on one axis, ``m = max_r m_r``, which
      holds every form's screening range (each was computed on some of these trials).

    Args:
        trials: Trial records, or Optuna's frozen trials (read with
            :meth:`TrialRecord.from_frozen`).
        rank: Only the trials of this rank (``None``: all).

    Returns:
        ``m > 0``, or ``None`` when no such trial recorded a finite non-zero ``|P|``.
    """
    m = 0.0
    for t in trials:
        r = t if isinstance(t, TrialRecord) else TrialRecord.from_frozen(t)
        if r.state != "COMPLETE" or r.role not in SEARCH_ROLES:
            continue
        if rank is not None and r.rank != rank:
            continue
        m = max([m, *(v for v in map(p_abs_max, r.mechanism.values()) if v is not None)])
    return m if m > 0 else None


def visited_range(
    trials: Iterable[TrialRecord | FrozenTrial], rank: int | None = None
) -> tuple[float, float]:
    """``[−m, m]`` of :func:`visited_bound` (the one rule), :data:`UNIT_RANGE` when none."""
    m = visited_bound(trials, rank)
    return (-m, m) if m is not None else UNIT_RANGE


# ------------------------------------------------------------------------------ loss spikes

#: A step's loss is a spike when it exceeds ``spike_factor`` × the median of the last
#: ``SPIKE_WINDOW`` losses, given at least ``SPIKE_MIN_HISTORY`` of them. Training counts the
#: spikes it records with this rule; the report marks them on the loss curve with the same rule.
SPIKE_WINDOW = 10
SPIKE_MIN_HISTORY = 3


def is_spike(loss: float, previous: list[float], factor: float) -> bool:
    """``loss > factor × median(last ≤10 previous losses)``, given ≥ 3 previous steps."""
    if len(previous) < SPIKE_MIN_HISTORY:
        return False
    return loss > factor * statistics.median(previous[-SPIKE_WINDOW:])
