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
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats as sps

CONFIDENCE = 0.95
ALPHA = 0.05
CORRECTIONS = {
    "holm": "Holm–Bonferroni step-down (family-wise error rate)",
    "bh": "Benjamini–Hochberg (false discovery rate)",
}


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
