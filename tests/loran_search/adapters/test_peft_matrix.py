"""The outside check: peft's own operations on tiny custom models, LoRA and LoRAN side by side.

A representative slice of what peft checks for its custom models (save/load, merge, unmerge,
safe merge, disable, delete, two adapters and ``set_adapter``, mixed-batch inference, training,
``add_weighted_adapter``), run on a tiny MLP and a tiny Conv2d model with ``peft.LoraConfig``,
``LoranConfig(activation="identity")`` and ``LoranConfig(activation="sinter")`` (visibly
non-linear parameters). Every case is expected to hold for all three, except
``add_weighted_adapter``, which LoRAN refuses for a non-identity activation (issue 25). A peft
upgrade that breaks the variant fails here. Written for this project, not copied from peft.

Same-machine comparisons between two computations of the same thing are exact; comparisons
between two ways of computing it (fused ``W + Δ`` vs a separate update, merged vs unmerged)
allow float32 rounding: ``atol = 1e-5``, ``rtol = 1e-4`` on outputs of size ~1.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import peft
import pytest
import torch
from peft import LoraModel
from torch import nn

from loran_search.adapters import LoranConfig, LoranLayerMixin

TOL = {"atol": 1e-5, "rtol": 1e-4}
SINTER = {"amplitude": 0.5, "frequency": 3.0}
METHODS = ["lora", "identity", "sinter"]
COMBINATIONS = ["cat", "linear", "svd", "ties", "dare_linear", "magnitude_prune_svd"]
#: peft's own LoRA fails the SVD types on a 3×3 convolution (shape error), so they run on the MLP.
SVD_FREE = [c for c in COMBINATIONS if not c.endswith("svd")]


class MLP(nn.Module):
    """10 → 20 → 20 → 2 with ReLUs; LoRA targets the first two linear layers."""

    targets = ("lin0", "lin1")

    def __init__(self) -> None:
        super().__init__()
        self.lin0, self.lin1, self.lin2 = nn.Linear(10, 20), nn.Linear(20, 20), nn.Linear(20, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.lin2(torch.relu(self.lin1(torch.relu(self.lin0(x)))))

    @staticmethod
    def inputs(n: int = 6) -> torch.Tensor:
        return torch.randn(n, 10, generator=torch.Generator().manual_seed(11))


class ConvNet(nn.Module):
    """Conv2d(3 → 6, 3×3, padding 1) → ReLU → Linear(6·5·5 → 3); LoRA on both."""

    targets = ("conv", "lin")

    def __init__(self) -> None:
        super().__init__()
        self.conv, self.lin = nn.Conv2d(3, 6, 3, padding=1), nn.Linear(6 * 5 * 5, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.lin(torch.relu(self.conv(x)).flatten(1))

    @staticmethod
    def inputs(n: int = 6) -> torch.Tensor:
        return torch.randn(n, 3, 5, 5, generator=torch.Generator().manual_seed(11))


MODELS: dict[str, type[MLP] | type[ConvNet]] = {"mlp": MLP, "conv": ConvNet}


def config(method: str, model: str, **kw: Any) -> peft.LoraConfig:
    """r = 4, alpha = 8 (s = 2 ≠ 1, so a scale moved inside f would show)."""
    kw = {"r": 4, "lora_alpha": 8, "target_modules": list(MODELS[model].targets), **kw}
    if method == "lora":
        return peft.LoraConfig(**kw)
    if method == "identity":
        return LoranConfig(activation="identity", **kw)
    return LoranConfig(activation="sinter", activation_params=SINTER, **kw)


def randomize(model: nn.Module, seed: int = 1, std: float = 0.4) -> None:
    """Every lora_A/lora_B a reproducible random value (B ≠ 0), the same for every method."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in sorted(model.named_parameters()):
            if "lora_A" in name or "lora_B" in name:
                p.copy_(torch.randn(p.shape, generator=gen) * std)


def build(method: str, model: str, names: tuple[str, ...] = ("one",), **kw: Any) -> Any:
    """A PeftModel in eval mode with adapters ``names`` (random factors), the first active."""
    torch.manual_seed(0)
    pm = peft.get_peft_model(MODELS[model](), config(method, model, **kw), adapter_name=names[0])
    for name in names[1:]:
        pm.add_adapter(name, config(method, model, **kw))
    randomize(pm)
    return pm.eval()


def run(pm: Any, x: torch.Tensor, **kw: Any) -> torch.Tensor:
    with torch.no_grad():
        return pm(x, **kw)


def base_out(model: str, x: torch.Tensor) -> torch.Tensor:
    torch.manual_seed(0)
    with torch.no_grad():
        return MODELS[model]()(x)


def lora_layers(pm: Any) -> list[Any]:
    from peft.tuners.lora import LoraLayer

    return [m for m in pm.modules() if isinstance(m, LoraLayer)]


@pytest.fixture(params=sorted(MODELS))
def model(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture(params=METHODS)
def method(request: pytest.FixtureRequest) -> str:
    return request.param


def test_layers_and_adapter_change_the_output(method, model):
    pm = build(method, model)
    x = MODELS[model].inputs()
    layers = lora_layers(pm)
    assert len(layers) == 2
    assert all(isinstance(m, LoranLayerMixin) == (method != "lora") for m in layers)
    assert (run(pm, x) - base_out(model, x)).abs().max() > 1e-2


def test_save_load_round_trip(method, model, tmp_path: Path):
    pm = build(method, model)
    x = MODELS[model].inputs()
    want = run(pm, x)
    pm.save_pretrained(tmp_path)  # a non-default adapter goes to a folder of its name
    torch.manual_seed(0)
    loaded = peft.PeftModel.from_pretrained(MODELS[model](), tmp_path / "one").eval()
    assert type(loaded.peft_config["default"]) is type(pm.peft_config["one"])
    assert torch.equal(run(loaded, x), want)


def test_merge_unmerge_and_safe_merge(method, model):
    pm = build(method, model)
    x = MODELS[model].inputs()
    want = run(pm, x)
    pm.merge_adapter()
    torch.testing.assert_close(run(pm, x), want, **TOL)
    pm.unmerge_adapter()
    torch.testing.assert_close(run(pm, x), want, **TOL)
    pm.merge_adapter(safe_merge=True)
    torch.testing.assert_close(run(pm, x), want, **TOL)
    pm.unmerge_adapter()
    merged = pm.merge_and_unload(safe_merge=True)
    assert not lora_layers(merged)
    torch.testing.assert_close(run(merged, x), want, **TOL)


def test_disable_adapter_gives_the_base(method, model):
    pm = build(method, model)
    x = MODELS[model].inputs()
    want = run(pm, x)
    with pm.disable_adapter():
        torch.testing.assert_close(run(pm, x), base_out(model, x), **TOL)
    assert torch.equal(run(pm, x), want)


def test_delete_adapter(method, model):
    pm = build(method, model, names=("one", "two"))
    x = MODELS[model].inputs()
    want = run(pm, x)
    pm.delete_adapter("two")
    assert set(pm.peft_config) == {"one"}
    for layer in lora_layers(pm):
        assert "two" not in layer.lora_A and "two" not in layer.lora_B
        assert "two" not in layer.__dict__.get("loran_activation", {})
    assert torch.equal(run(pm, x), want)


def test_two_adapters_set_adapter_and_both_active(method, model):
    pm = build(method, model, names=("one", "two"))
    x = MODELS[model].inputs()
    out_one = run(pm, x)
    pm.set_adapter("two")
    out_two = run(pm, x)
    assert (out_one - out_two).abs().max() > 1e-2
    pm.set_adapter("one")
    assert torch.equal(run(pm, x), out_one)
    pm.base_model.set_adapter(["one", "two"])
    both = run(pm, x)
    pm.merge_adapter(["one", "two"])  # W + Δ_one + Δ_two
    torch.testing.assert_close(run(pm, x), both, **TOL)


def test_mixed_batch(method, model):
    pm = build(method, model, names=("one", "two"))
    x = MODELS[model].inputs()
    out_one = run(pm, x)
    pm.set_adapter("two")
    out_two = run(pm, x)
    names = ["one", "two", "__base__", "two", "one", "__base__"]
    got = run(pm, x, adapter_names=names)
    per_name = {"one": out_one, "two": out_two, "__base__": base_out(model, x)}
    for i, name in enumerate(names):
        torch.testing.assert_close(got[i], per_name[name][i], **TOL)


def test_training_changes_only_the_adapter(method, model):
    pm = build(method, model)
    x = MODELS[model].inputs()
    frozen = {n: p.detach().clone() for n, p in pm.named_parameters() if not p.requires_grad}
    trainable = {n: p.detach().clone() for n, p in pm.named_parameters() if p.requires_grad}
    assert trainable and all("lora_A" in n or "lora_B" in n for n in trainable)
    target = torch.randn(base_out(model, x).shape, generator=torch.Generator().manual_seed(5))
    before = run(pm, x)
    opt = torch.optim.Adam([p for p in pm.parameters() if p.requires_grad], lr=1e-2)
    pm.train()
    losses = []
    for _ in range(5):
        opt.zero_grad()
        loss = nn.functional.mse_loss(pm(x), target)
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    pm.eval()
    assert losses[-1] < losses[0]
    assert (run(pm, x) - before).abs().max() > 1e-3
    assert all(torch.equal(p, frozen[n]) for n, p in pm.named_parameters() if n in frozen)
    assert any(not torch.equal(p, trainable[n]) for n, p in pm.named_parameters() if n in trainable)


# --- add_weighted_adapter: exact for LoRA and identity LoRAN, refused for a non-linear f --------


@pytest.mark.parametrize(
    ("model", "combination"),
    [("mlp", c) for c in COMBINATIONS] + [("conv", c) for c in SVD_FREE],
)
def test_add_weighted_adapter_identity_loran_equals_lora(model, combination):
    x = MODELS[model].inputs()
    outs = {}
    for method in ("lora", "identity"):
        pm = build(method, model, names=("one", "two"))
        torch.manual_seed(3)  # dare drops entries at random: the same draws for both
        pm.add_weighted_adapter(
            ["one", "two"], [1.0, 0.5], "comb", combination_type=combination, density=0.5
        )
        pm.set_adapter("comb")
        outs[method] = run(pm, x)
    torch.testing.assert_close(outs["identity"], outs["lora"], **TOL)


@pytest.mark.parametrize("method", ["lora", "identity"])
def test_cat_combination_equals_the_active_adapters(method, model):
    """``cat`` with weights 1, 1 is exact for a linear f: it equals both adapters active."""
    pm = build(method, model, names=("one", "two"))
    x = MODELS[model].inputs()
    pm.base_model.set_adapter(["one", "two"])
    both = run(pm, x)
    pm.add_weighted_adapter(["one", "two"], [1.0, 1.0], "comb", combination_type="cat")
    pm.set_adapter("comb")
    torch.testing.assert_close(run(pm, x), both, **TOL)


@pytest.mark.parametrize("combination", COMBINATIONS)
def test_add_weighted_adapter_refuses_a_nonlinear_loran(model, combination):
    pm = build("sinter", model, names=("one", "two"))
    x = MODELS[model].inputs()
    want = run(pm, x)
    with pytest.raises(ValueError) as err:
        pm.add_weighted_adapter(
            ["one", "two"], [1.0, 1.0], "comb", combination_type=combination, density=0.5
        )
    msg = str(err.value)
    assert "'one' (activation 'sinter'" in msg and "'two' (activation 'sinter'" in msg
    assert "not f of one low-rank product" in msg and "inside f" in msg
    assert "set_adapter([...])" in msg and "merge_adapter(adapter_names=[...])" in msg
    assert set(pm.peft_config) == {"one", "two"}  # nothing was built
    assert all("comb" not in layer.lora_A for layer in lora_layers(pm))
    assert torch.equal(run(pm, x), want)


def test_one_nonlinear_adapter_alone_and_a_mix_with_lora_are_refused(model):
    pm = build("sinter", model)
    with pytest.raises(ValueError, match=r"'one' \(activation 'sinter'"):
        pm.add_weighted_adapter(["one"], [1.0], "scaled", combination_type="linear")
    pm.add_adapter("plain", config("lora", model))
    with pytest.raises(ValueError, match=r"LoRAN adapter 'one' \(activation 'sinter'"):
        pm.add_weighted_adapter(["plain", "one"], [1.0, 1.0], "comb", combination_type="cat")
    assert set(pm.peft_config) == {"one", "plain"}


def test_what_the_refusal_prevents(model):
    """peft's unguarded method on two Sinter adapters builds another function (issue 25)."""
    unguarded: Callable[..., Any] = LoraModel.add_weighted_adapter.__wrapped__
    pm = build("sinter", model, names=("one", "two"))
    x = MODELS[model].inputs()
    pm.base_model.set_adapter(["one", "two"])
    both = run(pm, x)
    unguarded(pm.base_model, ["one", "two"], [1.0, 1.0], "comb", combination_type="cat")
    pm.set_adapter("comb")
    assert (run(pm, x) - both).abs().max() > 1e-2
