"""``loran-search bench kinds``: one LoRA and one LoRAN step per model kind."""

from __future__ import annotations

import json

import pytest

from loran_search.bench_kinds import measure
from loran_search.cli import main
from loran_search.kinds import KINDS


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_measure_every_kind(kind: str) -> None:
    row = measure(kind, rounds=1, warmup=0)
    assert row["kind"] == kind
    assert row["targets"] == sorted(KINDS[kind].default_targets)
    assert row["trainable_params"] > 0
    assert row["lora_ms"] > 0 and row["loran_ms"] > 0
    # one round: the median of one round ratio is that round's ratio, with no spread
    assert row["loran/lora"] == pytest.approx(row["loran_ms"] / row["lora_ms"], rel=0.01)
    assert row["spread"]["loran/lora"]["rounds"] == 1 == row["rounds"]
    assert row["spread"]["loran/lora"]["low"] == row["loran/lora"]


def test_measure_pairs_rounds_on_a_fake_clock() -> None:
    ticks = iter(range(10**6))
    row = measure("cartpole_mlp", rounds=5, warmup=1, timer=lambda: float(next(ticks)))
    assert row["lora_ms"] == 1000.0 == row["loran_ms"]
    assert row["loran/lora"] == 1.0
    assert row["spread"] == {"loran/lora": {"low": 1.0, "high": 1.0, "rounds": 5}}


def test_cli_json(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    import loran_search.bench_kinds as bk

    real = bk.run_bench_kinds
    monkeypatch.setattr(bk, "run_bench_kinds", lambda rounds: real(rounds, ["cartpole_mlp"]))
    assert main(["bench", "kinds", "--rounds", "3", "--format", "json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert [r["kind"] for r in out["rows"]] == ["cartpole_mlp"]
    assert out["rounds"] == 3 and out["warmup_rounds"] == 3
    assert out["environment"]["threads"] == 1
    assert len(out["environment"]["load_average"]["end"]) == 3
    row = out["rows"][0]
    sp = row["spread"]["loran/lora"]
    assert sp["low"] <= row["loran/lora"] <= sp["high"] and sp["rounds"] == 3
    assert main(["bench", "kinds", "--repeats", "2"]) == 0  # the old name of --rounds
    table = capsys.readouterr().out
    assert "cartpole_mlp" in table and "range (min–max)" in table and "environment:" in table
    assert main(["bench", "kinds", "--rounds", "0"]) == 2
