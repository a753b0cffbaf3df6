"""The configuration table: one row per candidate configuration, paired against the baseline.

A configuration is ``(activation, rank, resolved parameters)``. Two comparisons with QLoRA (the
identity at the **same rank**) are made for each one, with the same statistics:

* the **search** comparison: its ``candidate`` trials against the ``baseline`` trials on the
  search split (``val``) and the search seeds. It is what selected the configuration, so for the
  best configurations it is optimistic (the winner's curse): ``search_gain``;
* the **confirmation** comparison, when the configuration was confirmed: its ``confirm`` trial
  against the ``confirm_baseline`` trial at its rank, both retrained on the disjoint confirmation
  seeds and evaluated on the confirmation split (``test``).

``evidence`` is ``confirmation`` when a confirmation gain was measured (a COMPLETE ``confirm``
trial paired with a COMPLETE ``confirm_baseline``), else ``search``; ``gain``, ``gain_ci_low``,
``gain_ci_high``, ``p_value``, ``p_adjusted``, ``significant``, ``n_paired``, ``ci_method``,
``mcnemar_p``, the companion columns and ``mde`` come from that comparison. A confirmation that
failed, or one without its baseline, leaves the search evidence in place and says so in ``note``.

**How one comparison is made.** Per-seed metrics are the means over a seed's COMPLETE trials
(several trials on one seed are averaged first); only seeds both sides have are paired.

* With per-example outcomes (``examples``) on every paired seed, outcomes are paired by rank,
  seed **and example id** (:func:`loran_search.analysis.paired.pair_examples`); different
  example sets are flagged in ``note`` and get no interval or p-value (never silently mixed). The
  gain is ``ḡ`` = the mean over seeds of the mean per-example difference; the interval is
  :func:`~loran_search.analysis.paired.paired_gain_interval` (two-level bootstrap over seeds
  then examples with ≥ 2 seeds, over examples with one; seeded, so reproducible) and
  ``ci_method`` names it; ``p_value`` is the two-sided z-test of
  :func:`~loran_search.analysis.paired.paired_p_value` (the test the MDE describes); accuracy on
  one seed also gets the exact McNemar ``mcnemar_p``. The companion metric
  (``gold_logprob_mean``: mean gold-label log-likelihood, higher is better; ``summary_loss``:
  lower is better, so its gain is baseline − candidate) gets the same interval.
* Without them (older records), the seed-level paired t of :mod:`loran_search.analysis.stats`:
  ``gain ± t(0.975, n − 1)·sd/√n`` over the paired seed differences (``ci_method`` says so).

``p_adjusted`` corrects the p-values with Holm (default) or Benjamini–Hochberg within each family
of tests: the search comparisons of all configurations, and separately the confirmation
comparisons of the confirmed ones (new data, a new family); ``significant`` is
``p_adjusted < 0.05``. ``mde`` is
:func:`~loran_search.analysis.paired.minimum_detectable_effect` of the design that ran (power 0.8,
α = 0.05 divided by the number of tested configurations of its family, Holm's first threshold);
over seeds only, ``(z_{1−α'/2} + z_{0.8})·sd/√n``.

Mechanism columns (:mod:`loran_search.analysis.mechanism`): ``nonlinearity``, ``p_rms``,
``stable_rank``, ``stable_rank_lora`` are the medians over the configuration's runs (search and
confirmation) of the recorded per-run medians over layers; ``inert`` says it was LoRA in all but
name. Stability rates come from the search runs (:mod:`loran_search.analysis.stability`);
``lipschitz`` is the registry audit's bound ``sup |f'|`` on ``[-1, 1]``.

Only COMPLETE trials enter metrics and gains (a pruned or failed run is partial); all finished
search runs enter stability.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pandas as pd

from loran_search import record as R
from loran_search.analysis import decision as D
from loran_search.analysis import paired as PE
from loran_search.analysis.fmt import trial_list, trial_numbers
from loran_search.analysis.mechanism import configuration_mechanism
from loran_search.analysis.model import Comparison, Records
from loran_search.analysis.records import COMPANIONS, EXAMPLE_COLUMN, examples_frame, seed_order
from loran_search.analysis.stability import run_stability
from loran_search.analysis.stats import ALPHA, adjust
from loran_search.words import plural

LEADING_COLUMNS = ["activation", "family", "rank"]
STAT_COLUMNS = [
    "n_seeds", "metric_mean", "metric_std", "baseline_mean", "gain", "gain_ci_low",
    "gain_ci_high", "p_value", "significant", "diverged_rate", "loss_spike_rate",
    "grad_norm_max", "lipschitz", "train_seconds", "n_complete", "n_pruned", "n_fail",
    "n_running",
]  # fmt: skip
EXTRA_COLUMNS = [
    "p_adjusted", "n_paired", "unstable_rate", "amp_freq", "n_trials", "trials", "config", "note",
]  # fmt: skip
EVIDENCE_COLUMNS = [
    "evidence", "search_gain", "ci_method", "mcnemar_p", "companion_metric", "companion_gain",
    "companion_ci_low", "companion_ci_high", "mde", "nonlinearity", "p_rms", "stable_rank",
    "stable_rank_lora", "inert", "n_examples", "n_tests", "confirm_metric_mean",
    "confirm_baseline_mean", "confirm_trials",
]  # fmt: skip
#: Issue 19: the test that decided, the interval's level, the bootstrap as a description, the
#: seed-to-seed sd of the paired difference with its χ² interval, test-set reuse.
DECISION_COLUMNS = [
    "test_method", "ci_level", "boot_ci_low", "boot_ci_high", "seed_sd", "seed_sd_low",
    "seed_sd_high", "mde_df",
]  # fmt: skip
INTERNAL_COLUMNS = ["key", "designs", "confirm_seeds", "confirm_split"]  # dropped from outputs
_RESERVED = set(
    LEADING_COLUMNS
    + STAT_COLUMNS
    + EXTRA_COLUMNS
    + EVIDENCE_COLUMNS
    + DECISION_COLUMNS
    + INTERNAL_COLUMNS
) | {"improvement"}

EVIDENCE_SEARCH = "search"
EVIDENCE_CONFIRMATION = "confirmation"
POWER = 0.8
SEED_T = "paired t over seeds"  # the interval of records without per-example outcomes (≤ v0.3)
#: Families of peer arms: a peft method (``method``) or a published peer activation (``peer``).
PEER_FAMILIES = (R.METHOD_FAMILY, "peer")
NO_EXAMPLES_NOTE = "no per-example outcomes in this study's records: intervals are over seeds"

AUDIT_BUDGET_S = 60.0
Auditor = Callable[[str, dict[str, float]], float]


def measured_rows(c: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The rows of the table with a metric (a completed run), and those of them with a gain."""
    done = c[np.isfinite(c["metric_mean"].to_numpy(dtype=float))] if len(c) else c
    with_gain = done[np.isfinite(done["gain"].to_numpy(dtype=float))] if len(done) else done
    return done, with_gain


def param_column(name: str) -> str:
    """The table column of parameter ``name`` (prefixed only if it collides with a column)."""
    return f"param_{name}" if name in _RESERVED else name


def directed_gain(candidate: Any, baseline: Any, sign: float) -> Any:
    """The gain over the baseline, direction-aware: ``Δ = sign·(candidate − baseline)``.

    ``sign`` is ``+1`` when the metric is maximised, ``−1`` when minimised, so ``Δ > 0`` is
    always an improvement. Works on numbers and arrays alike.
    """
    return sign * (candidate - baseline)


def _seed_means(runs: pd.DataFrame, column: str = "metric") -> tuple[dict[str, float], list[float]]:
    """Per-seed mean ``column`` of COMPLETE runs, and the values of runs with an unknown seed."""
    ok = runs[(runs["state"] == "COMPLETE") & np.isfinite(runs[column].to_numpy(dtype=float))]
    known = ok[ok["seed"].notna()]
    per_seed = known.groupby("seed")[column].mean().to_dict()
    unknown = ok.loc[ok["seed"].isna(), column].astype(float).tolist()
    return {str(k): float(v) for k, v in per_seed.items()}, unknown


def _state_counts(trials: pd.DataFrame) -> dict[str, int]:
    s = trials["state"]
    return {
        "n_complete": int((s == "COMPLETE").sum()),
        "n_pruned": int((s == "PRUNED").sum()),
        "n_fail": int((s == "FAIL").sum()),
        "n_running": int(s.isin(["RUNNING", "WAITING"]).sum()),
    }


def make_auditor(notes: list[str], budget_s: float = AUDIT_BUDGET_S) -> Auditor:
    """A cached ``(name, params) -> Lipschitz bound`` that never raises.

    It calls ``activations.symbolic.audit(name, params).to_dict()["lipschitz"]``. If the module is
    missing, or an audit fails, the value is ``nan`` and one note per cause is added to ``notes``.
    Symbolic audits cost ~0.1 s each; after ``budget_s`` seconds in total the remaining
    configurations get ``nan`` (and a note) so a large study's report stays quick.
    """
    cache: dict[tuple, float] = {}
    try:
        from loran_search.activations.symbolic import audit
    except Exception as err:  # the registry's symbolic audit is not available
        notes.append(
            f"Lipschitz bounds unavailable: activations.symbolic.audit could not be imported "
            f"({type(err).__name__}: {err})."
        )

        def missing(name: str, params: dict[str, float]) -> float:
            return math.nan

        return missing

    failed: set[str] = set()
    spent = [0.0]

    def lipschitz(name: str, params: dict[str, float]) -> float:
        key = (name, tuple(sorted(params.items())))
        if key not in cache and spent[0] > budget_s:
            if "budget" not in failed:
                failed.add("budget")
                notes.append(
                    f"Lipschitz bounds: the symbolic audits took over {budget_s:.0f} s; the "
                    "remaining configurations have none (`loran-search activations audit NAME "
                    "--set …` gives one)."
                )
            return math.nan
        if key not in cache:
            start = time.perf_counter()
            try:
                result = audit(name, dict(params))
                data = result.to_dict() if hasattr(result, "to_dict") else dict(result)
                cache[key] = float(data["lipschitz"])
            except Exception as err:
                cache[key] = math.nan
                if name not in failed:
                    failed.add(name)
                    notes.append(
                        f"Lipschitz bound of '{name}' unavailable: the audit failed "
                        f"({type(err).__name__}: {err})."
                    )
            spent[0] += time.perf_counter() - start
        return cache[key]

    return lipschitz


# --------------------------------------------------------------------------------------------
# one comparison


class _ExampleCache:
    """Per-trial example tables, built once."""

    def __init__(self, rec: Records) -> None:
        self.rec = rec
        self.frames: dict[int, pd.DataFrame] = {}

    def __call__(self, trial: int) -> pd.DataFrame | None:
        if trial not in self.rec.examples:
            return None
        if trial not in self.frames:
            self.frames[trial] = examples_frame(self.rec.examples[trial])
        return self.frames[trial]


def _phase_examples(
    cache: _ExampleCache, trials: pd.DataFrame, seeds: Sequence[str], columns: Sequence[str]
) -> pd.DataFrame | None:
    """Examples of ``trials`` (COMPLETE) on ``seeds``, averaged per example over trials.

    Returns ``None`` unless every seed has per-example outcomes with ``columns[0]``.
    """
    frames = []
    for n in trials.loc[trials["state"] == "COMPLETE", "trial"]:
        df = cache(int(n))
        if df is not None and columns[0] in df:
            frames.append(df[df["seed"].isin(list(seeds))])
    if not frames:
        return None
    df = pd.concat(frames, ignore_index=True)
    if set(seeds) - set(df["seed"]):
        return None
    keep = [c for c in columns if c in df]
    for c in keep:
        df[c] = pd.to_numeric(df[c], errors="coerce")
    if len(frames) == 1:
        return df[["seed", "example_id", *keep]].reset_index(drop=True)
    return df.groupby(["seed", "example_id"], as_index=False, sort=True)[keep].mean()


def compare(
    rec: Records,
    cand_trials: pd.DataFrame,
    cand_runs: pd.DataFrame,
    base_trials: pd.DataFrame,
    base_runs: pd.DataFrame,
    cache: _ExampleCache | None = None,
    *,
    seed: int = 0,
) -> Comparison:
    """Compare a candidate with its baseline on the seeds and examples both have.

    Args:
        rec: The study's records (metric, companion, per-example outcomes).
        cand_trials: The candidate's trials (any state; only COMPLETE ones count).
        cand_runs: Their runs.
        base_trials: The baseline's trials at the same rank, same phase.
        base_runs: Their runs.
        cache: Per-trial example tables (built on the fly when ``None``).
        seed: Seed of the bootstrap resampling.

    Returns:
        The :class:`Comparison` (see the module docstring for the statistics).
    """
    cache = cache or _ExampleCache(rec)
    out = Comparison()
    per_c, _ = _seed_means(cand_runs)
    per_b, _ = _seed_means(base_runs)
    paired = sorted(set(per_c) & set(per_b), key=seed_order)
    out.split = _split(cand_trials, base_trials)
    if out.split == "":
        out.note = "the candidate and the baseline were evaluated on different splits: not paired"
        return out
    if not paired:
        out.note = "no paired seed with the baseline"
        return out
    out.seeds = paired
    out.n_seeds = len(paired)
    out.seed_diffs = [per_c[s] - per_b[s] for s in paired]
    out.metric_mean = float(np.mean([per_c[s] for s in paired]))
    out.baseline_mean = float(np.mean([per_b[s] for s in paired]))
    column = EXAMPLE_COLUMN.get(rec.metric)
    companion = _companion(rec, cache, cand_trials)
    ex_c = ex_b = None
    if column is not None:
        wanted = [column] + ([companion[1]] if companion else [])
        ex_c = _phase_examples(cache, cand_trials, paired, wanted)
        ex_b = _phase_examples(cache, base_trials, paired, wanted) if ex_c is not None else None
    if ex_c is None or ex_b is None or column is None:
        _over_seeds(out, rec, cand_runs, base_runs, paired, companion)
        return out
    try:
        pairs = PE.pair_examples(ex_c, ex_b, column)
    except PE.PairingError as err:
        out.gain = float(np.mean(out.seed_diffs))
        out.ci_method = "none: the example sets differ"
        out.note = f"not paired: {err}"
        return out
    _over_examples(out, rec, pairs, column, seed)
    if companion is not None:
        name, col, sign = companion
        out.companion_metric = name
        try:
            cp = PE.pair_examples(ex_c, ex_b, col)
            diffs = [sign * d for d in PE.differences(cp)]  # direction-aware
            cdec = D.decide(diffs, binary=False)
            out.companion_gain = cdec.gain
            out.companion_ci_low, out.companion_ci_high = cdec.interval(ALPHA)
        except PE.PairingError as err:
            out.note = _join_notes(out.note, f"companion {name} not paired: {err}")
    return out


def _split(cand_trials: pd.DataFrame, base_trials: pd.DataFrame) -> str | None:
    """The split both sides were evaluated on; ``""`` when they differ, ``None`` if unknown."""
    done_c = cand_trials[cand_trials["state"] == "COMPLETE"]
    done_b = base_trials[base_trials["state"] == "COMPLETE"]
    sc = {s for s in done_c["eval_split"] if isinstance(s, str)}
    sb = {s for s in done_b["eval_split"] if isinstance(s, str)}
    if sc and sb and sc != sb:
        return ""
    both = sc | sb
    return next(iter(both)) if len(both) == 1 else None


def _companion(
    rec: Records, cache: _ExampleCache, trials: pd.DataFrame
) -> tuple[str, str, float] | None:
    """``(seed-metric name, example column, sign)`` of the companion these trials record."""
    for name, col, sign in COMPANIONS:
        if rec.companion == name:
            return name, col, sign
    for n in trials["trial"]:
        df = cache(int(n))
        if df is not None:
            for name, col, sign in COMPANIONS:
                if col in df:
                    return name, col, sign
    return None


def _over_examples(
    out: Comparison, rec: Records, pairs: pd.DataFrame, column: str, seed: int
) -> None:
    diffs = PE.differences(pairs)
    out.diffs = diffs
    out.n_examples = int(min(d.size for d in diffs))
    iv = PE.paired_gain_interval(pairs, seed=seed)  # a description of the spread, not the test
    out.gain, out.boot_low, out.boot_high = iv.gain, iv.low, iv.high
    per_seed = pairs.groupby("seed", sort=False)[["candidate", "baseline"]].mean()
    out.metric_mean = float(per_seed["candidate"].mean())
    out.baseline_mean = float(per_seed["baseline"].mean())
    try:
        _decided(out, D.decide(diffs, binary=column == "correct"))
    except PE.PairingError as err:  # one example on one seed, or a 0/1 metric that is not
        out.note = _join_notes(out.note, f"no test: {err}")
    if column == "correct" and out.n_seeds == 1:
        try:
            out.mcnemar_p = PE.mcnemar_exact(pairs).p_value
        except PE.PairingError as err:
            out.note = _join_notes(out.note, f"no McNemar test: {err}")
    means = [float(d.mean()) for d in diffs]
    off = [
        s
        for s, m, d in zip(out.seeds, means, out.seed_diffs, strict=True)
        if math.isfinite(d) and abs(m - d) > 1e-6 * max(1.0, abs(d))
    ]
    if off:
        out.note = _join_notes(
            out.note,
            f"the per-example outcomes do not average to the recorded {rec.metric} difference "
            f"on {plural(len(off), 'seed')} {', '.join(off)}: the statistics use the "
            "per-example outcomes",
        )


def _over_seeds(
    out: Comparison,
    rec: Records,
    cand_runs: pd.DataFrame,
    base_runs: pd.DataFrame,
    paired: list[str],
    companion: tuple[str, str, float] | None,
) -> None:
    _decided(out, D.decide_seed_means(out.seed_diffs))
    if companion is None:
        return
    name, _, sign = companion
    cc, _ = _seed_means(cand_runs, "companion")
    cb, _ = _seed_means(base_runs, "companion")
    both = [s for s in paired if s in cc and s in cb]
    if not both:
        return
    cdec = D.decide_seed_means([directed_gain(cc[s], cb[s], sign) for s in both])
    out.companion_metric = name
    out.companion_gain = cdec.gain
    out.companion_ci_low, out.companion_ci_high = cdec.interval(ALPHA)


def _decided(out: Comparison, dec: D.Decision) -> None:
    """Gain, p, the unadjusted 95% interval and the test's names from the decisive test."""
    out.decision = dec
    out.gain = dec.gain
    out.p_value = dec.p_value
    out.ci_low, out.ci_high = dec.interval(ALPHA)
    out.test_method = dec.method if dec.kind != D.KIND_NONE else ""
    out.ci_method = dec.interval_method if math.isfinite(out.ci_low) else ""
    out.note = _join_notes(out.note, dec.note)


def power_of(cmp: Comparison, n_tests: int, target_gain: float) -> D.Power:
    """The power of the design that ran and the designs that would detect ``target_gain``.

    From the noncentral t of the decisive test (:func:`loran_search.analysis.decision.design_power`
    with per-example outcomes: designs ``(seeds, examples per seed)`` of 2 to
    :data:`~loran_search.analysis.decision.MAX_DESIGN_SEEDS` seeds;
    :func:`~loran_search.analysis.decision.seed_means_power` over seeds only: ``(seeds, None)``
    at the examples that ran), at ``α/n_tests``. ``mde`` is ``nan`` when the data give no
    variance (0 when every difference is 0).
    """
    m = max(1, n_tests)
    if cmp.diffs is not None:
        try:
            return D.design_power(cmp.diffs, target_gain, power=POWER, n_tests=m)
        except (PE.PairingError, ValueError):
            return D.Power(math.nan, math.nan, ALPHA / m)
    return D.seed_means_power(cmp.seed_diffs, target_gain, power=POWER, n_tests=m)


# --------------------------------------------------------------------------------------------
# the tables


def build_tables(
    rec: Records,
    *,
    correction: str = "holm",
    auditor: Auditor | None = None,
    extras: dict[str, Any] | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame, list[str]]:
    """Build the configuration table and the baseline table.

    Args:
        rec: The study's records.
        correction: Multiple-comparison correction (``holm`` or ``bh``).
        auditor: Lipschitz bound per ``(name, params)``; default :func:`make_auditor`.
        extras: When given, receives ``"head_to_head"``: the peers head-to-head
            (:func:`head_to_head`, with its family adjustment), or ``None``.

    Returns:
        ``(configurations, baselines, notes)``. ``configurations`` has the columns
        ``activation, family, rank``, one per parameter, then :data:`STAT_COLUMNS`,
        :data:`EXTRA_COLUMNS`, :data:`EVIDENCE_COLUMNS` (and the internal
        :data:`INTERNAL_COLUMNS`), sorted best first: confirmed configurations first, then by
        the largest direction-aware gain (or metric when there is no baseline). ``baselines`` has
        one row per rank of the search.
    """
    notes: list[str] = []
    auditor = auditor or make_auditor(notes)
    runs, trials = rec.runs, rec.trials
    ctrials, cruns = rec.confirm_trials, rec.confirm_runs
    cache = _ExampleCache(rec)

    base_runs = runs[runs["role"] == R.ROLE_BASELINE]
    base_by_rank: dict[Any, dict[str, float]] = {}
    base_rows: list[dict[str, Any]] = []
    base_trials = trials[trials["role"] == R.ROLE_BASELINE]
    for rank_key in sorted(set(base_trials["rank"]), key=lambda r: (r is None, r or 0)):
        br = _at_rank(base_runs, rank_key)
        bt = _at_rank(base_trials, rank_key)
        per_seed, unknown = _seed_means(br)
        base_by_rank[rank_key] = per_seed
        vals = [*per_seed.values(), *unknown]
        base_rows.append(
            {
                "activation": R.BASELINE_ACTIVATION,
                "rank": rank_key,
                "n_seeds": len(vals),
                "seeds": ",".join(sorted(per_seed, key=seed_order)),
                "metric_mean": float(np.mean(vals)) if vals else math.nan,
                "metric_std": float(np.std(vals, ddof=1)) if len(vals) > 1 else math.nan,
                **{k: v for k, v in run_stability(br).items() if k != "n_stability_runs"},
                "train_seconds": _nanmean(bt["train_seconds"]),
                **_state_counts(bt),
            }
        )
    baselines = pd.DataFrame(base_rows)

    all_params = sorted(
        {p for ps in trials.loc[trials["role"] == R.ROLE_CANDIDATE, "params"] for p in ps}
    )
    rows: list[dict[str, Any]] = []
    comparisons: list[tuple[Comparison, Comparison | None]] = []
    cand = trials[trials["role"] == R.ROLE_CANDIDATE]
    confirm_cands = ctrials[ctrials["role"] == R.ROLE_CONFIRM]
    confirm_bases = ctrials[ctrials["role"] == R.ROLE_CONFIRM_BASELINE]
    matched: set[int] = set()
    for key, ct in cand.groupby("key", sort=False):
        activation, rank, params_key = key
        params = dict(params_key)
        cr = runs[runs["key"] == key]
        bt, br = _at_rank(base_trials, rank), _at_rank(base_runs, rank)
        per_seed, unknown = _seed_means(cr)
        vals = [*per_seed.values(), *unknown]
        search = compare(rec, ct, cr, bt, br, cache)
        note = search.note if vals else "no completed run"
        if not vals and len(ct) and set(ct["failure_kind"]) == {R.FAIL_INERT}:
            note = (
                "not trained: search.skip_inert refused it (its predicted non-linearity was "
                "below the inert threshold: LoRA in all but name)"
            )
        if vals and not base_by_rank:
            note = "no baseline trials"
        elif vals and not base_by_rank.get(rank):
            note = f"no baseline at rank {rank}"

        # The confirmation of this configuration, if any.
        numbers = set(int(n) for n in ct["trial"])
        mask = [
            k == key or bool(numbers & set(of or ()))
            for k, of in zip(confirm_cands["key"], confirm_cands["confirm_of"], strict=True)
        ]
        conf_t = confirm_cands[mask] if len(confirm_cands) else confirm_cands
        matched.update(int(n) for n in conf_t["trial"])
        confirm, conf_note = _confirmation(rec, conf_t, cruns, confirm_bases, rank, cache)
        use = confirm if confirm is not None and confirm.measured else search
        evidence = EVIDENCE_CONFIRMATION if use is confirm else EVIDENCE_SEARCH
        if use is confirm:
            note = _join_notes(confirm.note, conf_note)
        else:
            note = _join_notes(note, conf_note)
        comparisons.append((search, confirm if use is confirm else None))

        mech = configuration_mechanism(
            pd.concat([cr, cruns[cruns["trial"].isin(conf_t["trial"])]], ignore_index=True)
            if len(conf_t)
            else cr,
            ct,
        )
        row: dict[str, Any] = {
            "activation": activation,
            "family": ct["family"].iloc[0],
            "rank": rank,
            **{param_column(p): params.get(p, math.nan) for p in all_params},
            "n_seeds": len(vals),
            "metric_mean": float(np.mean(vals)) if vals else math.nan,
            "metric_std": float(np.std(vals, ddof=1)) if len(vals) > 1 else math.nan,
            "baseline_mean": search.baseline_mean,
            "gain": use.gain,
            "gain_ci_low": use.ci_low,
            "gain_ci_high": use.ci_high,
            "p_value": use.p_value,
            "significant": None,
        }
        st = run_stability(cr)
        row.update(
            diverged_rate=st["diverged_rate"],
            loss_spike_rate=st["loss_spike_rate"],
            grad_norm_max=st["grad_norm_max"],
            lipschitz=(  # a peer method has no f to audit (issue 13)
                math.nan if ct["family"].iloc[0] == R.METHOD_FAMILY else auditor(activation, params)
            ),
            train_seconds=_nanmean(ct["train_seconds"]),
            **_state_counts(ct),
            p_adjusted=math.nan,
            n_paired=use.n_seeds,
            unstable_rate=st["unstable_rate"],
            amp_freq=(
                params["amplitude"] * params["frequency"]
                if "amplitude" in params and "frequency" in params
                else math.nan
            ),
            n_trials=len(ct),
            trials=trial_list(ct["trial"]),
            config=ct["config"].iloc[0],
            note=note,
            evidence=evidence,
            search_gain=search.gain,
            ci_method=use.ci_method,
            mcnemar_p=use.mcnemar_p,
            companion_metric=use.companion_metric,
            companion_gain=use.companion_gain,
            companion_ci_low=use.companion_ci_low,
            companion_ci_high=use.companion_ci_high,
            mde=math.nan,
            **mech,
            n_examples=use.n_examples,
            n_tests=0,
            confirm_metric_mean=confirm.metric_mean if confirm is not None else math.nan,
            confirm_baseline_mean=confirm.baseline_mean if confirm is not None else math.nan,
            confirm_trials=trial_list(conf_t["trial"]),
            test_method=use.test_method,
            ci_level=1.0 - ALPHA if math.isfinite(use.ci_low) else math.nan,
            boot_ci_low=use.boot_low,
            boot_ci_high=use.boot_high,
            seed_sd=math.nan,
            seed_sd_low=math.nan,
            seed_sd_high=math.nan,
            mde_df=math.nan,
            key=key,
            designs=[],
            confirm_seeds=",".join(confirm.seeds) if confirm is not None else "",
            confirm_split=confirm.split if confirm is not None else None,
        )
        rows.append(row)

    notes += _study_notes(rec, rows, confirm_cands, matched)
    columns = [*LEADING_COLUMNS, *(param_column(p) for p in all_params), *STAT_COLUMNS,
               *EXTRA_COLUMNS, *EVIDENCE_COLUMNS, *DECISION_COLUMNS,
               *INTERNAL_COLUMNS]  # fmt: skip
    table = pd.DataFrame(rows, columns=columns)
    h2h = None
    if not table.empty:
        h2h = head_to_head(rec, table, cache)
        _adjust_and_power(table, comparisons, correction, rec.target_gain, h2h)
        improvement = rec.sign * table["gain"].astype(float)
        order_metric = rec.sign * table["metric_mean"].astype(float)
        confirmed = (table["evidence"] == EVIDENCE_CONFIRMATION).astype(int)
        table = (
            table.assign(_conf=confirmed, _imp=improvement, _met=order_metric)
            .sort_values(["_conf", "_imp", "_met"], ascending=False, na_position="last")
            .drop(columns=["_conf", "_imp", "_met"])
            .reset_index(drop=True)
        )
    if extras is not None:
        extras["head_to_head"] = h2h
    return table, baselines, notes


def _adjust_and_power(
    table: pd.DataFrame,
    comparisons: list[tuple[Comparison, Comparison | None]],
    correction: str,
    target_gain: float,
    h2h: dict[str, Any] | None = None,
) -> None:
    """``p_adjusted``, ``significant``, the interval at its family level, ``mde`` and designs.

    Two families: the search tests of every configuration, and the confirmation tests of the
    confirmed ones — with the pre-specified peers head-to-head (:func:`head_to_head`) when it
    was made on the confirmation. Each shown interval inverts its test at the level
    :func:`loran_search.analysis.decision.family_alphas` gives, so it excludes 0 exactly when
    ``significant`` is true; ``ci_level`` is that level.
    """
    confirmed = np.array([c is not None for _, c in comparisons])
    p = table["p_value"].astype(float).to_numpy()
    adjusted = np.full(p.shape, np.nan)
    levels = np.full(p.shape, np.nan)
    sizes = np.zeros(p.shape, dtype=int)
    # The confirmation family: the confirmed configurations' tests on new data (and the
    # head-to-head made there).
    idx = np.flatnonzero(confirmed)
    extra = (
        [h2h["comparison"].p_value]
        if h2h is not None and h2h["phase"] == EVIDENCE_CONFIRMATION
        else []
    )
    if idx.size:
        family = [*p[idx].tolist(), *extra]
        adj = adjust(family, correction)
        lev = D.family_alphas(family, correction)
        adjusted[idx], levels[idx] = adj[: idx.size], lev[: idx.size]
        sizes[idx] = int(np.isfinite(family).sum())
        if extra:
            h2h.update(p_adjusted=adj[-1], alpha=float(lev[-1]), n_tests=int(sizes[idx[0]]))
    # The search family: every configuration's search test, the confirmed ones' included.
    search_p = np.array([s.p_value for s, _ in comparisons], dtype=float)
    search_adj = np.array(adjust(search_p.tolist(), correction), dtype=float)
    search_lev = D.family_alphas(search_p.tolist(), correction)
    idx = np.flatnonzero(~confirmed)
    adjusted[idx], levels[idx] = search_adj[idx], search_lev[idx]
    sizes[idx] = int(np.isfinite(search_p).sum())
    table["p_adjusted"] = adjusted
    table["significant"] = [None if math.isnan(x) else bool(x < ALPHA) for x in adjusted]
    lows, highs, mdes, designs = [], [], [], []
    sds: list[tuple[float, float, float, float]] = []
    for (search, confirm), m, level in zip(comparisons, sizes, levels, strict=True):
        use = confirm or search
        if use.decision is not None and math.isfinite(level):
            low, high = use.decision.interval(float(level))
        else:
            low, high = use.ci_low, use.ci_high
        lows.append(low)
        highs.append(high)
        pw = power_of(use, int(m) or 1, target_gain)
        mdes.append(pw.mde)
        designs.append(pw.designs)
        sds.append((pw.seed_sd, pw.seed_sd_low, pw.seed_sd_high, pw.df))
    table["gain_ci_low"], table["gain_ci_high"] = lows, highs
    has_ci = np.isfinite(np.asarray(lows, dtype=float))
    table["ci_level"] = np.where(has_ci & np.isfinite(levels), 1.0 - levels, table["ci_level"])
    table["n_tests"] = sizes
    table["mde"] = mdes
    table["designs"] = pd.Series(designs, index=table.index, dtype=object)
    for k, col in enumerate(("seed_sd", "seed_sd_low", "seed_sd_high", "mde_df")):
        table[col] = [x[k] for x in sds]


def head_to_head(
    rec: Records, table: pd.DataFrame, cache: _ExampleCache | None = None
) -> dict[str, Any] | None:
    """LoRAN's best against the best peer, chosen before looking at the comparison.

    Pre-specified: each side is its kind's best configuration **by the search gain** (the
    search split's gain over QLoRA, direction-aware), never by the confirmation's. When both
    were confirmed they are paired directly on the confirmation's seeds and split (LoRAN's best
    in the place of the candidate, the best peer in the place of the baseline) and the test
    enters the confirmation family (its ``p_adjusted``); otherwise the comparison is on the
    search split, whose gains chose the two arms, and it is **exploratory** (not adjusted).

    Returns:
        ``{loran, peer, phase, comparison, prespecified, p_adjusted, alpha, n_tests}``
        (``p_adjusted``, ``alpha`` — the level of the interval — and ``n_tests`` are filled by
        the family adjustment for a confirmation comparison, ``nan``/0.05/1 otherwise), or
        ``None`` without both a LoRAN and a peer arm with a search gain.
    """
    if table.empty:
        return None
    sg = rec.sign * table["search_gain"].astype(float)
    ok = np.isfinite(sg.to_numpy())
    is_peer = table["family"].isin(PEER_FAMILIES).to_numpy()
    if not (ok & is_peer).any() or not (ok & ~is_peer).any():
        return None
    lo = table.loc[sg[ok & ~is_peer].idxmax()]
    pe = table.loc[sg[ok & is_peer].idxmax()]
    both = lo["evidence"] == EVIDENCE_CONFIRMATION and pe["evidence"] == EVIDENCE_CONFIRMATION
    phase = EVIDENCE_CONFIRMATION if both else EVIDENCE_SEARCH
    lt, lr = _arm_frames(rec, lo, phase)
    pt, pr = _arm_frames(rec, pe, phase)
    cmp = compare(rec, lt, lr, pt, pr, cache)
    return {
        "loran": lo,
        "peer": pe,
        "phase": phase,
        "comparison": cmp,
        "prespecified": both,
        "p_adjusted": math.nan,
        "alpha": ALPHA,
        "n_tests": 1,
    }


def _arm_frames(rec: Records, row: pd.Series, phase: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The trials and runs of one configuration row in a phase."""
    text = row["confirm_trials"] if phase == EVIDENCE_CONFIRMATION else row["trials"]
    numbers = trial_numbers(text)
    if phase == EVIDENCE_CONFIRMATION:
        trials, runs = rec.confirm_trials, rec.confirm_runs
    else:
        trials, runs = rec.trials, rec.runs
    return trials[trials["trial"].isin(numbers)], runs[runs["trial"].isin(numbers)]


def _confirmation(
    rec: Records,
    conf_trials: pd.DataFrame,
    conf_runs: pd.DataFrame,
    conf_bases: pd.DataFrame,
    rank: Any,
    cache: _ExampleCache,
) -> tuple[Comparison | None, str]:
    """The confirmation comparison of one configuration and a note on what went wrong."""
    if conf_trials.empty:
        return None, ""
    done = conf_trials[conf_trials["state"] == "COMPLETE"]
    if done.empty:
        failures = [f for f in conf_trials["failure"] if isinstance(f, str) and f] or sorted(
            set(conf_trials["state"])
        )
        return None, (
            f"confirmation {plural(len(conf_trials), 'trial')} {_numbers(conf_trials)} did not "
            "complete "
            f"({'; '.join(failures)}): no confirmation gain, the search evidence stands "
            "(optimistic)"
        )
    bt = _at_rank(conf_bases, rank)
    if bt.empty or (bt["state"] == "COMPLETE").sum() == 0:
        why = "no confirm_baseline trial" if bt.empty else "its confirm_baseline did not complete"
        return None, (
            f"confirmation without baseline ({why} at rank {rank} on the confirmation seeds): "
            "no confirmation gain, the search evidence stands (optimistic)"
        )
    runs_c = conf_runs[conf_runs["trial"].isin(conf_trials["trial"])]
    runs_b = conf_runs[conf_runs["trial"].isin(bt["trial"])]
    cmp = compare(rec, conf_trials, runs_c, bt, runs_b, cache)
    extra = ""
    if len(conf_trials) > len(done):
        undone = conf_trials[conf_trials["state"] != "COMPLETE"]
        extra = f"confirmation {plural(len(undone), 'trial')} {_numbers(undone)}"
        extra += f" did not complete and {plural(len(undone), 'was', 'were')} left out"
    return cmp, extra


def _study_notes(
    rec: Records, rows: list[dict[str, Any]], confirm_cands: pd.DataFrame, matched: set[int]
) -> list[str]:
    notes: list[str] = []
    if rows and any(r["n_paired"] for r in rows):
        if not rec.examples:
            notes.append(NO_EXAMPLES_NOTE[0].upper() + NO_EXAMPLES_NOTE[1:] + " (paired t).")
        elif EXAMPLE_COLUMN.get(rec.metric) is None:
            notes.append(
                f"The metric {rec.metric} is not a mean of per-example values: its intervals are "
                "over seeds (paired t)."
            )
    unmatched = confirm_cands[~confirm_cands["trial"].isin(sorted(matched))]
    if len(unmatched):
        notes.append(
            f"Confirmation {plural(len(unmatched), 'trial')} {_numbers(unmatched)} "
            f"{plural(len(unmatched), 'matches', 'match')} no searched configuration (neither "
            "the configuration nor the confirm_of trials); left out."
        )
    search_splits = {s for s in rec.trials["eval_split"] if isinstance(s, str)}
    confirm_splits = {s for s in rec.confirm_trials["eval_split"] if isinstance(s, str)}
    if "test" in search_splits:
        notes.append(
            "Search trials were evaluated on the test split: their gains are selection-biased "
            "and the test split is no longer held out."
        )
    if search_splits and confirm_splits & search_splits:
        notes.append(
            f"The confirmation was evaluated on the search's split "
            f"({', '.join(sorted(confirm_splits & search_splits))}): it is not held-out evidence."
        )
    search_seeds = {str(s) for s in rec.runs["seed"] if s is not None}
    confirm_seeds = {str(s) for s in rec.confirm_runs["seed"] if s is not None}
    if search_seeds & confirm_seeds:
        reused = ", ".join(sorted(search_seeds & confirm_seeds, key=seed_order))
        notes.append(
            f"The confirmation reuses search "
            f"{plural(len(search_seeds & confirm_seeds), 'seed')} {reused}: its seeds are meant "
            "to be "
            "disjoint from the search's."
        )
    return notes


def _numbers(trials: pd.DataFrame) -> str:
    return ", ".join(str(int(n)) for n in sorted(trials["trial"]))


def _join_notes(*parts: str) -> str:
    return "; ".join(p for p in parts if p)


def _at_rank(df: pd.DataFrame, rank: Any) -> pd.DataFrame:
    """The rows of ``df`` at ``rank`` (``None`` matches an unknown rank).

    A boolean *Series* (not a list: ``df[[]]`` would select no columns of an empty frame).
    """
    mask = pd.Series([r == rank for r in df["rank"]], index=df.index, dtype=bool)
    return df.loc[mask]


def _nanmean(s: pd.Series) -> float:
    v = s.to_numpy(dtype=float)
    v = v[np.isfinite(v)]
    return float(v.mean()) if v.size else math.nan
