"""A smoke study end to end on SQLite with the real trainer (glassllm, a few steps).

Everything is real: the config loader, the study, ``loran_search.train.run_training`` on the
embedded glassllm with BBC News, the trial record, the adapter artifact and its reloading.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from optuna.artifacts import get_all_artifact_meta
from optuna.trial import TrialState

from loran_search.search.study import open_study
from loran_search.search.validate import load_config
from loran_search.search.workers import run_worker

ROOT = Path(__file__).resolve().parents[3]


def test_smoke_study_end_to_end(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LORAN_SEARCH_TRAIN_FN", raising=False)
    monkeypatch.chdir(tmp_path)
    cfg = load_config(
        ROOT / "studies" / "smoke.yaml",
        [
            f"study.storage=sqlite:///{tmp_path / 'smoke.db'}",
            "study.n_trials=1",
            "study.seeds=[0, 1]",
            "sinter.amplitude=[1e-2]",
            "training.max_steps=2",
            "training.eval_every=1",
            "task.train_size=8",
            "task.eval_size=8",
            "training.threads=1",
            "study.save_adapters=all",
        ],
    )
    handle = open_study(cfg, log=lambda m: None)
    result = run_worker(handle, log=lambda m: None)
    study = handle.study
    assert result.ran == 2
    base, cand = study.get_trials()
    assert base.state == cand.state == TrialState.COMPLETE
    assert base.user_attrs["role"] == "baseline"
    assert base.params == {"activation": "identity", "rank": 4}
    # the trial record, field by field (DESIGN.md "Trial record")
    assert cand.params == {"activation": "sinter", "rank": 4}  # one amplitude: fixed, not searched
    ua = cand.user_attrs
    assert ua["role"] == "candidate"
    assert ua["record_version"] == 1
    assert ua["activation_spec"] == {
        "name": "sinter",
        "family": "sinter",
        "params": {"amplitude": 1e-2, "frequency": 100.0},
    }
    assert set(ua["seed_metrics"]) == {"0", "1"}
    for m in ua["seed_metrics"].values():
        assert 0.0 <= m["accuracy"] <= 1.0
    assert cand.value == pytest.approx(
        (ua["seed_metrics"]["0"]["accuracy"] + ua["seed_metrics"]["1"]["accuracy"]) / 2
    )
    for seed in ("0", "1"):
        stab = ua["stability"][seed]
        assert {"diverged", "grad_norm_max", "loss_spikes", "final_train_loss"} <= set(stab)
        assert stab["diverged"] is False
        steps = [h["step"] for h in ua["history"][seed]]
        assert steps == [1, 2]
        assert all(isinstance(h["loss"], float) for h in ua["history"][seed])
    cost = ua["cost"]
    assert cost["train_seconds"] > 0 and cost["trainable_params"] > 0
    assert "peak_memory_mb" in cost
    # evaluations every step, seed i at i * max_steps + step: 1, 2, 3, 4
    assert sorted(cand.intermediate_values) == [1, 2, 3, 4]
    # save_adapters: all → every adapter kept, uploaded, and it loads back as a LoRAN adapter
    path = Path(cand.user_attrs["adapter_path"])
    assert (path / "adapter_config.json").is_file()
    names = {m.filename for m in get_all_artifact_meta(cand, storage=handle.storage)}
    assert {f"trial-{cand.number}-metrics.json", "adapter_config.json"} <= names
    saved = json.loads((path / "adapter_config.json").read_text())
    assert saved.get("activation") == "sinter"
    from loran_search.adapters import load_adapter
    from loran_search.models import load_model

    model, _ = load_model(cfg.model)
    peft_model = load_adapter(model, path)
    assert type(peft_model).__name__.startswith("Peft")


def test_a_diverging_configuration_fails_and_the_study_goes_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The real trainer at learning rate 1e3 (searched) diverges; the other points complete."""
    monkeypatch.delenv("LORAN_SEARCH_TRAIN_FN", raising=False)
    monkeypatch.chdir(tmp_path)
    study_file = tmp_path / "div.yaml"
    study_file.write_text(
        "study: {name: div, storage: sqlite:///div.db, sampler: {name: grid}, pruner: {name: none},"
        " n_trials: 2, seeds: [0], report: false, save_adapters: none, baseline: false}\n"
        "model: {name: glassllm, quantization: none}\n"
        "task: {name: bbc-news, train_size: 8, eval_size: 8, max_length: 64}\n"
        "training: {max_steps: 4, learning_rate: 1.0e-3, batch_size: 4, eval_every: 2,"
        " warmup_steps: 0, max_grad_norm: null, threads: 1}\n"
        "search:\n  activations: [sinter]\n  rank: [4]\n  params: {sinter.amplitude: 1.0e-3}\n"
        "  training: {learning_rate: [1.0e-3, 1.0e+3]}\n"
    )
    handle = open_study(load_config(study_file), log=lambda m: None)
    run_worker(handle, log=lambda m: None)
    trials = handle.study.get_trials()
    # no baseline: search.training beside a pinned baseline is refused (issue 21)
    assert [t.state for t in trials] == [TrialState.COMPLETE, TrialState.FAIL]
    bad = trials[1]
    assert bad.params["training.learning_rate"] == 1e3
    assert bad.user_attrs["failure_kind"] == "diverged"
    assert bad.user_attrs["failure"].startswith("diverged: seed 0 diverged at step")
    assert "'learning_rate': 1000.0" in bad.user_attrs["failure"]
    assert bad.user_attrs["stability"]["0"]["diverged"] is True
    assert bad.user_attrs["seed_metrics"] == {}
