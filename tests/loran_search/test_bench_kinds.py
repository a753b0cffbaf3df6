"""``loran-search bench kinds``: one LoRA and one LoRAN step per model kind."""

from __future__ import annotations

import json

import pytest

from loran_search.bench_kinds import measure
from loran_search.cli import main
from loran_search.kinds import KINDS


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_measure_every_kind(kind: str) -> None:
    row = measure(kind, repeats=1, warmup=0)
    assert row["kind"] == kind
    assert row["targets"] == sorted(KINDS[kind].default_targets)
    assert row["trainable_params"] > 0
    assert row["lora_ms"] > 0 and row["loran_ms"] > 0
    assert row["loran/lora"] == pytest.approx(row["loran_ms"] / row["lora_ms"], rel=0.01)


def test_cli_json(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    import loran_search.bench_kinds as bk

    monkeypatch.setattr(bk, "run_bench_kinds", lambda repeats: [measure("cartpole_mlp", repeats)])
    assert main(["bench", "kinds", "--repeats", "1", "--format", "json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["kind"] for r in rows] == ["cartpole_mlp"]
    assert main(["bench", "kinds", "--repeats", "0"]) == 2
