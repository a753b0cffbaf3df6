"""LoranConfig: validation naming the field, resolved parameters, formulas, refused combinations."""

from __future__ import annotations

import peft
import pytest

from activations import ActivationError
from loran_search.adapters import LoranConfig


def _cfg(**kw) -> LoranConfig:
    return LoranConfig(r=4, lora_alpha=8, target_modules=["q_proj"], **kw)


def test_is_a_lora_config_with_resolved_params():
    cfg = _cfg(activation="sinter", activation_params={"amplitude": 1e-3})
    assert isinstance(cfg, peft.LoraConfig) and cfg.peft_type == peft.PeftType.LORA
    assert cfg.activation_params == {"amplitude": 1e-3, "frequency": 1e4}
    assert cfg.activation_expr == "x + amplitude*x*sin(frequency*x)"
    assert cfg.bound_activation().name == "sinter"
    assert cfg.loran_version == 1
    assert _cfg().activation == "sinter"  # the published activation is the default


@pytest.mark.parametrize(
    ("kwargs", "pattern"),
    [
        (
            {"activation": "sinterr"},
            r"Unknown activation 'sinterr' in LoranConfig\.activation.*"
            r"Did you mean 'sinter'",
        ),
        (
            {"activation": "sinter", "activation_params": {"amp": 1.0}},
            r"LoranConfig\.activation_params: .*no parameter 'amp'.*amplitude, frequency",
        ),
        (
            {"activation": "sinter", "activation_params": {"amplitude": 50.0}},
            r"LoranConfig\.activation_params: .*outside its declared range",
        ),
        (
            {"activation": "x + a*x*sin(w*x", "activation_params": {"a": 1.0, "w": 1.0}},
            r"LoranConfig\.activation: .*column 16",
        ),
        ({"activation": "x + a*x"}, r"LoranConfig\.activation: .*unknown name 'a'"),
        (
            {"activation": "x + a*x", "activation_params": {"a": "big"}},
            r"LoranConfig\.activation_params: .*plain numbers",
        ),
        ({"activation": ""}, r"LoranConfig\.activation must be"),
        ({"activation": "__import__('os')"}, r"LoranConfig\.activation"),
    ],
)
def test_bad_activation_fields_are_named(kwargs, pattern):
    with pytest.raises(ActivationError, match=pattern):
        _cfg(**kwargs)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"use_dora": True}, "use_dora"),
        ({"lora_bias": True}, "lora_bias"),
        ({"fan_in_fan_out": True}, "fan_in_fan_out"),
        ({"init_lora_weights": "pissa"}, "init_lora_weights"),
        ({"loran_version": 99}, "loran_version"),
    ],
)
def test_incompatible_peft_options_are_refused(kwargs, field):
    with pytest.raises(ValueError, match=field):
        _cfg(**kwargs)


def test_formula_activation():
    cfg = _cfg(activation=" x + a*x*sin(w*x) ", activation_params={"a": 0.01, "w": 10})
    assert cfg.activation == "x + a*x*sin(w*x)"
    assert cfg.activation_params == {"a": 0.01, "w": 10.0}
    f = cfg.bound_activation()
    import torch

    x = torch.linspace(-1, 1, 5)
    torch.testing.assert_close(f(x), x + 0.01 * x * torch.sin(10 * x))
    # the same formula and values reuse one registration
    assert (
        _cfg(activation="x + a*x*sin(w*x)", activation_params={"a": 0.01, "w": 10.0})
        .bound_activation()
        .name
        == f.name
    )


def test_changed_registered_expr_warns():
    with pytest.warns(UserWarning, match="was recorded as"):
        _cfg(activation="sinter", activation_expr="x + amplitude*sin(x)")
