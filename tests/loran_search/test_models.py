"""Model loading: glassllm parity with its NumPy reference, quantization, the guard, errors."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from loran_search.config import ModelSection
from loran_search.models import ModelError, load_model, resolve_model_name

ALICE = (
    "Alice was beginning to get very tired of sitting by her sister on the bank, and of "
    "having nothing to do: once or twice she had peeped into the book her sister was reading."
)


@pytest.fixture(scope="module", autouse=True)
def _cache(tmp_path_factory: pytest.TempPathFactory) -> None:
    mp = pytest.MonkeyPatch()
    mp.setenv("LORAN_SEARCH_CACHE", str(tmp_path_factory.getbasetemp() / "loran-cache"))
    yield
    mp.undo()


def test_glassllm_parity_with_numpy_reference() -> None:
    import glassllm
    from glassllm import no_grad

    ref, ref_tok = glassllm.load_pretrained("en")
    model, tok = load_model(ModelSection(name="glassllm", quantization="none"))
    for text in (ALICE, "Said the Hatter:\n  “Why is a raven like a writing-desk?” ¿ ", "x"):
        assert tok(text)["input_ids"] == ref_tok.encode(text)
    ids = ref_tok.encode(ALICE)
    with no_grad():
        ref_logits = ref.forward(np.array([ids])).data
    with torch.no_grad():
        logits = model(torch.tensor([ids])).logits.numpy()
    assert np.abs(ref_logits - logits).max() < 1e-4
    # same greedy continuation
    with no_grad():
        ref_new = [s.token for s in ref.generate(ids[:20], 8, greedy=True)]
    with torch.no_grad():
        out = model.generate(torch.tensor([ids[:20]]), max_new_tokens=8, do_sample=False)
    assert out[0, 20:].tolist() == ref_new
    assert tok.decode(ids) == ALICE


def test_nf4_load_applies_guard_and_reports_time() -> None:
    import bitsandbytes as bnb

    model, tok = load_model(ModelSection(name="glassllm", quantization="nf4"))
    layers = [m for m in model.modules() if isinstance(m, bnb.nn.Linear4bit)]
    assert len(layers) == 4 * 7
    assert all(m.support_avx512bf16_for_cpu is False for m in layers)
    info = model.loran_load_info
    assert info.guarded_4bit_layers == 28 and info.seconds >= 0 and info.device == "cpu"
    assert tok.pad_token is not None
    assert not any(p.requires_grad for p in model.parameters())


def test_int8_and_fp4_load() -> None:
    import bitsandbytes as bnb

    m8, _ = load_model(ModelSection(name="glassllm", quantization="int8"))
    assert any(isinstance(m, bnb.nn.Linear8bitLt) for m in m8.modules())
    m4, _ = load_model(ModelSection(name="glassllm", quantization="fp4", double_quant=False))
    q = m4.model.layers[0].self_attn.q_proj
    assert q.weight.quant_state.quant_type == "fp4"


def test_local_dir_loads(tmp_path: Path) -> None:
    from loran_search.assets import ensure

    local = tmp_path / "mine"
    shutil.copytree(ensure("glassllm", progress=False), local)
    model, _ = load_model(ModelSection(name=str(local), quantization="none"))
    assert model.loran_load_info.source == "local"


def test_name_resolution_and_errors(tmp_path: Path) -> None:
    assert resolve_model_name("meta-llama/Llama-2-7b-hf") == ("hub", "meta-llama/Llama-2-7b-hf")
    with pytest.raises(ModelError, match=r"Did you mean 'smollm2-135m'\?.*assets list"):
        resolve_model_name("smollm2-135")
    with pytest.raises(ModelError, match="is an embedded dataset, not a model"):
        resolve_model_name("bbc-news")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelError, match=r"without config\.json"):
        resolve_model_name(str(tmp_path / "empty"))
    with pytest.raises(ModelError, match="quantization 'nf8' is not one of nf4, fp4, int8, none"):
        load_model(ModelSection(name="glassllm", quantization="nf8"))
    with pytest.raises(ModelError, match="compute_dtype"):
        load_model(ModelSection(name="glassllm", compute_dtype="fp32"))


def test_hub_id_offline_error_is_clear() -> None:
    with pytest.raises(ModelError, match="It is a hub id"):
        load_model(ModelSection(name="nobody-here/not-a-model", quantization="none"))


@pytest.mark.slow
def test_smollm2_nf4_loads_and_scores() -> None:
    model, tok = load_model(ModelSection(name="smollm2-135m", quantization="nf4"))
    ids = tok("The cat sat on the mat.", return_tensors="pt")["input_ids"]
    with torch.no_grad():
        loss = model(ids, labels=ids).loss
    assert 1.0 < float(loss) < 6.0
    assert model.loran_load_info.guarded_4bit_layers == 30 * 7


def test_describe_modules_reads_the_config_on_meta_without_weights(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import json
    import subprocess
    import sys

    from loran_search import models
    from loran_search.assets import cache_root
    from loran_search.models import describe_model, describe_modules

    monkeypatch.setattr(models, "_DESCRIBED", {})  # forget what earlier tests described

    mods = describe_modules(ModelSection(name="glassllm"))
    assert mods is not None
    assert mods["q_proj"] == [(128, 128)] * 4 and mods["v_proj"] == [(128, 64)] * 4
    assert set(mods) == {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj"} | {
        "down_proj",
        "lm_head",
    }
    desc = describe_model(ModelSection(name="glassllm"))
    assert desc is not None and desc.max_positions == 128
    assert desc.others["model.layers.0.self_attn"] == "LlamaAttention"
    cached = [json.loads(f.read_text()) for f in (cache_root() / "modules").glob("*.json")]
    assert any(c["linear"].get("lm_head") == [128, 1024] for c in cached)
    # the next process reads the cached description: no torch import, so `validate` stays fast
    code = (
        "import sys; from loran_search.config import ModelSection; "
        "from loran_search.models import describe_modules; "
        "m = describe_modules(ModelSection(name='glassllm')); "
        "print(m['v_proj'][0], 'torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["(128,", "64)", "False"], out.stderr
    # a local folder with nothing but a config.json is described the same way
    (tmp_path / "cfg-only").mkdir()
    shutil.copy(cache_root() / "assets" / "glassllm" / "config.json", tmp_path / "cfg-only")
    assert describe_modules(ModelSection(name=str(tmp_path / "cfg-only"))) == mods


def test_unbuilt_large_assets_and_uncached_hub_ids_are_not_described(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from loran_search.models import describe_model

    monkeypatch.setenv("LORAN_SEARCH_CACHE", str(tmp_path / "empty"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf"))
    assert describe_model(ModelSection(name="smollm2-135m")) is None
    assert describe_model(ModelSection(name="nobody-here/not-a-model")) is None
    assert not (tmp_path / "empty" / "assets" / "smollm2-135m").exists()


def test_target_problems() -> None:
    from loran_search.models import describe_model, target_problems

    desc = describe_model(ModelSection(name="glassllm"))
    assert desc is not None
    assert target_problems(desc, ["q_proj", "self_attn.v_proj"], [4, 64]) == []
    problems = dict(target_problems(desc, ["q_prj", "mlp", "v_proj"], [8, 65]))
    assert "Did you mean 'q_proj'?" in problems[("adapter", "target_modules", 0)]
    assert "a LlamaMLP, not a linear layer" in problems[("adapter", "target_modules", 1)]
    assert "min(d_in, d_out) = 64" in problems[("search", "rank", 1)]
    assert ("search", "rank", 0) not in problems
    assert "is empty" in target_problems(desc, [], [4])[0][1]


def test_device_problems(monkeypatch: pytest.MonkeyPatch) -> None:
    from loran_search.models import device_problem, resolve_device

    assert device_problem("auto") is None and device_problem("cpu") is None
    assert "must be auto, cpu, cuda or cuda:N" in (device_problem("gpu0") or "")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert "CUDA is not available" in (device_problem("cuda:0") or "")
    with pytest.raises(ModelError, match="CUDA is not available"):
        resolve_device("cuda")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert device_problem("cuda:1") is None
    assert "has 2 CUDA devices (cuda:0 … cuda:1)" in (device_problem("cuda:2") or "")
