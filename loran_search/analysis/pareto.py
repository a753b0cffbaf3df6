"""Pareto fronts of the candidate configurations: gain against cost and against instability.

A configuration ``i`` is dominated when another ``j`` is at least as good on both axes and
strictly better on one. Gain is made direction-aware first (``improvement = ±gain``, larger is
better); train seconds and the unstable-run rate are to be minimised.
"""

from __future__ import annotations

import numpy as np
import pandas as pd


def pareto_mask(better: np.ndarray, cost: np.ndarray) -> np.ndarray:
    """Non-dominated points when maximising ``better`` and minimising ``cost``.

    Args:
        better: Values to maximise, shape ``(n,)``.
        cost: Values to minimise, shape ``(n,)``.

    Returns:
        A boolean mask of shape ``(n,)``; points with a non-finite coordinate are never on the
        front.
    """
    better = np.asarray(better, dtype=float)
    cost = np.asarray(cost, dtype=float)
    ok = np.isfinite(better) & np.isfinite(cost)
    mask = np.zeros(better.shape, dtype=bool)
    for i in np.flatnonzero(ok):
        ge = (better[ok] >= better[i]) & (cost[ok] <= cost[i])
        gt = (better[ok] > better[i]) | (cost[ok] < cost[i])
        mask[i] = not (ge & gt).any()
    return mask


def pareto_table(configurations: pd.DataFrame, sign: float) -> pd.DataFrame:
    """The two fronts as one table.

    Args:
        configurations: The configuration table (needs ``gain``, ``train_seconds``,
            ``unstable_rate`` and ``config``).
        sign: ``+1`` when a larger metric is better, ``-1`` otherwise.

    Returns:
        Columns ``config, gain, train_seconds, unstable_rate, front_cost, front_stability``
        (the last two say whether the configuration is on the gain–seconds and
        gain–instability fronts), front members first.
    """
    cols = ["config", "gain", "train_seconds", "unstable_rate"]
    if configurations.empty:
        return pd.DataFrame(columns=[*cols, "front_cost", "front_stability"])
    t = configurations[cols].copy()
    imp = sign * t["gain"].to_numpy(dtype=float)
    t["front_cost"] = pareto_mask(imp, t["train_seconds"].to_numpy(dtype=float))
    t["front_stability"] = pareto_mask(imp, t["unstable_rate"].to_numpy(dtype=float))
    on = t["front_cost"] | t["front_stability"]
    return t[on].reset_index(drop=True)
