"""Issue 24: the A × ω landscape (map and ridge reading) and the rank sweep (gain and ν per rank).

Synthetic studies with known values (``conftest.Builder``): a landscape whose metric depends on
``log(A·ω)`` only must read as a ridge; a separable one (a bowl in ``log A`` and ``log ω``) and
one that follows ``A`` alone must not.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

from loran_search import record as R
from loran_search.analysis import landscape as L
from loran_search.analysis.configurations import build_tables
from loran_search.analysis.records import load_records
from loran_search.analysis.report import analyse
from tests.loran_search.analysis.conftest import new_study

AMPS = [1e-5, 1e-4, 1e-3, 1e-2, 1e-1]  # within the synthetic studies' amplitude distribution
FREQS = [1e1, 1e2, 1e3, 1e4, 1e5]


def _grid() -> tuple[np.ndarray, np.ndarray]:
    a, w = np.meshgrid(AMPS, FREQS, indexing="ij")
    return a.ravel(), w.ravel()


def ridge_values(a: np.ndarray, w: np.ndarray, noise: float = 0.0, seed: int = 0) -> np.ndarray:
    """A peak along A·ω = 1, the same everywhere along that line."""
    u = np.log10(a) + np.log10(w)
    rng = np.random.default_rng(seed)
    return 0.70 + 0.15 * np.exp(-(u**2) / 2.0) + noise * rng.standard_normal(len(u))


def bowl_values(a: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Separable: a peak at the point (A, ω) = (1e-3, 1e3), falling off in each axis alone."""
    return 0.85 - 0.02 * (np.log10(a) + 3.0) ** 2 - 0.02 * (np.log10(w) - 3.0) ** 2


# ------------------------------------------------------------------------------ the rule


def test_ridge_is_read_on_a_ridge_landscape_even_with_noise() -> None:
    a, w = _grid()
    for noise in (0.0, 0.01):
        r = L.ridge_reading(a, w, ridge_values(a, w, noise), "accuracy on val")
        assert r.ridge is True
        assert r.r2_product > 0.9 and r.r2_product > max(r.r2_amplitude, r.r2_frequency) + 0.5
        assert r.best == "A·ω" and "a ridge along A·ω = const" in r.sentence
    # a monotone trend in A·ω (contours along A·ω = const, no peak) is read the same way
    lin = L.ridge_reading(a, w, 0.7 + 0.01 * np.log10(a * w), "m")
    assert lin.ridge is True and lin.r2_product > 0.95
    # pure noise is no ridge
    noise = L.ridge_reading(a, w, np.random.default_rng(0).standard_normal(len(a)), "m")
    assert noise.ridge is False and noise.r2_product < L.RIDGE_MIN_R2


def test_no_ridge_on_a_separable_landscape() -> None:
    a, w = _grid()
    r = L.ridge_reading(a, w, bowl_values(a, w), "accuracy on val")
    assert r.ridge is False
    # a peak at a point: cells on one line A·ω = const differ (they cross the bowl)
    assert r.r2_product < L.RIDGE_MIN_R2
    assert "no ridge along A·ω = const" in r.sentence


def test_a_landscape_that_follows_the_amplitude_alone_is_no_ridge() -> None:
    a, w = _grid()
    z = 0.8 - 0.05 * (np.log10(a) + 3.0) ** 2  # ω does nothing
    r = L.ridge_reading(a, w, z, "accuracy on val")
    assert r.ridge is False and r.best == "A"
    assert r.r2_amplitude == pytest.approx(1.0, abs=1e-3) and r.r2_product < 0.5
    assert "it follows A alone" in r.sentence


def test_too_few_cells_or_a_flat_landscape_cannot_be_read() -> None:
    r = L.ridge_reading([1e-3, 1e-3, 1e-2, 1e-2], [10, 100, 10, 100], [0.1, 0.2, 0.3, 0.4], "m")
    assert r.ridge is None and "too few cells" in r.sentence
    a, w = _grid()
    flat = L.ridge_reading(a, w, np.full(len(a), 0.7), "m")
    assert flat.ridge is None and "flat" in flat.sentence
    with_nan = ridge_values(a, w)
    with_nan[:3] = math.nan  # non-finite cells are left out, the rest still reads
    r = L.ridge_reading(a, w, with_nan, "m")
    assert r.n_cells == len(a) - 3 and r.ridge is True


# ------------------------------------------------------------------------------ study level


def landscape_study(values: np.ndarray, *, confirm_cell: int | None = None, name: str = "fa"):
    """Sinter over the 5 × 5 grid at rank 8 with QLoRA; ν = 0.7·A·min(1, ω/1e3) (the mechanism)."""
    study, b = new_study(name=name)
    base = 0.70
    b.add("identity", 8, {0: base}, mechanism=0.0, eval_split="val")
    a, w = _grid()
    numbers = []
    for amp, freq, v in zip(a, w, values, strict=True):
        nu = 0.7 * amp * min(1.0, freq / 1e3)
        t = b.add("sinter", 8, {0: float(v)}, amplitude=float(amp), frequency=float(freq),
                  mechanism=nu, eval_split="val")  # fmt: skip
        numbers.append(t.number)
    if confirm_cell is not None:
        rng = np.random.default_rng(1)
        p = rng.uniform(0.3, 0.9, 120)
        draw = {s: (rng.random(120) < p).astype(int) for s in (100, 101, 102)}
        better = {s: np.maximum(v, (rng.random(120) < 0.3).astype(int)) for s, v in draw.items()}
        b.add("identity", 8, None, examples=draw, eval_split="test", role="confirm_baseline",
              mechanism=0.0)  # fmt: skip
        b.add("sinter", 8, None, amplitude=float(a[confirm_cell]), frequency=float(w[confirm_cell]),
              examples=better, eval_split="test", role="confirm",
              confirm_of=[numbers[confirm_cell]],
              mechanism=0.7 * a[confirm_cell] * min(1.0, w[confirm_cell] / 1e3))  # fmt: skip
    return study


def test_landscape_cells_map_and_reading_from_a_study(tmp_path) -> None:
    a, w = _grid()
    peak = int(np.flatnonzero((a == 1e-2) & (w == 1e2))[0])  # on the ridge
    study = landscape_study(ridge_values(a, w, 0.005), confirm_cell=peak)
    an = analyse(study)
    land = an.landscape
    assert land is not None and land.has_map and land.rank == 8 and land.activation == "sinter"
    c = land.cells
    assert len(c) == 25 and c["amplitude"].nunique() == 5 and c["frequency"].nunique() == 5
    # the metric is the search split's, ν the recorded one; exactly the confirmed cell is marked
    row = c[(c["amplitude"] == 0.1) & (c["frequency"] == 1e4)].iloc[0]
    want = ridge_values(a, w, 0.005)[(a == 0.1) & (w == 1e4)][0]
    assert want < 0.71  # far from the ridge: nearly QLoRA
    assert row["metric"] == pytest.approx(want) and row["search_gain"] == pytest.approx(want - 0.7)
    assert row["nonlinearity"] == pytest.approx(0.07)
    assert c["confirmed"].sum() == 1
    hit = c[c["confirmed"]].iloc[0]
    assert (hit["amplitude"], hit["frequency"]) == (a[peak], w[peak])
    assert math.isfinite(hit["confirm_gain"]) and hit["confirm_gain"] > 0
    inert = c[c["inert"]]
    assert set(zip(inert["amplitude"], inert["frequency"], strict=True)) == {
        (x, y) for x, y in zip(a, w, strict=True) if 0.7 * x * min(1, y / 1e3) < 1e-3
    }
    metric_reading, nu_reading = land.readings
    assert metric_reading.ridge is True and metric_reading.what == "accuracy on val"
    # ν follows A·ω below ω = 1e3 and A above it: read, whichever way it falls
    assert nu_reading.what == "log10 ν" and math.isfinite(nu_reading.r2_product)
    assert any("a ridge along A·ω = const" in s for s in an.summary)

    from loran_search.analysis.report import write_outputs

    out = tmp_path / "report"
    write_outputs(an, out, ("md", "html", "csv", "json"))
    assert (out / "plots" / L.FIGURE).stat().st_size > 10_000
    md = (out / "report.md").read_text()
    assert "## Landscape (amplitude × frequency)" in md and f"plots/{L.FIGURE}" in md
    assert 'id="fig-landscape"' in (out / "report.html").read_text()
    doc = json.loads((out / "landscape.json").read_text())
    assert len(doc["cells"]) == 25 and doc["readings"][0]["ridge"] is True
    assert doc["baseline"] == pytest.approx(0.70)
    assert len(pd.read_csv(out / "landscape.csv")) == 25


def test_separable_study_reads_no_ridge() -> None:
    a, w = _grid()
    land = analyse(landscape_study(bowl_values(a, w), name="bowl")).landscape
    assert land is not None and land.readings[0].ridge is False


def test_one_frequency_draws_no_map_and_other_studies_are_unaffected(canonical, tmp_path) -> None:
    assert analyse(canonical).landscape is None  # one rank, one frequency: no section at all
    study, b = new_study(name="line")
    b.add("identity", 8, {0: 0.7})
    for amp in AMPS:
        b.add("sinter", 8, {0: 0.7 + 0.01 * math.log10(amp)}, amplitude=amp)
    cells, _, _, _ = L.landscape_cells(build_tables(load_records(study))[0])
    assert len(cells) == 5 and not L.has_map(cells)
    assert L.draw(L.Landscape(cells=cells), tmp_path, []) is None


def test_tpe_like_points_are_binned() -> None:
    rng = np.random.default_rng(3)
    n = 60
    cfg = pd.DataFrame(
        {
            "activation": "sinter",
            "family": "sinter",
            "rank": 8,
            "amplitude": 10 ** rng.uniform(-3, 1, n),
            "frequency": 10 ** rng.uniform(1, 5, n),
            "metric_mean": rng.uniform(0.5, 0.9, n),
            "search_gain": 0.0,
            "nonlinearity": 0.01,
            "inert": False,
            "evidence": "search",
            "gain": 0.0,
            "config": "c",
        }
    )
    cells, _, _, notes = L.landscape_cells(cfg)
    assert cells["amplitude"].nunique() <= L.BINS and cells["frequency"].nunique() <= L.BINS
    assert cells["n_configurations"].sum() == n and any("log bins" in s for s in notes)


# ------------------------------------------------------------------------------ rank sweep


def rank_study(name: str, gains: dict[int, float], nus: dict[int, float], rslora: bool | None):
    study, b = new_study(name=name)
    if rslora is not None:
        study.set_user_attr(R.STUDY_SETUP, {"adapter": {"alpha": 16, "use_rslora": rslora}})
    base = {4: 0.70, 8: 0.72, 16: 0.74}
    for r in (4, 8, 16):
        b.add("identity", r, {0: base[r]}, mechanism=0.0)
        b.add("sinter", r, {0: base[r] + gains[r]}, amplitude=0.1, mechanism=nus[r])
    return study


def test_rank_table_gives_gain_and_nu_per_rank_under_its_scaling() -> None:
    study = rank_study("rs", {4: 0.01, 8: 0.02, 16: 0.04}, {4: 0.07, 8: 0.071, 16: 0.072}, False)
    land = analyse(study).landscape
    assert land is not None and not land.has_map  # one frequency: the rank part only
    t = land.ranks
    assert list(t["rank"]) == [4, 8, 16] and set(t["scaling"]) == {L.SCALING_PLAIN}
    assert list(t["qlora"]) == pytest.approx([0.70, 0.72, 0.74])
    assert list(t["search_gain"]) == pytest.approx([0.01, 0.02, 0.04])
    assert list(t["nonlinearity"]) == pytest.approx([0.07, 0.071, 0.072])
    s = land.rank_sentence
    assert "s = alpha/r" in s and "r=4 +0.0100 (ν = 0.07)" in s and "r=16 +0.0400" in s
    assert "rises as the rank grows" in s and "Spearman ρ = +1.00" in s
    # three ranks: 6 pairings, ρ = 1 in 1 of them (and −1 in one): p = 2/6, said not to be a test
    assert "exact permutation p = 0.33" in s and "smallest attainable p is 0.33" in s
    assert "ν stayed active at every rank" in s


def test_rank_sentence_says_where_nu_was_inert_and_a_falling_gain() -> None:
    study = rank_study("rs2", {4: 0.03, 8: 0.01, 16: -0.02}, {4: 0.07, 8: 0.05, 16: 5e-4}, True)
    land = analyse(study).landscape
    assert land is not None and set(land.ranks["scaling"]) == {L.SCALING_RSLORA}
    s = land.rank_sentence
    assert "s = alpha/√r (rsLoRA)" in s and "falls as the rank grows" in s
    assert not any("Landscape" in n for n in analyse(study).notes)  # no map, no map notes
    assert "fell below the inert threshold 0.001 at r = 16" in s and "5e-04, inert" not in s
    assert "(ν = 0.0005, inert)" in s


def test_rank_comparison_puts_the_two_scalings_side_by_side(tmp_path) -> None:
    plain = rank_study("rank_sweep", {4: 0.01, 8: 0.0, 16: -0.01}, {4: 0.07, 8: 0.07, 16: 0.07},
                       False)  # fmt: skip
    rs = rank_study("rank_sweep_rslora", {4: 0.0, 8: 0.0, 16: 0.02}, {4: 0.07, 8: 0.07, 16: 0.07},
                    True)  # fmt: skip
    both = L.rank_comparison([plain, rs])
    assert len(both) == 6 and list(both.columns[:3]) == ["study", "scaling", "rank"]
    at16 = both[both["rank"] == 16].set_index("scaling")
    assert at16.loc[L.SCALING_PLAIN, "search_gain"] == pytest.approx(-0.01)
    assert at16.loc[L.SCALING_RSLORA, "search_gain"] == pytest.approx(0.02)
    assert at16.loc[L.SCALING_RSLORA, "study"] == "rank_sweep_rslora"
    from loran_search.analysis.report import write_outputs

    out = tmp_path / "r"
    write_outputs(analyse(rs), out, ("md", "csv"))
    md = (out / "report.md").read_text()
    assert "## Rank sweep (s = alpha/√r (rsLoRA))" in md
    assert len(pd.read_csv(out / "rank_sweep.csv")) == 3


def test_a_study_without_recorded_setup_reads_as_plain_scaling() -> None:
    study = rank_study("old", {4: 0.0, 8: 0.0, 16: 0.0}, {4: 0.07, 8: 0.07, 16: 0.07}, None)
    assert L.scaling_of(study) == L.SCALING_PLAIN
    land = analyse(study).landscape
    assert land is not None and "Spearman" not in land.rank_sentence  # a flat gain: no trend


def test_spearman_exact_counts_every_pairing() -> None:
    rho, p, p_min = L.spearman_exact(np.array([4.0, 8, 16, 32]), np.array([0.0, 0.01, 0.02, 0.03]))
    assert (
        rho == pytest.approx(1.0) and p == pytest.approx(2 / 24) and p_min == pytest.approx(2 / 24)
    )
    rho, p, _ = L.spearman_exact(np.arange(6.0), np.array([0.1, 0.3, 0.2, 0.5, 0.4, 0.6]))
    # by enumeration: pairings of 6 with |ρ| ≥ the observed one
    import itertools

    from scipy.stats import spearmanr

    x, y = np.arange(6.0), np.array([0.1, 0.3, 0.2, 0.5, 0.4, 0.6])
    obs = abs(spearmanr(x, y).statistic)
    hits = sum(
        abs(spearmanr(x, perm).statistic) >= obs - 1e-12 for perm in itertools.permutations(y)
    )
    assert p == pytest.approx(hits / math.factorial(6))
