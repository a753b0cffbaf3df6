"""Adapters saved by loran-search 0.1.0 keep loading bit for bit.

The folders under ``fixtures/`` were written by loran-search 0.1.0 (commit 27e9173, before the
peft integration was reworked), peft 0.21.2, transformers 5.24.0 and torch 2.13.0 (CPU, one
thread), and are never rewritten by the tests. How they were produced:

* The base is a LLaMA built in process (:func:`fixture_base`): ``torch.manual_seed(1234)``, then
  ``LlamaForCausalLM(LlamaConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=2,
  num_attention_heads=4, num_key_value_heads=2, vocab_size=64, max_position_embeddings=32,
  tie_word_embeddings=False))`` in float32, eval mode. Nothing of it is stored.
* Two LoRAN adapters on it, ``r=2``, ``lora_alpha=4``, ``lora_dropout=0.1``, on ``q_proj`` and
  ``v_proj``: ``fixtures/sinter`` with ``activation="sinter"``, ``activation_params={"amplitude":
  0.05, "frequency": 3.0}`` (not the registry defaults) and ``fixtures/formula`` with the formula
  ``"x + a*x*sin(w*x)"``, ``{"a": 0.1, "w": 2.0}``. Every ``lora_A``/``lora_B`` was then set, in
  sorted parameter-name order, to ``0.3·randn`` from ``torch.Generator().manual_seed(7)`` (so
  ``B ≠ 0`` and ``f`` is visibly non-linear), and each was written with ``save_pretrained``
  (``peft_type: LORA`` plus the ``loran_version`` marker: the 0.1.0 format).
* ``fixtures/expected_logits.safetensors`` holds ``input_ids`` (2 × 8 tokens from
  ``torch.Generator().manual_seed(3)``), the base model's logits (``base``) and each adapter's
  logits in eval mode under ``torch.no_grad()`` (``sinter``, ``formula``).

:func:`generate_fixtures` is the code that did this; it is not run by the tests (running this file
as a script calls it). Regenerating would only prove the current code agrees with itself: do it
only for a deliberate format change, and say so in the commit.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import peft
import pytest
import torch

import loran_search  # noqa: F401  (what a user imports before PeftModel.from_pretrained)
from loran_search.adapters import LoranConfig, LoranLinear, load_adapter

FIXTURES = Path(__file__).resolve().parent / "fixtures"
ADAPTERS: dict[str, tuple[str, dict[str, float]]] = {
    "sinter": ("sinter", {"amplitude": 0.05, "frequency": 3.0}),
    "formula": ("x + a*x*sin(w*x)", {"a": 0.1, "w": 2.0}),
}


def fixture_base() -> Any:
    """The tiny LLaMA the fixtures were trained on, rebuilt deterministically."""
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(1234)
    cfg = LlamaConfig(
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        vocab_size=64,
        max_position_embeddings=32,
        tie_word_embeddings=False,
    )
    return LlamaForCausalLM(cfg).eval()


def fixture_ids() -> torch.Tensor:
    return torch.randint(0, 64, (2, 8), generator=torch.Generator().manual_seed(3))


def generate_fixtures(out: Path = FIXTURES) -> None:
    """Write the fixtures (see the module docstring). Not run by the tests."""
    from safetensors.torch import save_file

    torch.set_num_threads(1)
    ids = fixture_ids()
    with torch.no_grad():
        tensors = {"input_ids": ids, "base": fixture_base()(input_ids=ids).logits}
    for name, (activation, params) in ADAPTERS.items():
        cfg = LoranConfig(
            r=2,
            lora_alpha=4,
            lora_dropout=0.1,
            target_modules=["q_proj", "v_proj"],
            activation=activation,
            activation_params=params,
        )
        pm = peft.get_peft_model(fixture_base(), cfg)
        gen = torch.Generator().manual_seed(7)
        with torch.no_grad():
            for pname, p in sorted(pm.named_parameters()):
                if "lora_A" in pname or "lora_B" in pname:
                    p.copy_(torch.randn(p.shape, generator=gen) * 0.3)
            pm.save_pretrained(out / name)
            tensors[name] = pm.eval()(input_ids=ids).logits
    save_file(
        {k: v.contiguous() for k, v in tensors.items()}, str(out / "expected_logits.safetensors")
    )


@pytest.fixture(scope="module")
def expected() -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(FIXTURES / "expected_logits.safetensors"))


def test_fixture_base_rebuilds_bit_for_bit(expected):
    """Guards the fixture itself: a mismatch here means the base rebuild changed, not LoRAN."""
    assert torch.equal(expected["input_ids"], fixture_ids())
    with torch.no_grad():
        got = fixture_base()(input_ids=expected["input_ids"]).logits
    assert torch.equal(got, expected["base"]), (
        "the tiny base no longer rebuilds bit for bit (torch/transformers version or CPU kernels "
        f"changed); max diff {(got - expected['base']).abs().max():.3g}"
    )


@pytest.mark.parametrize("name", sorted(ADAPTERS))
def test_fixture_files_are_the_0_1_0_format(name):
    saved = json.loads((FIXTURES / name / "adapter_config.json").read_text())
    assert saved["peft_type"] == "LORA"
    assert saved["loran_version"] == 1
    assert saved["activation"] == ADAPTERS[name][0]
    assert (FIXTURES / name / "adapter_model.safetensors").stat().st_size < 8192


def _load(loader: str, path: Path) -> Any:
    """The model with the fixture adapter active, through one of the entry points users have."""
    if loader == "peft":  # PeftModel.from_pretrained
        return peft.PeftModel.from_pretrained(fixture_base(), path)
    if loader == "load_adapter":  # loran_search.adapters.load_adapter
        return load_adapter(fixture_base(), path)
    if loader == "peft_load_adapter":  # PeftModel.load_adapter, as a second adapter
        other = FIXTURES / ("formula" if path.name == "sinter" else "sinter")
        model = peft.PeftModel.from_pretrained(fixture_base(), other, adapter_name="first")
        model.load_adapter(path, adapter_name="default")
        model.set_adapter("default")
        return model
    assert loader == "transformers"  # transformers' PreTrainedModel.load_adapter
    model = fixture_base()
    model.load_adapter(str(path))
    return model


@pytest.mark.parametrize("loader", ["peft", "load_adapter", "peft_load_adapter", "transformers"])
@pytest.mark.parametrize("name", sorted(ADAPTERS))
def test_saved_adapter_loads_bit_for_bit(name, loader, expected):
    """Every entry point goes through peft's config factory, which builds a LoranConfig."""
    model = _load(loader, FIXTURES / name)
    cfg = model.peft_config["default"]
    assert isinstance(cfg, LoranConfig)
    assert (cfg.activation, cfg.activation_params) == ADAPTERS[name]
    inner = model.base_model.model if loader != "transformers" else model
    assert isinstance(inner.model.layers[1].self_attn.v_proj, LoranLinear)
    with torch.no_grad():
        got = model.eval()(input_ids=expected["input_ids"]).logits
    assert not torch.equal(got, expected["base"])
    assert torch.equal(got, expected[name]), (got - expected[name]).abs().max()


@pytest.mark.parametrize("entry", [peft.PeftConfig, peft.LoraConfig, LoranConfig])
def test_saved_config_loads_as_loran_config(entry):
    cfg = entry.from_pretrained(FIXTURES / "sinter")
    assert type(cfg) is LoranConfig
    assert cfg.peft_type == peft.PeftType.LORA
    assert (cfg.activation, cfg.activation_params) == ADAPTERS["sinter"]


if __name__ == "__main__":  # pragma: no cover
    generate_fixtures()
