"""Paired statistics of a candidate against the baseline, and multiple-comparison corrections.

For one candidate configuration and its baseline (the identity, i.e. QLoRA, at the *same rank*),
let ``c_s`` and ``b_s`` be their metric on seed ``s``; only seeds that both have are used. With
``d_s = c_s − b_s`` over ``n`` paired seeds:

* gain ``ḡ = (1/n)·Σ d_s``;
* sample standard deviation ``sd = sqrt(Σ (d_s − ḡ)² / (n − 1))``, standard error ``se = sd/√n``;
* the 95% paired-t interval ``ḡ ± t_{0.975, n−1}·se``;
* the two-sided paired-t p-value ``p = 2·(1 − F_{t, n−1}(|ḡ / se|))`` for ``H0: E[d] = 0``.

With ``n = 1`` there is no interval and no p-value (no variance estimate); with ``sd = 0`` and
``n ≥ 2`` the t statistic is undefined and the p-value is left empty (the interval collapses to
the point). Both cases carry a note saying so.

Across configurations the p-values are corrected with Holm's step-down method (controls the
family-wise error rate) by default, or Benjamini–Hochberg (controls the false discovery rate).

The power of a two-sided t-test (:func:`t_power`, :func:`noncentrality`, :func:`mde_t`) comes
from the noncentral t (``scipy.stats.nct``); :func:`sd_interval` is the χ² interval of a normal
sd. :mod:`loran_search.analysis.decision` decides with these tests.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import optimize
from scipy import stats as sps

CONFIDENCE = 0.95
ALPHA = 0.05
CORRECTIONS = {
    "holm": "Holm–Bonferroni step-down (family-wise error rate)",
    "bh": "Benjamini–Hochberg (false discovery rate)",
}
#: The corrections' short names, as a sentence or a column header says them.
CORRECTION_NAMES = {"holm": "Holm", "bh": "Benjamini–Hochberg"}


@dataclass(frozen=True)
class PairedResult:
    """The paired comparison of a candidate with its baseline.

    Attributes:
        n: Number of paired seeds.
        gain: Mean paired difference ``ḡ`` (``nan`` when ``n = 0``).
        sd: Sample standard deviation of the differences (``nan`` when ``n < 2``).
        ci_low: Lower end of the 95% paired-t interval (``nan`` when unavailable).
        ci_high: Upper end of the interval.
        t: The t statistic ``ḡ / (sd/√n)``.
        p_value: Two-sided paired-t p-value (``nan`` when unavailable).
        note: Why the interval or p-value is missing, or ``""``.
    """

    n: int
    gain: float
    sd: float
    ci_low: float
    ci_high: float
    t: float
    p_value: float
    note: str = ""


def paired_t(diffs: Sequence[float], confidence: float = CONFIDENCE) -> PairedResult:
    """Gain, paired-t interval and two-sided p-value of paired differences ``d_s``.

    Args:
        diffs: ``candidate − baseline`` per paired seed; non-finite entries are dropped.
        confidence: Coverage of the interval (0.95 by default).

    Returns:
        A :class:`PairedResult`; see the module docstring for the formulas.
    """
    d = np.asarray([x for x in diffs if math.isfinite(x)], dtype=float)
    n = int(d.size)
    nan = math.nan
    if n == 0:
        return PairedResult(0, nan, nan, nan, nan, nan, nan, "no paired seed with the baseline")
    gain = float(d.mean())
    if n == 1:
        return PairedResult(
            1, gain, nan, nan, nan, nan, nan, "one paired seed: no interval or p-value"
        )
    sd = float(d.std(ddof=1))
    se = sd / math.sqrt(n)
    if se == 0.0:
        return PairedResult(
            n, gain, sd, gain, gain, nan, nan, "identical differences on every seed: no p-value"
        )
    t = gain / se
    half = float(sps.t.ppf(0.5 + confidence / 2.0, n - 1)) * se
    p = float(2.0 * sps.t.sf(abs(t), n - 1))
    return PairedResult(n, gain, sd, gain - half, gain + half, t, p)


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm's step-down adjusted p-values; ``nan`` entries are left out of the family.

    With the ``m`` finite p-values sorted ascending, ``p_(1) ≤ … ≤ p_(m)``, the adjusted value is
    ``p̃_(i) = min(1, max_{j ≤ i} (m − j + 1)·p_(j))``; rejecting ``p̃ < α`` controls the
    family-wise error rate at ``α``.
    """
    p = np.asarray(p_values, dtype=float)
    out = np.full(p.shape, np.nan)
    idx = np.flatnonzero(np.isfinite(p))
    m = idx.size
    if m == 0:
        return out.tolist()
    order = idx[np.argsort(p[idx], kind="stable")]
    scaled = (m - np.arange(m)) * p[order]
    out[order] = np.minimum(1.0, np.maximum.accumulate(scaled))
    return out.tolist()


def benjamini_hochberg(p_values: Sequence[float]) -> list[float]:
    """Benjamini–Hochberg adjusted p-values (q-values); ``nan`` entries are left out.

    With the ``m`` finite p-values sorted ascending, ``q_(i) = min(1, min_{j ≥ i} m·p_(j)/j)``;
    rejecting ``q < α`` controls the false discovery rate at ``α`` (independent tests).
    """
    p = np.asarray(p_values, dtype=float)
    out = np.full(p.shape, np.nan)
    idx = np.flatnonzero(np.isfinite(p))
    m = idx.size
    if m == 0:
        return out.tolist()
    order = idx[np.argsort(p[idx], kind="stable")]
    scaled = m * p[order] / np.arange(1, m + 1)
    out[order] = np.minimum(1.0, np.minimum.accumulate(scaled[::-1])[::-1])
    return out.tolist()


def adjust(p_values: Sequence[float], method: str = "holm") -> list[float]:
    """Adjust ``p_values`` with ``method`` (``holm`` or ``bh``).

    Raises:
        ValueError: An unknown method; the message lists the known ones.
    """
    if method == "holm":
        return holm(p_values)
    if method == "bh":
        return benjamini_hochberg(p_values)
    raise ValueError(
        f"Unknown multiple-comparison correction {method!r}; use one of {', '.join(CORRECTIONS)}."
    )


# ---------------------------------------------------------------- power of the t-test (issue 19)


def t_power(effect: float, se: float, df: float, alpha: float = ALPHA) -> float:
    """Power of the two-sided t-test at a true effect.

    ``P(|T| > t_{1−α/2, df})`` with ``T ~ nct(df, |effect|/se)``.
    """
    crit = float(sps.t.ppf(1.0 - alpha / 2.0, df))
    nc = abs(effect) / se
    upper = float(sps.nct.sf(crit, df, nc))
    if math.isnan(upper):  # far tails: scipy's series can fail where the answer is 0 or 1
        upper = 1.0 - float(sps.nct.cdf(crit, df, nc))
    if math.isnan(upper):
        upper = 1.0 if nc > crit else 0.0
    lower = float(sps.nct.cdf(-crit, df, nc))
    return upper + (0.0 if math.isnan(lower) else lower)


def noncentrality(df: float, alpha: float = ALPHA, power: float = 0.8) -> float:
    """The noncentrality ``λ`` at which the two-sided t-test has ``power`` (``MDE = λ·se``)."""
    if not 0.0 < alpha < 1.0 or not 0.0 < power < 1.0:
        raise ValueError(f"alpha and power must lie in (0, 1), got {alpha} and {power}.")
    if not df > 0:
        raise ValueError(f"A t-test needs at least 1 degree of freedom, got {df}.")
    crit = float(sps.t.ppf(1.0 - alpha / 2.0, df))
    hi = 2.0 * crit + 10.0
    return float(optimize.brentq(lambda nc: t_power(nc, 1.0, df, alpha) - power, 0.0, hi))


def mde_t(se: float, df: float, alpha: float = ALPHA, power: float = 0.8) -> float:
    """The minimum detectable effect ``λ(df, α, power)·se`` of a two-sided t-test."""
    return noncentrality(df, alpha, power) * se


def sd_interval(sd: float, df: float, confidence: float = 0.95) -> tuple[float, float]:
    """χ² interval of a normal sd from its estimate on ``df`` degrees of freedom.

    ``[sd·sqrt(df/χ²_{(1+c)/2, df}), sd·sqrt(df/χ²_{(1−c)/2, df})]``; ``nan`` without a df.
    """
    if not df > 0 or not math.isfinite(sd):
        return math.nan, math.nan
    hi_q = float(sps.chi2.ppf((1.0 + confidence) / 2.0, df))
    lo_q = float(sps.chi2.ppf((1.0 - confidence) / 2.0, df))
    return sd * math.sqrt(df / hi_q), sd * math.sqrt(df / lo_q)
