"""``validate`` knows what can be known without training; ``run``/``train`` check the same first.

Every case goes through the command line (``loran_search.cli.main`` or the console script): the
exit code, the location (``FILE:LINE dotted.path``) and the message, and never a traceback.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from loran_search.cli import main
from loran_search.config import ConfigError
from loran_search.search.validate import load_config

BASE = """\
study:
  name: t
  storage: sqlite:///{db}
  metric: accuracy
  sampler: {{name: tpe, seed: 0}}
  pruner: {{name: median}}
  n_trials: 3
  seeds: [0]
model: {{name: glassllm, quantization: none}}
task: {{name: bbc-news, train_size: 16, eval_size: 8}}
adapter: {{target_modules: [q_proj, v_proj]}}
training: {{max_steps: 4, eval_every: 2, learning_rate: 1.0e-3}}
search:
  activations: [sinter]
  rank: [4]
"""
SUMMARIZATION = "task: {name: aclsum, type: summarization, max_length: 96, max_new_tokens: 32}"


@pytest.fixture(scope="module", autouse=True)
def _cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    mp = pytest.MonkeyPatch()
    root = tmp_path_factory.getbasetemp() / "loran-cache"
    mp.setenv("LORAN_SEARCH_CACHE", str(root))
    yield root
    mp.undo()


@pytest.fixture
def study(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """``study(replacements…) -> path``: BASE with ``(old, new)`` replacements, in tmp_path."""
    monkeypatch.chdir(tmp_path)
    db = tmp_path / "never" / "created.db"

    def write(*replacements: tuple[str, str], name: str = "s.yaml") -> Path:
        text = BASE.format(db=db)
        for old, new in replacements:
            assert old in text, old
            text = text.replace(old, new, 1)
        path = tmp_path / name
        path.write_text(text, encoding="utf-8")
        return path

    write.db = db  # type: ignore[attr-defined]
    return write


def validate(capsys: pytest.CaptureFixture[str], path: Path, *overrides: str) -> tuple[int, str]:
    """``loran-search validate PATH [--set …]`` in-process: ``(exit code, stderr)``."""
    args = ["validate", str(path)]
    for o in overrides:
        args += ["--set", o]
    code = main(args)
    out = capsys.readouterr()
    assert "Traceback" not in out.err + out.out
    return code, out.err


def assert_error(
    capsys: pytest.CaptureFixture[str], path: Path, where: str, what: str, *overrides: str
) -> str:
    """Exit 2 from ``validate`` with ``where`` and ``what`` on one line; ``load_config`` agrees."""
    code, err = validate(capsys, path, *overrides)
    assert code == 2, err
    lines = [line for line in err.splitlines() if where in line]
    assert lines and any(what in line for line in lines), err
    with pytest.raises(ConfigError, match=None) as info:
        load_config(path, list(overrides))
    assert what in str(info.value)
    return err


def test_base_study_is_valid(capsys, study) -> None:
    code, err = validate(capsys, study())
    assert code == 0, err
    assert not study.db.parent.exists()


# -- A1: NaN and infinity ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("old", "new", "where"),
    [
        ("learning_rate: 1.0e-3", "learning_rate: .nan", "s.yaml:12 training.learning_rate"),
        ("learning_rate: 1.0e-3", "learning_rate: .inf", "s.yaml:12 training.learning_rate"),
        ("v_proj]}", "v_proj], alpha: -.inf}", "s.yaml:11 adapter.alpha"),
        ("max_steps: 4,", "max_steps: 4, max_grad_norm: 1e999,", "training.max_grad_norm"),
        ("seed: 0}", "seed: 0, gamma: .nan}", "s.yaml:5 study.sampler.gamma"),
        (
            "rank: [4]",
            "rank: [4]\n  params:\n    sinter.amplitude: {low: .nan, high: 1.0e-2}",
            "s.yaml:17 search.params.sinter.amplitude.low",
        ),
        (
            "rank: [4]",
            "rank: [4]\n  training:\n    learning_rate: {low: 1.0e-5, high: .inf}",
            "search.training.learning_rate.high",
        ),
    ],
)
def test_nan_and_inf_are_refused(capsys, study, old: str, new: str, where: str) -> None:
    err = assert_error(capsys, study((old, new)), where, "A number must be finite")
    assert err.count("must be finite") == 1, err  # one error per number, nothing derived


def test_nan_from_the_command_line(capsys, study) -> None:
    assert_error(
        capsys,
        study(),
        "--set training.learning_rate",
        "A number must be finite, but got .nan",
        "training.learning_rate=.nan",
    )


# -- A2: the metric must be one the task type produces ----------------------------------------


def test_metric_the_task_type_does_not_produce(capsys, study) -> None:
    path = study(("task: {name: bbc-news, train_size: 16, eval_size: 8}", SUMMARIZATION))
    err = assert_error(
        capsys,
        path,
        "s.yaml:4 study.metric",
        "Task type 'summarization' does not produce the metric 'accuracy'.",
    )
    assert "Its metrics: rouge1, rouge2, rougeL, rouge_l." in err
    path = study(
        ("task: {name: bbc-news, train_size: 16, eval_size: 8}", SUMMARIZATION),
        ("metric: accuracy", "metric: rouge_L"),
    )
    assert_error(capsys, path, "study.metric", "Did you mean 'rougeL'?")
    path = study(("metric: accuracy", "metric: rougeL"))
    assert_error(capsys, path, "study.metric", "Its metrics: accuracy, macro_f1.")
    ok = study(
        ("task: {name: bbc-news, train_size: 16, eval_size: 8}", SUMMARIZATION),
        ("metric: accuracy", "metric: rouge_l"),
    )
    assert validate(capsys, ok)[0] == 0


def test_objectives_are_cost_figures(capsys, study) -> None:
    path = study(("n_trials: 3", "n_trials: 3\n  objectives: [macro_f1]"))
    assert_error(capsys, path, "study.objectives[0]", "Unknown objective 'macro_f1'")


# -- A3: room for the prompt ------------------------------------------------------------------


def test_summarization_generation_budget_leaves_room_for_the_prompt(capsys, study) -> None:
    path = study(
        ("task: {name: bbc-news, train_size: 16, eval_size: 8}", SUMMARIZATION),
        ("metric: accuracy", "metric: rougeL"),
        ("max_new_tokens: 32", "max_new_tokens: 96"),
    )
    assert_error(capsys, path, "s.yaml:10 task.max_new_tokens", "must be below `max_length` (96)")


# -- A4: target modules and rank against the model's layers ------------------------------------


def test_empty_target_modules(capsys, study) -> None:
    path = study(("target_modules: [q_proj, v_proj]", "target_modules: []"))
    assert_error(capsys, path, "s.yaml:11 adapter.target_modules", "`target_modules` is empty")


def test_unknown_target_module_with_did_you_mean(capsys, study) -> None:
    path = study(("[q_proj, v_proj]", "[q_prj, v_proj, self_attn]"))
    err = assert_error(
        capsys,
        path,
        "s.yaml:11 adapter.target_modules[0]",
        "The model has no module named 'q_prj'. Did you mean 'q_proj'?",
    )
    assert "Its linear layers: q_proj, k_proj, v_proj, o_proj" in err
    assert "adapter.target_modules[2]" in err and "a LlamaAttention, not a linear layer" in err


def test_rank_above_the_narrowest_adapted_layer(capsys, study) -> None:
    # glassllm: q_proj is 128 → 128, v_proj 128 → 64 (grouped-query attention)
    path = study(("rank: [4]", "rank: [4, 65]"))
    assert_error(capsys, path, "s.yaml:15 search.rank[1]", "min(d_in, d_out) = 64")
    ok = study(("rank: [4]", "rank: [65]"), ("[q_proj, v_proj]", "[q_proj]"))
    assert validate(capsys, ok)[0] == 0


def test_local_model_is_described_from_its_config_alone(capsys, study, tmp_path: Path) -> None:
    from loran_search.assets import ensure

    folder = tmp_path / "my-model"
    folder.mkdir()
    shutil.copy(ensure("glassllm", progress=False) / "config.json", folder / "config.json")
    path = study(("name: glassllm,", f"name: {folder},"), ("[q_proj, v_proj]", "[q_prj]"))
    assert_error(capsys, path, "adapter.target_modules[0]", "Did you mean 'q_proj'?")
    (folder / "config.json").write_text("{not json")
    assert_error(capsys, study(("name: glassllm,", f"name: {folder},")), "model.name", "not valid")


def test_models_that_cannot_be_described_cheaply_are_skipped(
    capsys, study, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # an embedded model that is not built and not cheap to build, and a hub id not in the HF
    # cache (offline): nothing to read, so no error; run/train check after loading
    monkeypatch.setenv("LORAN_SEARCH_CACHE", str(tmp_path / "empty-cache"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-hf"))
    for model in ("smollm2-135m", "nobody-here/not-a-model"):
        path = study(("name: glassllm,", f"name: {model},"), ("[q_proj, v_proj]", "[q_prj]"))
        code, err = validate(capsys, path)
        assert code == 0, err
    assert not (tmp_path / "empty-cache" / "assets" / "smollm2-135m").exists()


def test_unknown_model_name_is_found_by_validate(capsys, study) -> None:
    path = study(("name: glassllm,", "name: glasslm,"))
    assert_error(capsys, path, "s.yaml:9 model.name", "Did you mean 'glassllm'?")


def test_max_length_beyond_the_model_context(capsys, study) -> None:
    path = study(("train_size: 16,", "train_size: 16, max_length: 512,"))
    assert_error(capsys, path, "task.max_length", "exceeds the model's context of 128 tokens")


# -- A5: the data source ----------------------------------------------------------------------


def test_missing_local_data_file(capsys, study) -> None:
    path = study(("name: bbc-news,", "name: data/missing.jsonl,"))
    assert_error(capsys, path, "s.yaml:10 task.name", "no such file or folder 'data/missing.jsonl'")


@pytest.mark.parametrize(
    ("content", "what"),
    [
        (b'{"text": "caf\xe9", "label": "a"}\n', "is not UTF-8 text: byte 0xe9 at offset 13"),
        (b"\x00\x01\x02binary", "is binary, not text (a NUL byte at offset 0)"),
        (b"", "is empty"),
    ],
)
def test_local_data_file_that_is_not_text(
    capsys, study, tmp_path: Path, content: bytes, what: str
) -> None:
    (tmp_path / "data.jsonl").write_bytes(content)
    path = study(("name: bbc-news,", "name: data.jsonl,"))
    assert_error(capsys, path, "task.name", what)


def test_embedded_dataset_of_the_other_task_type(capsys, study) -> None:
    path = study(("name: bbc-news,", "name: aclsum,"))
    assert_error(capsys, path, "task.name", "'aclsum' is a summarization dataset")


# -- A6: the device ---------------------------------------------------------------------------


def test_cuda_without_cuda(capsys, study, monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    path = study(("quantization: none}", "quantization: none, device: cuda}"))
    assert_error(capsys, path, "s.yaml:9 model.device", "CUDA is not available on this machine")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    path = study(("quantization: none}", "quantization: none, device: 'cuda:3'}"))
    assert_error(capsys, path, "model.device", "this machine has 1 CUDA device (cuda:0")
    path = study(("quantization: none}", "quantization: none, device: gpu}"))
    assert_error(capsys, path, "model.device", "must be auto, cpu, cuda or cuda:N")


# -- A7, A8: empty and non-UTF-8 study files --------------------------------------------------


@pytest.mark.parametrize("text", ["", "# only a comment\n\n   # and another\n", "{}\n"])
def test_empty_study_file_is_refused(capsys, tmp_path: Path, text: str) -> None:
    path = tmp_path / "empty.yaml"
    path.write_text(text)
    code, err = validate(capsys, path)
    assert code == 2
    assert "The study file is empty" in err and "start from studies/smoke.yaml" in err
    assert main(["run", str(path)]) == 2
    assert "start from studies/smoke.yaml" in capsys.readouterr().err
    assert not (tmp_path / "runs").exists()


def cli(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    exe = Path(sys.executable).with_name("loran-search")
    return subprocess.run(
        [str(exe), *args], capture_output=True, text=True, cwd=cwd, env=env, timeout=120
    )


def test_latin1_study_file(study, tmp_path: Path) -> None:
    path = study()
    path.write_bytes(path.read_bytes().replace(b"name: t\n", b"name: \xe9t\xe9\n"))
    res = cli("validate", str(path), cwd=tmp_path)
    assert res.returncode == 2, res.stderr
    assert "Traceback" not in res.stderr
    assert (
        "s.yaml:2:9: The file is not UTF-8 text: byte 0xe9 at offset 15 (line 2, column 9)"
        in res.stderr
    )
    assert "Save the file as UTF-8" in res.stderr


# -- A9: an imports: module that fails ---------------------------------------------------------


def test_imports_module_that_raises(capsys, study, tmp_path: Path, monkeypatch) -> None:
    (tmp_path / "broken_plugin_t.py").write_text("raise RuntimeError('boom at import')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    path = study(("model: {", "imports: [broken_plugin_t]\nmodel: {"))
    assert_error(
        capsys,
        path,
        "s.yaml:9 imports[0]",
        "Importing the activation plugin module 'broken_plugin_t' raised RuntimeError: boom",
    )


def test_imports_module_that_raises_in_a_subprocess(study, tmp_path: Path) -> None:
    import os

    (tmp_path / "broken_plugin_s.py").write_text("import sys\nsys.exit(3)\n")
    path = study(("model: {", "imports: [broken_plugin_s]\nmodel: {"))
    env = dict(os.environ, PYTHONPATH=str(tmp_path))
    res = cli("validate", str(path), cwd=tmp_path, env=env)
    assert res.returncode == 2 and "Traceback" not in res.stderr, res.stderr
    assert "imports[0]" in res.stderr and "raised SystemExit: 3" in res.stderr


# -- A10: seeds -------------------------------------------------------------------------------


def test_seeds_beyond_numpy_range(capsys, study) -> None:
    path = study(("seeds: [0]", "seeds: [0, 4294967296]"))
    assert_error(capsys, path, "s.yaml:8 study.seeds[1]", "Seed 4294967296 is outside 0 … 2³² − 1")
    path = study(("seeds: [0]", "seeds: [-1]"))
    assert_error(capsys, path, "study.seeds[0]", "Seed -1 is outside")
    assert validate(capsys, study(("seeds: [0]", "seeds: [4294967295]")))[0] == 0


# -- every error at once ----------------------------------------------------------------------


def test_all_new_errors_at_once(capsys, study, monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    path = study(
        ("seeds: [0]", "seeds: [-5]"),
        ("quantization: none}", "quantization: none, device: cuda}"),
        ("name: bbc-news,", "name: data/missing.jsonl,"),
        ("[q_proj, v_proj]", "[q_prj]"),
        ("learning_rate: 1.0e-3", "learning_rate: .nan"),
        ("rank: [4]", "rank: [999]"),
    )
    code, err = validate(capsys, path)
    assert code == 2
    assert "5 errors" in err, err
    for where in (
        "study.seeds[0]",
        "model.device",
        "task.name",
        "adapter.target_modules[0]",
        "training.learning_rate",
    ):
        assert where in err, (where, err)
    assert "search.rank" not in err  # no adapted layer is known: no width to compare


# -- B: safe study names ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "what"),
    [
        ("../../../outside", "contains a path separator (/)"),
        ("a\\b", "contains a path separator (\\)"),
        ("..", "contains '..'"),
        ("x..y", "contains '..'"),
        ("tab\there", "control character '\\t'"),
        ("n" * 300, "at most 100 characters"),
        ("é" * 101, "at most 100 characters and 200 bytes"),
    ],
)
def test_unsafe_study_names(capsys, study, name: str, what: str) -> None:
    assert_error(capsys, study(), "--set study.name", what, f"study.name={json.dumps(name)}")


def test_unsafe_name_in_the_file_and_on_run(capsys, study, tmp_path: Path) -> None:
    path = study(("name: t", "name: ../escape"))
    assert_error(capsys, path, "s.yaml:2 study.name", "path separator")
    assert main(["run", str(study()), "--set", "study.name=../../../outside"]) == 2
    assert "path separator" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.yaml"]
    assert not (tmp_path.parent.parent / "outside").exists()


def test_safe_names_pass(capsys, study) -> None:
    for name in ("sinter-amplitude_2", "étude.1", "n" * 100):
        assert validate(capsys, study(), f"study.name={name}")[0] == 0, name
