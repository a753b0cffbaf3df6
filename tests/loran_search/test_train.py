"""One training run on glassllm: loss falls, determinism, divergence, the NF4 trap, cleanup, CLI."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from loran_search import train
from loran_search.config import (
    ModelSection,
    StudyConfig,
    TaskSection,
    TrainingSection,
)
from loran_search.record import is_spike
from loran_search.train import (
    RunResult,
    TrainingError,
    lr_factor,
    resolve_training,
    run_training,
)


@pytest.fixture(scope="module", autouse=True)
def _cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    mp = pytest.MonkeyPatch()
    mp.setenv("LORAN_SEARCH_CACHE", str(tmp_path_factory.getbasetemp() / "loran-cache"))
    yield
    mp.undo()
    train.clear_cache()


def make_cfg(quantization: str = "none", **training: Any) -> StudyConfig:
    t = {
        "max_steps": 12,
        "learning_rate": 5e-3,
        "batch_size": 4,
        "eval_every": 0,
        "warmup_steps": 2,
    }
    t.update(training)
    return StudyConfig(
        model=ModelSection(name="glassllm", quantization=quantization),
        task=TaskSection(name="bbc-news", max_length=40, train_size=32, eval_size=10),
        training=TrainingSection(**t),
    )


def run(cfg: StudyConfig, activation: str = "identity", seed: int = 0, **kw: Any) -> RunResult:
    return run_training(
        cfg, activation=activation, activation_params={}, rank=4, seed=seed, progress=False, **kw
    )


def test_loss_falls_and_result_shape() -> None:
    r = run(make_cfg(max_steps=24, zero_shot=True))
    losses = [h["loss"] for h in r.history]
    assert r.status == "completed" and len(losses) == 24
    assert sum(losses[-6:]) / 6 < 0.8 * sum(losses[:6]) / 6
    d = r.to_dict()
    assert set(d["metrics"]) == {"accuracy", "macro_f1", "gold_logprob_mean"}
    assert set(d["zero_shot"]) == set(d["metrics"])
    assert d["eval_split"] == "val" == d["data"]["eval_split"]  # the search never sees test
    assert len(d["examples"]) == 10 and len({e["id"] for e in d["examples"]}) == 10
    # identity = QLoRA: its effective non-linearity is exactly 0, on every layer
    mech = d["mechanism"]
    assert mech["n_layers"] == 8 and mech["nonlinearity_max"] == 0.0 and mech["inert"] is True
    assert mech["nonlinearity_pooled"] == 0.0 and mech["seconds"] >= 0
    assert len(mech["p_quantiles"]) == 257 and mech["p_quantiles"] == sorted(mech["p_quantiles"])
    assert mech["p_entries"] == 4 * (128 * 128 + 64 * 128) and mech["p_rms_median"] > 0
    assert set(d["stability"]) == {
        "diverged",
        "diverged_at_step",
        "grad_norm_max",
        "loss_spikes",
        "final_train_loss",
    }
    assert {"train_seconds", "peak_memory_mb", "trainable_params"} <= set(d["cost"])
    # LoRA r=4 on q_proj (128→128) and v_proj (128→64) in 4 layers: 4·(4·128+4·128 + 4·128+4·64)
    assert d["cost"]["trainable_params"] == 4 * (4 * 256 + 4 * 192)
    assert d["data"]["truncation"]["train_inputs"] == 32  # articles ≫ 40 tokens: all counted
    assert d["stability"]["final_train_loss"] == pytest.approx(sum(losses[-10:]) / 10)
    json.dumps(d)


def test_same_seed_same_result_other_seed_differs() -> None:
    cfg = make_cfg(max_steps=6, eval_every=3)
    a, b = run(cfg, seed=3), run(cfg, seed=3)
    assert [h["loss"] for h in a.history] == [h["loss"] for h in b.history]
    assert a.metrics == b.metrics and a.history[2]["accuracy"] == b.history[2]["accuracy"]
    c = run(cfg, seed=4)
    assert [h["loss"] for h in c.history] != [h["loss"] for h in a.history]


def test_huge_learning_rate_diverges() -> None:
    r = run(make_cfg(max_steps=30, learning_rate=1e4, warmup_steps=0, max_grad_norm=None))
    assert r.status == "diverged"
    assert r.stability["diverged"] is True and r.metrics == {}
    step = r.stability["diverged_at_step"]
    assert isinstance(step, int) and step == len(r.history)
    last = r.history[-1]
    finite = math.isfinite(last["loss"]) and math.isfinite(last["grad_norm"])
    assert not finite or last["loss"] > 10.0 * r.history[0]["loss"]
    json.dumps(r.to_dict(), allow_nan=False)  # NaN/inf → null in the JSON result
    assert r.examples == [] and r.mechanism["n_layers"] == 8  # figures of what it reached
    assert len(r.to_dict()["mechanism"]["p_quantiles"]) == 257


def test_nf4_train_after_eval_still_updates_weights(tmp_path: Path) -> None:
    # ASSETS.md trap: an eval-mode forward on a 4-bit layer must not freeze its gradients.
    cfg = make_cfg("nf4", max_steps=4, zero_shot=True)
    r = run(cfg, adapter_dir=tmp_path / "adapter")
    assert r.zero_shot is not None  # an evaluation pass on the NF4 base came first
    assert all(h["grad_norm"] > 0 for h in r.history)
    from safetensors.torch import load_file

    weights = load_file(str(tmp_path / "adapter" / "adapter_model.safetensors"))
    b_mats = [v for k, v in weights.items() if "lora_B" in k]
    assert b_mats and all(float(v.abs().max()) > 0 for v in b_mats)  # B starts at 0
    assert r.adapter_path == str((tmp_path / "adapter").resolve())


def test_adapter_is_fully_removed_and_base_reused() -> None:
    cfg = make_cfg(max_steps=3)
    base, _ = train.get_model(cfg)
    before = {k: v.clone() for k, v in base.state_dict().items()}
    r1 = run(cfg, activation="sinter", seed=1)
    assert train.get_model(cfg)[0] is base  # cached, not reloaded
    assert not any("lora" in n for n, _ in base.named_modules())
    after = base.state_dict()
    assert before.keys() == after.keys()
    assert all(torch.equal(before[k], after[k]) for k in before)
    r2 = run(cfg, activation="sinter", seed=1)
    assert r1.history[0]["loss"] == r2.history[0]["loss"]


def test_on_eval_calls_and_exceptions_propagate_after_cleanup() -> None:
    cfg = make_cfg(max_steps=6, eval_every=2)
    calls: list[tuple[int, dict[str, float]]] = []
    r = run(cfg, on_eval=lambda s, m: calls.append((s, m)))
    assert [s for s, _ in calls] == [2, 4, 6] and calls[-1][1] == r.metrics
    assert "accuracy" in r.history[1] and "accuracy" not in r.history[0]

    class Pruned(Exception):
        pass

    def prune(step: int, metrics: dict[str, float]) -> None:
        raise Pruned(step)

    with pytest.raises(Pruned):
        run(cfg, on_eval=prune)
    base, _ = train.get_model(cfg)
    assert not any("lora" in n for n, _ in base.named_modules())


def test_eval_split_keyword_per_example_outcomes_and_stable_ids() -> None:
    from loran_search.tasks.data import load_splits, row_id

    cfg = make_cfg(max_steps=3)
    val = run(cfg)
    test = run(cfg, eval_split="test")
    again = run(cfg, eval_split="test")
    assert (val.eval_split, test.eval_split) == ("val", "test")
    splits = load_splits(cfg.task, "label")
    ids = {k: {row_id(r) for r in v} for k, v in splits.items()}
    assert {e["id"] for e in val.examples} <= ids["val"]
    assert {e["id"] for e in test.examples} <= ids["test"]
    assert {e["id"] for e in again.examples} == {e["id"] for e in test.examples}  # same ids
    assert test.examples == again.examples  # same seed, same outcomes
    # training does not depend on the evaluated split
    assert [h["loss"] for h in val.history] == [h["loss"] for h in test.history]
    for r in (val, test):
        n = len(r.examples)
        assert n == 10 and r.metrics["accuracy"] == sum(e["correct"] for e in r.examples) / n
        assert r.metrics["gold_logprob_mean"] == sum(e["gold_logprob"] for e in r.examples) / n
        assert all(
            e["pred"] in {"business", "entertainment", "politics", "sports", "tech"}
            for e in r.examples
        )
    d = json.loads(json.dumps(test.to_dict(), allow_nan=False))
    assert d["examples"] == test.examples and d["eval_split"] == "test"
    # the search's seam reads the result as before: extra fields change nothing there
    from loran_search.search.objective import RunOutcome

    outcome = RunOutcome.from_result(test)
    assert outcome.metrics == test.metrics and outcome.status == "completed"


def test_summarization_run_per_example_outcomes(tmp_path: Path) -> None:
    rows = [
        {"document": "Alice said " * (i % 4 + 1), "summary": "the cat " * (i % 3 + 1)}
        for i in range(24)
    ]
    (tmp_path / "s.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    cfg = StudyConfig(
        model=ModelSection(name="glassllm", quantization="none"),
        task=TaskSection(
            name=str(tmp_path / "s.jsonl"),
            type="summarization",
            max_length=40,
            max_new_tokens=8,
            train_size=None,
            eval_size=None,
        ),
        training=TrainingSection(max_steps=2, learning_rate=5e-3, batch_size=4, eval_every=0),
    )
    r = run(cfg)
    assert r.status == "completed" and r.eval_split == "val"
    assert len(r.examples) == 3  # 24 rows: test 5, val ceil(19/8) = 3, train 16
    assert r.data["notes"] and "train/val/test 16/3/5" in r.data["notes"][0]
    n = len(r.examples)
    for k in ("rouge1", "rouge2", "rougeL"):
        assert r.metrics[k] == sum(e[k] for e in r.examples) / n
    assert r.metrics["summary_loss"] == sum(e["loss"] for e in r.examples) / n > 0
    assert {e["id"] for e in r.examples} <= {str(i) for i in range(24)}


def test_mechanism_of_a_nonlinear_adapter_and_its_prediction() -> None:
    from activations import get_activation

    cfg = make_cfg(max_steps=6)
    params = {"amplitude": 1.0, "frequency": 100.0}  # A·ω = 100: far from inert
    r = run_training(
        cfg, activation="sinter", activation_params=params, rank=4, seed=0, progress=False
    )
    mech = r.mechanism
    assert mech["n_layers"] == 8 and mech["inert"] is False and mech["nonlinearity_median"] > 0.01
    assert mech["omega_p_rms_median"] == pytest.approx(100.0 * mech["p_rms_median"], rel=0.3)
    assert {lay["module"].rsplit(".", 1)[-1] for lay in mech["layers"]} == {"q_proj", "v_proj"}
    predicted = train.predict_nonlinearity_from_quantiles(
        mech["p_quantiles"], get_activation("sinter", **params)
    )
    assert predicted == pytest.approx(mech["nonlinearity_pooled"], rel=0.05)
    identity = train.predict_nonlinearity_from_quantiles(
        mech["p_quantiles"], get_activation("identity")
    )
    assert identity == 0.0


@pytest.mark.parametrize("rank", [1, 8])
def test_prediction_from_quantiles_matches_a_layer(rank: int) -> None:
    from activations import get_activation
    from loran_search.adapters import telemetry

    g = torch.Generator().manual_seed(rank)
    A = torch.randn(rank, 256, generator=g) / 16
    B = torch.randn(256, rank, generator=g) * 0.01
    q = train.p_quantiles(B @ A)
    assert q == pytest.approx(np.quantile((B @ A).double().numpy(), np.linspace(0, 1, 257)))
    rms = float((B @ A).pow(2).mean().sqrt())
    for omega_rms, rel in ((0.1, 0.03), (1.0, 0.03), (10.0, 0.06)):
        f = get_activation("sinter", amplitude=0.5, frequency=omega_rms / rms)
        nu = telemetry.layer_mechanism(A, B, 2.0, f, omega_rms / rms)["nonlinearity"]
        assert train.predict_nonlinearity_from_quantiles(q, f) == pytest.approx(nu, rel=rel)
    f = get_activation("sinter", amplitude=0.5, frequency=1.0 / rms)
    assert train.predict_nonlinearity_from_quantiles([0.0] * 257, f) == 0.0
    assert math.isnan(train.predict_nonlinearity_from_quantiles([None] * 257, f))


def test_mechanism_of_nonfinite_factors_is_nan_never_an_exception() -> None:
    from activations import get_activation

    f = get_activation("sinter", amplitude=1.0, frequency=100.0)
    good = train.LayerFactors("good", torch.randn(4, 32), torch.randn(16, 4) * 1e-2, 4.0, f, 100.0)
    bad_b = torch.randn(16, 4)
    bad_b[0, 0] = float("nan")
    bad = train.LayerFactors("bad", torch.randn(4, 32), bad_b, 4.0, f, 100.0)
    mech = train.mechanism_figures([good, bad])
    assert mech["n_layers"] == 2 and mech["nonfinite_layers"] == 1
    assert math.isnan(mech["layers"][1]["nonlinearity"]) and mech["nonlinearity_max"] > 0
    assert all(math.isnan(v) for v in mech["p_quantiles"]) and len(mech["p_quantiles"]) == 257
    assert math.isnan(mech["nonlinearity_pooled"])
    result = RunResult("diverged", {}, None, {}, {}, [], mechanism=mech)
    out = json.loads(json.dumps(result.to_dict(), allow_nan=False))
    assert out["mechanism"]["p_quantiles"] == [None] * 257
    assert train.mechanism_figures([]) == {}


def test_schedule_and_spike_definitions() -> None:
    t = TrainingSection(max_steps=10, warmup_steps=2, schedule="cosine")
    assert [lr_factor(k, t) for k in (1, 2)] == [0.5, 1.0]
    assert lr_factor(6, t) == pytest.approx(0.5)  # u = 4/8 → ½(1+cos(π/2))
    assert lr_factor(10, t) == pytest.approx(0.0)
    lin = TrainingSection(max_steps=10, warmup_steps=0, schedule="linear")
    assert lr_factor(5, lin) == pytest.approx(0.5)
    assert lr_factor(7, TrainingSection(max_steps=10, schedule="constant")) == 1.0
    assert not is_spike(100.0, [1.0, 1.0], 2.0)  # fewer than 3 previous steps
    assert is_spike(2.1, [1.0, 1.0, 1.0], 2.0) and not is_spike(2.0, [1.0, 1.0, 1.0], 2.0)
    # only the last 10 losses count: an old high loss does not raise the median
    assert is_spike(2.5, [100.0] * 5 + [1.0] * 10, 2.0)


def test_bad_training_settings() -> None:
    base = TrainingSection()
    with pytest.raises(TrainingError, match=r"unknown training setting \['lr'\]"):
        resolve_training(base, {"lr": 1e-3})
    with pytest.raises(TrainingError, match="schedule 'cosin' is not one of cosine"):
        resolve_training(base, {"schedule": "cosin"})
    with pytest.raises(TrainingError, match="max_steps must be ≥ 1"):
        resolve_training(base, {"max_steps": 0})
    with pytest.raises(TrainingError, match="learning_rate must be > 0"):
        resolve_training(base, {"learning_rate": -1.0})


STUDY = """\
# Run: loran-search train {path}
study: {{name: t, seeds: [0]}}
model: {{name: glassllm, quantization: none}}
task: {{name: bbc-news, type: classification, max_length: 40, train_size: 16, eval_size: 6}}
training: {{max_steps: 3, learning_rate: 5.0e-3, batch_size: 4, eval_every: 0}}
search: {{activations: [sinter], rank: [4]}}
"""


def test_cli_train_json_table_and_divergence(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from loran_search.cli import main

    path = tmp_path / "s.yaml"
    path.write_text(STUDY.format(path=path))
    argv = ["train", str(path), "--format", "json", "--set", "sinter.amplitude=1e-3"]
    assert main([*argv, "--save-adapter", str(tmp_path / "ad")]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["status"] == "completed" and out["run"]["activation_params"]["amplitude"] == 1e-3
    assert (tmp_path / "ad" / "adapter_config.json").is_file()
    assert main(["train", str(path), "--seed", "2"]) == 0
    table = capsys.readouterr().out
    assert "status: completed" in table and "truncation (max_length=40)" in table
    diverge = ["--set", "training.learning_rate=1e4", "--set", "training.max_steps=30"]
    diverge += ["--set", "training.warmup_steps=0", "--set", "training.max_grad_norm=null"]
    assert main(["train", str(path), "--format", "json", *diverge]) == 0  # a result, exit 0
    assert json.loads(capsys.readouterr().out)["status"] == "diverged"
    assert main(["train", str(path), "--set", "task.name=bbc-nws"]) == 2
    assert "Did you mean 'bbc-news'" in capsys.readouterr().err


def test_loss_on_kept_logits_equals_full_right_padded_loss(tmp_path: Path) -> None:
    from loran_search.tasks.base import IGNORE, pad_batch

    rows = [
        {"document": "Alice said " * (i + 1), "summary": "the cat " * (i % 3 + 1)}
        for i in range(10)
    ]
    (tmp_path / "v.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    cfg = StudyConfig(
        model=ModelSection(name="glassllm", quantization="none"),
        task=TaskSection(
            name=str(tmp_path / "v.jsonl"),
            type="summarization",
            max_length=64,
            max_new_tokens=16,
            train_size=None,
            eval_size=None,
        ),
    )
    model, tok = train.get_model(cfg)
    batch = train.get_task(cfg).train_examples[:5]
    assert len({len(e.input_ids) for e in batch}) > 1  # real padding
    with torch.no_grad():
        kept = train._loss(model, batch, tok.pad_token_id, "cpu")
        enc = pad_batch(
            [e.input_ids for e in batch],
            tok.pad_token_id,
            left=False,
            labels=[e.labels for e in batch],
        )
        logits = model(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"]).logits
        full = torch.nn.functional.cross_entropy(
            logits[:, :-1].flatten(0, 1), enc["labels"][:, 1:].flatten(), ignore_index=IGNORE
        )
    assert float(kept) == pytest.approx(float(full), abs=1e-5)


@pytest.mark.slow
def test_smollm2_nf4_short_run_after_zero_shot() -> None:
    cfg = StudyConfig(
        model=ModelSection(name="smollm2-135m", quantization="nf4"),
        task=TaskSection(name="bbc-news", max_length=64, train_size=16, eval_size=8),
        training=TrainingSection(
            max_steps=3, learning_rate=1e-3, batch_size=4, eval_every=0, zero_shot=True
        ),
    )
    r = run_training(cfg, activation="sinter", activation_params={}, rank=4, seed=0, progress=False)
    assert r.status == "completed" and r.zero_shot is not None
    assert all(h["grad_norm"] > 0 for h in r.history)
    train.clear_cache()


def test_gradient_checkpointing_gives_the_same_run() -> None:
    cfg = make_cfg("nf4", max_steps=2)
    plain = run(cfg)
    cfg.model.gradient_checkpointing = True
    ckpt = run(cfg)
    assert [h["loss"] for h in ckpt.history] == pytest.approx([h["loss"] for h in plain.history])
    assert all(h["grad_norm"] > 0 for h in ckpt.history)


def test_save_adapter_and_seed_are_checked_before_training(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from loran_search.cli import main

    def no_training(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("training started")

    monkeypatch.setattr(train, "run_training", no_training)
    path = tmp_path / "s.yaml"
    path.write_text(STUDY.format(path=path))
    existing = tmp_path / "adapter.bin"
    existing.write_text("x")
    assert main(["train", str(path), "--save-adapter", str(existing)]) == 2
    err = capsys.readouterr().err
    assert f"--save-adapter {existing}: That is an existing file, not a folder" in err
    assert "Traceback" not in err
    assert main(["train", str(path), "--save-adapter", str(existing / "sub")]) == 2
    assert "is a file, so no folder can be created below it" in capsys.readouterr().err
    assert main(["train", str(path), "--seed", str(2**32)]) == 2
    assert "--seed 4294967296: Outside 0 … 2³² − 1" in capsys.readouterr().err
    # with a bad study file too: every error at once
    bad = tmp_path / "bad.yaml"
    bad.write_text(STUDY.format(path=bad).replace("seeds: [0]", "seeds: [-1]"))
    assert main(["train", str(bad), "--save-adapter", str(existing)]) == 2
    err = capsys.readouterr().err
    assert "2 errors" in err and "study.seeds[0]" in err and "--save-adapter" in err
    with pytest.raises(TrainingError, match="seed -1 is outside"):
        run_training(make_cfg(), activation="identity", activation_params={}, rank=4, seed=-1)


def test_targets_and_rank_are_checked_on_the_loaded_model_before_training(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from loran_search import models
    from loran_search.cli import main

    cfg = make_cfg()
    cfg.adapter.target_modules = ["q_prj", "v_proj"]
    with pytest.raises(
        TrainingError, match=r"adapter\.target_modules\[0\]: .*Did you mean 'q_proj'"
    ):
        run(cfg)
    cfg.adapter.target_modules = ["v_proj"]
    with pytest.raises(TrainingError, match=r"rank: Rank 65 exceeds .* min\(d_in, d_out\) = 64"):
        run_training(cfg, activation="identity", activation_params={}, rank=65, seed=0)
    # a model the study-file check could not describe (an asset built only by the run): the
    # run refuses it after loading, before training, through the command line too
    monkeypatch.setattr(models, "describe_model", lambda section: None)
    path = tmp_path / "s.yaml"
    path.write_text(STUDY.format(path=path))
    assert main(["train", str(path), "--set", "adapter.target_modules=[q_prj]"]) == 2
    err = capsys.readouterr().err
    assert "loran-search: error: adapter.target_modules[0]: The model has no module" in err
    assert "Traceback" not in err


def test_cli_train_data_file_with_a_bad_byte_late_in_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from loran_search.cli import main

    rows = [json.dumps({"text": "word " * 20, "label": str(i % 2)}) for i in range(1000)]
    data = tmp_path / "late.jsonl"
    data.write_bytes("\n".join(rows).encode() + b'\n{"text": "caf\xe9", "label": "0"}\n')
    path = tmp_path / "s.yaml"
    path.write_text(STUDY.format(path=path).replace("name: bbc-news", f"name: {data}"))
    assert main(["train", str(path)]) == 2
    err = capsys.readouterr().err
    assert f"the data file {data} is not UTF-8 text: byte 0xe9 at offset" in err
    assert "(line 1001)" in err and "Save it as UTF-8" in err


def test_progress_without_a_terminal_is_a_line_naming_the_run(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from loran_search.console import RunLabel, run_label

    monkeypatch.setenv("LORAN_SEARCH_PROGRESS_SECONDS", "0")  # a line every step
    with run_label(RunLabel(trial=4, phase="search", seed=0, index=1, of=2)):
        run_training(make_cfg(max_steps=3), activation="identity", activation_params={},
                     rank=4, seed=0, progress=True)  # fmt: skip
    lines = [x for x in capsys.readouterr().err.splitlines() if x.startswith("[progress]")]
    assert len(lines) == 3, lines
    for step, line in enumerate(lines, 1):
        head = (
            f"[progress] trial 4 · search · seed 0 (1/2): step {step}/3 ({100 * step / 3:.0f}%), "
        )
        assert line.startswith(head) and ", elapsed " in line and ", ETA " in line
        assert ", loss " in line and ", lr " in line
