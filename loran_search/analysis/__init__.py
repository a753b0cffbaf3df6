"""Analysis of a loran-search study: paired gains over QLoRA, stability, importance, reports.

Entry point: :func:`write_report` (used by ``loran-search report`` and at the end of
``loran-search run``). The modules and their order (each imports only earlier ones) are listed
in ``docs/architecture.md``, "Order inside packages".
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
