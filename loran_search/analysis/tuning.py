"""The tuning columns of the configurations table (``study.tune``, issue 21).

``tuned``: the training values (a JSON mapping, keys as in ``study.tune``: ``{"training.
learning_rate": 0.003}``) the configuration's confirmation trial trained with; ``baseline_tuned``:
those of the confirmation baseline at its rank. ``{}`` when the study was not tuned or the
configuration was not confirmed. Read from the trials' ``tuned`` user attr
(:data:`loran_search.record.TUNED`).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from loran_search import record as R
from loran_search.analysis.fmt import trial_numbers

if TYPE_CHECKING:
    import optuna
    import pandas as pd

TUNED_COLUMNS = ("tuned", "baseline_tuned")


def _dump(point: Any) -> str:
    return json.dumps(dict(point) if isinstance(point, dict) else {}, sort_keys=True)


def add_tuned_columns(configs: pd.DataFrame, study: optuna.Study) -> pd.DataFrame:
    """``configs`` with ``tuned`` and ``baseline_tuned`` (JSON text) appended."""
    from optuna.trial import TrialState

    trials = study.get_trials(deepcopy=False)
    by_number = {t.number: t for t in trials}
    baseline: dict[int, Any] = {}
    for t in sorted(trials, key=lambda t: (t.state != TrialState.COMPLETE, t.number)):
        if R.TrialRecord.from_frozen(t).role != R.ROLE_CONFIRM_BASELINE:
            continue
        rank = t.params.get(R.PARAM_RANK)
        if rank is not None:
            baseline.setdefault(int(rank), R.TuneAttrs.of(t.user_attrs).tuned)
    tuned, base = [], []
    numbers = configs["confirm_trials"] if "confirm_trials" in configs else [""] * len(configs)
    ranks = configs["rank"] if "rank" in configs else [None] * len(configs)
    for text, rank in zip(numbers, ranks, strict=True):
        done = [by_number[n] for n in trial_numbers(text) if n in by_number]
        done.sort(key=lambda t: (t.state != TrialState.COMPLETE, t.number))
        tuned.append(_dump(R.TuneAttrs.of(done[0].user_attrs).tuned) if done else "{}")
        ok = done and rank is not None and rank == rank  # NaN-safe
        base.append(_dump(baseline.get(int(rank))) if ok else "{}")
    return configs.assign(tuned=tuned, baseline_tuned=base)


def _arm_label(arm: str) -> str:
    """``baseline r8`` / ``sinter {amplitude: 0.001} r8`` / ``dora r8`` from an arm's key."""
    role, _, params_text = arm.partition("|")
    try:
        params = json.loads(params_text)
    except ValueError:
        return arm
    rank = params.get(R.PARAM_RANK)
    if role == R.ROLE_CONFIRM_BASELINE:
        return f"baseline r{rank}"
    name = params.get(R.PARAM_METHOD)
    if name in (None, R.METHOD_LORAN):
        name = params.get(R.PARAM_ACTIVATION, "?")
    own = {
        k.partition(".")[2]: v
        for k, v in params.items()
        if isinstance(k, str) and k.startswith(f"{name}.")
    }
    shown = f" {params_text(own)}" if own else ""
    return f"{name}{shown} r{rank}"


def response_frame(study: optuna.Study) -> pd.DataFrame:
    """The tuning's response: one row per (COMPLETE tune trial, tuned key).

    Columns: ``arm`` (a label), ``key`` (the ``study.tune`` key), ``x`` (its value at that
    point), ``value`` (the trial's search-split value), ``point`` (the whole point as JSON) and
    ``chosen`` (the point the arm's confirmation trained with). Empty without tuning.
    """
    import math

    import pandas as pd
    from optuna.trial import TrialState

    trials = study.get_trials(deepcopy=False)
    roles = {t.number: R.TrialRecord.from_frozen(t).role for t in trials}
    chosen: dict[str, str] = {}
    for t in trials:
        attrs = R.TuneAttrs.of(t.user_attrs)
        if roles[t.number] in R.CONFIRM_ROLES and attrs.tuned:
            chosen[str(attrs.confirm_key)] = _dump(attrs.tuned)
    rows = []
    for t in trials:
        if roles[t.number] != R.ROLE_TUNE or t.state != TrialState.COMPLETE:
            continue
        attrs = R.TuneAttrs.of(t.user_attrs)
        point, arm = attrs.tuned, attrs.tune_arm
        if point is None or arm is None or not t.values:
            continue
        value = float(t.values[0])
        if not math.isfinite(value):
            continue
        for key, x in point.items():
            rows.append(
                {
                    "arm": _arm_label(arm),
                    "key": str(key),
                    "x": float(x),
                    "value": value,
                    "point": _dump(point),
                    "chosen": chosen.get(arm) == _dump(point),
                }
            )
    return pd.DataFrame(rows, columns=["arm", "key", "x", "value", "point", "chosen"])


def normalize_notes(study: optuna.Study) -> list[str]:
    """A report note when the study ran with ``adapter.normalize: slope``, with each ``f′(0)``."""
    adapter = R.StudyAttrs.of(study.user_attrs).section("adapter")
    if adapter.get("normalize") != "slope":
        return []
    slopes: dict[str, float] = {}
    for t in study.get_trials(deepcopy=False):
        rec = R.TuneAttrs.of(t.user_attrs).normalize
        name = (R.TrialRecord.from_frozen(t).activation_spec or {}).get("name")
        if isinstance(rec, dict) and isinstance(name, str) and "slope_at_zero" in rec:
            slopes.setdefault(name, float(rec["slope_at_zero"]))
    shown = ", ".join(f"{n} {v:g}" for n, v in sorted(slopes.items())) or "none recorded"
    return [
        "adapter.normalize: slope — every LoRAN adapter's scale was divided by f′(0) of its "
        f"activation (s = alpha/(r·f′(0)): LoRA's first step for every arm); f′(0): {shown}."
    ]
