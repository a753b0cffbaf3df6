"""The read side of the study user attrs and of a trial's tuning attrs.

Every reader goes through these, never through ``user_attrs.get``; each tolerates a missing or
ill-typed attr.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from loran_search.record.keys import (
    CONFIRM_KEY,
    NORMALIZE,
    STUDY_CONFIRM,
    STUDY_DIRECTION,
    STUDY_METRIC,
    STUDY_REPORT,
    STUDY_REPORT_ARTIFACTS,
    STUDY_SETUP,
    STUDY_TARGET_GAIN,
    TUNE_ARM,
    TUNED,
)
from loran_search.record.values import _dict, _str


@dataclass(frozen=True)
class StudyAttrs:
    """The study user attrs the analysis reads.

    Attributes:
        setup: The search's record of the study setup (:data:`STUDY_SETUP`); empty when absent.
        confirm: The confirmation setup (:data:`STUDY_CONFIRM`), ``None`` when absent.
        metric: The study metric (:data:`STUDY_METRIC`), ``None`` when absent.
        direction: The direction (:data:`STUDY_DIRECTION`, a string or a list), as stored.
        report_artifacts: ``{filename: artifact id}`` of the published report
            (:data:`STUDY_REPORT_ARTIFACTS`), ``None`` when absent.
        target_gains: The values of ``report.target_gain`` the study states, first the flat
            attr, then the ``report`` mapping's, then the setup's (``None`` where absent).
    """

    setup: dict[str, Any]
    confirm: dict[str, Any] | None = None
    metric: Any = None
    direction: Any = None
    report_artifacts: dict[str, Any] | None = None
    target_gains: tuple[Any, ...] = ()

    @classmethod
    def of(cls, user_attrs: Mapping[str, Any]) -> StudyAttrs:
        """Read a study's ``user_attrs`` (``optuna.Study.user_attrs``)."""
        setup = _dict(user_attrs.get(STUDY_SETUP)) or {}
        report = _dict(user_attrs.get(STUDY_REPORT)) or {}
        setup_report = _dict(setup.get(STUDY_REPORT)) or {}
        return cls(
            setup=setup,
            confirm=_dict(user_attrs.get(STUDY_CONFIRM)),
            metric=user_attrs.get(STUDY_METRIC),
            direction=user_attrs.get(STUDY_DIRECTION),
            report_artifacts=_dict(user_attrs.get(STUDY_REPORT_ARTIFACTS)),
            target_gains=(
                user_attrs.get(STUDY_TARGET_GAIN),
                report.get("target_gain"),
                setup_report.get("target_gain"),
            ),
        )

    def section(self, name: str) -> dict[str, Any]:
        """One section of the setup (``model``, ``task``, ``adapter``, …); empty when absent."""
        return _dict(self.setup.get(name)) or {}


@dataclass(frozen=True)
class TuneAttrs:
    """The tuning attrs of one trial (``study.tune``, ``adapter.normalize``; issue 21).

    Attributes:
        tuned: The training values it trained with beyond its params (:data:`TUNED`).
        tune_arm: A tune trial's arm, the confirmation key it tunes (:data:`TUNE_ARM`).
        confirm_key: A confirmation trial's key (:data:`CONFIRM_KEY`), as stored.
        normalize: ``{mode, slope_at_zero}`` of a normalised LoRAN trial (:data:`NORMALIZE`).
    """

    tuned: dict[str, Any] | None = None
    tune_arm: str | None = None
    confirm_key: Any = None
    normalize: dict[str, Any] | None = None

    @classmethod
    def of(cls, user_attrs: Mapping[str, Any]) -> TuneAttrs:
        """Read one trial's ``user_attrs``."""
        return cls(
            tuned=_dict(user_attrs.get(TUNED)),
            tune_arm=_str(user_attrs.get(TUNE_ARM)),
            confirm_key=user_attrs.get(CONFIRM_KEY),
            normalize=_dict(user_attrs.get(NORMALIZE)),
        )
