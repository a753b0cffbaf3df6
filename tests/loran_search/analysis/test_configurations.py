"""Configuration table: gains, intervals, p-values and the correction against independent maths."""

from __future__ import annotations

import math

import numpy as np
import pytest
from optuna.trial import TrialState
from scipy import stats as sps

from loran_search.analysis.configurations import build_tables
from loran_search.analysis.records import load_records
from tests.loran_search.analysis.conftest import BASE8, GAINS, new_study


def _table(study, **kw):
    rec = load_records(study)
    configs, baselines, notes = build_tables(rec, auditor=lambda n, p: math.nan, **kw)
    return rec, configs, baselines, notes


def _row(configs, amplitude, rank=8):
    r = configs[(configs["amplitude"] == amplitude) & (configs["rank"] == rank)]
    assert len(r) == 1, configs[["config", "rank"]]
    return r.iloc[0]


def test_gains_intervals_pvalues_and_holm_match_independent_computation(canonical) -> None:
    _, configs, baselines, _ = _table(canonical)
    assert list(configs.columns[:4]) == ["activation", "family", "rank", "amplitude"]
    for col in ("frequency", "n_seeds", "metric_mean", "metric_std", "baseline_mean", "gain",
                "gain_ci_low", "gain_ci_high", "p_value", "significant", "diverged_rate",
                "loss_spike_rate", "grad_norm_max", "lipschitz", "train_seconds", "n_complete",
                "n_pruned", "n_fail", "n_running"):  # fmt: skip
        assert col in configs.columns
    raw = {}
    for amp, gains in GAINS.items():
        cand = np.array([BASE8[s] + gains[s] for s in (0, 1, 2)])
        base = np.array([BASE8[s] for s in (0, 1, 2)])
        row = _row(configs, amp)
        ref = sps.ttest_rel(cand, base)
        d = cand - base
        # the interval inverts the t-test at the level of its Holm step (checked below)
        half = sps.t.ppf(1 - (1 - row["ci_level"]) / 2, 2) * d.std(ddof=1) / math.sqrt(3)
        assert row["test_method"] == "paired t-test on 3 seed means, 2 df"
        assert row["n_seeds"] == 3
        assert row["metric_mean"] == pytest.approx(cand.mean())
        assert row["metric_std"] == pytest.approx(cand.std(ddof=1))
        assert row["baseline_mean"] == pytest.approx(base.mean())
        assert row["gain"] == pytest.approx(d.mean())
        assert row["gain_ci_low"] == pytest.approx(d.mean() - half)
        assert row["gain_ci_high"] == pytest.approx(d.mean() + half)
        assert row["p_value"] == pytest.approx(ref.pvalue)
        raw[amp] = ref.pvalue
    # Holm over the three testable configurations, computed by hand.
    ps = sorted(raw.items(), key=lambda kv: kv[1])
    expected, running = {}, 0.0
    for i, (amp, p) in enumerate(ps):
        running = max(running, min(1.0, (3 - i) * p))
        expected[amp] = running
    # Holm's levels: α/(m − j + 1) for a rejected step, α/(number left) from the first
    # non-rejected one on; the interval then excludes 0 exactly when the adjusted p says so.
    stopped = None
    for i, (amp, _) in enumerate(ps):
        level = 0.05 / (3 - i)
        if stopped is None and expected[amp] >= 0.05:
            stopped = level
        assert _row(configs, amp)["ci_level"] == pytest.approx(1 - (stopped or level))
    for amp, p_adj in expected.items():
        row = _row(configs, amp)
        assert row["p_adjusted"] == pytest.approx(p_adj)
        assert row["significant"] == (p_adj < 0.05)
        excludes = row["gain_ci_low"] > 0 or row["gain_ci_high"] < 0
        assert excludes == row["significant"]
    # Best first: the largest gain.
    assert configs.iloc[0]["amplitude"] == 1e-3
    assert bool(configs.iloc[0]["significant"]) is True  # p_adj = 3 * 0.008 < 0.05
    assert baselines.iloc[0]["metric_mean"] == pytest.approx(np.mean(list(BASE8.values())))


def test_bh_correction_is_selectable(canonical) -> None:
    _, configs, _, _ = _table(canonical, correction="bh")
    p = configs["p_value"].dropna().to_numpy()
    expected = sps.false_discovery_control(p)
    assert configs["p_adjusted"].dropna().to_numpy() == pytest.approx(expected)


def test_failed_configurations_count_for_stability_not_for_gains(canonical) -> None:
    _, configs, _, _ = _table(canonical)
    r = _row(configs, 1e-2)
    assert r["n_fail"] == 1 and r["n_complete"] == 0
    assert math.isnan(r["gain"]) and r["n_seeds"] == 0
    assert r["diverged_rate"] == pytest.approx(1 / 3)
    assert r["grad_norm_max"] == pytest.approx(100.0)
    assert _row(configs, 1e-3)["loss_spike_rate"] == pytest.approx(1 / 3)


def test_pairing_is_by_rank_and_seed_never_across_ranks() -> None:
    study, b = new_study()
    # Baseline at rank 8 is weak, at rank 16 strong. A rank-16 candidate that is worse than the
    # rank-16 baseline but better than the rank-8 one: mis-pairing (or pooling ranks) would
    # report a positive gain.
    base8 = {0: 0.50, 1: 0.52, 2: 0.51}
    base16 = {0: 0.80, 1: 0.83, 2: 0.81}
    b.add("identity", 8, base8)
    b.add("identity", 16, base16)
    cand16 = {s: v - 0.05 + 0.01 * s for s, v in base16.items()}
    b.add("sinter", 16, cand16, amplitude=1e-3)
    # A rank-4 candidate has no baseline at its rank: no gain at all.
    b.add("sinter", 4, {0: 0.9, 1: 0.9, 2: 0.9}, amplitude=1e-3)
    _, configs, baselines, _ = _table(study)
    r16 = _row(configs, 1e-3, rank=16)
    d = np.array([cand16[s] - base16[s] for s in (0, 1, 2)])
    assert r16["gain"] == pytest.approx(d.mean())
    assert r16["gain"] < 0
    assert r16["baseline_mean"] == pytest.approx(np.mean(list(base16.values())))
    assert r16["p_value"] == pytest.approx(
        sps.ttest_rel([cand16[s] for s in range(3)], [base16[s] for s in range(3)]).pvalue
    )
    r4 = _row(configs, 1e-3, rank=4)
    assert math.isnan(r4["gain"]) and "no baseline at rank 4" in r4["note"]
    assert sorted(baselines["rank"]) == [8, 16]


def test_pairing_uses_only_shared_seeds() -> None:
    study, b = new_study()
    b.add("identity", 8, {0: 0.5, 1: 0.6})
    b.add("sinter", 8, {0: 0.55, 1: 0.62, 2: 0.99}, amplitude=1e-4)  # seed 2 has no baseline
    _, configs, _, _ = _table(study)
    r = configs.iloc[0]
    assert r["n_seeds"] == 3 and r["n_paired"] == 2
    assert r["gain"] == pytest.approx(((0.55 - 0.5) + (0.62 - 0.6)) / 2)
    assert r["baseline_mean"] == pytest.approx(0.55)


def test_trials_sharing_a_configuration_are_grouped_and_seed_duplicates_averaged() -> None:
    study, b = new_study()
    b.add("identity", 8, {0: 0.5, 1: 0.6})
    b.add("sinter", 8, {0: 0.56, 1: 0.64}, amplitude=1e-4)
    b.add("sinter", 8, {0: 0.58, 1: 0.66}, amplitude=1e-4)  # same configuration again
    b.add("sinter", 8, {0: 0.40, 1: 0.40}, amplitude=2e-4)
    _, configs, _, _ = _table(study)
    assert len(configs) == 2
    r = _row(configs, 1e-4)
    assert r["n_trials"] == 2 and r["n_seeds"] == 2
    assert r["gain"] == pytest.approx(((0.57 - 0.5) + (0.65 - 0.6)) / 2)


def test_minimize_direction_orders_smaller_gain_first() -> None:
    study, b = new_study(metric="loss", direction="minimize")
    b.add("identity", 8, {0: 1.0, 1: 1.1})
    b.add("sinter", 8, {0: 0.9, 1: 1.05}, amplitude=1e-4)
    b.add("sinter", 8, {0: 1.2, 1: 1.3}, amplitude=1e-3)
    rec, configs, _, _ = _table(study)
    assert rec.direction == "minimize" and rec.metric == "loss"
    assert configs.iloc[0]["amplitude"] == 1e-4


def test_running_and_pruned_trials_are_counted_not_averaged() -> None:
    study, b = new_study()
    b.add("identity", 8, {0: 0.5, 1: 0.6})
    b.add("sinter", 8, {0: 0.55, 1: 0.65}, amplitude=1e-4)
    b.add("sinter", 8, {0: 0.1}, amplitude=1e-4, state=TrialState.PRUNED)
    b.add("sinter", 8, None, amplitude=1e-4, state=TrialState.RUNNING)
    _, configs, _, _ = _table(study)
    r = configs.iloc[0]
    assert (r["n_complete"], r["n_pruned"], r["n_fail"], r["n_running"]) == (1, 1, 0, 1)
    assert r["metric_mean"] == pytest.approx(0.6)


def test_lipschitz_from_the_registry_audit_and_its_failures(monkeypatch) -> None:
    from loran_search.analysis.configurations import make_auditor

    notes: list[str] = []
    audit = make_auditor(notes)
    # Sinter: sup |f'| on [-1, 1] = 1 + A + A·ω (at x = ±1 where cos and sin line up).
    assert audit("sinter", {"amplitude": 1e-3, "frequency": 1e4}) == pytest.approx(11.0, rel=1e-3)
    assert math.isnan(audit("no-such-activation", {}))
    assert any("'no-such-activation' unavailable" in n for n in notes)
    slow: list[str] = []
    assert math.isnan(make_auditor(slow, budget_s=-1.0)("sinter", {"amplitude": 1e-3,
                                                                    "frequency": 1e4}))  # fmt: skip
    assert "remaining configurations" in slow[0]
    # the tool imports the registry as loran_search.activations (issue 22: shadow-proof)
    monkeypatch.setitem(__import__("sys").modules, "loran_search.activations.symbolic", None)
    notes2: list[str] = []
    assert math.isnan(make_auditor(notes2)("sinter", {"amplitude": 1e-3, "frequency": 1e4}))
    assert "could not be imported" in notes2[0]


def test_importance_with_enough_trials() -> None:
    from loran_search.analysis.importance import param_importances

    study, b = new_study()
    b.add("identity", 8, {0: 0.5})
    b.add("identity", 16, {0: 0.5})
    rng = np.random.default_rng(0)
    for amp in np.geomspace(1e-6, 1e-2, 12):
        rank = int(rng.choice([8, 16]))
        # The metric depends on the amplitude only; the rank is noise-free irrelevant.
        b.add("sinter", rank, {0: 0.5 + 0.02 * math.log10(amp / 1e-6)}, amplitude=float(amp))
    rec = load_records(study)
    table, notes = param_importances(study, rec)
    sinter = table[table["scope"] == "sinter"].set_index("param")["importance"]
    assert set(sinter.index) == {"sinter.amplitude", "rank"}
    assert sinter["sinter.amplitude"] > sinter["rank"]
    assert notes == [
        "Parameter importance (all candidates): only rank varies, so its importance is "
        "trivially 1; the configuration table compares its values directly."
    ]
