"""Every model kind: build, inject LoRAN on its default targets, a step, save → load, merge.

Parametrised over the kinds registry: a new kind without a tiny model here fails
:func:`test_every_kind_has_a_tiny_model`. The transformers kinds use tiny configurations built
in-process (no weights are downloaded); the embedded networks use their real architecture.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
from peft import PeftModel

from loran_search import kinds
from loran_search.config import AdapterSection, ModelSection
from loran_search.kinds import KINDS, KindError, build_network, resolve_kind
from loran_search.models import module_table, target_problems
from loran_search.train import adapter_layers, build_adapter, mechanism_figures
from tests.conftest import tiny_falcon, tiny_llama, tiny_t5

IDS = torch.tensor([[5, 17, 33, 9, 70, 2], [8, 11, 40, 12, 3, 7]])


def _text_loss(model: Any) -> Any:
    return model(input_ids=IDS, attention_mask=torch.ones_like(IDS), labels=IDS).loss


def _image_loss(model: Any) -> Any:
    torch.manual_seed(7)
    x = torch.rand(6, 1, 8, 8)
    return torch.nn.functional.cross_entropy(model(x), torch.arange(6) % 10)


def _policy_loss(model: Any) -> Any:
    torch.manual_seed(7)
    return torch.nn.functional.cross_entropy(model(torch.randn(8, 4)), torch.arange(8) % 2)


#: kind → (tiny base model, a scalar loss of it)
TINY: dict[str, tuple[Callable[[], Any], Callable[[Any], Any]]] = {
    "causal_lm": (lambda: tiny_llama(vocab=96), _text_loss),
    "falcon": (tiny_falcon, _text_loss),
    "seq2seq_lm": (tiny_t5, _text_loss),
    "digits_cnn": (lambda: build_network("digits-cnn").eval(), _image_loss),
    "digits_vit": (lambda: build_network("digits-vit").eval(), _image_loss),
    "cartpole_mlp": (lambda: build_network("cartpole-mlp").eval(), _policy_loss),
}


def test_every_kind_has_a_tiny_model() -> None:
    assert set(TINY) == set(KINDS)


@pytest.mark.parametrize("name", sorted(KINDS))
def test_kind_declares_what_it_serves(name: str) -> None:
    kind = KINDS[name]
    assert kind.default_targets and kind.tasks
    assert not set(kind.default_targets) & set(kind.other_targets)
    variants = [TINY[name][0]()] + ([tiny_t5(gated=True)] if name == "seq2seq_lm" else [])
    descs = [module_table(base) for base in variants]
    for desc in descs:
        assert target_problems(desc, list(kind.default_targets), [2]) == []
    for target in kind.other_targets:  # each matches in one variant (T5: wi, or wi_0/wi_1)
        assert any(target_problems(desc, [target], [2]) == [] for desc in descs), target


def _adapted(name: str) -> tuple[Any, Any]:
    torch.manual_seed(0)
    base, _ = TINY[name]
    model = base()
    for p in model.parameters():
        p.requires_grad_(False)
    pristine = copy.deepcopy(model)
    model.loran_kind = name
    adapter = AdapterSection(
        target_modules=list(KINDS[name].default_targets), alpha=4.0, dropout=0.0
    )
    peft_model = build_adapter(
        model, adapter, rank=2, activation="sinter",
        activation_params={"amplitude": 0.5, "frequency": 10.0},
    )  # fmt: skip
    torch.manual_seed(1)
    with torch.no_grad():  # B = 0 at init: a non-zero B makes every factor's gradient non-zero
        for pname, p in peft_model.named_parameters():
            if "lora_B" in pname:
                p.copy_(torch.randn_like(p) * 0.05)
    return peft_model, pristine


@pytest.mark.parametrize("name", sorted(KINDS))
def test_inject_step_save_load_merge(name: str, tmp_path: Path) -> None:
    model, pristine = _adapted(name)
    loss_fn = TINY[name][1]
    task_type = KINDS[name].peft_task_type
    assert model.peft_config["default"].task_type == task_type
    layers = adapter_layers(model)
    assert len(layers) >= len(KINDS[name].default_targets)
    # one training step: finite, non-zero gradients on every factor
    model.train()
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-3)
    loss = loss_fn(model)
    loss.backward()
    grads = {n: p.grad for n, p in model.named_parameters() if p.requires_grad}
    assert grads and all(".lora_A." in n or ".lora_B." in n for n in grads)
    for n, g in grads.items():
        assert g is not None and bool(torch.isfinite(g).all()), n
        assert float(g.abs().sum()) > 0, n
    opt.step()
    model.eval()
    assert mechanism_figures(adapter_layers(model))["n_layers"] == len(layers)
    with torch.no_grad():
        reference = loss_fn(model)
    # save → load: the same tensors, the same output, bit for bit
    model.save_pretrained(tmp_path / "adapter")
    config = json.loads((tmp_path / "adapter" / "adapter_config.json").read_text())
    assert config["activation"] == "sinter" and config["peft_type"] == "LORA"
    loaded = PeftModel.from_pretrained(copy.deepcopy(pristine), tmp_path / "adapter").eval()
    saved = {k: v for k, v in model.state_dict().items() if "lora_" in k}
    again = {k: v for k, v in loaded.state_dict().items() if "lora_" in k}
    assert saved.keys() == again.keys()
    assert all(torch.equal(saved[k], again[k]) for k in saved)
    with torch.no_grad():
        assert torch.equal(loss_fn(loaded), reference)
        # merge = unmerged, within float tolerance
        model.merge_adapter()
        torch.testing.assert_close(loss_fn(model), reference, rtol=1e-4, atol=1e-5)
        model.unmerge_adapter()
        torch.testing.assert_close(loss_fn(model), reference, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize(
    ("section", "kind"),
    [
        (ModelSection(name="glassllm"), "causal_lm"),
        (ModelSection(name="smollm2-135m"), "causal_lm"),
        (ModelSection(name="digits-cnn"), "digits_cnn"),
        (ModelSection(name="digits-vit"), "digits_vit"),
        (ModelSection(name="cartpole-mlp"), "cartpole_mlp"),
        (ModelSection(name="google/flan-t5-base", kind="seq2seq_lm"), "seq2seq_lm"),
        (ModelSection(name="owner/not-in-any-cache"), "causal_lm"),
    ],
)
def test_resolve_kind(section: ModelSection, kind: str) -> None:
    assert resolve_kind(section).name == kind


@pytest.mark.parametrize(("build", "kind"), [(tiny_t5, "seq2seq_lm"), (tiny_falcon, "falcon")])
def test_auto_reads_a_local_checkpoint(build: Callable[[], Any], kind: str, tmp_path: Path) -> None:
    build().config.save_pretrained(tmp_path)
    assert resolve_kind(ModelSection(name=str(tmp_path))).name == kind


def test_unknown_kind_says_what_exists() -> None:
    with pytest.raises(KindError, match="Did you mean 'seq2seq_lm'"):
        resolve_kind(ModelSection(name="x/y", kind="seq2seq"))


def test_kind_problems() -> None:
    assert kinds.kind_problems(ModelSection(name="digits-cnn", quantization="none")) == []
    problems = dict(kinds.kind_problems(ModelSection(name="digits-cnn", quantization="nf4")))
    assert "quantization: none" in problems["quantization"]
    problems = dict(kinds.kind_problems(ModelSection(name="digits-cnn", kind="causal_lm")))
    assert "digits_cnn" in problems["kind"]
    problems = dict(kinds.kind_problems(ModelSection(name="x/y", kind="cartpole_mlp",
                                                     quantization="none")))  # fmt: skip
    assert "cartpole-mlp" in problems["name"]


def test_peft_task_type_of_an_untagged_model_is_causal() -> None:
    assert kinds.peft_task_type(object()) == "CAUSAL_LM"
