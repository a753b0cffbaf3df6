"""The search's shared types: what two or more of its modules pass between them.

Each lives here, below every module that uses it (docs/architecture.md, "Order inside
packages"), so no module imports another one for a type:

* :class:`Dim` — one parameter of the search space (``search.params``, ``search.training``,
  ``search.forms.params``, ``study.tune``) with its grid and its Optuna distribution;
  :class:`SpaceError` is how a malformed one is refused;
* :class:`TrialConfig` — what one trial trains (the point of the space);
* :class:`ConfirmSetup` — ``study.confirm`` resolved;
* :class:`WorkerResult` — what one worker did.

The opened study (:class:`~loran_search.search.handle.StudyHandle`) names the search space,
so it sits above :mod:`loran_search.search.space`, in :mod:`loran_search.search.handle`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from loran_search.errors import LoranSearchError
from loran_search.record import METHOD_LORAN

if TYPE_CHECKING:
    from optuna.distributions import BaseDistribution
    from optuna.trial import Trial

#: Most points the grid sampler enumerates, and the most values one range's ``step``/``num``
#: may make: the same bound as the form grid's trees
#: (:data:`loran_search.search.grammar.MAX_GRID_TREES`), one rule for every enumeration.
MAX_GRID_POINTS = 20_000


class SpaceError(LoranSearchError, ValueError):
    """A malformed search-space entry; the message says what is wrong and how to fix it."""


def grid_needs_finite_message(name: str) -> str:
    """The grid sampler's refusal of a continuous range."""
    return (
        f"The grid sampler cannot enumerate the continuous range of '{name}'. Give it a finite "
        "set: `step:` (linear, e.g. {low: 0.1, high: 0.5, step: 0.1}), `num:` (grid points, "
        "log-spaced with log: true, e.g. {low: 1.0e-5, high: 1.0e-2, log: true, num: 4}), or a "
        "list of values ([1.0e-4, 1.0e-3]); or use another sampler (tpe, random, ...)."
    )


@dataclass(frozen=True)
class Dim:
    """One parameter of the space.

    Attributes:
        name: Trial parameter name (``sinter.amplitude``, ``training.learning_rate``).
        kind: ``fixed`` | ``choices`` | ``range``.
        value: The value of a fixed parameter.
        choices: The values of a categorical parameter.
        low: Lower bound of a range (inclusive).
        high: Upper bound of a range (inclusive).
        log: Sample the range on a log scale.
        step: Discretisation of a range (``None`` = continuous).
        num: Grid resolution of a range (grid sampler only).
        integer: Integer-valued (an integer registry parameter or an integer training key).
    """

    name: str
    kind: str
    value: float | int | None = None
    choices: tuple[Any, ...] = ()
    low: float | None = None
    high: float | None = None
    log: bool = False
    step: float | None = None
    num: int | None = None
    integer: bool = False

    @property
    def searched(self) -> bool:
        """Whether the trial suggests this parameter (it is not fixed)."""
        return self.kind != "fixed"

    @property
    def finite(self) -> bool:
        """Whether a grid can enumerate it (fixed, choices, or a range with step/num)."""
        return self.kind != "range" or self.step is not None or self.num is not None

    def distribution(self) -> BaseDistribution:
        """The Optuna distribution of a searched parameter."""
        from optuna.distributions import (
            CategoricalDistribution,
            FloatDistribution,
            IntDistribution,
        )

        if self.kind == "choices":
            return CategoricalDistribution(list(self.choices))
        if self.kind != "range":
            raise SpaceError(f"'{self.name}' is fixed; it has no distribution.")
        assert self.low is not None and self.high is not None
        if self.integer:
            return IntDistribution(
                int(self.low), int(self.high), log=self.log, step=int(self.step or 1)
            )
        return FloatDistribution(self.low, self.high, log=self.log, step=self.step)

    def suggest(self, trial: Trial) -> Any:
        """Ask ``trial`` for this parameter (fixed parameters are returned, not suggested)."""
        if self.kind == "fixed":
            return self.value
        if self.kind == "choices":
            return trial.suggest_categorical(self.name, list(self.choices))
        assert self.low is not None and self.high is not None
        if self.integer:
            return trial.suggest_int(
                self.name, int(self.low), int(self.high), step=int(self.step or 1), log=self.log
            )
        return trial.suggest_float(self.name, self.low, self.high, step=self.step, log=self.log)

    def grid_count(self) -> int:
        """How many values :meth:`grid_values` gives, counted without making them.

        ``step``: ``⌊(high − low)/step⌋ + 1``; ``num``: ``n`` (for an integer parameter, whose
        rounded points may repeat, the distinct values are counted when ``n`` is at most
        :data:`MAX_GRID_POINTS`; above it ``n`` is an upper bound).

        Raises:
            SpaceError: A continuous range with neither ``step`` nor ``num``.
        """
        if self.kind == "fixed":
            return 1
        if self.kind == "choices":
            return len(self.choices)
        assert self.low is not None and self.high is not None
        if self.step is not None:
            return math.floor((self.high - self.low) / self.step + 1e-9) + 1
        if self.num is not None:
            if self.integer and self.num <= MAX_GRID_POINTS:
                return len(self.grid_values())
            return self.num  # an integer grid of more points: an upper bound
        raise SpaceError(grid_needs_finite_message(self.name))

    def grid_values(self) -> list[Any]:
        r"""The values a grid enumerates.

        ``step``: ``low + k·step`` for ``k = 0 … ⌊(high − low)/step⌋``. ``num`` (``n`` points):
        ``low + k·(high − low)/(n − 1)``, or with ``log`` ``low·(high/low)^{k/(n−1)}``,
        ``k = 0 … n − 1``.

        Raises:
            SpaceError: A continuous range with neither ``step`` nor ``num``.
        """
        if self.kind == "fixed":
            return [self.value]
        if self.kind == "choices":
            return list(self.choices)
        assert self.low is not None and self.high is not None
        if self.step is not None:
            n = math.floor((self.high - self.low) / self.step + 1e-9) + 1
            vals = [self.low + k * self.step for k in range(n)]
        elif self.num is not None:
            n = self.num
            if self.log:
                ratio = self.high / self.low
                vals = [self.low * ratio ** (k / (n - 1)) for k in range(n)]
            else:
                vals = [self.low + k * (self.high - self.low) / (n - 1) for k in range(n)]
            vals[-1] = self.high  # exact end point despite rounding
        else:
            raise SpaceError(grid_needs_finite_message(self.name))
        if self.integer:
            return sorted({round(v) for v in vals})
        return [float(f"{v:.12g}") for v in vals]

    def to_dict(self) -> dict[str, Any]:
        """A JSON form (used in the study fingerprint)."""
        if self.kind == "fixed":
            return {"fixed": self.value}
        if self.kind == "choices":
            return {"choices": list(self.choices)}
        out: dict[str, Any] = {"low": self.low, "high": self.high, "log": self.log}
        if self.step is not None:
            out["step"] = self.step
        if self.num is not None:
            out["num"] = self.num
        if self.integer:
            out["integer"] = True
        return out


@dataclass(frozen=True)
class TrialConfig:
    """What one trial trains: the sampled (or enqueued) point of the space."""

    activation: str
    rank: int
    activation_params: dict[str, float]
    training_overrides: dict[str, Any]
    method: str = METHOD_LORAN  # a peer arm (issue 13): ``activation`` is then the method's name
    method_params: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ConfirmSetup:
    """``study.confirm`` resolved: how many configurations, on which seeds and split."""

    top_k: int
    seeds: tuple[int, ...]
    split: str

    def to_dict(self) -> dict[str, Any]:
        """The JSON form stored in :data:`loran_search.record.STUDY_CONFIRM`."""
        return {"top_k": self.top_k, "seeds": list(self.seeds), "split": self.split}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ConfirmSetup:
        """Read the stored form (or a resolved ``study.confirm`` mapping)."""
        return cls(int(data["top_k"]), tuple(int(s) for s in data["seeds"]), str(data["split"]))


@dataclass
class WorkerResult:
    """What one worker did.

    Attributes:
        ran: Trials this worker ran.
        completed: Of those, COMPLETE.
        pruned: PRUNED.
        failed: FAIL.
        reason: Why it stopped.
        requeued: Failed trials it queued again when it started.
        notes: What the user should know about the study (failed baselines, errors to retry).
        confirm_queued: Confirmation trials this worker queued.
        confirm_ran: Confirmation trials this worker ran (included in ``ran``).
        confirm_reason: Why its confirmation phase ended (empty when it had none).
        confirm_planned: Confirmation trials the study's completed candidates call for (0:
            nothing to confirm, no candidate completed with a finite value).
        tune_queued: Tune trials this worker queued (``study.tune``).
        tune_ran: Tune trials this worker ran (included in ``ran``).
        tune_reason: Why its tuning phase ended (empty when it had none).
    """

    ran: int = 0
    completed: int = 0
    pruned: int = 0
    failed: int = 0
    reason: str = ""
    requeued: list[int] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    confirm_queued: int = 0
    confirm_ran: int = 0
    confirm_reason: str = ""
    confirm_planned: int = 0
    tune_queued: int = 0
    tune_ran: int = 0
    tune_reason: str = ""
