"""The report's first screen (issue 22): the headline from numbers, the setup line, the figures.

The headline is derived from the configuration table's numbers (the same ones the verdict
uses): each case below fixes the numbers and checks the whole sentence, for accuracy (percent
and points) and for a continuous metric (its own units), for a significant gain, a significant
loss and a result the test cannot tell from QLoRA — never "equal" or "harmless".
"""

from __future__ import annotations

import math
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from loran_search import record as R
from loran_search.analysis import plots as P
from loran_search.analysis import write_report
from loran_search.analysis.headline import headline, setup_line, study_info
from loran_search.analysis.report import analyse
from tests.loran_search.analysis.conftest import curse_study, fill_canonical, new_study

CONFIG = "sinter(amplitude=10, frequency=1) r=8"


def _analysis(metric: str, direction: str, task: str | None, **row) -> SimpleNamespace:
    """A stand-in analysis whose table holds one configuration with the given numbers."""
    base = {
        "config": CONFIG, "evidence": "confirmation", "metric_mean": 0.9, "baseline_mean": 0.9,
        "confirm_metric_mean": math.nan, "confirm_baseline_mean": math.nan, "gain": math.nan,
        "gain_ci_low": math.nan, "gain_ci_high": math.nan, "ci_level": 0.95, "p_value": 0.01,
        "significant": True, "n_paired": 3, "n_examples": 448.0,
    }  # fmt: skip
    base.update(row)
    trials = pd.DataFrame({"role": ["candidate", "baseline"]})
    rec = SimpleNamespace(
        trials=trials,
        confirm_trials=pd.DataFrame({"role": []}),
        metric=metric,
        sign=1.0 if direction == "maximize" else -1.0,
    )
    return SimpleNamespace(
        records=rec, configurations=pd.DataFrame([base]), study_info={"task": task}
    )


def test_not_distinguishable_reads_like_the_issue_and_never_says_equal() -> None:
    a = _analysis("accuracy", "maximize", "bbc-news", confirm_metric_mean=0.8073,
                  confirm_baseline_mean=0.8289, gain=-0.0216, gain_ci_low=-0.054,
                  gain_ci_high=0.006, p_value=0.127, significant=False)  # fmt: skip
    assert headline(a) == (
        f"No: {CONFIG} scored 80.7 % vs QLoRA 82.9 % on 448 held-out BBC News articles, "
        "3 seeds: −2.2 points [−5.4, +0.6] — not distinguishable from QLoRA (the interval "
        "includes 0)."
    )


def test_significant_loss_and_gain_in_points() -> None:
    worse = _analysis("accuracy", "maximize", None, confirm_metric_mean=0.70,
                      confirm_baseline_mean=0.75, gain=-0.05, gain_ci_low=-0.08,
                      gain_ci_high=-0.02, n_paired=1, n_examples=1.0)  # fmt: skip
    assert headline(worse) == (
        f"No: {CONFIG} scored 70.0 % vs QLoRA 75.0 % on 1 held-out example, 1 seed: "
        "−5.0 points [−8.0, −2.0] — significantly worse than QLoRA."
    )
    better = _analysis("accuracy", "maximize", "my-data", confirm_metric_mean=0.76,
                       confirm_baseline_mean=0.75, gain=0.01, gain_ci_low=0.002,
                       gain_ci_high=0.018, ci_level=0.975)  # fmt: skip
    assert headline(better) == (
        f"Yes: {CONFIG} scored 76.0 % vs QLoRA 75.0 % on 448 held-out my-data examples, "
        "3 seeds: +1.0 point [+0.2, +1.8] (97.5 % interval) — significantly better than QLoRA."
    )


def test_a_continuous_metric_keeps_its_units_and_direction() -> None:
    rouge = _analysis("rougeL", "maximize", "aclsum", confirm_metric_mean=0.312,
                      confirm_baseline_mean=0.298, gain=0.014, gain_ci_low=0.002,
                      gain_ci_high=0.026, n_examples=120.0)  # fmt: skip
    assert headline(rouge) == (
        f"Yes: {CONFIG} scored 0.312 vs QLoRA 0.298 in rougeL on 120 held-out ACLSum "
        "abstracts, 3 seeds: +0.014 [+0.002, +0.026] — significantly better than QLoRA."
    )
    # lower is better: a significant negative difference is the good direction
    loss = _analysis("summary_loss", "minimize", None, confirm_metric_mean=2.1,
                     confirm_baseline_mean=2.3, gain=-0.2, gain_ci_low=-0.3,
                     gain_ci_high=-0.1, n_examples=math.nan)  # fmt: skip
    assert headline(loss).startswith(f"Yes: {CONFIG} scored 2.1 vs QLoRA 2.3 in summary_loss ")
    assert headline(loss).endswith(": −0.2 [−0.3, −0.1] — significantly better than QLoRA.")
    flat = _analysis("rougeL", "maximize", None, confirm_metric_mean=0.30,
                     confirm_baseline_mean=0.30, gain=0.0, gain_ci_low=-0.01,
                     gain_ci_high=0.01, significant=False)  # fmt: skip
    text = headline(flat)
    assert text.startswith("No: ") and "not distinguishable from QLoRA" in text
    assert "equal" not in text and "harmless" not in text


def test_search_only_and_no_baseline_say_what_is_missing() -> None:
    search = _analysis("accuracy", "maximize", None, evidence="search", metric_mean=0.9,
                       baseline_mean=0.88, gain=0.02, gain_ci_low=0.001, gain_ci_high=0.039,
                       n_examples=256.0)  # fmt: skip
    text = headline(search)
    assert text.startswith("Not answered on held-out data yet: the search's best, ")
    assert "90.0 % vs QLoRA 88.0 % on 256 validation examples, 3 seeds: +2.0 points" in text
    assert "optimistic" in text and "loran-search confirm FILE" in text
    none = _analysis("accuracy", "maximize", None, metric_mean=0.9, gain=math.nan)
    assert headline(none).startswith("No answer: no candidate can be compared with QLoRA")


def test_the_curse_study_headline_is_the_confirmed_answer() -> None:
    study, _, _, _ = curse_study()
    a = analyse(study)
    assert a.headline.startswith("Yes: sinter(amplitude=0.00126, frequency=10000) r=8 scored ")
    best = a.configurations[a.configurations["evidence"] == "confirmation"].iloc[0]
    points = f"{100 * best['gain']:+.1f} points".replace("-", "−")
    assert f"on 200 held-out examples, 5 seeds: {points} [" in a.headline


def _setup_study():
    study, b = new_study()
    study.set_user_attr(R.STUDY_SETUP, {
        "model": {"name": "smollm2-135m", "quantization": "nf4", "compute_dtype": "float32"},
        "task": {"name": "bbc-news", "train_split": "train", "eval_split": "val",
                 "train_size": 512, "eval_size": 256},
        "training": {"max_steps": 60, "learning_rate": 2e-4, "spike_factor": 2.0},
    })  # fmt: skip
    study.set_user_attr(R.STUDY_CONFIRM, {"top_k": 3, "seeds": [100], "split": "test"})
    fp = {"cpu_model": "Example CPU 9000", "cores": 16, "gpus": "", "loran_search": "0.1.0"}
    b.add("identity", 8, {0: 0.7, 1: 0.72}, attrs={R.ENVIRONMENT: fp})
    b.add("sinter", 8, {0: 0.71, 1: 0.74}, amplitude=1e-3, attrs={R.ENVIRONMENT: fp})
    return study


def test_setup_line_names_model_data_steps_rate_machine_date_and_code() -> None:
    study = _setup_study()
    a = analyse(study)
    line = setup_line(a.study_info)
    assert line.startswith("Setup: model smollm2-135m (nf4, float32); data bbc-news: trained on "
                           "512 examples of train, searched on val (256 examples), confirmed on "
                           "test; 60 steps at learning rate 0.0002; machine Example CPU 9000, 16 "
                           "cores; date 20")  # fmt: skip
    assert "; code loran-search 0.1.0" in line
    # a searched learning rate: the rates the trials trained with
    info = study_info(study, a.environments)
    assert info["learning_rates"] == [2e-4] and info["spike_factor"] == 2.0


def _all_text(out: Path) -> str:
    return (out / "report.md").read_text() + (out / "report.html").read_text()


def test_no_plural_placeholders_in_rendered_reports(curse_report: Path, tmp_path: Path) -> None:
    study, b = new_study()
    fill_canonical(b)
    out = tmp_path / "canonical"
    write_report(storage=study._storage, study_name=study.study_name, out_dir=out,
                 formats=("md", "html"), dashboard=False)  # fmt: skip
    for text in (_all_text(out), _all_text(curse_report)):
        assert "(s)" not in text
        assert "How to read this" in text and 'id="headline"' in text


@pytest.fixture
def captured(monkeypatch: pytest.MonkeyPatch) -> dict[str, object]:
    """The matplotlib figures the plot functions save, by file name."""
    figures: dict[str, object] = {}
    save = P._save

    def keep(fig, out_dir, name):
        figures[name] = fig
        labels = [t.get_text() for ax in fig.axes if ax.get_legend() for t in
                  ax.get_legend().get_texts()]  # fmt: skip
        figures[name + ":legend"] = labels
        return save(fig, out_dir, name)

    monkeypatch.setattr(P, "_save", keep)
    return figures


def test_mixed_phase_figures_mark_test_and_validation(captured, tmp_path: Path) -> None:
    study, _, _, _ = curse_study()
    c = analyse(study).configurations
    notes: list[str] = []
    assert P.gain_vs_amplitude(c, tmp_path, notes) is not None
    legend = captured["gain_vs_amplitude.png:legend"]
    assert "sinter (r=8): validation" in legend and "sinter (r=8): held-out test" in legend
    assert "decisive test's intervals" in captured["gain_vs_amplitude.png"].axes[0].get_title()
    assert P.gain_vs_nonlinearity(c, tmp_path, notes, 1e-3) is not None
    legend = captured["gain_vs_nonlinearity.png:legend"]
    assert any(P.TEST_LABEL in t for t in legend) and any(P.VAL_LABEL in t for t in legend)
    # a 2-D grid (two frequencies) and varying costs: the heat map and the Pareto front draw
    grid = c.assign(frequency=np.where(np.arange(len(c)) % 2 == 0, 1e4, 2e4),
                    train_seconds=np.arange(len(c), dtype=float) + 1.0,
                    front_cost=False, front_stability=False)  # fmt: skip
    assert P.amp_freq_heatmap(grid, tmp_path, notes, "accuracy") is not None
    legend = captured["amp_freq_heatmap.png:legend"]
    assert legend == ["colour, number: validation (search)",
                      "outlined: confirmed, 2nd line = held-out test gain"]  # fmt: skip
    assert P.pareto(grid, tmp_path, notes) is not None
    assert {P.TEST_LABEL, P.VAL_LABEL} <= set(captured["pareto.png:legend"])
    # the unstable-run rate is 0 everywhere: that panel is left out, said in one line
    assert len(captured["pareto.png"].axes) == 1
    assert notes == [
        "Plot 'Pareto fronts' has one panel: every configuration has unstable-run rate = 0, so "
        "there is no trade-off to show there."
    ]


def test_uninformative_figures_are_not_drawn_and_the_report_says_why(tmp_path: Path) -> None:
    study, _, _, _ = curse_study()
    out = tmp_path / "r"
    write_report(storage=study._storage, study_name=study.study_name, out_dir=out,
                 formats=("md", "html"), dashboard=False)  # fmt: skip
    drawn = {p.stem for p in (out / "plots").glob("*.png")}
    assert not {"amp_freq_heatmap", "pareto", "calibration"} & drawn
    md = (out / "report.md").read_text()
    figures = md.split("## Figures")[1]
    for line in (
        "- Plot 'amplitude × frequency heatmap' skipped: sinter was tried at 21 amplitudes and "
        "1 frequency, a 1 × 21 grid",
        "- Plot 'calibration' skipped: no run diverged or had a loss spike and every maximum "
        "gradient norm is the same",
        "- Plot 'Pareto fronts' skipped: every configuration has train seconds = 10 and "
        "unstable-run rate = 0",
    ):
        assert line in figures
    # said once, under Figures, not again among the data notes
    assert "1 × 21 grid" not in md.split("## Figures")[0]


def test_loss_curve_states_the_spike_rule_and_marks_its_steps(captured, tmp_path: Path) -> None:
    from loran_search.analysis.records import load_records

    study, b = new_study()
    b.add("identity", 8, {0: 0.7})
    b.add("sinter", 8, {0: 0.71}, amplitude=1e-3,
          attrs={"history": {"0": [{"step": k, "loss": v} for k, v in
                                   enumerate([3.6, 3.5, 3.4, 5.6, 3.3, 7.5, 3.0])]}})  # fmt: skip
    rec = load_records(study)
    c = analyse(study).configurations
    assert P.loss_curves(rec, c, tmp_path, [], spike_factor=2.0) is not None
    fig = captured["loss_curves.png"]
    title = fig.axes[0].get_title()
    # 3.6 → 5.6 is below 2 × the median 3.5: no spike; 7.5 > 2 × 3.45: one
    assert (
        "loss spike = a step's loss > 2 × median of the previous ≤ 10 steps: 1 step marked ×"
        in (title)
    )
    assert "loss spike (a run's step)" in captured["loss_curves.png:legend"]


def test_run_ends_with_the_answer(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    from loran_search.cli.study import _write_report
    from loran_search.config import StudyConfig

    study, _, _, _ = curse_study()
    monkeypatch.chdir(tmp_path)
    cfg = StudyConfig()
    cfg.study.name = study.study_name
    _write_report(cfg, study._storage, tmp_path / "artifacts")
    err = capsys.readouterr().err
    assert "Answer: Yes: sinter(amplitude=0.00126, frequency=10000) r=8 scored 61.3 % vs QLoRA " \
           "48.7 % on 200 held-out examples, 5 seeds" in err  # fmt: skip
    assert err.index("Answer: ") < err.index("Report: ")


def test_the_table_names_the_split_of_each_metric_column(curse_report: Path) -> None:
    md = (curse_report / "report.md").read_text()
    header = next(line for line in md.splitlines() if line.startswith("| configuration |"))
    assert "| accuracy (search) | QLoRA (search) | accuracy (held-out) | QLoRA (held-out) |" in (
        header
    )
    best = next(line for line in md.splitlines() if line.startswith("| sinter(amplitude=0.00126"))
    assert "| 0.613 | 0.487 |" in best  # the held-out metric and QLoRA beside the test gain


def test_a_setup_the_study_did_not_record_says_so() -> None:
    study, _, _, _ = curse_study()  # hand-made: no loran.setup, no environment fingerprint
    line = setup_line(analyse(study).study_info)
    assert line.startswith("Setup: model not recorded; data not recorded; training not "
                           "recorded; machine not recorded; date 20")  # fmt: skip
    assert "?" not in line
    assert setup_line({}) == "Setup: not recorded."
