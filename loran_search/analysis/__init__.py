"""Analysis of a loran-search study: paired gains over QLoRA, stability, importance, reports.

Entry point: :func:`write_report` (used by ``loran-search report`` and at the end of
``loran-search run``). The pieces:

* :mod:`.records` — trials → tidy tables, tolerant of older/partial records;
* :mod:`.stats` — paired-t gains, intervals, p-values, Holm / Benjamini–Hochberg corrections;
* :mod:`.configurations` — one row per candidate configuration, paired by rank and seed;
* :mod:`.stability` — divergence/spike rates per configuration and family, amplitude thresholds;
* :mod:`.importance` — PED-ANOVA parameter importance; :mod:`.pareto` — Pareto fronts;
* :mod:`.plots`, :mod:`.report` — figures and the md/html/csv/json outputs;
* :mod:`.dashboard` — the study note and study artifacts for ``optuna-dashboard``.
"""

from __future__ import annotations

from loran_search.analysis.api import ReportError, open_storage, write_report

__all__ = ["ReportError", "open_storage", "write_report"]
