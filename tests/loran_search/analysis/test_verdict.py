"""The report's first screen: a verdict that answers, in order, the four questions of a study.

1. Does the best configuration beat QLoRA on held-out data (or is the evidence search-only)?
2. Was the design powered to see it (MDE; the seeds × examples a target gain needs)?
3. Where does training become unstable?
4. Was the non-linearity even active?

Degraded studies (older records, one seed, no confirmation, confirmation without baseline, a
failed confirmation) get statements, not crashes.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from optuna.trial import TrialState

from loran_search.analysis import decision as D
from loran_search.analysis import paired as PE
from loran_search.analysis import write_report
from loran_search.analysis.configurations import DECISION_COLUMNS, EVIDENCE_COLUMNS, STAT_COLUMNS
from tests.loran_search.analysis.conftest import mechanism_figures, new_study


def _report(study, out: Path, formats=("md", "csv", "json")) -> str:
    write_report(storage=study._storage, study_name=study.study_name, out_dir=out,
                 formats=formats, dashboard=False)  # fmt: skip
    return (out / "report.md").read_text() if "md" in formats else ""


def _verdict(md: str) -> str:
    return md.split("## Verdict")[1].split("## Details")[0]


def _examples_study(seeds=(0, 1, 2), n=150, delta=0.08, seed=0, **setup):
    rng = np.random.default_rng(seed)
    study, b = new_study()
    if setup:
        study.set_user_attr("loran.setup", {"metric": "accuracy", "directions": ["maximize"],
                                            **setup})  # fmt: skip
    p = rng.uniform(0.2, 0.8, n)

    def draw(d):
        return {s: (rng.random(n) < np.clip(p + d, 0, 1)).astype(int) for s in seeds}

    b.add("identity", 8, None, examples=draw(0.0), eval_split="val", mechanism=0.0)
    b.add("sinter", 8, None, amplitude=1e-3, examples=draw(delta), eval_split="val",
          mechanism=0.02)  # fmt: skip
    b.add("sinter", 8, None, amplitude=1e-5, examples=draw(0.0), eval_split="val",
          mechanism=2e-5)  # fmt: skip
    return study, b


def test_confirmed_verdict_answers_the_four_questions_in_order(curse_report) -> None:
    md = (curse_report / "report.md").read_text()
    verdict = _verdict(md)
    items = [line for line in verdict.splitlines() if line[:2].rstrip(".").isdigit()]
    assert items[0].startswith(
        "1. **Held-out confirmation (test split, fresh training on seeds "
        "100, 101, 102, 103, 104): 1 of 4 confirmed configurations beat QLoRA.**"
    )
    assert "**Best confirmed configuration: sinter(" in items[0]
    # the interval inverts the decisive test at the level of its Holm step (first of 4)
    assert "(98.75% t interval, 4 df (inverts the t-test) [" in items[0]
    assert "at the level of its Holm step so that it agrees with the adjusted p" in items[0]
    assert "(paired t-test on 5 seed means, 4 df)" in items[0]
    assert "Holm-adjusted p = " in items[0] and "over 4 confirmed configurations" in items[0]
    assert "**significantly better than QLoRA on held-out data**" in items[0]
    # the search gain (+0.153) exceeded the confirmed one: the curse is named, with its size
    assert (
        "Its search-phase gain was +0.153 on the val split; the confirmation shrank it"
        in (items[0])
    )
    assert "the winner's curse" in items[0]
    assert (
        "Companion gold_logprob_mean: the candidate's gold-label log-likelihood is 0.107 nats "
        "higher than QLoRA's — **better**" in items[0]
    )
    assert "Test-set reuse: 4 configurations of this study and QLoRA were evaluated" in items[0]
    assert items[1].startswith("2. **Power:** the confirmation design that ran (5 seeds × 200 "
                               "examples) detects a true gain of ")  # fmt: skip
    assert (
        "80% power at α = 0.05/4, Holm over 4 tests, from the t-test's noncentral t, 4 df"
        in (items[1])
    )
    assert (
        "The seed-to-seed sd of the paired difference is 0.0332, plausibly 0.0199–0.0955"
        in (items[1])
    )
    assert "Detecting one accuracy point (0.01) needs 5 seeds × " in items[1]
    assert "can only see large effects" not in items[1]  # five seeds
    assert "**sinter: no divergence at any amplitude tested**" in verdict
    mech = items[-1]
    assert "**Non-linearity: " in mech and "were LoRA in all but name**" in mech
    # the figure with intervals right after the verdict, before the details
    assert md.index("## Verdict") < md.index("plots/gain_intervals.png") < md.index("## Details")
    # the numbers in the verdict are the table's
    table = pd.read_csv(curse_report / "configurations.csv")
    best = table.iloc[0]
    assert best["evidence"] == "confirmation"
    assert f"gain **{best['gain']:+.3g}**" in items[0]
    assert f"detects a true gain of {best['mde']:.3g}" in items[1]


def test_csv_and_json_carry_every_column_and_the_verdict(curse_report) -> None:
    table = pd.read_csv(curse_report / "configurations.csv")
    for col in ["activation", "family", "rank", "amplitude", "frequency", *STAT_COLUMNS,
                "p_adjusted", "n_paired", "unstable_rate", "amp_freq", "n_trials", "trials",
                "config", "note", *EVIDENCE_COLUMNS]:  # fmt: skip
        assert col in table.columns, col
    assert not {"key", "designs", "confirm_seeds", "confirm_split"} & set(table.columns)
    assert set(table["evidence"]) == {"confirmation", "search"}
    assert set(table["ci_method"]) == {
        "t interval, 4 df (inverts the t-test)",  # the confirmation: 5 seeds
        "t interval, 2 df (inverts the t-test)",  # the search: 3 seeds
    }
    for col in DECISION_COLUMNS:
        assert col in table.columns, col
    # the interval excludes 0 exactly when the adjusted decision is "significant"
    excludes = (table["gain_ci_low"] > 0) | (table["gain_ci_high"] < 0)
    assert (excludes == table["significant"].astype(bool)).all()
    # the bootstrap is kept as a description
    assert table["boot_ci_low"].notna().all()
    assert set(table["companion_metric"]) == {"gold_logprob_mean"}
    report = json.loads((curse_report / "report.json").read_text())
    assert report["verdict"] and report["summary"][: len(report["verdict"])] == report["verdict"]
    assert report["target_gain"] == 0.01 and report["inert_threshold"] == 1e-3
    # the shapes are drawn on the visited range: ± the largest recorded |P| 99.9th percentile
    assert report["shapes_interval"] == pytest.approx([-0.05, 0.05])
    assert "visited range" in report["shapes_interval_note"]
    assert (curse_report / "plots" / "gain_vs_nonlinearity.png").stat().st_size > 5000


def test_search_only_evidence_is_called_optimistic(tmp_path) -> None:
    study, _ = _examples_study()
    verdict = _verdict(_report(study, tmp_path))
    assert verdict.lstrip().startswith("1. **Search-phase evidence only — optimistic.** No "
                                       "configuration was confirmed on held-out data")  # fmt: skip
    assert "(val split): the best of 2 is biased upward (the winner's curse)" in verdict
    assert "`loran-search confirm FILE`" in verdict
    assert "**Power:** the search design that ran (3 seeds × 150 examples)" in verdict
    assert "α = 0.05/2, Holm over 2 tests" in verdict
    assert "1 of 2 configurations was LoRA in all but name" in verdict


def test_target_gain_comes_from_the_setup(tmp_path) -> None:
    study, _ = _examples_study(report={"target_gain": 0.02})
    verdict = _verdict(_report(study, tmp_path))
    table = pd.read_csv(tmp_path / "configurations.csv")
    assert "Detecting 2 accuracy points (0.02) needs 3 seeds × " in verdict
    # the number is required_design's for the best configuration
    from loran_search.analysis.records import load_records

    rec = load_records(study)
    ex = {t: rec.examples[t] for t in rec.examples}
    diffs = [np.array(ex[1][s]["correct"], float) - np.array(ex[0][s]["correct"], float)
             for s in ("0", "1", "2")]  # fmt: skip
    designs = dict(D.design_power(diffs, 0.02, n_tests=2).designs)
    assert designs == dict(PE.required_design(diffs, 0.02, n_tests=2, max_seeds=10))
    assert table.iloc[0]["config"].startswith("sinter(amplitude=0.001")
    assert f"3 seeds × {designs[3]:,} examples per seed" in verdict


def test_one_seed_with_examples_has_an_interval_and_mcnemar(tmp_path) -> None:
    study, _ = _examples_study(seeds=(0,), n=200, delta=0.15)
    verdict = _verdict(_report(study, tmp_path))
    # two configurations tested: the interval is at the level of the first Holm step
    assert "97.5% exact conditional interval (Clopper–Pearson on the discordant pairs" in verdict
    assert "(exact McNemar test (b = " in verdict
    assert "**Power:** the search design that ran (1 seed × 200 examples)" in verdict
    assert "the t approximation of the exact McNemar test" in verdict
    assert "With 1 seed the test can only see large effects (and one seed says nothing" in (verdict)
    assert "assuming no seed-to-seed variance, which one seed cannot estimate" in verdict


def test_older_records_get_statements_not_crashes(canonical, tmp_path) -> None:
    md = _report(canonical, tmp_path)
    verdict = _verdict(md)
    assert "**Search-phase evidence only — optimistic.**" in verdict
    assert "98.33% t interval, 2 df (inverts the t-test) [" in verdict  # Holm's first of 3
    assert "(paired t-test on 3 seed means, 2 df)" in verdict
    assert "**Power:** the search design that ran (3 seeds (over seeds only))" in verdict
    assert "With 3 seeds the test can only see large effects." in verdict
    assert "Detecting one accuracy point (0.01) needs about " in verdict
    assert "**Non-linearity:** not measured — no run records the mechanism telemetry" in verdict
    assert "No per-example outcomes in this study's records: intervals are over seeds" in md
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["shapes_interval"] == [-1.0, 1.0]
    assert "older records" in report["shapes_interval_note"]


def test_one_seed_older_record_says_power_is_not_computable(tmp_path) -> None:
    study, b = new_study()
    b.add("identity", 8, {0: 0.5})
    b.add("sinter", 8, {0: 0.55}, amplitude=1e-4)
    verdict = _verdict(_report(study, tmp_path))
    assert "No interval or p-value: a single paired seed" in verdict
    assert "**Power:** not computable for the best configuration (a single paired seed" in verdict


def test_failed_confirmation_is_stated(tmp_path) -> None:
    study, b = _examples_study()
    b.add("identity", 8, None, role="confirm_baseline", eval_split="test",
          examples={10: [1, 0, 1, 0], 11: [0, 1, 1, 0]})  # fmt: skip
    b.add("sinter", 8, {10: 0.5}, amplitude=1e-3, role="confirm", confirm_of=[1],
          state=TrialState.FAIL, diverged={11: True}, eval_split="test",
          failure="diverged: seed 11 diverged at step 9")  # fmt: skip
    md = _report(study, tmp_path)
    verdict = _verdict(md)
    assert ("**Search-phase evidence only — optimistic.** 1 configuration had confirmation "
            "trials but none gave a confirmation gain") in verdict  # fmt: skip
    assert "**1 confirmation trial diverged** on the confirmation seeds" in verdict
    table = pd.read_csv(tmp_path / "configurations.csv")
    row = table[table["amplitude"] == 1e-3].iloc[0]
    assert row["evidence"] == "search" and "did not complete (diverged" in row["note"]
    assert "confirm 1 confirm trial" not in md and "1 confirm trial (1 failed)" in md


def test_confirmation_without_baseline_is_stated(tmp_path) -> None:
    study, b = _examples_study()
    b.add("sinter", 8, None, amplitude=1e-3, role="confirm", confirm_of=[1], eval_split="test",
          examples={10: [1, 0, 1, 0], 11: [0, 1, 1, 0]})  # fmt: skip
    md = _report(study, tmp_path)
    assert "had confirmation trials but none gave a confirmation gain" in _verdict(md)
    table = pd.read_csv(tmp_path / "configurations.csv")
    note = table.loc[table["amplitude"] == 1e-3, "note"].iloc[0]
    assert "confirmation without baseline" in note


def test_no_baseline_and_empty_studies_still_answer(tmp_path) -> None:
    study, b = new_study()
    b.add("sinter", 8, {0: 0.55, 1: 0.6}, amplitude=1e-4)
    verdict = _verdict(_report(study, tmp_path / "a"))
    assert "Gains over QLoRA are unavailable: the study has no baseline trials" in verdict
    assert "**Power:**" not in verdict and "**Non-linearity:** not measured" in verdict
    empty, _ = new_study(name="empty")
    md = _report(empty, tmp_path / "b")
    assert "no trials yet" in md and math.isfinite(0.0)


def test_an_inert_best_configuration_is_called_lora_in_all_but_name(tmp_path) -> None:
    study, b = new_study()
    rng = np.random.default_rng(1)
    n, p = 120, rng.uniform(0.2, 0.8, 120)
    b.add("identity", 8, None, examples={s: (rng.random(n) < p).astype(int) for s in (0, 1)},
          mechanism=0.0)  # fmt: skip
    b.add("sinter", 8, None, amplitude=1e-6, mechanism=3e-5,
          examples={s: (rng.random(n) < p + 0.1).astype(int) for s in (0, 1)})  # fmt: skip
    mech = next(x for x in _verdict(_report(study, tmp_path)).splitlines() if "Non-linearity" in x)
    assert "**Non-linearity: 1 of 1 configuration was LoRA in all but name**" in mech
    assert "The best configuration, sinter(amplitude=1e-06, frequency=10000) r=8, is one" in mech
    assert "its gain, if any, is not the non-linearity's" in mech
    table = pd.read_csv(tmp_path / "configurations.csv")
    assert bool(table.iloc[0]["inert"]) is True
    assert table.iloc[0]["nonlinearity"] == pytest.approx(3e-5)


def test_an_adapter_whose_update_stayed_zero_is_said_to_have_never_trained(tmp_path) -> None:
    """relu with B = 0 at the start: f'(0) = 0, no gradient, P = 0 (seen in the real ablation)."""
    study, b = new_study()
    rng = np.random.default_rng(2)
    n, p = 120, rng.uniform(0.2, 0.8, 120)
    b.add("identity", 8, None, examples={s: (rng.random(n) < p).astype(int) for s in (0, 1)},
          mechanism=0.0)  # fmt: skip
    b.add("relu", 8, None, mechanism={s: mechanism_figures(0.0, p999=0.0) for s in (0, 1)},
          examples={s: (rng.random(n) < p - 0.3).astype(int) for s in (0, 1)})  # fmt: skip
    mech = next(x for x in _verdict(_report(study, tmp_path)).splitlines() if "Non-linearity" in x)
    assert "**1 configuration never trained: P = B·A stayed exactly 0** (relu() r=8)" in mech
    assert "were LoRA in all but name" not in mech


def test_a_report_made_while_the_study_runs_says_it_is_provisional(tmp_path: Path) -> None:
    # issue 18 finding 11: the verdict did not say so, and its Holm family counted only the
    # finished confirmations
    study, b = _examples_study()
    b.add("sinter", 8, None, amplitude=1e-2, state=TrialState.RUNNING)
    b.add("sinter", 8, None, amplitude=1e-1, state=TrialState.WAITING)
    b.add("sinter", 8, None, amplitude=1e-3, state=TrialState.RUNNING, role="confirm",
          confirm_of=[1], eval_split="test")  # fmt: skip
    verdict = _verdict(_report(study, tmp_path / "running", formats=("md",)))
    first = verdict.strip().splitlines()[0]
    assert first.startswith("1. **The study is still running: provisional.**"), first
    assert "2 trials were RUNNING (1 confirmation trial among them) and 1 WAITING" in first
    assert "multiple-comparison family (Holm" in first and "may change" in first
    finished, _ = _examples_study()
    assert "still running" not in _verdict(_report(finished, tmp_path / "done", formats=("md",)))
