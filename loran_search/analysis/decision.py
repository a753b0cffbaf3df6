"""The decision: one test per comparison, the interval that inverts it, and that test's power.

Owns what decides "significant" (DESIGN.md, "The decision (wave 3)"); the README section
"Analysis and reports" is the manual. With ``d_{s,i} = c_{s,i} − b_{s,i}`` (candidate − baseline,
same seed ``s``, same example ``i``) and the per-seed means ``m_s = mean_i d_{s,i}``:

* **S ≥ 2 seeds** — the paired t-test on the ``S`` seed means: ``ḡ = mean_s m_s``,
  ``se = sd(m_s)/√S``, ``t = ḡ/se`` on ``S − 1`` degrees of freedom. The examples are *crossed*
  with the seeds (every seed scores the same test examples), and averaging over the examples
  inside a seed before testing across seeds **takes the example set as fixed**: the null is "on
  this test set, the expected difference over training seeds is 0", and the ``m_s`` are then
  independent and identically distributed across seeds whatever the examples share (a shared
  example effect is a constant of the test set, not noise). The test is exact for normal
  ``m_s`` (a mean of hundreds of examples is close to normal) and needs no variance-component
  model. What it implies: the conclusion is about this test set under seed randomness, not
  about a new draw of test examples (that would add the example-effect variance), and with
  ``S − 1 = 2`` degrees of freedom only large effects are visible (:func:`t_power`).
* **S = 1, 0/1 metric** — the exact McNemar test: with ``b`` (candidate right, baseline wrong)
  and ``c`` (the reverse) discordant pairs, ``b ~ Binomial(b + c, ½)`` under the null given
  ``b + c``; ``p = scipy.stats.binomtest(b, b + c, ½).pvalue`` (= ``2·P(X ≤ min(b, c))``, capped
  at 1, because the null binomial is symmetric).
* **S = 1, continuous metric** — the paired t over the ``N`` examples (``N − 1`` df).

With one seed the null and the interval are about *this trained pair* (the seed that ran): the
seed-to-seed variance is not identifiable, so the result says nothing about another seed.

**Intervals invert the same test**, so "the interval excludes 0" and "p < α" are one statement:
the t interval ``ḡ ± t_{1−α/2, df}·se``; for McNemar the exact *conditional* interval — the
Clopper–Pearson interval ``[π_L, π_U]`` of ``π = P(b-type | discordant)`` (it inverts the
equal-tailed binomial test, which at ``π = ½`` is McNemar's two-sided test) mapped to the
difference in accuracy at the observed discordance ``(b + c)/N``:
``[(b + c)/N·(2π_L − 1), (b + c)/N·(2π_U − 1)]``. It excludes 0 iff ``π = ½`` is outside
``[π_L, π_U]`` iff the exact p < α.

**Across configurations** the decision is the adjusted p (Holm by default). The interval shown is
the test's own interval at the level that the adjusted decision used for it
(:func:`family_alphas`): for Holm, ``α/(m − j + 1)`` for the hypothesis rejected at step ``j``
and ``α/(number not rejected)`` for every hypothesis not rejected; for Benjamini–Hochberg the
false-coverage-rate level ``R·α/m`` (``R`` rejections, at least 1). So a shown interval excludes
0 exactly when the adjusted decision is "significant". The intervals of rejected hypotheses are
per-step intervals, not simultaneous ones.

**Power** (:func:`t_power`, :func:`mde_t`, :func:`design_power`): the two-sided t-test's power at
a true effect ``δ`` is ``P(|T| > t_{1−α'/2, df})`` with ``T ~ nct(df, δ/se)``
(``scipy.stats.nct``), ``α' = α/m`` (Holm's first threshold for ``m`` tests). The MDE is the
``δ`` of 80% power. The seed-to-seed sd of the paired difference, ``sd(m_s)``, gets the χ²
interval ``sd·sqrt(df/χ²_{(1±c)/2, df})`` (:func:`sd_interval`): with 2 df it spans a factor of
about 12, which is why a 3-seed MDE is itself uncertain.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from scipy import stats as sps

from loran_search.analysis.paired import (
    PairingError,
    Pairs,
    differences,
    gain_variance,
    minimum_detectable_effect,
    required_design,
)
from loran_search.analysis.stats import ALPHA, mde_t, noncentrality, sd_interval, t_power

__all__ = [
    "KIND_MCNEMAR",
    "KIND_NONE",
    "KIND_T_EXAMPLES",
    "KIND_T_SEEDS",
    "Decision",
    "Power",
    "decide",
    "decide_seed_means",
    "design_power",
    "family_alphas",
    "mcnemar_test",
    "mde_t",
    "noncentrality",
    "sd_interval",
    "seed_mean_se",
    "seed_means_power",
    "t_power",
    "t_test",
]

KIND_T_SEEDS = "t-seeds"
KIND_T_EXAMPLES = "t-examples"
KIND_MCNEMAR = "mcnemar"
KIND_NONE = "none"
#: Seeds from which the verdict no longer warns that only large effects are visible.
FEW_SEEDS = 5
#: Largest seed count the required-design search considers.
MAX_DESIGN_SEEDS = 10


# ---------------------------------------------------------------- the tests, vectorised


def t_test(
    gain: np.ndarray | float,
    se: np.ndarray | float,
    df: np.ndarray | float,
    alpha: np.ndarray | float = ALPHA,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Two-sided t-test of ``ḡ = 0`` and the interval that inverts it (broadcasts).

    ``p = 2·F_{t,df}(−|ḡ|/se)``, interval ``ḡ ± t_{1−α/2, df}·se``. With ``se = 0``: ``p = 1``
    and the point interval ``[0, 0]`` when ``ḡ = 0``; ``p`` and the interval are ``nan`` when
    ``ḡ ≠ 0`` (identical non-zero differences: the t statistic is undefined).

    Returns:
        ``(p, low, high)`` as float arrays.
    """
    g, s, v, a = np.broadcast_arrays(*(np.asarray(x, dtype=float) for x in (gain, se, df, alpha)))
    with np.errstate(divide="ignore", invalid="ignore"):
        p = 2.0 * sps.t.sf(np.abs(g) / s, v)
        half = sps.t.ppf(1.0 - a / 2.0, v) * s
    flat = s == 0.0
    p = np.where(flat, np.where(g == 0.0, 1.0, np.nan), p)
    low = np.where(flat, np.where(g == 0.0, 0.0, np.nan), g - half)
    high = np.where(flat, np.where(g == 0.0, 0.0, np.nan), g + half)
    return p, low, high


def mcnemar_test(
    b: np.ndarray | int,
    c: np.ndarray | int,
    n_examples: np.ndarray | int,
    alpha: np.ndarray | float = ALPHA,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Exact McNemar p-value and the exact conditional interval of the difference (broadcasts).

    ``p = min(1, 2·P(X ≤ min(b, c)))`` with ``X ~ Binomial(b + c, ½)`` (equal to
    ``scipy.stats.binomtest(b, b + c, 0.5).pvalue``; 1 when ``b + c = 0``). The interval is the
    Clopper–Pearson ``[π_L, π_U]`` of ``π`` at level ``1 − α`` mapped to
    ``(b + c)/N·(2π − 1)`` (module docstring); ``[0, 0]`` when ``b + c = 0``.

    Returns:
        ``(p, low, high)`` as float arrays.
    """
    arrays = (np.asarray(x, dtype=float) for x in (b, c, n_examples, alpha))
    b, c, n, a = np.broadcast_arrays(*arrays)
    disc = b + c
    p = np.minimum(1.0, 2.0 * sps.binom.cdf(np.minimum(b, c), disc, 0.5))
    p = np.where(disc == 0, 1.0, p)
    with np.errstate(divide="ignore", invalid="ignore"):
        pi_low = np.where(b > 0, sps.beta.ppf(a / 2.0, b, c + 1.0), 0.0)
        pi_high = np.where(c > 0, sps.beta.ppf(1.0 - a / 2.0, b + 1.0, c), 1.0)
    scale = disc / n
    low = np.where(disc == 0, 0.0, scale * (2.0 * pi_low - 1.0))
    high = np.where(disc == 0, 0.0, scale * (2.0 * pi_high - 1.0))
    return p, low, high


# ---------------------------------------------------------------- one comparison


@dataclass(frozen=True)
class Decision:
    """The decisive test of one comparison (module docstring).

    Attributes:
        kind: :data:`KIND_T_SEEDS`, :data:`KIND_T_EXAMPLES`, :data:`KIND_MCNEMAR` or
            :data:`KIND_NONE` (untestable: one seed without per-example outcomes).
        gain: ``ḡ``.
        p_value: Two-sided p (``nan`` when untestable).
        n_seeds: ``S``.
        n_examples: Paired examples per seed (the smallest count; 0 over seeds only).
        se: Standard error of the t-tests (``nan`` for McNemar).
        df: Degrees of freedom of the t-tests (``nan`` for McNemar).
        b: McNemar's candidate-only successes.
        c: McNemar's baseline-only successes.
        seed_sd: ``sd(m_s)``, the seed-to-seed sd of the paired difference (``S ≥ 2``).
        note: Why there is no test, or ``""``.
    """

    kind: str
    gain: float
    p_value: float
    n_seeds: int
    n_examples: int = 0
    se: float = math.nan
    df: float = math.nan
    b: int = 0
    c: int = 0
    seed_sd: float = math.nan
    note: str = ""

    @property
    def method(self) -> str:
        """The test, in one phrase a researcher knows."""
        if self.kind == KIND_T_SEEDS:
            return f"paired t-test on {self.n_seeds} seed means, {int(self.df)} df"
        if self.kind == KIND_T_EXAMPLES:
            return f"paired t-test over {self.n_examples} examples of one seed, {int(self.df)} df"
        if self.kind == KIND_MCNEMAR:
            return f"exact McNemar test (b = {self.b}, c = {self.c} discordant pairs)"
        return "no test"

    @property
    def interval_method(self) -> str:
        """How the interval inverts the test."""
        if self.kind in (KIND_T_SEEDS, KIND_T_EXAMPLES):
            return f"t interval, {int(self.df)} df (inverts the t-test)"
        if self.kind == KIND_MCNEMAR:
            return (
                "exact conditional interval (Clopper–Pearson on the discordant pairs; inverts "
                "McNemar's test)"
            )
        return ""

    def interval(self, alpha: float = ALPHA) -> tuple[float, float]:
        """The ``1 − alpha`` interval that inverts this test (``nan`` when untestable)."""
        if self.kind == KIND_NONE or not math.isfinite(alpha):
            return math.nan, math.nan
        if self.kind == KIND_MCNEMAR:
            _, low, high = mcnemar_test(self.b, self.c, self.n_examples, alpha)
        else:
            _, low, high = t_test(self.gain, self.se, self.df, alpha)
        return float(low), float(high)

    def rejects(self, alpha: float = ALPHA) -> bool:
        """``p < alpha`` (never when untestable)."""
        return math.isfinite(self.p_value) and self.p_value < alpha


def seed_mean_se(
    means: np.ndarray, var_example: np.ndarray | float = 0.0, n_examples: float = math.inf
) -> np.ndarray:
    """``sd(m_s)/√S`` over the last axis of ``means``, floored where the seed means are identical.

    Identical non-zero seed means (``sd = 0``: on 0/1 outcomes the seed means lie on a lattice
    of step ``1/N``, and two seeds tie often) carry no information on their variance; there the
    standard error is the example noise alone, ``sqrt(σ̂²_ex/(S·N))`` — the least a seed mean's
    variance can be under the model — instead of 0 (which would make ``t`` infinite). The
    floor applies at exact ties only, so it never changes a test with varying seed means.
    """
    m = np.asarray(means, dtype=float)
    s = m.shape[-1]
    se = m.std(axis=-1, ddof=1) / math.sqrt(s)
    floor = np.sqrt(np.asarray(var_example, dtype=float) / (s * n_examples))
    return np.where((se == 0.0) & (m.mean(axis=-1) != 0.0), floor, se)


def _t_decision(
    values: np.ndarray,
    kind: str,
    n_seeds: int,
    n_examples: int,
    var_example: float = 0.0,
    n_mean: float = math.inf,
) -> Decision:
    n = values.size
    gain = float(values.mean())
    sd = float(values.std(ddof=1))
    se = float(seed_mean_se(values, var_example, n_mean))
    p, _, _ = t_test(gain, se, n - 1)
    note = "identical non-zero differences: the t statistic is undefined" if math.isnan(p) else ""
    return Decision(
        kind, gain, float(p), n_seeds, n_examples, se=se, df=float(n - 1),
        seed_sd=sd if kind == KIND_T_SEEDS else math.nan, note=note,
    )  # fmt: skip


def decide(pairs: Pairs, *, binary: bool) -> Decision:
    """The decisive test of per-example paired outcomes (module docstring).

    Args:
        pairs: Paired outcomes (:func:`~loran_search.analysis.paired.pair_examples`) or
            per-seed difference arrays.
        binary: Whether the metric is a 0/1 outcome (McNemar decides with one seed).

    Returns:
        The :class:`Decision`.

    Raises:
        PairingError: Malformed pairs, one example on a single seed, or a 0/1 metric whose
            differences are not in {−1, 0, 1}.
    """
    diffs = differences(pairs)
    n_seeds = len(diffs)
    n_examples = int(min(d.size for d in diffs))
    if n_seeds >= 2:
        means = np.array([d.mean() for d in diffs])
        gv = gain_variance(diffs)
        return _t_decision(means, KIND_T_SEEDS, n_seeds, n_examples, gv.var_example, gv.n_examples)
    d = diffs[0]
    if binary:
        if not np.isin(d, (-1.0, 0.0, 1.0)).all():
            raise PairingError("McNemar's test needs 0/1 outcomes (e.g. per-example correctness).")
        b, c = int((d == 1.0).sum()), int((d == -1.0).sum())
        p = 1.0 if b + c == 0 else float(sps.binomtest(b, b + c, 0.5).pvalue)
        return Decision(KIND_MCNEMAR, float(d.mean()), min(1.0, p), 1, d.size, b=b, c=c)
    if d.size < 2:
        raise PairingError("One example on one seed: no test is possible.")
    return _t_decision(d, KIND_T_EXAMPLES, 1, d.size)


def decide_seed_means(seed_diffs: Sequence[float]) -> Decision:
    """The paired t-test on per-seed metric differences (records without per-example outcomes).

    One seed gives no test (:data:`KIND_NONE`, with a note).
    """
    d = np.asarray([x for x in seed_diffs if math.isfinite(x)], dtype=float)
    if d.size == 0:
        return Decision(KIND_NONE, math.nan, math.nan, 0, note="no paired seed with the baseline")
    if d.size == 1:
        return Decision(
            KIND_NONE, float(d[0]), math.nan, 1, note="one paired seed: no interval or p-value"
        )
    return _t_decision(d, KIND_T_SEEDS, int(d.size), 0)


# ---------------------------------------------------------------- a family of tests


def family_alphas(
    p_values: Sequence[float], method: str = "holm", alpha: float = ALPHA
) -> np.ndarray:
    """Per-test levels ``α'`` at which each test's interval agrees with the adjusted decision.

    Holm (``p`` sorted ascending, ``m`` finite): the hypothesis rejected at step ``j`` gets
    ``α/(m − j + 1)``; from the first step ``r`` that is not rejected, every remaining one gets
    ``α/(m − r + 1)``. Benjamini–Hochberg: every test gets ``max(R, 1)·α/m`` with ``R`` the
    number rejected (Benjamini–Yekutieli's false-coverage-rate level). Then ``p < α'`` iff the
    adjusted ``p̃ < α`` for every test. ``nan`` p-values get ``nan``.

    Raises:
        ValueError: An unknown method.
    """
    p = np.asarray(p_values, dtype=float)
    out = np.full(p.shape, np.nan)
    idx = np.flatnonzero(np.isfinite(p))
    m = idx.size
    if m == 0:
        return out
    order = idx[np.argsort(p[idx], kind="stable")]
    if method == "holm":
        stopped: float | None = None
        for j, k in enumerate(order):
            level = alpha / (m - j)
            if stopped is None and p[k] >= level:
                stopped = level
            out[k] = level if stopped is None else stopped
        return out
    if method == "bh":
        ranks = np.arange(1, m + 1)
        passing = np.flatnonzero(p[order] < ranks * alpha / m)
        rejected = int(passing[-1] + 1) if passing.size else 0
        out[idx] = max(rejected, 1) * alpha / m
        return out
    raise ValueError(f"Unknown multiple-comparison correction {method!r}; use 'holm' or 'bh'.")


# ---------------------------------------------------------------- power


@dataclass(frozen=True)
class Power:
    """The power of the design that ran, and the designs that would detect a target gain.

    Attributes:
        mde: The gain detected with the target power at ``alpha_test`` (``nan`` if unknown).
        df: Degrees of freedom of the test the MDE is for.
        alpha_test: ``α/m`` (Holm's first threshold).
        seed_sd: ``sd(m_s)`` of the design that ran (``nan`` with one seed).
        seed_sd_low: Lower end of its 95% χ² interval.
        seed_sd_high: Upper end.
        designs: ``[(seeds, examples per seed or None), ...]`` detecting the target gain.
        assumes_no_seed_variance: One seed ran, so the designs assume ``σ²_seed = 0``.
    """

    mde: float
    df: float
    alpha_test: float
    seed_sd: float = math.nan
    seed_sd_low: float = math.nan
    seed_sd_high: float = math.nan
    designs: list[tuple[int, int | None]] = field(default_factory=list)
    assumes_no_seed_variance: bool = False


def _alpha_test(alpha: float, n_tests: int) -> float:
    if n_tests < 1:
        raise ValueError(f"n_tests must be at least 1, got {n_tests}.")
    return alpha / n_tests


def design_power(
    pairs: Pairs,
    target_gain: float,
    *,
    alpha: float = ALPHA,
    power: float = 0.8,
    n_tests: int = 1,
    max_seeds: int = MAX_DESIGN_SEEDS,
) -> Power:
    """Power of a per-example design (module docstring) and the designs for ``target_gain``.

    The variance of one seed's mean is ``σ²_m(N) = σ̂²_seed + σ̂²_ex/N`` with the components of
    :func:`~loran_search.analysis.paired.gain_variance`. With ``S ≥ 2`` the MDE is
    ``λ(S − 1)·σ_m(N)/√S``; with one seed ``λ(N − 1)·σ̂_ex/√N`` (the t over examples; for a 0/1
    metric the t approximation of McNemar's power, a little optimistic for that conservative
    exact test). A design ``(S ≥ 2, N)`` detects ``g`` when ``λ(S − 1)²·σ²_m(N)/S ≤ g²``, i.e.
    ``N ≥ σ̂²_ex/(S·g²/λ² − σ̂²_seed)``; for each ``S = 2..max_seeds`` the smallest such ``N``.
    """
    gv = gain_variance(pairs)
    a = _alpha_test(alpha, n_tests)
    s, n = gv.n_seeds, gv.n_examples
    if s >= 2:
        df = float(s - 1)
        se = math.sqrt((gv.var_seed + gv.var_example / n) / s)
        means = np.array([d.mean() for d in differences(pairs)])
        sd = float(means.std(ddof=1))
        low, high = sd_interval(sd, df)
    else:
        df = float(max(1.0, n - 1))
        se = math.sqrt(gv.var_example / n)
        sd = low = high = math.nan
    mde = (
        minimum_detectable_effect(pairs, alpha=alpha, power=power, n_tests=n_tests)
        if se > 0
        else (0.0 if se == 0 else math.nan)
    )
    designs: list[tuple[int, int | None]] = []
    if math.isfinite(target_gain) and target_gain != 0.0 and se > 0:
        designs = list(
            required_design(
                pairs, target_gain, alpha=alpha, power=power, n_tests=n_tests, max_seeds=max_seeds
            )
        )
    return Power(mde, df, a, sd, low, high, designs, assumes_no_seed_variance=s < 2)


def seed_means_power(
    seed_diffs: Sequence[float],
    target_gain: float,
    *,
    alpha: float = ALPHA,
    power: float = 0.8,
    n_tests: int = 1,
    max_seeds: int = 50,
) -> Power:
    """Power of the paired t on seed differences only (older records).

    The MDE is ``λ(S − 1)·sd/√S``; the design is the smallest ``S ≤ max_seeds`` whose MDE at the
    same ``sd`` reaches the target (``(S, None)``: the examples stay as they ran).
    """
    d = np.asarray([x for x in seed_diffs if math.isfinite(x)], dtype=float)
    a = _alpha_test(alpha, n_tests)
    if d.size < 2 or float(d.std(ddof=1)) == 0.0:
        return Power(math.nan, math.nan, a)
    sd = float(d.std(ddof=1))
    df = float(d.size - 1)
    low, high = sd_interval(sd, df)
    designs: list[tuple[int, int | None]] = []
    if math.isfinite(target_gain) and target_gain != 0.0:
        for seeds in range(2, max_seeds + 1):
            if mde_t(sd / math.sqrt(seeds), seeds - 1, a, power) <= abs(target_gain):
                designs.append((seeds, None))
                break
    return Power(mde_t(sd / math.sqrt(d.size), df, a, power), df, a, sd, low, high, designs)
