"""The opened study: :class:`StudyHandle`, what every part of a worker's run is handed.

It names the search space (:class:`~loran_search.search.space.SearchSpace`), so it sits just
above :mod:`loran_search.search.space`; :func:`loran_search.search.study.open_study` makes it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import optuna
    from optuna.storages import BaseStorage

    from loran_search.config import StudyConfig
    from loran_search.search.space import SearchSpace


@dataclass
class StudyHandle:
    """An opened study and what a worker needs to run it.

    Attributes:
        study: The Optuna study.
        cfg: The study config.
        space: Its search space.
        storage_url: The storage URL it was opened from.
        created: This call created the study (else it resumed it).
        grace: Seconds without a heartbeat before a running trial is stale.
        artifact_dir: The artifact store's directory.
        storage: The storage object the study was opened on (pass it to ``write_report``
            and other readers: it already names the installed database driver).
        study_id: The study's id in ``storage``.
        notes: Lines to show the user (e.g. a grid smaller than ``n_trials``).
    """

    study: optuna.Study
    cfg: StudyConfig
    space: SearchSpace
    storage_url: str
    created: bool
    grace: float
    artifact_dir: Path
    storage: BaseStorage
    study_id: int
    notes: list[str] = field(default_factory=list)
