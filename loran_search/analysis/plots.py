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

from loran_search.words import count, plural

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from loran_search.analysis.model import Records

DPI = 110

#: The loss-spike rule's factor when the study does not record ``training.spike_factor``.
DEFAULT_SPIKE_FACTOR = 2.0
#: Legend labels of the two kinds of evidence a figure may mix (issue 22).
TEST_LABEL = "held-out test gain (confirmation)"
VAL_LABEL = "validation gain (search, optimistic)"


def _phases(d: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """``(confirmed mask, validation gain)`` of each row.

    A confirmed configuration's ``gain`` is its held-out (test) gain; its validation gain is
    ``search_gain``. For the others ``gain`` already is the validation gain.
    """
    confirmed = (
        (d["evidence"] == "confirmation").to_numpy(dtype=bool)
        if "evidence" in d
        else np.zeros(len(d), dtype=bool)
    )
    gain = d["gain"].to_numpy(dtype=float)
    val = d["search_gain"].to_numpy(dtype=float) if "search_gain" in d else gain.copy()
    val = np.where(confirmed, val, gain)
    return confirmed, val


def pyplot() -> Any:
    """``matplotlib.pyplot`` on the file-only ``Agg`` backend (no display needed)."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _plt() -> Any:
    """:func:`pyplot` with the report's seaborn theme."""
    import seaborn as sns

    plt = pyplot()
    sns.set_theme(style="whitegrid", context="notebook")
    return plt


def _save(fig: Figure, out_dir: Path, name: str) -> Path:
    path = out_dir / name
    fig.tight_layout()
    fig.savefig(path, dpi=DPI)
    pyplot().close(fig)
    return path


def _finite(df: pd.DataFrame, *cols: str) -> pd.DataFrame:
    mask = np.ones(len(df), dtype=bool)
    for c in cols:
        if c not in df:
            return df.iloc[0:0]
        mask &= np.isfinite(pd.to_numeric(df[c], errors="coerce").to_numpy(dtype=float))
    return df[mask]


def gain_vs_amplitude(configs: pd.DataFrame, out_dir: Path, notes: list[str]) -> Path | None:
    """Gain over QLoRA against amplitude, one line per (family, rank), with the table's intervals.

    The line joins the *validation* gains of every configuration (one phase, comparable along
    the curve, hollow markers); a confirmed configuration adds its *held-out test* gain as a
    filled marker. Bars are the decisive test's intervals where the table has them (the
    validation ones of unconfirmed configurations, the test ones of confirmed configurations).
    Not drawn with fewer than two amplitudes (no curve to show).
    """
    d = _finite(configs, "amplitude", "gain")
    if d.empty:
        notes.append(
            "Plot 'gain vs amplitude' skipped: no configuration has both an amplitude and a "
            "paired gain."
        )
        return None
    if np.unique(d["amplitude"].to_numpy(dtype=float)).size < 2:
        notes.append(
            "Plot 'gain vs amplitude' skipped: every configuration has the same amplitude, so "
            "there is no curve to draw."
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
        confirmed, val = _phases(g)
        label = f"{key[0]} (r={key[1]}" + (f", ω={key[2]:.3g})" if len(key) > 2 else ")")
        ok_val = np.isfinite(val)
        ax.plot(x[ok_val], val[ok_val], "o-" if connect else "o", color=color, mfc="white",
                label=f"{label}: validation")  # fmt: skip
        gain = g["gain"].to_numpy(dtype=float)
        lo, hi = g["gain_ci_low"].to_numpy(dtype=float), g["gain_ci_high"].to_numpy(dtype=float)
        ok = np.isfinite(lo) & np.isfinite(hi)
        if ok.any():
            ax.errorbar(x[ok], gain[ok], yerr=[gain[ok] - lo[ok], hi[ok] - gain[ok]], fmt="none",
                        ecolor=color, alpha=0.5, capsize=3)  # fmt: skip
        if confirmed.any():
            ax.plot(x[confirmed], gain[confirmed], "D", color=color, markersize=8,
                    markeredgecolor="black", label=f"{label}: held-out test")  # fmt: skip
    ax.axhline(0.0, color="black", linewidth=1, linestyle="--", label="QLoRA baseline")
    if (d["amplitude"] > 0).all():
        ax.set_xscale("log")
    ax.set_xlabel("amplitude A")
    ax.set_ylabel("gain over QLoRA (same rank & seed)")
    ax.set_title(
        "Gain vs amplitude — hollow: validation (search), ◆: held-out test\n"
        "(bars: the decisive test's intervals)",
        fontsize="medium",
    )
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
    """Validation gain (or the metric, without a baseline) over amplitude × frequency.

    Every cell is the *validation* (search) gain, one phase throughout; a confirmed cell is
    outlined and adds its held-out test gain on a second line. Not drawn when amplitude or
    frequency has a single value (a 1 × N strip: the gain-vs-amplitude figure shows it).
    """
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
    n_a = np.unique(d["amplitude"].to_numpy(dtype=float)).size
    n_w = np.unique(d["frequency"].to_numpy(dtype=float)).size
    if n_a < 2 or n_w < 2:
        notes.append(
            f"Plot 'amplitude × frequency heatmap' skipped: {act} was tried at "
            f"{count(n_a, 'amplitude')} and {count(n_w, 'frequency', 'frequencies')}, a "
            f"{n_w} × {n_a} grid with nothing a heat map adds to the gain-vs-amplitude figure."
        )
        return None
    confirmed, val = _phases(d) if value == "gain" else (np.zeros(len(d), bool), None)
    d["_val"] = val if val is not None else d[value].to_numpy(dtype=float)
    d["_test"] = np.where(confirmed, d[value].to_numpy(dtype=float), np.nan)
    d["A"] = _axis_labels(d["amplitude"].to_numpy(dtype=float))
    d["ω"] = _axis_labels(d["frequency"].to_numpy(dtype=float))
    order_a = d.sort_values("amplitude")["A"].drop_duplicates().tolist()
    order_w = d.sort_values("frequency")["ω"].drop_duplicates().tolist()
    grid = d.pivot_table(index="ω", columns="A", values="_val", aggfunc="mean")
    grid = grid.reindex(index=order_w[::-1], columns=order_a)
    test = d.pivot_table(index="ω", columns="A", values="_test", aggfunc="mean")
    test = test.reindex(index=order_w[::-1], columns=order_a)
    annot = np.full(grid.shape, "", dtype=object)
    for i in range(grid.shape[0]):
        for j in range(grid.shape[1]):
            v, t = grid.iat[i, j], test.iat[i, j]
            cell = "" if not np.isfinite(v) else f"{v:.3g}"
            if np.isfinite(t):
                cell += f"\ntest {t:.3g}"
            annot[i, j] = cell
    plt = _plt()
    import seaborn as sns
    from matplotlib.patches import Patch, Rectangle

    fig, ax = plt.subplots(figsize=(1.1 * len(order_a) + 3.5, 0.6 * len(order_w) + 2.8))
    center = 0.0 if value == "gain" else None
    with warnings.catch_warnings():  # seaborn's own use of a deprecated colormap call
        warnings.simplefilter("ignore", PendingDeprecationWarning)
        sns.heatmap(
            grid,
            annot=annot,
            fmt="",
            cmap="RdBu" if value == "gain" else "viridis",
            center=center,
            ax=ax,
            cbar_kws={"label": "validation gain" if value == "gain" else metric},
        )
    outlined = False
    for i in range(test.shape[0]):
        for j in range(test.shape[1]):
            if np.isfinite(test.iat[i, j]):
                ax.add_patch(Rectangle((j, i), 1, 1, fill=False, edgecolor="black", linewidth=2.5))
                outlined = True
    ax.set_xlabel("amplitude A")
    ax.set_ylabel("frequency ω")
    what = "validation gain over QLoRA" if value == "gain" else f"{metric} (no baseline)"
    ax.set_title(f"{act}: {what} over A × ω")
    handles = [
        Patch(facecolor="white", edgecolor="0.7", label="colour, number: validation (search)")
    ]
    if outlined:
        label = "outlined: confirmed, 2nd line = held-out test gain"
        handles.append(Patch(facecolor="white", edgecolor="black", linewidth=2.5, label=label))
    ax.legend(handles=handles, fontsize="small", loc="upper center", bbox_to_anchor=(0.5, -0.18),
              ncol=1, frameon=False)  # fmt: skip
    return _save(fig, out_dir, "amp_freq_heatmap.png")


def stability_by_family(
    families: pd.DataFrame, runs: pd.DataFrame, out_dir: Path, notes: list[str]
) -> Path | None:
    """Divergence rate, loss-spike rate and the gradient-norm maxima per family.

    A panel whose bars are all zero (no run diverged, no run spiked) is left out and the title
    says so; with nothing left the figure is not drawn.
    """
    f = _finite(families, "diverged_rate")
    if f.empty:
        notes.append("Plot 'stability per family' skipped: no run has stability telemetry.")
        return None
    order = f["family"].tolist()
    g = _finite(runs, "grad_norm_max")
    g = g[g["family"].isin(order)]
    panels = []
    empty = []
    for col, title, color in (
        ("diverged_rate", "diverged runs", "C3"),
        ("loss_spike_rate", "runs with loss spikes", "C1"),
    ):
        vals = pd.to_numeric(f[col], errors="coerce").to_numpy(dtype=float)
        if np.nanmax(np.where(np.isfinite(vals), vals, 0.0)) > 0:
            panels.append((col, title, color))
        else:
            empty.append(title.replace("runs with ", "").replace(" runs", ""))
    if not g.empty:
        panels.append(("grad_norm_max", "max gradient norm per run", "C0"))
    if not panels:
        notes.append(
            "Plot 'stability per family' skipped: no run diverged or had a loss spike and no run "
            "records a gradient norm."
        )
        return None
    plt = _plt()
    import seaborn as sns

    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels) + 0.6, 4.2),
                             squeeze=False)  # fmt: skip
    for ax, (col, title, color) in zip(axes[0], panels, strict=True):
        if col == "grad_norm_max":
            sns.stripplot(data=g, x="family", y=col, order=order, ax=ax, size=5)
            if (g[col] > 0).all():
                ax.set_yscale("log")
        else:
            sns.barplot(data=f, x="family", y=col, order=order, ax=ax, color=color)
            ax.set_ylim(0, 1)
        ax.set_title(title)
        ax.set_xlabel("")
        ax.tick_params(axis="x", rotation=30)
    if empty:
        fig.suptitle(f"No run had {' or '.join(empty)} (panel left out)", fontsize="medium")
    return _save(fig, out_dir, "stability_by_family.png")


def calibration(configs: pd.DataFrame, out_dir: Path, notes: list[str]) -> Path | None:
    """Stability against A·ω (amplitude × frequency) and against the audit's Lipschitz bound."""
    axes_spec = (
        ("amp_freq", "amplitude × frequency (A·ω)"),
        ("lipschitz", "Lipschitz bound on [-1, 1]"),
    )
    panels = [(c, lab) for c, lab in axes_spec if not _finite(configs, c, "diverged_rate").empty]
    rates = _finite(configs, "diverged_rate")
    unstable = rates[["diverged_rate", "loss_spike_rate"]].to_numpy(dtype=float)
    grads = _finite(rates, "grad_norm_max")["grad_norm_max"].to_numpy(dtype=float)
    flat_grads = grads.size == 0 or float(np.ptp(grads)) == 0.0
    if panels and not np.nanmax(unstable, initial=0.0) > 0 and flat_grads:
        notes.append(
            "Plot 'calibration' skipped: no run diverged or had a loss spike and every maximum "
            "gradient norm is the same, so there is no onset of instability to place."
        )
        return None
    if len(panels) == 2 and _same_order(configs, "amp_freq", "lipschitz"):
        # the Lipschitz bound is a monotone function of A·ω here: the two panels would be the
        # same picture with another x label
        panels = panels[:1]
        notes.append(
            "Plot 'calibration': the Lipschitz-bound panel is left out — the bound orders the "
            "configurations exactly as A·ω does, so it would repeat the A·ω panel."
        )
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


def _same_order(configs: pd.DataFrame, a: str, b: str) -> bool:
    """Whether the panels on ``a`` and on ``b`` show the same points in the same order.

    True when both hold the same configurations and ``b`` ranks them exactly as ``a`` does
    (``b`` a monotone function of ``a``): the second panel would repeat the first.
    """
    d = _finite(configs, a, b, "diverged_rate")
    if len(d) != len(_finite(configs, b, "diverged_rate")) or len(d) < 2:
        return len(d) == len(_finite(configs, b, "diverged_rate"))
    ra = d[a].astype(float).rank(method="dense").to_numpy()
    rb = d[b].astype(float).rank(method="dense").to_numpy()
    return bool(np.array_equal(ra, rb))


def pareto(pareto_all: pd.DataFrame, out_dir: Path, notes: list[str]) -> Path | None:
    """Gain vs train seconds and gain vs unstable-run rate, fronts highlighted.

    Filled markers are held-out test gains (confirmed configurations), hollow ones validation
    gains. A panel whose cost is the same for every configuration (every point at one x, e.g.
    no run was unstable) is left out with a note; with none left the figure is not drawn.
    """
    panels = []
    left_out = []
    for c, f, label in (
        ("train_seconds", "front_cost", "train seconds"),
        ("unstable_rate", "front_stability", "unstable-run rate"),
    ):
        d = _finite(pareto_all, c, "gain")
        if d.empty:
            continue
        x = d[c].to_numpy(dtype=float)
        if np.allclose(x, x[0]):
            left_out.append(f"{label} = {x[0]:.3g}")
            continue
        panels.append((c, f, label))
    if left_out:
        what = "skipped" if not panels else "has one panel"
        notes.append(
            f"Plot 'Pareto fronts' {what}: every configuration has {' and '.join(left_out)}, so "
            "there is no trade-off to show there."
        )
    if not panels:
        return None
    plt = _plt()
    fig, axes = plt.subplots(1, len(panels), figsize=(6.2 * len(panels), 4.4), squeeze=False)
    for ax, (col, front, label) in zip(axes[0], panels, strict=True):
        d = _finite(pareto_all, col, "gain")
        confirmed = (
            (d["evidence"] == "confirmation").to_numpy(dtype=bool)
            if "evidence" in d
            else np.zeros(len(d), dtype=bool)
        )
        x, y = d[col].to_numpy(dtype=float), d["gain"].to_numpy(dtype=float)
        if (~confirmed).any():
            ax.plot(x[~confirmed], y[~confirmed], "o", mfc="white", color="0.45", label=VAL_LABEL)
        if confirmed.any():
            ax.plot(x[confirmed], y[confirmed], "D", color="C2", label=TEST_LABEL)
        fr = d[d[front].astype(bool)].sort_values(col)
        ax.plot(fr[col], fr["gain"], "-", color="C0", label="Pareto front")
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
    rec: Records,
    configs: pd.DataFrame,
    out_dir: Path,
    notes: list[str],
    top: int = 3,
    spike_factor: float = DEFAULT_SPIKE_FACTOR,
) -> Path | None:
    """Training loss of the best configurations and of the baseline at their ranks.

    The loss-spike rule of training (:func:`loran_search.record.is_spike`: a step's loss above
    ``spike_factor`` × the median of the previous ≤ 10 steps, once 3 exist) is stated in the
    title and every recorded step it flags is marked ×, so the curve and the verdict's spike
    count say the same thing; a jump below the rule's factor is not a spike.
    """
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
    spikes = _spikes(df, spike_factor)
    plt = _plt()
    import seaborn as sns

    fig, ax = plt.subplots(figsize=(8, 4.8))
    sns.lineplot(data=df, x="step", y="loss", hue="run", errorbar=("pi", 100), ax=ax)
    if len(spikes):
        ax.plot(spikes["step"], spikes["loss"], "x", color="C3", markersize=9, mew=2,
                label="loss spike (a run's step)")  # fmt: skip
    ax.set_title(
        "Training loss (line: mean over seeds; band: min–max)\n"
        f"loss spike = a step's loss > {spike_factor:g} × median of the previous ≤ 10 steps: "
        f"{count(len(spikes), 'step')} marked ×",
        fontsize="medium",
    )
    ax.legend(fontsize="small")
    return _save(fig, out_dir, "loss_curves.png")


def _spikes(df: pd.DataFrame, factor: float) -> pd.DataFrame:
    """The recorded steps the training's spike rule flags, per (run, seed) in step order."""
    from loran_search.record import is_spike

    out = []
    for _, g in df.sort_values("step").groupby(["run", "seed"], sort=False):
        previous: list[float] = []
        for step, loss in zip(g["step"], g["loss"], strict=True):
            if is_spike(float(loss), previous, factor):
                out.append({"step": step, "loss": loss})
            previous.append(float(loss))
    return pd.DataFrame(out, columns=["step", "loss"])


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

        from loran_search.activations import get_activation
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
    configs: pd.DataFrame, out_dir: Path, notes: list[str], top: int = 15, narrow: bool = False
) -> Path | None:
    """The gain of the top configurations with their intervals (a forest plot; ``ci_level``).

    Confirmed configurations show their confirmation gain (held-out, filled) and their
    search-phase gain (hollow, optimistic); the others their search gain only. ``narrow``
    draws the phone version (``gain_intervals_narrow.png``, 4.2 in wide, the top 8, labels
    wrapped, larger type): at 390 px its text is about as large as the page's.
    """
    d = _finite(configs, "gain").head(8 if narrow else top)
    if d.empty:
        notes.append("Plot 'gain with intervals' skipped: no configuration has a paired gain.")
        return None
    plt = _plt()
    if narrow:
        plt.rcParams.update({"font.size": 12})
    row = 0.62 if narrow else 0.42
    fig, ax = plt.subplots(figsize=(4.2 if narrow else 10.5, row * len(d) + 2.9))
    y = np.arange(len(d))[::-1]
    g, el, eh = _interval_bars(d)
    confirmed = (
        (d["evidence"] == "confirmation").to_numpy()
        if "evidence" in d
        else np.zeros(len(d), dtype=bool)
    )
    for mask, color, label in (
        (confirmed, "C0", "held-out gain" if narrow else "confirmation (held-out) gain, interval"),
        (~confirmed, "C1", "search gain" if narrow else "search-phase gain, interval (optimistic)"),
    ):
        if mask.any():
            ax.errorbar(g[mask], y[mask], xerr=[el[mask], eh[mask]], fmt="o", color=color,
                        capsize=3, label=label)  # fmt: skip
    if "search_gain" in d and confirmed.any():
        sg = d["search_gain"].to_numpy(dtype=float)
        ok = confirmed & np.isfinite(sg)
        hollow = "its search gain" if narrow else "its search-phase gain (optimistic)"
        ax.plot(sg[ok], y[ok] + 0.18, "o", mfc="none", color="C1", label=hollow)
    ax.axvline(0.0, color="black", linewidth=1, linestyle="--", label="QLoRA")
    ax.set_yticks(y)
    labels = [str(c) for c in d["config"]]
    if narrow:
        labels = [_wrap_label(lab, 18) for lab in labels]
    ax.set_yticklabels(labels, fontsize="small")
    ax.set_xlabel("gain over QLoRA" if narrow else "gain over QLoRA (same rank, seed and examples)")
    ax.set_title(
        f"Gain over QLoRA, top {len(d)}\nbars: decisive test's intervals"
        if narrow
        else f"Gain over QLoRA with the decisive test's intervals (top {len(d)})"
    )
    below = -0.8 / (row * len(d) + 1.2)  # about 0.8 in under the axes, past the x label
    ax.legend(fontsize="small", loc="upper center", bbox_to_anchor=(0.5, below),
              ncol=2, frameon=False)  # fmt: skip
    if narrow:  # the phone version: nothing may be cut off at its narrow width
        path = out_dir / "gain_intervals_narrow.png"
        fig.tight_layout()
        fig.savefig(path, dpi=DPI, bbox_inches="tight")
        plt.close(fig)
    else:
        path = _save(fig, out_dir, "gain_intervals.png")
    if narrow:
        plt.rcParams.update({"font.size": plt.rcParamsDefault["font.size"]})
        _plt()  # back to the report's theme
    return path


def _wrap_label(label: str, width: int) -> str:
    """A configuration label on lines of about ``width`` characters, broken after ``(``/``,``."""
    import re

    lines: list[str] = []
    for part in re.split(r"(?<=\()|(?<=,) ", label):
        if lines and len(lines[-1]) + len(part) + 1 <= width and not lines[-1].endswith("("):
            lines[-1] += " " + part
        elif lines and lines[-1].endswith("(") and len(lines[-1]) + len(part) <= width:
            lines[-1] += part
        else:
            lines.append(part)
    return "\n".join(lines)


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
    confirmed, val = _phases(d)
    for mask, color, label in (
        (~inert, "C0", "ν active"),
        (inert, "C7", f"LoRA in all but name (ν < {threshold:g})"),
    ):
        hollow = mask & ~confirmed
        if hollow.any():
            ax.errorbar(x[hollow], g[hollow], yerr=[el[hollow], eh[hollow]], fmt="o",
                        color=color, mfc="white", capsize=3,
                        label=f"{label}: {VAL_LABEL}")  # fmt: skip
        filled = mask & confirmed
        if filled.any():
            ax.errorbar(x[filled], g[filled], yerr=[el[filled], eh[filled]], fmt="D",
                        color=color, mec="black", capsize=3,
                        label=f"{label}: {TEST_LABEL}")  # fmt: skip
            ok = filled & np.isfinite(val)
            ax.plot(x[ok], val[ok], "o", mfc="white", color=color, alpha=0.6)
    ax.axvline(threshold, color="C3", linewidth=1, linestyle=":", label="inert threshold")
    ax.axhline(0.0, color="black", linewidth=1, linestyle="--", label="QLoRA")
    ax.set_xscale("log")
    ax.set_xlabel("effective non-linearity ν = ‖f(P) − P‖ / ‖P‖ (median over runs)")
    ax.set_ylabel("gain over QLoRA")
    ax.set_title(
        "Gain vs the non-linearity that was active\n(bars: the decisive test's intervals; "
        "◆ held-out test, ○ validation)",
        fontsize="medium",
    )
    ax.legend(fontsize="small")
    return _save(fig, out_dir, "gain_vs_nonlinearity.png")


def tune_response(
    table: pd.DataFrame, out_dir: Path, notes: list[str], *, metric: str, sign: float
) -> Path | None:
    """The tuning's response curves (``study.tune``, issue 21).

    One panel per tuned key: the search-split metric against the key's value, one line per arm
    (with several keys, each x shows the arm's best point over the others:
    ``max_{other keys} sign·value``), the point the arm was confirmed at marked with a star.
    Whether an arm's advantage is a shift of its optimum or a higher peak is read here.
    ``None`` (no note) without tuning.
    """
    if table.empty:
        return None
    plt = _plt()
    keys = list(dict.fromkeys(table["key"]))
    fig, axes = plt.subplots(1, len(keys), figsize=(5.5 * len(keys), 4.2), squeeze=False)
    for ax, key in zip(axes[0], keys, strict=True):
        d = table[table["key"] == key]
        for arm, g in d.groupby("arm", sort=False):
            best = g.loc[(sign * g["value"]).groupby(g["x"]).idxmax()].sort_values("x")
            (line,) = ax.plot(best["x"], best["value"], marker="o", label=str(arm))
            pick = g[g["chosen"]]
            if len(pick):
                ax.plot(
                    pick["x"], pick["value"], marker="*", markersize=16, linestyle="none",
                    color=line.get_color(),
                )  # fmt: skip
        xs = d["x"].to_numpy(dtype=float)
        if (xs > 0).all() and xs.max() / xs.min() >= 10:
            ax.set_xscale("log")
        ax.set_xlabel(key)
        ax.set_ylabel(f"{metric} (search split)")
        ax.set_title(f"Tuning response: {key} (★ = confirmed at)")
        ax.legend(fontsize=8)
    return _save(fig, out_dir, "tune_response.png")
