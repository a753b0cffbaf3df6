"""The configuration table: one row per candidate configuration, paired against the baseline.

A configuration is ``(activation, rank, resolved parameters)``. For each one:

* ``metric_mean`` / ``metric_std``: mean and sample standard deviation over seeds of the metric
  of its COMPLETE trials (several trials on the same seed are averaged first);
* ``baseline_mean``: the baseline's (identity = QLoRA) mean at the **same rank** over the
  **paired** seeds;
* ``gain`` = mean over paired seeds of ``candidate − baseline`` (same rank, same seed), with the
  95% paired-t interval ``gain_ci_low..gain_ci_high`` and the two-sided paired-t ``p_value``
  (:mod:`loran_search.analysis.stats`); ``p_adjusted`` corrects the p-values across all
  configurations (Holm by default) and ``significant`` is ``p_adjusted < 0.05``;
* stability rates over every finished run (:mod:`loran_search.analysis.stability`);
* ``lipschitz``: the registry audit's bound ``sup |f'|`` on ``[-1, 1]``.

Only COMPLETE trials enter metrics and gains (a pruned or failed run is partial); all finished
runs enter stability.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from loran_search import record as R
from loran_search.analysis.records import Records
from loran_search.analysis.stability import run_stability
from loran_search.analysis.stats import ALPHA, adjust, paired_t

LEADING_COLUMNS = ["activation", "family", "rank"]
STAT_COLUMNS = [
    "n_seeds", "metric_mean", "metric_std", "baseline_mean", "gain", "gain_ci_low",
    "gain_ci_high", "p_value", "significant", "diverged_rate", "loss_spike_rate",
    "grad_norm_max", "lipschitz", "train_seconds", "n_complete", "n_pruned", "n_fail",
    "n_running",
]  # fmt: skip
EXTRA_COLUMNS = [
    "p_adjusted", "n_paired", "unstable_rate", "amp_freq", "n_trials", "trials", "config", "note",
]  # fmt: skip
INTERNAL_COLUMNS = ["key"]  # dropped from every written output
_RESERVED = set(LEADING_COLUMNS + STAT_COLUMNS + EXTRA_COLUMNS + ["key", "improvement"])

AUDIT_BUDGET_S = 60.0
Auditor = Callable[[str, dict[str, float]], float]


def param_column(name: str) -> str:
    """The table column of parameter ``name`` (prefixed only if it collides with a column)."""
    return f"param_{name}" if name in _RESERVED else name


def _seed_means(runs: pd.DataFrame) -> tuple[dict[str, float], list[float]]:
    """Per-seed mean metric of COMPLETE runs, and the metrics of runs with an unknown seed."""
    ok = runs[(runs["state"] == "COMPLETE") & np.isfinite(runs["metric"].to_numpy(dtype=float))]
    known = ok[ok["seed"].notna()]
    per_seed = known.groupby("seed")["metric"].mean().to_dict()
    unknown = ok.loc[ok["seed"].isna(), "metric"].astype(float).tolist()
    return {str(k): float(v) for k, v in per_seed.items()}, unknown


def _state_counts(trials: pd.DataFrame) -> dict[str, int]:
    s = trials["state"]
    return {
        "n_complete": int((s == "COMPLETE").sum()),
        "n_pruned": int((s == "PRUNED").sum()),
        "n_fail": int((s == "FAIL").sum()),
        "n_running": int(s.isin(["RUNNING", "WAITING"]).sum()),
    }


def make_auditor(notes: list[str], budget_s: float = AUDIT_BUDGET_S) -> Auditor:
    """A cached ``(name, params) -> Lipschitz bound`` that never raises.

    It calls ``activations.symbolic.audit(name, params).to_dict()["lipschitz"]``. If the module is
    missing, or an audit fails, the value is ``nan`` and one note per cause is added to ``notes``.
    Symbolic audits cost ~0.1 s each; after ``budget_s`` seconds in total the remaining
    configurations get ``nan`` (and a note) so a large study's report stays quick.
    """
    cache: dict[tuple, float] = {}
    try:
        from activations.symbolic import audit
    except Exception as err:  # the registry's symbolic audit is not available
        notes.append(
            f"Lipschitz bounds unavailable: activations.symbolic.audit could not be imported "
            f"({type(err).__name__}: {err})."
        )

        def missing(name: str, params: dict[str, float]) -> float:
            return math.nan

        return missing

    failed: set[str] = set()
    spent = [0.0]

    def lipschitz(name: str, params: dict[str, float]) -> float:
        key = (name, tuple(sorted(params.items())))
        if key not in cache and spent[0] > budget_s:
            if "budget" not in failed:
                failed.add("budget")
                notes.append(
                    f"Lipschitz bounds: the symbolic audits took over {budget_s:.0f} s; the "
                    "remaining configurations have none (`loran-search activations audit NAME "
                    "--set …` gives one)."
                )
            return math.nan
        if key not in cache:
            start = time.perf_counter()
            try:
                result = audit(name, dict(params))
                data = result.to_dict() if hasattr(result, "to_dict") else dict(result)
                cache[key] = float(data["lipschitz"])
            except Exception as err:
                cache[key] = math.nan
                if name not in failed:
                    failed.add(name)
                    notes.append(
                        f"Lipschitz bound of '{name}' unavailable: the audit failed "
                        f"({type(err).__name__}: {err})."
                    )
            spent[0] += time.perf_counter() - start
        return cache[key]

    return lipschitz


def build_tables(
    rec: Records, *, correction: str = "holm", auditor: Auditor | None = None
) -> tuple[pd.DataFrame, pd.DataFrame, list[str]]:
    """Build the configuration table and the baseline table.

    Args:
        rec: The study's records.
        correction: Multiple-comparison correction (``holm`` or ``bh``).
        auditor: Lipschitz bound per ``(name, params)``; default :func:`make_auditor`.

    Returns:
        ``(configurations, baselines, notes)``. ``configurations`` has the columns
        ``activation, family, rank``, one per parameter, then :data:`STAT_COLUMNS` and
        :data:`EXTRA_COLUMNS`, sorted best first (largest direction-aware gain, or metric when
        there is no baseline). ``baselines`` has one row per rank.
    """
    notes: list[str] = []
    auditor = auditor or make_auditor(notes)
    runs, trials = rec.runs, rec.trials

    base_runs = runs[runs["role"] == R.ROLE_BASELINE]
    base_by_rank: dict[Any, dict[str, float]] = {}
    base_rows: list[dict[str, Any]] = []
    base_trials = trials[trials["role"] == R.ROLE_BASELINE]
    for rank_key in sorted(set(base_trials["rank"]), key=lambda r: (r is None, r or 0)):
        br = _at_rank(base_runs, rank_key)
        bt = _at_rank(base_trials, rank_key)
        per_seed, unknown = _seed_means(br)
        base_by_rank[rank_key] = per_seed
        vals = [*per_seed.values(), *unknown]
        base_rows.append(
            {
                "activation": R.BASELINE_ACTIVATION,
                "rank": rank_key,
                "n_seeds": len(vals),
                "seeds": ",".join(sorted(per_seed, key=_seed_order)),
                "metric_mean": float(np.mean(vals)) if vals else math.nan,
                "metric_std": float(np.std(vals, ddof=1)) if len(vals) > 1 else math.nan,
                **{k: v for k, v in run_stability(br).items() if k != "n_stability_runs"},
                "train_seconds": _nanmean(bt["train_seconds"]),
                **_state_counts(bt),
            }
        )
    baselines = pd.DataFrame(base_rows)

    all_params = sorted(
        {p for ps in trials.loc[trials["role"] == R.ROLE_CANDIDATE, "params"] for p in ps}
    )
    rows: list[dict[str, Any]] = []
    cand = trials[trials["role"] == R.ROLE_CANDIDATE]
    for key, ct in cand.groupby("key", sort=False):
        activation, rank, params_key = key
        params = dict(params_key)
        cr = runs[runs["key"] == key]
        per_seed, unknown = _seed_means(cr)
        vals = [*per_seed.values(), *unknown]
        base = base_by_rank.get(rank, {})
        paired = sorted(set(per_seed) & set(base), key=_seed_order)
        res = paired_t([per_seed[s] - base[s] for s in paired])
        note = res.note if vals else "no completed run"
        if vals and not base_by_rank:
            note = "no baseline trials"
        elif vals and not base:
            note = f"no baseline at rank {rank}"
        row: dict[str, Any] = {
            "activation": activation,
            "family": ct["family"].iloc[0],
            "rank": rank,
            **{param_column(p): params.get(p, math.nan) for p in all_params},
            "n_seeds": len(vals),
            "metric_mean": float(np.mean(vals)) if vals else math.nan,
            "metric_std": float(np.std(vals, ddof=1)) if len(vals) > 1 else math.nan,
            "baseline_mean": float(np.mean([base[s] for s in paired])) if paired else math.nan,
            "gain": res.gain,
            "gain_ci_low": res.ci_low,
            "gain_ci_high": res.ci_high,
            "p_value": res.p_value,
            "significant": None,
        }
        st = run_stability(cr)
        row.update(
            diverged_rate=st["diverged_rate"],
            loss_spike_rate=st["loss_spike_rate"],
            grad_norm_max=st["grad_norm_max"],
            lipschitz=auditor(activation, params),
            train_seconds=_nanmean(ct["train_seconds"]),
            **_state_counts(ct),
            p_adjusted=math.nan,
            n_paired=res.n,
            unstable_rate=st["unstable_rate"],
            amp_freq=(
                params["amplitude"] * params["frequency"]
                if "amplitude" in params and "frequency" in params
                else math.nan
            ),
            n_trials=len(ct),
            trials=",".join(str(n) for n in sorted(ct["trial"])),
            config=ct["config"].iloc[0],
            note=note,
            key=key,
        )
        rows.append(row)

    columns = [*LEADING_COLUMNS, *(param_column(p) for p in all_params), *STAT_COLUMNS,
               *EXTRA_COLUMNS, *INTERNAL_COLUMNS]  # fmt: skip
    table = pd.DataFrame(rows, columns=columns)
    if not table.empty:
        adj = adjust(table["p_value"].astype(float).tolist(), correction)
        table["p_adjusted"] = adj
        table["significant"] = [None if math.isnan(p) else bool(p < ALPHA) for p in adj]
        improvement = rec.sign * table["gain"].astype(float)
        order_metric = rec.sign * table["metric_mean"].astype(float)
        table = (
            table.assign(_imp=improvement, _met=order_metric)
            .sort_values(["_imp", "_met"], ascending=False, na_position="last")
            .drop(columns=["_imp", "_met"])
            .reset_index(drop=True)
        )
    return table, baselines, notes


def _at_rank(df: pd.DataFrame, rank: Any) -> pd.DataFrame:
    """The rows of ``df`` at ``rank`` (``None`` matches an unknown rank).

    A boolean *Series* (not a list: ``df[[]]`` would select no columns of an empty frame).
    """
    mask = pd.Series([r == rank for r in df["rank"]], index=df.index, dtype=bool)
    return df.loc[mask]


def _nanmean(s: pd.Series) -> float:
    v = s.to_numpy(dtype=float)
    v = v[np.isfinite(v)]
    return float(v.mean()) if v.size else math.nan


def _seed_order(seed: str) -> tuple[int, Any]:
    try:
        return (0, int(seed))
    except ValueError:
        return (1, seed)
