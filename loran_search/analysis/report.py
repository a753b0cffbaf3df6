"""Assemble the analysis of a study and write it as Markdown, HTML, CSV and JSON.

:func:`analyse` turns a study into an :class:`Analysis` (tables, stability, importance, Pareto
fronts, plain-language summary); :func:`write_outputs` writes the chosen formats:

* ``csv``: ``configurations.csv`` (+ ``baselines.csv``, ``families.csv``, ``importance.csv``,
  ``pareto.csv``, and ``peers.csv`` in a study with peer arms);
* ``json``: ``configurations.json`` (the same rows), ``peers.json`` (with peer arms) and
  ``report.json`` (summary, notes, the environments and the other tables);
* ``md``: ``report.md`` — the verdict first, then the gain figure, the details, the tables;
  figures under ``plots/``;
* ``html``: ``report.html`` — one self-contained file in the same order, every figure embedded
  as ``data:image/png;base64``; at 1280 px wide the page never scrolls sideways (tables scroll
  in their own box, text columns wrap at a readable width).

A study whose candidates span an amplitude × frequency grid, or several ranks, also gets the
landscape section (:mod:`loran_search.analysis.landscape`: ``plots/landscape.png``, the ridge
reading, the rank-sweep table; ``landscape.csv``, ``rank_sweep.csv``, ``landscape.json``).

**The verdict** (:func:`~loran_search.analysis.verdict.verdict_lines`) answers whether the best
configuration beats QLoRA on held-out data, whether the design was powered to see it, where
training becomes unstable and whether the non-linearity was active; see
:mod:`loran_search.analysis.verdict`.
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

from loran_search.analysis import environment as E
from loran_search.analysis import forms as F
from loran_search.analysis import headline as H
from loran_search.analysis import landscape as L
from loran_search.analysis import plots as P
from loran_search.analysis.configurations import (
    INTERNAL_COLUMNS,
    POWER,
    build_tables,
)
from loran_search.analysis.importance import param_importances
from loran_search.analysis.mechanism import visited_interval
from loran_search.analysis.pareto import pareto_mask, pareto_table
from loran_search.analysis.records import Records, load_records
from loran_search.analysis.stability import amplitude_thresholds, family_stability
from loran_search.analysis.stats import ALPHA, CONFIDENCE, CORRECTIONS
from loran_search.analysis.tuning import add_tuned_columns, normalize_notes, response_frame
from loran_search.analysis.verdict import (
    CORRECTION_NAMES,
    fmt,
    pct,
    summary_lines,
    truthy,
)
from loran_search.record import INERT_THRESHOLD

if TYPE_CHECKING:
    import optuna

FORMATS = ("md", "html", "csv", "json")


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
        summary: The first screen, as Markdown paragraphs: the verdict, then the details.
        notes: Statements about degraded or missing data.
        figures: ``{name: path}`` of the written PNGs.
        verdict: The verdict (the start of ``summary``): the held-out gain, the power, where
            training becomes unstable, whether the non-linearity was active.
        interval: The interval of ``P`` the shapes are drawn on (the visited range, or
            ``[-1, 1]`` for older records).
        interval_note: Where ``interval`` comes from.
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
    verdict: list[str] = field(default_factory=list)
    interval: tuple[float, float] = (-1.0, 1.0)
    interval_note: str = ""
    forms: F.FormsAnalysis | None = None  # the form section (search.forms), if any
    environments: list[dict[str, Any]] = field(default_factory=list)  # analysis.environment
    head_to_head: dict[str, Any] | None = None  # peers: LoRAN's best vs the best peer (issue 19)
    tune_response: pd.DataFrame | None = None  # study.tune: analysis.tuning.response_frame
    study_info: dict[str, Any] = field(default_factory=dict)  # the setup line (headline.py)
    headline: str = ""  # the answer in one sentence (analysis.headline)
    figure_skips: list[str] = field(default_factory=list)  # why a figure was not drawn
    figures_narrow: dict[str, Path] = field(default_factory=dict)  # small-screen versions
    landscape: L.Landscape | None = None  # A × ω map and rank sweep (issue 24), if either applies


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
    notes = list(rec.notes) + F.register_recorded(study)  # search.forms: forms from the record
    extras: dict[str, Any] = {}
    configs, baselines, table_notes = build_tables(rec, correction=correction, extras=extras)
    configs = add_tuned_columns(configs, study)  # study.tune (issue 21)
    tune_table = response_frame(study)
    notes += normalize_notes(study)
    notes += table_notes
    families = family_stability(rec.runs, configs, baselines)
    thresholds = amplitude_thresholds(configs, baselines)
    importance, imp_notes = param_importances(study, rec)
    notes += imp_notes
    pareto = pareto_table(configs, rec.sign)
    interval, interval_note = visited_interval(rec)
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
        interval=interval,
        interval_note=interval_note,
        head_to_head=extras.get("head_to_head"),
        tune_response=tune_table,
    )
    a.environments = E.environments(study.get_trials(deepcopy=False))
    a.study_info = H.study_info(study, a.environments)
    a.summary = summary_lines(a)
    a.headline = H.headline(a)
    L.attach(study, a)  # A × ω landscape and rank sweep (adds its readings to the summary)
    F.attach(study, a)  # search.forms: counts, top forms, shapes (nothing without form trials)
    return a


# --------------------------------------------------------------------------------------------
# tables


def _display_configurations(a: Analysis) -> pd.DataFrame:
    """The configuration table as shown: each metric column names its split (issue 22).

    The metric and QLoRA columns are the search split's; a study with a confirmation also gets
    the held-out metric and QLoRA beside them, so a row never shows a validation accuracy next
    to a test gain without saying so.
    """
    c = a.configurations
    held_out = "confirm_metric_mean" in c and bool(
        np.isfinite(c["confirm_metric_mean"].to_numpy(dtype=float)).any()
    )
    rows = []
    for _, r in c.iterrows():
        ci = (
            f"[{fmt(r['gain_ci_low'], 3)}, {fmt(r['gain_ci_high'], 3)}]"
            if math.isfinite(float(r["gain_ci_low"]))
            else "—"
        )
        level = float(r.get("ci_level", math.nan))
        if ci != "—" and math.isfinite(level) and not math.isclose(level, CONFIDENCE):
            ci += f" ({100 * level:.4g}%)"
        rows.append(
            {
                "configuration": r["config"],
                "family": r["family"],
                "seeds": int(r["n_seeds"]),
                f"{a.records.metric} (search)": f"{fmt(r['metric_mean'])} ± "
                f"{fmt(r['metric_std'], 2)}"
                if math.isfinite(float(r["metric_std"]))
                else fmt(r["metric_mean"]),
                "QLoRA (search)": fmt(r["baseline_mean"]),
                **(
                    {
                        f"{a.records.metric} (held-out)": fmt(r["confirm_metric_mean"]),
                        "QLoRA (held-out)": fmt(r["confirm_baseline_mean"]),
                    }
                    if held_out
                    else {}
                ),
                "evidence": r["evidence"],
                "gain": fmt(r["gain"], 3),
                "CI": ci,
                "p": fmt(r["p_value"], 3),
                "test": r.get("test_method") or "—",
                f"p ({CORRECTION_NAMES[a.correction]})": fmt(r["p_adjusted"], 3),
                "significant": fmt(r["significant"]),
                "search gain (optimistic)": fmt(r["search_gain"], 3),
                "MDE": fmt(r["mde"], 3),
                "companion gain": _companion_cell(r),
                "ν": fmt(r["nonlinearity"], 3)
                + (" (LoRA in all but name)" if truthy(r["inert"]) else ""),
                "diverged": pct(r["diverged_rate"]),
                "spikes": pct(r["loss_spike_rate"]),
                "grad max": fmt(r["grad_norm_max"], 3),
                "Lipschitz": fmt(r["lipschitz"], 3),
                "train s/run": fmt(r["train_seconds"], 3),
                "C/P/F/R": f"{r['n_complete']}/{r['n_pruned']}/{r['n_fail']}/{r['n_running']}",
                "note": r["note"] or "",
            }
        )
    return pd.DataFrame(rows)


def _confirmation_reuse(a: Analysis) -> int:
    """Configurations of this study evaluated on the confirmation split (QLoRA not counted)."""
    c = a.configurations
    if c.empty or "confirm_metric_mean" not in c:
        return 0
    return int(np.isfinite(c["confirm_metric_mean"].to_numpy(dtype=float)).sum())


def _companion_cell(r: pd.Series) -> str:
    if not isinstance(r["companion_metric"], str) or not math.isfinite(float(r["companion_gain"])):
        return "—"
    cell = f"{fmt(r['companion_gain'], 3)}"
    if math.isfinite(float(r["companion_ci_low"])):
        cell += f" [{fmt(r['companion_ci_low'], 3)}, {fmt(r['companion_ci_high'], 3)}]"
    return f"{r['companion_metric']}: {cell}"


def _display(df: pd.DataFrame) -> pd.DataFrame:
    out = df.copy()
    for col in out.columns:
        if out[col].dtype.kind == "b":
            out[col] = [fmt(bool(v)) for v in out[col]]
        elif out[col].dtype.kind in "fc" or col.endswith("_rate"):
            if col.endswith("_rate"):
                out[col] = [pct(v) for v in out[col].astype(float)]
            else:
                out[col] = [fmt(v) for v in out[col]]
        elif out[col].dtype == object:
            out[col] = [fmt(v) if not isinstance(v, str) else v for v in out[col]]
    return out


def _thresholds_frame(a: Analysis) -> pd.DataFrame:
    return pd.DataFrame(a.thresholds)


def _peer_tables(a: Analysis) -> list[tuple[str, str, pd.DataFrame]]:
    """The peers table (issue 13), only in studies with peer arms."""
    from loran_search.analysis.peers import has_peers, peers_table

    if not has_peers(a.configurations):
        return []
    return [
        (
            "Peers",
            "Every arm against QLoRA (identity at the same rank), with the configuration table's "
            "paired statistics and evidence. adapter rank = the rank trained (search.match: "
            "params picks a peer's rank to match LoRAN's trainable parameters); params vs LoRAN "
            "= trainable parameters / QLoRA's (= LoRAN's) at the searched rank; s/step = mean "
            "training seconds per optimizer step; peak memory = the largest process peak of its "
            "runs (CPU: a high-water mark, see loran_search.train).",
            _display(peers_table(a)),
        )
    ]


def _tables(a: Analysis) -> list[tuple[str, str, pd.DataFrame]]:
    """``(title, caption, table)`` in report order (display-formatted)."""
    level = f"{100 * CONFIDENCE:.0f}%"
    corr = CORRECTIONS[a.correction]
    return [
        (
            "Configurations",
            f"One row per candidate configuration (activation, rank, resolved parameters), "
            "confirmed ones first, then best first. evidence = where gain, CI and p come from: "
            "confirmation (retrained on the confirmation seeds, evaluated on the held-out split) "
            "or search (the split the search selected on; optimistic). gain = mean over seeds of "
            "(candidate − QLoRA) at the same rank, seed and example; "
            "p = the decisive test (test: the paired t-test on the seed means with S − 1 df; "
            "with one seed the exact McNemar test for accuracy, the paired t over examples "
            f"otherwise), adjusted with {corr} within its family (the search's tests, or the "
            "confirmation's); CI = the interval that inverts the same test, at the level of its "
            f"{corr} step (shown when not {level}), so it excludes 0 exactly when significant "
            "(the paired bootstrap is in configurations.csv as boot_ci_low/high, a description "
            "only). search gain = the selection-phase gain (the winner's curse makes the best "
            "ones optimistic). MDE = the smallest true gain the design detects with 80% power "
            "(noncentral t of the test, Holm's first threshold). companion gain = the "
            "continuous companion metric's gain (direction-aware: higher is better), 95% t "
            "interval. ν = effective non-linearity ‖f(P) − P‖/‖P‖. "
            "The (search) metric and QLoRA columns are the search split's, the (held-out) ones "
            "the confirmation's; gain, CI and p follow evidence. Only COMPLETE trials enter "
            "metrics; every finished search run enters stability. train s/run = mean training "
            "seconds per run (trial × seed). C/P/F/R = complete/pruned/failed/running trials.",
            _display_configurations(a),
        ),
        *_peer_tables(a),
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
    "gain_intervals": "Gain over QLoRA of the top configurations with the intervals of the table "
    "(each inverts its decisive test at the level of its Holm step, ci_level): the "
    "confirmation (held-out) gain where the configuration was confirmed, with its search-phase "
    "gain as a hollow marker (optimistic: the winner's curse); otherwise the search-phase gain.",
    "gain_vs_nonlinearity": "Gain over QLoRA against the effective non-linearity ν = "
    "‖f(P) − P‖/‖P‖ (median over runs, log scale) with the table's interval bars; left of the "
    "dotted line a configuration is LoRA in all but name.",
    "gain_vs_amplitude": "Gain over QLoRA against amplitude per family; bands are the "
    "intervals of the table (a configuration without an interval has none).",
    "amp_freq_heatmap": "Gain over amplitude × frequency (A·ω scales Sinter's slope).",
    "stability_by_family": "Divergence, loss spikes and gradient-norm maxima per family.",
    "calibration": "Calibration: stability against A·ω and against the audit's Lipschitz bound.",
    "loss_curves": "Training loss of the best configurations against the baseline.",
    "shapes": "f, f − x and f′ of the top configurations on the visited range of P (f′ by "
    "autograd through the registry's function).",
    "pareto": "Pareto fronts: gain vs train seconds and gain vs unstable-run rate.",
    "importance": "Parameter importance (PED-ANOVA).",
    "tune_response": "Tuning (study.tune): the search-split metric of every confirmed arm at "
    "each grid point; the star marks the point the arm was confirmed at.",
}


def draw_figures(a: Analysis, plot_dir: Path) -> dict[str, Path]:
    """Draw every informative figure into ``plot_dir``.

    A figure with nothing to show for this study is not drawn; the reason (one line each) goes
    to ``a.notes`` and ``a.figure_skips``, which the report shows under "Figures". The first
    figure is also drawn narrow (``gain_intervals_narrow.png``, ``a.figures_narrow``) for
    screens under 700 px.
    """
    plot_dir.mkdir(parents=True, exist_ok=True)
    notes = a.notes
    before = len(notes)
    c, rec = a.configurations, a.records
    pareto_all = c.copy()
    if len(c):
        imp = rec.sign * c["gain"].to_numpy(dtype=float)
        pareto_all["front_cost"] = pareto_mask(imp, c["train_seconds"].to_numpy(dtype=float))
        pareto_all["front_stability"] = pareto_mask(imp, c["unstable_rate"].to_numpy(dtype=float))
        pareto_all["gain"] = imp
    spike_factor = float(a.study_info.get("spike_factor") or P.DEFAULT_SPIKE_FACTOR)
    drawn = {
        "gain_intervals": P.gain_intervals(c, plot_dir, notes),
        "gain_vs_nonlinearity": P.gain_vs_nonlinearity(c, plot_dir, notes, INERT_THRESHOLD),
        "gain_vs_amplitude": P.gain_vs_amplitude(c, plot_dir, notes),
        "amp_freq_heatmap": P.amp_freq_heatmap(c, plot_dir, notes, rec.metric),
        "stability_by_family": P.stability_by_family(a.families, rec.runs, plot_dir, notes),
        "calibration": P.calibration(c, plot_dir, notes),
        "loss_curves": P.loss_curves(rec, c, plot_dir, notes, spike_factor=spike_factor),
        "shapes": P.shapes(c, plot_dir, notes, interval=a.interval, interval_note=a.interval_note),
        "pareto": P.pareto(pareto_all, plot_dir, notes) if len(c) else None,
        "importance": P.importance(a.importance, plot_dir, notes),
        "tune_response": P.tune_response(
            a.tune_response if a.tune_response is not None else pd.DataFrame(),
            plot_dir,
            notes,
            metric=rec.metric,
            sign=rec.sign,
        ),
    }
    a.figures = {k: v for k, v in drawn.items() if v is not None}
    if FIRST_FIGURE in a.figures:
        narrow = P.gain_intervals(c, plot_dir, [], narrow=True)
        a.figures_narrow = {FIRST_FIGURE: narrow} if narrow is not None else {}
    a.figure_skips = list(notes[before:])
    if a.forms is not None:
        F.draw(a.forms, plot_dir, notes)
    L.draw(a.landscape, plot_dir, notes)
    return a.figures


# --------------------------------------------------------------------------------------------
# writers


def _details_of(a: Analysis) -> list[str]:
    """The summary paragraphs after the verdict."""
    return a.summary[len(a.verdict) :] if a.verdict else list(a.summary)


def _data_notes(a: Analysis) -> list[str]:
    """The data notes, without the figures' (those are said under "Figures")."""
    skipped = set(a.figure_skips)
    return [n for n in a.notes if n not in skipped]


def summary_markdown(a: Analysis, figure: str | None = None) -> str:
    """The first screen as Markdown: the headline, the setup, the verdict, how to read it.

    Args:
        a: The analysis.
        figure: A Markdown image line shown between the verdict and the glossary.
    """
    lines = [f"# Report: {a.records.study_name}", ""]
    if a.headline:
        lines += [f"**{a.headline}**", ""]
    lines += [H.setup_line(a.study_info), ""]
    if a.verdict:
        lines += ["## Verdict", ""]
        lines += [f"{i}. {s}" for i, s in enumerate(a.verdict, 1)]
        lines.append("")
    if figure:
        lines += [figure, ""]
    lines += ["## How to read this", ""]
    lines += [f"- **{term}**: {meaning}" for term, meaning in H.GLOSSARY]
    lines.append("")
    details = _details_of(a)
    if details:
        lines += ["## Details", ""]
        lines += [f"- {s}" for s in details]
    notes = _data_notes(a)
    if notes:
        lines += ["", "## Data notes", ""] + [f"- {n}" for n in notes]
    return "\n".join(lines) + "\n"


FIRST_FIGURE = "gain_intervals"


def render_markdown(a: Analysis, plot_prefix: str = "plots/") -> str:
    """The whole report as Markdown: the first screen, notes, tables, figures."""
    first = a.figures.get(FIRST_FIGURE)
    figure = f"![{FIGURE_CAPTIONS[FIRST_FIGURE]}]({plot_prefix}{first.name})" if first else None
    parts = [summary_markdown(a, figure), E.markdown_block(a.environments)]
    if a.forms is not None:
        parts.append(F.markdown(a.forms, a.records.metric, plot_prefix))
    parts.append(L.markdown(a.landscape, plot_prefix))
    for title, caption, table in _tables(a):
        parts += [f"## {title}", "", caption, "", markdown_table(table), ""]
    rest = {k: v for k, v in a.figures.items() if k != FIRST_FIGURE}
    if rest or a.figure_skips:
        parts += ["## Figures", ""]
        for name, path in rest.items():
            parts += [f"![{FIGURE_CAPTIONS[name]}]({plot_prefix}{path.name})", ""]
        if a.figure_skips:
            parts += ["Figures not drawn, or drawn with fewer panels:", ""]
            parts += [f"- {s}" for s in a.figure_skips]
        parts.append("")
    return "\n".join(parts)


_BOLD = re.compile(r"\*\*(.+?)\*\*")
_CODE = re.compile(r"`([^`]+)`")


def _inline(md: str) -> str:
    text = html.escape(md, quote=False)
    text = _CODE.sub(r"<code>\1</code>", text)
    return _BOLD.sub(r"<strong>\1</strong>", text)


#: Columns of free text: they wrap, but never to a word per line.
TEXT_COLUMNS = ("note", "failure", "configuration", "config", "ci_method", "first_unstable_config")

_CSS = """
*{box-sizing:border-box}
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:1.2em auto;
max-width:1200px;padding:0 1em;color:#222;line-height:1.45;overflow-wrap:break-word}
h1{margin:.2em 0 .3em;font-size:1.6em}h2{margin-top:1.4em}
section.answer{margin:.4em 0 .8em;max-width:60em}
p.headline{font-size:1.35em;font-weight:600;line-height:1.35;margin:.2em 0 .4em}
p.setup{color:#444;margin:.2em 0}
section.verdict{background:#f4f7fb;border-left:5px solid #3a6ea5;padding:.5em 1.2em .6em;
margin:.6em 0 1em}section.verdict h2{margin:.2em 0 .3em;font-size:1.15em}
section.verdict ol{margin:.2em 0;padding-left:1.4em}section.verdict li{margin:.4em 0}
section.glossary dl{display:grid;grid-template-columns:max-content 1fr;gap:.25em 1em;
max-width:60em}section.glossary dt{font-weight:600}section.glossary dd{margin:0}
section.summary{padding:0 .2em}section.summary li{margin:.35em 0}
code{overflow-wrap:anywhere;background:#eef1f5;padding:0 .2em;border-radius:3px}
.table-wrap{overflow-x:auto;max-width:100%;margin:.5em 0 1.5em;border:1px solid #e3e6ee}
table{border-collapse:collapse;font-size:.85em;margin:0}
th,td{border:1px solid #ccd;padding:.25em .5em;text-align:right;white-space:nowrap;
vertical-align:top}
th{background:#eef;position:sticky;top:0}td:first-child,th:first-child{text-align:left}
td.text,th.text{text-align:left;white-space:normal;min-width:14em;max-width:36em}
td.text.wide,th.text.wide{min-width:22em}
figure{margin:1.5em 0}figure img{display:block;width:100%;max-width:100%;height:auto;
border:1px solid #ddd}
figure.first{margin:.5em 0 1.5em;max-width:1000px}
figcaption{font-size:.9em;color:#555}.caption{font-size:.9em;color:#444}
.notes li{color:#8a4b00}ul.skipped li{color:#555}
@media (max-width:700px){body{padding:0 .6em;margin:.6em auto}
p.headline{font-size:1.15em}section.verdict{padding:.4em .7em}
section.glossary dl{display:block}section.glossary dd{margin:0 0 .5em}
td.text,th.text{min-width:10em}td.text.wide,th.text.wide{min-width:14em}}
"""


def html_table(df: pd.DataFrame) -> str:
    """``df`` as an HTML table in a box that scrolls sideways on its own (cells escaped).

    Free-text columns (:data:`TEXT_COLUMNS`) get the class ``text``: they wrap at a sensible
    minimum width instead of one word per line; every other cell stays on one line.
    """

    def cls(col: Any) -> str:
        name = str(col).lower()
        if name in ("note", "failure"):
            return ' class="text wide"'
        return ' class="text"' if name in TEXT_COLUMNS else ""

    classes = [cls(c) for c in df.columns]
    head = "".join(
        f"<th{k}>{html.escape(str(c))}</th>" for c, k in zip(df.columns, classes, strict=True)
    )
    body = []
    for row in df.itertuples(index=False):
        cells = "".join(
            f"<td{k}>{html.escape('—' if _missing(v) else str(v))}</td>"
            for v, k in zip(row, classes, strict=True)
        )
        body.append(f"<tr>{cells}</tr>")
    return (
        f'<div class="table-wrap"><table><thead><tr>{head}</tr></thead>'
        f"<tbody>{''.join(body)}</tbody></table></div>"
    )


def _missing(v: Any) -> bool:
    if v is None:
        return True
    try:
        return bool(pd.isna(v))
    except (TypeError, ValueError):
        return False


def _data_uri(path: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode("ascii")


def _figure_html(name: str, path: Path, css: str = "", narrow: Path | None = None) -> str:
    """One ``<figure>``; with ``narrow``, a ``<picture>`` that picks it under 700 px."""
    cap = html.escape(FIGURE_CAPTIONS[name])
    klass = f' class="{css}"' if css else ""
    img = f'<img alt="{cap}" src="{_data_uri(path)}">'
    if narrow is not None:
        img = (
            f'<picture><source media="(max-width: 700px)" srcset="{_data_uri(narrow)}">'
            f"{img}</picture>"
        )
    return f'<figure{klass} id="fig-{name}">{img}<figcaption>{cap}</figcaption></figure>'


def _template() -> Any:
    """The report's jinja2 template (``templates/report.html.j2``), autoescaping on."""
    import jinja2
    from markupsafe import Markup

    env = jinja2.Environment(
        loader=jinja2.PackageLoader("loran_search.analysis", "templates"),
        autoescape=True,
        keep_trailing_newline=True,
        undefined=jinja2.StrictUndefined,
    )
    env.filters["inline"] = lambda s: Markup(_inline(str(s)))
    return env.get_template("report.html.j2")


def render_html(a: Analysis) -> str:
    """The whole report as one self-contained HTML page (figures base64-embedded).

    It opens on the answer (``<p id="headline">``) and the setup line (``<p id="setup">``),
    then the verdict's statements (``<section id="verdict">``), the gain-with-interval figure
    (a narrow version under 700 px), "How to read this" (``id="how-to-read"``), the study's
    details, the data notes, the environment, the tables (each in its own sideways-scrolling
    box) and the other figures with one line for each figure not drawn. At 1280 px wide the
    page itself never scrolls sideways. Rendered from ``templates/report.html.j2``.
    """
    first = a.figures.get(FIRST_FIGURE)
    tables = [
        {"title": t, "caption": c, "html": html_table(df) if not df.empty else ""}
        for t, c, df in _tables(a)
    ]
    rest = [_figure_html(k, v) for k, v in a.figures.items() if k != FIRST_FIGURE]
    return _template().render(
        name=a.records.study_name,
        css=_CSS,
        headline=a.headline,
        setup=H.setup_line(a.study_info),
        verdict=a.verdict,
        first_figure=(
            _figure_html(FIRST_FIGURE, first, "first", a.figures_narrow.get(FIRST_FIGURE))
            if first is not None
            else ""
        ),
        glossary=H.GLOSSARY,
        details=_details_of(a),
        notes=_data_notes(a),
        environment=E.html_block(a.environments, _inline),
        forms=F.html_section(a.forms, a.records.metric) if a.forms is not None else "",
        landscape=L.html_section(a.landscape, _inline, html_table),
        tables=tables,
        figures=rest,
        skipped=a.figure_skips,
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


def _peers_frame(a: Analysis) -> pd.DataFrame | None:
    """The peers table with raw values (``peers.csv``/``.json``); ``None`` without peer arms."""
    from loran_search.analysis.peers import has_peers, peers_table

    return peers_table(a) if has_peers(a.configurations) else None


def write_outputs(a: Analysis, out_dir: Path, formats: Collection[str]) -> list[Path]:
    """Write the chosen ``formats`` into ``out_dir``; returns the written files.

    ``configurations.csv``/``.json`` carry ``method`` and ``trainable_params`` after the
    table's own columns (:func:`loran_search.analysis.peers.with_method_columns`); a study with
    peer arms also gets ``peers.csv``/``peers.json`` (the report's Peers table, raw values).
    """
    from loran_search.analysis.peers import with_method_columns

    out_dir.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    configurations = with_method_columns(a)
    peers = _peers_frame(a)
    if "md" in formats or "html" in formats:
        written += list(draw_figures(a, out_dir / "plots").values())
        written += list(a.figures_narrow.values())
    if "csv" in formats:
        for name, df in (
            ("configurations", configurations),
            ("baselines", a.baselines),
            ("families", a.families),
            ("importance", a.importance),
            ("pareto", a.pareto),
            *([("peers", peers)] if peers is not None else []),
        ):
            path = out_dir / f"{name}.csv"
            export_frame(df).to_csv(path, index=False)
            written.append(path)
    if "json" in formats:
        path = out_dir / "configurations.json"
        path.write_text(json.dumps(_records(configurations), indent=1) + "\n")
        written.append(path)
        if peers is not None:
            path = out_dir / "peers.json"
            path.write_text(json.dumps(_records(peers), indent=1) + "\n")
            written.append(path)
        rec = a.records
        report = {
            "study": rec.study_name,
            "metric": rec.metric,
            "direction": rec.direction,
            "confidence": CONFIDENCE,
            "interval": "per configuration: the interval that inverts the decisive test "
            "(test_method; ci_method names the interval, ci_level its level: the level of its "
            "Holm step, so it excludes 0 exactly when significant); the paired bootstrap is "
            "boot_ci_low/boot_ci_high, a description only",
            "confirmation_reuse": _confirmation_reuse(a),
            "alpha": ALPHA,
            "power": POWER,
            "target_gain": rec.target_gain,
            "inert_threshold": INERT_THRESHOLD,
            "shapes_interval": list(a.interval),
            "shapes_interval_note": a.interval_note,
            "correction": CORRECTIONS[a.correction],
            "headline": a.headline,
            "setup": H.setup_line(a.study_info),
            "study_info": _jsonable(a.study_info),
            "verdict": a.verdict,
            "summary": a.summary,
            "notes": a.notes,
            "environments": _jsonable(a.environments),
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
    if a.forms is not None:
        written += F.write(a.forms, out_dir, formats)
    written += L.write(a.landscape, out_dir, formats)
    return written
