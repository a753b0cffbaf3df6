"""Training stability per configuration and per family, and where along the amplitude it breaks.

Every finished run (a trial's seed, whatever the trial's state — a diverged seed makes its trial
FAIL or PRUNED, and those runs are exactly what stability is about) contributes its telemetry:

* ``diverged_rate`` = diverged runs / runs with telemetry;
* ``loss_spike_rate`` = runs with at least one loss spike / runs with telemetry;
* ``unstable_rate`` = runs that diverged *or* spiked / runs with telemetry;
* ``grad_norm_max`` = the largest gradient norm seen in any run;
* seed spread = the standard deviation across seeds of the metric (``metric_std``).

Sinter's slope is ``f'(x) = 1 + A·sin(ωx) + A·ω·x·cos(ωx)``, so ``A·ω`` (amplitude × frequency)
is the calibration axis: the report shows stability against it and against the audit's Lipschitz
bound ``sup |f'|`` on ``[-1, 1]``.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

FINISHED = ("COMPLETE", "FAIL", "PRUNED")


#: A configuration whose max gradient norm reaches this multiple of QLoRA's is flagged.
GRAD_GROWTH_FACTOR = 10.0


def run_stability(runs: pd.DataFrame) -> dict[str, float]:
    """Stability rates of a set of runs (rows of ``Records.runs``).

    Returns:
        ``{n_stability_runs, diverged_rate, loss_spike_rate, unstable_rate, grad_norm_max}``;
        rates are ``nan`` when no run has telemetry.
    """
    r = runs[runs["state"].isin(FINISHED) & runs["has_stability"].astype(bool)]
    n = len(r)
    if n == 0:
        return {
            "n_stability_runs": 0,
            "diverged_rate": math.nan,
            "loss_spike_rate": math.nan,
            "unstable_rate": math.nan,
            "grad_norm_max": math.nan,
        }
    diverged = r["diverged"].fillna(False).astype(bool).to_numpy()
    spiked = r["loss_spikes"].fillna(0).to_numpy(dtype=float) > 0
    gmax = r["grad_norm_max"].to_numpy(dtype=float)
    return {
        "n_stability_runs": n,
        "diverged_rate": float(diverged.mean()),
        "loss_spike_rate": float(spiked.mean()),
        "unstable_rate": float((diverged | spiked).mean()),
        "grad_norm_max": float(np.nanmax(gmax)) if np.isfinite(gmax).any() else math.nan,
    }


def family_stability(
    runs: pd.DataFrame, configurations: pd.DataFrame, baselines: pd.DataFrame | None = None
) -> pd.DataFrame:
    """Stability per family (the baseline family included, for reference).

    Columns: ``family, n_configs, n_runs, diverged_rate, loss_spike_rate, unstable_rate,
    grad_norm_max, grad_norm_median, seed_spread`` (mean ``metric_std`` of its configurations),
    sorted most stable first (lowest unstable, then diverged rate, then median gradient norm).
    """
    rows: list[dict[str, Any]] = []
    for family, fr in runs.groupby("family", sort=True):
        st = run_stability(fr)
        tele = fr[fr["state"].isin(FINISHED) & fr["has_stability"].astype(bool)]
        g = tele["grad_norm_max"].to_numpy(dtype=float)
        spread = math.nan
        source = configurations
        if family == "baseline" and baselines is not None and not baselines.empty:
            source = baselines.assign(family="baseline")
        if not source.empty and "family" in source:
            s = source.loc[source["family"] == family, "metric_std"]
            s = s[np.isfinite(s.to_numpy(dtype=float))]
            spread = float(s.mean()) if len(s) else math.nan
        rows.append(
            {
                "family": family,
                "n_configs": int(fr["key"].nunique()),
                "n_runs": st["n_stability_runs"],
                "diverged_rate": st["diverged_rate"],
                "loss_spike_rate": st["loss_spike_rate"],
                "unstable_rate": st["unstable_rate"],
                "grad_norm_max": st["grad_norm_max"],
                "grad_norm_median": float(np.nanmedian(g)) if np.isfinite(g).any() else math.nan,
                "seed_spread": spread,
            }
        )
    out = pd.DataFrame(
        rows,
        columns=[
            "family", "n_configs", "n_runs", "diverged_rate", "loss_spike_rate",
            "unstable_rate", "grad_norm_max", "grad_norm_median", "seed_spread",
        ],
    )  # fmt: skip
    if out.empty:
        return out
    return out.sort_values(
        ["unstable_rate", "diverged_rate", "grad_norm_median"], na_position="last"
    ).reset_index(drop=True)


def _grad_ratio(c: pd.DataFrame, baselines: pd.DataFrame | None) -> np.ndarray:
    """``g / g_0`` per row of ``c``: its max gradient norm over the baseline's at its rank."""
    nan = np.full(len(c), math.nan)
    if (
        baselines is None
        or baselines.empty
        or "grad_norm_max" not in c
        or not {"rank", "grad_norm_max"} <= set(baselines.columns)
        or "rank" not in c
    ):
        return nan
    ref = dict(zip(baselines["rank"], baselines["grad_norm_max"].astype(float), strict=True))
    g0 = np.array([ref.get(r, math.nan) for r in c["rank"]], dtype=float)
    g = c["grad_norm_max"].to_numpy(dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(g0 > 0, g / g0, math.nan)


def _axis(c: pd.DataFrame) -> str | None:
    """``amplitude``, or ``amp_freq`` (A·ω) when the frequency varies too, or ``None``."""
    if "amplitude" not in c or not np.isfinite(c["amplitude"].to_numpy(dtype=float)).any():
        return None
    if "frequency" in c and "amp_freq" in c:
        freq = c["frequency"].to_numpy(dtype=float)
        if np.unique(freq[np.isfinite(freq)]).size > 1:
            return "amp_freq"
    return "amplitude"


def amplitude_thresholds(
    configurations: pd.DataFrame,
    baselines: pd.DataFrame | None = None,
    *,
    grad_factor: float = GRAD_GROWTH_FACTOR,
) -> list[dict]:
    """Per activation with an amplitude: where along it training starts to diverge.

    The axis is the amplitude ``A``, or ``A·ω`` when the frequency varies as well (the slope of
    Sinter scales with the product, so a threshold in ``A`` alone would mix frequencies). A
    configuration is *unstable* when at least one of its runs diverged. For each activation the
    result gives the first unstable axis value ``a_u``, the largest stable value below it,
    whether every configuration below ``a_u`` was stable, the share of unstable configurations
    at or above it, and the first value with loss spikes.

    Divergence is the late sign; the early one is the gradient. With ``baselines`` (one row per
    rank with ``grad_norm_max``), the result also gives the first axis value whose largest
    pre-clipping gradient norm ``g`` reaches ``grad_factor ×`` the QLoRA baseline's ``g_0`` at the
    same rank: ``first_grad_growth`` and the ratio ``g / g_0`` there (``grad_growth``).

    Returns:
        One dict per activation: ``{activation, axis, n_configs, axis_min, axis_max,
        first_unstable, max_stable_below, clean_below, unstable_above_share, first_spiking,
        amp_freq_at_first_unstable, first_grad_growth, grad_growth, grad_factor}`` (``None``
        where not applicable).
    """
    if configurations.empty:
        return []
    out: list[dict] = []
    for act, c in configurations.groupby("activation", sort=True):
        axis = _axis(c)
        if axis is None:
            continue
        c = c[np.isfinite(c[axis].to_numpy(dtype=float))]
        c = c[np.isfinite(c["diverged_rate"].to_numpy(dtype=float))]
        if c.empty:
            continue
        c = c.sort_values(axis)
        xs = c[axis].to_numpy(dtype=float)
        unstable = c["diverged_rate"].to_numpy(dtype=float) > 0
        spiking = c["loss_spike_rate"].to_numpy(dtype=float) > 0
        item: dict[str, Any] = {
            "activation": act,
            "axis": axis,
            "n_configs": len(c),
            "axis_min": float(xs.min()),
            "axis_max": float(xs.max()),
            "first_unstable": None,
            "max_stable_below": None,
            "clean_below": True,
            "unstable_above_share": None,
            "first_spiking": float(xs[spiking].min()) if spiking.any() else None,
            "amp_freq_at_first_unstable": None,
            "first_grad_growth": None,
            "grad_growth": None,
            "grad_factor": grad_factor,
        }
        ratio = _grad_ratio(c, baselines)
        grows = np.isfinite(ratio) & (ratio >= grad_factor)
        if grows.any():
            j = int(np.flatnonzero(grows)[0])
            item["first_grad_growth"] = float(xs[j])
            item["grad_growth"] = float(ratio[j])
        if unstable.any():
            i = int(np.flatnonzero(unstable)[0])
            a_u = float(xs[i])
            item["first_unstable"] = a_u
            item["clean_below"] = not unstable[xs < a_u].any()
            below = xs[(~unstable) & (xs < a_u)]
            item["max_stable_below"] = float(below.max()) if below.size else None
            item["unstable_above_share"] = float(unstable[xs >= a_u].mean())
            if axis == "amplitude" and "amp_freq" in c:
                af = float(c["amp_freq"].iloc[i])
                item["amp_freq_at_first_unstable"] = af if math.isfinite(af) else None
        out.append(item)
    return out
