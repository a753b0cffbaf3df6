"""Paired-t statistics and corrections against independent computations (scipy, plain loops)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as sps

from loran_search.analysis.stats import adjust, benjamini_hochberg, holm, paired_t


@pytest.mark.parametrize("n", [2, 3, 5, 8])
def test_paired_t_matches_scipy(n: int) -> None:
    rng = np.random.default_rng(n)
    cand = rng.normal(0.7, 0.02, n)
    base = rng.normal(0.69, 0.02, n)
    res = paired_t((cand - base).tolist())
    ref = sps.ttest_rel(cand, base)
    assert res.n == n
    assert res.gain == pytest.approx(float(np.mean(cand - base)))
    assert res.p_value == pytest.approx(float(ref.pvalue), rel=1e-10)
    assert res.t == pytest.approx(float(ref.statistic), rel=1e-10)
    d = cand - base
    half = sps.t.ppf(0.975, n - 1) * d.std(ddof=1) / math.sqrt(n)
    assert res.ci_low == pytest.approx(d.mean() - half)
    assert res.ci_high == pytest.approx(d.mean() + half)
    assert res.note == ""


def test_paired_t_interval_covers_the_gain_and_has_the_textbook_width() -> None:
    # d = (0.01, 0.02, 0.03): mean 0.02, sd 0.01, se 0.01/sqrt(3), t_{0.975,2} = 4.302652...
    res = paired_t([0.01, 0.02, 0.03])
    assert res.gain == pytest.approx(0.02)
    assert res.ci_high - res.ci_low == pytest.approx(2 * 4.302652729749464 * 0.01 / math.sqrt(3))


def test_single_seed_has_gain_but_no_interval() -> None:
    res = paired_t([0.05])
    assert res.gain == pytest.approx(0.05)
    assert math.isnan(res.ci_low) and math.isnan(res.ci_high) and math.isnan(res.p_value)
    assert "one paired seed" in res.note


def test_no_pair_and_zero_variance() -> None:
    empty = paired_t([])
    assert empty.n == 0 and math.isnan(empty.gain) and "no paired seed" in empty.note
    flat = paired_t([0.01, 0.01, 0.01])
    assert flat.ci_low == pytest.approx(0.01) and flat.ci_high == pytest.approx(0.01)
    assert math.isnan(flat.p_value) and "identical" in flat.note


def test_non_finite_differences_are_dropped() -> None:
    assert paired_t([0.01, math.nan, 0.03]).n == 2


def _holm_loop(p: list[float]) -> list[float]:
    m = len(p)
    order = sorted(range(m), key=lambda i: p[i])
    out = [0.0] * m
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p[i]))
        out[i] = running
    return out


def test_holm_matches_a_plain_loop_and_ignores_nan() -> None:
    p = [0.01, 0.04, 0.03, 0.005, 0.5]
    assert holm(p) == pytest.approx(_holm_loop(p))
    # hand-checked: sorted 0.005,0.01,0.03,0.04,0.5 -> x5,x4,x3,x2,x1 -> 0.025,0.04,0.09,0.09,0.5
    assert holm(p) == pytest.approx([0.04, 0.09, 0.09, 0.025, 0.5])
    with_nan = holm([0.01, math.nan, 0.04])
    assert math.isnan(with_nan[1])
    assert [with_nan[0], with_nan[2]] == pytest.approx(_holm_loop([0.01, 0.04]))


def test_bh_matches_scipy() -> None:
    p = [0.01, 0.04, 0.03, 0.005, 0.5, 0.2]
    assert benjamini_hochberg(p) == pytest.approx(sps.false_discovery_control(p).tolist())


def test_unknown_correction_is_refused() -> None:
    with pytest.raises(ValueError, match="holm, bh"):
        adjust([0.1], "bonf")
