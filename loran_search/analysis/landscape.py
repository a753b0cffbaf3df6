"""The two axes the family and amplitude studies leave open: Sinter's A × ω landscape, and rank.

**The landscape** (``studies/frequency_amplitude.yaml``). The candidate configurations with
both an ``amplitude`` and a ``frequency`` (of the activation with the most of them, at the rank
with the most of them) become *cells* ``(A, ω)``: the search-split metric (``metric_mean``, the
mean over the cell's search seeds), the search gain over QLoRA, the effective non-linearity
``ν = ‖f(P) − P‖/‖P‖`` (median over runs), whether the cell was confirmed on held-out data and
whether it was inert. A study with more than :data:`MAX_AXIS_VALUES` distinct values on an axis
(a TPE search) is binned into :data:`BINS` equal bins of ``log10`` on that axis. The map is
drawn only when both axes have at least 2 values: two heat maps over ``log A × log ω`` (the
metric, ``ν`` on a log colour scale), confirmed cells outlined, inert ones marked, dotted lines
of constant ``A·ω``.

**The ridge reading.** With ``a = log10 A`` and ``w = log10 ω``, a ridge along ``A·ω = const``
means the cells' values ``z`` depend on ``u = a + w`` alone. Three one-coordinate descriptions
are compared — ``z`` as a smooth function of ``log(A·ω) = a + w``, of ``log A = a`` alone, of
``log ω = w`` alone — each by its leave-one-out ``R²``: every cell ``i`` is predicted from the
*other* cells by a Gaussian-kernel (Nadaraya–Watson) average along that coordinate ``x``,

    ẑ₋ᵢ = Σ_{j≠i} K_ij·z_j / Σ_{j≠i} K_ij,   K_ij = exp(−(x_i − x_j)²/(2h²)),

with ``h`` = :data:`BANDWIDTH` × the grid step (the smallest spacing between distinct values of
``a`` or ``w``), and ``R² = 1 − Σ(z_i − ẑ₋ᵢ)²/Σ(z_i − z̄)²``. Cells on the same line of the
coordinate predict each other; a coordinate that does not organise the landscape predicts no
better than the mean (``R² ≤ 0``, it can be negative). Leaving the cell out makes the three
descriptions comparable although ``a + w`` has more distinct values than either axis (no
description can fit a cell with itself). **Rule:** the landscape has a ridge along
``A·ω = const`` when

    R²(log A·ω) ≥ RIDGE_MIN_R2 (0.5)   and   R²(log A·ω) ≥ max(R²(log A), R²(log ω)) + 0.1,

i.e. ``log(A·ω)`` predicts at least half the variation and clearly more than either axis alone
(``RIDGE_MARGIN``). The reading needs at least :data:`RIDGE_MIN_AXIS` values on each axis and
:data:`RIDGE_MIN_CELLS` cells with a value that is not the same everywhere; otherwise it says
so. It is read for the metric and for ``log10 ν`` (the mechanism: ``ν`` follows ``A·ω`` where
``ω·rms(P) ≪ 1`` and ``A`` alone where ``ω·rms(P) ≫ 1``).

**The rank sweep** (``studies/rank_sweep.yaml`` and its rsLoRA twin). When the candidates span
at least two ranks, one row per (configuration, rank): QLoRA's metric at that rank, the
candidate's, the search gain over QLoRA at that rank (same seed and examples), the reported gain
(the confirmation's where confirmed) with its interval and adjusted p, and ``ν`` beside it —
labelled with the study's adapter scaling (``s = alpha/r``, or ``alpha/√r`` with
``adapter.use_rslora``, read from the study's recorded setup). The sentence gives each rank's
gain and ``ν``, the Spearman correlation of the search gain with the rank (scipy.stats), and
whether ``ν`` stayed above the inert threshold at every rank. :func:`rank_comparison` puts the
tables of several studies (the two scalings) side by side.
"""

from __future__ import annotations

import html
import json
import math
from collections.abc import Collection, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from loran_search import record as R
from loran_search.analysis.configurations import EVIDENCE_CONFIRMATION, param_column
from loran_search.analysis.fmt import data_uri, fmt, html_table, inline, json_rows, markdown_table
from loran_search.analysis.model import (
    CELL_COLUMNS,
    RANK_COLUMNS,
    SCALING_PLAIN,
    Analysis,
    Landscape,
    RidgeReading,
    has_map,
)
from loran_search.analysis.plots import DPI, pyplot
from loran_search.record import INERT_THRESHOLD

if TYPE_CHECKING:
    import optuna

#: Fewer distinct values than this on an axis: one cell per value; more: :data:`BINS` log bins.
MAX_AXIS_VALUES = 10
BINS = 8
#: The ridge reading needs this many distinct values on each axis, and this many cells.
RIDGE_MIN_AXIS = 3
RIDGE_MIN_CELLS = 8
#: The kernel bandwidth of the ridge reading, in grid steps.
BANDWIDTH = 0.3
RIDGE_MIN_R2 = 0.5
RIDGE_MARGIN = 0.1
FIGURE = "landscape.png"
CAPTION = (
    "Left: the search-split metric over amplitude A × frequency ω (one cell per configuration; "
    "colours centred on QLoRA at the same rank, the colour bar's line: white = QLoRA, blue "
    "higher, red lower). Right: the effective non-linearity "
    "ν = ‖f(P) − P‖/‖P‖ (log colour scale; 'inert' below 1e-3). Outlined ★ cells were "
    "confirmed on held-out data; dotted lines are A·ω = const (the ridge the mechanism predicts)."
)
#: Up to this many ranks the trend's p-value is exact (every one of the n! pairings).
EXACT_MAX_RANKS = 8
SCALING_RSLORA = "alpha/√r (rsLoRA)"


# ------------------------------------------------------------------------------ the landscape


def _num(df: pd.DataFrame, col: str) -> np.ndarray:
    if col not in df:
        return np.full(len(df), math.nan)
    return pd.to_numeric(df[col], errors="coerce").to_numpy(dtype=float)


def _axis(values: np.ndarray) -> np.ndarray:
    """Each value's cell coordinate: itself, or its log bin's centre (> MAX_AXIS_VALUES)."""
    distinct = np.unique(np.round(np.log10(values), 9))
    if len(distinct) <= MAX_AXIS_VALUES:
        return values
    logs = np.log10(values)
    edges = np.linspace(logs.min(), logs.max(), BINS + 1)
    idx = np.clip(np.searchsorted(edges, logs, side="right") - 1, 0, BINS - 1)
    return 10 ** ((edges[idx] + edges[idx + 1]) / 2)


def landscape_cells(configs: pd.DataFrame) -> tuple[pd.DataFrame, str, int | None, list[str]]:
    """The cells ``(A, ω)`` of the configurations table (module docstring).

    Args:
        configs: The configuration table
            (:func:`~loran_search.analysis.configurations.build_tables`).

    Returns:
        ``(cells, activation, rank, notes)``; ``cells`` has :data:`CELL_COLUMNS`, sorted by
        ``(amplitude, frequency)``, and is empty when no configuration has a positive, finite
        amplitude and frequency.
    """
    notes: list[str] = []
    amp_col, freq_col = param_column("amplitude"), param_column("frequency")
    if configs.empty or amp_col not in configs or freq_col not in configs:
        return pd.DataFrame(columns=CELL_COLUMNS), "", None, notes
    a, w = _num(configs, amp_col), _num(configs, freq_col)
    ok = np.isfinite(a) & np.isfinite(w) & (a > 0) & (w > 0)
    if "family" in configs:
        ok &= (configs["family"] != R.METHOD_FAMILY).to_numpy()
    d = configs[ok].copy()
    if d.empty:
        return pd.DataFrame(columns=CELL_COLUMNS), "", None, notes
    activation = str(d["activation"].value_counts().index[0])
    d = d[d["activation"] == activation]
    rank = d["rank"].value_counts().index[0] if d["rank"].notna().any() else None
    if rank is not None:
        if d["rank"].nunique() > 1:
            notes.append(
                f"Landscape: {activation} was searched at {d['rank'].nunique()} ranks; the map "
                f"shows rank {rank}, the one with the most A × ω configurations."
            )
        d = d[d["rank"] == rank]
    d = d.assign(
        _A=_axis(_num(d, amp_col)),
        _W=_axis(_num(d, freq_col)),
        _confirmed=(d["evidence"] == EVIDENCE_CONFIRMATION) if "evidence" in d else False,
    )
    rows = []
    for (amp, freq), g in d.groupby(["_A", "_W"], sort=True):
        conf = g[g["_confirmed"]]
        inert = (
            [bool(v) for v in g["inert"] if isinstance(v, (bool, np.bool_))] if "inert" in g else []
        )
        nu = _num(g, "nonlinearity")
        rows.append(
            {
                "amplitude": float(amp),
                "frequency": float(freq),
                "amp_freq": float(amp) * float(freq),
                "metric": float(np.nanmean(_num(g, "metric_mean")))
                if np.isfinite(_num(g, "metric_mean")).any()
                else math.nan,
                "search_gain": float(np.nanmean(_num(g, "search_gain")))
                if np.isfinite(_num(g, "search_gain")).any()
                else math.nan,
                "nonlinearity": float(np.nanmedian(nu)) if np.isfinite(nu).any() else math.nan,
                "inert": bool(inert) and all(inert),
                "confirmed": bool(len(conf)),
                "confirm_gain": float(np.nanmean(_num(conf, "gain")))
                if len(conf) and np.isfinite(_num(conf, "gain")).any()
                else math.nan,
                "n_configurations": len(g),
                "configs": "; ".join(str(c) for c in g.get("config", [])),
            }
        )
    if len(d) > len(rows):
        notes.append(
            f"Landscape: {len(d)} configurations in {len(rows)} cells (an axis with more than "
            f"{MAX_AXIS_VALUES} values is binned into {BINS} log bins; a cell shows their mean)."
        )
    return pd.DataFrame(rows, columns=CELL_COLUMNS), activation, rank, notes


def loo_r2(x: np.ndarray, z: np.ndarray, h: float) -> float:
    """Leave-one-out ``R²`` of the Gaussian-kernel average of ``z`` along ``x`` (bandwidth ``h``).

    ``ẑ₋ᵢ = Σ_{j≠i} K_ij·z_j / Σ_{j≠i} K_ij`` with ``K_ij = exp(−(x_i − x_j)²/(2h²))``;
    ``R² = 1 − Σ(z_i − ẑ₋ᵢ)²/Σ(z_i − z̄)²`` (``nan`` when ``z`` does not vary).
    """
    d = (x[:, None] - x[None, :]) / h
    k = np.exp(-0.5 * d**2)
    np.fill_diagonal(k, 0.0)
    total = k.sum(axis=1)
    # a cell far from every other one (all weights underflow): predicted by the mean of the rest
    rest = (z.sum() - z) / max(len(z) - 1, 1)
    pred = np.where(total > 0, (k @ z) / np.where(total > 0, total, 1.0), rest)
    ss_tot = float(np.sum((z - z.mean()) ** 2))
    return 1.0 - float(np.sum((z - pred) ** 2)) / ss_tot if ss_tot > 0 else math.nan


def _step(values: np.ndarray) -> float:
    distinct = np.unique(np.round(values, 9))
    gaps = np.diff(distinct)
    return float(gaps.min()) if len(gaps) else math.nan


def ridge_reading(
    amplitude: Sequence[float], frequency: Sequence[float], values: Sequence[float], what: str
) -> RidgeReading:
    """Read whether ``values`` over ``(A, ω)`` follow ``log(A·ω)`` (the module's rule).

    Args:
        amplitude: ``A`` of each cell (positive).
        frequency: ``ω`` of each cell (positive).
        values: The value of each cell (non-finite ones are left out).
        what: What the values are, for the sentence (``accuracy on val``).

    Returns:
        The :class:`RidgeReading`; ``ridge`` is ``None`` (and the sentence says why) with fewer
        than :data:`RIDGE_MIN_AXIS` values on an axis, fewer than :data:`RIDGE_MIN_CELLS`
        cells, or values that are all the same.
    """
    with np.errstate(divide="ignore", invalid="ignore"):
        a_all = np.log10(np.asarray(amplitude, dtype=float))
        w_all = np.log10(np.asarray(frequency, dtype=float))
    z_all = np.asarray(values, dtype=float)
    ok = np.isfinite(a_all) & np.isfinite(w_all) & np.isfinite(z_all)
    a, w, z = a_all[ok], w_all[ok], z_all[ok]
    out = RidgeReading(what=what, n_cells=int(ok.sum()))
    n_a, n_w = len(np.unique(np.round(a, 9))), len(np.unique(np.round(w, 9)))
    if n_a < RIDGE_MIN_AXIS or n_w < RIDGE_MIN_AXIS or len(z) < RIDGE_MIN_CELLS:
        out.sentence = (
            f"**Landscape ({what}): too few cells to read a ridge** ({len(z)} cells with a "
            f"value, {n_a} amplitudes × {n_w} frequencies; the reading needs ≥ {RIDGE_MIN_AXIS} "
            f"values on each axis and ≥ {RIDGE_MIN_CELLS} cells)."
        )
        return out
    if float(np.ptp(z)) == 0.0:
        out.sentence = (
            f"**Landscape ({what}): flat** — every one of the {len(z)} cells has the same value "
            f"({z[0]:.4g}), so it follows neither A·ω nor A nor ω."
        )
        return out
    h = BANDWIDTH * min(_step(a), _step(w))
    out.r2_product = loo_r2(a + w, z, h)
    out.r2_amplitude = loo_r2(a, z, h)
    out.r2_frequency = loo_r2(w, z, h)
    out.ridge = bool(
        out.r2_product >= RIDGE_MIN_R2
        and out.r2_product >= max(out.r2_amplitude, out.r2_frequency) + RIDGE_MARGIN
    )
    figures = (
        f"leave-one-out R² across {len(z)} cells along log10(A·ω) {out.r2_product:.2f}, along "
        f"log10 A alone {out.r2_amplitude:.2f}, along log10 ω alone {out.r2_frequency:.2f}"
    )
    rule = f"(rule: R²(log A·ω) ≥ {RIDGE_MIN_R2} and ≥ {RIDGE_MARGIN} above both axes alone)"
    if out.ridge:
        out.sentence = (
            f"**Landscape ({what}): a ridge along A·ω = const, as the study predicts** — "
            f"{figures} {rule}."
        )
        return out
    if out.r2_product < RIDGE_MIN_R2:
        why = f"log(A·ω) predicts less than {RIDGE_MIN_R2:g} of it"
    else:
        why = (
            "log(A·ω) predicts it no better than "
            + ("log A" if out.r2_amplitude >= out.r2_frequency else "log ω")
            + " alone"
        )
    follows = (
        {
            "A": "; it follows A alone",
            "ω": "; it follows ω alone",
        }.get(out.best or "", "")
        if max(out.r2_amplitude, out.r2_frequency) >= RIDGE_MIN_R2
        else ""
    )
    out.sentence = (
        f"**Landscape ({what}): no ridge along A·ω = const** ({why}{follows}) — {figures} {rule}."
    )
    return out


# ------------------------------------------------------------------------------ the rank sweep


def scaling_of(study: optuna.Study) -> str:
    """The adapter scaling the study recorded (``loran.setup`` → ``adapter.use_rslora``)."""
    rs = R.StudyAttrs.of(study.user_attrs).section("adapter").get("use_rslora")
    return SCALING_RSLORA if rs is True else SCALING_PLAIN


def rank_table(configs: pd.DataFrame, baselines: pd.DataFrame, scaling: str) -> pd.DataFrame:
    """One row per candidate configuration and rank when the candidates span ≥ 2 ranks.

    Args:
        configs: The configuration table.
        baselines: The baseline table (QLoRA's search metric per rank).
        scaling: The adapter scaling label (:func:`scaling_of`).

    Returns:
        :data:`RANK_COLUMNS`, sorted by configuration then rank; empty with fewer than 2 ranks.
    """
    if configs.empty or "rank" not in configs:
        return pd.DataFrame(columns=RANK_COLUMNS)
    d = configs
    if "family" in d:
        d = d[d["family"] != R.METHOD_FAMILY]
    if d["rank"].nunique() < 2:
        return pd.DataFrame(columns=RANK_COLUMNS)
    qlora: dict[Any, float] = {}
    if not baselines.empty and "metric_mean" in baselines:
        qlora = {
            r: float(v)
            for r, v in zip(baselines["rank"], _num(baselines, "metric_mean"), strict=True)
        }
    rows = []
    for _, r in d.iterrows():
        label = str(r.get("config", r["activation"]))
        rows.append(
            {
                "scaling": scaling,
                "rank": r["rank"],
                "configuration": label.rsplit(" r=", 1)[0],
                "qlora": qlora.get(r["rank"], math.nan),
                "metric": r.get("metric_mean", math.nan),
                "search_gain": r.get("search_gain", math.nan),
                "gain": r.get("gain", math.nan),
                "gain_ci_low": r.get("gain_ci_low", math.nan),
                "gain_ci_high": r.get("gain_ci_high", math.nan),
                "p_adjusted": r.get("p_adjusted", math.nan),
                "evidence": r.get("evidence", ""),
                "nonlinearity": r.get("nonlinearity", math.nan),
                "inert": r.get("inert"),
                "note": r.get("note", ""),
            }
        )
    out = pd.DataFrame(rows, columns=RANK_COLUMNS)
    return out.sort_values(["configuration", "rank"], kind="stable").reset_index(drop=True)


def spearman_exact(x: np.ndarray, y: np.ndarray) -> tuple[float, float, float]:
    """Spearman's ρ of ``(x, y)`` with its exact two-sided permutation p-value.

    ``ρ`` is ``scipy.stats.spearmanr``'s; the p-value is ``scipy.stats.permutation_test`` over
    every pairing (``n!`` of them, exact for the handful of ranks a sweep has; above
    :data:`EXACT_MAX_RANKS` points spearmanr's t approximation), and ``p_min`` is the smallest p
    any data could give with ``n`` points, ``2/n!`` (without ties; 0 for the approximation).

    Returns:
        ``(rho, p, p_min)``.
    """
    from scipy.stats import permutation_test, spearmanr

    sp = spearmanr(x, y)
    rho = float(sp.statistic)
    if len(x) > EXACT_MAX_RANKS:  # n! pairings too many to list: scipy's t approximation
        return rho, float(sp.pvalue), 0.0
    res = permutation_test(  # one sample, 'pairings': every order of y against x (n! of them)
        (y,),
        lambda v: spearmanr(x, v).statistic,
        permutation_type="pairings",
        n_resamples=math.inf,
        alternative="two-sided",
    )
    return rho, float(res.pvalue), min(1.0, 2.0 / math.factorial(len(x)))


def rank_sentence(table: pd.DataFrame) -> str:
    """The rank sweep in words, from :func:`rank_table` (one scaling).

    Per rank: the search gain over QLoRA at that rank and ``ν``; the Spearman correlation of the
    search gain with the rank and its exact permutation p (:func:`spearman_exact`, over the
    configuration with the most ranks); whether ``ν`` stayed at or above the inert threshold at
    every rank.
    """
    if table.empty:
        return ""
    config = table["configuration"].value_counts().index[0]
    t = table[table["configuration"] == config].sort_values("rank")
    scaling = str(t["scaling"].iloc[0])
    parts = []
    for _, r in t.iterrows():
        g, nu = float(r["search_gain"]), float(r["nonlinearity"])
        gain = f"{g:+.4f}" if math.isfinite(g) else "no gain (not measured)"
        nu_s = f"ν = {nu:.3g}" if math.isfinite(nu) else "ν not recorded"
        if isinstance(r["inert"], (bool, np.bool_)) and bool(r["inert"]):
            nu_s += ", inert"
        parts.append(f"r={r['rank']} {gain} ({nu_s})")
    text = f"**Rank sweep ({config}, s = {scaling}): search gain over QLoRA at each rank** — " + (
        "; ".join(parts)
    )
    ok = t[np.isfinite(_num(t, "search_gain"))]
    if len(ok) >= 3 and ok["search_gain"].nunique() > 1:
        x, y = _num(ok, "rank"), _num(ok, "search_gain")
        rho, p, p_min = spearman_exact(x, y)
        trend = "rises" if rho > 0 else "falls"
        text += (
            f". The gain {trend} as the rank grows (Spearman ρ = {rho:+.2f} over {len(ok)} "
            f"ranks, exact permutation p = {p:.2g}"
        )
        if p_min > 0.05:
            text += (
                f"; with {len(ok)} ranks the smallest attainable p is {p_min:.2g}: a "
                "description, not a test"
            )
        text += ")"
    elif len(ok) >= 2:
        text += f". Too few measured ranks ({len(ok)}) for a trend"
    nus = _num(t, "nonlinearity")
    fin = nus[np.isfinite(nus)]
    if len(fin) == len(t) and len(fin):
        if (fin >= INERT_THRESHOLD).all():
            text += (
                f"; ν stayed active at every rank ({fin.min():.3g} … {fin.max():.3g}, the inert "
                f"threshold is {INERT_THRESHOLD:g}): the comparison is about f"
            )
        else:
            low = [str(r) for r, v in zip(t["rank"], nus, strict=True) if v < INERT_THRESHOLD]
            text += (
                f"; ν fell below the inert threshold {INERT_THRESHOLD:g} at r = {', '.join(low)}: "
                "there Sinter was LoRA in all but name"
            )
    elif len(fin) < len(t):
        text += "; ν is missing at some rank (not trained, or no mechanism recorded)"
    return text + "."


def rank_comparison(studies: Sequence[optuna.Study]) -> pd.DataFrame:
    """The rank tables of several studies (e.g. ``rank_sweep`` and ``rank_sweep_rslora``) together.

    Args:
        studies: Loaded studies; each one's scaling is read from its recorded setup.

    Returns:
        The :func:`rank_table` rows of every study with a ``study`` column first, sorted by
        configuration, rank and scaling — each rank's gain and ``ν`` under each scaling.
    """
    from loran_search.analysis.configurations import build_tables
    from loran_search.analysis.records import load_records

    frames = []
    for study in studies:
        configs, baselines, _ = build_tables(load_records(study))
        t = rank_table(configs, baselines, scaling_of(study))
        frames.append(t.assign(study=study.study_name))
    if not frames:
        return pd.DataFrame(columns=["study", *RANK_COLUMNS])
    out = pd.concat(frames, ignore_index=True)[["study", *RANK_COLUMNS]]
    return out.sort_values(["configuration", "rank", "scaling"], kind="stable").reset_index(
        drop=True
    )


# ------------------------------------------------------------------------------ assembly


def analyse_landscape(study: optuna.Study, analysis: Analysis) -> Landscape | None:
    """The section of ``analysis``; ``None`` when neither part applies."""
    configs, rec = analysis.configurations, analysis.records
    cells, activation, rank, notes = landscape_cells(configs)
    ranks = rank_table(configs, analysis.baselines, scaling_of(study))
    if not has_map(cells) and ranks.empty:
        return None
    splits = rec.trials.loc[rec.trials["role"] == R.ROLE_CANDIDATE, "eval_split"].dropna()
    split = str(splits.mode().iloc[0]) if len(splits) else "the search split"
    land = Landscape(
        activation=activation,
        rank=None if rank is None else int(rank),
        metric=rec.metric,
        split=split,
        cells=cells,
        ranks=ranks,
        scaling=scaling_of(study),
        notes=notes if has_map(cells) else [],
    )
    b = analysis.baselines
    if rank is not None and not b.empty:
        at = b[b["rank"] == rank]
        if len(at):
            land.baseline = float(_num(at, "metric_mean")[0])
    if has_map(cells):
        land.readings = [
            ridge_reading(
                cells["amplitude"], cells["frequency"], cells["metric"], f"{rec.metric} on {split}"
            ),
            ridge_reading(
                cells["amplitude"],
                cells["frequency"],
                np.log10(
                    np.where(_num(cells, "nonlinearity") > 0, _num(cells, "nonlinearity"), np.nan)
                ),
                "log10 ν",
            ),
        ]
    elif len(cells) and max(cells["amplitude"].nunique(), cells["frequency"].nunique()) > 1:
        land.notes.append(
            "Landscape map not drawn: it needs at least 2 amplitudes and 2 frequencies "
            f"(the study has {cells['amplitude'].nunique()} × {cells['frequency'].nunique()})."
        )
    land.rank_sentence = rank_sentence(ranks)
    return land


# ------------------------------------------------------------------------------ the figure


def _edges(values: np.ndarray) -> np.ndarray:
    """Cell edges on a log axis: geometric midpoints, the ends mirrored."""
    logs = np.log10(values)
    if len(logs) == 1:
        return 10 ** np.array([logs[0] - 0.5, logs[0] + 0.5])
    mids = (logs[1:] + logs[:-1]) / 2
    return 10 ** np.concatenate([[2 * logs[0] - mids[0]], mids, [2 * logs[-1] - mids[-1]]])


def _metric_colours(values: np.ndarray, baseline: float) -> tuple[str, Any]:
    """The metric panel's colour map and norm: diverging and centred on QLoRA when known.

    White is QLoRA's value, blue better and red worse for a maximised metric (the range always
    includes QLoRA); ``viridis`` without a baseline.
    """
    from matplotlib.colors import TwoSlopeNorm

    finite = values[np.isfinite(values)]
    if not math.isfinite(baseline) or not finite.size:
        return "viridis", None
    lo, hi = min(float(finite.min()), baseline), max(float(finite.max()), baseline)
    pad = max(hi - lo, abs(baseline), 1.0) * 1e-3
    lo, hi = min(lo, baseline - pad), max(hi, baseline + pad)
    return "RdBu", TwoSlopeNorm(vcenter=baseline, vmin=lo, vmax=hi)


def draw(land: Landscape | None, plot_dir: Path, notes: list[str]) -> Path | None:
    """Draw the two heat maps into ``plot_dir`` (``None``, drawing nothing, without a map)."""
    if land is None or not land.has_map:
        return None
    from matplotlib.colors import LogNorm
    from matplotlib.patches import Rectangle

    c = land.cells
    amps = np.sort(c["amplitude"].unique())
    freqs = np.sort(c["frequency"].unique())
    grid = {
        col: c.pivot_table(index="frequency", columns="amplitude", values=col, aggfunc="mean")
        .reindex(index=freqs, columns=amps)
        .to_numpy(dtype=float)
        for col in ("metric", "nonlinearity")
    }
    xe, ye = _edges(amps), _edges(freqs)
    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(13, 5.2))
    nu = grid["nonlinearity"]
    panels = (
        (
            "metric",
            f"{land.metric} on {land.split}",
            *_metric_colours(grid["metric"], land.baseline),
        ),
        (
            "nonlinearity",
            "effective non-linearity ν",
            "magma",
            LogNorm(vmin=np.nanmin(nu[nu > 0]), vmax=np.nanmax(nu[nu > 0]))
            if np.isfinite(nu).any() and (nu > 0).any()
            else None,
        ),
    )
    for ax, (col, label, cmap, norm) in zip(axes, panels, strict=True):
        z = np.ma.masked_invalid(
            np.where(grid[col] > 0, grid[col], np.nan) if col == "nonlinearity" else grid[col]
        )
        mesh = ax.pcolormesh(xe, ye, z, cmap=cmap, norm=norm, shading="flat")
        bar = fig.colorbar(mesh, ax=ax, label=label)
        if col == "metric" and math.isfinite(land.baseline):
            bar.ax.axhline(land.baseline, color="black", linewidth=2)
            bar.ax.text(1.6, land.baseline, "QLoRA", color="black", va="center",
                        transform=bar.ax.get_yaxis_transform(), fontsize=8)  # fmt: skip
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlim(xe[0], xe[-1])
        ax.set_ylim(ye[0], ye[-1])
        for _, cell in c.iterrows():
            i = int(np.searchsorted(amps, cell["amplitude"]))
            j = int(np.searchsorted(freqs, cell["frequency"]))
            v = float(cell[col])
            text = "—" if not math.isfinite(v) else f"{v:.3g}"
            if col == "nonlinearity" and (
                cell["inert"] or (math.isfinite(v) and v < INERT_THRESHOLD)
            ):
                text += "\ninert"
            if cell["confirmed"]:
                text = "★ " + text
                ax.add_patch(
                    Rectangle(
                        (xe[i], ye[j]),
                        xe[i + 1] - xe[i],
                        ye[j + 1] - ye[j],
                        fill=False,
                        edgecolor="black",
                        linewidth=2.5,
                    )
                )
            ax.text(cell["amplitude"], cell["frequency"], text, ha="center", va="center",
                    fontsize=7, color="black",
                    bbox={"facecolor": "white", "alpha": 0.6, "linewidth": 0})  # fmt: skip
        lo, hi = math.log10(xe[0] * ye[0]), math.log10(xe[-1] * ye[-1])
        for k in range(math.ceil(lo), math.floor(hi) + 1):
            xs = np.geomspace(xe[0], xe[-1], 50)
            ax.plot(xs, 10.0**k / xs, linestyle=":", color="grey", linewidth=0.9)
        ax.set_xlabel("amplitude A")
        ax.set_ylabel("frequency ω")
        ax.set_title(f"{land.activation} r={land.rank}: {label}")
    fig.tight_layout()
    plot_dir.mkdir(parents=True, exist_ok=True)
    land.figure = plot_dir / FIGURE
    fig.savefig(land.figure, dpi=DPI)
    plt.close(fig)
    return land.figure


# ------------------------------------------------------------------------------ output


def rank_display(land: Landscape) -> pd.DataFrame:
    """The rank-sweep table as shown (formatted cells)."""
    t = land.ranks.drop(columns=["note"])
    return t.apply(lambda col: col.map(fmt))


def _reading_table(land: Landscape) -> pd.DataFrame:
    rows = [
        {
            "value": r.what,
            "cells": r.n_cells,
            "R² along log(A·ω)": fmt(r.r2_product),
            "R² along log A": fmt(r.r2_amplitude),
            "R² along log ω": fmt(r.r2_frequency),
            "ridge": "—" if r.ridge is None else ("yes" if r.ridge else "no"),
        }
        for r in land.readings
    ]
    return pd.DataFrame(rows)


RANK_CAPTION = (
    "One row per candidate configuration and rank. qlora = QLoRA (identity) at the same rank "
    "and scaling on the search split; search_gain = candidate − QLoRA there (same seeds and "
    "examples); gain, CI and p_adjusted = the configuration table's (the confirmation's where "
    "evidence says so); ν = effective non-linearity (inert below 1e-3). The other scaling is its "
    "own study (studies/rank_sweep_rslora.yaml); landscape.rank_comparison puts them side by side."
)


def markdown(land: Landscape | None, plot_prefix: str = "plots/") -> str:
    """The section as Markdown (empty without one)."""
    if land is None:
        return ""
    lines: list[str] = []
    if land.has_map:
        lines += ["## Landscape (amplitude × frequency)", ""]
        lines += [f"- {r.sentence}" for r in land.readings] + [""]
        lines += [markdown_table(_reading_table(land)), ""]
        if land.figure is not None:
            lines += [f"![{CAPTION}]({plot_prefix}{land.figure.name})", ""]
    if not land.ranks.empty:
        lines += [
            f"## Rank sweep (s = {land.scaling})",
            "",
            land.rank_sentence,
            "",
            RANK_CAPTION,
            "",
        ]
        lines += [markdown_table(rank_display(land)), ""]
    return "\n".join(lines)


def html_section(land: Landscape | None) -> str:
    """The section as HTML (empty without one)."""
    if land is None:
        return ""
    parts: list[str] = []
    if land.has_map:
        parts.append("<h2 id='landscape'>Landscape (amplitude × frequency)</h2><ul>")
        parts += [f"<li>{inline(r.sentence)}</li>" for r in land.readings]
        parts.append("</ul>")
        parts.append(html_table(_reading_table(land)))
        if land.figure is not None and land.figure.exists():
            cap = html.escape(CAPTION)
            parts.append(
                f'<figure id="fig-landscape"><img alt="{cap}" src="{data_uri(land.figure)}">'
                f"<figcaption>{cap}</figcaption></figure>"
            )
    if not land.ranks.empty:
        parts.append(f"<h2 id='rank-sweep'>Rank sweep (s = {html.escape(land.scaling)})</h2>")
        parts.append(f"<p>{inline(land.rank_sentence)}</p>")
        parts.append(f"<p class='caption'>{html.escape(RANK_CAPTION)}</p>")
        parts.append(html_table(rank_display(land)))
    return "".join(parts)


def _reading_json(r: RidgeReading) -> dict[str, Any]:
    """A ridge reading, JSON-ready (non-finite as ``None``)."""
    out = {
        "what": r.what,
        "n_cells": r.n_cells,
        "r2_product": r.r2_product,
        "r2_amplitude": r.r2_amplitude,
        "r2_frequency": r.r2_frequency,
        "best": r.best,
        "ridge": r.ridge,
        "rule": (
            f"leave-one-out R²(log A·ω) ≥ {RIDGE_MIN_R2} and ≥ max(R²(log A), R²(log ω)) + "
            f"{RIDGE_MARGIN}"
        ),
        "sentence": r.sentence,
    }
    return {
        k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in out.items()
    }


def write(land: Landscape | None, out_dir: Path, formats: Collection[str]) -> list[Path]:
    """``landscape.csv``/``rank_sweep.csv`` (``csv``) and ``landscape.json`` (``json``)."""
    if land is None:
        return []
    written: list[Path] = []
    if "csv" in formats:
        if land.has_map:
            path = out_dir / "landscape.csv"
            land.cells.to_csv(path, index=False)
            written.append(path)
        if not land.ranks.empty:
            path = out_dir / "rank_sweep.csv"
            land.ranks.to_csv(path, index=False)
            written.append(path)
    if "json" in formats:
        path = out_dir / "landscape.json"
        doc = {
            "activation": land.activation,
            "rank": land.rank,
            "metric": land.metric,
            "split": land.split,
            "baseline": land.baseline if math.isfinite(land.baseline) else None,
            "cells": json_rows(land.cells) if land.has_map else [],
            "readings": [_reading_json(r) for r in land.readings],
            "scaling": land.scaling,
            "rank_sweep": json_rows(land.ranks),
            "rank_sentence": land.rank_sentence,
            "notes": land.notes,
        }
        path.write_text(json.dumps(doc, indent=1, ensure_ascii=False) + "\n")
        written.append(path)
    return written
