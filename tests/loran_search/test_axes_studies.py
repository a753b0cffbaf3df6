"""Issue 24: the shipped rank_sweep (and its rsLoRA twin) and frequency_amplitude studies.

The files validate; the rank sweep's amplitude is active at every rank by the project's own
inert prediction (the old A = 5e-5 was inert everywhere); the two rank files differ only in
their name and scaling; the landscape grid spans inert, active and destructive cells; and
``adapter.use_rslora`` reaches the LoRAN layers' scaling (``alpha/√r``).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from scipy.stats import norm

from loran_search.config import AdapterSection
from loran_search.search.space import build_space
from loran_search.search.validate import load_config, validate_file

ROOT = Path(__file__).resolve().parents[2]
RANK = ROOT / "studies" / "rank_sweep.yaml"
RANK_RS = ROOT / "studies" / "rank_sweep_rslora.yaml"
LANDSCAPE = ROOT / "studies" / "frequency_amplitude.yaml"
INERT = 1e-3  # loran_search.adapters.telemetry.INERT_THRESHOLD (checked below)


def predicted_nu(amplitude: float, frequency: float, sigma: float) -> float:
    """The search's ν̂ of Sinter at a Gaussian P with entries of rms ``sigma``."""
    from activations import get_activation
    from loran_search.train import predict_nonlinearity_from_quantiles

    u = np.linspace(0.0, 1.0, 257)
    q = norm.ppf(np.clip(u, 1e-4, 1 - 1e-4)) * sigma
    f = get_activation("sinter", amplitude=amplitude, frequency=frequency)
    return predict_nonlinearity_from_quantiles(list(q), f)


@pytest.mark.parametrize("path", [RANK, RANK_RS, LANDSCAPE], ids=lambda p: p.name)
def test_study_validates(path: Path) -> None:
    assert validate_file(path) == []


def test_rank_sweep_asks_an_answerable_question() -> None:
    from loran_search.adapters.telemetry import INERT_THRESHOLD

    assert INERT_THRESHOLD == INERT
    cfg = load_config(RANK)
    assert cfg.search.rank == [4, 8, 16, 32] and cfg.study.baseline
    assert cfg.search.skip_inert and not cfg.adapter.use_rslora
    params = cfg.search.params
    amp, freq = float(params["sinter.amplitude"]), float(params["sinter.frequency"])
    # the published amplitude is inert at any visited scale (ν ≤ A < threshold) ...
    assert all(predicted_nu(5e-5, 1e4, s) < INERT for s in (1e-5, 1e-4, 1e-3, 1e-2))
    # ... the chosen one is active with a wide margin over every plausible scale of P = B·A
    # (the file's header: σ ~ 0.7e-3 at r = 4 to 2e-3 at r = 32; margins 10× and 100× smaller)
    for sigma in (1e-5, 1e-4, 7e-4, 2e-3):
        assert predicted_nu(amp, freq, sigma) > 10 * INERT
    assert predicted_nu(amp, freq, 1e-3) == pytest.approx(amp / math.sqrt(2), rel=0.02)
    # every rank is searched once, with QLoRA at each rank
    grid = build_space(cfg).grid()
    assert sorted(p["rank"] for p in grid) == [4, 8, 16, 32] and cfg.study.n_trials == len(grid)


def test_the_rslora_twin_differs_only_in_name_and_scaling() -> None:
    plain, rs = yaml.safe_load(RANK.read_text()), yaml.safe_load(RANK_RS.read_text())
    assert plain["adapter"].pop("use_rslora") is False
    assert rs["adapter"].pop("use_rslora") is True
    assert (plain["study"].pop("name"), rs["study"].pop("name")) == (
        "rank_sweep",
        "rank_sweep_rslora",
    )
    assert plain == rs
    assert load_config(RANK_RS).adapter.use_rslora is True


def test_the_landscape_grid_spans_inert_active_and_destructive_cells() -> None:
    cfg = load_config(LANDSCAPE)
    grid = build_space(cfg).grid()
    cells = [
        (p["sinter.amplitude"], p["sinter.frequency"]) for p in grid if "sinter.amplitude" in p
    ]
    amps = sorted({a for a, _ in cells})
    freqs = sorted({w for _, w in cells})
    assert len(amps) >= 4 and len(freqs) >= 4 and len(cells) == len(amps) * len(freqs)
    assert cfg.study.n_trials == len(grid)  # the whole grid runs
    assert not cfg.search.skip_inert  # the inert cells are measured, not holes in the map
    nu = {c: predicted_nu(*c, 1e-3) for c in cells}
    inert = [c for c, v in nu.items() if v < INERT]
    destructive = [c for c, v in nu.items() if v >= 0.5]  # A = 1 at ω = 1e4 (ν = 0.7) lost 17.5
    active = [c for c, v in nu.items() if INERT <= v < 0.5]
    assert len(inert) >= 3 and len(destructive) >= 3 and len(active) >= 8
    products = sorted({a * w for a, w in cells})
    assert products[-1] / products[0] >= 1e6  # A·ω spans many decades: the ridge can show


@pytest.mark.parametrize("rslora", [False, True])
def test_use_rslora_reaches_the_loran_layers_scaling(rslora: bool) -> None:
    from loran_search.adapters.layers import LoranLayerMixin
    from loran_search.train import build_adapter
    from tests.conftest import tiny_llama

    torch.set_num_threads(1)
    rank, alpha = 16, 16.0
    adapter = AdapterSection(target_modules=["q_proj", "v_proj"], alpha=alpha, use_rslora=rslora)
    model = build_adapter(
        tiny_llama(),
        adapter,
        rank=rank,
        activation="sinter",
        activation_params={"amplitude": 0.1, "frequency": 1e4},
    )
    layers = [m for m in model.modules() if isinstance(m, LoranLayerMixin)]
    assert len(layers) == 4  # q_proj, v_proj × 2 layers
    want = alpha / math.sqrt(rank) if rslora else alpha / rank
    assert [float(m.scaling["default"]) for m in layers] == pytest.approx([want] * 4)
    assert want == (4.0 if rslora else 1.0)
    # and the forward uses it: y = base(x) + s·x·f(B·A)ᵀ (eval mode: no dropout)
    from activations import get_activation

    layer = layers[0]
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        b = layer.lora_B["default"].weight
        b.copy_(torch.randn(b.shape, generator=gen) * 0.01)
        x = torch.randn(3, layer.get_base_layer().in_features, generator=gen)
        f = get_activation("sinter", amplitude=0.1, frequency=1e4)
        p = b @ layer.lora_A["default"].weight
        model.eval()
        delta = layer(x) - layer.get_base_layer()(x)
        torch.testing.assert_close(delta, want * x @ f(p).T, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("path", [RANK, LANDSCAPE], ids=lambda p: p.name)
def test_shipped_study_runs_end_to_end_with_a_fake_trainer(
    path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The file as shipped (storage and evaluation size aside) runs search, confirmation and
    report with the fake trainer of the search tests, whose accuracy depends on A alone
    (``0.5 + 0.01·r/8 + 0.1·min(100·A, 1)``) and whose ν is A/√2."""
    from loran_search.analysis.api import load_study
    from loran_search.analysis.report import analyse
    from loran_search.cli import main

    monkeypatch.setenv("LORAN_SEARCH_TRAIN_FN", "loran_search.testing:run")
    monkeypatch.chdir(tmp_path)
    url = f"sqlite:///{tmp_path / 'runs.db'}"
    sets = ["--set", f"study.storage={url}", "--set", "task.eval_size=40"]
    assert main(["run", str(path), *sets, "--no-report"]) == 0
    cfg = load_config(path, [s for s in sets if s != "--set"])
    study = load_study(url, cfg.study.name)
    a = analyse(study)
    land = a.landscape
    assert land is not None
    if path == RANK:
        assert list(land.ranks["rank"]) == [4, 8, 16, 32]
        assert list(land.ranks["nonlinearity"]) == pytest.approx([0.1 / math.sqrt(2)] * 4)
        # A = 0.1 adds 0.1 to the fake's accuracy, realised on 40 examples (steps of 1/40)
        assert list(land.ranks["search_gain"]) == pytest.approx([0.1] * 4, abs=0.03)
        assert "ν stayed active at every rank" in land.rank_sentence
        assert (land.ranks["evidence"] == "confirmation").sum() == 1  # the best rank, held out
    else:
        assert land.has_map and len(land.cells) == 25 and land.cells["confirmed"].sum() == 1
        metric, _ = land.readings
        assert metric.ridge is False and metric.best == "A"  # the fake's truth: A alone
    out = tmp_path / "report"
    args = ["--storage", url, "--study", cfg.study.name, "--out", str(out), "--no-dashboard"]
    assert main(["report", *args]) == 0
    assert (out / "landscape.json").exists()
