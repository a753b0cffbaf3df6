"""Adapters saved by loran-search 0.1.0 keep loading: the same weights, the same function.

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

What is exact and what is not. The stored logits were computed on one CPU; another x86-64 CPU
runs other float32 kernels (vector width, FMA, summation order) and lands a few units of float32
rounding away (measured: 7.45e-08 for the base and 1.23e-07 through an adapter on a second
machine, 8.9e-08 and 1.3e-07 on a third). So the logits are compared with the tolerance of
:func:`cross_machine_atol`, while everything that involves no arithmetic on this machine stays
bit for bit: the token ids, and the adapter weights a loader puts in the model against the saved
``adapter_model.safetensors``. Two computations on this machine also agree bit for bit (every
loader gives the same logits, and a second forward the same as the first).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import peft
import pytest
import torch
from safetensors.torch import load_file

import loran_search  # noqa: F401  (what a user imports before PeftModel.from_pretrained)
from loran_search.adapters import LoranConfig, LoranLinear, load_adapter

FIXTURES = Path(__file__).resolve().parent / "fixtures"

#: float32's machine epsilon, 2⁻²³ ≈ 1.19e-7: the relative size of one rounding.
EPS_F32 = torch.finfo(torch.float32).eps
#: How many roundings, each of size ``EPS_F32 × max|logit|``, two CPUs may disagree by. The path
#: from token to logit is ~25 float32 stages (2 decoder layers × RMSNorm, q/k/v, RoPE, softmax,
#: attention, o_proj, residual, RMSNorm, gate/up, SiLU, down, residual, then the final norm and
#: lm_head); in each, a different kernel may sum a dot product of length ≤ 64 in another order
#: (typically ~√64 = 8 roundings apart, n = 64 in the worst case) or round exp/rsqrt/sin by
#: another ulp. At these weights (std 0.02) every stage shrinks rather than amplifies an error,
#: so the stages add up rather than multiply: 64 = 2⁶ covers them. The measured disagreements are
#: 1.6–3.4 such units (8.9e-08 / (EPS_F32 · 0.46) at most), a margin of ~20.
ROUNDING_STEPS = 64


def cross_machine_atol(reference: torch.Tensor) -> float:
    """Absolute tolerance for logits recomputed on another CPU: ``64 · eps_f32 · max|reference|``.

    For the fixtures' logits (max 0.46) that is 3.5e-6: ~25× the largest disagreement measured
    between two x86-64 CPUs, and ~3,400× below the 1.2e-2 by which the two fixture adapters'
    logits differ (same A and B, only the activation differs), so no change in what LoRAN
    computes can hide inside it (:func:`test_tolerance_still_tells_the_activations_apart`).
    """
    return ROUNDING_STEPS * EPS_F32 * float(reference.abs().max())


def assert_close_across_machines(got: torch.Tensor, want: torch.Tensor, what: str) -> None:
    """``|got − want| ≤ cross_machine_atol(want)`` everywhere (no relative part: see above)."""
    atol = cross_machine_atol(want)
    diff = float((got - want).abs().max())
    assert got.shape == want.shape and diff <= atol, (
        f"{what}: max |diff| {diff:.3g} exceeds the cross-machine float32 tolerance {atol:.3g} "
        "(64 roundings of the largest logit): this is a change in the computed function, not "
        "CPU rounding"
    )


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
    return load_file(str(FIXTURES / "expected_logits.safetensors"))


def test_fixture_base_rebuilds(expected):
    """Guards the fixture itself: a mismatch here means the base rebuild changed, not LoRAN."""
    assert torch.equal(expected["input_ids"], fixture_ids())  # integers: exact everywhere
    with torch.no_grad():
        got = fixture_base()(input_ids=expected["input_ids"]).logits
        again = fixture_base()(input_ids=expected["input_ids"]).logits
    assert torch.equal(got, again)  # the same machine rebuilds it bit for bit
    assert_close_across_machines(got, expected["base"], "the rebuilt tiny base's logits")


def test_tolerance_still_tells_the_activations_apart(expected):
    """The two adapters share A and B (same seed, same shapes) and differ only in f: the
    tolerance must be far below that difference, or it could hide a wrong activation."""
    saved = {n: load_file(str(FIXTURES / n / "adapter_model.safetensors")) for n in ADAPTERS}
    assert saved["sinter"].keys() == saved["formula"].keys()
    assert all(torch.equal(saved["sinter"][k], saved["formula"][k]) for k in saved["sinter"])
    gap = float((expected["sinter"] - expected["formula"]).abs().max())
    assert gap > 1000 * cross_machine_atol(expected["sinter"])


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


LOADERS = ["peft", "load_adapter", "peft_load_adapter", "transformers"]


@pytest.fixture(scope="module")
def here() -> dict[str, torch.Tensor]:
    """Each fixture adapter's logits computed on this machine (by PeftModel.from_pretrained)."""
    out = {}
    for name in ADAPTERS:
        model = peft.PeftModel.from_pretrained(fixture_base(), FIXTURES / name).eval()
        with torch.no_grad():
            out[name] = model(input_ids=fixture_ids()).logits
    return out


@pytest.mark.parametrize("loader", LOADERS)
@pytest.mark.parametrize("name", sorted(ADAPTERS))
def test_saved_adapter_loads(name, loader, expected, here):
    """Every entry point goes through peft's config factory, which builds a LoranConfig; the
    weights it loads are the saved ones bit for bit, and so are the logits on one machine."""
    model = _load(loader, FIXTURES / name)
    cfg = model.peft_config["default"]
    assert isinstance(cfg, LoranConfig)
    assert (cfg.activation, cfg.activation_params) == ADAPTERS[name]
    inner = model.base_model.model if loader != "transformers" else model
    assert isinstance(inner.model.layers[1].self_attn.v_proj, LoranLinear)
    # no arithmetic between the file and the layer: bit for bit on any machine
    saved = load_file(str(FIXTURES / name / "adapter_model.safetensors"))
    assert len(saved) == 8  # lora_A and lora_B of q_proj and v_proj in 2 layers
    for key, tensor in saved.items():
        layer_path, factor, _ = key.removeprefix("base_model.model.").rsplit(".", 2)
        loaded = getattr(inner.get_submodule(layer_path), factor)["default"].weight
        assert loaded.dtype == tensor.dtype and torch.equal(loaded, tensor), key
    with torch.no_grad():
        got = model.eval()(input_ids=expected["input_ids"]).logits
        again = model(input_ids=expected["input_ids"]).logits
    # the same machine: every loader and every rerun computes the same bits
    assert torch.equal(got, again) and torch.equal(got, here[name]), loader
    # the machine that wrote the fixture: within float32 rounding
    assert_close_across_machines(got, expected[name], f"{name} through {loader}")
    assert float((got - expected["base"]).abs().max()) > 1000 * cross_machine_atol(got)


@pytest.mark.parametrize("entry", [peft.PeftConfig, peft.LoraConfig, LoranConfig])
def test_saved_config_loads_as_loran_config(entry):
    cfg = entry.from_pretrained(FIXTURES / "sinter")
    assert type(cfg) is LoranConfig
    assert cfg.peft_type == peft.PeftType.LORA
    assert (cfg.activation, cfg.activation_params) == ADAPTERS["sinter"]


if __name__ == "__main__":  # pragma: no cover
    generate_fixtures()
