"""LoRAN layers inside peft: exact numerics, LoRA equivalence, B = 0, 8-bit, several adapters."""

from __future__ import annotations

import copy

import peft
import pytest
import torch

from activations import get_activation, get_spec, list_activations
from loran_search.adapters import (
    LoranConfig,
    LoranLinear,
    LoranLinear4bit,
    LoranLinear8bitLt,
)

TARGETS = ["q_proj", "v_proj"]


def _cfg(activation: str = "sinter", params: dict | None = None, **kw) -> LoranConfig:
    base = {"r": 4, "lora_alpha": 8, "lora_dropout": 0.0, "target_modules": TARGETS}
    base.update(kw)
    return LoranConfig(activation=activation, activation_params=params or {}, **base)


def _layers(model) -> list:
    return [m for m in model.modules() if hasattr(m, "lora_A") and "default" in m.lora_A]


def _dequantized_weight(layer) -> torch.Tensor:
    import bitsandbytes as bnb

    base = layer.get_base_layer()
    if isinstance(base, bnb.nn.Linear4bit):
        return bnb.functional.dequantize_4bit(base.weight.data, base.weight.quant_state)
    return base.weight.detach()


def _formula_output(layer, x: torch.Tensor, f, scaling: float) -> torch.Tensor:
    """y = x·Wᵀ + bias + s·x·f(B·A)ᵀ, written out with plain autograd."""
    a, b = layer.lora_A["default"].weight, layer.lora_B["default"].weight
    w = _dequantized_weight(layer)
    bias = layer.get_base_layer().bias
    y = x @ w.T + scaling * x @ f(b @ a).T
    return y if bias is None else y + bias


@pytest.mark.parametrize("base", ["fp32", "nf4"])
@pytest.mark.parametrize("name", ["sinter", "tanh", "fourier_sine", "legendre"])
def test_layer_matches_formula_with_nonzero_b(base, name, llama, nf4, randomize, nonlinear):
    model = nf4() if base == "nf4" else llama()
    params = nonlinear[name]
    pm = peft.get_peft_model(model, _cfg(name, params))
    randomize(pm)
    layer = pm.base_model.model.model.layers[0].self_attn.q_proj
    assert isinstance(layer, LoranLinear4bit if base == "nf4" else LoranLinear)
    f = get_activation(name, **params)
    x = torch.randn(3, 5, 64, requires_grad=True)
    x_ref = x.detach().clone().requires_grad_(True)
    y = layer(x)
    y_ref = _formula_output(layer, x_ref, f, layer.scaling["default"])
    torch.testing.assert_close(y, y_ref, rtol=1e-5, atol=1e-5)
    # the update is visible: plain LoRA with the same weights gives something else
    a, b = layer.lora_A["default"].weight, layer.lora_B["default"].weight
    lora_y = x_ref @ _dequantized_weight(layer).T + layer.scaling["default"] * x_ref @ (b @ a).T
    assert (y - lora_y).abs().max() > 1e-3

    g = torch.randn_like(y)
    grads = torch.autograd.grad(y, (x, a, b), g)
    grads_ref = torch.autograd.grad(y_ref, (x_ref, a, b), g)
    for got, want in zip(grads, grads_ref, strict=True):
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5)


def test_dropout_active_uses_dropped_input_for_the_update_only(llama, randomize):
    pm = peft.get_peft_model(
        llama(), _cfg("sinter", {"amplitude": 0.05, "frequency": 3.0}, lora_dropout=0.5)
    )
    randomize(pm)
    pm.train()
    layer = pm.base_model.model.model.layers[1].self_attn.v_proj
    x = torch.randn(2, 4, 64)
    torch.manual_seed(11)
    y = layer(x)
    torch.manual_seed(11)
    xd = torch.nn.functional.dropout(x, 0.5, training=True)
    f = get_activation("sinter", amplitude=0.05, frequency=3.0)
    a, b = layer.lora_A["default"].weight, layer.lora_B["default"].weight
    want = layer.get_base_layer()(x) + layer.scaling["default"] * xd @ f(b @ a).T
    torch.testing.assert_close(y, want, rtol=1e-5, atol=1e-5)
    pm.eval()  # dropout off: the fused form, same formula with x
    want_eval = layer.get_base_layer()(x) + layer.scaling["default"] * x @ f(b @ a).T
    torch.testing.assert_close(layer(x), want_eval, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("base", ["fp32", "nf4"])
@pytest.mark.parametrize("rslora", [False, True])
def test_identity_equals_peft_lora_outputs_and_gradients(
    base, rslora, llama, nf4, randomize, make_ids
):
    build = nf4 if base == "nf4" else llama
    common = {
        "r": 4,
        "lora_alpha": 8,
        "lora_dropout": 0.0,
        "target_modules": TARGETS,
        "use_rslora": rslora,
    }
    lora = peft.get_peft_model(build(), peft.LoraConfig(**common))
    loran = peft.get_peft_model(build(), LoranConfig(activation="identity", **common))
    randomize(lora)
    randomize(loran)
    assert any(isinstance(m, LoranLinear | LoranLinear4bit) for m in loran.modules())
    ids = make_ids()
    outs = []
    for m in (lora, loran):
        m.train()
        loss = m(input_ids=ids, labels=ids).loss
        loss.backward()
        grads = {n: p.grad for n, p in m.named_parameters() if p.requires_grad}
        outs.append((loss.detach(), m(input_ids=ids).logits.detach(), grads))
    (l1, z1, g1), (l2, z2, g2) = outs
    torch.testing.assert_close(l2, l1, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(z2, z1, rtol=1e-4, atol=1e-5)
    assert g1.keys() == g2.keys() and len(g1) == 8
    for k in g1:
        torch.testing.assert_close(g2[k], g1[k], rtol=1e-3, atol=1e-6)


def _zero_at_zero(name: str) -> bool:
    return float(get_activation(name)(torch.zeros(3)).abs().max()) == 0.0


@pytest.mark.parametrize("name", [n for n in list_activations() if _zero_at_zero(n)])
def test_b_zero_init_leaves_model_unchanged(name, llama, make_ids):
    ids = make_ids()
    with torch.no_grad():
        want = llama()(input_ids=ids).logits
        pm = peft.get_peft_model(llama(), _cfg(name))  # default init: B = 0
        got = pm(input_ids=ids).logits
    torch.testing.assert_close(got, want, rtol=0, atol=1e-6)


def test_nonzero_f0_activation_does_change_the_model(llama, make_ids):
    if "sigmoid" not in list_activations():
        pytest.skip("no registered activation with f(0) != 0")
    assert not _zero_at_zero("sigmoid")
    ids = make_ids()
    with torch.no_grad():
        want = llama()(input_ids=ids).logits
        got = peft.get_peft_model(llama(), _cfg("sigmoid"))(input_ids=ids).logits
    assert (got - want).abs().max() > 1e-3


def test_eight_bit_layer_matches_formula(llama, randomize):
    from loran_search.quant import quantize_8bit

    model = llama()
    quantize_8bit(model)
    pm = peft.get_peft_model(model, _cfg("sinter", {"amplitude": 0.05, "frequency": 3.0}))
    randomize(pm)
    layer = pm.base_model.model.model.layers[0].self_attn.q_proj
    assert isinstance(layer, LoranLinear8bitLt)
    x = torch.randn(2, 3, 64)
    f = get_activation("sinter", amplitude=0.05, frequency=3.0)
    a, b = layer.lora_A["default"].weight, layer.lora_B["default"].weight
    want = layer.get_base_layer()(x) + layer.scaling["default"] * x @ f(b @ a).T
    torch.testing.assert_close(layer(x), want, rtol=1e-5, atol=1e-5)


def test_several_adapters_switching_and_deleting(llama, randomize, make_ids):
    ids = make_ids()
    sinter = ("sinter", {"amplitude": 0.05, "frequency": 3.0})
    tanh = ("tanh", {})
    single = {}
    for key, (name, params) in {"wave": sinter, "tan": tanh}.items():
        m = peft.get_peft_model(llama(), _cfg(name, params))
        randomize(m, seed={"wave": 1, "tan": 2}[key])
        with torch.no_grad():
            single[key] = m(input_ids=ids).logits
    pm = peft.get_peft_model(llama(), _cfg(*sinter), adapter_name="wave")
    pm.add_adapter("tan", _cfg(*tanh))
    pm.add_adapter("plain", peft.LoraConfig(r=4, lora_alpha=8, target_modules=TARGETS))
    # same random values as the single-adapter models
    for key, seed in (("wave", 1), ("tan", 2)):
        ref = peft.get_peft_model(llama(), _cfg(*(sinter if key == "wave" else tanh)))
        randomize(ref, seed=seed)
        src = {
            n.replace(".default", f".{key}"): p for n, p in ref.named_parameters() if "lora_" in n
        }
        with torch.no_grad():
            for n, p in pm.named_parameters():
                if n in src:
                    p.copy_(src[n])
    layer = pm.base_model.model.model.layers[0].self_attn.q_proj
    assert layer.loran_activations["wave"].name == "sinter"
    assert layer.loran_activations["tan"].name == "tanh"
    assert "plain" not in layer.loran_activations
    with torch.no_grad():
        pm.set_adapter("wave")
        torch.testing.assert_close(pm(input_ids=ids).logits, single["wave"], rtol=1e-5, atol=1e-5)
        pm.set_adapter("tan")
        torch.testing.assert_close(pm(input_ids=ids).logits, single["tan"], rtol=1e-5, atol=1e-5)
        # plain LoRA adapter with B = 0 next to LoRAN: the model equals the base
        pm.set_adapter("plain")
        base = llama()(input_ids=ids).logits
        torch.testing.assert_close(pm(input_ids=ids).logits, base, rtol=1e-5, atol=1e-5)
        with pm.disable_adapter():
            torch.testing.assert_close(pm(input_ids=ids).logits, base, rtol=1e-5, atol=1e-5)
    pm.delete_adapter("tan")
    assert "tan" not in layer.loran_activations and "tan" not in layer.lora_A


def test_lora_parameter_names_kept(llama):
    pm = peft.get_peft_model(llama(), _cfg())
    names = [n for n, p in pm.named_parameters() if p.requires_grad]
    assert names and all(".lora_A.default." in n or ".lora_B.default." in n for n in names)
    assert pm.get_nb_trainable_parameters()[0] == 2 * 2 * (4 * 64 + 64 * 4)


def test_unsupported_target_layer_is_refused(llama):
    with pytest.raises(ValueError, match=r"LoRAN cannot adapt module .*Embedding"):
        peft.get_peft_model(llama(), _cfg(target_modules=["embed_tokens"]))


def test_copy_keeps_activation(llama):
    pm = peft.get_peft_model(llama(), _cfg("tanh"))
    clone = copy.deepcopy(pm)
    layer = clone.base_model.model.model.layers[0].self_attn.q_proj
    assert layer.loran_activations["default"] == get_activation("tanh")
    assert get_spec("tanh").family == "baseline"


def test_nf4_bfloat16_compute_matches_formula_to_bf16_tolerance(nf4, randomize):
    pm = peft.get_peft_model(
        nf4(compute_dtype=torch.bfloat16), _cfg("sinter", {"amplitude": 0.05, "frequency": 3.0})
    )
    randomize(pm)
    layer = pm.base_model.model.model.layers[0].self_attn.q_proj
    x = torch.randn(3, 5, 64)
    y = layer(x)
    assert y.dtype == torch.float32
    f = get_activation("sinter", amplitude=0.05, frequency=3.0)
    want = _formula_output(layer, x, f, layer.scaling["default"])
    rel = float((y - want).norm() / want.norm())
    base_rel = float(
        (layer.get_base_layer()(x) - x @ _dequantized_weight(layer).float().T).norm()
        / (x @ _dequantized_weight(layer).float().T).norm()
    )
    assert rel < 3 * max(base_rel, 2**-8)  # the bf16 base layer's own rounding, not more
    assert rel > 0  # it really ran in bfloat16


def test_mixed_batch_adapter_names(llama, randomize):
    pm = peft.get_peft_model(llama(), _cfg("sinter", {"amplitude": 0.05, "frequency": 3.0}))
    pm.add_adapter("tan", _cfg("tanh"))
    randomize(pm)
    pm.eval()
    x = torch.randint(0, 96, (3, 7))
    with torch.no_grad():
        mixed = pm(input_ids=x, adapter_names=["default", "tan", "__base__"]).logits
        pm.set_adapter("default")
        a = pm(input_ids=x).logits
        pm.set_adapter("tan")
        b = pm(input_ids=x).logits
        with pm.disable_adapter():
            base = pm(input_ids=x).logits
    torch.testing.assert_close(mixed[0], a[0], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(mixed[1], b[1], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(mixed[2], base[2], rtol=1e-5, atol=1e-5)
    assert (a[0] - b[0]).abs().max() > 1e-3
