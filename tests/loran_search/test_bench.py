"""`loran-search bench adapter`: the variants compute the same thing; the report has every ratio.

Peers (issue 13) run in the same interleaved run; the JSON keys are checked on ``--quick``.
"""

from __future__ import annotations

import json

import pytest
import torch

from loran_search import bench
from loran_search.adapters import LoranLinear, LoranLinear4bit

RATIO_KEYS = {
    "fp32.loran/lora",
    "fp32.loran/reference",
    "fp32.memory.loran/lora",
    "nf4.loran/lora",
    "nf4.loran/reference",
    "nf4.memory.loran/lora",
    "merged/base",
    # the peers (issue 13), where peft supports the base: PEANuT has no bitsandbytes layer
    "fp32.dora/lora",
    "fp32.memory.dora/lora",
    "fp32.hira/lora",
    "fp32.memory.hira/lora",
    "fp32.peanut/lora",
    "fp32.memory.peanut/lora",
    "fp32.loran/hira",
    "nf4.dora/lora",
    "nf4.memory.dora/lora",
    "nf4.hira/lora",
    "nf4.memory.hira/lora",
    "nf4.loran/hira",
}


@pytest.mark.parametrize("base", ["fp32", "nf4"])
def test_reference_variant_equals_loran_and_lora_differs(base):
    shape = bench.QUICK
    ids = bench._batch(shape)
    losses, grads = {}, {}
    for v in bench.VARIANTS:
        model = bench.build_variant(shape, base, v)
        layer = model.base_model.model.model.layers[0].self_attn.q_proj
        if v != "lora":
            assert isinstance(layer, LoranLinear4bit if base == "nf4" else LoranLinear)
            assert layer.loran_activations["default"].params == bench.SINTER
        model.train()
        loss = model(input_ids=ids, labels=ids).loss
        loss.backward()
        losses[v] = loss.detach()
        grads[v] = layer.lora_A["default"].weight.grad
    torch.testing.assert_close(losses["loran"], losses["loran_reference"], rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(grads["loran"], grads["loran_reference"], rtol=1e-3, atol=1e-7)
    assert grads["loran"].abs().sum() > 0


def test_memory_probe_measures_a_step():
    res = bench.memory_probe(bench.QUICK, "fp32", "loran")
    assert res["peak_mb"] > 50  # torch + model resident
    assert res["step_peak_mb"] >= 0


def test_run_bench_reports_every_ratio(monkeypatch):
    # the memory probes run in-process here (a subprocess each costs a peft import)
    monkeypatch.setattr(
        bench, "_probe_subprocess", lambda quick, base, v: bench.memory_probe(bench.QUICK, base, v)
    )
    res = bench.run_bench(quick=True, progress=False)
    assert set(res["ratios"]) == RATIO_KEYS
    assert all(r is None or r > 0 for r in res["ratios"].values())
    assert all(res["ratios"][k] is not None for k in RATIO_KEYS if "memory" not in k)
    for base in bench.BASES:
        for v in bench.variants_of(base):
            r = res["results"][base][v]
            assert len(r["steps_s"]) == bench.QUICK.repeats and r["step_s"] > 0
    assert set(res["results"]["fp32"]) == {*bench.VARIANTS, "dora", "hira", "peanut"}
    assert "peanut" not in res["results"]["nf4"]
    assert res["unsupported"]["fp32"] == {}
    assert "Use `model.quantization: none` for peanut" in res["unsupported"]["nf4"]["peanut"]
    hira = res["results"]["fp32"]["loran"]["step_s"] / res["results"]["fp32"]["hira"]["step_s"]
    assert res["ratios"]["fp32.loran/hira"] == pytest.approx(hira)
    expected = res["results"]["fp32"]["loran"]["step_s"] / res["results"]["fp32"]["lora"]["step_s"]
    assert res["ratios"]["fp32.loran/lora"] == pytest.approx(expected)
    json.dumps(res)  # JSON-ready
    from loran_search.cli.bench import format_table

    table = format_table(res)
    assert "fp32.loran/reference" in table and "loran_reference" in table
    assert "nf4   peanut           not run: PEANuT (peanut) cannot run" in table
    assert "fp32.memory.peanut/lora" in table
    assert set(res["targets"]) <= RATIO_KEYS


@pytest.mark.slow
def test_cli_bench_adapter_quick_json(capsys):
    from loran_search.cli import main

    assert main(["bench", "adapter", "--quick", "--format", "json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert set(out["ratios"]) == RATIO_KEYS
    assert out["results"]["nf4"]["lora"]["step_peak_mb"] is not None  # the peak mark was reset


@pytest.mark.parametrize("base", ["fp32", "nf4"])
def test_peers_are_built_by_peft_on_the_bases_peft_supports(base):
    import peft

    shape = bench.QUICK
    ids = bench._batch(shape)
    kinds = {"dora": peft.LoraConfig, "hira": peft.HiraConfig, "peanut": peft.PeanutConfig}
    for v in bench.variants_of(base):
        if v not in bench.PEERS:
            continue
        model = bench.build_variant(shape, base, v)
        cfg = model.peft_config["default"]
        assert type(cfg) is kinds[v]
        assert cfg.r == shape.rank
        model.train()
        model(input_ids=ids, labels=ids).loss.backward()
        assert any(p.grad is not None for p in model.parameters() if p.requires_grad)
    assert bench.peer_problems("fp32") == {}
    assert set(bench.peer_problems("nf4")) == {"peanut"}
