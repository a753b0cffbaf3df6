"""Save → load: adapter_config.json, bit-for-bit logits, the unregistered-activation error."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import peft
import pytest
import torch

from activations import ActivationError, Param, register_activation, unregister
from loran_search.adapters import (
    LORAN_FIELDS,
    LoranConfig,
    LoranLinear,
    LoranLinear4bit,
    load_adapter,
)

TARGETS = ["q_proj", "v_proj"]
REPO = Path(__file__).resolve().parents[3]


def _trained(build, randomize, activation="sinter", params=None):
    cfg = LoranConfig(
        r=4,
        lora_alpha=8,
        lora_dropout=0.1,
        target_modules=TARGETS,
        activation=activation,
        activation_params=params if params is not None else {"amplitude": 0.05},
    )
    pm = peft.get_peft_model(build(), cfg)
    randomize(pm)
    return pm.eval()


@pytest.mark.parametrize("base", ["fp32", "nf4"])
def test_save_load_identical_logits(base, llama, nf4, randomize, make_ids, tmp_path):
    build = nf4 if base == "nf4" else llama
    ids = make_ids()
    pm = _trained(build, randomize)
    with torch.no_grad():
        want = pm(input_ids=ids).logits
    pm.save_pretrained(tmp_path)
    saved = json.loads((tmp_path / "adapter_config.json").read_text())
    assert saved["peft_type"] == "LORA"
    assert saved["activation"] == "sinter"
    assert saved["activation_params"] == {"amplitude": 0.05, "frequency": 1e4}  # resolved
    assert saved["activation_expr"] == "x + amplitude*x*sin(frequency*x)"
    assert saved["loran_version"] == 1

    layer_cls = LoranLinear4bit if base == "nf4" else LoranLinear
    for loader in ("peft", "load_adapter"):
        fresh = build()
        if loader == "peft":
            loaded = peft.PeftModel.from_pretrained(fresh, tmp_path)
        else:
            loaded = load_adapter(fresh, tmp_path)
        assert isinstance(loaded.peft_config["default"], LoranConfig)
        assert isinstance(loaded.base_model.model.model.layers[0].self_attn.q_proj, layer_cls)
        with torch.no_grad():
            got = loaded.eval()(input_ids=ids).logits
        assert torch.equal(got, want)
    # and the generic config entry point gives LoranConfig too
    assert isinstance(peft.PeftConfig.from_pretrained(tmp_path), LoranConfig)


def test_formula_activation_round_trips(llama, randomize, make_ids, tmp_path):
    ids = make_ids()
    pm = _trained(llama, randomize, activation="x + a*x*sin(w*x)", params={"a": 0.05, "w": 3.0})
    with torch.no_grad():
        want = pm(input_ids=ids).logits
    pm.save_pretrained(tmp_path)
    saved = json.loads((tmp_path / "adapter_config.json").read_text())
    assert saved["activation"] == "x + a*x*sin(w*x)"
    loaded = load_adapter(llama(), tmp_path)
    with torch.no_grad():
        assert torch.equal(loaded(input_ids=ids).logits, want)


def test_unregistered_activation_load_error(llama, randomize, tmp_path):
    @register_activation(
        "test_only_wave",
        family="testing",
        params={"amplitude": Param(0.1, low=0.0, high=1.0)},
        expr="x + amplitude*sin(x)",
        force=True,
    )
    def wave(x, amplitude):
        return x + amplitude * torch.sin(x)

    try:
        pm = _trained(llama, randomize, activation="test_only_wave", params={})
        pm.save_pretrained(tmp_path)
    finally:
        unregister("test_only_wave")
    with pytest.raises(ActivationError) as err:
        peft.PeftModel.from_pretrained(llama(), tmp_path)
    msg = str(err.value)
    assert "test_only_wave" in msg and "not usable here" in msg
    assert "x + amplitude*sin(x)" in msg  # what it was
    assert "Import the module that registers it" in msg
    with pytest.raises(ActivationError):
        load_adapter(llama(), tmp_path)


def test_plain_lora_adapters_still_load_as_lora(llama, tmp_path):
    pm = peft.get_peft_model(llama(), peft.LoraConfig(r=4, target_modules=TARGETS))
    pm.save_pretrained(tmp_path)
    cfg = peft.PeftConfig.from_pretrained(tmp_path)
    assert type(cfg) is peft.LoraConfig


def test_load_adapter_missing_dir(llama, tmp_path):
    with pytest.raises(FileNotFoundError, match=r"adapter_config\.json"):
        load_adapter(llama(), tmp_path / "nope")


def test_import_loran_search_is_cheap_and_enough_for_from_pretrained(
    llama, randomize, make_ids, tmp_path
):
    """Fresh interpreter: `import loran_search` imports no peft/torch; later peft loads LoRAN."""
    ids = make_ids()
    pm = _trained(llama, randomize)
    with torch.no_grad():
        want = pm(input_ids=ids).logits
    pm.save_pretrained(tmp_path / "adapter")
    llama().save_pretrained(tmp_path / "base")
    torch.save({"ids": ids, "want": want}, tmp_path / "io.pt")
    script = textwrap.dedent(f"""
        import sys
        import loran_search
        assert "peft" not in sys.modules and "torch" not in sys.modules, "import not cheap"
        import torch
        torch.set_num_threads(1)
        from peft import PeftModel
        from transformers import LlamaForCausalLM
        d = torch.load({str(tmp_path / "io.pt")!r})
        base = LlamaForCausalLM.from_pretrained({str(tmp_path / "base")!r})
        m = PeftModel.from_pretrained(base, {str(tmp_path / "adapter")!r}).eval()
        assert type(m.peft_config["default"]).__name__ == "LoranConfig"
        with torch.no_grad():
            got = m(input_ids=d["ids"]).logits
        assert torch.equal(got, d["want"]), (got - d["want"]).abs().max()
        print("OK")
    """)
    proc = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip().endswith("OK")
    assert "kernels-community" not in proc.stderr  # bitsandbytes' noise is silenced


def _edit_config(src: Path, dst: Path, drop=(), **set_fields) -> Path:
    shutil.copytree(src, dst)
    cfg = json.loads((dst / "adapter_config.json").read_text())
    for key in drop:
        cfg.pop(key)
    cfg.update(set_fields)
    (dst / "adapter_config.json").write_text(json.dumps(cfg))
    return dst


@pytest.mark.parametrize(
    "drop",
    [
        ("loran_version",),
        ("loran_version", "activation_expr"),
        ("loran_version", "activation_expr", "activation_params"),  # a registry name's defaults
    ],
)
def test_any_loran_field_marks_the_file(drop, llama, randomize, make_ids, tmp_path):
    """A file that lost `loran_version` (or more) but kept `activation` still loads as LoRAN."""
    ids = make_ids()
    params = None if "activation_params" in drop else {"amplitude": 0.05, "frequency": 3.0}
    pm = _trained(llama, randomize, params=params if params else {})
    with torch.no_grad():
        want = pm(input_ids=ids).logits
    pm.save_pretrained(tmp_path / "saved")
    path = _edit_config(tmp_path / "saved", tmp_path / "edited", drop=drop)
    for load in (peft.PeftModel.from_pretrained, load_adapter):
        loaded = load(llama(), path)
        assert isinstance(loaded.peft_config["default"], LoranConfig)
        with torch.no_grad():
            assert torch.equal(loaded.eval()(input_ids=ids).logits, want)
    for entry in (peft.PeftConfig, peft.LoraConfig):
        assert type(entry.from_pretrained(path)) is LoranConfig


@pytest.mark.parametrize("kept", ["loran_version", "activation_params", "activation_expr"])
def test_loran_file_without_activation_is_refused(kept, llama, randomize, tmp_path):
    pm = _trained(llama, randomize)
    pm.save_pretrained(tmp_path / "saved")
    others = [k for k in LORAN_FIELDS if k != kept]
    path = _edit_config(tmp_path / "saved", tmp_path / "edited", drop=others)
    for load in (peft.PeftModel.from_pretrained, load_adapter):
        with pytest.raises(ActivationError, match=rf"LoRAN field \['{kept}'\] but no `activation`"):
            load(llama(), path)
    with pytest.raises(ActivationError, match="would silently change the model"):
        peft.PeftConfig.from_pretrained(path)


def test_other_peft_types_with_an_activation_field_are_left_alone(tmp_path):
    (tmp_path / "adapter_config.json").write_text(
        json.dumps({"peft_type": "IA3", "target_modules": ["q_proj"], "activation": "sinter"})
    )
    with pytest.warns(UserWarning, match="activation"):
        cfg = peft.PeftConfig.from_pretrained(tmp_path)
    assert type(cfg) is peft.IA3Config


def test_load_adapter_refuses_when_peft_bypasses_the_loader(
    llama, randomize, tmp_path, monkeypatch
):
    """If peft ever stopped calling from_peft_type, load_adapter must not return plain LoRA."""
    from peft.config import PeftConfigMixin

    from loran_search.adapters import io

    pm = _trained(llama, randomize)
    pm.save_pretrained(tmp_path)
    monkeypatch.setattr(PeftConfigMixin, "from_peft_type", classmethod(io._ORIGINAL_FROM_PEFT_TYPE))
    with pytest.raises(RuntimeError, match="built a LoraConfig for it"):
        load_adapter(llama(), tmp_path)
