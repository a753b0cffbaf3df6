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
