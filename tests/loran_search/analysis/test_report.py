"""write_report end to end: outputs, embedded figures, dashboard, degraded inputs."""

from __future__ import annotations

import json
import re
from pathlib import Path

import optuna
import pandas as pd
import pytest
from optuna.trial import TrialState

from loran_search.analysis import ReportError, write_report
from loran_search.analysis.configurations import STAT_COLUMNS
from tests.loran_search.analysis.conftest import DIST, fill_canonical, new_study


def _report(study, out: Path, formats=("md", "csv", "json"), **kw) -> tuple[str, list[str]]:
    messages: list[str] = []
    write_report(storage=study._storage, study_name=study.study_name, out_dir=out,
                 formats=formats, dashboard=False, messages=messages, **kw)  # fmt: skip
    return (out / "report.md").read_text() if "md" in formats else "", messages


def _summary(md: str) -> str:
    """The first screen: everything before the first table section."""
    return md.split("## Configurations")[0]


def test_every_output_is_written_and_the_html_embeds_its_figures(canonical, tmp_path) -> None:
    messages: list[str] = []
    out = write_report(storage=canonical._storage, study_name="synthetic", out_dir=tmp_path / "r",
                       messages=messages)  # fmt: skip
    assert out == tmp_path / "r"
    for name in ("configurations.csv", "configurations.json", "report.json", "report.md",
                 "report.html", "baselines.csv", "families.csv", "pareto.csv"):  # fmt: skip
        assert (out / name).stat().st_size > 0, name
    pngs = sorted((out / "plots").glob("*.png"))
    assert {p.stem for p in pngs} >= {
        "gain_intervals", "gain_intervals_narrow", "gain_vs_amplitude", "stability_by_family",
        "calibration", "loss_curves", "shapes", "pareto",
    }  # fmt: skip
    # one frequency: the A × ω heat map would be a 1 × N strip, so it is not drawn, and said
    assert "amp_freq_heatmap" not in {p.stem for p in pngs}
    assert all(p.stat().st_size > 5000 for p in pngs)
    html = (out / "report.html").read_text()
    assert "Plot 'amplitude × frequency heatmap' skipped: sinter was tried at 3 amplitudes " \
           "and 1 frequency" in html  # fmt: skip
    # every PNG embedded: the narrow first figure as the <picture>'s small-screen source
    assert html.count("<img") == len(pngs) - 1
    assert html.count('src="data:image/png;base64,') == len(pngs) - 1
    assert html.count('srcset="data:image/png;base64,') == 1
    assert not re.search(r'src="(?!data:)', html)  # nothing loaded from outside the file
    # The verdict first, then the gain-with-interval figure, then the tables, then the rest.
    verdict = html.index('id="verdict"')
    assert verdict < html.index("Best configuration") < html.index('id="fig-gain_intervals"')
    assert (
        html.index('id="fig-gain_intervals"')
        < html.index("<table")
        < html.index('id="fig-gain_vs_amplitude"')
    )
    assert html.count('class="table-wrap"') == html.count("<table")
    assert "t interval, 2 df (inverts the t-test) [" in html and "Holm" in html
    # CSV and JSON hold the same rows, with the columns.
    csv = pd.read_csv(out / "configurations.csv")
    rows = json.loads((out / "configurations.json").read_text())
    assert len(csv) == len(rows) == 5
    for col in ["activation", "family", "rank", "amplitude", "frequency", *STAT_COLUMNS]:
        assert col in csv.columns and col in rows[0]
    assert "key" not in csv.columns
    report = json.loads((out / "report.json").read_text())
    assert report["correction"].startswith("Holm") and report["summary"]
    assert report["amplitude_thresholds"][0]["first_unstable"] == pytest.approx(1e-2)


def test_summary_answers_the_question(canonical, tmp_path) -> None:
    md, _ = _report(canonical, tmp_path)
    first = _summary(md)
    assert "Best configuration: sinter(amplitude=0.001, frequency=10000) r=8" in first
    assert "significantly better than QLoRA" in first
    assert "t interval, 2 df (inverts the t-test) [" in first and "Holm-adjusted p" in first
    assert "Only candidate family: **sinter**" in first
    assert "training diverges from amplitude A ≥ 0.01" in first
    assert "largest stable A below it: 0.001" in first


def test_format_limits_outputs(canonical, tmp_path) -> None:
    _report(canonical, tmp_path, formats=("csv",))
    assert (tmp_path / "configurations.csv").exists()
    assert not (tmp_path / "report.md").exists() and not (tmp_path / "plots").exists()
    with pytest.raises(ReportError, match="Unknown report format"):
        _report(canonical, tmp_path, formats=("pdf",))


def test_no_baseline_says_how_to_add_it(tmp_path) -> None:
    study, b = new_study()
    b.add("sinter", 8, {0: 0.55, 1: 0.6}, amplitude=1e-4)
    b.add("sinter", 8, {0: 0.65, 1: 0.7}, amplitude=1e-3)
    md, _ = _report(study, tmp_path)
    first = _summary(md)
    assert "Gains over QLoRA are unavailable: the study has no baseline trials" in first
    assert "`study.baseline: true`" in first
    assert "Best configuration by accuracy: **sinter(amplitude=0.001" in first
    csv = pd.read_csv(tmp_path / "configurations.csv")
    assert csv["gain"].isna().all() and (csv["note"] == "no baseline trials").all()


def test_single_seed_gives_no_interval_and_says_why(tmp_path) -> None:
    study, b = new_study()
    b.add("identity", 8, {0: 0.5})
    b.add("sinter", 8, {0: 0.55}, amplitude=1e-4)
    md, _ = _report(study, tmp_path)
    first = _summary(md)
    assert "No interval or p-value: a single paired seed" in first
    assert "`study.seeds`" in first
    assert (
        "no configuration could be tested for significance (1 with a single paired seed)" in first
    )
    row = json.loads((tmp_path / "configurations.json").read_text())[0]
    assert row["gain"] == pytest.approx(0.05)
    assert row["gain_ci_low"] is None and row["p_value"] is None and row["significant"] is None


def test_one_configuration_and_unfinished_trials(tmp_path) -> None:
    study, b = new_study()
    b.add("identity", 8, {0: 0.5, 1: 0.6})
    b.add("sinter", 8, {0: 0.52, 1: 0.63}, amplitude=1e-4)
    b.add("sinter", 8, {0: 0.2}, amplitude=1e-4, state=TrialState.PRUNED)
    b.add("sinter", 8, None, amplitude=1e-4, state=TrialState.RUNNING)
    b.add("sinter", 8, None, amplitude=1e-4, state=TrialState.FAIL, failure="CUDA OOM")
    md, _ = _report(study, tmp_path, formats=("md", "html"))
    first = _summary(md)
    assert "1 candidate configuration from 4 trials (1 complete, 1 pruned, 1 failed, " \
           "1 running)" in first  # fmt: skip
    assert "Parameter importance" in md
    assert (tmp_path / "report.html").stat().st_size > 0


def test_single_seed_gives_the_scale_of_evaluation_noise(tmp_path) -> None:
    study, b = new_study(metric=None)
    study.set_user_attr("loran.setup", {"metric": "accuracy", "directions": ["maximize"],
                                        "task": {"eval_size": 64}})  # fmt: skip
    b.add("identity", 8, {0: 0.5})
    b.add("sinter", 8, {0: 0.55}, amplitude=1e-4)
    first = _summary(_report(study, tmp_path)[0])
    two_se = 2 * (0.5 * 0.5 / 64) ** 0.5  # 0.125
    assert f"about ±{two_se:.3g} (2 s.e.); this gain is within that" in first


def test_summary_names_the_worst_configuration_and_how_many_are_within_noise(tmp_path) -> None:
    study, b = new_study(metric=None)
    study.set_user_attr("loran.setup", {"metric": "accuracy", "directions": ["maximize"],
                                        "task": {"eval_size": 64}})  # fmt: skip
    b.add("identity", 8, {0: 0.5})
    b.add("sinter", 8, {0: 0.55}, amplitude=1e-4)  # +0.05: within ±0.125
    b.add("sinter", 8, {0: 0.5}, amplitude=1e-3)  # 0
    b.add("sinter", 8, {0: 0.3}, amplitude=1e-2)  # -0.2: beyond it
    first = _summary(_report(study, tmp_path)[0])
    assert "Worst configuration: **sinter(amplitude=0.01, frequency=10000) r=8**" in first
    assert "gain **-0.2** (beyond the ±0.125 evaluation noise)" in first
    assert "2 of 3 configurations are within that noise of QLoRA" in first


def test_no_worst_line_when_nothing_is_worse(tmp_path) -> None:
    study, b = new_study()
    b.add("identity", 8, {0: 0.5, 1: 0.6})
    b.add("sinter", 8, {0: 0.55, 1: 0.6}, amplitude=1e-4)
    b.add("sinter", 8, {0: 0.6, 1: 0.7}, amplitude=1e-3)
    assert "Worst configuration" not in _summary(_report(study, tmp_path)[0])


def test_identical_differences_have_no_p_value(tmp_path) -> None:
    study, b = new_study()
    b.add("identity", 8, {0: 0.5, 1: 0.25})
    b.add("sinter", 8, {0: 0.75, 1: 0.5}, amplitude=1e-4)  # +0.25 on both seeds, exactly
    first = _summary(_report(study, tmp_path)[0])
    assert "identical on every seed, so no p-value" in first
    assert "(1 with identical differences on every seed)" in first


def test_only_failed_candidates(tmp_path) -> None:
    study, b = new_study()
    b.add("identity", 8, {0: 0.5, 1: 0.6})
    b.add("sinter", 8, None, amplitude=5e-2, diverged={0: True}, state=TrialState.FAIL,
          failure="seed 0 diverged")  # fmt: skip
    md, _ = _report(study, tmp_path)
    first = _summary(md)
    assert "No candidate configuration has a completed run" in first
    assert "training diverges from amplitude A ≥ 0.05" in first


def test_empty_study(tmp_path) -> None:
    study, _ = new_study()
    md, _ = _report(study, tmp_path, formats=("md", "html", "csv", "json"))
    assert "no trials yet" in md
    assert (tmp_path / "configurations.csv").read_text().startswith("activation,family,rank")
    assert json.loads((tmp_path / "configurations.json").read_text()) == []


def test_older_record_version(tmp_path) -> None:
    study = optuna.create_study(direction="maximize", study_name="old")
    for act, amp, value in (("identity", None, 0.5), ("sinter", 1e-3, 0.55)):
        params = {"activation": act, "rank": 8}
        if amp is not None:
            params["sinter.amplitude"] = amp
        study.add_trial(optuna.trial.create_trial(
            params=params, distributions={k: DIST[k] for k in params}, value=value,
            user_attrs={"seed": 0},
        ))  # fmt: skip
    md, _ = _report(study, tmp_path)
    assert "no record_version (older records)" in md
    # Their seed is known (user_attr 'seed'), so the gain is paired: one seed, no interval.
    assert "gain **+0.05**" in _summary(md)


def test_dashboard_note_and_artifacts_update_in_place(tmp_path) -> None:
    url = f"sqlite:///{tmp_path / 'db.sqlite3'}"
    study, b = new_study(storage=url)
    fill_canonical(b)
    messages: list[str] = []
    write_report(storage=url, study_name="synthetic", out_dir=tmp_path / "r",
                 formats=["html", "csv"], messages=messages)  # fmt: skip
    from optuna_dashboard import get_note

    study = optuna.load_study(study_name="synthetic", storage=url)
    note = get_note(study)
    assert "Best configuration" in note and "artifacts" in note
    metas = optuna.artifacts.get_all_artifact_meta(study)
    names = sorted(m.filename for m in metas)
    assert "report-gain_vs_amplitude.png" in names and "report-report.html" in names
    assert "report-configurations.csv" in names
    adir = tmp_path / "artifacts"  # where `loran-search run`/`dashboard` keep this study's
    assert all((adir / m.artifact_id).stat().st_size > 0 for m in metas)
    # Writing the report again overwrites the same artifacts instead of adding copies.
    write_report(storage=url, study_name="synthetic", out_dir=tmp_path / "r",
                 formats=["html", "csv"], messages=messages)  # fmt: skip
    again = optuna.artifacts.get_all_artifact_meta(optuna.load_study(study_name="synthetic",
                                                                     storage=url))  # fmt: skip
    assert sorted(m.artifact_id for m in again) == sorted(m.artifact_id for m in metas)
    assert any("updated" in m for m in messages)
    # An explicit artifact directory is honoured.
    write_report(storage=url, study_name="synthetic", out_dir=tmp_path / "r", formats=["csv"],
                 artifact_dir=tmp_path / "elsewhere")  # fmt: skip
    assert (tmp_path / "elsewhere").is_dir() and any((tmp_path / "elsewhere").iterdir())


def test_unknown_study_and_missing_database(tmp_path, canonical) -> None:
    with pytest.raises(ReportError, match="It holds: synthetic"):
        write_report(storage=canonical._storage, study_name="nope", out_dir=tmp_path)
    with pytest.raises(ReportError, match="No study database"):
        write_report(storage=f"sqlite:///{tmp_path / 'none.db'}", study_name="x", out_dir=tmp_path)
    assert not (tmp_path / "none.db").exists()


def test_multi_objective_study_on_a_journal_storage(tmp_path) -> None:
    from tests.loran_search.analysis.conftest import Builder

    journal = tmp_path / "s.journal"
    storage = optuna.storages.JournalStorage(
        optuna.storages.journal.JournalFileBackend(str(journal))
    )
    study = optuna.create_study(storage=storage, study_name="mo",
                                directions=["maximize", "minimize"])  # fmt: skip
    study.set_user_attr("loran.setup", {"metric": "accuracy",
                                        "directions": ["maximize", "minimize"]})  # fmt: skip
    b = Builder(study)
    b.add("identity", 8, {0: 0.5, 1: 0.6})
    for amp, vals in ((1e-4, {0: 0.6, 1: 0.65}), (1e-3, {0: 0.5, 1: 0.62}),
                      (1e-2, {0: 0.55, 1: 0.6}), (3e-2, {0: 0.5, 1: 0.5})):  # fmt: skip
        b.add("sinter", 8, vals, amplitude=amp)
    write_report(storage=f"journal:{journal}", study_name="mo", out_dir=tmp_path / "r",
                 formats=["md", "csv"], dashboard=False)  # fmt: skip
    md = (tmp_path / "r" / "report.md").read_text()
    first = _summary(md)
    assert "metric **accuracy** (maximize" in first
    assert "Best configuration: sinter(amplitude=0.0001, frequency=10000) r=8" in first
    assert "gain **+0.075**" in first
    assert "only sinter.amplitude varies, so its importance is trivially 1" in md


def test_amplitude_and_frequency_grid(tmp_path) -> None:
    study, b = new_study()
    b.add("identity", 8, {0: 0.5, 1: 0.6})
    for amp in (1e-4, 1e-3, 1e-2):
        for freq in (1e2, 1e4):
            unstable = amp * freq >= 100
            b.add("sinter", 8, {0: 0.51, 1: 0.62} if not unstable else {0: 0.5},
                  amplitude=amp, frequency=freq, diverged={1: True} if unstable else None,
                  state=TrialState.FAIL if unstable else TrialState.COMPLETE)  # fmt: skip
    md, _ = _report(study, tmp_path)
    first = _summary(md)
    assert "training diverges from amplitude × frequency A·ω ≥ 100" in first
    assert "largest stable A·ω below it: 10" in first
    assert (tmp_path / "plots" / "amp_freq_heatmap.png").stat().st_size > 0


# -- degraded studies: each gets a statement, none a crash ---------------------------------------


def test_a_study_of_failed_trials_only(tmp_path) -> None:
    study, b = new_study()
    b.add("identity", 8, None, state=TrialState.FAIL, failure="error: FileNotFoundError: d.csv")
    b.add("sinter", 8, None, amplitude=1e-3, state=TrialState.FAIL,
          failure="error: FileNotFoundError: d.csv")  # fmt: skip
    md, _ = _report(study, tmp_path / "r")
    assert "No candidate configuration has a completed run" in md
    assert "The baseline at rank 8 has not completed (its trial: error: FileNotFoundError" in md
    assert "2 trials failed with an error" in md


def test_a_study_of_queued_trials_only(tmp_path) -> None:
    study, _ = new_study()
    study.enqueue_trial({"activation": "identity", "rank": 8}, user_attrs={"role": "baseline"})
    study.enqueue_trial({"activation": "sinter", "rank": 8, "sinter.amplitude": 1e-3},
                        user_attrs={"role": "candidate"})  # fmt: skip
    md, _ = _report(study, tmp_path / "r")
    assert "2 trials are queued and have not run yet" in md
    assert "unknown" not in md


def test_queued_grid_points_are_not_unknown_configurations(tmp_path) -> None:
    study, b = new_study()
    b.add("identity", 8, {0: 0.5, 1: 0.6})
    b.add("sinter", 8, {0: 0.6, 1: 0.7}, amplitude=1e-3)
    study.enqueue_trial({"activation": "sinter", "rank": 8, "sinter.amplitude": 1e-2},
                        user_attrs={"role": "candidate"})  # fmt: skip
    md, _ = _report(study, tmp_path / "r")
    assert "unknown()" not in md and "r=?" not in md
    assert "1 trial is queued" in md
    table = pd.read_csv(tmp_path / "r" / "configurations.csv")
    assert list(table["activation"]) == ["sinter"]


def test_infinite_and_nan_values_are_stated_and_never_ranked_best(tmp_path) -> None:
    study, b = new_study()
    b.add("identity", 8, {0: 0.5, 1: 0.6})
    b.add("sinter", 8, {0: float("inf"), 1: 0.62}, amplitude=1e-3)  # an older record
    b.add("sinter", 8, {0: 0.55, 1: 0.65}, amplitude=1e-4)
    b.add("sinter", 8, {0: float("nan"), 1: 0.6}, amplitude=1e-2)
    b.add("sinter", 8, {0: 0.5}, amplitude=5e-2, state=TrialState.FAIL,
          failure="nonfinite: seed 1: accuracy = nan; sinter … gives no finite result")  # fmt: skip
    md, _ = _report(study, tmp_path / "r")
    summary = _summary(md)
    assert "inf" not in summary.split("Best configuration")[1].split("\n")[0]
    assert "Best configuration: sinter(amplitude=0.0001" in summary
    assert "2 runs of completed trials report a non-finite accuracy" in md
    assert "1 trial failed because a seed's accuracy was NaN or infinite" in md
    table = pd.read_csv(tmp_path / "r" / "configurations.csv")
    assert table["gain"].dropna().map(abs).max() < 1


def test_a_retried_trial_is_counted_once(tmp_path) -> None:
    study, b = new_study()
    b.add("identity", 8, {0: 0.5, 1: 0.6})
    b.add("sinter", 8, {0: 0.6}, amplitude=1e-3, state=TrialState.FAIL,
          failure="interrupted: Ctrl-C (SIGINT) during the trial")  # fmt: skip
    b.add("sinter", 8, {0: 0.6, 1: 0.7}, amplitude=1e-3)
    from loran_search.analysis.records import load_records

    rec = load_records(study)
    assert rec.left_out == {"interrupted": 1}
    assert list(rec.trials["state"]) == ["COMPLETE", "COMPLETE"]
    assert len(rec.runs[rec.runs["role"] == "candidate"]) == 2  # the retry's two seeds only
