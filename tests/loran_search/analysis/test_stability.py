"""Stability rates, family ranking and where along the amplitude training breaks."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from optuna.trial import TrialState

from loran_search.analysis.stability import amplitude_thresholds, run_stability


def _configs(rows: list[tuple[float, float, float, float]]) -> pd.DataFrame:
    """(amplitude, frequency, diverged_rate, loss_spike_rate) rows of one activation."""
    df = pd.DataFrame(rows, columns=["amplitude", "frequency", "diverged_rate", "loss_spike_rate"])
    df["activation"] = "sinter"
    df["amp_freq"] = df["amplitude"] * df["frequency"]
    return df


def test_run_stability_rates() -> None:
    runs = pd.DataFrame(
        {
            "state": ["COMPLETE", "FAIL", "PRUNED", "RUNNING", "COMPLETE"],
            "has_stability": [True, True, True, True, False],
            "diverged": [False, True, False, True, None],
            "loss_spikes": [0, 2, 1, 5, np.nan],
            "grad_norm_max": [1.0, 1e6, 3.0, 1e9, np.nan],
        }
    )
    st = run_stability(runs)  # the RUNNING run and the one without telemetry do not count
    assert st["n_stability_runs"] == 3
    assert st["diverged_rate"] == pytest.approx(1 / 3)
    assert st["loss_spike_rate"] == pytest.approx(2 / 3)
    assert st["unstable_rate"] == pytest.approx(2 / 3)
    assert st["grad_norm_max"] == 1e6
    assert math.isnan(run_stability(runs.iloc[4:])["diverged_rate"])


def test_threshold_on_amplitude_at_a_fixed_frequency() -> None:
    th = amplitude_thresholds(
        _configs([(1e-4, 1e4, 0, 0), (1e-3, 1e4, 0, 0.5), (1e-2, 1e4, 0.5, 0), (1e-1, 1e4, 1, 1)])
    )[0]
    assert th["axis"] == "amplitude"
    assert th["first_unstable"] == 1e-2 and th["max_stable_below"] == 1e-3
    assert th["clean_below"] and th["unstable_above_share"] == 1.0
    assert th["amp_freq_at_first_unstable"] == pytest.approx(100.0)
    assert th["first_spiking"] == 1e-3


def test_threshold_uses_a_times_omega_when_frequency_varies_and_flags_non_monotone() -> None:
    th = amplitude_thresholds(
        _configs([(1e-2, 10, 0, 0), (1e-3, 1e4, 1, 0), (1e-2, 1e3, 0, 0), (1e-1, 1e4, 1, 0)])
    )[0]
    assert th["axis"] == "amp_freq"
    assert th["first_unstable"] == pytest.approx(10.0)  # A·ω = 1e-3·1e4, not A = 1e-3
    assert th["clean_below"] and th["max_stable_below"] == pytest.approx(0.1)
    # Unstable at the smallest amplitude, stable above it: not monotone, nothing stable below.
    th2 = amplitude_thresholds(_configs([(1e-4, 1e4, 1, 0), (1e-3, 1e4, 0, 0), (1e-2, 1e4, 1, 0)]))[
        0
    ]
    assert th2["first_unstable"] == 1e-4 and th2["max_stable_below"] is None
    assert th2["unstable_above_share"] == pytest.approx(2 / 3)


def test_no_divergence_and_no_amplitude() -> None:
    th = amplitude_thresholds(_configs([(1e-4, 1e4, 0, 0), (1e-3, 1e4, 0, 0)]))[0]
    assert th["first_unstable"] is None and th["axis_max"] == 1e-3
    no_amp = pd.DataFrame({"activation": ["gelu"], "diverged_rate": [0.0]})
    assert amplitude_thresholds(no_amp) == []


def test_gradient_growth_against_the_baseline_of_the_same_rank() -> None:
    c = _configs([(1e-3, 1e4, 0, 0), (1e-1, 1e4, 0, 0), (1.0, 1e4, 0, 0), (10.0, 1e4, 0, 0)])
    c["rank"] = [8, 8, 8, 16]
    c["grad_norm_max"] = [7.0, 12.0, 75.0, 100.0]
    base = pd.DataFrame({"rank": [8, 16], "grad_norm_max": [7.5, 20.0]})
    th = amplitude_thresholds(c, base)[0]
    # 75 / 7.5 = 10 at A = 1 (rank 8); A = 10 is rank 16: 100 / 20 = 5, below the factor.
    assert th["first_grad_growth"] == 1.0
    assert th["grad_growth"] == pytest.approx(10.0)
    # Compared with the rank-16 baseline everywhere, nothing would reach 10x: pairing by rank.
    assert (
        amplitude_thresholds(c, base.assign(grad_norm_max=[20.0, 20.0]))[0]["first_grad_growth"]
        is None
    )
    # No baseline, no gradient-growth statement.
    assert amplitude_thresholds(c)[0]["first_grad_growth"] is None


# ------------------------------------------------------------------ issue 18, finding 6


def _blame_study():
    """identity (the baseline) never diverges; relu (registry family `baseline`) does, half."""
    from tests.loran_search.analysis.conftest import new_study

    study, b = new_study()
    b.add("identity", 8, {0: 0.70, 1: 0.71})
    b.add("relu", 8, {0: 0.60}, diverged={1: True}, state=TrialState.FAIL, failure="diverged")
    b.add("relu", 8, {0: 0.61, 1: 0.62}, amplitude=None)
    for amp in (1e-4, 1e-3):
        b.add("sinter", 8, {0: 0.71, 1: 0.72}, amplitude=amp)
    return study


def test_the_qlora_baseline_is_the_baseline_role_not_the_registry_family(tmp_path) -> None:
    from loran_search.analysis import write_report

    study = _blame_study()
    write_report(storage=study._storage, study_name=study.study_name, out_dir=tmp_path,
                 formats=("md",), dashboard=False)  # fmt: skip
    md = (tmp_path / "report.md").read_text()
    verdict = md.split("## Verdict")[1].split("## Details")[0]
    assert "QLoRA baseline: 0% diverged" in verdict, verdict
    assert "QLoRA baseline: 17% diverged" not in verdict


def test_a_run_is_counted_once_when_the_failure_and_the_flag_disagree() -> None:
    from loran_search.analysis.records import load_records
    from tests.loran_search.analysis.conftest import new_study

    study, b = new_study()
    b.add("identity", 8, {0: 0.70})
    # inconsistent records: the trial failed as diverged, its seed's flag says it did not
    for amp in (1e-4, 1e-3, 1e-2):
        b.add(
            "sinter",
            8,
            {0: 0.5},
            amplitude=amp,
            state=TrialState.FAIL,
            failure="training diverged (loss is NaN)",
            attrs={"failure_kind": "diverged"},
        )
    rec = load_records(study)
    sinter = rec.runs[rec.runs["activation"] == "sinter"]
    assert len(sinter) == 3  # one run per (trial, seed), not 6
    assert not sinter.duplicated(["trial", "seed"]).any()
    assert sinter["diverged"].astype(bool).all()  # the failure says the run diverged
    assert any("diverged" in n and "disagree" in n for n in rec.notes), rec.notes
