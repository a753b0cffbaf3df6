"""Analysis of a loran-search study: paired gains over QLoRA, stability, importance, reports.

Entry point: :func:`write_report` (used by ``loran-search report`` and at the end of
``loran-search run``). The pieces:

* :mod:`.records` — trials → tidy tables, tolerant of older/partial records;
  :func:`load_examples` — one trial's per-example outcomes as a table;
* :mod:`.stats` — paired-t gains, intervals, p-values, Holm / Benjamini–Hochberg corrections,
  the noncentral-t power of a t-test;
* :mod:`.paired` — per-example paired statistics: bootstrap intervals, McNemar, power;
* :mod:`.decision` — the decisive test of a comparison, the interval that inverts it, the
  family-consistent interval levels and the test's power (issue 19);
* :mod:`.configurations` — one row per candidate configuration, paired by rank, seed and
  example, with its search and confirmation evidence;
* :mod:`.mechanism` — the non-linearity that was active, the visited range of ``P``;
* :mod:`.stability` — divergence/spike rates per configuration and family, amplitude thresholds;
* :mod:`.running` — the verdict's first sentence when a report is made while the study runs;
* :mod:`.landscape` — the amplitude × frequency map with its ridge reading, and the rank sweep
  (gain and ν per rank, per adapter scaling; :func:`.landscape.rank_comparison`) (issue 24);
* :mod:`.importance` — PED-ANOVA parameter importance; :mod:`.pareto` — Pareto fronts;
* :mod:`.plots`, :mod:`.report` — figures and the md/html/csv/json outputs;
* :mod:`.dashboard` — the study note and study artifacts for ``optuna-dashboard``.
"""

from __future__ import annotations

from loran_search.analysis.api import (
    ReportError,
    load_examples,
    open_for_reading,
    visited_interval,
    write_report,
)

__all__ = ["ReportError", "load_examples", "open_for_reading", "visited_interval", "write_report"]
