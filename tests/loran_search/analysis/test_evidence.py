"""Per-example evidence in the configuration table, checked against independent computations.

The studies are synthetic records in the trial-record format (``examples.<seed>`` columns,
``mechanism``, ``eval_split``, confirmation roles) written with ``optuna.trial.create_trial``.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from optuna.trial import TrialState
from scipy import stats as sps

from loran_search.analysis import load_examples
from loran_search.analysis import paired as PE
from loran_search.analysis.configurations import (
    NO_EXAMPLES_NOTE,
    build_tables,
)
from loran_search.analysis.records import examples_frame, load_records
from tests.loran_search.analysis.conftest import curse_study, new_study


def _table(study, **kw):
    rec = load_records(study)
    configs, _, notes = build_tables(rec, auditor=lambda n, p: math.nan, **kw)
    return rec, configs, notes


def _row(configs, amplitude):
    r = configs[np.isclose(configs["amplitude"].astype(float), amplitude)]
    assert len(r) == 1, configs[["config"]]
    return r.iloc[0]


def _bernoulli(rng, p):
    return (rng.random(p.shape) < p).astype(int)


def _two_seed_study(rng, n=120, seeds=(0, 1), delta=0.1):
    """Baseline and one candidate with ``delta`` more accuracy, on the same examples."""
    study, b = new_study()
    p = rng.uniform(0.2, 0.8, n)
    base = {s: _bernoulli(rng, p) for s in seeds}
    cand = {s: _bernoulli(rng, np.clip(p + delta, 0, 1)) for s in seeds}
    b.add("identity", 8, None, examples=base, eval_split="val")
    b.add("sinter", 8, None, amplitude=1e-3, examples=cand, eval_split="val")
    return study, b, base, cand


def _reference_two_level(diffs, n_resamples=9999, seed=0):
    """The two-level bootstrap written out plainly: draw seeds, then examples, in that order."""
    gen = np.random.default_rng(seed)
    s_count, width = len(diffs), diffs[0].size
    seeds = gen.integers(0, s_count, size=(n_resamples, s_count))
    idx = gen.integers(0, width, size=(n_resamples, s_count, width))
    reps = np.empty(n_resamples)
    for b in range(n_resamples):
        reps[b] = np.mean([diffs[seeds[b, k]][idx[b, k]].mean() for k in range(s_count)])
    return np.quantile(reps, [0.025, 0.975])


def test_two_seed_gain_interval_p_value_and_mde_match_independent_computations() -> None:
    rng = np.random.default_rng(3)
    study, _, base, cand = _two_seed_study(rng)
    _, configs, notes = _table(study)
    row = configs.iloc[0]
    diffs = [cand[s].astype(float) - base[s] for s in (0, 1)]
    # gain = mean over seeds of the accuracy differences
    assert row["gain"] == pytest.approx(np.mean([d.mean() for d in diffs]))
    assert row["n_paired"] == 2 and row["n_examples"] == 120
    # the decision: the paired t on the two seed means, 1 df, and the t interval inverting it
    means = np.array([d.mean() for d in diffs])
    ref = sps.ttest_1samp(means, 0.0)
    assert row["p_value"] == pytest.approx(ref.pvalue)
    assert row["test_method"] == "paired t-test on 2 seed means, 1 df"
    ci = ref.confidence_interval(0.95)
    assert (row["gain_ci_low"], row["gain_ci_high"]) == pytest.approx((ci.low, ci.high))
    assert row["ci_method"] == "t interval, 1 df (inverts the t-test)" and row["ci_level"] == 0.95
    # the two-level percentile bootstrap stays, as a description (independent loop)
    lo, hi = _reference_two_level(diffs)
    assert row["boot_ci_low"] == pytest.approx(lo) and row["boot_ci_high"] == pytest.approx(hi)
    # one tested configuration: Holm changes nothing; the MDE is the noncentral t's at 1 df
    assert row["p_adjusted"] == pytest.approx(row["p_value"])
    var_ex = sum(((d - d.mean()) ** 2).sum() for d in diffs) / (2 * 119)
    var_seed = max(0.0, means.var(ddof=1) - var_ex / 120)
    se = math.sqrt((var_seed + var_ex / 120) / 2)
    mde = row["mde"]
    crit = sps.t.ppf(0.975, 1)
    # (scipy's lower tail is nan where it is below 1e-300; it counts as 0)
    power = sps.nct.sf(crit, 1, mde / se) + np.nan_to_num(sps.nct.cdf(-crit, 1, mde / se))
    assert power == pytest.approx(0.8, abs=1e-6) and row["mde_df"] == 1
    assert row["seed_sd"] == pytest.approx(means.std(ddof=1))
    assert row["n_tests"] == 1
    # McNemar is for one seed only
    assert math.isnan(row["mcnemar_p"])
    # the companion: the gold log-likelihood, with the same interval
    lp_d = [np.where(cand[s], math.log(0.7), math.log(0.3)) - np.where(base[s], math.log(0.7),
            math.log(0.3)) for s in (0, 1)]  # fmt: skip
    lp_means = np.array([x.mean() for x in lp_d])
    ref = sps.ttest_1samp(lp_means, 0.0).confidence_interval(0.95)  # the t on the seed means
    assert row["companion_metric"] == "gold_logprob_mean"
    assert row["companion_gain"] == pytest.approx(lp_means.mean())
    assert (row["companion_ci_low"], row["companion_ci_high"]) == pytest.approx((ref.low, ref.high))
    assert row["evidence"] == "search" and row["search_gain"] == pytest.approx(row["gain"])
    assert NO_EXAMPLES_NOTE not in " ".join(notes).lower()
    # reproducible: the same table again
    _, again, _ = _table(study)
    pd.testing.assert_series_equal(configs.iloc[0].drop("designs"), again.iloc[0].drop("designs"))


def test_one_seed_gets_a_bootstrap_over_examples_and_an_exact_mcnemar() -> None:
    study, b = new_study()
    base = np.array([1, 0, 0, 1, 0, 1, 0, 0, 1, 0] * 8)
    cand = base.copy()
    cand[[1, 2, 4, 6, 7, 11, 12, 14, 21]] = 1  # 9 wins
    cand[[0, 3]] = 0  # 2 losses
    b.add("identity", 8, None, examples={0: base})
    b.add("sinter", 8, None, amplitude=1e-3, examples={0: cand})
    _, configs, _ = _table(study)
    row = configs.iloc[0]
    d = cand.astype(float) - base
    ref = sps.bootstrap((d,), np.mean, n_resamples=9999, method="BCa", vectorized=True,
                        rng=np.random.default_rng(0)).confidence_interval  # fmt: skip
    assert row["gain"] == pytest.approx(7 / 80)
    # the bootstrap over examples stays as a description
    assert (row["boot_ci_low"], row["boot_ci_high"]) == pytest.approx((ref.low, ref.high))
    # exact McNemar decides: b = 9, c = 2, p = 2·P(X ≤ 2 | n = 11, ½), by hand
    p_exact = 2 * sum(math.comb(11, k) for k in range(3)) / 2**11
    assert row["mcnemar_p"] == pytest.approx(p_exact)
    assert row["p_value"] == pytest.approx(p_exact)
    assert row["test_method"] == "exact McNemar test (b = 9, c = 2 discordant pairs)"
    # its interval: Clopper–Pearson on π = P(b-type | discordant), at the discordance 11/80
    lo = sps.beta.ppf(0.025, 9, 3)
    hi = sps.beta.ppf(0.975, 10, 2)
    expected = (11 / 80 * (2 * lo - 1), 11 / 80 * (2 * hi - 1))
    assert (row["gain_ci_low"], row["gain_ci_high"]) == pytest.approx(expected)
    assert row["ci_method"].startswith("exact conditional interval")
    assert (row["gain_ci_low"] > 0) == (p_exact < 0.05)


def test_shuffled_example_order_and_chunked_records_give_the_same_result() -> None:
    rng = np.random.default_rng(5)
    n = 90
    p = rng.uniform(0.2, 0.8, n)
    base = {s: _bernoulli(rng, p) for s in (0, 1, 2)}
    cand = {s: _bernoulli(rng, np.clip(p + 0.05, 0, 1)) for s in (0, 1, 2)}
    ids = [f"doc-{i:03d}" for i in range(n)]
    plain, b1 = new_study(name="plain")
    b1.add("identity", 8, None, examples=base, ids=ids)
    b1.add("sinter", 8, None, amplitude=1e-3, examples=cand, ids=ids)
    shuffled, b2 = new_study(name="shuffled")
    b2.add("identity", 8, None, examples=base, ids=ids, chunk=800)  # long: in parts
    perm = {s: rng.permutation(n) for s in (0, 1, 2)}
    b2.add("sinter", 8, None, amplitude=1e-3, examples={s: cand[s][perm[s]] for s in perm},
           ids={s: [ids[i] for i in perm[s]] for s in perm})  # fmt: skip
    assert any(k.endswith(".1") for k in shuffled.trials[0].user_attrs)  # really chunked
    _, a, _ = _table(plain)
    _, z, _ = _table(shuffled)
    cols = ["gain", "gain_ci_low", "gain_ci_high", "p_value", "mde", "companion_gain",
            "companion_ci_low", "companion_ci_high", "n_examples"]  # fmt: skip
    for col in cols:
        assert z.iloc[0][col] == pytest.approx(a.iloc[0][col], rel=1e-5), col  # 7 digits stored


def test_different_example_sets_are_flagged_never_mixed() -> None:
    study, b = new_study()
    b.add("identity", 8, None, examples={0: [1, 0, 1, 0], 1: [1, 1, 0, 0]})
    b.add("sinter", 8, None, amplitude=1e-3, examples={0: [1, 1, 1, 0], 1: [1, 1, 1, 0]},
          ids={0: ["ex0000", "ex0001", "ex0002", "ex0003"],
               1: ["ex0000", "ex0001", "ex0002", "other"]})  # fmt: skip
    _, configs, _ = _table(study)
    row = configs.iloc[0]
    assert "not paired" in row["note"] and "seed 1: 1 example id missing" in row["note"]
    assert math.isnan(row["gain_ci_low"]) and math.isnan(row["p_value"])
    assert row["ci_method"] == "none: the example sets differ"
    assert row["significant"] is None


def test_older_records_fall_back_to_the_seed_level_paired_t(canonical) -> None:
    _, configs, notes = _table(canonical)
    tested = configs[np.isfinite(configs["p_value"].astype(float))]
    assert set(tested["ci_method"]) == {"t interval, 2 df (inverts the t-test)"}
    assert set(tested["test_method"]) == {"paired t-test on 3 seed means, 2 df"}
    assert any(NO_EXAMPLES_NOTE in n.lower() for n in notes)
    assert configs["companion_metric"].isna().all()
    assert configs["nonlinearity"].isna().all() and configs["inert"].isna().all()
    assert (configs["evidence"] == "search").all()
    assert (configs["search_gain"].dropna() == configs["gain"].dropna()).all()


def test_summarization_companion_is_the_loss_and_lower_is_better() -> None:
    study, b = new_study(metric="rougeL")
    rng = np.random.default_rng(0)
    n = 40
    losses = {}
    for act, shift, loss in (("identity", 0.0, 2.0), ("sinter", 0.05, 1.8)):
        attrs, metrics = {}, {}
        for s in (0, 1):
            r = np.clip(rng.uniform(0.1, 0.5, n) + shift, 0, 1)
            lo = loss + rng.normal(0, 0.1, n)
            losses[act, s] = lo
            attrs[f"examples.{s}"] = {
                "id": [f"a{i}" for i in range(n)],
                "rouge1": list(r),
                "rouge2": list(r / 2),
                "rougeL": list(r),
                "loss": list(lo),
            }
            metrics[str(s)] = {"rougeL": float(r.mean()), "summary_loss": float(lo.mean())}
        attrs["seed_metrics"] = metrics  # fmt: skip
        b.add(act, 8, {0: metrics["0"]["rougeL"], 1: metrics["1"]["rougeL"]},
              amplitude=1e-3 if act == "sinter" else None, attrs=attrs)  # fmt: skip
    rec, configs, _ = _table(study)
    assert rec.companion == "summary_loss"
    row = configs.iloc[0]
    # baseline − candidate: positive when the candidate's loss is lower (better); the pairs
    # are in example-id order ("a0", "a1", "a10", ...), as the resampling sees them
    order = np.argsort([f"a{i}" for i in range(n)], kind="stable")
    d = [(losses["identity", s] - losses["sinter", s])[order] for s in (0, 1)]
    means = np.array([x.mean() for x in d])
    ref = sps.ttest_1samp(means, 0.0).confidence_interval(0.95)  # the t on the seed means
    assert row["companion_metric"] == "summary_loss"
    assert row["companion_gain"] == pytest.approx(means.mean()) and row["companion_gain"] > 0
    assert (row["companion_ci_low"], row["companion_ci_high"]) == pytest.approx((ref.low, ref.high))
    assert row["test_method"] == "paired t-test on 2 seed means, 1 df"


# ---------------------------------------------------------------- the winner's curse


def test_winners_curse_search_best_is_optimistic_and_confirmation_covers_zero() -> None:
    study, search_only, real, chosen = curse_study()
    # The search-phase best of the null configurations shows a positive gain ...
    nulls = search_only[~np.isclose(search_only["amplitude"].astype(float), real)]
    best_null = nulls.iloc[0]
    assert best_null["search_gain"] == nulls["search_gain"].max() > 0.03
    _, configs, notes = _table(study)
    row = _row(configs, float(best_null["amplitude"]))
    assert row["evidence"] == "confirmation"
    assert row["search_gain"] == pytest.approx(best_null["search_gain"])
    # ... while its confirmation on fresh seeds and outcomes covers 0 and is not significant.
    assert row["gain_ci_low"] < 0 < row["gain_ci_high"]
    assert row["significant"] is False or row["significant"] == False  # noqa: E712
    # Every confirmed null is non-significant; the real effect is confirmed significant.
    conf = configs[configs["evidence"] == "confirmation"]
    assert len(conf) == len(chosen)
    real_row = _row(configs, real)
    assert real_row["evidence"] == "confirmation" and bool(real_row["significant"]) is True
    assert real_row["gain_ci_low"] > 0.05
    others = conf[~np.isclose(conf["amplitude"].astype(float), real)]
    assert not others["significant"].astype(bool).any()
    # The curse in aggregate: the confirmed nulls' gains shrink from what the search showed.
    assert others["gain"].mean() < others["search_gain"].mean()
    # Holm within the confirmation family: over the confirmed configurations only.
    assert (conf["n_tests"] == len(chosen)).all()
    p = conf["p_value"].astype(float).tolist()
    assert conf["p_adjusted"].astype(float).tolist() == pytest.approx(PE.holm(p))
    # Confirmed rows come first; the rest keep their search evidence.
    assert list(configs["evidence"][: len(chosen)]) == ["confirmation"] * len(chosen)
    assert (configs["evidence"][len(chosen) :] == "search").all()
    assert (configs["n_tests"][len(chosen) :] == len(configs)).all()
    assert configs.iloc[0]["confirm_split"] == "test"
    assert not [n for n in notes if "split" in n or "seed" in n]


def test_failed_confirmation_and_confirmation_without_baseline_keep_search_evidence() -> None:
    rng = np.random.default_rng(2)
    study, b, _, _ = _two_seed_study(rng)
    b.add("sinter", 8, {10: 0.5}, amplitude=1e-3, role="confirm", confirm_of=[1],
          state=TrialState.FAIL, diverged={11: True}, eval_split="test",
          failure="diverged: seed 11 diverged at step 7")  # fmt: skip
    _, configs, _ = _table(study)
    row = configs.iloc[0]
    assert row["evidence"] == "search"
    assert "confirmation trial 2 did not complete (diverged: seed 11" in row["note"]
    assert row["confirm_trials"] == "2"
    # A complete confirmation without a confirm_baseline at its rank.
    study, b, _, _ = _two_seed_study(rng)
    b.add("sinter", 8, None, amplitude=1e-3, role="confirm", confirm_of=[1],
          examples={10: [1, 0, 1], 11: [1, 1, 0]}, eval_split="test")  # fmt: skip
    _, configs, _ = _table(study)
    row = configs.iloc[0]
    assert row["evidence"] == "search"
    assert "confirmation without baseline (no confirm_baseline trial at rank 8" in row["note"]


def test_confirmation_on_the_search_split_or_seeds_is_stated() -> None:
    rng = np.random.default_rng(4)
    study, b, _, _ = _two_seed_study(rng, seeds=(0, 1))
    b.add("identity", 8, None, role="confirm_baseline", examples={1: [1, 0, 1, 1]},
          eval_split="val")  # fmt: skip
    b.add("sinter", 8, None, amplitude=1e-3, role="confirm", confirm_of=[1],
          examples={1: [1, 1, 1, 1]}, eval_split="val")  # fmt: skip
    _, configs, notes = _table(study)
    text = " ".join(notes)
    assert "The confirmation was evaluated on the search's split (val)" in text
    assert "The confirmation reuses search seed 1" in text
    assert configs.iloc[0]["evidence"] == "confirmation"


# ---------------------------------------------------------------- mechanism and examples


def test_mechanism_columns_are_medians_over_runs_and_inert_is_said() -> None:
    from tests.loran_search.analysis.conftest import mechanism_figures

    study, b = new_study()
    b.add("identity", 8, {0: 0.5, 1: 0.6, 2: 0.55})
    mech = {0: mechanism_figures(2e-3, 0.1), 1: mechanism_figures(4e-3, 0.3),
            2: mechanism_figures(1e-2, 0.2)}  # fmt: skip
    b.add("sinter", 8, {0: 0.52, 1: 0.61, 2: 0.57}, amplitude=1e-3, mechanism=mech)
    b.add("sinter", 8, {0: 0.5, 1: 0.6, 2: 0.56}, amplitude=1e-6, mechanism=1e-5)
    b.add("sinter", 8, None, amplitude=1e-7, state=TrialState.FAIL,
          failure="inert: predicted non-linearity 1e-08 below 0.001")  # fmt: skip
    rec, configs, _ = _table(study)
    active = _row(configs, 1e-3)
    assert active["nonlinearity"] == pytest.approx(4e-3)
    assert active["p_rms"] == pytest.approx(0.2 / 4)
    assert active["stable_rank"] == pytest.approx(3.0)
    assert active["stable_rank_lora"] == pytest.approx(2.5)
    assert bool(active["inert"]) is False
    assert bool(_row(configs, 1e-6)["inert"]) is True
    skipped = _row(configs, 1e-7)
    assert bool(skipped["inert"]) is True and "search.skip_inert" in skipped["note"]
    from loran_search.analysis.mechanism import visited_interval

    interval, why = visited_interval(rec)
    assert interval == pytest.approx((-0.3, 0.3)) and "visited range" in why


def test_visited_interval_without_mechanism_is_the_unit_interval(canonical) -> None:
    from loran_search.analysis.mechanism import visited_interval

    interval, why = visited_interval(load_records(canonical))
    assert interval == (-1.0, 1.0) and "older records" in why


def test_load_examples_gives_a_tidy_table(tmp_path) -> None:
    url = f"sqlite:///{tmp_path / 's.db'}"
    _, b = new_study(storage=url)
    b.add("identity", 8, None, examples={0: [1, 0, 1], 1: [0, 0, 1]}, chunk=120)
    b.add("identity", 8, {0: 0.5})  # an older record: no examples
    df = load_examples(storage=url, study_name="synthetic", trial_number=0)
    assert list(df.columns) == ["seed", "example_id", "correct", "gold_logprob", "pred", "gold"]
    assert len(df) == 6 and set(df["seed"]) == {"0", "1"}
    assert df.loc[df["seed"] == "1", "correct"].tolist() == [0, 0, 1]
    empty = load_examples(storage=url, study_name="synthetic", trial_number=1)
    assert empty.empty and list(empty.columns[:2]) == ["seed", "example_id"]
    from loran_search.analysis import ReportError

    with pytest.raises(ReportError, match="has no trial 7"):
        load_examples(storage=url, study_name="synthetic", trial_number=7)
    assert examples_frame({}).empty
