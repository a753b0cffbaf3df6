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
