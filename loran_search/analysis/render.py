"""The report as text: the first screen, the tables as shown, Markdown and HTML.

:func:`summary_markdown` is the first screen (the headline, the setup, the verdict, how to read
it, the details and the data notes), :func:`render_markdown` and :func:`render_html` the whole
report (the HTML from ``templates/report.html.j2``, every figure embedded). The tables are
shown formatted (:func:`display_configurations` and the others of :func:`tables`); the figures'
captions are :data:`FIGURE_CAPTIONS`.
"""

from __future__ import annotations

import html
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from loran_search.analysis import environment as E
from loran_search.analysis import forms as F
from loran_search.analysis import headline as H
from loran_search.analysis import landscape as L
from loran_search.analysis.fmt import (
    data_uri,
    fmt,
    html_table,
    inline,
    markdown_table,
    pct,
    truthy,
)
from loran_search.analysis.model import Analysis
from loran_search.analysis.peers import has_peers, peers_table
from loran_search.analysis.stats import CONFIDENCE, CORRECTION_NAMES, CORRECTIONS

FIRST_FIGURE = "gain_intervals"

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


# --------------------------------------------------------------------------------------------
# tables


def display_configurations(a: Analysis) -> pd.DataFrame:
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


def tables(a: Analysis) -> list[tuple[str, str, pd.DataFrame]]:
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
            display_configurations(a),
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


# --------------------------------------------------------------------------------------------
# Markdown


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


def render_markdown(a: Analysis, plot_prefix: str = "plots/") -> str:
    """The whole report as Markdown: the first screen, notes, tables, figures."""
    first = a.figures.get(FIRST_FIGURE)
    figure = f"![{FIGURE_CAPTIONS[FIRST_FIGURE]}]({plot_prefix}{first.name})" if first else None
    parts = [summary_markdown(a, figure), E.markdown_block(a.environments)]
    if a.forms is not None:
        parts.append(F.markdown(a.forms, a.records.metric, plot_prefix))
    parts.append(L.markdown(a.landscape, plot_prefix))
    for title, caption, table in tables(a):
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


def _figure_html(name: str, path: Path, css: str = "", narrow: Path | None = None) -> str:
    """One ``<figure>``; with ``narrow``, a ``<picture>`` that picks it under 700 px."""
    cap = html.escape(FIGURE_CAPTIONS[name])
    klass = f' class="{css}"' if css else ""
    img = f'<img alt="{cap}" src="{data_uri(path)}">'
    if narrow is not None:
        img = (
            f'<picture><source media="(max-width: 700px)" srcset="{data_uri(narrow)}">'
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
    env.filters["inline"] = lambda s: Markup(inline(str(s)))
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
    shown = [
        {"title": t, "caption": c, "html": html_table(df) if not df.empty else ""}
        for t, c, df in tables(a)
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
        environment=E.html_block(a.environments, inline),
        forms=F.html_section(a.forms, a.records.metric) if a.forms is not None else "",
        landscape=L.html_section(a.landscape),
        tables=shown,
        figures=rest,
        skipped=a.figure_skips,
    )
