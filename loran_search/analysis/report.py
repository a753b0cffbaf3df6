"""Assemble the analysis of a study and write it as Markdown, HTML, CSV and JSON.

:func:`analyse` turns a study into an :class:`Analysis` (tables, stability, importance, Pareto
fronts, plain-language summary); :func:`write_outputs` writes the chosen formats:

* ``csv``: ``configurations.csv`` (+ ``baselines.csv``, ``families.csv``, ``importance.csv``,
  ``pareto.csv``);
* ``json``: ``configurations.json`` (the same rows) and ``report.json`` (summary, notes and the
  other tables);
* ``md``: ``report.md`` — the verdict first, then the gain figure, the details, the tables;
  figures under ``plots/``;
* ``html``: ``report.html`` — one self-contained file in the same order, every figure embedded
  as ``data:image/png;base64``; at 1280 px wide the page never scrolls sideways (tables scroll
  in their own box, text columns wrap at a readable width).

**The verdict** (:func:`_verdict`) answers, in order: (1) does the best configuration beat QLoRA
on held-out data — the confirmation's gain, interval and adjusted p beside its optimistic
search-phase gain — or, without a confirmation, that the evidence is search-phase only; (2) was
the design powered to see it (the MDE against the gain, and the seeds × examples that would
detect ``report.target_gain``, one accuracy point by default); (3) where training becomes
unstable; (4) whether the non-linearity was active (how many configurations were LoRA in all
but name). Every degraded input (older records, one seed, no baseline, no or a failed
confirmation) gives a statement instead.
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
from loran_search.analysis.configurations import (
    EVIDENCE_CONFIRMATION,
    INTERNAL_COLUMNS,
    POWER,
    SEED_T,
    build_tables,
)
from loran_search.analysis.importance import param_importances
from loran_search.analysis.mechanism import INERT_THRESHOLD, visited_interval
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
    """The first screen: the verdict (:func:`_verdict`), then the study's details."""
    a.verdict = _verdict(a)
    return [*a.verdict, *_details(a)]


def _header(a: Analysis) -> str:
    rec, c = a.records, a.configurations
    t = rec.trials
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
    line = (
        f"Study **{rec.study_name}** — metric **{rec.metric}** ({rec.direction}, "
        f"{direction_word}). {len(c)} candidate configuration(s) from {len(cand)} trial(s) "
        f"({_state_line(cand)}); {base_desc} ({len(base)} trial(s))"
    )
    ct = rec.confirm_trials
    if len(ct):
        n_conf = int((ct["role"] == "confirm").sum())
        n_cb = int((ct["role"] == "confirm_baseline").sum())
        states = _state_line(ct[ct["role"] == "confirm"])
        line += (
            f"; confirmation: {n_conf} confirm trial(s) ({states}) and {n_cb} confirm_baseline "
            "trial(s)"
        )
    return line + "."


def _with_gain(c: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    done = c[np.isfinite(c["metric_mean"].to_numpy(dtype=float))] if len(c) else c
    with_gain = done[np.isfinite(done["gain"].to_numpy(dtype=float))] if len(done) else done
    return done, with_gain


def _interval_name(method: str) -> str:
    if not method or method == SEED_T:
        return "paired-t"
    return method


def _verdict(a: Analysis) -> list[str]:
    """The answers of the first screen, in order: held-out gain, power, stability, mechanism."""
    rec = a.records
    t = rec.trials
    if len(t) == 0 and len(rec.confirm_trials) == 0:
        return ["The study has no trials yet: run it first (`loran-search run FILE`)."]
    out = [_gain_answer(a)]
    power = _power_answer(a)
    if power:
        out.append(power)
    out += _stability_answers(a)
    out.append(_mechanism_answer(a))
    return out


def _gain_answer(a: Analysis) -> str:
    rec, c = a.records, a.configurations
    base = rec.trials[rec.trials["role"] == "baseline"]
    done, with_gain = _with_gain(c)
    if len(done) == 0:
        return "**No candidate configuration has a completed run**, so nothing can be compared yet."
    if len(base) == 0 or a.baselines.empty or len(with_gain) == 0:
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
        return (
            f"{why} Best configuration by {rec.metric}: **{best['config']}** = "
            f"{fmt(best['metric_mean'])} (mean over {int(best['n_seeds'])} seed(s))."
        )
    confirmed = with_gain[with_gain["evidence"] == EVIDENCE_CONFIRMATION]
    n_searched = int(np.isfinite(c["search_gain"].to_numpy(dtype=float)).sum())
    if len(confirmed):
        return _confirmed_answer(a, confirmed, n_searched)
    best = with_gain.iloc[0]
    tried = c[c["confirm_trials"].astype(str) != ""]
    if len(tried):
        lead = (
            f"**Search-phase evidence only — optimistic.** {len(tried)} configuration(s) had "
            "confirmation trials but none gave a confirmation gain (a failed confirmation or one "
            "without its baseline; see their notes), so every gain below is the search's"
        )
    else:
        lead = (
            "**Search-phase evidence only — optimistic.** No configuration was confirmed on "
            "held-out data (retrained on disjoint seeds, evaluated on the confirmation split), so "
            "every gain below is the one the search selected on"
        )
    split = _search_split(rec)
    lead += (
        f"{f' ({split} split)' if split else ''}: the best of {n_searched} is biased upward "
        "(the winner's curse). Confirm the top configurations on held-out data before trusting "
        "it: `loran-search confirm FILE` (or `loran-search run FILE` with `study.confirm` on)."
    )
    return f"{lead} {_best_line(a, best, phase='search')}"


def _search_split(rec: Records) -> str | None:
    splits = sorted({s for s in rec.trials["eval_split"] if isinstance(s, str)})
    return ", ".join(splits) if splits else None


def _significance(a: Analysis, best: pd.Series, where: str) -> str:
    imp = a.records.sign * float(best["gain"])
    if bool(best["significant"]):
        word = "better" if imp > 0 else "worse"
        return f"**significantly {word} than QLoRA{where}**"
    return f"**not significant{where}**: the data do not show it differs from QLoRA"


def _best_line(a: Analysis, best: pd.Series, *, phase: str) -> str:
    """The best configuration's gain, interval, p-values and verdict, as one sentence."""
    rec = a.records
    corr = CORRECTION_NAMES[a.correction]
    level = f"{100 * CONFIDENCE:.0f}%"
    n = int(best["n_paired"])
    n_ex = int(best["n_examples"]) if math.isfinite(float(best["n_examples"])) else 0
    design = f"{n} seed(s) × {n_ex} examples" if n_ex else ("seed" if n == 1 else f"{n} seeds")
    head = (
        f"**Best configuration: {best['config']}** — {rec.metric} "
        f"{fmt(best['metric_mean'])} vs QLoRA {fmt(best['baseline_mean'])} on the same "
        f"{design}: gain **{_signed(float(best['gain']))}**"
    )
    if phase == "confirmation":
        head = (
            f"**Best confirmed configuration: {best['config']}** — {rec.metric} "
            f"{fmt(best['confirm_metric_mean'])} vs QLoRA {fmt(best['confirm_baseline_mean'])} "
            f"on the same {design}: gain **{_signed(float(best['gain']))}**"
        )
    where = " on held-out data" if phase == "confirmation" else ""
    tested = int(best["n_tests"])
    family = "confirmed configuration(s)" if phase == "confirmation" else "configuration(s)"
    has_ci = math.isfinite(float(best["gain_ci_low"]))
    has_p = math.isfinite(float(best["p_value"]))
    if has_ci and has_p:
        ci = (
            f"{level} {_interval_name(str(best['ci_method']))} interval "
            f"[{_signed(float(best['gain_ci_low']))}, {_signed(float(best['gain_ci_high']))}]"
        )
        mcn = (
            f", exact McNemar p = {fmt(best['mcnemar_p'], 3)}"
            if math.isfinite(float(best["mcnemar_p"]))
            else ""
        )
        line = (
            f"{head} ({ci}); p = {fmt(best['p_value'], 3)}{mcn}, {corr}-adjusted p = "
            f"{fmt(best['p_adjusted'], 3)} over {tested} {family} → "
            f"{_significance(a, best, where)} at α = {ALPHA}."
        )
    elif n >= 2 and not has_p and str(best["ci_method"]) == SEED_T:
        line = (
            f"{head}; the differences are identical on every seed, so no p-value (zero variance)."
        )
    elif n >= 2 and not has_p:
        line = f"{head}; no interval or p-value ({best['note'] or 'not testable'})."
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
    if isinstance(best.get("companion_metric"), str) and math.isfinite(
        float(best["companion_gain"])
    ):
        name = best["companion_metric"]
        better = "higher" if name != "summary_loss" else "lower"
        ci = (
            f" [{_signed(float(best['companion_ci_low']))}, "
            f"{_signed(float(best['companion_ci_high']))}]"
            if math.isfinite(float(best["companion_ci_low"]))
            else ""
        )
        line += (
            f" Companion {name} ({better} is better; gain direction-aware): "
            f"{_signed(float(best['companion_gain']))}{ci}."
        )
    return line


def _confirmed_answer(a: Analysis, confirmed: pd.DataFrame, n_searched: int) -> str:
    rec = a.records
    best = confirmed.iloc[0]
    split = best["confirm_split"] or "confirmation"
    seeds = ", ".join(str(best["confirm_seeds"]).split(","))
    sig = confirmed[confirmed["significant"].astype(object) == True]  # noqa: E712
    better = int((rec.sign * sig["gain"].astype(float) > 0).sum())
    lead = (
        f"**Held-out confirmation ({split} split, fresh training on seed(s) {seeds}): "
        f"{better} of {len(confirmed)} confirmed configuration(s) beat QLoRA.**"
    )
    line = f"{lead} {_best_line(a, best, phase='confirmation')}"
    sg = float(best["search_gain"])
    if math.isfinite(sg):
        line += (
            f" Its search-phase gain was {_signed(sg)} on the {_search_split(rec) or 'search'} "
            f"split — optimistic, as the best of {n_searched} searched configuration(s) (the "
            "winner's curse)"
        )
        if rec.sign * float(best["gain"]) < rec.sign * sg:
            line += f"; the confirmation shrank it by {abs(sg - float(best['gain'])):.3g}"
        line += "."
    return line


def _target_words(rec: Records) -> str:
    g = rec.target_gain
    if "acc" in rec.metric.lower() and math.isclose(g, 0.01):
        return "one accuracy point (0.01)"
    if "acc" in rec.metric.lower():
        return f"{100 * g:.3g} accuracy point(s) ({g:g})"
    return f"a gain of {g:g} in {rec.metric}"


def _power_answer(a: Analysis) -> str | None:
    """Was the design powered to see the gain? The MDE and the design for the target gain."""
    rec, c = a.records, a.configurations
    _, with_gain = _with_gain(c)
    if len(with_gain) == 0:
        return None
    best = with_gain.iloc[0]
    mde = float(best["mde"])
    n = int(best["n_paired"])
    n_ex = int(best["n_examples"]) if math.isfinite(float(best["n_examples"])) else 0
    phase = "confirmation" if best["evidence"] == EVIDENCE_CONFIRMATION else "search"
    if not math.isfinite(mde):
        why = (
            "a single paired seed over seeds gives no variance estimate"
            if n < 2 and not n_ex
            else "the paired differences give no variance estimate"
        )
        return f"**Power:** not computable for the best configuration ({why})."
    m = max(int(best["n_tests"]), 1)
    design = f"{n} seed(s) × {n_ex} examples" if n_ex else f"{n} seeds (over seeds only)"
    gain = abs(float(best["gain"]))
    observed = f"the observed gain ({_signed(float(best['gain']))})"
    verdict = (
        f"{observed} is above it"
        if gain >= mde
        else f"{observed} is below it: a real gain of that size could well be missed"
    )
    alpha = f"α = {ALPHA}/{m}, Holm over {m} tests" if m > 1 else f"α = {ALPHA}"
    line = (
        f"**Power:** the {phase} design that ran ({design}) detects a true gain of {mde:.3g} "
        f"(the minimum detectable effect: {100 * POWER:.0f}% power at {alpha}); {verdict}."
    )
    designs = best["designs"] if isinstance(best["designs"], list) else []
    target = _target_words(rec)
    if not designs:
        line += (
            f" No design of up to 5 seeds detects {target}: the seed-to-seed variance alone is "
            "too large — more seeds, not more examples, are needed."
        )
    elif designs[0][1] is None:
        line += (
            f" Detecting {target} needs about {designs[0][0]} seeds at the examples that ran "
            "(per-example outcomes would split this into seeds × examples)."
        )
    else:
        by_s = dict(designs)
        here = by_s.get(n) or designs[0][1]
        s_here = n if n in by_s else designs[0][0]
        alt = [f"{s} × {v:,}" for s, v in designs if s != s_here][-1:]
        line += (
            f" Detecting {target} needs {s_here} seed(s) × {here:,} examples per seed"
            + (f" (or {alt[0]})" if alt else "")
            + "."
        )
    return line


def _stability_answers(a: Analysis) -> list[str]:
    rec = a.records
    t = rec.trials
    out: list[str] = []
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
    failed = _failed_confirmations(a)
    if failed:
        out.append(failed)
    return out


def _failed_confirmations(a: Analysis) -> str | None:
    ct = a.records.confirm_trials
    bad = ct[(ct["state"] == "FAIL") & ct["failure_kind"].isin(["diverged", "nonfinite"])]
    if bad.empty:
        return None
    names = _join(sorted(set(bad["config"])))
    return (
        f"**{len(bad)} confirmation trial(s) diverged** on the confirmation seeds ({names}): "
        "the configuration is unstable beyond the seeds the search saw."
    )


def _true(v: Any) -> bool:
    """Whether ``v`` is a true boolean (``None`` and ``nan`` are not)."""
    return isinstance(v, (bool, np.bool_)) and bool(v)


def _mechanism_answer(a: Analysis) -> str:
    c = a.configurations
    if len(c) == 0:
        return "**Non-linearity:** no candidate configuration to measure."
    inert = c["inert"].astype(object)
    measured = c[inert.isin([True, False])]
    if measured.empty:
        return (
            "**Non-linearity:** not measured — no run records the mechanism telemetry (older "
            "records), so whether f did anything beyond LoRA is unknown."
        )
    k = int(sum(_true(v) for v in measured["inert"]))
    thr = f"{INERT_THRESHOLD:g}"
    nus = measured["nonlinearity"].to_numpy(dtype=float)
    nus = nus[np.isfinite(nus)]
    span = (
        f"; the configurations' median ν spans {nus.min():.3g} … {nus.max():.3g}"
        if nus.size
        else ""
    )
    if k:
        line = (
            f"**Non-linearity: {k} of {len(measured)} measured configuration(s) were LoRA in all "
            f"but name** (effective non-linearity ν = ‖f(P) − P‖/‖P‖ below {thr} in every run"
            f"{span}): their results say nothing about f."
        )
    else:
        line = (
            f"**Non-linearity:** active in all {len(measured)} measured configuration(s) "
            f"(ν = ‖f(P) − P‖/‖P‖ ≥ {thr} in some run{span})."
        )
    _, with_gain = _with_gain(c)
    best = with_gain.iloc[0] if len(with_gain) else None
    if best is not None and _true(best["inert"]):
        line += (
            f" The best configuration, {best['config']}, is one of them (ν = "
            f"{fmt(best['nonlinearity'], 3)}): its gain, if any, is not the non-linearity's."
        )
    elif best is not None and math.isfinite(float(best["nonlinearity"])):
        line += f" The best configuration's ν = {fmt(best['nonlinearity'], 3)}."
    return line


def _details(a: Analysis) -> list[str]:
    """After the verdict: the study line, the spread of gains, the count of significant ones."""
    rec, c = a.records, a.configurations
    out = [_header(a)]
    _, with_gain = _with_gain(c)
    if len(with_gain):
        out.extend(_spread_line(rec, with_gain))
        corr = CORRECTION_NAMES[a.correction]
        tested = int(np.isfinite(c["p_value"].to_numpy(dtype=float)).sum())
        untestable = with_gain[~np.isfinite(with_gain["p_value"].to_numpy(dtype=float))]
        single = int((untestable["n_paired"] == 1).sum())
        flat = int(((untestable["n_paired"] > 1) & (untestable["ci_method"] == SEED_T)).sum())
        other = len(untestable) - single - flat
        reasons = []
        if single:
            reasons.append(f"{single} with a single paired seed")
        if flat:
            reasons.append(f"{flat} with identical differences on every seed")
        if other:
            reasons.append(f"{other} with unpaired examples")
        conf = c["evidence"] == EVIDENCE_CONFIRMATION
        if tested:
            parts = []
            for mask, where in ((conf, "on held-out confirmation"), (~conf, "search-phase only")):
                sub = c[mask]
                n_t = int(np.isfinite(sub["p_value"].to_numpy(dtype=float)).sum())
                if not n_t:
                    continue
                s_sig = sub[[_true(v) for v in sub["significant"]]]
                s_better = int((rec.sign * s_sig["gain"].astype(float) > 0).sum())
                s_worse = int((rec.sign * s_sig["gain"].astype(float) < 0).sum())
                parts.append(
                    f"{s_better} of {n_t} tested configuration(s) significantly better than "
                    f"QLoRA, {s_worse} significantly worse ({where})"
                )
            line = f"Overall: {'; '.join(parts)} ({corr} correction within each, α = {ALPHA})"
            if reasons:
                line += f"; not testable: {', '.join(reasons)}"
        else:
            line = (
                f"Overall: no configuration could be tested for significance ({', '.join(reasons)})"
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
                "evidence": r["evidence"],
                "gain": fmt(r["gain"], 3),
                "95% CI": ci,
                "p": fmt(r["p_value"], 3),
                f"p ({CORRECTION_NAMES[a.correction]})": fmt(r["p_adjusted"], 3),
                "significant": fmt(r["significant"]),
                "search gain (optimistic)": fmt(r["search_gain"], 3),
                "MDE": fmt(r["mde"], 3),
                "companion gain": _companion_cell(r),
                "ν": fmt(r["nonlinearity"], 3)
                + (" (LoRA in all but name)" if _true(r["inert"]) else ""),
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
            f"One row per candidate configuration (activation, rank, resolved parameters), "
            "confirmed ones first, then best first. evidence = where gain, CI and p come from: "
            "confirmation (retrained on the confirmation seeds, evaluated on the held-out split) "
            "or search (the split the search selected on; optimistic). gain = mean over seeds of "
            "(candidate − QLoRA) at the same rank, seed and example; "
            f"95% CI = {level} paired bootstrap over seeds and examples where per-example "
            "outcomes exist (ci_method in configurations.csv), else the paired-t interval over "
            f"seeds; p = two-sided paired test, adjusted with {corr} within its family (the "
            "search's tests, or the confirmation's). search gain = the selection-phase gain "
            "(the winner's curse makes the best ones optimistic). MDE = the smallest true gain "
            "the design detects with 80% power. companion gain = the continuous companion "
            "metric's gain (direction-aware). ν = effective non-linearity ‖f(P) − P‖/‖P‖. "
            "metric and QLoRA columns are the search split's. Only COMPLETE trials enter "
            "metrics; every finished search run enters stability. train s/run = mean training "
            "seconds per run (trial × seed). C/P/F/R = complete/pruned/failed/running trials.",
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
    "gain_intervals": "Gain over QLoRA of the top configurations with 95% intervals: the "
    "confirmation (held-out) gain where the configuration was confirmed, with its search-phase "
    "gain as a hollow marker (optimistic: the winner's curse); otherwise the search-phase gain.",
    "gain_vs_nonlinearity": "Gain over QLoRA against the effective non-linearity ν = "
    "‖f(P) − P‖/‖P‖ (median over runs, log scale) with 95% interval bars; left of the dotted line "
    "a configuration is LoRA in all but name.",
    "gain_vs_amplitude": "Gain over QLoRA against amplitude per family; bands are the 95% "
    "intervals of the table (a configuration without an interval has none).",
    "amp_freq_heatmap": "Gain over amplitude × frequency (A·ω scales Sinter's slope).",
    "stability_by_family": "Divergence, loss spikes and gradient-norm maxima per family.",
    "calibration": "Calibration: stability against A·ω and against the audit's Lipschitz bound.",
    "loss_curves": "Training loss of the best configurations against the baseline.",
    "shapes": "f, f − x and f′ of the top configurations on the visited range of P (f′ by "
    "autograd through the registry's function).",
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
        "gain_intervals": P.gain_intervals(c, plot_dir, notes),
        "gain_vs_nonlinearity": P.gain_vs_nonlinearity(c, plot_dir, notes, INERT_THRESHOLD),
        "gain_vs_amplitude": P.gain_vs_amplitude(c, plot_dir, notes),
        "amp_freq_heatmap": P.amp_freq_heatmap(c, plot_dir, notes, rec.metric),
        "stability_by_family": P.stability_by_family(a.families, rec.runs, plot_dir, notes),
        "calibration": P.calibration(c, plot_dir, notes),
        "loss_curves": P.loss_curves(rec, c, plot_dir, notes),
        "shapes": P.shapes(c, plot_dir, notes, interval=a.interval, interval_note=a.interval_note),
        "pareto": P.pareto(pareto_all, plot_dir, notes) if len(c) else None,
        "importance": P.importance(a.importance, plot_dir, notes),
    }
    a.figures = {k: v for k, v in drawn.items() if v is not None}
    return a.figures


# --------------------------------------------------------------------------------------------
# writers


def _details_of(a: Analysis) -> list[str]:
    """The summary paragraphs after the verdict."""
    return a.summary[len(a.verdict) :] if a.verdict else list(a.summary)


def summary_markdown(a: Analysis, figure: str | None = None) -> str:
    """The first screen (the verdict, then the details) and the data notes, as Markdown.

    Args:
        a: The analysis.
        figure: A Markdown image line shown between the verdict and the details.
    """
    lines = [f"# Report: {a.records.study_name}", ""]
    if a.verdict:
        lines += ["## Verdict", ""]
        lines += [f"{i}. {s}" for i, s in enumerate(a.verdict, 1)]
        lines.append("")
    if figure:
        lines += [figure, ""]
    details = _details_of(a)
    if details:
        lines += ["## Details", ""] if a.verdict else []
        lines += [f"- {s}" for s in details]
    if a.notes:
        lines += ["", "## Data notes", ""] + [f"- {n}" for n in a.notes]
    return "\n".join(lines) + "\n"


FIRST_FIGURE = "gain_intervals"


def render_markdown(a: Analysis, plot_prefix: str = "plots/") -> str:
    """The whole report as Markdown: verdict, the gain figure, details, notes, tables, figures."""
    first = a.figures.get(FIRST_FIGURE)
    figure = f"![{FIGURE_CAPTIONS[FIRST_FIGURE]}]({plot_prefix}{first.name})" if first else None
    parts = [summary_markdown(a, figure)]
    for title, caption, table in _tables(a):
        parts += [f"## {title}", "", caption, "", markdown_table(table), ""]
    rest = {k: v for k, v in a.figures.items() if k != FIRST_FIGURE}
    if rest:
        parts += ["## Figures", ""]
        for name, path in rest.items():
            parts += [f"![{FIGURE_CAPTIONS[name]}]({plot_prefix}{path.name})", ""]
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
h1{margin:.2em 0 .3em}h2{margin-top:1.4em}
section.verdict{background:#f4f7fb;border-left:5px solid #3a6ea5;padding:.5em 1.2em .6em;
margin:.6em 0 1em}section.verdict h2{margin:.2em 0 .3em;font-size:1.25em}
section.verdict ol{margin:.2em 0;padding-left:1.4em}section.verdict li{margin:.4em 0}
section.summary{padding:0 .2em}section.summary li{margin:.35em 0}
code{overflow-wrap:anywhere;background:#eef1f5;padding:0 .2em;border-radius:3px}
.table-wrap{overflow-x:auto;max-width:100%;margin:.5em 0 1.5em;border:1px solid #e3e6ee}
table{border-collapse:collapse;font-size:.85em;margin:0}
th,td{border:1px solid #ccd;padding:.25em .5em;text-align:right;white-space:nowrap;
vertical-align:top}
th{background:#eef;position:sticky;top:0}td:first-child,th:first-child{text-align:left}
td.text,th.text{text-align:left;white-space:normal;min-width:14em;max-width:36em}
td.text.wide,th.text.wide{min-width:22em}
figure{margin:1.5em 0}figure img{max-width:100%;height:auto;border:1px solid #ddd}
figure.first{margin:.5em 0 1.5em}
figcaption{font-size:.9em;color:#555}.caption{font-size:.9em;color:#444}
.notes li{color:#8a4b00}
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


def _figure_html(name: str, path: Path, css: str = "") -> str:
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    cap = html.escape(FIGURE_CAPTIONS[name])
    klass = f' class="{css}"' if css else ""
    return (
        f'<figure{klass} id="fig-{name}"><img alt="{cap}" src="data:image/png;base64,{data}">'
        f"<figcaption>{cap}</figcaption></figure>"
    )


def render_html(a: Analysis) -> str:
    """The whole report as one self-contained HTML page (figures base64-embedded).

    It opens on the verdict (``<section id="verdict">``), then the gain-with-interval figure,
    the details, the data notes, the tables (each in its own sideways-scrolling box) and the
    other figures; at 1280 px wide the page itself never scrolls sideways.
    """
    name = html.escape(a.records.study_name)
    body = [f"<h1>Report: {name}</h1>"]
    if a.verdict:
        body.append('<section class="verdict" id="verdict"><h2>Verdict</h2><ol>')
        body += [f"<li>{_inline(s)}</li>" for s in a.verdict]
        body.append("</ol></section>")
    first = a.figures.get(FIRST_FIGURE)
    if first is not None:
        body.append(_figure_html(FIRST_FIGURE, first, "first"))
    details = _details_of(a)
    if details:
        body.append('<section class="summary" id="details"><ul>')
        body += [f"<li>{_inline(s)}</li>" for s in details]
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
            body.append(html_table(table))
    rest = {k: v for k, v in a.figures.items() if k != FIRST_FIGURE}
    if rest:
        body.append("<h2>Figures</h2>")
        for fname, path in rest.items():
            body.append(_figure_html(fname, path))
    return (
        "<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width, initial-scale=1'>"
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
            "interval": "per configuration, see ci_method: a paired bootstrap over seeds and "
            "examples (per-example outcomes) or the paired t over seeds (older records)",
            "alpha": ALPHA,
            "power": POWER,
            "target_gain": rec.target_gain,
            "inert_threshold": INERT_THRESHOLD,
            "shapes_interval": list(a.interval),
            "shapes_interval_note": a.interval_note,
            "correction": CORRECTIONS[a.correction],
            "verdict": a.verdict,
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
