"""The verdict of a study in plain words: the statements the report opens on.

:func:`verdict_lines` answers, in order: (1) does the best configuration beat QLoRA on held-out
data — the confirmation's gain, interval and adjusted p beside its optimistic search-phase gain —
or, without a confirmation, that the evidence is search-phase only; (2) was the design powered to
see it (the MDE against the gain, and the seeds × examples that would detect
``report.target_gain``, one accuracy point by default); (3) where training becomes unstable;
(4) whether the non-linearity was active (how many configurations were LoRA in all but name).
:func:`summary_lines` adds the details (spread, evaluation noise, failed confirmations). Every
degraded input (older records, one seed, no baseline, no or a failed confirmation) gives a
statement instead. :mod:`loran_search.analysis.render` renders them with the tables and figures.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from loran_search import record as R
from loran_search.analysis.configurations import EVIDENCE_CONFIRMATION, POWER, measured_rows
from loran_search.analysis.decision import FEW_SEEDS, MAX_DESIGN_SEEDS
from loran_search.analysis.fmt import fmt, format_value, pct, signed, truthy
from loran_search.analysis.model import Analysis, Records
from loran_search.analysis.peers import peers_answer
from loran_search.analysis.records import seed_order
from loran_search.analysis.running import running_note
from loran_search.analysis.stability import run_stability
from loran_search.analysis.stats import ALPHA, CONFIDENCE, CORRECTION_NAMES
from loran_search.record import INERT_THRESHOLD
from loran_search.words import count, plural


def _join(items: list[str]) -> str:
    return ", ".join(items) if items else "none"


def _state_line(trials: pd.DataFrame) -> str:
    s = trials["state"].value_counts()
    parts = [f"{int(s.get(k, 0))} {w}" for k, w in (
        ("COMPLETE", "complete"), ("PRUNED", "pruned"), ("FAIL", "failed"),
        ("RUNNING", "running"), ("WAITING", "waiting"),
    ) if s.get(k, 0)]  # fmt: skip
    return ", ".join(parts) or "none"


def summary_lines(a: Analysis) -> list[str]:
    """The first screen: ``a.verdict`` (:func:`verdict_lines`), then the study's details.

    The details end with the sections' own lines: the landscape's readings and rank sweep
    (:meth:`~loran_search.analysis.model.Landscape.summary_lines`), then the forms' counts
    (:meth:`~loran_search.analysis.model.FormsAnalysis.summary_line`).
    """
    sections = a.landscape.summary_lines() if a.landscape is not None else []
    if a.forms is not None:
        sections.append(a.forms.summary_line())
    return [*a.verdict, *_details(a), *sections]


def _header(a: Analysis) -> str:
    rec, c = a.records, a.configurations
    t = rec.trials
    cand = t[t["role"] == "candidate"]
    base = t[t["role"] == "baseline"]
    direction_word = "higher is better" if rec.direction == "maximize" else "lower is better"
    base_ranks = _join([str(r) for r in a.baselines["rank"]]) if not a.baselines.empty else ""
    base_seeds = (
        _join(
            sorted({s for ss in a.baselines["seeds"] for s in ss.split(",") if s}, key=seed_order)
        )
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
        f"{direction_word}). {count(len(c), 'candidate configuration')} from "
        f"{count(len(cand), 'trial')} ({_state_line(cand)}); {base_desc} "
        f"({count(len(base), 'trial')})"
    )
    ct = rec.confirm_trials
    if len(ct):
        n_conf = int((ct["role"] == "confirm").sum())
        n_cb = int((ct["role"] == "confirm_baseline").sum())
        states = _state_line(ct[ct["role"] == "confirm"])
        line += (
            f"; confirmation: {count(n_conf, 'confirm trial')} ({states}) and "
            f"{count(n_cb, 'confirm_baseline trial')}"
        )
    return line + "."


def _interval_name(method: str) -> str:
    """The interval's name as the verdict says it (``ci_method`` names how it was made)."""
    method = method or "paired-t"
    return method if "interval" in method else f"{method} interval"


# ---------------------------------------------------------------- sentences from numbers (issue 19)

#: How the companion metrics are named in words: (what it is, its unit).
COMPANION_WORDS = {
    "gold_logprob_mean": ("gold-label log-likelihood", "nats"),
    "summary_loss": ("summary loss", "nats"),
}


def companion_sentence(name: str, gain: float, low: float, high: float) -> str:
    """The companion's direction in words, from its direction-aware gain and 95% interval.

    The gain is direction-aware (higher is better): for a lower-is-better companion
    (``summary_loss``) the candidate's raw value is ``baseline − gain``, so a negative gain
    means the candidate's loss is *higher*. "better"/"worse" is said only when the interval
    excludes 0; otherwise the direction is "not distinguishable from QLoRA's".
    """
    what, unit = COMPANION_WORDS.get(name, (name, ""))
    lower_is_better = name == "summary_loss"
    raw = -gain if lower_is_better else gain  # candidate − QLoRA in the metric's own sense
    size = f"{abs(raw):.3g}{f' {unit}' if unit else ''}"
    if raw == 0:
        moved = f"the candidate's {what} equals QLoRA's on these examples"
    else:
        moved = f"the candidate's {what} is {size} {'higher' if raw > 0 else 'lower'} than QLoRA's"
    has_ci = math.isfinite(low) and math.isfinite(high)
    ci = f" (direction-aware gain {signed(gain)}, 95% t interval [{signed(low)}, {signed(high)}])"
    if not has_ci:
        return f"Companion {name}: {moved} (direction-aware gain {signed(gain)}, no interval)."
    if low > 0 or high < 0:
        judged = "better" if gain > 0 else "worse"
        return f"Companion {name}: {moved} — **{judged}**{ci}."
    return f"Companion {name}: {moved}, not distinguishable from QLoRA's{ci}."


def winners_curse_sentence(sign: float, search_gain: float, gain: float, split: str) -> str:
    """The search gain beside the confirmed one; "the winner's curse" only when it shrank.

    ``sign`` is +1 when higher is better, −1 otherwise; gains are in the metric's units.
    """
    head = f" Its search-phase gain was {signed(search_gain)} on the {split} split"
    if sign * gain < sign * search_gain:
        return (
            f"{head}; the confirmation shrank it by {abs(search_gain - gain):.3g} — the winner's "
            "curse: the best of a search is optimistic."
        )
    if sign * gain > sign * search_gain:
        return (
            f"{head}; the confirmation gain is larger ({signed(gain)}, by "
            f"{abs(gain - search_gain):.3g}): no sign of the winner's curse here."
        )
    return f"{head}, the same as the confirmation's."


def not_significant_words(mde: float) -> str:
    """A non-significant result in words: never "equal" or "harmless"."""
    if math.isfinite(mde) and mde > 0:
        return f"not distinguishable from QLoRA at this design's MDE of {mde:.3g}"
    return "the data do not show it differs from QLoRA"


def verdict_lines(a: Analysis) -> list[str]:
    """The answers of the first screen, in order: held-out gain, power, stability, mechanism."""
    rec = a.records
    t = rec.trials
    if len(t) == 0 and len(rec.confirm_trials) == 0:
        return ["The study has no trials yet: run it first (`loran-search run FILE`)."]
    out = [_gain_answer(a)]
    note = running_note(rec)  # issue 18: a report made mid-run
    if note:
        out.insert(0, note)
    peers = peers_answer(a)  # issue 13: studies with peer arms
    if peers:
        out.append(peers)
    power = _power_answer(a)
    if power:
        out.append(power)
    out += _stability_answers(a)
    out.append(_mechanism_answer(a))
    return out


def _gain_answer(a: Analysis) -> str:
    rec, c = a.records, a.configurations
    base = rec.trials[rec.trials["role"] == "baseline"]
    done, with_gain = measured_rows(c)
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
            f"{fmt(best['metric_mean'])} (mean over {count(int(best['n_seeds']), 'seed')}))."
        )
    confirmed = with_gain[with_gain["evidence"] == EVIDENCE_CONFIRMATION]
    n_searched = int(np.isfinite(c["search_gain"].to_numpy(dtype=float)).sum())
    if len(confirmed):
        return _confirmed_answer(a, confirmed, n_searched)
    best = with_gain.iloc[0]
    tried = c[c["confirm_trials"].astype(str) != ""]
    if len(tried):
        lead = (
            "**Search-phase evidence only — optimistic.** "
            f"{count(len(tried), 'configuration')} had "
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
    return f"**not significant{where}**: {not_significant_words(float(best['mde']))}"


def _best_line(a: Analysis, best: pd.Series, *, phase: str) -> str:
    """The best configuration's gain, interval, p-values and verdict, as one sentence."""
    rec = a.records
    corr = CORRECTION_NAMES[a.correction]
    level = f"{100 * CONFIDENCE:.0f}%"
    n = int(best["n_paired"])
    n_ex = int(best["n_examples"]) if math.isfinite(float(best["n_examples"])) else 0
    design = (
        f"{count(n, 'seed')} × {count(n_ex, 'example')}"
        if n_ex
        else ("seed" if n == 1 else f"{n} seeds")
    )
    head = (
        f"**Best configuration: {best['config']}** — {rec.metric} "
        f"{fmt(best['metric_mean'])} vs QLoRA {fmt(best['baseline_mean'])} on the same "
        f"{design}: gain **{signed(float(best['gain']))}**"
    )
    if phase == "confirmation":
        head = (
            f"**Best confirmed configuration: {best['config']}** — {rec.metric} "
            f"{fmt(best['confirm_metric_mean'])} vs QLoRA {fmt(best['confirm_baseline_mean'])} "
            f"on the same {design}: gain **{signed(float(best['gain']))}**"
        )
    where = " on held-out data" if phase == "confirmation" else ""
    tested = int(best["n_tests"])
    family = plural(
        tested, "confirmed configuration" if phase == "confirmation" else "configuration"
    )
    has_ci = math.isfinite(float(best["gain_ci_low"]))
    has_p = math.isfinite(float(best["p_value"]))
    if has_ci and has_p:
        ci_level = float(best.get("ci_level", math.nan))
        if math.isfinite(ci_level):
            level = f"{100 * ci_level:.4g}%"
        ci = (
            f"{level} {_interval_name(str(best['ci_method']))} "
            f"[{signed(float(best['gain_ci_low']))}, {signed(float(best['gain_ci_high']))}]"
        )
        if tested > 1:
            ci += f", at the level of its {corr} step so that it agrees with the adjusted p"
        test = str(best.get("test_method") or "")
        line = (
            f"{head} ({ci}); p = {fmt(best['p_value'], 3)}{f' ({test})' if test else ''}, "
            f"{corr}-adjusted p = {fmt(best['p_adjusted'], 3)} over {tested} {family} → "
            f"{_significance(a, best, where)} at α = {ALPHA}."
        )
    elif n >= 2 and not has_p and "identical" in str(best["note"]):
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
        line += " " + companion_sentence(
            str(best["companion_metric"]),
            float(best["companion_gain"]),
            float(best["companion_ci_low"]),
            float(best["companion_ci_high"]),
        )
    return line


def _confirmed_answer(a: Analysis, confirmed: pd.DataFrame, n_searched: int) -> str:
    rec = a.records
    best = confirmed.iloc[0]
    split = best["confirm_split"] or "confirmation"
    seed_list = str(best["confirm_seeds"]).split(",")
    seeds = f"{plural(len(seed_list), 'seed')} {', '.join(seed_list)}"
    sig = confirmed[confirmed["significant"].astype(object) == True]  # noqa: E712
    better = int((rec.sign * sig["gain"].astype(float) > 0).sum())
    lead = (
        f"**Held-out confirmation ({split} split, fresh training on {seeds}): "
        f"{better} of {count(len(confirmed), 'confirmed configuration')} "
        f"{'beats' if len(confirmed) == 1 else 'beat'} QLoRA.**"
    )
    line = f"{lead} {_best_line(a, best, phase='confirmation')}"
    sg = float(best["search_gain"])
    if math.isfinite(sg):
        line += winners_curse_sentence(
            rec.sign, sg, float(best["gain"]), _search_split(rec) or "search"
        )
    return line + _reuse_sentence(a, split)


def _reuse_sentence(a: Analysis, split: str) -> str:
    """How many configurations of this study were scored on the confirmation split."""
    c = a.configurations
    looked = c[np.isfinite(c["confirm_metric_mean"].to_numpy(dtype=float))]
    h2h = a.head_to_head
    extra = (
        " (and LoRAN's best against the best peer on it)"
        if h2h is not None and h2h["phase"] == EVIDENCE_CONFIRMATION
        else ""
    )
    return (
        f" Test-set reuse: {count(len(looked), 'configuration')} of this study and QLoRA were "
        "evaluated "
        f"on the {split} split{extra}; each further look at it makes it less held out."
    )


def _target_words(rec: Records) -> str:
    g = rec.target_gain
    if "acc" in rec.metric.lower() and math.isclose(g, 0.01):
        return "one accuracy point (0.01)"
    if "acc" in rec.metric.lower():
        return f"{100 * g:.3g} accuracy {plural(100 * g, 'point')} ({g:g})"
    return f"a gain of {g:g} in {rec.metric}"


def _power_answer(a: Analysis) -> str | None:
    """Was the design powered to see the gain? The MDE and the design for the target gain."""
    rec, c = a.records, a.configurations
    _, with_gain = measured_rows(c)
    if len(with_gain) == 0:
        return None
    best = with_gain.iloc[0]
    mde = float(best["mde"])
    n = int(best["n_paired"])
    n_ex = int(best["n_examples"]) if math.isfinite(float(best["n_examples"])) else 0
    phase = "confirmation" if best["evidence"] == EVIDENCE_CONFIRMATION else "search"
    if not math.isfinite(mde) or mde == 0.0:
        why = (
            "a single paired seed over seeds gives no variance estimate"
            if n < 2 and not n_ex
            else "the paired differences give no variance estimate"
        )
        if mde == 0.0:  # seen in vision_digits: every example scored alike by both
            why = (
                "every paired difference is zero — it scored every example as QLoRA did — so "
                "there is no variance to size a design from"
            )
        return f"**Power:** not computable for the best configuration ({why})."
    m = max(int(best["n_tests"]), 1)
    design = (
        f"{count(n, 'seed')} × {count(n_ex, 'example')}"
        if n_ex
        else f"{count(n, 'seed')} (over seeds only)"
    )
    gain = abs(float(best["gain"]))
    observed = f"the observed gain ({signed(float(best['gain']))})"
    verdict = (
        f"{observed} is above it"
        if gain >= mde
        else f"{observed} is below it: a real gain of that size could well be missed"
    )
    alpha = f"α = {ALPHA}/{m}, Holm over {m} tests" if m > 1 else f"α = {ALPHA}"
    df = float(best.get("mde_df", math.nan))
    test = f"the t-test's noncentral t, {df:.0f} df" if math.isfinite(df) else "the t-test"
    if n == 1 and n_ex and "McNemar" in str(best.get("test_method") or ""):
        test += " (the t approximation of the exact McNemar test, a little optimistic)"
    line = (
        f"**Power:** the {phase} design that ran ({design}) detects a true gain of {mde:.3g} "
        f"(the minimum detectable effect: {100 * POWER:.0f}% power at {alpha}, from {test}); "
        f"{verdict}."
    )
    sd, lo, hi = (float(best.get(k, math.nan)) for k in ("seed_sd", "seed_sd_low", "seed_sd_high"))
    if n >= 2 and math.isfinite(sd):
        line += (
            f" The seed-to-seed sd of the paired difference is {sd:.3g}, plausibly "
            f"{lo:.3g}–{hi:.3g} (95% χ² interval, {n - 1} df), so the MDE itself is uncertain."
        )
    if n < FEW_SEEDS:
        line += f" With {count(n, 'seed')} the test can only see large effects" + (
            " (and one seed says nothing about another: the seed-to-seed variance is not "
            "estimated)."
            if n == 1
            else "."
        )
    designs = best["designs"] if isinstance(best["designs"], list) else []
    target = _target_words(rec)
    if not designs:
        line += (
            f" No design of up to {MAX_DESIGN_SEEDS} seeds detects {target}: the seed-to-seed "
            "variance alone is too large."
        )
    elif designs[0][1] is None:
        line += (
            f" Detecting {target} needs about {designs[0][0]} seeds at the examples that ran "
            "(per-example outcomes would split this into seeds × examples)."
        )
    else:
        by_s = dict(designs)
        # the design that ran if it can; else the one with the fewest evaluations (seeds × N)
        s_here = n if n in by_s else min(by_s, key=lambda k: (k * by_s[k], k))
        here = by_s[s_here]
        alt = [f"{s} × {v:,}" for s, v in designs if s != s_here][-1:]
        assumed = (
            " assuming no seed-to-seed variance, which one seed cannot estimate" if n == 1 else ""
        )
        line += (
            f" Detecting {target} needs {s_here} seeds × {here:,} examples per seed"
            + (f" (or {alt[0]})" if alt else "")
            + assumed
            + "."
        )
    return line


# record families that are groups rather than activation families, named for a reader
_FAMILY_LABELS = {"method": "the peer methods (family `method`: DoRA, HiRA, … pooled)"}


def _family_label(family: str) -> str:
    """How the verdict names a record family (peer arms share the family ``method``)."""
    return _FAMILY_LABELS.get(family, family)


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
            f"{which}: **{_family_label(f0['family'])}** — {pct(f0['diverged_rate'])} of its "
            f"{count(int(f0['n_runs']), 'run')} diverged, {pct(f0['loss_spike_rate'])} had loss "
            f"spikes, max gradient norm {fmt(f0['grad_norm_max'], 3)}"
        )
        # QLoRA is the baseline *role* (identity), not the registry family `baseline`, which
        # also holds relu, sigmoid, … candidates
        b = run_stability(rec.runs[rec.runs["role"] == R.ROLE_BASELINE])
        if math.isfinite(b["diverged_rate"]):
            line += (
                f" (QLoRA baseline: {pct(b['diverged_rate'])} diverged, "
                f"{pct(b['loss_spike_rate'])} with spikes)"
            )
        out.append(line + ".")
    elif len(t):
        runs = rec.runs
        cand = runs[(runs["role"] == R.ROLE_CANDIDATE) & runs["has_stability"].astype(bool)]
        if len(cand):
            # every candidate is in the registry's `baseline` family (relu, sigmoid, …), which
            # the family table shares with QLoRA: state the candidates' runs directly
            spiked = (cand["loss_spikes"].fillna(0) > 0).mean()
            out.append(
                f"Stability of the candidates (all in the registry's `baseline` family of "
                f"standard functions): {pct(cand['diverged'].astype(bool).mean())} of their "
                f"{count(len(cand), 'run')} diverged, {pct(spiked)} had loss spikes, max gradient "
                "norm "
                f"{fmt(cand['grad_norm_max'].max(), 3)}."
            )
        else:
            out.append("Stability: no run records stability telemetry.")

    # the forms of a form search (each its own activation) that never diverged: one line for all
    forms = a.forms.names if a.forms is not None else frozenset()
    calm = [th for th in a.thresholds if th["activation"] in forms and th["first_unstable"] is None]
    for th in a.thresholds:
        if len(calm) > 1 and th in calm:
            if th is calm[0]:
                out.append(_calm_forms_line(calm))
            continue
        act = th["activation"]
        sym = "A" if th["axis"] == "amplitude" else "A·ω"
        word = "amplitude" if th["axis"] == "amplitude" else "amplitude × frequency"
        rng = f"{sym} = {format_value(th['axis_min'])} … {format_value(th['axis_max'])}"
        if th["first_unstable"] is None:
            line = (
                f"**{act}: no divergence at any {word} tested** ({rng}, "
                f"{count(th['n_configs'], 'configuration')})"
            )
        else:
            au = th["first_unstable"]
            line = f"**{act}: training diverges from {word} {sym} ≥ {format_value(au)}**"
            if th["amp_freq_at_first_unstable"] is not None:
                line += f" (A·ω = {format_value(th['amp_freq_at_first_unstable'])})"
            line += (
                f"; {pct(th['unstable_above_share'])} of the configurations at or above it diverged"
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


def _calm_forms_line(calm: list[dict[str, Any]]) -> str:
    """The forms that never diverged, in one statement (each form is its own activation)."""
    if all(th["axis"] == "amplitude" for th in calm):
        word, values = "amplitude", "amplitudes"
    else:  # a swept frequency: the axis is A·ω
        word, values = "amplitude × frequency", "amplitudes and frequencies"
    return (
        f"**Forms: no divergence at any {word} tested** ({len(calm)} forms, each at the "
        f"{values} it was trained with; the form table below lists them)."
    )


def _failed_confirmations(a: Analysis) -> str | None:
    ct = a.records.confirm_trials
    bad = ct[(ct["state"] == "FAIL") & ct["failure_kind"].isin(["diverged", "nonfinite"])]
    if bad.empty:
        return None
    names = _join(sorted(set(bad["config"])))
    return (
        f"**{count(len(bad), 'confirmation trial')} diverged** on the confirmation seeds "
        f"({names}): "
        "the configuration is unstable beyond the seeds the search saw."
    )


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
    # P = B·A stayed exactly 0 (e.g. relu: f'(0) = 0 with B = 0 at the start, so no gradient
    # ever reaches A or B): not "LoRA in all but name" but an adapter that never trained
    p_rms = measured["p_rms"].to_numpy(dtype=float) if "p_rms" in measured else np.array([])
    dead = measured[p_rms == 0] if p_rms.size else measured.iloc[0:0]
    measured_live = measured.drop(index=dead.index)
    k = int(sum(truthy(v) for v in measured_live["inert"]))
    thr = f"{INERT_THRESHOLD:g}"
    nus = measured["nonlinearity"].to_numpy(dtype=float)
    nus = nus[np.isfinite(nus)]
    span = (
        f"; the configurations' median ν spans {nus.min():.3g} … {nus.max():.3g}"
        if nus.size
        else ""
    )
    notes = c["note"].astype(str) if "note" in c else pd.Series([], dtype=str)
    skipped = int(notes.str.startswith("not trained: search.skip_inert").sum())
    if k:
        how = (
            f"; {skipped} of them predicted so from the baseline's P and not trained"
            if skipped
            else ""
        )
        line = (
            f"**Non-linearity: {k} of {count(len(measured), 'configuration')} "
            f"{plural(k, 'was')} LoRA in all "
            f"but name** (effective non-linearity ν = ‖f(P) − P‖/‖P‖ below {thr} in every run"
            f"{how}{span}): their results say nothing about f."
        )
    else:
        line = (
            f"**Non-linearity:** active in {'the' if len(measured) == 1 else 'all'} "
            f"{count(len(measured), 'measured configuration')} "
            f"(ν = ‖f(P) − P‖/‖P‖ ≥ {thr} in some run{span})."
        )
    if len(dead):
        names = ", ".join(str(x) for x in dead["config"])
        line += (
            f" **{count(len(dead), 'configuration')} never trained: P = B·A stayed exactly 0** "
            f"({names}): f′(0) = 0, and with B = 0 at the start no gradient reaches A or B — "
            "the run measures the unadapted model, not f."
        )
    _, with_gain = measured_rows(c)
    best = with_gain.iloc[0] if len(with_gain) else None
    if best is not None and truthy(best["inert"]) and best.name not in dead.index:
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
    _, with_gain = measured_rows(c)
    if len(with_gain):
        out.extend(_spread_line(rec, with_gain))
        corr = CORRECTION_NAMES[a.correction]
        tested = int(np.isfinite(c["p_value"].to_numpy(dtype=float)).sum())
        untestable = with_gain[~np.isfinite(with_gain["p_value"].to_numpy(dtype=float))]
        single = int((untestable["n_paired"] == 1).sum())
        flat = int(
            (
                (untestable["n_paired"] > 1)
                & untestable["note"].astype(str).str.contains("identical")
            ).sum()
        )
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
                s_sig = sub[[truthy(v) for v in sub["significant"]]]
                s_better = int((rec.sign * s_sig["gain"].astype(float) > 0).sum())
                s_worse = int((rec.sign * s_sig["gain"].astype(float) < 0).sum())
                parts.append(
                    f"{s_better} of {count(n_t, 'tested configuration')} significantly better than "
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
        f"vs QLoRA {fmt(worst['baseline_mean'])}: gain **{signed(float(worst['gain']))}**"
    )
    if noise is not None and int(worst["n_paired"]) == 1:
        verdict = "beyond" if abs(w_imp) >= noise else "within"
        line += f" ({verdict} the ±{noise:.3g} evaluation noise)"
        near = int((gains.abs() < noise).sum())
        line += (
            f". {near} of {count(len(with_gain), 'configuration')} {plural(near, 'is')} within "
            "that noise of QLoRA"
        )
    else:
        same = int((gains == 0).sum())
        if same:
            line += (
                f". {same} of {count(len(with_gain), 'configuration')} {plural(same, 'has')} a "
                "gain of exactly 0 on "
                "these examples"
            )
    return [line + "."]


def _eval_noise(rec: Records, p: float) -> float | None:
    """``2·sqrt(p(1−p)/N)``: twice the binomial standard error of an accuracy on ``N`` examples.

    Only for accuracy-like metrics in ``[0, 1]`` when the study records its ``eval_size``; it is
    the scale of evaluation-sampling noise of a single run, not a test of the gain.
    """
    if rec.eval_size is None or "acc" not in rec.metric.lower() or not 0.0 <= p <= 1.0:
        return None
    return 2.0 * math.sqrt(max(p * (1.0 - p), 0.0) / rec.eval_size)
