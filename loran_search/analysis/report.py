"""Assemble the analysis of a study and write it as Markdown, HTML, CSV and JSON.

:func:`analyse` turns a study into an :class:`Analysis` (tables, stability, importance, Pareto
fronts, plain-language summary); :func:`write_outputs` writes the chosen formats:

* ``csv``: ``configurations.csv`` (+ ``baselines.csv``, ``families.csv``, ``importance.csv``,
  ``pareto.csv``);
* ``json``: ``configurations.json`` (the same rows) and ``report.json`` (summary, notes and the
  other tables);
* ``md``: ``report.md`` — summary first, then the tables; figures under ``plots/``;
* ``html``: ``report.html`` — one self-contained file, summary first, then tables and every
  figure embedded as ``data:image/png;base64``.
"""

from __future__ import annotations

import base64
import html
import json
import math
import re
from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from loran_search.analysis import plots as P
from loran_search.analysis.configurations import INTERNAL_COLUMNS, build_tables
from loran_search.analysis.importance import param_importances
from loran_search.analysis.pareto import pareto_mask, pareto_table
from loran_search.analysis.records import Records, format_value, load_records
from loran_search.analysis.stability import amplitude_thresholds, family_stability
from loran_search.analysis.stats import ALPHA, CONFIDENCE, CORRECTIONS

if TYPE_CHECKING:
    import optuna

FORMATS = ("md", "html", "csv", "json")
CORRECTION_NAMES = {"holm": "Holm", "bh": "Benjamini–Hochberg"}


@dataclass
class Analysis:
    """Everything the report shows.

    Attributes:
        records: The study's tidy records.
        configurations: One row per candidate configuration (best first).
        baselines: One row per baseline rank.
        families: Stability per family, most stable first.
        thresholds: Per activation, where along the amplitude training diverges.
        importance: Parameter importances (PED-ANOVA).
        pareto: Configurations on the gain–seconds or gain–instability front.
        correction: The multiple-comparison correction used (``holm`` or ``bh``).
        summary: The first screen, as Markdown paragraphs.
        notes: Statements about degraded or missing data.
        figures: ``{name: path}`` of the written PNGs.
    """

    records: Records
    configurations: pd.DataFrame
    baselines: pd.DataFrame
    families: pd.DataFrame
    thresholds: list[dict[str, Any]]
    importance: pd.DataFrame
    pareto: pd.DataFrame
    correction: str
    summary: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    figures: dict[str, Path] = field(default_factory=dict)


# --------------------------------------------------------------------------------------------
# numbers and words


def fmt(x: Any, digits: int = 4) -> str:
    """A number for a table: ``—`` when missing, ``digits`` significant digits otherwise."""
    if x is None:
        return "—"
    if isinstance(x, (bool, np.bool_)):
        return "yes" if x else "no"
    if isinstance(x, (int, np.integer)):
        return str(int(x))
    try:
        v = float(x)
    except (TypeError, ValueError):
        return str(x)
    if math.isnan(v):
        return "—"
    return f"{v:.{digits}g}"


def _signed(x: float) -> str:
    return f"{x:+.3g}"


def _pct(x: float) -> str:
    return "—" if x is None or not math.isfinite(x) else f"{100 * x:.0f}%"


def _join(items: list[str]) -> str:
    return ", ".join(items) if items else "none"


# --------------------------------------------------------------------------------------------
# analysis


def analyse(study: optuna.Study, *, correction: str = "holm") -> Analysis:
    """Analyse ``study``: tables, stability, importance, fronts and the summary.

    Args:
        study: A loaded study following the DESIGN.md trial record (older records tolerated).
        correction: ``holm`` (default) or ``bh``.

    Returns:
        The :class:`Analysis`; figures are drawn later by :func:`write_outputs`.
    """
    rec = load_records(study)
    notes = list(rec.notes)
    configs, baselines, table_notes = build_tables(rec, correction=correction)
    notes += table_notes
    families = family_stability(rec.runs, configs, baselines)
    thresholds = amplitude_thresholds(configs, baselines)
    importance, imp_notes = param_importances(study, rec)
    notes += imp_notes
    pareto = pareto_table(configs, rec.sign)
    a = Analysis(
        records=rec,
        configurations=configs,
        baselines=baselines,
        families=families,
        thresholds=thresholds,
        importance=importance,
        pareto=pareto,
        correction=correction,
        notes=notes,
    )
    a.summary = _summary(a)
    return a


def _state_line(trials: pd.DataFrame) -> str:
    s = trials["state"].value_counts()
    parts = [f"{int(s.get(k, 0))} {w}" for k, w in (
        ("COMPLETE", "complete"), ("PRUNED", "pruned"), ("FAIL", "failed"),
        ("RUNNING", "running"), ("WAITING", "waiting"),
    ) if s.get(k, 0)]  # fmt: skip
    return ", ".join(parts) or "none"


def _summary(a: Analysis) -> list[str]:
    rec, c = a.records, a.configurations
    t = rec.trials
    out: list[str] = []
    cand = t[t["role"] == "candidate"]
    base = t[t["role"] == "baseline"]
    direction_word = "higher is better" if rec.direction == "maximize" else "lower is better"
    base_ranks = _join([str(r) for r in a.baselines["rank"]]) if not a.baselines.empty else ""
    base_seeds = (
        _join(sorted({s for ss in a.baselines["seeds"] for s in ss.split(",") if s}, key=_int_key))
        if not a.baselines.empty
        else ""
    )
    base_desc = (
        f"baseline (identity = QLoRA) at rank {base_ranks}, seeds {base_seeds}"
        if len(base)
        else "**no baseline trials**"
    )
    out.append(
        f"Study **{rec.study_name}** — metric **{rec.metric}** ({rec.direction}, "
        f"{direction_word}). {len(c)} candidate configuration(s) from {len(cand)} trial(s) "
        f"({_state_line(cand)}); {base_desc} ({len(base)} trial(s))."
    )
    corr = CORRECTION_NAMES[a.correction]
    level = f"{100 * CONFIDENCE:.0f}%"
    if len(t) == 0:
        out.append("The study has no trials yet: run it first (`loran-search run FILE`).")
        return out
    done = c[np.isfinite(c["metric_mean"].to_numpy(dtype=float))] if len(c) else c
    with_gain = done[np.isfinite(done["gain"].to_numpy(dtype=float))] if len(done) else done
    if len(done) == 0:
        out.append(
            "**No candidate configuration has a completed run**, so nothing can be compared yet."
        )
    elif len(base) == 0 or a.baselines.empty or len(with_gain) == 0:
        if len(base) == 0:
            why = (
                "**Gains over QLoRA are unavailable: the study has no baseline trials.** Add them "
                "with `study.baseline: true` in the study YAML (identity trials at every searched "
                "rank on the same seeds) and run the study again (`loran-search run FILE`)."
            )
        else:
            why = (
                "**Gains over QLoRA are unavailable: no candidate shares a rank and a seed with a "
                "completed baseline trial** (gains are paired by rank and seed). Run the baseline "
                "(`study.baseline: true`) at the candidates' ranks and seeds."
            )
        best = done.iloc[0]
        out.append(
            f"{why} Best configuration by {rec.metric}: **{best['config']}** = "
            f"{fmt(best['metric_mean'])} (mean over {int(best['n_seeds'])} seed(s))."
        )
    else:
        best = with_gain.iloc[0]
        imp = rec.sign * float(best["gain"])
        n = int(best["n_paired"])
        head = (
            f"**Best configuration: {best['config']}** — {rec.metric} "
            f"{fmt(best['metric_mean'])} vs QLoRA {fmt(best['baseline_mean'])} on the same "
            f"{'seed' if n == 1 else f'{n} seeds'}: gain **{_signed(float(best['gain']))}**"
        )
        if n >= 2 and math.isfinite(float(best["p_value"])):
            sig = bool(best["significant"])
            verdict = (
                ("**significantly better than QLoRA**" if imp > 0 else "**significantly worse "
                 "than QLoRA**")
                if sig
                else "**not significant**: the data do not show it differs from QLoRA"
            )  # fmt: skip
            out.append(
                f"{head} ({level} paired-t interval [{_signed(float(best['gain_ci_low']))}, "
                f"{_signed(float(best['gain_ci_high']))}]); p = {fmt(best['p_value'], 3)}, "
                f"{corr}-adjusted p = {fmt(best['p_adjusted'], 3)} over "
                f"{int(np.isfinite(c['p_value'].to_numpy(dtype=float)).sum())} configuration(s) "
                f"→ {verdict} at α = {ALPHA}."
            )
        elif n >= 2:
            out.append(
                f"{head}; the differences are identical on every seed, so no p-value "
                "(zero variance)."
            )
        else:
            line = (
                f"{head}. **No interval or p-value: a single paired seed gives no estimate of "
                "the seed-to-seed variance** (a paired-t interval needs ≥ 2 seeds; list more "
                "under `study.seeds`)."
            )
            noise = _eval_noise(rec, float(best["baseline_mean"]))
            if noise is not None:
                verdict = "within" if abs(float(best["gain"])) < noise else "beyond"
                line += (
                    f" For scale: the binomial standard error of one accuracy on {rec.eval_size} "
                    f"evaluation examples is ±{noise / 2:.3g}, so evaluation noise alone spans "
                    f"about ±{noise:.3g} (2 s.e.); this gain is {verdict} that."
                )
            out.append(line)
        out.extend(_spread_line(rec, with_gain))
        sig = c[c["significant"].astype(object) == True]  # noqa: E712
        better = int((rec.sign * sig["gain"].astype(float) > 0).sum())
        worse = int((rec.sign * sig["gain"].astype(float) < 0).sum())
        tested = int(np.isfinite(c["p_value"].to_numpy(dtype=float)).sum())
        untestable = with_gain[~np.isfinite(with_gain["p_value"].to_numpy(dtype=float))]
        single = int((untestable["n_paired"] == 1).sum())
        flat = len(untestable) - single
        reasons = []
        if single:
            reasons.append(f"{single} with a single paired seed")
        if flat:
            reasons.append(f"{flat} with identical differences on every seed")
        if tested:
            line = (
                f"Overall: {better} of {tested} tested configuration(s) significantly better "
                f"than QLoRA, {worse} significantly worse ({corr} correction, α = {ALPHA})"
            )
            if reasons:
                line += f"; not testable: {', '.join(reasons)}"
        else:
            line = (
                f"Overall: no configuration could be tested for significance ({', '.join(reasons)})"
            )
        out.append(line + ".")

    fam = a.families
    cand_fams = fam[fam["family"] != "baseline"] if len(fam) else fam
    cand_fams = cand_fams[np.isfinite(cand_fams["diverged_rate"].to_numpy(dtype=float))]
    if len(cand_fams):
        f0 = cand_fams.iloc[0]
        which = "Most stable family" if len(cand_fams) > 1 else "Only candidate family"
        line = (
            f"{which}: **{f0['family']}** — {_pct(f0['diverged_rate'])} of its "
            f"{int(f0['n_runs'])} run(s) diverged, {_pct(f0['loss_spike_rate'])} had loss "
            f"spikes, max gradient norm {fmt(f0['grad_norm_max'], 3)}"
        )
        b = fam[fam["family"] == "baseline"]
        if len(b) and math.isfinite(float(b["diverged_rate"].iloc[0])):
            line += (
                f" (QLoRA baseline: {_pct(b['diverged_rate'].iloc[0])} diverged, "
                f"{_pct(b['loss_spike_rate'].iloc[0])} with spikes)"
            )
        out.append(line + ".")
    elif len(t):
        out.append("Stability: no run records stability telemetry.")

    for th in a.thresholds:
        act = th["activation"]
        sym = "A" if th["axis"] == "amplitude" else "A·ω"
        word = "amplitude" if th["axis"] == "amplitude" else "amplitude × frequency"
        rng = f"{sym} = {format_value(th['axis_min'])} … {format_value(th['axis_max'])}"
        if th["first_unstable"] is None:
            line = (
                f"**{act}: no divergence at any {word} tested** ({rng}, "
                f"{th['n_configs']} configuration(s))"
            )
        else:
            au = th["first_unstable"]
            line = f"**{act}: training diverges from {word} {sym} ≥ {format_value(au)}**"
            if th["amp_freq_at_first_unstable"] is not None:
                line += f" (A·ω = {format_value(th['amp_freq_at_first_unstable'])})"
            line += (
                f"; {_pct(th['unstable_above_share'])} of the configurations at or above it "
                "diverged"
            )
            if th["clean_below"] and th["max_stable_below"] is not None:
                line += (
                    f", every one below it was stable (largest stable {sym} below it: "
                    f"{format_value(th['max_stable_below'])})"
                )
            elif not th["clean_below"]:
                line += f", but stability is not monotone in {sym} (see the calibration plot)"
        if th["first_spiking"] is not None:
            line += f"; loss spikes from {sym} = {format_value(th['first_spiking'])}"
        if th.get("first_grad_growth") is not None:
            line += (
                f"; gradient norms reach ≥ {format_value(th['grad_factor'])}× QLoRA's from "
                f"{sym} = {format_value(th['first_grad_growth'])} "
                f"({fmt(th['grad_growth'], 3)}× there), the early sign of instability"
            )
        out.append(line + ".")
    if a.notes:
        out.append(f"Data notes: {len(a.notes)} — see “Data notes” below.")
    return out


def _spread_line(rec: Records, with_gain: pd.DataFrame) -> list[str]:
    """The other end of the table: the worst configuration and how many sit near QLoRA.

    The best configuration alone can hide a configuration that clearly hurts; with a single seed,
    "near QLoRA" means a gain within the evaluation noise (2 binomial s.e.), otherwise exactly 0.
    """
    if len(with_gain) < 2:
        return []
    gains = rec.sign * with_gain["gain"].astype(float)
    worst = with_gain.loc[gains.idxmin()]
    w_imp = rec.sign * float(worst["gain"])
    if w_imp >= 0:
        return []
    noise = _eval_noise(rec, float(worst["baseline_mean"]))
    line = (
        f"Worst configuration: **{worst['config']}** — {rec.metric} {fmt(worst['metric_mean'])} "
        f"vs QLoRA {fmt(worst['baseline_mean'])}: gain **{_signed(float(worst['gain']))}**"
    )
    if noise is not None and int(worst["n_paired"]) == 1:
        verdict = "beyond" if abs(w_imp) >= noise else "within"
        line += f" ({verdict} the ±{noise:.3g} evaluation noise)"
        near = int((gains.abs() < noise).sum())
        line += f". {near} of {len(with_gain)} configuration(s) are within that noise of QLoRA"
    else:
        same = int((gains == 0).sum())
        if same:
            line += f". {same} of {len(with_gain)} configuration(s) score exactly as QLoRA"
    return [line + "."]


def _eval_noise(rec: Records, p: float) -> float | None:
    """``2·sqrt(p(1−p)/N)``: twice the binomial standard error of an accuracy on ``N`` examples.

    Only for accuracy-like metrics in ``[0, 1]`` when the study records its ``eval_size``; it is
    the scale of evaluation-sampling noise of a single run, not a test of the gain.
    """
    if rec.eval_size is None or "acc" not in rec.metric.lower() or not 0.0 <= p <= 1.0:
        return None
    return 2.0 * math.sqrt(max(p * (1.0 - p), 0.0) / rec.eval_size)


def _int_key(s: str) -> tuple[int, Any]:
    try:
        return (0, int(s))
    except ValueError:
        return (1, s)


# --------------------------------------------------------------------------------------------
# tables


def _display_configurations(a: Analysis) -> pd.DataFrame:
    c = a.configurations
    rows = []
    for _, r in c.iterrows():
        ci = (
            f"[{fmt(r['gain_ci_low'], 3)}, {fmt(r['gain_ci_high'], 3)}]"
            if math.isfinite(float(r["gain_ci_low"]))
            else "—"
        )
        rows.append(
            {
                "configuration": r["config"],
                "family": r["family"],
                "seeds": int(r["n_seeds"]),
                a.records.metric: f"{fmt(r['metric_mean'])} ± {fmt(r['metric_std'], 2)}"
                if math.isfinite(float(r["metric_std"]))
                else fmt(r["metric_mean"]),
                "QLoRA": fmt(r["baseline_mean"]),
                "gain": fmt(r["gain"], 3),
                "95% CI": ci,
                "p": fmt(r["p_value"], 3),
                f"p ({CORRECTION_NAMES[a.correction]})": fmt(r["p_adjusted"], 3),
                "significant": fmt(r["significant"]),
                "diverged": _pct(r["diverged_rate"]),
                "spikes": _pct(r["loss_spike_rate"]),
                "grad max": fmt(r["grad_norm_max"], 3),
                "Lipschitz": fmt(r["lipschitz"], 3),
                "train s/run": fmt(r["train_seconds"], 3),
                "C/P/F/R": f"{r['n_complete']}/{r['n_pruned']}/{r['n_fail']}/{r['n_running']}",
                "note": r["note"] or "",
            }
        )
    return pd.DataFrame(rows)


def _display(df: pd.DataFrame) -> pd.DataFrame:
    out = df.copy()
    for col in out.columns:
        if out[col].dtype.kind == "b":
            out[col] = [fmt(bool(v)) for v in out[col]]
        elif out[col].dtype.kind in "fc" or col.endswith("_rate"):
            if col.endswith("_rate"):
                out[col] = [_pct(v) for v in out[col].astype(float)]
            else:
                out[col] = [fmt(v) for v in out[col]]
        elif out[col].dtype == object:
            out[col] = [fmt(v) if not isinstance(v, str) else v for v in out[col]]
    return out


def _thresholds_frame(a: Analysis) -> pd.DataFrame:
    return pd.DataFrame(a.thresholds)


def _tables(a: Analysis) -> list[tuple[str, str, pd.DataFrame]]:
    """``(title, caption, table)`` in report order (display-formatted)."""
    level = f"{100 * CONFIDENCE:.0f}%"
    corr = CORRECTIONS[a.correction]
    return [
        (
            "Configurations",
            f"One row per candidate configuration (activation, rank, resolved parameters), best "
            f"first. gain = mean over seeds of (candidate − QLoRA) at the same rank and seed; "
            f"95% CI = {level} paired-t interval; p = two-sided paired t-test, adjusted with "
            f"{corr}. Only COMPLETE trials enter metrics; every finished run enters stability. "
            "train s/run = mean training seconds per run (trial × seed). "
            "C/P/F/R = complete/pruned/failed/running trials.",
            _display_configurations(a),
        ),
        ("QLoRA baseline", "Identity (LoRAN = QLoRA) per rank.", _display(a.baselines)),
        (
            "Stability per family",
            "Rates are shares of runs (trial × seed) with telemetry; seed_spread = mean over the "
            "family's configurations of the metric's standard deviation across seeds.",
            _display(a.families),
        ),
        (
            "Where training becomes unstable",
            "Per activation with an amplitude: the smallest amplitude (or A·ω when the frequency "
            "varies too) with a diverged run.",
            _display(_thresholds_frame(a)),
        ),
        (
            "Parameter importance",
            "Optuna PED-ANOVA on completed candidate trials (target: the trial value).",
            _display(a.importance),
        ),
        (
            "Pareto fronts",
            "Configurations not dominated on (gain, train seconds) or (gain, unstable-run rate).",
            _display(a.pareto),
        ),
    ]


def markdown_table(df: pd.DataFrame) -> str:
    """A GitHub-flavoured Markdown table of ``df`` (its cells are shown as strings)."""
    if df.empty:
        return "_(none)_"

    def cell(v: Any) -> str:
        return str(v).replace("|", "\\|").replace("\n", " ")

    head = "| " + " | ".join(cell(c) for c in df.columns) + " |"
    sep = "| " + " | ".join("---" for _ in df.columns) + " |"
    body = ["| " + " | ".join(cell(v) for v in row) + " |" for row in df.itertuples(index=False)]
    return "\n".join([head, sep, *body])


# --------------------------------------------------------------------------------------------
# figures


FIGURE_CAPTIONS = {
    "gain_vs_amplitude": "Gain over QLoRA against amplitude per family; bands are 95% paired-t "
    "intervals (a configuration with one paired seed has none).",
    "amp_freq_heatmap": "Gain over amplitude × frequency (A·ω scales Sinter's slope).",
    "stability_by_family": "Divergence, loss spikes and gradient-norm maxima per family.",
    "calibration": "Calibration: stability against A·ω and against the audit's Lipschitz bound.",
    "loss_curves": "Training loss of the best configurations against the baseline.",
    "shapes": "f, f − x and f′ of the top configurations on [-1, 1] (f′ by autograd through the "
    "registry's function).",
    "pareto": "Pareto fronts: gain vs train seconds and gain vs unstable-run rate.",
    "importance": "Parameter importance (PED-ANOVA).",
}


def draw_figures(a: Analysis, plot_dir: Path) -> dict[str, Path]:
    """Draw every applicable figure into ``plot_dir``; skipped ones add a note."""
    plot_dir.mkdir(parents=True, exist_ok=True)
    notes = a.notes
    c, rec = a.configurations, a.records
    pareto_all = c.copy()
    if len(c):
        imp = rec.sign * c["gain"].to_numpy(dtype=float)
        pareto_all["front_cost"] = pareto_mask(imp, c["train_seconds"].to_numpy(dtype=float))
        pareto_all["front_stability"] = pareto_mask(imp, c["unstable_rate"].to_numpy(dtype=float))
        pareto_all["gain"] = imp
    drawn = {
        "gain_vs_amplitude": P.gain_vs_amplitude(c, plot_dir, notes),
        "amp_freq_heatmap": P.amp_freq_heatmap(c, plot_dir, notes, rec.metric),
        "stability_by_family": P.stability_by_family(a.families, rec.runs, plot_dir, notes),
        "calibration": P.calibration(c, plot_dir, notes),
        "loss_curves": P.loss_curves(rec, c, plot_dir, notes),
        "shapes": P.shapes(c, plot_dir, notes),
        "pareto": P.pareto(pareto_all, plot_dir, notes) if len(c) else None,
        "importance": P.importance(a.importance, plot_dir, notes),
    }
    a.figures = {k: v for k, v in drawn.items() if v is not None}
    return a.figures


# --------------------------------------------------------------------------------------------
# writers


def summary_markdown(a: Analysis) -> str:
    """The summary (first screen) and the data notes, as Markdown."""
    lines = [f"# Report: {a.records.study_name}", ""]
    lines += [f"- {s}" for s in a.summary]
    if a.notes:
        lines += ["", "## Data notes", ""] + [f"- {n}" for n in a.notes]
    return "\n".join(lines) + "\n"


def render_markdown(a: Analysis, plot_prefix: str = "plots/") -> str:
    """The whole report as Markdown: summary, notes, tables, then figure links."""
    parts = [summary_markdown(a)]
    for title, caption, table in _tables(a):
        parts += [f"## {title}", "", caption, "", markdown_table(table), ""]
    if a.figures:
        parts += ["## Figures", ""]
        for name, path in a.figures.items():
            parts += [f"![{FIGURE_CAPTIONS[name]}]({plot_prefix}{path.name})", ""]
    return "\n".join(parts)


_BOLD = re.compile(r"\*\*(.+?)\*\*")
_CODE = re.compile(r"`([^`]+)`")


def _inline(md: str) -> str:
    text = html.escape(md, quote=False)
    text = _CODE.sub(r"<code>\1</code>", text)
    return _BOLD.sub(r"<strong>\1</strong>", text)


_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2em auto;
max-width:1200px;padding:0 1em;color:#222;line-height:1.45}
h1{margin-bottom:.3em}section.summary{background:#f4f7fb;border-left:4px solid #3a6ea5;
padding:.6em 1.2em;margin:1em 0}section.summary li{margin:.35em 0}
table{border-collapse:collapse;font-size:.85em;margin:.5em 0 1.5em}
th,td{border:1px solid #ccd;padding:.25em .5em;text-align:right}
th{background:#eef}td:first-child,th:first-child{text-align:left}
figure{margin:1.5em 0}figure img{max-width:100%;border:1px solid #ddd}
figcaption{font-size:.9em;color:#555}.caption{font-size:.9em;color:#444}
.notes li{color:#8a4b00}
"""


def render_html(a: Analysis) -> str:
    """The whole report as one self-contained HTML page (figures base64-embedded)."""
    name = html.escape(a.records.study_name)
    body = [f"<h1>Report: {name}</h1>", '<section class="summary"><ul>']
    body += [f"<li>{_inline(s)}</li>" for s in a.summary]
    body.append("</ul></section>")
    if a.notes:
        body.append('<h2>Data notes</h2><ul class="notes">')
        body += [f"<li>{_inline(n)}</li>" for n in a.notes]
        body.append("</ul>")
    for title, caption, table in _tables(a):
        body.append(f"<h2>{html.escape(title)}</h2><p class='caption'>{_inline(caption)}</p>")
        if table.empty:
            body.append("<p><em>(none)</em></p>")
        else:
            body.append(table.to_html(index=False, border=0, escape=True, na_rep="—"))
    if a.figures:
        body.append("<h2>Figures</h2>")
        for fname, path in a.figures.items():
            data = base64.b64encode(path.read_bytes()).decode("ascii")
            cap = html.escape(FIGURE_CAPTIONS[fname])
            body.append(
                f'<figure><img alt="{cap}" src="data:image/png;base64,{data}">'
                f"<figcaption>{cap}</figcaption></figure>"
            )
    return (
        "<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
        f"<title>loran-search report: {name}</title><style>{_CSS}</style></head>"
        f"<body>{''.join(body)}</body></html>\n"
    )


def _jsonable(v: Any) -> Any:
    if isinstance(v, dict):
        return {str(k): _jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_jsonable(x) for x in v]
    if isinstance(v, (np.bool_, bool)):
        return bool(v)
    if isinstance(v, (np.integer,)):
        return int(v)
    if isinstance(v, (float, np.floating)):
        return float(v) if math.isfinite(float(v)) else None
    if v is pd.NA:
        return None
    return v


def export_frame(df: pd.DataFrame) -> pd.DataFrame:
    """``df`` without internal columns (configuration keys)."""
    return df.drop(columns=[c for c in INTERNAL_COLUMNS if c in df.columns])


def _records(df: pd.DataFrame) -> list[dict[str, Any]]:
    return [_jsonable(r) for r in export_frame(df).to_dict(orient="records")]


def write_outputs(a: Analysis, out_dir: Path, formats: Collection[str]) -> list[Path]:
    """Write the chosen ``formats`` into ``out_dir``; returns the written files."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    if "md" in formats or "html" in formats:
        written += list(draw_figures(a, out_dir / "plots").values())
    if "csv" in formats:
        for name, df in (
            ("configurations", a.configurations),
            ("baselines", a.baselines),
            ("families", a.families),
            ("importance", a.importance),
            ("pareto", a.pareto),
        ):
            path = out_dir / f"{name}.csv"
            export_frame(df).to_csv(path, index=False)
            written.append(path)
    if "json" in formats:
        path = out_dir / "configurations.json"
        path.write_text(json.dumps(_records(a.configurations), indent=1) + "\n")
        written.append(path)
        rec = a.records
        report = {
            "study": rec.study_name,
            "metric": rec.metric,
            "direction": rec.direction,
            "confidence": CONFIDENCE,
            "interval": "paired-t",
            "alpha": ALPHA,
            "correction": CORRECTIONS[a.correction],
            "summary": a.summary,
            "notes": a.notes,
            "baselines": _records(a.baselines),
            "families": _records(a.families),
            "amplitude_thresholds": _jsonable(a.thresholds),
            "importance": _records(a.importance),
            "pareto": _records(a.pareto),
            "figures": {k: str(v.relative_to(out_dir)) for k, v in a.figures.items()},
        }
        path = out_dir / "report.json"
        path.write_text(json.dumps(report, indent=1) + "\n")
        written.append(path)
    if "md" in formats:
        path = out_dir / "report.md"
        path.write_text(render_markdown(a))
        written.append(path)
    if "html" in formats:
        path = out_dir / "report.html"
        path.write_text(render_html(a))
        written.append(path)
    return written
