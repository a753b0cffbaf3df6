"""Statistics on per-example paired outcomes: a candidate against the QLoRA baseline.

The unit of comparison is one *example* ``i`` evaluated by the candidate configuration and by the
QLoRA baseline (``f = identity``) trained with the **same rank and seed** ``s``. Write
``c_{s,i}`` and ``b_{s,i}`` for their per-example metric (0/1 for accuracy; a real number for a
continuous companion metric such as the gold-label log-likelihood) and

    d_{s,i} = c_{s,i} − b_{s,i},    m_s = (1/N_s)·Σ_i d_{s,i},    ḡ = (1/S)·Σ_s m_s

over ``S`` seeds with ``N_s`` paired examples each. ``ḡ`` is the **gain** (every seed weighs the
same, whatever its number of examples). The pieces:

* :func:`pair_examples` — join two per-run example tables by ``(seed, example_id)``; differing
  example sets are an error (:class:`PairingError`), never silently dropped.
* :func:`paired_gain_interval` — the gain with a bootstrap interval: two-level (seeds, then
  examples) for ``S ≥ 2``, ``scipy.stats.bootstrap`` over examples for ``S = 1``.
* :func:`mcnemar_exact` — the exact McNemar test on discordant pairs (0/1 outcomes).
* :func:`holm` — Holm step-down adjusted p-values (the one of :mod:`.stats`, re-exported).
* :func:`gain_variance`, :func:`paired_p_value` — variance components of ``ḡ`` and a two-sided
  p-value; :func:`minimum_detectable_effect`, :func:`required_design` — the power of the design
  that ran, and the design that would detect a target gain (noncentral t of the decisive test).

**The variance model.** ``d_{s,i} = μ + u_s + e_{s,i}`` with a seed effect ``u_s`` (variance
``σ²_seed``: what one training seed does to every example) and an example-level residual
``e_{s,i}`` (variance ``σ²_ex``), so ``Var(m_s) = σ²_seed + σ²_ex/N_s`` and

    Var(ḡ) = σ²_seed/S + σ²_ex/(S·N),    N = the harmonic mean of the N_s.

They are estimated by the method of moments (one-way ANOVA): ``σ̂²_ex`` is the pooled within-seed
variance ``Σ_s Σ_i (d_{s,i} − m_s)² / Σ_s (N_s − 1)`` and
``σ̂²_seed = max(0, var(m_1..m_S) − σ̂²_ex/N)`` (sample variance with ``S − 1`` degrees of
freedom; ``σ̂²_seed = 0`` with one seed, where it is not identifiable). When the seeds evaluate the
*same* examples, an example effect shared by the seeds (a candidate that helps on exactly the
same hard examples whatever the seed) sits in ``σ̂²_ex`` although the seeds share it: for the
gain *on this test set* (the examples taken as fixed, the usual reading of a benchmark score)
``Var̂(ḡ)`` is then conservative; for the gain on the population the examples were drawn from it
is optimistic by up to ``σ²_example-effect·(1 − 1/S)/N``.

**What decides (issue 19).** None of the intervals or p-values here decides "significant"; the
decisive test and the interval that inverts it are :mod:`loran_search.analysis.decision` (the
paired t on the seed means with ``S − 1`` df, the exact McNemar test or the t over examples
with one seed). The variance components serve the power (:func:`minimum_detectable_effect`,
:func:`required_design`: noncentral t of that test) and the pre-issue-19 ``z``-test, kept for
comparison: ``σ̂²_seed`` rests on ``S − 1`` degrees of freedom, and a normal reference for it is
anti-conservative when the seed effect matters — simulated at ``S = 3``, ``N = 448``, seed sd
3–6 points, the z-test rejects a true null 13–17% of the time at nominal 5%
(``tests/loran_search/analysis/test_decision_size.py``). The two-level bootstrap counts the
example noise twice (its variance is about ``[(S − 1)/S·(σ²_seed + σ²_ex/N) + σ²_ex/N]/S``) and
with 3 seeds has only 10 distinct seed resamples: the report shows it as a description only.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats as sps

from loran_search.analysis.stats import holm, mde_t, noncentrality, paired_t
from loran_search.words import count, plural

__all__ = [
    "BOOTSTRAP_RESAMPLES",
    "GainVariance",
    "Interval",
    "McNemar",
    "PairingError",
    "differences",
    "gain_variance",
    "holm",
    "mcnemar_exact",
    "minimum_detectable_effect",
    "pair_examples",
    "paired_gain_interval",
    "paired_p_value",
    "required_design",
    "two_level_bootstrap",
]

#: Bootstrap resamples by default (scipy's default; the Monte-Carlo error of a 95% percentile
#: end is then about 0.3% of the interval's width).
BOOTSTRAP_RESAMPLES = 9999
#: Elements (resamples × seeds × examples) the two-level resampler draws at once.
_CHUNK_ELEMENTS = 4_000_000
TWO_LEVEL_METHOD = "two-level paired bootstrap (seeds, then examples)"
KEYS = ("seed", "example_id")

Pairs = pd.DataFrame | Sequence[np.ndarray]


class PairingError(ValueError):
    """Two per-example tables that cannot be paired (different example sets, duplicates, ...)."""


@dataclass(frozen=True)
class Interval:
    """A paired gain with its bootstrap interval.

    Attributes:
        gain: ``ḡ``, the mean over seeds of the mean per-example difference.
        low: Lower end of the interval.
        high: Upper end of the interval.
        method: How the interval was computed (resampling scheme and interval type).
        n_seeds: ``S``, the number of paired seeds.
        n_examples: Paired examples per seed (the smallest count if the seeds differ).
        confidence: The interval's nominal coverage.
    """

    gain: float
    low: float
    high: float
    method: str
    n_seeds: int
    n_examples: int
    confidence: float = 0.95

    def excludes_zero(self) -> bool:
        """Whether 0 lies outside ``[low, high]``."""
        return self.low > 0.0 or self.high < 0.0


@dataclass(frozen=True)
class McNemar:
    """The exact McNemar test of paired 0/1 outcomes.

    Attributes:
        b: Discordant pairs the candidate gets right and the baseline wrong.
        c: Discordant pairs the baseline gets right and the candidate wrong.
        p_value: Exact two-sided p-value (1 when ``b + c = 0``).
        n_seeds: Seeds whose pairs were pooled.
        note: How the pairs were pooled, or ``""`` for one seed.
    """

    b: int
    c: int
    p_value: float
    n_seeds: int
    note: str = ""


@dataclass(frozen=True)
class GainVariance:
    """Variance components of the paired gain (see the module docstring).

    Attributes:
        gain: ``ḡ``.
        var_seed: ``σ̂²_seed`` (0 with one seed: not identifiable).
        var_example: ``σ̂²_ex``, the pooled within-seed variance of ``d``.
        n_seeds: ``S``.
        n_examples: ``N``, the harmonic mean of the per-seed example counts.
        var_gain: ``Var̂(ḡ) = σ̂²_seed/S + σ̂²_ex/(S·N)``.
    """

    gain: float
    var_seed: float
    var_example: float
    n_seeds: int
    n_examples: float
    var_gain: float

    @property
    def se(self) -> float:
        """The standard error ``sqrt(Var̂(ḡ))``."""
        return math.sqrt(self.var_gain)


# ---------------------------------------------------------------- pairing and differences


def _check_keys(frame: pd.DataFrame, columns: Sequence[str], what: str) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise PairingError(
            f"The {what} table lacks {plural(len(missing), 'column')} {', '.join(missing)}; "
            "it has "
            f"{', '.join(map(str, frame.columns)) or 'none'}."
        )
    dup = frame.duplicated(list(KEYS))
    if dup.any():
        seed, ex = frame.loc[dup, list(KEYS)].iloc[0]
        raise PairingError(
            f"The {what} table has {int(dup.sum())} duplicate (seed, example_id) "
            f"{plural(int(dup.sum()), 'row')}, e.g. "
            f"seed {seed}, example {ex!r}; each example must appear once per seed."
        )


def pair_examples(candidate: pd.DataFrame, baseline: pd.DataFrame, value: str) -> pd.DataFrame:
    """Pair two per-run example tables by ``(seed, example_id)``.

    Args:
        candidate: The candidate's outcomes: columns ``seed``, ``example_id`` and ``value``.
        baseline: The baseline's outcomes at the same rank, same columns.
        value: The metric column to pair (e.g. ``correct`` or ``gold_logprob``).

    Returns:
        A frame with columns ``seed``, ``example_id``, ``candidate``, ``baseline``, sorted by
        ``(seed, example_id)`` (so the row order of the inputs never matters).

    Raises:
        PairingError: A column is missing, a ``(seed, example_id)`` appears twice, a value is
            not finite, or the example ids of a seed differ between the tables (the message names
            the seed and how many ids each side lacks). Nothing is ever dropped silently.
    """
    for frame, what in ((candidate, "candidate"), (baseline, "baseline")):
        _check_keys(frame, [*KEYS, value], what)
    left = candidate[[*KEYS, value]].rename(columns={value: "candidate"})
    right = baseline[[*KEYS, value]].rename(columns={value: "baseline"})
    merged = left.merge(right, on=list(KEYS), how="outer", indicator=True)
    unpaired = merged[merged["_merge"] != "both"]
    if len(unpaired):
        problems = []
        for seed, group in unpaired.groupby("seed", sort=True):
            only_c = int((group["_merge"] == "left_only").sum())
            only_b = int((group["_merge"] == "right_only").sum())
            problems.append(
                f"seed {seed}: {count(only_c, 'example id')} missing from the baseline, "
                f"{only_b} missing from the candidate"
            )
        raise PairingError(
            "The candidate and the baseline were not evaluated on the same examples ("
            + "; ".join(problems)
            + "). Evaluate both on the same split and examples; nothing was dropped."
        )
    out = merged.drop(columns="_merge")
    for col in ("candidate", "baseline"):
        vals = pd.to_numeric(out[col], errors="coerce").to_numpy(dtype=float)
        if not np.isfinite(vals).all():
            raise PairingError(
                f"{count(int((~np.isfinite(vals)).sum()), col + ' value')} of {value!r} "
                f"{plural(int((~np.isfinite(vals)).sum()), 'is')} missing or not finite; every "
                "paired example needs a number."
            )
        out[col] = vals
    return out.sort_values(list(KEYS), kind="mergesort").reset_index(drop=True)


def differences(pairs: Pairs) -> list[np.ndarray]:
    """The per-seed vectors of ``d_{s,i} = c_{s,i} − b_{s,i}``.

    Args:
        pairs: A frame of :func:`pair_examples` (columns ``seed``, ``example_id``, ``candidate``,
            ``baseline``), or already a sequence of per-seed difference arrays (returned as
            float arrays; the fast path for simulations).

    Returns:
        One float array per seed, seeds ascending, examples by ``example_id``.

    Raises:
        PairingError: No seed, an empty seed, a missing column or a non-finite value.
    """
    if isinstance(pairs, pd.DataFrame):
        _check_keys(pairs, [*KEYS, "candidate", "baseline"], "paired")
        frame = pairs.sort_values(list(KEYS), kind="mergesort")
        d = frame["candidate"].to_numpy(dtype=float) - frame["baseline"].to_numpy(dtype=float)
        seeds = frame["seed"].to_numpy()
        cuts = np.flatnonzero(seeds[1:] != seeds[:-1]) + 1
        out = np.split(d, cuts) if d.size else []
    else:
        out = [np.asarray(x, dtype=float).ravel() for x in pairs]
    if not out:
        raise PairingError("No paired example: the table is empty.")
    for k, x in enumerate(out):
        if x.size == 0:
            raise PairingError(f"Seed number {k} has no paired example.")
        if not np.isfinite(x).all():
            raise PairingError(f"Seed number {k} has a non-finite paired difference.")
    return out


def _gain(diffs: Sequence[np.ndarray]) -> float:
    return float(np.mean([x.mean() for x in diffs]))


# ---------------------------------------------------------------- bootstrap intervals


def two_level_bootstrap(
    diffs: Sequence[np.ndarray],
    n_resamples: int = BOOTSTRAP_RESAMPLES,
    rng: np.random.Generator | int | None = 0,
) -> np.ndarray:
    """Bootstrap replicates of ``ḡ``: resample seeds, then examples within each drawn seed.

    One replicate draws ``S`` seeds ``s*_1..s*_S`` uniformly with replacement and, for each, ``N``
    examples of that seed uniformly with replacement (``N`` = that seed's count), and returns
    ``ḡ* = (1/S)·Σ_k mean_j d_{s*_k, i*_{k,j}}``. With one seed it is the ordinary paired bootstrap
    of the mean difference over examples. With several, ``Var*(ḡ*) ≈ [(S − 1)/S·var(m_s) +
    σ̂²_ex/N]/S``: the example noise enters twice, so the interval errs on the wide side (see the
    module docstring). Vectorised: draws are made in chunks of about four million indices.

    Args:
        diffs: Per-seed difference arrays (:func:`differences`).
        n_resamples: Number of replicates ``B``.
        rng: A generator, or a seed for ``numpy.random.default_rng``.

    Returns:
        The ``B`` replicates ``ḡ*``.
    """
    gen = np.random.default_rng(rng)
    n_seeds = len(diffs)
    sizes = np.array([x.size for x in diffs])
    width = int(sizes.max())
    table = np.zeros((n_seeds, width))
    for k, x in enumerate(diffs):
        table[k, : x.size] = x
    uneven = bool((sizes != width).any())
    out = np.empty(n_resamples)
    chunk = max(1, _CHUNK_ELEMENTS // (n_seeds * width))
    for start in range(0, n_resamples, chunk):
        b = min(chunk, n_resamples - start)
        seeds = gen.integers(0, n_seeds, size=(b, n_seeds))
        n = sizes[seeds]  # (b, S)
        if uneven:
            draw = (gen.random((b, n_seeds, width)) * n[..., None]).astype(np.int64)
            idx = np.minimum(draw, n[..., None] - 1)
            vals = table[seeds[..., None], idx]
            vals *= np.arange(width) < n[..., None]
            means = vals.sum(-1) / n
        else:
            idx = gen.integers(0, width, size=(b, n_seeds, width))
            means = table[seeds[..., None], idx].mean(-1)
        out[start : start + b] = means.mean(-1)
    return out


def paired_gain_interval(
    pairs: Pairs,
    *,
    confidence: float = 0.95,
    n_resamples: int = BOOTSTRAP_RESAMPLES,
    seed: int = 0,
    one_seed_method: str = "BCa",
) -> Interval:
    """The paired gain ``ḡ`` with a bootstrap interval.

    * ``S ≥ 2`` seeds: the percentile interval of :func:`two_level_bootstrap`, i.e. the
      ``(1 − confidence)/2`` and ``(1 + confidence)/2`` quantiles of ``ḡ*``.
    * ``S = 1``: ``scipy.stats.bootstrap`` of the mean of the differences ``d_i`` (equivalent to
      the paired bootstrap of ``(c_i, b_i)``), with ``one_seed_method`` (``"BCa"``: bias-corrected
      and accelerated, the default; or ``"percentile"``).

    When every difference is the same number there is nothing to resample: the interval is the
    point ``[ḡ, ḡ]`` and ``method`` says so. Results depend only on ``seed`` and the data (rows
    are sorted first).

    Args:
        pairs: Paired outcomes (:func:`pair_examples`) or per-seed difference arrays.
        confidence: Nominal coverage, in (0, 1).
        n_resamples: Bootstrap replicates.
        seed: Seed of the resampling generator.
        one_seed_method: ``"BCa"`` or ``"percentile"`` for the one-seed case.

    Returns:
        An :class:`Interval`.

    Raises:
        ValueError: ``confidence`` outside (0, 1) or an unknown ``one_seed_method``.
        PairingError: The pairs are empty or malformed.
    """
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must lie in (0, 1), got {confidence}.")
    if one_seed_method not in ("BCa", "percentile"):
        raise ValueError(f"one_seed_method must be 'BCa' or 'percentile', got {one_seed_method!r}.")
    diffs = differences(pairs)
    gain = _gain(diffs)
    n_seeds, n_examples = len(diffs), int(min(x.size for x in diffs))
    flat = np.concatenate(diffs)
    if np.all(flat == flat[0]):
        method = "degenerate: every paired difference is equal (nothing to resample)"
        return Interval(gain, gain, gain, method, n_seeds, n_examples, confidence)
    if n_seeds == 1:
        res = sps.bootstrap(
            (diffs[0],),
            np.mean,
            n_resamples=n_resamples,
            confidence_level=confidence,
            method=one_seed_method,
            vectorized=True,
            rng=np.random.default_rng(seed),
        )
        low, high = float(res.confidence_interval.low), float(res.confidence_interval.high)
        method = f"paired bootstrap over examples (scipy.stats.bootstrap, {one_seed_method})"
        return Interval(gain, low, high, method, 1, n_examples, confidence)
    reps = two_level_bootstrap(diffs, n_resamples, seed)
    low, high = np.quantile(reps, [(1.0 - confidence) / 2.0, (1.0 + confidence) / 2.0])
    return Interval(
        gain, float(low), float(high), TWO_LEVEL_METHOD, n_seeds, n_examples, confidence
    )


# ---------------------------------------------------------------- McNemar


def mcnemar_exact(pairs: pd.DataFrame) -> McNemar:
    """The exact two-sided McNemar test of paired 0/1 outcomes.

    With ``b = #{c_i = 1, b_i = 0}`` and ``c = #{c_i = 0, b_i = 1}`` (the discordant pairs),
    under ``H0`` (the candidate and the baseline are equally accurate) ``b ~ Binomial(b + c, 1/2)``
    given ``b + c``; the p-value is ``scipy.stats.binomtest(b, b + c, 0.5)`` (two-sided: the sum
    of the binomial probabilities no larger than that of ``b``), and 1 when ``b + c = 0``.

    The test is defined for one seed. With several seeds the discordant pairs are **pooled** over
    seeds (every ``(seed, example)`` pair counted as independent, which ignores the seed effect);
    ``note`` says so.

    Args:
        pairs: Paired 0/1 outcomes (:func:`pair_examples`).

    Returns:
        A :class:`McNemar`.

    Raises:
        PairingError: Malformed pairs, or values other than 0 and 1.
    """
    _check_keys(pairs, [*KEYS, "candidate", "baseline"], "paired")
    if pairs.empty:
        raise PairingError("No paired example: the table is empty.")
    cand = pairs["candidate"].to_numpy(dtype=float)
    base = pairs["baseline"].to_numpy(dtype=float)
    if not (np.isin(cand, (0.0, 1.0)).all() and np.isin(base, (0.0, 1.0)).all()):
        raise PairingError("McNemar's test needs 0/1 outcomes (e.g. per-example correctness).")
    b = int(((cand == 1.0) & (base == 0.0)).sum())
    c = int(((cand == 0.0) & (base == 1.0)).sum())
    p = 1.0 if b + c == 0 else float(sps.binomtest(b, b + c, 0.5).pvalue)
    n_seeds = int(pairs["seed"].nunique())
    note = (
        f"discordant pairs pooled over {n_seeds} seeds (seed × example pairs taken as independent)"
        if n_seeds > 1
        else ""
    )
    return McNemar(b, c, min(1.0, p), n_seeds, note)


# ---------------------------------------------------------------- variance, p-value and power


def gain_variance(pairs: Pairs) -> GainVariance:
    """Variance components of ``ḡ`` by the method of moments (see the module docstring).

    ``σ̂²_ex = Σ_s Σ_i (d_{s,i} − m_s)² / Σ_s (N_s − 1)``;
    ``σ̂²_seed = max(0, var(m_s) − σ̂²_ex/N)`` for ``S ≥ 2`` (``var`` with ``S − 1`` degrees of
    freedom, ``N`` the harmonic mean of the ``N_s``), 0 for ``S = 1``;
    ``Var̂(ḡ) = σ̂²_seed/S + σ̂²_ex/(S·N)``.

    Args:
        pairs: Paired outcomes or per-seed difference arrays.

    Returns:
        A :class:`GainVariance`.

    Raises:
        PairingError: Malformed pairs, or one example per seed (no within-seed variance).
    """
    diffs = differences(pairs)
    n_seeds = len(diffs)
    sizes = np.array([x.size for x in diffs], dtype=float)
    dof = float((sizes - 1).sum())
    if dof <= 0:
        raise PairingError("One example per seed: the within-seed variance is not defined.")
    means = np.array([x.mean() for x in diffs])
    var_ex = float(sum(((x - m) ** 2).sum() for x, m in zip(diffs, means, strict=True)) / dof)
    n_h = float(n_seeds / (1.0 / sizes).sum())
    var_seed = max(0.0, float(means.var(ddof=1)) - var_ex / n_h) if n_seeds > 1 else 0.0
    var_gain = var_seed / n_seeds + var_ex / (n_seeds * n_h)
    return GainVariance(float(means.mean()), var_seed, var_ex, n_seeds, n_h, var_gain)


def paired_p_value(pairs: Pairs, *, method: str = "t") -> float:
    """Two-sided p-value of ``H0: E[d] = 0``.

    * ``method="t"`` (default since issue 19): the paired t on the seed means ``m_s`` (``S − 1``
      degrees of freedom; exact under normal seed means whatever ``σ²_seed``); with one seed the
      one-sample t on the per-example differences (``N − 1`` degrees of freedom). The report's
      decision is :func:`loran_search.analysis.decision.decide` (the same t, or the exact
      McNemar test for one seed of 0/1 outcomes).
    * ``method="z"`` (the report's test before issue 19, kept for comparison):
      ``z = ḡ / sqrt(Var̂(ḡ))`` with the variance components of :func:`gain_variance`,
      ``p = 2·(1 − Φ(|z|))``; anti-conservative with few seeds and a real seed effect (module
      docstring).

    When the estimated variance is 0, ``p = 1`` if ``ḡ = 0`` and ``p = 0`` otherwise.

    Args:
        pairs: Paired outcomes or per-seed difference arrays.
        method: ``"t"`` or ``"z"``.

    Returns:
        The p-value.

    Raises:
        ValueError: An unknown method.
        PairingError: Malformed pairs.
    """
    if method == "z":
        gv = gain_variance(pairs)
        if gv.var_gain <= 0.0:
            return 1.0 if gv.gain == 0.0 else 0.0
        return float(2.0 * sps.norm.sf(abs(gv.gain) / gv.se))
    if method == "t":
        diffs = differences(pairs)
        values = diffs[0] if len(diffs) == 1 else np.array([x.mean() for x in diffs])
        res = paired_t(values.tolist())
        if math.isnan(res.p_value):
            return 1.0 if res.gain == 0.0 else 0.0
        return res.p_value
    raise ValueError(f"Unknown p-value method {method!r}; use 'z' or 't'.")


def minimum_detectable_effect(
    pairs: Pairs,
    *,
    alpha: float = 0.05,
    power: float = 0.8,
    n_tests: int = 1,
    n_seeds: int | None = None,
    n_examples: float | None = None,
) -> float:
    """The smallest true gain a design detects with probability ``power`` (issue 19: noncentral t).

    The power of the decisive test (:mod:`loran_search.analysis.decision`): for ``S ≥ 2`` seeds
    the paired t on the seed means, ``MDE = λ(S − 1)·sqrt((σ̂²_seed + σ̂²_ex/N)/S)``; for one
    seed the t over examples, ``MDE = λ(N − 1)·σ̂_ex/√N``; ``λ(df)`` is the noncentrality at which
    the two-sided t-test at ``α' = α/n_tests`` (Holm's first threshold) has power ``power``
    (``scipy.stats.nct``). By default ``(S, N)`` is the design that ran (``N`` the harmonic mean
    of the per-seed counts); ``n_seeds``/``n_examples`` give another design with the same
    variance components. Before issue 19 this used ``z_{1−α'/2} + z_{power}`` (2.80 at
    ``α = 0.05``), which with 3 seeds understates the MDE by a factor of 2 (``λ(2) = 5.65``).

    Args:
        pairs: Paired outcomes or per-seed difference arrays of the design that ran.
        alpha: Family-wise significance level.
        power: Target power.
        n_tests: Tests in the family (configurations compared to the baseline).
        n_seeds: ``S`` of the design to evaluate (default: the one that ran).
        n_examples: ``N`` of the design to evaluate (default: the one that ran).

    Returns:
        The MDE, in the metric's units (e.g. 0.05 = 5 accuracy points).

    Raises:
        ValueError: Bad ``alpha``/``power``/``n_tests``, or a design size below 1 (or one seed
            with one example: no t-test).
    """
    if n_tests < 1:
        raise ValueError(f"n_tests must be at least 1, got {n_tests}.")
    gv = gain_variance(pairs)
    s = gv.n_seeds if n_seeds is None else n_seeds
    n = gv.n_examples if n_examples is None else n_examples
    if s < 1 or n < 1:
        raise ValueError(f"A design needs at least one seed and one example, got ({s}, {n}).")
    if s >= 2:
        se, df = math.sqrt((gv.var_seed + gv.var_example / n) / s), s - 1
    else:
        se, df = math.sqrt(gv.var_example / n), n - 1
    return mde_t(se, df, alpha / n_tests, power)


def required_design(
    pairs: Pairs,
    target_gain: float,
    *,
    alpha: float = 0.05,
    power: float = 0.8,
    n_tests: int = 1,
    max_seeds: int = 5,
) -> list[tuple[int, int]]:
    """Designs ``(seeds, examples per seed)`` that would detect ``target_gain``.

    For ``S = 2..max_seeds`` (a gain over seeds needs at least two), the smallest ``N`` with
    ``λ(S − 1)²·(σ̂²_seed + σ̂²_ex/N)/S ≤ g²``, i.e. ``N ≥ σ̂²_ex / (S·g²/λ² − σ̂²_seed)``
    (:func:`minimum_detectable_effect`); seed counts for which no ``N`` suffices (the seed noise
    alone exceeds the budget) are left out
    (:func:`loran_search.analysis.decision.design_power` reports these designs).

    Args:
        pairs: Paired outcomes or per-seed difference arrays of the design that ran.
        target_gain: The gain to detect (its absolute value is used; must not be 0).
        alpha: Family-wise significance level.
        power: Target power.
        n_tests: Tests in the family.
        max_seeds: Largest seed count considered.

    Returns:
        ``[(S, N_min(S)), ...]`` for the feasible ``S``, ascending.

    Raises:
        ValueError: ``target_gain`` is 0 or not finite, or bad ``alpha``/``power``/``n_tests``.
    """
    if not math.isfinite(target_gain) or target_gain == 0.0:
        raise ValueError(f"target_gain must be a non-zero number, got {target_gain}.")
    if n_tests < 1:
        raise ValueError(f"n_tests must be at least 1, got {n_tests}.")
    gv = gain_variance(pairs)
    out = []
    for s in range(2, max_seeds + 1):
        lam = noncentrality(s - 1, alpha / n_tests, power)
        room = s * target_gain**2 / lam**2 - gv.var_seed
        if room <= 0.0:
            continue
        need = 1 if gv.var_example == 0 else math.ceil(gv.var_example / room - 1e-12)
        out.append((s, max(1, need)))
    return out
