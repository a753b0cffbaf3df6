"""Assemble the analysis of a study and write it as Markdown, HTML, CSV and JSON.

:func:`analyse` turns a study into an :class:`~loran_search.analysis.model.Analysis` (tables,
stability, importance, Pareto fronts, the sections, the verdict); :func:`draw_figures` draws its
figures; :func:`write_outputs` writes the chosen formats (the text from
:mod:`loran_search.analysis.render`):

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

import json
import math
from collections.abc import Collection
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from loran_search.analysis import environment as E
from loran_search.analysis import forms as F
from loran_search.analysis import headline as H
from loran_search.analysis import landscape as L
from loran_search.analysis import plots as P
from loran_search.analysis.configurations import INTERNAL_COLUMNS, POWER, build_tables
from loran_search.analysis.importance import param_importances
from loran_search.analysis.mechanism import visited_interval
from loran_search.analysis.model import Analysis
from loran_search.analysis.pareto import pareto_mask, pareto_table
from loran_search.analysis.peers import has_peers, peers_table, with_method_columns
from loran_search.analysis.records import load_records
from loran_search.analysis.render import FIRST_FIGURE, render_html, render_markdown
from loran_search.analysis.stability import amplitude_thresholds, family_stability
from loran_search.analysis.stats import ALPHA, CONFIDENCE, CORRECTIONS
from loran_search.analysis.tuning import add_tuned_columns, normalize_notes, response_frame
from loran_search.analysis.verdict import summary_lines, verdict_lines
from loran_search.record import INERT_THRESHOLD

if TYPE_CHECKING:
    import optuna

FORMATS = ("md", "html", "csv", "json")

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
    interval, interval_note = visited_interval(rec)
    forms = F.analyse_forms(study, rec, configs, interval)  # None without form trials
    importance, imp_notes = param_importances(
        study, rec, forms=forms.names if forms is not None else ()
    )
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
        interval=interval,
        interval_note=interval_note,
        forms=forms,
        head_to_head=extras.get("head_to_head"),
        tune_response=tune_table,
    )
    a.environments = E.environments(study.get_trials(deepcopy=False))
    a.study_info = H.study_info(study, a.environments)
    a.landscape = L.analyse_landscape(study, a)  # A × ω landscape and rank sweep, if either
    for section in (a.landscape, a.forms):
        if section is not None:
            a.notes.extend(section.notes)
    a.verdict = verdict_lines(a)  # from the tables and the sections, once all are in
    a.summary = summary_lines(a)  # the verdict, the details, the sections' lines
    a.headline = H.headline(a)
    return a


def _confirmation_reuse(a: Analysis) -> int:
    """Configurations of this study evaluated on the confirmation split (QLoRA not counted)."""
    c = a.configurations
    if c.empty or "confirm_metric_mean" not in c:
        return 0
    return int(np.isfinite(c["confirm_metric_mean"].to_numpy(dtype=float)).sum())


# --------------------------------------------------------------------------------------------
# figures


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
    return peers_table(a) if has_peers(a.configurations) else None


def write_outputs(a: Analysis, out_dir: Path, formats: Collection[str]) -> list[Path]:
    """Write the chosen ``formats`` into ``out_dir``; returns the written files.

    ``configurations.csv``/``.json`` carry ``method`` and ``trainable_params`` after the
    table's own columns (:func:`loran_search.analysis.peers.with_method_columns`); a study with
    peer arms also gets ``peers.csv``/``peers.json`` (the report's Peers table, raw values).
    """
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
