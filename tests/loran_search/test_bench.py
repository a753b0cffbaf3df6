"""`loran-search bench adapter`: the variants compute the same thing; the report has every ratio.

Peers (issue 13) run in the same paired rounds; the JSON keys (``ratios``, ``spread``,
``rounds``) are checked on ``--quick``. The pairing itself is checked on a fake clock in
test_bench_rounds.py; here a fake clock checks that ``run_bench``'s timer reaches the rounds.
"""

from __future__ import annotations

import json
import statistics

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


TIME_RATIO_KEYS = {k for k in RATIO_KEYS if ".memory." not in k}


def test_run_bench_reports_every_ratio(monkeypatch):
    # the memory probes run in-process here (a subprocess each costs a peft import), one at a
    # time (two in-process probes at once would share one process's peak-RSS mark)
    monkeypatch.setattr(
        bench, "_probe_subprocess", lambda quick, base, v: bench.memory_probe(bench.QUICK, base, v)
    )
    monkeypatch.setattr(bench, "_probe_jobs", lambda: 1)
    res = bench.run_bench(quick=True, progress=False)
    assert set(res["ratios"]) == RATIO_KEYS
    assert all(r is None or r > 0 for r in res["ratios"].values())
    assert all(res["ratios"][k] is not None for k in RATIO_KEYS if "memory" not in k)
    # every time ratio has its spread; memory ratios (one measurement each) have none
    assert res["rounds"] == bench.QUICK_ROUNDS and res["warmup_rounds"] == bench.WARMUP_ROUNDS
    assert set(res["spread"]) == TIME_RATIO_KEYS
    for k, sp in res["spread"].items():
        assert set(sp) == {"low", "high", "rounds"}
        assert sp["low"] <= res["ratios"][k] <= sp["high"], k
        assert sp["rounds"] == bench.QUICK_ROUNDS
    env = res["environment"]
    assert env["threads"] == 1 == res["threads"]
    assert env["cpu_model"] and env["torch"] and len(env["load_average"]["end"]) == 3
    assert res["wall_s"] > 0
    for base in bench.BASES:
        for v in bench.variants_of(base):
            r = res["results"][base][v]
            assert len(r["steps_s"]) == bench.QUICK_ROUNDS and r["step_s"] > 0
    assert set(res["results"]["fp32"]) == {*bench.VARIANTS, "dora", "hira", "peanut"}
    assert "peanut" not in res["results"]["nf4"]
    assert res["unsupported"]["fp32"] == {}
    assert "Use `model.quantization: none` for peanut" in res["unsupported"]["nf4"]["peanut"]
    # a time ratio is the median of the round-by-round ratios of the two variants' steps
    fp32 = res["results"]["fp32"]
    for key, num, den in [
        ("fp32.loran/hira", "loran", "hira"),
        ("fp32.loran/lora", "loran", "lora"),
    ]:
        rho = [a / b for a, b in zip(fp32[num]["steps_s"], fp32[den]["steps_s"], strict=True)]
        assert res["ratios"][key] == pytest.approx(statistics.median(rho))
        assert res["spread"][key]["low"] == pytest.approx(min(rho))
        assert res["spread"][key]["high"] == pytest.approx(max(rho))
    json.dumps(res)  # JSON-ready
    from loran_search.cli.bench import format_table

    table = format_table(res)
    assert "fp32.loran/reference" in table and "loran_reference" in table
    assert "nf4   peanut           not run: PEANuT (peanut) cannot run" in table
    assert "fp32.memory.peanut/lora" in table
    assert "range (min–max)" in table and "environment: " in table
    assert set(res["targets"]) <= RATIO_KEYS


def test_measure_steps_and_merged_time_with_the_given_clock():
    """A fake clock that ticks 1 s per reading: every step takes 1 s, every ratio is 1."""
    ticks = iter(range(10**6))

    def clock() -> float:
        return float(next(ticks))

    times = bench.measure_steps(bench.QUICK, "fp32", ("lora", "loran"), rounds=4, timer=clock)
    assert times == {"lora": [1.0] * 4, "loran": [1.0] * 4}
    merged = bench.measure_merged(bench.QUICK, rounds=2, warmup=0, timer=clock)
    assert merged == {"base": [1.0] * 2, "merged": [1.0] * 2}
    assert bench.time_ratio_pairs(bench.variants_of("nf4")) == [
        ("loran/lora", "loran", "lora"),
        ("loran/reference", "loran", "loran_reference"),
        ("dora/lora", "dora", "lora"),
        ("hira/lora", "hira", "lora"),
        ("loran/hira", "loran", "hira"),
    ]


@pytest.mark.slow
def test_cli_bench_adapter_quick_json(capsys):
    from loran_search.cli import main

    assert main(["bench", "adapter", "--quick", "--format", "json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert set(out["ratios"]) == RATIO_KEYS
    assert set(out["spread"]) == TIME_RATIO_KEYS and out["rounds"] == bench.QUICK_ROUNDS
    assert all(s["low"] <= out["ratios"][k] <= s["high"] for k, s in out["spread"].items())
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


def test_help_states_the_default_rounds_and_the_spread(capsys):
    from loran_search import bench_kinds
    from loran_search.cli import main

    with pytest.raises(SystemExit):
        main(["bench", "adapter", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert f"default {bench.DEFAULT_ROUNDS}, --quick {bench.QUICK_ROUNDS}" in text
    assert f"default run ({bench.DEFAULT_ROUNDS} rounds after {bench.WARMUP_ROUNDS}" in text
    assert "range [min, max]" in text and "Duration:" in text
    with pytest.raises(SystemExit):
        main(["bench", "kinds", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert f"default {bench_kinds.DEFAULT_ROUNDS}, after {bench_kinds.WARMUP_ROUNDS}" in text
    assert main(["bench", "adapter", "--rounds", "0"]) == 2
