"""LoRAN on nn.Conv2d: identity = peft's conv LoRA, a step, merge, save → load, refusals."""

from __future__ import annotations

import copy
from pathlib import Path

import peft
import pytest
import torch
from peft import PeftModel
from torch import nn

from loran_search.adapters import LoranConfig, LoranConv2d
from loran_search.train import adapter_layers, mechanism_figures


class TinyConvNet(nn.Module):
    def __init__(self, groups: int = 1, dilation: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(2, 8, 3, padding=1)
        self.conv2 = nn.Conv2d(8, 8, 3, padding=dilation, groups=groups, dilation=dilation)
        self.point = nn.Conv2d(8, 6, 1)
        self.fc = nn.Linear(6 * 6 * 6, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.conv1(x))
        h = torch.relu(self.conv2(h))
        return self.fc(self.point(h).flatten(1))


TARGETS = ["conv1", "conv2", "point", "fc"]


def _wrap(base: nn.Module, cfg_cls: type, **kw: object) -> peft.PeftModel:
    torch.manual_seed(1)
    model = peft.get_peft_model(
        copy.deepcopy(base), cfg_cls(r=3, lora_alpha=6, target_modules=TARGETS, **kw)
    )
    torch.manual_seed(2)
    with torch.no_grad():  # B = 0 at init: give every update a non-zero B
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.copy_(torch.randn_like(p) * 0.3)
    return model


@pytest.fixture
def base() -> nn.Module:
    torch.manual_seed(0)
    return TinyConvNet().eval()


@pytest.fixture
def x() -> torch.Tensor:
    torch.manual_seed(3)
    return torch.randn(4, 2, 6, 6)


def test_conv_layers_are_loran(base: nn.Module) -> None:
    model = _wrap(base, LoranConfig, activation="sinter")
    inner = model.base_model.model
    assert isinstance(inner.conv1, LoranConv2d) and isinstance(inner.point, LoranConv2d)


@pytest.mark.parametrize("dropout", [0.0, 0.1])
def test_identity_is_peft_conv_lora(base: nn.Module, x: torch.Tensor, dropout: float) -> None:
    lora = _wrap(base, peft.LoraConfig, lora_dropout=dropout)
    loran = _wrap(base, LoranConfig, activation="identity", lora_dropout=dropout)
    for m in (lora, loran):
        m.eval()
    torch.testing.assert_close(loran(x), lora(x), rtol=1e-5, atol=1e-5)
    for name in ("conv1", "conv2", "point"):
        a = getattr(lora.base_model.model, name).get_delta_weight("default")
        b = getattr(loran.base_model.model, name).get_delta_weight("default")
        torch.testing.assert_close(b, a, rtol=1e-6, atol=1e-6)
    # training mode with dropout: the same masks give the same outputs
    lora.train()
    loran.train()
    torch.manual_seed(5)
    y_lora = lora(x)
    torch.manual_seed(5)
    y_loran = loran(x)
    torch.testing.assert_close(y_loran, y_lora, rtol=1e-5, atol=1e-5)


def test_update_is_f_of_the_flattened_product(base: nn.Module) -> None:
    model = _wrap(
        base,
        LoranConfig,
        activation="sinter",
        activation_params={"amplitude": 0.5, "frequency": 10.0},
    )
    layer = model.base_model.model.conv2
    a = layer.lora_A["default"].weight.flatten(1)
    b = layer.lora_B["default"].weight.flatten(1)
    p = b @ a
    fp = p + 0.5 * p * torch.sin(10.0 * p)
    expected = (layer.scaling["default"] * fp).reshape(layer.get_base_layer().weight.shape)
    torch.testing.assert_close(layer.get_delta_weight("default"), expected)


def test_training_step_gives_finite_nonzero_gradients(base: nn.Module, x: torch.Tensor) -> None:
    model = _wrap(
        base,
        LoranConfig,
        activation="sinter",
        activation_params={"amplitude": 0.5, "frequency": 10.0},
        lora_dropout=0.1,
    )
    model.train()
    loss = model(x).pow(2).mean()
    loss.backward()
    grads = {n: p.grad for n, p in model.named_parameters() if p.requires_grad}
    assert len(grads) == 2 * len(TARGETS)
    for name, g in grads.items():
        assert g is not None and torch.isfinite(g).all(), name
        assert float(g.abs().sum()) > 0, name


def test_merge_equals_unmerged_and_save_load(
    base: nn.Module, x: torch.Tensor, tmp_path: Path
) -> None:
    model = _wrap(
        base,
        LoranConfig,
        activation="sinter",
        activation_params={"amplitude": 0.5, "frequency": 10.0},
    )
    model.eval()
    with torch.no_grad():
        y = model(x)
    model.save_pretrained(tmp_path / "ad")
    loaded = PeftModel.from_pretrained(copy.deepcopy(base), tmp_path / "ad")
    assert isinstance(loaded.base_model.model.conv1, LoranConv2d)
    for (n1, p1), (n2, p2) in zip(
        model.state_dict().items(), loaded.state_dict().items(), strict=True
    ):
        assert n1 == n2 and torch.equal(p1, p2), n1
    with torch.no_grad():
        assert torch.equal(loaded(x), y)
        model.merge_adapter()
        torch.testing.assert_close(model(x), y, rtol=1e-5, atol=1e-5)
        model.unmerge_adapter()
        torch.testing.assert_close(model(x), y, rtol=1e-5, atol=1e-5)


def test_mechanism_reads_the_flattened_kernel(base: nn.Module) -> None:
    model = _wrap(
        base,
        LoranConfig,
        activation="sinter",
        activation_params={"amplitude": 0.5, "frequency": 10.0},
    )
    layers = adapter_layers(model)
    conv1 = next(layer for layer in layers if layer.module.endswith("conv1"))
    assert conv1.A.shape == (3, 2 * 3 * 3) and conv1.B.shape == (8, 3)
    fig = mechanism_figures(layers)
    assert fig["n_layers"] == len(TARGETS)
    assert fig["p_entries"] == 8 * 18 + 8 * 72 + 6 * 8 + 5 * 216
    assert 0 < fig["nonlinearity_median"] < 10


@pytest.mark.parametrize(
    ("kw", "match"), [({"groups": 2}, "groups=1"), ({"dilation": 2}, "dilation")]
)
def test_refused_convolutions(kw: dict[str, int], match: str) -> None:
    base = TinyConvNet(**kw)
    with pytest.raises(ValueError, match=match):
        peft.get_peft_model(base, LoranConfig(r=2, target_modules=["conv2"]))
