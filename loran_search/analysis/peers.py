"""Peers: every arm of a study against QLoRA, and LoRAN's best against the best peer, directly.

A study with peer arms (``search.methods``, issue 13) records a peer method's trials with
``activation_spec.family = "method"`` (:data:`loran_search.record.METHOD_FAMILY`) and its name as
the activation, so the configuration table already pairs each peer with QLoRA at the same rank,
seed and example, with the same statistics as every LoRAN configuration (the confirmation's when
the arm was confirmed). A registry activation of family ``peer`` (``sine_lora``: a published
method that is an element-wise ``f``) is a peer too; every other configuration is a LoRAN arm.

**The peers table** (:func:`peers_table`): one row per arm — its gain over QLoRA with interval,
adjusted p and verdict (from the configuration table), the rank it trained at (``adapter_rank``:
with ``search.match: params`` a peer's differs from the searched rank), its trainable parameters
and their ratio to LoRAN's at the searched rank (QLoRA's count there: the identity is LoRAN),
seconds per training step (mean training seconds per run over the steps each run recorded) and
peak memory (the process peak of its runs; on CPU a high-water mark, see
:mod:`loran_search.train`). QLoRA itself is the first row; its metric is the confirmation
baseline's when an arm at its rank was confirmed, else the search's.

**LoRAN's best against the best peer** (:func:`head_to_head`, issue 19): **pre-specified** — the
LoRAN arm and the peer arm with the best *search* gain over QLoRA (the search split's, never the
confirmation's) — and paired *directly*, by seed and example, with
:func:`loran_search.analysis.configurations.compare` (LoRAN's best in the place of the
candidate, the best peer in the place of the baseline), by the same decisive test as every
comparison (:mod:`loran_search.analysis.decision`). When both arms were confirmed the
comparison is on the confirmation's seeds and split and enters the confirmation's Holm family
(its adjusted p decides; its interval is at the family's level for it, so the two agree);
otherwise it is on the search split that chose the two arms and is labelled **exploratory**.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from loran_search import record as R
from loran_search.analysis import configurations as C
from loran_search.analysis.configurations import EVIDENCE_CONFIRMATION, PEER_FAMILIES
from loran_search.analysis.fmt import fmt, signed, trial_numbers
from loran_search.analysis.model import Analysis, Records
from loran_search.analysis.stats import ALPHA
from loran_search.words import count

PEER_COLUMNS = [
    "arm", "kind", "rank", "adapter_rank", "evidence", "metric_mean", "gain", "gain_ci_low",
    "gain_ci_high", "p_adjusted", "significant", "trainable_params", "params_vs_loran",
    "seconds_per_step", "peak_memory_mb", "n_trials",
]  # fmt: skip


def has_peers(configurations: pd.DataFrame) -> bool:
    """Whether the study has at least one peer arm."""
    return bool(len(configurations)) and bool(configurations["family"].isin(PEER_FAMILIES).any())


def _cost(rec: Records, numbers: list[int]) -> dict[str, float]:
    """Trainable params, adapter rank, seconds per step and peak memory of some trials."""
    frames = [rec.trials, rec.confirm_trials]
    t = pd.concat([f[f["trial"].isin(numbers)] for f in frames if len(f)], ignore_index=True)
    per_step = []
    for _, row in t.iterrows():
        hist = rec.histories.get(int(row["trial"]), {})
        steps = [len(h) for h in hist.values() if isinstance(h, list) and h]
        secs = float(row["train_seconds"])
        if steps and math.isfinite(secs):
            per_step.append(secs / float(np.mean(steps)))

    def first(column: str) -> float:
        vals = pd.to_numeric(t.get(column, pd.Series(dtype=float)), errors="coerce").dropna()
        return float(vals.iloc[0]) if len(vals) else math.nan

    mem = pd.to_numeric(t.get("peak_memory_mb", pd.Series(dtype=float)), errors="coerce")
    return {
        "trainable_params": first("trainable_params"),
        "adapter_rank": first("adapter_rank"),
        "seconds_per_step": float(np.mean(per_step)) if per_step else math.nan,
        "peak_memory_mb": float(mem.max()) if mem.notna().any() else math.nan,
    }


def peers_table(a: Analysis) -> pd.DataFrame:
    """The peers table (module docstring); empty when the study has no peer arm.

    Args:
        a: The :class:`~loran_search.analysis.model.Analysis`.
    """
    c, rec = a.configurations, a.records
    if not has_peers(c):
        return pd.DataFrame(columns=PEER_COLUMNS)
    base_trials = rec.trials[rec.trials["role"] == R.ROLE_BASELINE]
    cb = rec.confirm_trials
    base_params: dict[Any, float] = {}
    rows = []
    for _, b in a.baselines.iterrows():
        numbers = [int(n) for n in base_trials.loc[base_trials["rank"] == b["rank"], "trial"]]
        if len(cb):
            numbers += [
                int(n)
                for n in cb.loc[
                    (cb["role"] == R.ROLE_CONFIRM_BASELINE) & (cb["rank"] == b["rank"]), "trial"
                ]
            ]
        cost = _cost(rec, numbers)
        base_params[b["rank"]] = cost["trainable_params"]
        # the QLoRA metric the confirmed arms were paired with (held out), else the search's
        held = c[(c["rank"] == b["rank"]) & (c["evidence"] == EVIDENCE_CONFIRMATION)]
        held_mean = pd.to_numeric(held["confirm_baseline_mean"], errors="coerce").dropna()
        rows.append(
            {
                "arm": f"QLoRA (identity) r={b['rank']}",
                "kind": "reference",
                "rank": b["rank"],
                "adapter_rank": b["rank"],
                "evidence": EVIDENCE_CONFIRMATION if len(held_mean) else "search",
                "metric_mean": float(held_mean.iloc[0]) if len(held_mean) else b["metric_mean"],
                "gain": 0.0,
                "gain_ci_low": math.nan,
                "gain_ci_high": math.nan,
                "p_adjusted": math.nan,
                "significant": None,
                **{k: v for k, v in cost.items() if k != "adapter_rank"},
                "params_vs_loran": 1.0,
                "n_trials": len(numbers),
            }
        )
    for _, r in c.iterrows():
        numbers = trial_numbers(r["trials"]) + trial_numbers(r["confirm_trials"])
        cost = _cost(rec, numbers)
        loran_n = base_params.get(r["rank"], math.nan)
        confirmed = r["evidence"] == EVIDENCE_CONFIRMATION
        rank_trained = cost.pop("adapter_rank")
        rows.append(
            {
                "arm": r["config"],
                "kind": "peer" if r["family"] in PEER_FAMILIES else "loran",
                "rank": r["rank"],
                "adapter_rank": r["rank"] if math.isnan(rank_trained) else int(rank_trained),
                "evidence": r["evidence"],
                "metric_mean": r["confirm_metric_mean"] if confirmed else r["metric_mean"],
                "gain": r["gain"],
                "gain_ci_low": r["gain_ci_low"],
                "gain_ci_high": r["gain_ci_high"],
                "p_adjusted": r["p_adjusted"],
                "significant": r["significant"],
                **cost,
                "params_vs_loran": cost["trainable_params"] / loran_n
                if loran_n and math.isfinite(loran_n)
                else math.nan,
                "n_trials": len(numbers),
            }
        )
    return pd.DataFrame(rows, columns=PEER_COLUMNS)


def with_method_columns(a: Analysis) -> pd.DataFrame:
    """The configuration table with ``method`` and ``trainable_params`` appended (the exports).

    ``method``: the adapter method that trained the configuration, ``loran`` for every
    activation (a ``peer``-family activation such as ``sine_lora`` is LoRAN with that ``f``),
    else the peft method's name (``lora``, ``dora``, ``hira``, …; ``activation_spec.family =
    "method"``). ``trainable_params``: the adapter's trainable parameters as its trials recorded
    them (``cost.trainable_params``; NaN for older records without it). The table's own columns
    come first, unchanged.

    Args:
        a: The :class:`~loran_search.analysis.model.Analysis`.
    """
    c = a.configurations.copy()
    if not len(c):
        return c.assign(method=pd.Series(dtype=object), trainable_params=pd.Series(dtype=float))
    c["method"] = [
        str(act) if fam == R.METHOD_FAMILY else R.METHOD_LORAN
        for act, fam in zip(c["activation"], c["family"], strict=True)
    ]
    c["trainable_params"] = [
        _cost(a.records, trial_numbers(r["trials"]) + trial_numbers(r["confirm_trials"]))[
            "trainable_params"
        ]
        for _, r in c.iterrows()
    ]
    return c


def head_to_head(a: Analysis) -> dict[str, Any] | None:
    """LoRAN's best against the best peer, pre-specified and paired directly (module docstring).

    Returns:
        The analysis's head-to-head (computed with the configuration table, adjusted in its
        family) or, for an analysis built without it, a fresh
        :func:`loran_search.analysis.configurations.head_to_head` (unadjusted):
        ``{loran, peer, phase, comparison, prespecified, p_adjusted, alpha, n_tests}``, or
        ``None`` without both a LoRAN and a peer arm with a search gain.
    """
    h2h = getattr(a, "head_to_head", None)
    if h2h is None and has_peers(a.configurations):
        h2h = C.head_to_head(a.records, a.configurations)
    return h2h


def peers_answer(a: Analysis) -> str | None:
    """The first screen's peers sentence: the best arm, and LoRAN's best against the best peer.

    ``None`` when the study has no peer arm (every LoRAN-only report is unchanged).
    """
    c, rec = a.configurations, a.records
    if not has_peers(c):
        return None
    table = peers_table(a)
    arms = table[(table["kind"] != "reference") & np.isfinite(table["gain"].astype(float))]
    if arms.empty:
        return "**Peers:** no arm has a gain over QLoRA yet (no completed paired run)."
    top = arms.iloc[0]
    if rec.sign * float(top["gain"]) > 0:
        best = (
            f"**Best arm: {top['arm']}** ({top['kind']}) — gain {signed(top['gain'])} over QLoRA "
            f"[{signed(top['gain_ci_low'])}, {signed(top['gain_ci_high'])}] "
            f"({top['evidence']} evidence"
            f"{', significant' if top['significant'] else ', not significant'})"
        )
    else:
        best = (
            f"**Best arm: QLoRA itself** — no arm beats it; the closest is {top['arm']} "
            f"({top['kind']}, gain {signed(top['gain'])}, {top['evidence']} evidence)"
        )
    out = f"**Peers** (every arm on the same data, seeds and QLoRA reference). {best}."
    budget = [
        f"{r['arm']} {fmt(r['params_vs_loran'], 3)}×"
        + (f" (trained at r = {r['adapter_rank']})" if r["adapter_rank"] != r["rank"] else "")
        for _, r in table[table["kind"] == "peer"].iterrows()
    ]
    if budget:
        out += (
            " Trainable parameters against LoRAN's at the same searched rank: "
            + "; ".join(budget)
            + "."
        )
    h2h = head_to_head(a)
    if h2h is None:
        return out
    lo, pe, cmp = h2h["loran"], h2h["peer"], h2h["comparison"]
    if not cmp.measured:
        return (
            f"{out} LoRAN's best ({lo['config']}) and the best peer ({pe['config']}) could not "
            f"be paired directly: {cmp.note or 'no shared seed'}."
        )
    return f"{out} {_head_to_head_sentence(rec, h2h, table)}"


def _head_to_head_sentence(rec: Records, h2h: dict[str, Any], table: pd.DataFrame) -> str:
    """The head-to-head in words: which test, at which level, and what follows from it."""
    lo, pe, cmp = h2h["loran"], h2h["peer"], h2h["comparison"]
    dec = cmp.decision
    prespecified = bool(h2h["prespecified"])
    p_adj = float(h2h["p_adjusted"])
    alpha = float(h2h["alpha"])
    decisive_p = p_adj if prespecified and math.isfinite(p_adj) else cmp.p_value
    low, high = dec.interval(alpha) if dec is not None else (math.nan, math.nan)
    level = f"{100 * (1 - alpha):.4g}%"
    if prespecified:
        how = (
            f"pre-specified (each kind's best by its search gain), held-out confirmation, "
            f"{cmp.split or 'its'} split; Holm-adjusted p = {fmt(p_adj, 3)} over "
            f"{count(int(h2h['n_tests']), 'confirmation test')}, this one included"
        )
    else:
        how = (
            f"**exploratory**: on the search split ({cmp.split or 'search'}) whose gains chose "
            "both arms, so not a test of a pre-specified hypothesis and not adjusted"
        )
    size = count(cmp.n_seeds, "seed") + (
        f" × {count(cmp.n_examples, 'example')}" if cmp.n_examples else ""
    )
    good = rec.sign * cmp.gain
    if math.isfinite(decisive_p) and decisive_p < ALPHA:
        word = "**beats**" if good > 0 else "**loses to**"
        verdict = f"LoRAN's best {word} the best peer"
    else:
        pw = C.power_of(cmp, int(h2h["n_tests"]), rec.target_gain)
        mde = f" at this design's MDE of {pw.mde:.3g}" if math.isfinite(pw.mde) else ""
        verdict = f"**not distinguishable**{mde}: the data do not show which is better"
    lp = table.loc[table["arm"] == lo["config"]].iloc[0]
    pp = table.loc[table["arm"] == pe["config"]].iloc[0]
    test = f"{dec.method}, " if dec is not None and dec.kind != "none" else ""
    return (
        f"**LoRAN's best, {lo['config']}, against the best peer, {pe['config']}, paired "
        f"directly** ({how}; {size}): {rec.metric} {fmt(cmp.metric_mean, 4)} vs "
        f"{fmt(cmp.baseline_mean, 4)}, difference {signed(cmp.gain)} ({level} interval "
        f"[{signed(low)}, {signed(high)}]; {test}p = {fmt(cmp.p_value, 3)}) → {verdict}. "
        f"Trainable parameters {fmt(lp['trainable_params'], 4)} vs "
        f"{fmt(pp['trainable_params'], 4)}; seconds per step {fmt(lp['seconds_per_step'], 3)} vs "
        f"{fmt(pp['seconds_per_step'], 3)}."
    )
