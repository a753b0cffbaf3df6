"""Parameter importance with Optuna's PED-ANOVA evaluator.

PED-ANOVA (``optuna.importance.PedAnovaImportanceEvaluator``) measures how much each parameter's
distribution among the top-quantile trials differs from its distribution in the whole region;
it needs no scikit-learn (fANOVA and mean-decrease-impurity do, and it is not a dependency).

Importances are computed on candidate COMPLETE trials only, for each activation separately (its
own parameters and the rank, when they vary) and, when the study searched several activations
or ranks, across all candidates over ``activation`` and ``rank``. The target is the trial value
(the mean metric over seeds; the first objective of a multi-objective study) in the study's
direction. Too few trials, or fewer than two varying parameters (one alone is trivially 1), yield
a note instead of a number.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Collection
from typing import TYPE_CHECKING

import pandas as pd

from loran_search.words import count

if TYPE_CHECKING:
    import optuna

    from loran_search.analysis.model import Records

MIN_TRIALS = 4
EVALUATOR = "PED-ANOVA"


def _varying(trials: list[optuna.trial.FrozenTrial], names: list[str]) -> list[str]:
    out = []
    for name in names:
        present = all(name in t.params for t in trials)
        if present and len({repr(t.params[name]) for t in trials}) > 1:
            out.append(name)
    return out


def _importance(
    trials: list[optuna.trial.FrozenTrial], params: list[str], direction: str
) -> dict[str, float]:
    import optuna

    tmp = optuna.create_study(direction=direction)
    for t in trials:
        value = t.values[0]
        tmp.add_trial(
            optuna.trial.create_trial(
                params={p: t.params[p] for p in params},
                distributions={p: t.distributions[p] for p in params},
                value=value,
            )
        )
    evaluator = optuna.importance.PedAnovaImportanceEvaluator()
    return dict(optuna.importance.get_param_importances(tmp, evaluator=evaluator, params=params))


def param_importances(
    study: optuna.Study, rec: Records, *, forms: Collection[str] = ()
) -> tuple[pd.DataFrame, list[str]]:
    """Importance of each searched parameter.

    Args:
        study: The study (its frozen trials carry the parameter distributions).
        rec: Its records (for roles, direction and activation names).
        forms: The activations of a form search (each form is its own activation): when two
            or more of them have no varying parameter, one note says so for all of them.

    Returns:
        ``(table, notes)``: ``table`` has columns ``scope, param, importance, n_trials`` (scope
        is an activation name or ``all candidates``); ``notes`` says why a scope has none.
    """
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    roles = dict(zip(rec.trials["trial"], rec.trials["role"], strict=True))
    acts = dict(zip(rec.trials["trial"], rec.trials["activation"], strict=True))
    done = [
        t
        for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
        if roles.get(t.number) == "candidate"
        and t.values is not None
        and math.isfinite(float(t.values[0]))
    ]
    scopes: list[tuple[str, list[optuna.trial.FrozenTrial], list[str]]] = []
    by_act: dict[str, list[optuna.trial.FrozenTrial]] = {}
    for t in done:
        by_act.setdefault(acts[t.number], []).append(t)
    if len(by_act) > 1 or len({t.params.get("rank") for t in done}) > 1:
        scopes.append(("all candidates", done, _varying(done, ["activation", "rank"])))
    for act, ts in sorted(by_act.items()):
        names = sorted({p for t in ts for p in t.params if p.startswith(f"{act}.")})
        scopes.append((act, ts, _varying(ts, [*names, "rank"])))

    rows: list[dict[str, object]] = []
    notes: list[str] = []
    if not done:
        notes.append("Parameter importance: no completed candidate trial.")
    flat_forms = [scope for scope, _, params in scopes if scope in forms and not params]
    for scope, ts, params in scopes:
        if len(flat_forms) > 1 and scope in flat_forms:
            if scope == flat_forms[0]:
                notes.append(
                    "Parameter importance: no searched parameter varies within any of "
                    f"{len(flat_forms)} forms (each form is its own activation; the form itself "
                    "is the searched choice)."
                )
            continue
        if not params:
            notes.append(f"Parameter importance ({scope}): no searched parameter varies.")
            continue
        if len(params) == 1:
            notes.append(
                f"Parameter importance ({scope}): only {params[0]} varies, so its importance is "
                "trivially 1; the configuration table compares its values directly."
            )
            continue
        if len(ts) < MIN_TRIALS:
            notes.append(
                f"Parameter importance ({scope}): {count(len(ts), 'completed trial')}; at least "
                f"{MIN_TRIALS} are needed."
            )
            continue
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                imp = _importance(ts, params, rec.direction)
            except Exception as err:
                notes.append(
                    f"Parameter importance ({scope}) could not be computed: "
                    f"{type(err).__name__}: {err}"
                )
                continue
        for p, v in imp.items():
            rows.append({"scope": scope, "param": p, "importance": float(v), "n_trials": len(ts)})
    return pd.DataFrame(rows, columns=["scope", "param", "importance", "n_trials"]), notes
