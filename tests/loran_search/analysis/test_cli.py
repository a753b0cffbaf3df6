"""`loran-search report` end to end on a SQLite study."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest

from loran_search.cli import main
from tests.loran_search.analysis.conftest import fill_canonical, new_study

STUDY_YAML = """\
# Run: loran-search run {path}
imports: []
study:
  name: synthetic
  storage: {url}
  metric: accuracy
  direction: maximize
  n_trials: 3
  seeds: [0, 1, 2]
  baseline: true
model: {{name: smollm2-135m, quantization: nf4, compute_dtype: float32}}
task: {{name: bbc-news, type: classification, max_length: 128, train_size: 64, eval_size: 32}}
adapter: {{target_modules: [q_proj, v_proj], alpha: 16, dropout: 0.05}}
training: {{max_steps: 10, learning_rate: 2.0e-4, batch_size: 8, eval_every: 5}}
search:
  activations: [sinter]
  rank: [8]
  params:
    sinter.amplitude: {{low: 1.0e-6, high: 1.0e-1, log: true}}
    sinter.frequency: 1.0e4
"""


@pytest.fixture
def sqlite_study(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'study.db'}"
    _, b = new_study(storage=url)
    fill_canonical(b)
    return url


def test_report_from_storage_and_study(sqlite_study, tmp_path, capsys) -> None:
    out = tmp_path / "rep"
    code = main(["report", "--storage", sqlite_study, "--study", "synthetic", "--out", str(out)])
    assert code == 0
    printed = capsys.readouterr()
    assert "Best configuration: sinter(amplitude=0.001" in printed.out
    assert "wrote" in printed.err and "study note saved" in printed.err
    for name in ("report.html", "report.md", "configurations.csv", "configurations.json"):
        assert (out / name).stat().st_size > 0
    from optuna_dashboard import get_note

    assert "Best configuration" in get_note(
        optuna.load_study(study_name="synthetic", storage=sqlite_study)
    )


def test_report_from_study_file_with_format_and_no_dashboard(sqlite_study, tmp_path) -> None:
    yml = tmp_path / "study.yaml"
    yml.write_text(STUDY_YAML.format(path=yml, url=sqlite_study))
    out = tmp_path / "only-csv"
    code = main(["report", str(yml), "--out", str(out), "--format", "csv", "--format", "json",
                 "--no-dashboard"])  # fmt: skip
    assert code == 0
    assert sorted(p.name for p in out.iterdir()) == [
        "baselines.csv", "configurations.csv", "configurations.json", "families.csv",
        "importance.csv", "pareto.csv", "report.json",
    ]  # fmt: skip
    from optuna_dashboard import get_note

    assert get_note(optuna.load_study(study_name="synthetic", storage=sqlite_study)) == ""


def test_report_errors_are_clear(sqlite_study, tmp_path, capsys) -> None:
    assert main(["report"]) == 2
    assert "--storage URL --study NAME" in capsys.readouterr().err
    assert main(["report", "--storage", sqlite_study, "--study", "other"]) == 2
    assert "It holds: synthetic" in capsys.readouterr().err
    assert main(["report", str(tmp_path / "missing.yaml")]) == 2
    assert "No study file" in capsys.readouterr().err
    missing_db = f"sqlite:///{tmp_path / 'nothing.db'}"
    assert main(["report", "--storage", missing_db, "--study", "x"]) == 2
    assert "No study database" in capsys.readouterr().err


def test_activations_audit_and_plot_default_to_the_studys_visited_range(tmp_path, capsys) -> None:
    import json

    from tests.loran_search.analysis.conftest import mechanism_figures

    url = f"sqlite:///{tmp_path / 'mech.db'}"
    _, b = new_study(storage=url)
    b.add("identity", 8, {0: 0.5, 1: 0.6}, mechanism=0.0)
    mech = {0: mechanism_figures(0.01, 0.02), 1: mechanism_figures(0.01, 0.04)}
    b.add("sinter", 8, {0: 0.52, 1: 0.61}, amplitude=1e-3, mechanism=mech)
    yml = tmp_path / "study.yaml"
    yml.write_text(STUDY_YAML.format(path=yml, url=url))
    assert main(["activations", "audit", "sinter", "--study", str(yml), "--format", "json"]) == 0
    captured = capsys.readouterr()
    # the baseline's |P| reaches 0.05: the range holds every search trial's P, the baseline's too
    # (loran_search.record.visited_bound, the rule the search screens forms on)
    assert json.loads(captured.out)[0]["interval"] == pytest.approx([-0.05, 0.05])
    assert "interval from study 'synthetic': the visited range of P, ±0.05" in captured.err
    # --interval still overrides the study's range
    args = ["activations", "audit", "sinter", "--study", str(yml), "--interval=-2,2",
            "--format", "json"]  # fmt: skip
    assert main(args) == 0
    assert json.loads(capsys.readouterr().out)[0]["interval"] == [-2.0, 2.0]
    out = tmp_path / "f.png"
    assert main(["activations", "plot", "sinter", "--study", str(yml), "--out", str(out)]) == 0
    assert out.stat().st_size > 0 and "±0.05" in capsys.readouterr().err


def test_activations_audit_with_an_older_study_keeps_the_unit_interval(
    sqlite_study, tmp_path, capsys
) -> None:
    import json

    yml = tmp_path / "study.yaml"
    yml.write_text(STUDY_YAML.format(path=yml, url=sqlite_study))
    assert main(["activations", "audit", "sinter", "--study", str(yml), "--format", "json"]) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out)[0]["interval"] == [-1.0, 1.0]
    assert "no run records the visited scale of P (older records)" in captured.err
    assert main(["activations", "audit", "sinter", "--study", str(tmp_path / "no.yaml")]) == 2
    assert "No study file" in capsys.readouterr().err
