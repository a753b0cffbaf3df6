"""Pins on the private or experimental peft behaviour LoRAN relies on (one test per behaviour).

LoRAN is a peft LoRA variant (``peft_type: LORA``), not a peft type of its own; the reasons and
this list are in ``docs/design-changes.md``, section "peft integration". A peft upgrade that
changes any of these fails here, by name, before it silently changes what an adapter computes.
Loading through every entry point (weights bit for bit) is pinned in ``test_fixture_compat.py``.
"""

from __future__ import annotations

import dataclasses
import inspect
import json
import warnings

import bitsandbytes as bnb
import peft
import pytest
import torch
from peft.config import PeftConfigMixin
from peft.tuners.lora import bnb as lora_bnb
from peft.tuners.lora import layer as lora_layer

from loran_search.adapters import LORAN_FIELDS, LoranConfig, LoranVariant, io
from loran_search.adapters.dispatch import UnsupportedLayer
from loran_search.quant import quantize_4bit

TARGETS = ["q_proj", "v_proj"]


def _cfg(**kw):
    return LoranConfig(r=2, lora_alpha=4, target_modules=TARGETS, **kw)


def test_peft_is_the_pinned_version():
    assert peft.__version__ == "0.21.2", "re-check every pin in this file, then update pyproject"


# --- 1. the config factory: PeftConfigMixin.from_peft_type -----------------------------------


def test_from_peft_type_is_the_classmethod_factory_we_wrap():
    original = io._ORIGINAL_FROM_PEFT_TYPE
    assert original.__qualname__ == "PeftConfigMixin.from_peft_type"
    assert list(inspect.signature(original).parameters) == ["cls", "kwargs"]
    assert isinstance(PeftConfigMixin.__dict__["from_peft_type"], classmethod)
    assert PeftConfigMixin.from_peft_type.__func__ is io._loran_from_peft_type
    assert peft.PEFT_TYPE_TO_CONFIG_MAPPING[peft.PeftType.LORA] is peft.LoraConfig


def test_entry_points_reach_from_peft_type(llama, tmp_path, monkeypatch):
    """Every config-reading entry point builds the config through the factory we wrap."""
    peft.get_peft_model(llama(), _cfg()).save_pretrained(tmp_path)
    calls = []
    wrapped = PeftConfigMixin.__dict__["from_peft_type"].__func__

    def spy(cls, **kwargs):
        calls.append(cls.__name__)
        return wrapped(cls, **kwargs)

    monkeypatch.setattr(PeftConfigMixin, "from_peft_type", classmethod(spy))
    entries = {
        "PeftConfig.from_pretrained": lambda: peft.PeftConfig.from_pretrained(tmp_path),
        "LoraConfig.from_pretrained": lambda: peft.LoraConfig.from_pretrained(tmp_path),
        "PeftModel.from_pretrained": lambda: peft.PeftModel.from_pretrained(llama(), tmp_path),
        "PeftModel.load_adapter": lambda: peft.get_peft_model(llama(), _cfg()).load_adapter(
            tmp_path, adapter_name="other"
        ),
        "transformers load_adapter": lambda: llama().load_adapter(str(tmp_path)),
    }
    for name, entry in entries.items():
        calls.clear()
        entry()
        assert calls, f"{name} no longer calls PeftConfigMixin.from_peft_type"


def test_bare_peft_reads_a_loran_file_as_lora_with_a_warning(tmp_path):
    """What happens without loran_search: peft drops the LoRAN fields and warns, naming them."""
    _cfg(activation="tanh").save_pretrained(tmp_path)
    fields = json.loads((tmp_path / "adapter_config.json").read_text())
    with pytest.warns(UserWarning, match="Unexpected keyword arguments") as record:
        cfg = io._ORIGINAL_FROM_PEFT_TYPE(peft.PeftConfig, **fields)
    assert type(cfg) is peft.LoraConfig
    message = str(record[0].message)
    assert all(f"'{name}'" in message for name in LORAN_FIELDS)


def test_fields_of_a_newer_peft_are_dropped_and_the_config_stays_loran(tmp_path):
    """Like peft's own factory, unknown (newer-peft) fields are dropped with a warning."""
    _cfg(activation="tanh").save_pretrained(tmp_path)
    path = tmp_path / "adapter_config.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), "field_of_peft_9": 1}))
    with pytest.warns(UserWarning, match="field_of_peft_9"):
        cfg = peft.PeftConfig.from_pretrained(tmp_path)
    assert type(cfg) is LoranConfig and cfg.activation == "tanh"


# --- 2. the injection hook: LoraModel._prepare_model -------------------------------------------


def _raw_nf4(llama):
    model = llama()
    quantize_4bit(model)
    for m in model.modules():
        if isinstance(m, bnb.nn.Linear4bit):
            m.support_avx512bf16_for_cpu = True
    return model


def _guarded(model):
    layers = [m for m in model.modules() if isinstance(m, bnb.nn.Linear4bit)]
    return len(layers) == 14 and all(not m.support_avx512bf16_for_cpu for m in layers)


def test_prepare_model_signature_and_call_site():
    assert list(inspect.signature(peft.LoraModel._prepare_model).parameters) == [
        "self",
        "peft_config",
        "model",
    ]
    assert getattr(peft.LoraModel._prepare_model, "_loran", False)
    src = inspect.getsource(peft.tuners.tuners_utils.BaseTuner.inject_adapter)
    assert "self._prepare_model(peft_config, model)" in src


@pytest.mark.parametrize(
    "path", ["get_peft_model", "from_pretrained", "add_adapter", "load_adapter", "inject"]
)
def test_every_injection_path_guards_all_4bit_layers(path, llama, tmp_path):
    if path in {"from_pretrained", "load_adapter"}:
        peft.get_peft_model(llama(), _cfg()).save_pretrained(tmp_path)
    model = _raw_nf4(llama)
    if path == "get_peft_model":
        peft.get_peft_model(model, _cfg())
    elif path == "from_pretrained":
        peft.PeftModel.from_pretrained(model, tmp_path)
    elif path in {"add_adapter", "load_adapter"}:
        pm = peft.get_peft_model(model, peft.LoraConfig(r=2, target_modules=["q_proj"]))
        assert not _guarded(pm)  # a plain LoRA adapter does not guard
        if path == "add_adapter":
            pm.add_adapter("loran", _cfg())
        else:
            pm.load_adapter(tmp_path, adapter_name="loran")
    else:
        peft.inject_adapter_in_model(_cfg(), model)
    assert _guarded(model)


# --- 3. the layer dispatch: LoraConfig._register_custom_module (experimental) -----------------


def test_custom_module_mapping_is_per_config_ordered_and_not_saved(tmp_path):
    cfg = _cfg()
    assert list(cfg._custom_modules) == [
        bnb.nn.Linear4bit,
        bnb.nn.Linear8bitLt,
        torch.nn.Linear,
        torch.nn.Conv2d,
        torch.nn.Module,
    ]
    assert cfg._custom_modules[torch.nn.Module] is UnsupportedLayer
    assert peft.LoraConfig(r=2)._custom_modules is None  # other configs are untouched
    assert "_custom_modules" not in {f.name for f in dataclasses.fields(cfg)}
    cfg.save_pretrained(tmp_path)
    assert "_custom_modules" not in json.loads((tmp_path / "adapter_config.json").read_text())
    src = inspect.getsource(peft.LoraModel._create_new_module)
    assert "config._custom_modules.items()" in src and "isinstance(target_base_layer, key)" in src


# --- 4. the variant hook: LoraVariant and LoraLayer.resolve_lora_variant -----------------------


@pytest.mark.parametrize(
    "cls", [lora_layer.Linear, lora_layer.Conv2d, lora_bnb.Linear4bit, lora_bnb.Linear8bitLt]
)
def test_resolve_lora_variant_takes_the_config(cls):
    params = inspect.signature(cls.resolve_lora_variant).parameters
    assert params["config"].kind is inspect.Parameter.KEYWORD_ONLY


def test_lora_variant_interface():
    for name in ("init", "merge_safe", "merge_unsafe", "unmerge", "forward"):
        assert isinstance(inspect.getattr_static(lora_layer.LoraVariant, name), staticmethod)
    assert list(inspect.signature(lora_layer.LoraVariant.forward).parameters)[:4] == [
        "module",
        "active_adapter",
        "x",
        "result",
    ]


def test_layers_hold_a_loran_variant(llama):
    pm = peft.get_peft_model(llama(), _cfg())
    layer = pm.base_model.model.model.layers[0].self_attn.q_proj
    assert isinstance(layer.lora_variant["default"], LoranVariant)


def test_peft_own_layers_refuse_a_loran_config():
    """The `is_lora_variant` field metadata: peft's plain layer refuses LoRAN, never trains LoRA."""
    assert LoranConfig.__dataclass_fields__["activation"].metadata["is_lora_variant"]
    with pytest.raises(ValueError, match=r"unsupported variant combination: \('activation',\)"):
        lora_layer.Linear(torch.nn.Linear(4, 4), "default", config=_cfg(), r=2, lora_alpha=4)


# --- 5. layer internals the LoRAN forward uses -------------------------------------------------


def test_layer_internals_used_by_the_forward():
    assert "alora_offsets" in lora_layer.VARIANT_KWARG_KEYS
    assert list(inspect.signature(lora_layer.LoraLayer._check_forward_args).parameters) == [
        "self",
        "x",
        "args",
        "kwargs",
    ]
    assert "scaling" in lora_layer.LoraLayer.other_param_names


def test_adapter_state_in_other_param_names_is_deleted_with_the_adapter(llama):
    pm = peft.get_peft_model(llama(), _cfg(), adapter_name="a")
    pm.add_adapter("b", _cfg(activation="tanh"))
    layer = pm.base_model.model.model.layers[0].self_attn.q_proj
    assert set(layer.loran_activations) == {"a", "b"}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pm.delete_adapter("b")
    assert set(layer.loran_activations) == {"a"}


# --- 6. the add_weighted_adapter guard: LoraModel.add_weighted_adapter (public) ----------------


def test_add_weighted_adapter_is_the_lora_model_method_we_wrap():
    """PeftModel has no method of its own (it forwards to the tuner through __getattr__), and
    peft's method takes the adapter names as ``adapters``: the guard reads them from there."""
    from peft import LoraModel

    from loran_search.adapters.weighted import install_weighted_adapter_guard

    guarded = LoraModel.add_weighted_adapter
    assert getattr(guarded, "_loran", False)
    original = guarded.__wrapped__
    assert original.__qualname__ == "LoraModel.add_weighted_adapter"
    assert list(inspect.signature(original).parameters)[:5] == [
        "self",
        "adapters",
        "weights",
        "adapter_name",
        "combination_type",
    ]
    assert "add_weighted_adapter" not in vars(peft.PeftModel)
    install_weighted_adapter_guard()  # idempotent: not wrapped twice
    assert LoraModel.add_weighted_adapter is guarded
