"""The data the analysis passes between its steps: records, comparisons, sections, the analysis.

Data holders only; each is filled by the module named on it and read by the later ones:
:class:`Records` (:mod:`.records`), :class:`Comparison` (:mod:`.configurations`),
:class:`FormsAnalysis` (:mod:`.forms`), :class:`RidgeReading` and :class:`Landscape`
(:mod:`.landscape`), and :class:`Analysis`, everything the report shows (:mod:`.report`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from loran_search.analysis.decision import Decision
from loran_search.analysis.fmt import signed_fixed

# ---------------------------------------------------------------------------------- records

TRIAL_COLUMNS = [
    "trial", "state", "role", "activation", "family", "rank", "key", "config", "params",
    "value", "failure", "failure_kind", "record_version", "train_seconds", "peak_memory_mb",
    "trainable_params", "eval_split", "confirm_of", "adapter_rank",
]  # fmt: skip
#: ``runs`` column ← the recorded per-seed mechanism figure it holds.
MECHANISM_FIELDS = {
    "nonlinearity": "nonlinearity_median",
    "p_rms": "p_rms_median",
    "stable_rank": "stable_rank_median",
    "stable_rank_lora": "stable_rank_lora_median",
    "p_abs_p999_max": "p_abs_p999_max",
}
RUN_COLUMNS = [
    "trial", "state", "role", "activation", "family", "rank", "key", "config", "seed",
    "metric", "companion", "has_stability", "diverged", "grad_norm_max", "loss_spikes",
    "final_train_loss", *MECHANISM_FIELDS, "inert",
]  # fmt: skip


@dataclass
class Records:
    """Everything the analysis reads from one study (:func:`.records.load_records`).

    Attributes:
        study_name: Name of the study.
        metric: Name of the task metric analysed (``accuracy``, ``rouge_l``, ...).
        direction: ``maximize`` or ``minimize`` for that metric.
        trials: One row per trial (:data:`TRIAL_COLUMNS`, see :mod:`.records`).
        runs: One row per (trial, seed) (:data:`RUN_COLUMNS`).
        histories: ``{trial_number: {seed: [history rows]}}`` from ``user_attrs["history"]``.
        param_names: ``{activation: [parameter names]}`` seen in the study.
        notes: Plain-language statements about missing or inferred data.
        eval_size: Evaluation examples per run, when the study records it (``loran.setup``).
        left_out: ``{why: number of trials}`` of the trials left out of the tables (``queued``,
            ``running``, or a failure kind such as ``error``).
        confirm_trials: The confirmation trials (roles ``confirm``/``confirm_baseline``), same
            columns as ``trials``.
        confirm_runs: Their runs, same columns as ``runs``.
        examples: ``{trial: {seed: {column: list}}}`` of the trials that record per-example
            outcomes (search and confirmation alike).
        target_gain: The gain the power statement is about (study attr or setup
            ``report.target_gain``; default one accuracy point, 0.01).
        companion: The companion metric the runs record (``gold_logprob_mean`` or
            ``summary_loss``), ``None`` when none does.
        visited_bound: The largest ``|P|`` of the completed search trials, every rank
            (:func:`loran_search.record.visited_bound`), ``None`` when none records it.
    """

    study_name: str
    metric: str
    direction: str
    trials: pd.DataFrame
    runs: pd.DataFrame
    histories: dict[int, dict[str, list[dict[str, Any]]]] = field(default_factory=dict)
    eval_size: int | None = None
    param_names: dict[str, list[str]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    left_out: dict[str, int] = field(default_factory=dict)
    confirm_trials: pd.DataFrame = field(
        default_factory=lambda: pd.DataFrame(columns=TRIAL_COLUMNS)
    )
    confirm_runs: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=RUN_COLUMNS))
    examples: dict[int, dict[str, dict[str, list[Any]]]] = field(default_factory=dict)
    target_gain: float = 0.01
    companion: str | None = None
    visited_bound: float | None = None

    @property
    def sign(self) -> float:
        """``+1`` when larger metric values are better, ``-1`` when smaller ones are."""
        return 1.0 if self.direction == "maximize" else -1.0


# ------------------------------------------------------------------------------ comparison


@dataclass
class Comparison:
    """A candidate against its baseline in one phase (search or confirmation).

    Attributes:
        n_seeds: Paired seeds.
        n_examples: Paired examples per seed (the smallest count), 0 when over seeds only.
        metric_mean: The candidate's metric over the paired seeds.
        baseline_mean: The baseline's over the same seeds.
        gain: Mean over paired seeds of (candidate − baseline).
        ci_low: Lower end of the 95% interval (``nan`` when none).
        ci_high: Upper end.
        p_value: Two-sided p-value (``nan`` when untestable).
        ci_method: How the interval was computed (``""`` when there is none).
        test_method: The test that decided ``p_value``, in one phrase (``""`` when none).
        decision: That test (:class:`~loran_search.analysis.decision.Decision`), whose
            interval at any level inverts it.
        boot_low: Lower end of the 95% paired bootstrap interval (a description, never the
            decision; ``nan`` over seeds only).
        boot_high: Upper end.
        mcnemar_p: Exact McNemar p-value (accuracy on one seed), else ``nan``.
        companion_metric: The companion's seed-metric name, ``None`` without one.
        companion_gain: The companion's gain, direction-aware (higher is better).
        companion_ci_low: Lower end of its interval.
        companion_ci_high: Upper end.
        note: What is missing or flagged, ``""`` when nothing is.
        diffs: Per-seed arrays of the per-example differences (per-example mode).
        seed_diffs: The paired per-seed differences.
        seeds: The paired seeds.
        split: The evaluation split both sides recorded (``None`` when not recorded).
    """

    n_seeds: int = 0
    n_examples: int = 0
    metric_mean: float = math.nan
    baseline_mean: float = math.nan
    gain: float = math.nan
    ci_low: float = math.nan
    ci_high: float = math.nan
    p_value: float = math.nan
    ci_method: str = ""
    test_method: str = ""
    decision: Decision | None = None
    boot_low: float = math.nan
    boot_high: float = math.nan
    mcnemar_p: float = math.nan
    companion_metric: str | None = None
    companion_gain: float = math.nan
    companion_ci_low: float = math.nan
    companion_ci_high: float = math.nan
    note: str = ""
    diffs: list[np.ndarray] | None = None
    seed_diffs: list[float] = field(default_factory=list)
    seeds: list[str] = field(default_factory=list)
    split: str | None = None

    @property
    def measured(self) -> bool:
        """Whether a gain was measured (at least one paired seed)."""
        return self.n_seeds > 0 and math.isfinite(self.gain)


# ----------------------------------------------------------------------------------- forms


@dataclass
class FormsAnalysis:
    """The form section of a report (``search.forms``; :mod:`.forms`).

    Attributes:
        counts: :func:`loran_search.record.form_counts`.
        table: One row per form configuration, best first (all of them; the report shows the
            top ten).
        interval: The range of ``P`` the shapes are measured and drawn on.
        figure: The written shapes figure, once drawn.
        latex: ``{formula: LaTeX}`` of the formulas in the table.
        notes: What could not be shown.
        names: The study's form activations (each form is its own activation): the verdict
            and the importance speak of them together.
    """

    counts: dict[str, int]
    table: pd.DataFrame
    interval: tuple[float, float]
    figure: Path | None = None
    latex: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    names: frozenset[str] = frozenset()

    def summary_line(self) -> str:
        """The first-screen sentence: the counts and the best form."""
        c = self.counts
        text = (
            f"**Forms**: {c['proposed']} proposed ({c['distinct']} distinct canonical forms): "
            f"{c['screened']} screened out by the audit before training, {c['deduplicated']} "
            f"answered from an earlier trial of the same form, {c['inert']} skipped as inert, "
            f"{c['trained']} trained."
        )
        measured = self.table[self.table["metric"].notna()] if len(self.table) else self.table
        if len(measured):
            best = measured.iloc[0]
            text += f" Best form: `{best['formula']}` ({best['params']}, {best['evidence']} gain "
            text += f"{signed_fixed(best['gain'])})."
        return text


# ------------------------------------------------------------------------------- landscape

CELL_COLUMNS = [
    "amplitude", "frequency", "amp_freq", "metric", "search_gain", "nonlinearity", "inert",
    "confirmed", "confirm_gain", "n_configurations", "configs",
]  # fmt: skip
RANK_COLUMNS = [
    "scaling", "rank", "configuration", "qlora", "metric", "search_gain", "gain", "gain_ci_low",
    "gain_ci_high", "p_adjusted", "evidence", "nonlinearity", "inert", "note",
]  # fmt: skip
SCALING_PLAIN = "alpha/r"
#: The map needs this many distinct values on each axis.
MAP_MIN_AXIS = 2


@dataclass
class RidgeReading:
    """Whether a landscape's values follow ``log(A·ω)`` (:mod:`.landscape`, 'The ridge reading').

    Attributes:
        what: The value read (``accuracy on val``, ``log10 ν``).
        n_cells: Cells with a finite value.
        r2_product: Leave-one-out ``R²`` along ``log10(A·ω)``.
        r2_amplitude: Leave-one-out ``R²`` along ``log10 A`` alone.
        r2_frequency: Leave-one-out ``R²`` along ``log10 ω`` alone.
        ridge: The rule's answer; ``None`` when the cells cannot answer it.
        sentence: The reading in words.
    """

    what: str
    n_cells: int
    r2_product: float = math.nan
    r2_amplitude: float = math.nan
    r2_frequency: float = math.nan
    ridge: bool | None = None
    sentence: str = ""

    @property
    def best(self) -> str | None:
        """The coordinate with the largest ``R²`` (``A·ω``, ``A`` or ``ω``), if read."""
        r2 = {"A·ω": self.r2_product, "A": self.r2_amplitude, "ω": self.r2_frequency}
        r2 = {k: v for k, v in r2.items() if math.isfinite(v)}
        return max(r2, key=lambda k: r2[k]) if r2 else None


def has_map(cells: pd.DataFrame) -> bool:
    """Whether both axes have at least :data:`MAP_MIN_AXIS` distinct values."""
    if cells.empty:
        return False
    return bool(
        cells["amplitude"].nunique() >= MAP_MIN_AXIS
        and cells["frequency"].nunique() >= MAP_MIN_AXIS
    )


@dataclass
class Landscape:
    """The landscape and rank-sweep section of a report (either part may be absent).

    Attributes:
        activation: The activation the map is of.
        rank: The rank the map is at.
        metric: The study metric; ``split`` the split the search evaluated on.
        cells: One row per cell (:data:`CELL_COLUMNS`); empty without a 2-D landscape.
        baseline: QLoRA's search metric at ``rank`` (``nan`` without one).
        readings: The ridge readings (the metric, then ``log10 ν``).
        ranks: The rank-sweep table (:data:`RANK_COLUMNS`); empty without two ranks.
        rank_sentence: The rank sweep in words.
        scaling: The study's adapter scaling (``alpha/r`` or ``alpha/√r (rsLoRA)``).
        figure: The drawn heat map, once drawn.
        notes: What could not be drawn or read, and why.
    """

    activation: str = ""
    rank: int | None = None
    metric: str = "metric"
    split: str = "val"
    cells: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=CELL_COLUMNS))
    baseline: float = math.nan
    readings: list[RidgeReading] = field(default_factory=list)
    ranks: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=RANK_COLUMNS))
    rank_sentence: str = ""
    scaling: str = SCALING_PLAIN
    figure: Path | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def has_map(self) -> bool:
        """Both axes have at least :data:`MAP_MIN_AXIS` values."""
        return has_map(self.cells)

    def summary_lines(self) -> list[str]:
        """The report's first-screen lines of this section."""
        out = []
        if self.has_map:
            out += [r.sentence for r in self.readings if r.sentence]
        if self.rank_sentence:
            out.append(self.rank_sentence)
        return out


# -------------------------------------------------------------------------------- analysis


@dataclass
class Analysis:
    """Everything the report shows (:func:`.report.analyse`).

    Attributes:
        records: The study's tidy records.
        configurations: One row per candidate configuration (best first).
        baselines: One row per baseline rank.
        families: Stability per family, most stable first.
        thresholds: Per activation, where along the amplitude training diverges.
        importance: Parameter importances (PED-ANOVA).
        pareto: Configurations on the gain–seconds or gain–instability front.
        correction: The multiple-comparison correction used (``holm`` or ``bh``).
        summary: The first screen, as Markdown paragraphs: the verdict, then the details.
        notes: Statements about degraded or missing data.
        figures: ``{name: path}`` of the written PNGs.
        verdict: The verdict (the start of ``summary``): the held-out gain, the power, where
            training becomes unstable, whether the non-linearity was active.
        interval: The interval of ``P`` the shapes are drawn on (the visited range, or
            ``[-1, 1]`` for older records).
        interval_note: Where ``interval`` comes from.
        forms: The form section (``search.forms``), if any.
        environments: The environments the trials ran in (:mod:`.environment`).
        head_to_head: LoRAN's best against the best peer (:mod:`.peers`), if any.
        tune_response: The tuning's response (``study.tune``, :mod:`.tuning`), if any.
        study_info: What the setup line reads (:func:`.headline.study_info`).
        headline: The answer in one sentence (:func:`.headline.headline`).
        figure_skips: Why a figure was not drawn.
        figures_narrow: Small-screen versions of figures.
        landscape: The A × ω map and the rank sweep, if either applies.
    """

    records: Records
    configurations: pd.DataFrame
    baselines: pd.DataFrame
    families: pd.DataFrame
    thresholds: list[dict[str, Any]]
    importance: pd.DataFrame
    pareto: pd.DataFrame
    correction: str
    summary: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    figures: dict[str, Path] = field(default_factory=dict)
    verdict: list[str] = field(default_factory=list)
    interval: tuple[float, float] = (-1.0, 1.0)
    interval_note: str = ""
    forms: FormsAnalysis | None = None
    environments: list[dict[str, Any]] = field(default_factory=list)
    head_to_head: dict[str, Any] | None = None
    tune_response: pd.DataFrame | None = None
    study_info: dict[str, Any] = field(default_factory=dict)
    headline: str = ""
    figure_skips: list[str] = field(default_factory=list)
    figures_narrow: dict[str, Path] = field(default_factory=dict)
    landscape: Landscape | None = None
