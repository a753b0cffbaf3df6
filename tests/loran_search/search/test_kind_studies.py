"""The new kinds' study files: each validates, and a shrunken copy runs end to end.

Search, confirmation and report go through exactly the code paths of the text studies (the
real trainer, SQLite, the analysis): nothing in them knows the kind. The transformers kinds'
study files name hub ids whose weights are not here; their shrunken runs point ``model.name``
at a tiny checkpoint folder built in-process (same kind, resolved from its ``config.json``).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from loran_search.analysis.api import load_study
from loran_search.analysis.render import summary_markdown
from loran_search.analysis.report import analyse
from loran_search.cli import main
from loran_search.search.validate import load_config, validate_file
from tests.conftest import tiny_falcon, tiny_t5

ROOT = Path(__file__).resolve().parents[3]
STUDIES = [
    "vision_digits",
    "vision_digits_vit",
    "rl_cartpole",
    "flan_t5_summarization",
    "falcon_classification",
]


@pytest.fixture(scope="module", autouse=True)
def _asset_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    mp = pytest.MonkeyPatch()
    mp.setenv("LORAN_SEARCH_CACHE", str(tmp_path_factory.getbasetemp() / "loran-cache"))
    mp.delenv("LORAN_SEARCH_TRAIN_FN", raising=False)
    yield
    mp.undo()


@pytest.mark.parametrize("name", STUDIES)
def test_study_file_validates_offline(name: str) -> None:
    assert validate_file(ROOT / "studies" / f"{name}.yaml") == []


def test_kind_defaults_and_refusals(tmp_path: Path) -> None:
    text = (
        (ROOT / "studies" / "rl_cartpole.yaml")
        .read_text()
        .replace(
            "adapter: {target_modules: [fc1, fc2], alpha: 8, dropout: 0.0}", "adapter: {alpha: 8}"
        )
    )
    path = tmp_path / "rl.yaml"
    path.write_text(text)
    assert load_config(path).adapter.target_modules == ["fc1", "fc2"]  # the kind's default
    errors = dict(
        validate_file(
            path,
            ["model.quantization=nf4", "task.type=summarization", "task.env.lenght=2.0"],
        )
    )
    joined = "\n".join(f"{k}: {v}" for k, v in errors.items())
    assert "model.quantization" in joined and "set model.quantization: none" in joined
    assert "task.type" in joined and "serves task.type control" in joined
    errors = "\n".join(v for _, v in validate_file(path, ["task.env.lenght=2.0"]))
    assert "task.env.lenght is not a CartPole setting" in errors
    errors = "\n".join(v for _, v in validate_file(path, ["model.kind=cartpole"]))
    assert "Did you mean 'cartpole_mlp'" in errors


def _run(path: Path, storage: str, overrides: list[str]) -> Any:
    args = ["run", str(path), "--storage", storage, "--set", "study.report=false"]
    for item in overrides:
        args += ["--set", item]
    assert main(args) == 0
    cfg = load_config(path, overrides)
    return load_study(storage, cfg.study.name)


SHRINK = [
    "study.n_trials=1",
    "study.confirm.seeds=[100]",
    "training.max_steps=3",
    "training.threads=1",
]


@pytest.mark.parametrize(
    ("name", "extra", "metric", "column"),
    [
        (
            "vision_digits",
            ["task.train_size=32", "task.eval_size=24", "sinter.amplitude={low: 10.0, high: 10.0}"],
            "accuracy",
            "correct",
        ),
        (
            "vision_digits_vit",
            ["task.train_size=32", "task.eval_size=24", "sinter.amplitude={low: 10.0, high: 10.0}"],
            "accuracy",
            "correct",
        ),
        (
            "rl_cartpole",
            ["task.train_size=8", "task.eval_size=4", "task.env.max_episode_steps=40",
             "training.batch_size=4", "sinter.amplitude={low: 10.0, high: 10.0}"],
            "mean_return",
            "return",
        ),
    ],
)  # fmt: skip
def test_shrunken_study_end_to_end(
    name: str, extra: list[str], metric: str, column: str, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    monkeypatch.chdir(tmp_path)
    study = _run(
        ROOT / "studies" / f"{name}.yaml", f"sqlite:///{tmp_path / 's.db'}", SHRINK + extra
    )
    roles = sorted(t.user_attrs.get("role") for t in study.trials)
    assert roles == ["baseline", "candidate", "confirm", "confirm_baseline"]
    for t in study.trials:
        assert t.state.name == "COMPLETE", t.user_attrs.get("failure")
        examples = next(v for k, v in t.user_attrs.items() if k.startswith("examples."))
        assert column in examples and len(examples["id"]) == len(examples[column])
        assert t.user_attrs["mechanism"]
    analysis = analyse(study)
    table = analysis.configurations
    confirmed = table[table["evidence"] == "confirmation"]
    assert len(confirmed) == 1 and confirmed["n_examples"].iloc[0] > 0  # paired by example id
    markdown = summary_markdown(analysis)
    assert "Verdict" in markdown and metric in markdown


@pytest.mark.parametrize(
    ("name", "build", "extra"),
    [
        (
            "flan_t5_summarization",
            tiny_t5,
            ["task.max_length=64", "task.max_new_tokens=6", "task.train_size=8",
             "task.eval_size=4", "search.rank=[2]"],
        ),
        (
            "falcon_classification",
            tiny_falcon,
            ["model.quantization=none", "model.compute_dtype=float32", "task.max_length=48",
             "task.train_size=8", "task.eval_size=5", "search.rank=[2]"],
        ),
    ],
)  # fmt: skip
def test_transformers_kind_study_on_a_tiny_checkpoint(
    name: str, build: Any, extra: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    glass_tokenizer: Any,
) -> None:  # fmt: skip
    folder = tmp_path / "tiny"
    build().save_pretrained(folder)
    glass_tokenizer.save_pretrained(folder)
    monkeypatch.chdir(tmp_path)
    overrides = [f"model.name={folder}", "study.confirm=false", *SHRINK[:1], *SHRINK[2:], *extra]
    overrides.append("sinter.amplitude={low: 1.0, high: 1.0}")  # not predicted inert
    study = _run(ROOT / "studies" / f"{name}.yaml", f"sqlite:///{tmp_path / 's.db'}", overrides)
    assert sorted(t.user_attrs.get("role") for t in study.trials) == ["baseline", "candidate"]
    assert all(t.state.name == "COMPLETE" for t in study.trials)
    assert len(analyse(study).configurations) == 1


@pytest.fixture(scope="module")
def glass_tokenizer(_asset_cache: None) -> Any:
    from transformers import AutoTokenizer

    from loran_search.assets import ensure

    return AutoTokenizer.from_pretrained(ensure("glassllm", progress=False))


def test_load_resolves_and_tags_the_kind(tmp_path: Path, glass_tokenizer: Any) -> None:
    from loran_search.config import ModelSection
    from loran_search.kinds import KindError, load

    tiny_t5().save_pretrained(tmp_path)
    glass_tokenizer.save_pretrained(tmp_path)
    model, tokenizer = load(ModelSection(name=str(tmp_path), quantization="none"))
    assert type(model).__name__ == "T5ForConditionalGeneration"
    assert model.loran_kind == "seq2seq_lm" and tokenizer.padding_side == "right"
    assert not any(p.requires_grad for p in model.parameters())
    with pytest.raises(KindError, match=r"set model\.kind: seq2seq_lm or auto"):
        load(ModelSection(name=str(tmp_path), quantization="none", kind="falcon"))


def test_fingerprint_leaves_the_new_keys_out_at_their_defaults() -> None:
    """Studies stored before ``model.kind`` / ``task.env`` existed still resume."""
    from loran_search.search.space import build_space
    from loran_search.search.study import fingerprint

    cfg = load_config(ROOT / "studies" / "smoke.yaml")
    fp = fingerprint(cfg, build_space(cfg))
    assert "kind" not in fp["model"] and "env" not in fp["task"]
    rl = load_config(ROOT / "studies" / "rl_cartpole.yaml")
    fp = fingerprint(rl, build_space(rl))
    assert fp["model"]["kind"] == "cartpole_mlp" and fp["task"]["env"]["length"] == 2.0
