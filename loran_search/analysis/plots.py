"""The report's figures (seaborn on matplotlib's Agg backend, PNG).

Each function writes one PNG into ``out_dir`` and returns its path, or returns ``None`` after
appending to ``notes`` why the figure does not apply to this study (no amplitude parameter, no
baseline, no history, ...). Nothing here raises on thin data.
"""

from __future__ import annotations

import math
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from loran_search.analysis.words import count, plural

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from loran_search.analysis.records import Records

DPI = 110


def _plt() -> Any:
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt
    import seaborn as sns

    sns.set_theme(style="whitegrid", context="notebook")
    return plt


def _save(fig: Figure, out_dir: Path, name: str) -> Path:
    path = out_dir / name
    fig.tight_layout()
    fig.savefig(path, dpi=DPI)
    import matplotlib.pyplot as plt

    plt.close(fig)
    return path


def _finite(df: pd.DataFrame, *cols: str) -> pd.DataFrame:
    mask = np.ones(len(df), dtype=bool)
    for c in cols:
        if c not in df:
            return df.iloc[0:0]
        mask &= np.isfinite(pd.to_numeric(df[c], errors="coerce").to_numpy(dtype=float))
    return df[mask]


def gain_vs_amplitude(configs: pd.DataFrame, out_dir: Path, notes: list[str]) -> Path | None:
    """Gain over QLoRA against amplitude, one line per (family, rank), with the table's CIs."""
    d = _finite(configs, "amplitude", "gain")
    if d.empty:
        notes.append(
            "Plot 'gain vs amplitude' skipped: no configuration has both an amplitude and a "
            "paired gain."
        )
        return None
    plt = _plt()
    import seaborn as sns

    fig, ax = plt.subplots(figsize=(7.5, 4.6))
    palette = sns.color_palette("deep")
    # One line per (family, rank) — and per frequency when a few frequencies were tried; with
    # many frequencies the points are not a curve in A, so they are drawn unconnected.
    d = d.assign(_freq=d.get("frequency", np.nan))
    freqs = np.unique(d["_freq"].to_numpy(dtype=float)[np.isfinite(d["_freq"].to_numpy(float))])
    connect = freqs.size <= 5
    keys = ["family", "rank", "_freq"] if connect and freqs.size > 1 else ["family", "rank"]
    for i, (key, g) in enumerate(d.groupby(keys, sort=True)):
        g = g.sort_values("amplitude")
        color = palette[i % len(palette)]
        x = g["amplitude"].to_numpy(dtype=float)
        label = f"{key[0]} (r={key[1]}" + (f", ω={key[2]:.3g})" if len(key) > 2 else ")")
        ax.plot(x, g["gain"], "o-" if connect else "o", color=color, label=label)
        lo, hi = g["gain_ci_low"].to_numpy(dtype=float), g["gain_ci_high"].to_numpy(dtype=float)
        ok = np.isfinite(lo) & np.isfinite(hi)
        if ok.any() and connect:
            ax.fill_between(x[ok], lo[ok], hi[ok], color=color, alpha=0.2, linewidth=0)
        elif ok.any():
            ax.errorbar(x[ok], g["gain"].to_numpy(float)[ok], yerr=[
                g["gain"].to_numpy(float)[ok] - lo[ok], hi[ok] - g["gain"].to_numpy(float)[ok]
            ], fmt="none", ecolor=color, alpha=0.5)  # fmt: skip
    ax.axhline(0.0, color="black", linewidth=1, linestyle="--", label="QLoRA baseline")
    if (d["amplitude"] > 0).all():
        ax.set_xscale("log")
    ax.set_xlabel("amplitude A")
    ax.set_ylabel("gain over QLoRA (same rank & seed)")
    ax.set_title("Gain vs amplitude (bands: the decisive test's intervals)")
    ax.legend(fontsize="small")
    return _save(fig, out_dir, "gain_vs_amplitude.png")


def _axis_labels(values: np.ndarray, max_levels: int = 8) -> np.ndarray:
    """Exact values when few distinct, else log-spaced bins labelled by their geometric centre."""
    distinct = np.unique(values)
    if distinct.size <= max_levels:
        return np.array([f"{v:.3g}" for v in values], dtype=object)
    positive = (values > 0).all()
    v = np.log10(values) if positive else values
    edges = np.linspace(v.min(), v.max(), 7)
    idx = np.clip(np.digitize(v, edges[1:-1]), 0, 5)
    centres = (edges[:-1] + edges[1:]) / 2
    lab = [f"~{(10**c if positive else c):.2g}" for c in centres]
    return np.array([lab[i] for i in idx], dtype=object)


def amp_freq_heatmap(
    configs: pd.DataFrame, out_dir: Path, notes: list[str], metric: str
) -> Path | None:
    """Gain (or the metric, without a baseline) over amplitude × frequency."""
    d = _finite(configs, "amplitude", "frequency")
    value = "gain"
    if _finite(d, "gain").empty:
        value = "metric_mean"
    d = _finite(d, value)
    if d.empty:
        notes.append(
            "Plot 'amplitude × frequency heatmap' skipped: no configuration with both an "
            "amplitude and a frequency has a result."
        )
        return None
    act = d["activation"].value_counts().index[0]
    d = d[d["activation"] == act].copy()
    d["A"] = _axis_labels(d["amplitude"].to_numpy(dtype=float))
    d["ω"] = _axis_labels(d["frequency"].to_numpy(dtype=float))
    order_a = d.sort_values("amplitude")["A"].drop_duplicates().tolist()
    order_w = d.sort_values("frequency")["ω"].drop_duplicates().tolist()
    grid = d.pivot_table(index="ω", columns="A", values=value, aggfunc="mean")
    grid = grid.reindex(index=order_w[::-1], columns=order_a)
    plt = _plt()
    import seaborn as sns

    fig, ax = plt.subplots(figsize=(1.1 * len(order_a) + 3.5, 0.6 * len(order_w) + 2.6))
    center = 0.0 if value == "gain" else None
    with warnings.catch_warnings():  # seaborn's own use of a deprecated colormap call
        warnings.simplefilter("ignore", PendingDeprecationWarning)
        sns.heatmap(
            grid,
            annot=True,
            fmt=".3g",
            cmap="RdBu" if value == "gain" else "viridis",
            center=center,
            ax=ax,
            cbar_kws={"label": "gain" if value == "gain" else metric},
        )
    ax.set_xlabel("amplitude A")
    ax.set_ylabel("frequency ω")
    what = "gain over QLoRA" if value == "gain" else f"{metric} (no baseline)"
    ax.set_title(f"{act}: {what} over A × ω")
    return _save(fig, out_dir, "amp_freq_heatmap.png")


def stability_by_family(
    families: pd.DataFrame, runs: pd.DataFrame, out_dir: Path, notes: list[str]
) -> Path | None:
    """Divergence rate, loss-spike rate and the gradient-norm maxima per family."""
    f = _finite(families, "diverged_rate")
    if f.empty:
        notes.append("Plot 'stability per family' skipped: no run has stability telemetry.")
        return None
    plt = _plt()
    import seaborn as sns

    fig, axes = plt.subplots(1, 3, figsize=(12, 4.2))
    order = f["family"].tolist()
    sns.barplot(data=f, x="family", y="diverged_rate", order=order, ax=axes[0], color="C3")
    axes[0].set_ylim(0, 1)
    axes[0].set_title("diverged runs")
    sns.barplot(data=f, x="family", y="loss_spike_rate", order=order, ax=axes[1], color="C1")
    axes[1].set_ylim(0, 1)
    axes[1].set_title("runs with loss spikes")
    g = _finite(runs, "grad_norm_max")
    g = g[g["family"].isin(order)]
    if not g.empty:
        sns.stripplot(data=g, x="family", y="grad_norm_max", order=order, ax=axes[2], size=5)
        if (g["grad_norm_max"] > 0).all():
            axes[2].set_yscale("log")
    axes[2].set_title("max gradient norm per run")
    for ax in axes:
        ax.set_xlabel("")
        ax.tick_params(axis="x", rotation=30)
    return _save(fig, out_dir, "stability_by_family.png")


def calibration(configs: pd.DataFrame, out_dir: Path, notes: list[str]) -> Path | None:
    """Stability against A·ω (amplitude × frequency) and against the audit's Lipschitz bound."""
    axes_spec = (
        ("amp_freq", "amplitude × frequency (A·ω)"),
        ("lipschitz", "Lipschitz bound on [-1, 1]"),
    )
    panels = [(c, lab) for c, lab in axes_spec if not _finite(configs, c, "diverged_rate").empty]
    if not panels:
        notes.append(
            "Plot 'calibration' skipped: no configuration has both stability telemetry and an "
            "A·ω product or a Lipschitz bound."
        )
        return None
    plt = _plt()
    fig, axes = plt.subplots(1, len(panels), figsize=(6.2 * len(panels), 4.2), squeeze=False)
    for ax, (col, label) in zip(axes[0], panels, strict=True):
        d = _finite(configs, col, "diverged_rate").sort_values(col)
        x = d[col].to_numpy(dtype=float)
        ax.plot(x, d["diverged_rate"], "o", color="C3", label="diverged", markersize=7)
        ax.plot(x, d["loss_spike_rate"], "^", color="C1", label="loss spikes", alpha=0.8)
        if (x > 0).all():
            ax.set_xscale("log")
        ax.set_ylim(-0.05, 1.05)
        ax.set_xlabel(label)
        ax.set_ylabel("share of runs")
        handles, labels = ax.get_legend_handles_labels()
        g = d["grad_norm_max"].to_numpy(dtype=float) if "grad_norm_max" in d else np.array([])
        if g.size and np.isfinite(g).any() and (g[np.isfinite(g)] > 0).all():
            # The early sign: the largest pre-clipping gradient norm, on its own log axis.
            ax2 = ax.twinx()
            ax2.plot(x, g, "s--", color="C0", alpha=0.7, label="max grad norm (right)")
            ax2.set_yscale("log")
            ax2.set_ylabel("max gradient norm")
            ax2.grid(False)
            h2, l2 = ax2.get_legend_handles_labels()
            handles, labels = handles + h2, labels + l2
        ax.legend(handles, labels, fontsize="small", loc="upper left")
    fig.suptitle("Calibration: where training becomes unstable")
    return _save(fig, out_dir, "calibration.png")


def pareto(pareto_all: pd.DataFrame, out_dir: Path, notes: list[str]) -> Path | None:
    """Gain vs train seconds and gain vs unstable-run rate, fronts highlighted."""
    panels = [
        (c, f, label)
        for c, f, label in (
            ("train_seconds", "front_cost", "train seconds"),
            ("unstable_rate", "front_stability", "unstable-run rate"),
        )
        if not _finite(pareto_all, c, "gain").empty
    ]
    if not panels:
        notes.append("Plot 'Pareto fronts' skipped: no configuration has a gain and a cost.")
        return None
    plt = _plt()
    fig, axes = plt.subplots(1, len(panels), figsize=(6.2 * len(panels), 4.2), squeeze=False)
    for ax, (col, front, label) in zip(axes[0], panels, strict=True):
        d = _finite(pareto_all, col, "gain")
        ax.plot(d[col], d["gain"], "o", color="0.6", label="configurations")
        fr = d[d[front].astype(bool)].sort_values(col)
        ax.plot(fr[col], fr["gain"], "o-", color="C0", label="Pareto front")
        ax.axhline(0.0, color="black", linewidth=1, linestyle="--")
        ax.set_xlabel(label)
        ax.set_ylabel("gain over QLoRA")
        ax.legend(fontsize="small")
    fig.suptitle("Pareto fronts (gain is direction-aware: up is better)")
    return _save(fig, out_dir, "pareto.png")


def importance(table: pd.DataFrame, out_dir: Path, notes: list[str]) -> Path | None:
    """Bar chart of PED-ANOVA importances per scope."""
    if table.empty:
        return None
    plt = _plt()
    import seaborn as sns

    fig, ax = plt.subplots(figsize=(7, 0.45 * len(table) + 1.8))
    sns.barplot(data=table, y="param", x="importance", hue="scope", ax=ax, orient="h")
    ax.set_title("Parameter importance (PED-ANOVA)")
    return _save(fig, out_dir, "importance.png")


def loss_curves(
    rec: Records, configs: pd.DataFrame, out_dir: Path, notes: list[str], top: int = 3
) -> Path | None:
    """Training loss of the best configurations and of the baseline at their ranks."""
    if not rec.histories:
        notes.append("Plot 'training-loss curves' skipped: no trial records a history.")
        return None
    trials = rec.trials[rec.trials["state"] == "COMPLETE"]
    rows: list[dict[str, Any]] = []

    def add(label: str, numbers: list[int]) -> None:
        for n in numbers:
            for seed, hist in rec.histories.get(int(n), {}).items():
                for h in hist:
                    step, loss = h.get("step"), h.get("loss")
                    numeric = isinstance(step, (int, float)) and isinstance(loss, (int, float))
                    if numeric and math.isfinite(float(loss)):
                        rows.append({"run": label, "seed": seed, "step": step, "loss": loss})

    ranks: set[Any] = set()
    for _, c in configs.head(top).iterrows():
        nums = trials.loc[[k == c["key"] for k in trials["key"]], "trial"].tolist()
        add(c["config"], nums)
        ranks.add(c["rank"])
    for r in sorted(ranks, key=lambda v: (v is None, v or 0)):
        nums = trials.loc[
            (trials["role"] == "baseline") & np.array([x == r for x in trials["rank"]]), "trial"
        ].tolist()
        add(f"QLoRA baseline r={r}", nums)
    if not rows:
        notes.append(
            "Plot 'training-loss curves' skipped: the best configurations record no loss history."
        )
        return None
    df = pd.DataFrame(rows)
    plt = _plt()
    import seaborn as sns

    fig, ax = plt.subplots(figsize=(8, 4.6))
    sns.lineplot(data=df, x="step", y="loss", hue="run", errorbar=("pi", 100), ax=ax)
    ax.set_title("Training loss (line: mean over seeds; band: min–max)")
    ax.legend(fontsize="small")
    return _save(fig, out_dir, "loss_curves.png")


def shapes(
    configs: pd.DataFrame,
    out_dir: Path,
    notes: list[str],
    top: int = 3,
    interval: tuple[float, float] = (-1.0, 1.0),
    interval_note: str = "",
) -> Path | None:
    """``f`` and ``f'`` (torch autograd) of the top configurations and the identity.

    Args:
        configs: The configuration table (best first).
        out_dir: Where the PNG goes.
        notes: Receives why the figure or a curve was not drawn.
        top: How many configurations to draw.
        interval: The range of ``x`` (the visited range of ``P`` when the study records it).
        interval_note: Where ``interval`` comes from (shown in the title).
    """
    try:
        import torch

        from activations import get_activation
    except Exception as err:  # pragma: no cover - torch is a dependency
        notes.append(f"Plot 'activation shapes' skipped: {type(err).__name__}: {err}")
        return None
    curves: list[tuple[str, np.ndarray, np.ndarray]] = []
    x = torch.linspace(interval[0], interval[1], 4001, dtype=torch.float64, requires_grad=True)
    seen: set[str] = set()
    for _, c in configs.head(top).iterrows():
        label = c["config"].rsplit(" r=", 1)[0]
        if label in seen or c.get("family") == "method":  # a peer method (issue 13) has no f
            continue
        seen.add(label)
        params = dict(c["key"][2])
        try:
            fn = get_activation(c["activation"], **params)
            y = fn(x)
            (dy,) = torch.autograd.grad(y.sum(), x)
        except Exception as err:
            notes.append(
                f"Shape of {label} not drawn: {type(err).__name__}: {err} (an inline formula "
                "activation is only registered while its study runs)."
            )
            continue
        curves.append((label, y.detach().numpy(), dy.detach().numpy()))
    if not curves:
        notes.append("Plot 'activation shapes' skipped: no top configuration could be built.")
        return None
    plt = _plt()
    fig, axes = plt.subplots(1, 3, figsize=(16, 4.4))
    xs = x.detach().numpy()
    axes[0].plot(xs, xs, "k--", linewidth=1, label="identity (QLoRA)")
    axes[1].plot(xs, np.zeros_like(xs), "k--", linewidth=1, label="identity (QLoRA)")
    axes[2].plot(xs, np.ones_like(xs), "k--", linewidth=1, label="identity (QLoRA)")
    for label, y, dy in curves:
        axes[0].plot(xs, y, label=label, linewidth=1)
        axes[1].plot(xs, y - xs, label=label, linewidth=0.8, alpha=0.85)
        axes[2].plot(xs, dy, label=label, linewidth=0.8, alpha=0.85)
    axes[0].set_title("f(x)")
    axes[1].set_title("f(x) − x (departure from the identity)")
    axes[2].set_title("f′(x)")
    for ax in axes:
        ax.set_xlabel("x (entry of B·A)")
        ax.legend(fontsize="x-small")
    title = f"Shapes of the top configurations on [{interval[0]:.3g}, {interval[1]:.3g}]"
    fig.suptitle(title + (f" — {interval_note}" if interval_note else ""))
    return _save(fig, out_dir, "shapes.png")


def _interval_bars(d: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(gain, lower error, upper error)`` with zero-length bars where there is no interval."""
    g = d["gain"].to_numpy(dtype=float)
    lo = d["gain_ci_low"].to_numpy(dtype=float)
    hi = d["gain_ci_high"].to_numpy(dtype=float)
    ok = np.isfinite(lo) & np.isfinite(hi)
    return g, np.where(ok, g - lo, 0.0), np.where(ok, hi - g, 0.0)


def gain_intervals(
    configs: pd.DataFrame, out_dir: Path, notes: list[str], top: int = 15
) -> Path | None:
    """The gain of the top configurations with their intervals (a forest plot; ``ci_level``).

    Confirmed configurations show their confirmation gain (held-out, filled) and their
    search-phase gain (hollow, optimistic); the others their search gain only.
    """
    d = _finite(configs, "gain").head(top)
    if d.empty:
        notes.append("Plot 'gain with intervals' skipped: no configuration has a paired gain.")
        return None
    plt = _plt()
    fig, ax = plt.subplots(figsize=(10.5, 0.42 * len(d) + 2.6))
    y = np.arange(len(d))[::-1]
    g, el, eh = _interval_bars(d)
    confirmed = (
        (d["evidence"] == "confirmation").to_numpy()
        if "evidence" in d
        else np.zeros(len(d), dtype=bool)
    )
    for mask, color, label in (
        (confirmed, "C0", "confirmation (held-out) gain, interval"),
        (~confirmed, "C1", "search-phase gain, interval (optimistic)"),
    ):
        if mask.any():
            ax.errorbar(g[mask], y[mask], xerr=[el[mask], eh[mask]], fmt="o", color=color,
                        capsize=3, label=label)  # fmt: skip
    if "search_gain" in d and confirmed.any():
        sg = d["search_gain"].to_numpy(dtype=float)
        ok = confirmed & np.isfinite(sg)
        ax.plot(sg[ok], y[ok] + 0.18, "o", mfc="none", color="C1",
                label="its search-phase gain (optimistic)")  # fmt: skip
    ax.axvline(0.0, color="black", linewidth=1, linestyle="--", label="QLoRA")
    ax.set_yticks(y)
    ax.set_yticklabels([str(c) for c in d["config"]], fontsize="small")
    ax.set_xlabel("gain over QLoRA (same rank, seed and examples)")
    ax.set_title(f"Gain over QLoRA with the decisive test's intervals (top {len(d)})")
    below = -0.8 / (0.42 * len(d) + 1.2)  # about 0.8 in under the axes, past the x label
    ax.legend(fontsize="small", loc="upper center", bbox_to_anchor=(0.5, below), ncol=2,
              frameon=False)  # fmt: skip
    return _save(fig, out_dir, "gain_intervals.png")


def gain_vs_nonlinearity(
    configs: pd.DataFrame, out_dir: Path, notes: list[str], threshold: float
) -> Path | None:
    """Gain against the effective non-linearity ν (log x) with interval bars."""
    d = _finite(configs, "gain", "nonlinearity")
    dropped = int((d["nonlinearity"].astype(float) <= 0).sum()) if len(d) else 0
    d = d[d["nonlinearity"].astype(float) > 0] if len(d) else d
    if d.empty:
        notes.append(
            "Plot 'gain vs non-linearity' skipped: no configuration has both a paired gain and a "
            "recorded effective non-linearity ν > 0 (older records carry no mechanism)."
        )
        return None
    if dropped:
        notes.append(
            f"Plot 'gain vs non-linearity': {count(dropped, 'configuration')} with ν = 0 "
            f"{plural(dropped, 'is')} not drawn "
            "(a log axis)."
        )
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7.5, 4.6))
    g, el, eh = _interval_bars(d)
    x = d["nonlinearity"].to_numpy(dtype=float)
    flags = d["inert"].tolist() if "inert" in d else [None] * len(d)
    inert = np.array(
        [
            bool(f) if isinstance(f, (bool, np.bool_)) else bool(v < threshold)
            for f, v in zip(flags, x, strict=True)
        ],
        dtype=bool,
    )
    for mask, color, label in (
        (~inert, "C0", "non-linearity active"),
        (inert, "C7", f"LoRA in all but name (ν < {threshold:g})"),
    ):
        if mask.any():
            ax.errorbar(x[mask], g[mask], yerr=[el[mask], eh[mask]], fmt="o", color=color,
                        capsize=3, label=label)  # fmt: skip
    ax.axvline(threshold, color="C3", linewidth=1, linestyle=":", label="inert threshold")
    ax.axhline(0.0, color="black", linewidth=1, linestyle="--", label="QLoRA")
    ax.set_xscale("log")
    ax.set_xlabel("effective non-linearity ν = ‖f(P) − P‖ / ‖P‖ (median over runs)")
    ax.set_ylabel("gain over QLoRA")
    ax.set_title("Gain vs the non-linearity that was active (bars: the table's intervals)")
    ax.legend(fontsize="small")
    return _save(fig, out_dir, "gain_vs_nonlinearity.png")
