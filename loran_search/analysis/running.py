"""Whether a report was made while its study was still running, said in one sentence.

A report can be made at any time (``loran-search report`` reads the storage while workers
write it). Trials still RUNNING or WAITING then have no result yet: the tables hold only the
finished ones, and the multiple-comparison family (Holm over the configurations tested, the
confirmations among them) holds only the tests finished so far, so adjusted p-values and the
verdict are provisional. :func:`running_note` says so, first in the verdict; it is kept apart
from the verdict's statistics so that they can change without it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from loran_search.words import count, plural

if TYPE_CHECKING:
    import pandas as pd

    from loran_search.analysis.model import Records


def running_note(rec: Records) -> str | None:
    """``None`` for a finished study, else the sentence the verdict opens with.

    Counts the RUNNING search and confirmation trials (``rec.trials``, ``rec.confirm_trials``,
    and the running ones that have not recorded their configuration yet, ``left_out
    ["running"]``) and the queued ones (``left_out["queued"]``: WAITING).
    """
    confirming = _running(rec.confirm_trials)
    running = _running(rec.trials) + confirming + int(rec.left_out.get("running", 0))
    waiting = int(rec.left_out.get("queued", 0))
    if not running and not waiting:
        return None
    parts = []
    if running:
        among = f" ({count(confirming, 'confirmation trial')} among them)" if confirming else ""
        parts.append(f"{count(running, 'trial')} {plural(running, 'was')} RUNNING{among}")
    if waiting:
        parts.append(f"{waiting} WAITING (queued)")
    return (
        f"**The study is still running: provisional.** When this report was made, "
        f"{' and '.join(parts)}, without a result yet. Every figure below counts the finished "
        "trials only, and the multiple-comparison family (Holm over the tested "
        "configurations, the confirmations among them) holds only the tests finished so far: "
        "it grows as they finish, so the adjusted p-values and this verdict may change. Make "
        "the report again when the study's workers are done (`loran-search report FILE`)."
    )


def _running(frame: pd.DataFrame | None) -> int:
    if frame is None or len(frame) == 0:
        return 0
    return int((frame["state"] == "RUNNING").sum())
