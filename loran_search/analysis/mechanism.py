"""What the non-linearity did: per-configuration mechanism figures and the visited range of P.

Every run records, per LoRAN layer and summarised over layers (``user_attrs["mechanism"]``,
``{"<seed>": {nonlinearity_median, p_rms_median, p_abs_p999_max, stable_rank_median,
stable_rank_lora_median, inert, ...}}``):

* the effective non-linearity ``ν = ‖f(P) − P‖_F / ‖P‖_F`` of the trained update ``P = B·A``
  (0 for the identity, i.e. exactly LoRA);
* the visited scale of ``P`` (its RMS and the 99.9th percentile of ``|P|``);
* the stable rank ``‖M‖_F² / ‖M‖_2²`` of the update ``f(P)`` and of LoRA's ``P``.

A run is *inert* when every one of its layers has ``ν`` below :data:`INERT_THRESHOLD` (the
recorded ``inert`` flag; without it, the median layer's ``ν`` below the threshold), and a
configuration is "LoRA in all but name" when every run of it that records the mechanism is inert:
whatever its gain, it is not a result about ``f``. The threshold is the one the telemetry and the
search use (:data:`loran_search.record.INERT_THRESHOLD`).

The *visited range* of a study is ``[−m, m]`` with ``m`` the largest ``|P|`` of its completed
search trials (:func:`loran_search.record.visited_bound`: the rule the search screens forms on),
which the shapes plot, the form table and ``loran-search activations audit/plot --study FILE``
use instead of ``[-1, 1]``.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from loran_search import record as R
from loran_search.analysis.model import Records
from loran_search.record import INERT_THRESHOLD

#: Configuration-table column ← the runs column holding the recorded per-seed median.
MECHANISM_COLUMNS = ("nonlinearity", "p_rms", "stable_rank", "stable_rank_lora")


def _median(values: pd.Series) -> float:
    v = pd.to_numeric(values, errors="coerce").to_numpy(dtype=float)
    v = v[np.isfinite(v)]
    return float(np.median(v)) if v.size else math.nan


def configuration_mechanism(runs: pd.DataFrame, trials: pd.DataFrame | None = None) -> dict:
    """Medians over a configuration's runs of the recorded mechanism medians, and ``inert``.

    Args:
        runs: The configuration's runs (rows of ``Records.runs``/``confirm_runs``).
        trials: Its trials; a configuration whose every trial was refused as inert (failure kind
            ``inert``: the search's predicted ``ν`` was below the threshold) is inert too.

    Returns:
        ``{nonlinearity, p_rms, stable_rank, stable_rank_lora, inert}``; ``inert`` is ``True``
        when every run that records the mechanism is inert (module docstring), ``False`` when
        one is not, and ``None`` when no run records it.
    """
    out: dict[str, Any] = {
        c: _median(runs[c]) if c in runs else math.nan for c in MECHANISM_COLUMNS
    }
    flags = []
    n = len(runs)
    recorded = runs["inert"].tolist() if "inert" in runs else [None] * n
    nus = pd.to_numeric(runs["nonlinearity"], errors="coerce") if "nonlinearity" in runs else None
    for flag, nu in zip(recorded, nus.tolist() if nus is not None else [math.nan] * n, strict=True):
        if isinstance(flag, (bool, np.bool_)):
            flags.append(bool(flag))
        elif math.isfinite(nu):
            flags.append(nu < INERT_THRESHOLD)
    if flags:
        out["inert"] = all(flags)
    elif trials is not None and len(trials) and "failure_kind" in trials:
        kinds = set(trials["failure_kind"])
        out["inert"] = True if kinds == {R.FAIL_INERT} else None
    else:
        out["inert"] = None
    return out


def has_mechanism(rec: Records) -> bool:
    """Whether any run of the study records mechanism telemetry."""
    return any(
        np.isfinite(pd.to_numeric(df[c], errors="coerce").to_numpy(dtype=float)).any()
        for df in (rec.runs, rec.confirm_runs)
        if len(df)
        for c in ("nonlinearity", "p_abs_p999_max")
        if c in df
    )


def visited_interval(rec: Records) -> tuple[tuple[float, float], str]:
    """The interval of ``P`` to show ``f`` on, and a sentence saying where it comes from.

    Returns:
        ``((−m, m), why)`` with ``m`` = :attr:`Records.visited_bound` (the search's rule,
        :func:`loran_search.record.visited_bound`, over every rank), or ``((-1, 1), why)`` when
        the study records no mechanism (older records).
    """
    m = rec.visited_bound
    if m is None:
        return R.UNIT_RANGE, (
            "no run records the visited scale of P (older records): shown on [-1, 1]"
        )
    return (-m, m), (
        f"the visited range of P, ±{m:.3g} (the largest |P| of the completed search trials, the "
        "range the search screens forms on)"
    )
